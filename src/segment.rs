//! Segment files: preallocated files that hold many epoch frames each.
//! Layout in `docs/FORMAT.md`.
//!
//! A segment is named `<id:020>.pwseg`. Its first 4 KiB hold the segment
//! header (identity and first epoch); epoch frames follow back to back. A
//! spare is a preallocated or recycled file named `spare-<n>.tmp`; it becomes
//! a segment when the flusher renames it and writes a fresh header with a new
//! id and salt, so bytes left from its previous life never validate.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::Vfs;

/// "PWSG" read as a little-endian u32.
pub const SEGMENT_MAGIC: u32 = u32::from_le_bytes(*b"PWSG");
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Epoch frames start here; the header has the first 4 KiB to itself.
pub const DATA_OFFSET: u64 = 4096;
pub const SEGMENT_SUFFIX: &str = ".pwseg";
pub const SPARE_PREFIX: &str = "spare-";
pub const LOCK_FILE: &str = "LOCK";
/// Zero bytes written after each frame in a recycled segment, so that the
/// next header position reads as "never written" rather than as the middle of
/// a stale record.
pub const END_MARK_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub id: u64,
    pub salt: u64,
    /// First epoch written to this segment; 0 marks a segment whose header
    /// was never activated.
    pub first_epoch: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&crate::epoch::FORMAT_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.salt.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_epoch.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a header; `None` when the bytes are not a valid, activated
    /// header (never written, torn, or from another format).
    pub fn decode(b: &[u8; SEGMENT_HEADER_LEN]) -> Option<SegmentHeader> {
        let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
        let crc = u32::from_le_bytes(b[60..64].try_into().unwrap());
        if magic != SEGMENT_MAGIC || crc32c::crc32c(&b[..60]) != crc {
            return None;
        }
        let h = SegmentHeader {
            id: u64::from_le_bytes(b[8..16].try_into().unwrap()),
            salt: u64::from_le_bytes(b[16..24].try_into().unwrap()),
            first_epoch: u64::from_le_bytes(b[24..32].try_into().unwrap()),
        };
        (h.first_epoch != 0).then_some(h)
    }
}

pub fn segment_name(id: u64) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn parse_spare_name(name: &str) -> Option<u64> {
    name.strip_prefix(SPARE_PREFIX)?
        .strip_suffix(".tmp")?
        .parse()
        .ok()
}

/// A segment file found in the log directory.
#[derive(Clone, Debug)]
pub struct FoundSegment {
    pub id: u64,
    pub path: PathBuf,
    /// The activated header, when the file has one whose id matches its name.
    pub header: Option<SegmentHeader>,
    pub len: u64,
}

/// Lists the segment files of `dir`, ascending by id, with their headers.
pub fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<FoundSegment>> {
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut out = Vec::new();
    for name in names {
        let Some(id) = parse_segment_name(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let file = vfs
            .open_read(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .len()
            .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?;
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        let n = file
            .read_at(&mut b, 0)
            .map_err(|e| Error::io(format!("reading the header of {}", path.display()), e))?;
        let header = if n == SEGMENT_HEADER_LEN {
            SegmentHeader::decode(&b).filter(|h| h.id == id)
        } else {
            None
        };
        out.push(FoundSegment {
            id,
            path,
            header,
            len,
        });
    }
    out.sort_by_key(|s| s.id);
    Ok(out)
}

/// A fresh random-enough salt: time, address entropy and a counter, mixed.
pub fn new_salt() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    let mut r = crate::io::sim::SplitMix(
        t ^ addr.rotate_left(32)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed)
            ^ std::process::id() as u64,
    );
    r.next_u64() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            id: 3,
            salt: 99,
            first_epoch: 17,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Some(h));
        b[20] ^= 4;
        assert_eq!(SegmentHeader::decode(&b), None);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.pwseg"), None);
        assert_eq!(parse_spare_name("spare-7.tmp"), Some(7));
    }
}
