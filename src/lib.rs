//! pwal: a parallel write-ahead log with lane-local epoch group commit.
//!
//! Writer threads append their transactions' page frames to per-thread lane
//! buffers ([`Log::submit`]) with no global lock; one flusher seals an epoch,
//! writes every lane of it with one `pwritev` and one `fdatasync`, and wakes
//! the waiters ([`Log::wait_durable`]). After a crash, [`recover`] streams every
//! durable record in commit order and never a torn transaction.
//!
//! The on-disk format is described in `docs/FORMAT.md`; the design and the
//! reasons behind it in `docs/DESIGN.md`. The C ABI lives in [`ffi`].

// archive: continuous archiving to object storage, and restore.
pub mod archive;
mod config;
mod coordinator;
mod epoch;
mod error;
pub mod ffi;
mod flusher;
pub mod inspect;
pub mod io;
mod lane;
mod log;
mod parted;
mod pins;
mod recovery;
mod registry;
mod repair;
mod segment;
mod stats;
mod store;
mod trace;
mod varint;

pub use config::{
    FallbackReason, Mode, Options, SyncPolicy, DEFAULT_SEGMENT_BYTES, FIRST_SEGMENT_BYTES,
    MAX_EPOCH_BODY_BYTES, MAX_LANES, MAX_PAGE_BYTES, MAX_RECORD_BYTES, MAX_TXN_BYTES,
    MAX_TXN_FRAMES, MIN_EPOCH_CAP_BYTES,
};
pub use error::{Error, Result};
pub use log::Log;
pub use recovery::{
    recover, recover_and_open, recover_and_open_with_vfs, recover_into, recover_with_vfs,
    replay_with_vfs, RecoverOptions, RecoveryReport, ReplayOptions,
};
#[doc(hidden)]
pub use registry::debug_inject_fs_type;
pub use repair::{repair, repair_with_vfs};
pub use stats::{LaneStats, LatencySummary, Stats};
pub use trace::{TraceEvent, TraceKind, Tracer};

/// One page image of a transaction.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Page number, 1-based (0 is rejected).
    pub page_number: u32,
    /// Database size in pages after this commit, on the commit frame; 0 on
    /// the others.
    pub db_size_if_commit: u32,
    /// The page bytes: 1 to [`MAX_PAGE_BYTES`] bytes.
    pub data: &'a [u8],
}

/// One transaction (a "batch"): all of its frames land in one epoch, and after
/// recovery either all of them are there or none.
#[derive(Clone, Copy, Debug)]
pub struct Txn<'a> {
    pub txn_id: u64,
    /// The engine's commit sequence number; recovery orders transactions of
    /// one epoch by it.
    pub commit_seq: u64,
    /// Opaque to pwal; given back on recovery.
    pub txn_epoch: u32,
    pub frames: &'a [Frame<'a>],
}

/// One frame as recovery hands it to the callback. `data` is valid during the
/// call only.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub epoch: u64,
    pub txn_id: u64,
    pub commit_seq: u64,
    pub txn_epoch: u32,
    pub page_number: u32,
    pub db_size_if_commit: u32,
    pub data: &'a [u8],
    /// The file the transaction belongs to (`Log::submit_file`; 0 for
    /// `Log::submit`).
    pub file_id: u32,
}

/// The directory that holds the log of the database at `db_path`:
/// `<db_path>-pwal`.
pub fn log_dir(db_path: &std::path::Path) -> std::path::PathBuf {
    let mut s = db_path.as_os_str().to_owned();
    s.push("-pwal");
    std::path::PathBuf::from(s)
}

/// Entry points for the fuzz targets (`fuzz/`) and the stable fuzz tests;
/// not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes `bytes` as the identity of a segment (its id, salt and
    /// first epoch, little-endian u64 each, as in bytes 8..32 of its header)
    /// followed by one epoch frame of it (certificate, then body), the way
    /// recovery validates it, and walks every frame of every record. Returns
    /// the epoch and the transaction count, or why the bytes are not a frame.
    pub fn decode_epoch_frame(bytes: &[u8]) -> std::result::Result<(u64, usize), String> {
        use crate::epoch::{self, Header, SegmentIdent, CERT_MAX_LEN};
        if bytes.len() < 24 {
            return Err("shorter than a segment identity".into());
        }
        let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        let ident = SegmentIdent {
            id: word(0),
            salt: word(1),
            first_epoch: word(2),
        };
        let bytes = &bytes[24..];
        let window = &bytes[..bytes.len().min(CERT_MAX_LEN)];
        let at_eof = window.len() < CERT_MAX_LEN;
        let (hlen, body_len) = match epoch::parse_header(window, at_eof, &ident) {
            Header::Plausible {
                header_len,
                body_len,
            } => (header_len, body_len),
            Header::Zero => return Err("zeros".into()),
            Header::Stale => return Err("stale".into()),
            Header::Bad(why) => return Err(why),
        };
        let frame = bytes
            .get(..hlen + body_len)
            .ok_or("frame runs past the input")?;
        let (cert, txns) = epoch::validate_frame(&frame[..hlen], &frame[hlen..], &ident)?;
        let body = &frame[hlen..];
        for t in &txns {
            let (_, frames) = epoch::record_frames(&body[t.offset..t.offset + t.len])?;
            for f in frames {
                std::hint::black_box(f?.data);
            }
        }
        Ok((cert.epoch, txns.len()))
    }

    /// The database path the fuzzed log directories belong to.
    pub const FUZZ_DB: &str = "/fuzz/db";

    /// Builds a log directory (of [`FUZZ_DB`]) in a simulated file system
    /// from fuzz input: a sequence of entries, each a kind byte (0: segment,
    /// 1: spare, 2: the lock file), a little-endian u16 id, a little-endian
    /// u32 length and that many bytes (fewer at the end of the input).
    pub fn log_dir_from_bytes(mut bytes: &[u8]) -> crate::io::SimVfs {
        let vfs = crate::io::SimVfs::new();
        let dir = crate::log_dir(std::path::Path::new(FUZZ_DB));
        use crate::io::Vfs;
        let _ = vfs.create_dir_all(&dir);
        while bytes.len() >= 7 {
            let kind = bytes[0] % 3;
            let id = u16::from_le_bytes([bytes[1], bytes[2]]) as u64;
            let len = u32::from_le_bytes(bytes[3..7].try_into().unwrap()) as usize;
            let len = len.min(bytes.len() - 7);
            let name = match kind {
                0 => crate::segment::segment_name(id),
                1 => format!("spare-{id}.tmp"),
                _ => crate::segment::LOCK_FILE.to_string(),
            };
            vfs.set_contents(&dir.join(name), bytes[7..7 + len].to_vec());
            bytes = &bytes[7 + len..];
        }
        vfs
    }

    /// The inverse of [`log_dir_from_bytes`] for segments and spares, to
    /// write a corpus from a real log: (kind, id, contents).
    pub fn bytes_from_log_dir(files: &[(u8, u16, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, id, data) in files {
            out.push(*kind);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }
}
