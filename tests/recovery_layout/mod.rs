//! The version-4 byte layout, written out independently of the library so
//! that tests can find, damage and forge frames and headers.

use std::path::{Path, PathBuf};

use pwal::io::SimVfs;

/// The on-disk format version these tests write and expect.
pub const FORMAT_VERSION: u16 = 4;
pub const EPOCH_FIXED_LEN: usize = 80;
pub const DATA_OFFSET: usize = 4096;
/// The bound on epoch numbers (`epoch::MAX_EPOCH`).
pub const MAX_EPOCH: u64 = 1 << 62;

/// Field offsets of the certificate.
pub mod cert {
    pub const LANES: usize = 6;
    pub const SEGMENT_ID: usize = 8;
    pub const SALT: usize = 16;
    pub const EPOCH: usize = 24;
    pub const FIRST_SEQ: usize = 32;
    pub const LAST_SEQ: usize = 40;
    pub const BODY_LEN: usize = 48;
    pub const TXN_COUNT: usize = 52;
    pub const DB_SIZE: usize = 56;
    pub const PAGE_SET: usize = 60;
    pub const SYNCED_THROUGH: usize = 64;
    pub const CHECKPOINT: usize = 72;
    pub const LANE_COUNTS: usize = 80;
}

/// One frame of a segment: where it lies and its epoch.
#[derive(Clone, Debug)]
pub struct FrameLoc {
    pub start: u64,
    pub end: u64,
    pub epoch: u64,
    pub lanes: usize,
}

impl FrameLoc {
    pub fn header_len(&self) -> usize {
        EPOCH_FIXED_LEN + 4 * self.lanes + 4
    }
}

fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn rd64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The segment files of the log of `db`, ascending.
pub fn segments(vfs: &SimVfs, db: &Path) -> Vec<PathBuf> {
    let dir = pwal::log_dir(db);
    vfs.paths()
        .into_iter()
        .filter(|p| p.parent() == Some(&dir) && p.extension().is_some_and(|x| x == "pwseg"))
        .collect()
}

pub fn segment_id(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

pub fn first_epoch(segment: &[u8]) -> u64 {
    rd64(segment, 24)
}

/// The frames of a segment's contents, walked from offset 4096 while they
/// carry the segment's id and salt.
pub fn frames_of_segment(data: &[u8]) -> Vec<FrameLoc> {
    let (id, salt) = (rd64(data, 8), rd64(data, 16));
    let mut out = Vec::new();
    let mut off = DATA_OFFSET;
    while off + EPOCH_FIXED_LEN <= data.len() {
        let h = &data[off..];
        if &h[0..4] != b"PWEP" || rd64(h, 8) != id || rd64(h, 16) != salt {
            break;
        }
        let lanes = u16::from_le_bytes([h[6], h[7]]) as usize;
        let len = EPOCH_FIXED_LEN + 4 * lanes + 4 + rd32(h, 48) as usize;
        out.push(FrameLoc {
            start: off as u64,
            end: (off + len) as u64,
            epoch: rd64(h, 24),
            lanes,
        });
        off += len;
    }
    out
}

/// Recomputes the certificate checksum of a whole frame whose header is
/// `hlen` bytes (as written: an edited lane count does not move it) after
/// the header was edited: the CRC of the header, continued over the stored
/// CRC of each record, in body order.
pub fn reseal(frame: &mut [u8], hlen: usize) {
    let mut crc = crc32c::crc32c(&frame[..hlen - 4]);
    let mut at = hlen;
    while at + 8 <= frame.len() {
        let len = rd32(frame, at + 4) as usize;
        crc = crc32c::crc32c_append(crc, &frame[at..at + 4]);
        if len == 0 || len > frame.len() - at {
            break;
        }
        at += len;
    }
    frame[hlen - 4..hlen].copy_from_slice(&crc.to_le_bytes());
}

/// A checksum-valid version-2 segment header.
pub fn segment_header(id: u64, salt: u64, first_epoch: u64, log_start: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(b"PWSG");
    b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&id.to_le_bytes());
    b[16..24].copy_from_slice(&salt.to_le_bytes());
    b[24..32].copy_from_slice(&first_epoch.to_le_bytes());
    b[32..40].copy_from_slice(&log_start.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}
