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
/// next header position reads as "never written" rather than as the middle
/// of a stale record.
pub const END_MARK_LEN: usize = crate::epoch::END_MARK_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub id: u64,
    pub salt: u64,
    /// First epoch written to this segment; 0 marks a segment whose header
    /// was never activated.
    pub first_epoch: u64,
    /// The first epoch the log still had to hold when this segment was
    /// activated: recovery refuses a log whose oldest segment starts after
    /// it (a lost beginning). At most `first_epoch`.
    pub log_start_epoch: u64,
}

/// What the first 64 bytes of a segment file hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderRead {
    /// A valid, activated header.
    Valid(SegmentHeader),
    /// No header: never written, torn, not a segment header at all, or
    /// never activated (first epoch 0).
    Absent,
    /// A checksum-valid header of another format version.
    OtherVersion(u16),
    /// A header whose checksum holds but which cannot be used: values no
    /// writer produces. The checksum rules out
    /// a torn write, so this is reported, never ignored.
    Rejected(String),
}

impl SegmentHeader {
    /// The identity its frames name.
    pub fn ident(&self) -> crate::epoch::SegmentIdent {
        crate::epoch::SegmentIdent {
            id: self.id,
            salt: self.salt,
            first_epoch: self.first_epoch,
        }
    }

    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&crate::epoch::FORMAT_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.salt.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_epoch.to_le_bytes());
        b[32..40].copy_from_slice(&self.log_start_epoch.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a header.
    pub fn decode(b: &[u8; SEGMENT_HEADER_LEN]) -> HeaderRead {
        use crate::epoch::{FORMAT_VERSION, MAX_EPOCH};

        let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
        let crc = u32::from_le_bytes(b[60..64].try_into().unwrap());
        if magic != SEGMENT_MAGIC || crc32c::crc32c(&b[..60]) != crc {
            return HeaderRead::Absent;
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != FORMAT_VERSION {
            return HeaderRead::OtherVersion(version);
        }
        let h = SegmentHeader {
            id: u64::from_le_bytes(b[8..16].try_into().unwrap()),
            salt: u64::from_le_bytes(b[16..24].try_into().unwrap()),
            first_epoch: u64::from_le_bytes(b[24..32].try_into().unwrap()),
            log_start_epoch: u64::from_le_bytes(b[32..40].try_into().unwrap()),
        };
        if h.first_epoch == 0 {
            return HeaderRead::Absent;
        }
        if h.first_epoch > MAX_EPOCH {
            return HeaderRead::Rejected(format!(
                "segment header names first epoch {}, above the bound {MAX_EPOCH}",
                h.first_epoch
            ));
        }
        if h.log_start_epoch == 0 || h.log_start_epoch > h.first_epoch {
            return HeaderRead::Rejected(format!(
                "segment header names log start epoch {}, outside 1..={} (its first epoch)",
                h.log_start_epoch, h.first_epoch
            ));
        }
        HeaderRead::Valid(h)
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
    /// Why a checksum-valid header was refused (impossible values).
    pub rejected: Option<String>,
    /// The format version of a checksum-valid header of another version.
    pub other_version: Option<u16>,
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
        let read = if n == SEGMENT_HEADER_LEN {
            SegmentHeader::decode(&b)
        } else {
            HeaderRead::Absent
        };
        let (mut header, mut rejected, mut other_version) = (None, None, None);
        match read {
            HeaderRead::Valid(h) if h.id == id => header = Some(h),
            // A valid header naming another id (a file renamed by hand, or
            // a copy) is not this segment's: its frames carry that id.
            HeaderRead::Valid(_) | HeaderRead::Absent => {}
            HeaderRead::OtherVersion(v) => other_version = Some(v),
            HeaderRead::Rejected(why) => rejected = Some(why),
        }
        out.push(FoundSegment {
            id,
            path,
            header,
            rejected,
            other_version,
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
            log_start_epoch: 5,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), HeaderRead::Valid(h));
        b[20] ^= 4;
        assert_eq!(SegmentHeader::decode(&b), HeaderRead::Absent);
    }

    #[test]
    fn checksum_valid_headers_with_impossible_values_are_rejected() {
        let ok = SegmentHeader {
            id: 3,
            salt: 99,
            first_epoch: 17,
            log_start_epoch: 17,
        };
        for bad in [
            SegmentHeader {
                first_epoch: u64::MAX,
                log_start_epoch: 1,
                ..ok
            },
            SegmentHeader {
                first_epoch: crate::epoch::MAX_EPOCH + 1,
                log_start_epoch: 1,
                ..ok
            },
            SegmentHeader {
                log_start_epoch: 0,
                ..ok
            },
            SegmentHeader {
                log_start_epoch: 18,
                ..ok
            },
        ] {
            match SegmentHeader::decode(&bad.encode()) {
                HeaderRead::Rejected(why) => assert!(why.contains("epoch"), "{why}"),
                other => panic!("{bad:?} decoded as {other:?}"),
            }
        }
        let mut v1 = ok.encode();
        v1[4..6].copy_from_slice(&1u16.to_le_bytes());
        let crc = crc32c::crc32c(&v1[..60]);
        v1[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&v1), HeaderRead::OtherVersion(1));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.pwseg"), None);
        assert_eq!(parse_spare_name("spare-7.tmp"), Some(7));
    }
}
