//! Thin wrappers over the few OS facilities the benchmark needs: CPU time,
//! peak memory, dropping a file from the page cache, the machine description,
//! and `dlopen` for the peer libraries.

use std::ffi::{c_void, CStr, CString};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn tv_secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage only writes the struct we hand it.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    }
}

/// User + system CPU seconds of this process, all threads.
pub fn cpu_seconds_self() -> f64 {
    let ru = rusage(libc::RUSAGE_SELF);
    tv_secs(ru.ru_utime) + tv_secs(ru.ru_stime)
}

/// Peak resident set of this process in KiB (`VmHWM`).
pub fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// Syncs a file and asks the kernel to drop its pages from the cache, so that
/// the next read comes from the disk (as far as the guest can tell: a host
/// cache under a virtual disk is out of reach).
pub fn drop_from_cache(path: &Path) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let f = File::open(path)?;
    f.sync_all()?;
    // SAFETY: plain syscall on a descriptor we own.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Creates `path` as `bytes` of zeros, written (not a hole) and synced, with
/// its directory synced too: overwriting it later needs no metadata update.
pub fn create_prezeroed(path: &Path, bytes: u64) -> std::io::Result<()> {
    let f = File::create(path)?;
    let chunk = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < bytes {
        let n = chunk.len().min((bytes - off) as usize);
        f.write_all_at(&chunk[..n], off)?;
        off += n as u64;
    }
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Whether `path` lies on a tmpfs (where `fdatasync` costs nothing).
pub fn is_tmpfs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes only the struct we hand it.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
    }
}

/// The file system type and device holding `path`, from /proc/mounts (longest
/// matching mount point).
pub fn filesystem_of(path: &Path) -> String {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || !p.starts_with(f[1]) {
            continue;
        }
        let longer = match &best {
            None => true,
            Some((n, _)) => f[1].len() > *n,
        };
        if longer {
            best = Some((f[1].len(), format!("{} on {} ({})", f[0], f[1], f[2])));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| "unknown".into())
}

/// One line per fact: CPU model and count, memory, kernel.
pub fn machine_description() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .map(|v| v.parse::<u64>().unwrap_or(0))
                })
        })
        .unwrap_or(0);
    let un = uname();
    vec![
        format!("CPU: {model}, {cpus} logical CPUs (/proc/cpuinfo)"),
        format!("Memory: {:.1} GiB", mem as f64 / (1u64 << 20) as f64),
        format!("Kernel: {un}"),
    ]
}

pub fn uname() -> String {
    // SAFETY: uname fills the struct; every field is NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "unknown".into();
        }
        let f = |p: &[libc::c_char]| CStr::from_ptr(p.as_ptr()).to_string_lossy().into_owned();
        format!(
            "{} {} {} {} {}",
            f(&u.sysname),
            f(&u.nodename),
            f(&u.release),
            f(&u.version),
            f(&u.machine)
        )
    }
}

/// The current UTC date and time, `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    // SAFETY: time and gmtime_r only write the structs we hand them.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&t, &mut tm);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min
        )
    }
}

/// The installed version of a Debian package, if any.
pub fn deb_version(package: &str) -> Option<String> {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// A shared library opened with `dlopen`, never closed (the process keeps it
/// until exit). The peers are loaded at run time rather than linked so that the
/// benchmark builds, and the other contenders run, on a machine without them.
pub struct Library(*mut c_void);

// SAFETY: a dlopen handle may be used from any thread.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

impl Library {
    /// Opens the first of `names` that loads; a name without a slash is
    /// searched the usual way, then as `<libdir>/<name>*` in the multiarch
    /// library directories (so that the runtime package alone suffices).
    pub fn open(names: &[&str]) -> Result<Library, String> {
        let mut tried = Vec::new();
        let mut candidates: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        for dir in [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib",
            "/usr/local/lib",
        ] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                let mut found: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|f| names.iter().any(|n| f.starts_with(n)))
                    .map(|f| format!("{dir}/{f}"))
                    .collect();
                found.sort();
                candidates.extend(found);
            }
        }
        for name in candidates {
            let c = CString::new(name.clone()).unwrap();
            // SAFETY: dlopen with a valid C string; the library's initialisers
            // are those of a normal system library.
            let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if !h.is_null() {
                return Ok(Library(h));
            }
            tried.push(name);
        }
        Err(format!("none of {tried:?} could be loaded"))
    }

    /// The address of symbol `name`.
    pub fn symbol(&self, name: &str) -> Result<*mut c_void, String> {
        let c = CString::new(name).unwrap();
        // SAFETY: dlsym on a live handle.
        let p = unsafe { libc::dlsym(self.0, c.as_ptr()) };
        if p.is_null() {
            Err(format!("symbol {name} not found"))
        } else {
            Ok(p)
        }
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(tmp, path)
}

/// The commit of the tree the benchmark was built from, and whether `src/`
/// had uncommitted changes.
pub fn git_state() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown commit".into(),
        Some(head) => {
            let dirty = run(&[
                "status",
                "--porcelain",
                "--",
                "src",
                "Cargo.toml",
                "benches",
            ])
            .unwrap_or_default();
            if dirty.is_empty() {
                format!("commit {head}")
            } else {
                format!(
                    "commit {head} plus uncommitted changes to {}",
                    dirty
                        .lines()
                        .map(|l| l[3..].to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
    }
}

/// `/proc/loadavg`'s first three fields (other engineers' builds share the
/// machine: a load near or above the CPU count means the figures are noisy).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
