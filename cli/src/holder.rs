//! Who holds a log's `LOCK`, found without touching the lock: the file's
//! device and inode are matched against the `FLOCK` entries of
//! `/proc/locks`, which name the process that took each lock.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whether a writer holds the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No process holds the `LOCK` file (or there is none).
    Free,
    /// A process holds it; its pid when `/proc/locks` gives one in this
    /// process's pid namespace.
    Held { pid: Option<u32> },
    /// `/proc/locks` could not be read: why.
    Unknown(String),
}

impl Holder {
    pub fn is_held(&self) -> bool {
        matches!(self, Holder::Held { .. })
    }

    /// One line for a person.
    pub fn describe(&self) -> String {
        match self {
            Holder::Free => "none (no process holds LOCK)".into(),
            Holder::Held { pid: Some(pid) } => match process_name(*pid) {
                Some(name) => format!("pid {pid} ({name}) holds LOCK"),
                None => format!("pid {pid} holds LOCK"),
            },
            Holder::Held { pid: None } => "a process holds LOCK (pid not visible here)".into(),
            Holder::Unknown(why) => format!("unknown ({why})"),
        }
    }
}

/// The holder of `<log dir>/LOCK`.
pub fn lock_holder(log_dir: &Path) -> Holder {
    let lock = log_dir.join("LOCK");
    let meta = match std::fs::metadata(&lock) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Holder::Free,
        Err(e) => return Holder::Unknown(format!("{}: {e}", lock.display())),
    };
    let locks = match std::fs::read_to_string("/proc/locks") {
        Ok(s) => s,
        Err(e) => return Holder::Unknown(format!("/proc/locks: {e}")),
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    holder_in(&locks, major, minor, meta.ino())
}

/// The holder of the file `major:minor:ino` in the text of `/proc/locks`.
/// An entry naming the inode on another device is taken only when it is
/// the only one naming that inode (some file systems, overlays among them,
/// show another device there than `stat` gives).
fn holder_in(locks: &str, major: u64, minor: u64, ino: u64) -> Holder {
    let mut exact = None;
    let mut by_inode = Vec::new();
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK ADVISORY WRITE 1234 fe:00:5678 0 EOF"; a waiter's line
        // has "->" after the number, and holds nothing.
        if f.len() < 6 || f[1] != "FLOCK" {
            continue;
        }
        let mut id = f[5].split(':');
        let (Some(maj), Some(min), Some(i), None) = (id.next(), id.next(), id.next(), id.next())
        else {
            continue;
        };
        let (Ok(maj), Ok(min), Ok(i)) = (
            u64::from_str_radix(maj, 16),
            u64::from_str_radix(min, 16),
            i.parse::<u64>(),
        ) else {
            continue;
        };
        if i != ino {
            continue;
        }
        let pid = f[4]
            .parse::<i64>()
            .ok()
            .filter(|&p| p > 0)
            .map(|p| p as u32);
        if (maj, min) == (major, minor) {
            exact.get_or_insert(pid);
        } else {
            by_inode.push(pid);
        }
    }
    match (exact, by_inode.as_slice()) {
        (Some(pid), _) => Holder::Held { pid },
        (None, [pid]) => Holder::Held { pid: *pid },
        _ => Holder::Free,
    }
}

/// The command name of a process (`/proc/PID/comm`).
fn process_name(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(s.trim_end().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 700 fe:00:42 0 EOF
2: FLOCK  ADVISORY  WRITE 22459 fe:00:10012775 0 EOF
2: -> FLOCK  ADVISORY  WRITE 22460 fe:00:10012775 0 EOF
3: FLOCK  ADVISORY  READ 19070 fe:00:10133506 0 EOF
4: FLOCK  ADVISORY  WRITE 31 08:11:77 0 EOF
";

    #[test]
    fn finds_the_flock_holder_by_device_and_inode() {
        assert_eq!(
            holder_in(LOCKS, 0xfe, 0, 10012775),
            Holder::Held { pid: Some(22459) }
        );
        // A POSIX lock on the inode is not the writer's flock.
        assert_eq!(holder_in(LOCKS, 0xfe, 0, 42), Holder::Free);
        assert_eq!(holder_in(LOCKS, 0xfe, 0, 1), Holder::Free);
        // The only entry for the inode, on another device number.
        assert_eq!(
            holder_in(LOCKS, 0, 0x2a, 77),
            Holder::Held { pid: Some(31) }
        );
        assert_eq!(
            holder_in(LOCKS, 8, 0x11, 77),
            Holder::Held { pid: Some(31) }
        );
    }

    #[test]
    fn a_pid_from_another_namespace_is_not_made_up() {
        let locks = "1: FLOCK  ADVISORY  WRITE -1 fe:00:9 0 EOF\n";
        assert_eq!(holder_in(locks, 0xfe, 0, 9), Holder::Held { pid: None });
    }
}
