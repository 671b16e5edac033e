//! What the archiver has done, persisted in the log directory
//! ([`STATE_FILE`]) so that a reopen neither loses nor repeats it: written
//! to a temporary file, synced, renamed over the old one, and the directory
//! synced.
//!
//! ```text
//! pwal-archive-state 1
//! url s3://bucket/prefix
//! archived_epoch 1234
//! last_object_first_epoch 1200
//! last_object_crc 3735928559
//! crc 123456789
//! ```
//!
//! (`crc`: the CRC32C of every line before it, newlines included.)

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::Vfs;

/// The archiver's state file in the log directory.
pub const STATE_FILE: &str = "ARCHIVE";
const TMP_FILE: &str = "ARCHIVE.tmp";
const MAGIC_LINE: &str = "pwal-archive-state 1";

/// The persisted state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persisted {
    pub url: String,
    pub archived_epoch: u64,
    pub last_first_epoch: u64,
    pub last_crc: u32,
}

pub(crate) fn encode(p: &Persisted) -> String {
    let body = format!(
        "{MAGIC_LINE}\nurl {}\narchived_epoch {}\nlast_object_first_epoch {}\nlast_object_crc {}\n",
        p.url, p.archived_epoch, p.last_first_epoch, p.last_crc
    );
    let crc = crc32c::crc32c(body.as_bytes());
    format!("{body}crc {crc}\n")
}

pub(crate) fn decode(text: &str) -> std::result::Result<Persisted, String> {
    let (body, crc_line) = text
        .trim_end_matches('\n')
        .rsplit_once('\n')
        .ok_or("too short")?;
    let body = format!("{body}\n");
    let crc: u32 = crc_line
        .strip_prefix("crc ")
        .and_then(|v| v.parse().ok())
        .ok_or("no crc line")?;
    if crc32c::crc32c(body.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC_LINE) {
        return Err("not an archive state file of this version".into());
    }
    let mut field = |name: &str| -> std::result::Result<String, String> {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix(' '))
            .map(str::to_string)
            .ok_or_else(|| format!("no {name} line"))
    };
    let url = field("url")?;
    let num = |v: String| v.parse::<u64>().map_err(|e| e.to_string());
    let archived_epoch = num(field("archived_epoch")?)?;
    let last_first_epoch = num(field("last_object_first_epoch")?)?;
    let last_crc = field("last_object_crc")?
        .parse::<u32>()
        .map_err(|e| e.to_string())?;
    Ok(Persisted {
        url,
        archived_epoch,
        last_first_epoch,
        last_crc,
    })
}

/// Reads the state file of the log directory `dir`, `None` when there is
/// none. A damaged one is an error naming it (never silently ignored: it
/// would make the archiver start over and fork the archive).
pub(crate) fn read(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Persisted>> {
    let path = dir.join(STATE_FILE);
    if !vfs.exists(&path) {
        return Ok(None);
    }
    let f = vfs
        .open_read(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let len = f
        .len()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut b = vec![0u8; len.min(1 << 16) as usize];
    let mut n = 0;
    while n < b.len() {
        let k = f
            .read_at(&mut b[n..], n as u64)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    b.truncate(n);
    let text = String::from_utf8_lossy(&b);
    decode(&text)
        .map(Some)
        .map_err(|why| Error::invalid(format!("{}: damaged archive state: {why}", path.display())))
}

/// Replaces the state file atomically (temporary file, sync, rename,
/// directory sync).
pub(crate) fn write(vfs: &dyn Vfs, dir: &Path, p: &Persisted) -> std::io::Result<()> {
    let tmp = dir.join(TMP_FILE);
    if vfs.exists(&tmp) {
        vfs.remove_file(&tmp)?;
    }
    let f = vfs.open(&tmp, true)?;
    f.write_all_at(&[encode(p).as_bytes()], 0)?;
    f.sync_all()?;
    drop(f);
    vfs.rename(&tmp, &dir.join(STATE_FILE))?;
    vfs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_round_trips_and_damage_is_refused() {
        let p = Persisted {
            url: "s3://b/p".into(),
            archived_epoch: 17,
            last_first_epoch: 9,
            last_crc: 0xdead_beef,
        };
        let t = encode(&p);
        assert_eq!(decode(&t).unwrap(), p);
        let damaged = t.replace("17", "18");
        assert!(decode(&damaged).unwrap_err().contains("checksum"));
    }
}
