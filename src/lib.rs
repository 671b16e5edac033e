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

mod config;
mod epoch;
mod error;
pub mod ffi;
mod flusher;
pub mod io;
mod lane;
mod log;
mod recovery;
mod segment;
mod stats;

pub use config::{
    FallbackReason, Mode, Options, SyncPolicy, MAX_EPOCH_BODY_BYTES, MAX_LANES, MAX_PAGE_BYTES,
    MAX_TXN_BYTES, MAX_TXN_FRAMES,
};
pub use error::{Error, Result};
pub use log::Log;
pub use recovery::{recover, recover_into, recover_with_vfs, RecoverOptions, RecoveryReport};
pub use stats::{LatencySummary, Stats};

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
}

/// The directory that holds the log of the database at `db_path`:
/// `<db_path>-pwal`.
pub fn log_dir(db_path: &std::path::Path) -> std::path::PathBuf {
    let mut s = db_path.as_os_str().to_owned();
    s.push("-pwal");
    std::path::PathBuf::from(s)
}
