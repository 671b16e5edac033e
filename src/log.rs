//! The handle callers hold (`Log`): glue between the public API and the
//! coordinator (`coordinator.rs`), with the fork check of `registry.rs`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Options;
use crate::coordinator::{start, Shared};
use crate::error::Result;
use crate::io::{RealVfs, Vfs};
use crate::stats::Stats;
use crate::{log_dir, Txn};

/// An open log. `Send + Sync`: share it between writer threads by reference
/// or in an `Arc`.
pub struct Log {
    shared: Arc<Shared>,
    closed: bool,
}

impl Log {
    /// Opens (creating if needed) the log of the database at `db_path`, in the
    /// directory `<db_path>-pwal`. Epochs continue after the last one on disk;
    /// no existing file is truncated or overwritten. A second open of a log
    /// open in this process shares it, and fails with [`Error::Invalid`] if
    /// its options (after defaults and the environment) differ in any field
    /// that matters (see `pwal_open` in `pwal.h` for the list).
    pub fn open(db_path: impl AsRef<Path>, options: &Options) -> Result<Log> {
        Log::open_with_vfs(db_path, options, Arc::new(RealVfs))
    }

    /// [`Log::open`] over any file system (tests use the simulated one).
    pub fn open_with_vfs(
        db_path: impl AsRef<Path>,
        options: &Options,
        vfs: Arc<dyn Vfs>,
    ) -> Result<Log> {
        let cfg = options.resolve()?;
        let dir = log_dir(db_path.as_ref());
        let shared = crate::registry::open(dir, vfs, cfg, start)?;
        Ok(Log {
            shared,
            closed: false,
        })
    }

    /// Appends a transaction to the calling thread's lane and returns the
    /// epoch it belongs to. Does not wait for durability.
    pub fn submit(&self, txn: &Txn<'_>) -> Result<u64> {
        self.live()?.submit(txn, 0, false)
    }

    /// [`Log::submit`] for a transaction of the file `file_id`: the
    /// engine's number for one of the files whose transactions share this
    /// log (recovery gives it back in [`Record::file_id`](crate::Record)).
    /// [`Log::submit`] is file 0.
    pub fn submit_file(&self, file_id: u32, txn: &Txn<'_>) -> Result<u64> {
        self.live()?.submit(txn, file_id, false)
    }

    /// Blocks until `epoch` is durable, the timeout passes (`None`: no
    /// timeout), or the log fails.
    pub fn wait_durable(&self, epoch: u64, timeout: Option<Duration>) -> Result<()> {
        let shared = self.live()?;
        let start = std::time::Instant::now();
        shared.wait_durable(epoch, timeout)?;
        archive_durable_wait(shared, epoch, timeout, start)
    }

    /// Returns once everything submitted before the call is written and
    /// fdatasynced, whatever the sync policy (under `normal` this is how an
    /// engine makes its log power-safe before it writes pages home), the
    /// timeout passes, or the log fails.
    pub fn flush(&self, timeout: Option<Duration>) -> Result<()> {
        self.live()?.flush(timeout)
    }

    /// [`Log::submit`] then [`Log::wait_durable`]; returns the epoch.
    pub fn commit(&self, txn: &Txn<'_>, timeout: Option<Duration>) -> Result<u64> {
        self.commit_file(0, txn, timeout)
    }

    /// [`Log::commit`] for a transaction of the file `file_id` (see
    /// [`Log::submit_file`]).
    pub fn commit_file(
        &self,
        file_id: u32,
        txn: &Txn<'_>,
        timeout: Option<Duration>,
    ) -> Result<u64> {
        let shared = self.live()?;
        let start = std::time::Instant::now();
        let e = shared.submit(txn, file_id, true)?;
        shared.wait_durable(e, timeout)?;
        archive_durable_wait(shared, e, timeout, start)?;
        Ok(e)
    }

    /// Lets the log delete or recycle every segment whose epochs are all at
    /// or below `through_epoch` (which must be durable). Safe while writers
    /// append.
    pub fn checkpoint(&self, through_epoch: u64) -> Result<()> {
        self.live()?.checkpoint(through_epoch)
    }

    /// archive: what the archiver has done and how far behind it is;
    /// `None` when the log has no archive URL.
    pub fn archive_status(&self) -> Result<Option<crate::archive::ArchiveStatus>> {
        Ok(self.live()?.archive.get().map(|a| a.status()))
    }

    /// archive: commits wait for the archive (`archive_durable`).
    pub fn archive_durable(&self) -> bool {
        self.shared.cfg.archive.as_ref().is_some_and(|a| a.durable)
    }

    /// archive: blocks until every epoch up to `epoch` is archived, the
    /// timeout passes ([`Error::Timeout`](crate::Error::Timeout)), or the log
    /// closes. [`Error::Invalid`](crate::Error::Invalid) when the log has no
    /// archive URL, or `epoch` was never handed out.
    pub fn wait_archived(&self, epoch: u64, timeout: Option<Duration>) -> Result<()> {
        let shared = self.live()?;
        let Some(a) = shared.archive.get() else {
            return Err(crate::Error::invalid("the log has no archive_url"));
        };
        let filling = shared.state.lock().filling;
        if epoch > filling {
            return Err(crate::Error::invalid(format!(
                "epoch {epoch} was never handed out (the filling epoch is {filling})"
            )));
        }
        a.wait_archived(shared, epoch, timeout)
    }

    /// Panics in a `fork()`ed child on a log opened before the fork (see
    /// [`Log::check_not_forked`]).
    pub fn stats(&self) -> Stats {
        self.live_or_panic("stats").stats()
    }

    /// Panics in a `fork()`ed child on a log opened before the fork.
    pub fn durable_epoch(&self) -> u64 {
        self.live_or_panic("durable_epoch").state.lock().durable
    }

    /// The highest commit sequence `s` such that every batch submitted so far
    /// with a commit sequence up to `s` is durable (0 when none is). Panics in
    /// a `fork()`ed child on a log opened before the fork.
    pub fn durable_commit_seq(&self) -> u64 {
        self.live_or_panic("durable_commit_seq")
            .durable_commit_seq()
    }

    /// Fails with [`Error::Forked`] when this handle was inherited across
    /// `fork()` (this process is a child of the one that opened the log). In
    /// such a child every call that returns a `Result` fails the same way and
    /// does nothing, the others panic, and `close` (or drop) frees the handle
    /// without touching the parent's log: the log's threads exist only in the
    /// parent, so the memory they own is leaked in the child.
    pub fn check_not_forked(&self) -> Result<()> {
        self.live().map(drop)
    }

    /// The coordinator, unless it was inherited across `fork()`: one relaxed
    /// load of the fork generation, no `getpid()`.
    #[inline]
    fn live(&self) -> Result<&Shared> {
        if crate::registry::inherited(&self.shared) {
            return Err(crate::registry::forked_error());
        }
        Ok(&self.shared)
    }

    fn live_or_panic(&self, what: &str) -> &Shared {
        match self.live() {
            Ok(s) => s,
            Err(e) => panic!("Log::{what}: {e}"),
        }
    }

    /// Closes this handle. The last handle of a log flushes what is buffered
    /// (synced under `full` and `normal`), stops the flusher and releases the
    /// lock; it reports an earlier I/O failure as [`Error::Poisoned`]. Another
    /// handle only gives up its share: nothing is flushed. In a `fork()`ed
    /// child, a handle opened before the fork is freed without any of that,
    /// and the result is [`Error::Forked`].
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        crate::registry::close(&self.shared)
    }

    /// Test hook: the next flush panics after it sealed an epoch and before
    /// it wrote it, as a bug on the flush path would.
    #[doc(hidden)]
    pub fn debug_inject_flush_panic(&self) {
        self.shared
            .inject_flush_panic
            .store(true, Ordering::Relaxed);
    }

    /// Test hook: the next seal pauses for `ms` milliseconds after it moved
    /// the filling epoch on and before it swaps the lanes, as a sealer
    /// preempted there would.
    #[doc(hidden)]
    pub fn debug_inject_seal_pause(&self, ms: u64) {
        self.shared
            .inject_seal_pause_ms
            .store(ms, Ordering::Relaxed);
    }

    /// Test hook: while `hold` is set, the preparation thread stops before
    /// it makes its next spare, as one still filling when the log needs a
    /// segment would be; [`Log::debug_preparer_held`] says when it got there.
    #[doc(hidden)]
    pub fn debug_hold_preparer(&self, hold: bool) {
        self.shared
            .inject_hold_preparer
            .store(hold, Ordering::Release);
    }

    /// Test hook: spare segments ready to become segments.
    #[doc(hidden)]
    pub fn debug_spares_ready(&self) -> usize {
        self.shared.catalog.lock().spares.len()
    }

    /// Test hook: the preparation thread is held by
    /// [`Log::debug_hold_preparer`].
    #[doc(hidden)]
    pub fn debug_preparer_held(&self) -> bool {
        self.shared.preparer_held.load(Ordering::Acquire)
    }

    /// Test hook: the preparation thread is waiting with no spare to make
    /// (one is ready, or the log is writing frames of a megabyte or more,
    /// for which it makes none).
    #[doc(hidden)]
    pub fn debug_preparer_idle(&self) -> bool {
        self.shared.preparer_idle.load(Ordering::Acquire)
    }

    /// Test hook: the log is in a spell of large frames, for which the
    /// preparer makes no spare.
    #[doc(hidden)]
    pub fn debug_large_frames(&self) -> bool {
        self.shared.large_frames.load(Ordering::Acquire)
    }

    /// Test hook: bytes of lane buffer capacity held (in the lanes and in
    /// the flusher's pool of emptied buffers).
    #[doc(hidden)]
    pub fn debug_lane_capacity(&self) -> usize {
        let lanes: usize = self
            .shared
            .lanes
            .lanes
            .iter()
            .map(|l| l.buf.lock().capacity())
            .sum();
        lanes + self.shared.flush.lock().pooled_capacity()
    }

    /// Test hook: corrupts the next lane encoding, as a bug in the lane path
    /// would, so that shadow-compare mode can be seen catching it.
    #[doc(hidden)]
    pub fn debug_inject_lane_encoding_fault(&self) {
        self.shared
            .inject_encoding_fault
            .store(true, Ordering::Relaxed);
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

/// archive: with `archive_durable`, an epoch is acknowledged once it is
/// archived too, within what is left of `timeout`.
fn archive_durable_wait(
    shared: &crate::coordinator::Shared,
    epoch: u64,
    timeout: Option<Duration>,
    start: std::time::Instant,
) -> Result<()> {
    match shared.archive.get() {
        Some(a) if a.cfg.durable => {
            let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
            a.wait_archived(shared, epoch, left)
        }
        _ => Ok(()),
    }
}
