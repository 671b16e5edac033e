//! The coordinator of one log (`Shared`), the handle callers hold (`Log`), and
//! the process-wide registry that makes a second open of the same log share
//! the first one's coordinator.

use std::any::Any;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::{FallbackReason, Mode, Options, Resolved, SyncPolicy, MAX_EPOCH_BODY_BYTES};
use crate::epoch::{encode_txn, encode_txn_reference, validate_txn};
use crate::error::{Error, Result};
use crate::io::{RealVfs, Vfs};
use crate::lane::{lane_of_current_thread, Lanes};
use crate::recovery::{scan, RecoverOptions, RecoveryReport};
use crate::segment::{parse_segment_name, parse_spare_name, LOCK_FILE};
use crate::stats::{Counters, Stats};
use crate::{log_dir, Txn};

/// Epoch bookkeeping shared by writers, waiters and the flusher.
pub(crate) struct EpochState {
    /// The epoch new batches are appended to.
    pub filling: u64,
    /// The highest epoch a waiter (or a writer out of room) needs sealed.
    pub seal_requested: u64,
    /// Every epoch up to this one is durable.
    pub durable: u64,
    /// Set once a write or sync failed: the message, the OS error, and the
    /// first epoch that was not made durable.
    pub poison: Option<(String, std::io::ErrorKind, u64)>,
    pub closing: bool,
    pub flusher_exited: bool,
    /// When the first record of the epoch with this parity was appended.
    pub first_at: [Option<Instant>; 2],
    /// The epoch being written and the lowest commit sequence in it.
    pub inflight_min_seq: Option<u64>,
    /// The highest commit sequence among durable batches.
    pub durable_max_seq: Option<u64>,
    /// Under `normal`: when the oldest write not yet synced was made.
    pub unsynced_since: Option<Instant>,
}

/// A segment that holds epochs: its file and first epoch.
#[derive(Clone, Debug)]
pub(crate) struct SegMeta {
    pub first_epoch: u64,
    pub path: PathBuf,
}

/// A preallocated (or recycled) file waiting to become a segment.
#[derive(Debug)]
pub(crate) struct Spare {
    pub path: PathBuf,
    /// Holds stale frames from an earlier life.
    pub recycled: bool,
}

/// The segment files of the log.
pub(crate) struct Catalog {
    /// Segments holding epochs, ascending; the last is being written.
    pub segments: Vec<SegMeta>,
    pub next_id: u64,
    pub spares: VecDeque<Spare>,
    pub next_spare: u64,
    pub preparing: bool,
    pub stop: bool,
}

/// Spares kept ready (preallocated or recycled); more recycled files are
/// deleted.
pub(crate) const SPARES_KEPT: usize = 2;

/// The coordinator of one open log.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub vfs: Arc<dyn Vfs>,
    pub cfg: Resolved,
    pub lanes: Arc<Lanes>,
    /// Bytes appended to the epoch of each parity (the filling one, and while
    /// a seal is in progress the one being sealed).
    pub epoch_bytes: [AtomicU64; 2],
    pub state: Mutex<EpochState>,
    pub flusher_cv: Condvar,
    /// Waiters sleep on the condition variable of their epoch's parity. At
    /// most one epoch is being written at a time, so the waiters of the
    /// epoch in flight and of the filling one are on different variables:
    /// publishing an epoch wakes exactly its own waiters (and one waiter of
    /// the next epoch, to lead its flush), not every sleeping committer.
    pub durable_cv: [Condvar; 2],
    pub poisoned: AtomicBool,
    pub closing: AtomicBool,
    /// Held by the sealer while it swaps lane buffers, so that readers of the
    /// commit-sequence watermark see either all of an epoch's lanes or none.
    pub seal_lock: Mutex<()>,
    pub catalog: Mutex<Catalog>,
    pub catalog_cv: Condvar,
    /// The flush lock: its holder (a leading committer or the background
    /// flusher) is the only thread that seals, writes and syncs.
    pub flush: Mutex<crate::flusher::FlushState>,
    /// The mode in force: `Mode as u8`.
    mode: AtomicU8,
    fallback: Mutex<Option<(FallbackReason, String)>>,
    pub counters: Counters,
    shadow_counter: AtomicU64,
    inject_encoding_fault: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
}

fn mode_to_u8(m: Mode) -> u8 {
    match m {
        Mode::Auto => 0,
        Mode::Conservative => 1,
        Mode::ShadowCompare => 2,
    }
}

fn mode_from_u8(v: u8) -> Mode {
    match v {
        0 => Mode::Auto,
        1 => Mode::Conservative,
        _ => Mode::ShadowCompare,
    }
}

impl Shared {
    pub fn mode(&self) -> Mode {
        mode_from_u8(self.mode.load(Ordering::Acquire))
    }

    /// Leaves the configured mode for the conservative path, once, recording
    /// why.
    pub fn fall_back(&self, reason: FallbackReason, detail: String) {
        let mut f = self.fallback.lock();
        if f.is_none() {
            *f = Some((reason, detail));
        }
        self.mode
            .store(mode_to_u8(Mode::Conservative), Ordering::Release);
    }

    /// Records a failed write or sync: nothing is acknowledged from `epoch`
    /// on, every waiter is woken, every later call fails.
    pub fn poison(&self, epoch: u64, context: String, err: &std::io::Error) {
        let mut st = self.state.lock();
        if st.poison.is_none() {
            st.poison = Some((format!("{context}: {err}"), err.kind(), epoch));
        }
        self.poisoned.store(true, Ordering::Release);
        drop(st);
        self.durable_cv.iter().for_each(|cv| {
            cv.notify_all();
        });
        self.flusher_cv.notify_all();
        for lane in &self.lanes.lanes {
            // Take the lane lock so a writer between its check and its wait
            // cannot miss the wakeup.
            let _g = lane.buf.lock();
            lane.swapped.notify_all();
        }
    }

    fn poisoned_error(&self) -> Error {
        let st = self.state.lock();
        match &st.poison {
            Some((msg, _, _)) => Error::Poisoned(msg.clone()),
            None => Error::Internal("poisoned flag without a poison record".into()),
        }
    }

    /// Asks the flusher to seal `epoch` as soon as it is idle.
    pub fn request_seal(&self, epoch: u64) {
        let mut st = self.state.lock();
        if st.seal_requested < epoch {
            st.seal_requested = epoch;
            self.flusher_cv.notify_one();
        }
    }

    /// Appends `txn` to the caller's lane. `seal_now` marks a commit that is
    /// about to wait (and lead the flush): it does not wake the background
    /// flusher for the epoch's timer, and takes the state lock only when it
    /// must (first record of the epoch, batch threshold crossed).
    fn submit(&self, txn: &Txn<'_>, seal_now: bool) -> Result<u64> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error());
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let len = validate_txn(txn)?;
        let mode = self.mode();
        let index = if mode == Mode::Conservative {
            0
        } else {
            lane_of_current_thread(&self.lanes)
        };
        let lane = &self.lanes.lanes[index];
        let mut g = lane.buf.lock();
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                drop(g);
                return Err(self.poisoned_error());
            }
            // The epoch is read under the lane lock the sealer takes.
            let epoch = g.epoch;
            let slot = &self.epoch_bytes[(epoch & 1) as usize];
            let prev = slot.fetch_add(len as u64, Ordering::AcqRel);
            if prev > 0 && prev + len as u64 > MAX_EPOCH_BODY_BYTES as u64 {
                // The epoch is full: wait for the sealer to move this lane on
                // (bounded memory; the batch is never split).
                slot.fetch_sub(len as u64, Ordering::AcqRel);
                self.request_seal(epoch);
                lane.swapped.wait(&mut g);
                continue;
            }
            let start = g.bytes.len();
            let mut crc = encode_txn(&mut g.bytes, txn, len);
            // A plain load first: a swap on every append would make every
            // writer thread write this shared cache line.
            if self.inject_encoding_fault.load(Ordering::Relaxed)
                && self.inject_encoding_fault.swap(false, Ordering::Relaxed)
            {
                let at = g.bytes.len() - 1;
                g.bytes[at] ^= 0x5a;
            }
            if mode == Mode::ShadowCompare && self.sampled() {
                self.counters
                    .shadow_compares
                    .fetch_add(1, Ordering::Relaxed);
                let reference = encode_txn_reference(txn);
                if g.bytes[start..] != reference[..] {
                    let at = g.bytes[start..]
                        .iter()
                        .zip(&reference)
                        .position(|(a, b)| a != b)
                        .unwrap_or(reference.len());
                    g.bytes.truncate(start);
                    g.bytes.extend_from_slice(&reference);
                    crc = u32::from_le_bytes(reference[..4].try_into().unwrap());
                    self.fall_back(
                        FallbackReason::CertificateChecksumMismatch,
                        format!(
                            "transaction {}: lane encoding differs from the conservative encoding at record byte {at}; the conservative bytes were logged",
                            txn.txn_id
                        ),
                    );
                }
            }
            g.crcs.push(crc);
            g.txns += 1;
            g.frames += txn.frames.len() as u32;
            g.min_seq = g.min_seq.min(txn.commit_seq);
            if txn.commit_seq >= g.max_seq {
                g.max_seq = txn.commit_seq;
                g.db_size_at_max = txn
                    .frames
                    .iter()
                    .rev()
                    .map(|f| f.db_size_if_commit)
                    .find(|&s| s != 0)
                    .unwrap_or(0);
            }
            let now_total = prev + len as u64;
            let first = prev == 0;
            let crossed = prev < self.cfg.max_batch_bytes as u64
                && now_total >= self.cfg.max_batch_bytes as u64;
            if first || crossed {
                // Under the lane lock, so the sealer cannot have reset this
                // epoch's timer yet.
                let mut st = self.state.lock();
                if first {
                    st.first_at[(epoch & 1) as usize].get_or_insert_with(Instant::now);
                }
                // A committer (`seal_now`) registers its request and leads
                // the flush itself in `wait_durable` (or hands it off if
                // another thread holds the flush lock): the background
                // flusher is woken only for the timer of a plain submit or a
                // full batch.
                if !seal_now || crossed {
                    self.flusher_cv.notify_one();
                }
            }
            return Ok(epoch);
        }
    }

    fn sampled(&self) -> bool {
        let n = self.shadow_counter.fetch_add(1, Ordering::Relaxed);
        (n % 1000) < self.cfg.shadow_compare_per_mille as u64
    }

    fn wait_durable(&self, epoch: u64, timeout: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut st = self.state.lock();
        if epoch > st.filling {
            return Err(Error::invalid(format!(
                "epoch {epoch} has not been issued yet (the current epoch is {})",
                st.filling
            )));
        }
        loop {
            if st.durable >= epoch {
                drop(st);
                self.counters
                    .commit_wait
                    .record(start.elapsed().as_micros() as u64);
                return Ok(());
            }
            if let Some((msg, kind, failed)) = &st.poison {
                return Err(if epoch >= *failed {
                    Error::io(
                        format!("epoch {epoch} was not made durable"),
                        std::io::Error::new(*kind, msg.clone()),
                    )
                } else {
                    Error::Poisoned(msg.clone())
                });
            }
            if st.flusher_exited {
                return Err(Error::Closed);
            }
            if st.seal_requested < epoch {
                st.seal_requested = epoch;
            }
            // Lead the flush when nobody is flushing. (try_lock while holding
            // the state lock cannot deadlock: it never blocks.)
            if let Some(mut fs) = self.flush.try_lock() {
                drop(st);
                crate::flusher::lead(self, &mut fs, epoch);
                drop(fs);
                crate::flusher::hand_off(self);
                st = self.state.lock();
                continue;
            }
            match deadline {
                None => self.durable_cv[(epoch & 1) as usize].wait(&mut st),
                Some(d) => {
                    if self.durable_cv[(epoch & 1) as usize]
                        .wait_until(&mut st, d)
                        .timed_out()
                        && st.durable < epoch
                    {
                        return Err(Error::Timeout {
                            epoch,
                            durable: st.durable,
                            waited_ms: start.elapsed().as_millis() as u64,
                        });
                    }
                }
            }
        }
    }

    fn durable_commit_seq(&self) -> u64 {
        let _seal = self.seal_lock.lock();
        let mut cap = u64::MAX;
        for lane in &self.lanes.lanes {
            let g = lane.buf.lock();
            if g.txns > 0 {
                cap = cap.min(g.min_seq);
            }
        }
        let st = self.state.lock();
        if let Some(m) = st.inflight_min_seq {
            cap = cap.min(m);
        }
        match st.durable_max_seq {
            None => 0,
            Some(d) if cap == u64::MAX => d,
            Some(d) => d.min(cap.saturating_sub(1)),
        }
    }

    fn checkpoint(&self, through: u64) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error());
        }
        let durable = self.state.lock().durable;
        if through > durable {
            return Err(Error::invalid(format!(
                "cannot checkpoint through epoch {through}: only epochs up to {durable} are durable"
            )));
        }
        let mut cat = self.catalog.lock();
        let mut changed = false;
        // Whole segments only, oldest first, never the one being written: the
        // log stays a contiguous run of epochs whatever point a crash hits.
        while cat.segments.len() > 1 && cat.segments[1].first_epoch - 1 <= through {
            let seg = cat.segments.remove(0);
            changed = true;
            if cat.spares.len() < SPARES_KEPT {
                let n = cat.next_spare;
                cat.next_spare += 1;
                let to = self.dir.join(format!("spare-{n}.tmp"));
                self.vfs.rename(&seg.path, &to).map_err(|e| {
                    Error::io(
                        format!("recycling {} as {}", seg.path.display(), to.display()),
                        e,
                    )
                })?;
                cat.spares.push_back(crate::log::Spare {
                    path: to,
                    recycled: true,
                });
                self.counters
                    .segments_recycled
                    .fetch_add(1, Ordering::Relaxed);
                self.catalog_cv.notify_all();
            } else {
                self.vfs
                    .remove_file(&seg.path)
                    .map_err(|e| Error::io(format!("deleting {}", seg.path.display()), e))?;
                self.counters
                    .segments_deleted
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(cat);
        if changed && self.cfg.sync != SyncPolicy::Off {
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io(format!("syncing directory {}", self.dir.display()), e))?;
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        let lane_backlog_bytes = self
            .lanes
            .lanes
            .iter()
            .map(|l| l.buf.lock().bytes.len() as u64)
            .collect();
        let durable_commit_seq = self.durable_commit_seq();
        let st = self.state.lock();
        let (fallback, fallback_detail) = match &*self.fallback.lock() {
            Some((r, d)) => (Some(*r), d.clone()),
            None => (None, String::new()),
        };
        let c = &self.counters;
        Stats {
            mode: self.mode(),
            configured_mode: self.cfg.mode,
            sync: self.cfg.sync,
            fallback,
            fallback_detail,
            lanes: self.lanes.lanes.len(),
            current_epoch: st.filling,
            durable_epoch: st.durable,
            durable_commit_seq,
            epochs: c.epochs.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            segments_recycled: c.segments_recycled.load(Ordering::Relaxed),
            segments_deleted: c.segments_deleted.load(Ordering::Relaxed),
            shadow_compares: c.shadow_compares.load(Ordering::Relaxed),
            lane_backlog_bytes,
            sync_latency: c.sync_latency.summary(),
            commit_wait_latency: c.commit_wait.summary(),
            txns_per_epoch: c.txns_per_epoch.summary(),
            poisoned: st.poison.is_some(),
        }
    }

    /// Flushes what is buffered, stops the threads, releases the lock.
    fn shutdown(&self) -> Result<()> {
        self.closing.store(true, Ordering::Release);
        {
            let mut st = self.state.lock();
            st.closing = true;
            self.flusher_cv.notify_all();
        }
        {
            let mut cat = self.catalog.lock();
            cat.stop = true;
            self.catalog_cv.notify_all();
        }
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.threads.lock());
        let mut panicked = false;
        for t in threads {
            panicked |= t.join().is_err();
        }
        self._lock.lock().take();
        if panicked {
            return Err(Error::Internal("a pwal background thread panicked".into()));
        }
        let st = self.state.lock();
        match &st.poison {
            Some((msg, _, _)) => Err(Error::Poisoned(msg.clone())),
            None => Ok(()),
        }
    }
}

struct OpenLog {
    vfs_id: usize,
    dir: PathBuf,
    shared: Arc<Shared>,
    handles: usize,
}

/// The logs open in this process. A second open of a log shares the first
/// one's coordinator: two coordinators would each take the file lock and
/// write their own segments.
static REGISTRY: Mutex<Vec<OpenLog>> = Mutex::new(Vec::new());

fn registry_key(vfs: &dyn Vfs, dir: &Path) -> (usize, PathBuf) {
    (vfs.instance_id(), vfs.canonical(dir))
}

/// Takes the log's lock for a reader, unless this process has the log open.
pub(crate) fn lock_for_reading(
    vfs: &dyn Vfs,
    dir: &Path,
) -> Result<Option<Box<dyn Any + Send + Sync>>> {
    let (id, key) = registry_key(vfs, dir);
    let reg = REGISTRY.lock();
    if reg.iter().any(|o| o.vfs_id == id && o.dir == key) {
        return Ok(None);
    }
    take_lock(vfs, dir).map(Some)
}

fn take_lock(vfs: &dyn Vfs, dir: &Path) -> Result<Box<dyn Any + Send + Sync>> {
    let path = dir.join(LOCK_FILE);
    vfs.lock(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::Locked(format!(
                "{} is held by another process (one writer process per log)",
                path.display()
            ))
        } else {
            Error::io(format!("locking {}", path.display()), e)
        }
    })
}

/// An open log. `Send + Sync`: share it between writer threads by reference
/// or in an `Arc`.
pub struct Log {
    shared: Arc<Shared>,
    closed: bool,
}

impl Log {
    /// Opens (creating if needed) the log of the database at `db_path`, in the
    /// directory `<db_path>-pwal`. Epochs continue after the last one on disk;
    /// no existing file is truncated or overwritten.
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
        let mut reg = REGISTRY.lock();
        vfs.create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let (vfs_id, key) = registry_key(&*vfs, &dir);
        if let Some(o) = reg.iter_mut().find(|o| o.vfs_id == vfs_id && o.dir == key) {
            if o.shared.poisoned.load(Ordering::Acquire) {
                return Err(o.shared.poisoned_error());
            }
            o.handles += 1;
            return Ok(Log {
                shared: o.shared.clone(),
                closed: false,
            });
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            if cfg.sync != SyncPolicy::Off {
                vfs.sync_dir(parent)
                    .map_err(|e| Error::io(format!("syncing directory {}", parent.display()), e))?;
            }
        }
        let lock = take_lock(&*vfs, &dir)?;
        let shared = start(dir, vfs, cfg, lock)?;
        reg.push(OpenLog {
            vfs_id,
            dir: key,
            shared: shared.clone(),
            handles: 1,
        });
        Ok(Log {
            shared,
            closed: false,
        })
    }

    /// Appends a transaction to the calling thread's lane and returns the
    /// epoch it belongs to. Does not wait for durability.
    pub fn submit(&self, txn: &Txn<'_>) -> Result<u64> {
        self.shared.submit(txn, false)
    }

    /// Blocks until `epoch` is durable, the timeout passes (`None`: no
    /// timeout), or the log fails.
    pub fn wait_durable(&self, epoch: u64, timeout: Option<Duration>) -> Result<()> {
        self.shared.wait_durable(epoch, timeout)
    }

    /// [`Log::submit`] then [`Log::wait_durable`]; returns the epoch.
    pub fn commit(&self, txn: &Txn<'_>, timeout: Option<Duration>) -> Result<u64> {
        let e = self.shared.submit(txn, true)?;
        self.shared.wait_durable(e, timeout)?;
        Ok(e)
    }

    /// Lets the log delete or recycle every segment whose epochs are all at
    /// or below `through_epoch` (which must be durable). Safe while writers
    /// append.
    pub fn checkpoint(&self, through_epoch: u64) -> Result<()> {
        self.shared.checkpoint(through_epoch)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    pub fn durable_epoch(&self) -> u64 {
        self.shared.state.lock().durable
    }

    /// The highest commit sequence `s` such that every batch submitted so far
    /// with a commit sequence up to `s` is durable (0 when none is).
    pub fn durable_commit_seq(&self) -> u64 {
        self.shared.durable_commit_seq()
    }

    /// Closes this handle. The last handle of a log flushes what is buffered
    /// (synced under `full` and `normal`), stops the flusher and releases the
    /// lock; it reports an earlier I/O failure as [`Error::Poisoned`].
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut reg = REGISTRY.lock();
        let pos = reg
            .iter()
            .position(|o| Arc::ptr_eq(&o.shared, &self.shared))
            .ok_or_else(|| Error::Internal("open log missing from the registry".into()))?;
        reg[pos].handles -= 1;
        if reg[pos].handles > 0 {
            return Ok(());
        }
        reg.remove(pos);
        // Shut down while holding the registry, so that a concurrent reopen of
        // the same log waits for the lock to be released.
        self.shared.shutdown()
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

/// Reads the tail of the log, builds the coordinator and starts its threads.
fn start(
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    cfg: Resolved,
    lock: Box<dyn Any + Send + Sync>,
) -> Result<Arc<Shared>> {
    let mut report = RecoveryReport::default();
    let end = scan(
        &*vfs,
        &dir,
        &RecoverOptions::default(),
        true,
        None,
        &mut report,
    )?;
    // The log continues right after its last valid epoch. Frames found
    // after a torn one (written but never synced, so no later frame vouches
    // for the torn epoch) are superseded: the new segment starts at the
    // torn epoch, which is what tells recovery to skip the rest of the old
    // one. Epochs are bounded (epoch::MAX_EPOCH), so this cannot wrap.
    let next_epoch = end.last_epoch + 1;
    // What is on disk is synced below before anything is written (except
    // under `off`, which never syncs): every epoch up to the last valid one
    // is durable from then on, and the first frames say so.
    let synced_through = if cfg.sync == SyncPolicy::Off {
        0
    } else {
        end.last_epoch
    };
    let checkpoint_epoch = end.checkpoint_epoch;

    let found = end.segments;
    let segments: Vec<SegMeta> = found
        .iter()
        .filter_map(|s| {
            s.header.map(|h| SegMeta {
                first_epoch: h.first_epoch,
                path: s.path.clone(),
            })
        })
        .collect();
    // The tail just scanned may never have been synced (its fsync failed, or
    // the last process died before it): it is read back from the kernel's
    // cache. New epochs go after it, so it must be durable first, or a power
    // loss would keep them and lose it: an epoch gap. So is any earlier
    // segment holding an epoch no frame says was synced (written under
    // `off`): the first frame will say every epoch up to the last is durable.
    if cfg.sync != SyncPolicy::Off {
        for (k, s) in segments.iter().enumerate() {
            let uncovered = segments
                .get(k + 1)
                .is_none_or(|n| n.first_epoch.saturating_sub(1) > end.synced_through);
            if uncovered {
                vfs.open(&s.path, false)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| Error::io(format!("syncing {}", s.path.display()), e))?;
            }
        }
    }
    let mut next_id = found.iter().map(|s| s.id).max().unwrap_or(0) + 1;
    let mut spares = VecDeque::new();
    let mut next_spare = 0;
    for name in vfs
        .list_dir(&dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
    {
        if let Some(n) = parse_spare_name(&name) {
            next_spare = next_spare.max(n + 1);
            let path = dir.join(&name);
            let len = vfs
                .open_read(&path)
                .and_then(|f| f.len())
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if len == cfg.segment_bytes && spares.len() < SPARES_KEPT {
                spares.push_back(Spare {
                    path,
                    recycled: true,
                });
            } else {
                vfs.remove_file(&path)
                    .map_err(|e| Error::io(format!("deleting {}", path.display()), e))?;
            }
        } else if let Some(id) = parse_segment_name(&name) {
            next_id = next_id.max(id + 1);
        }
    }

    let mode = if cfg.forced_by_operator {
        Mode::Conservative
    } else {
        cfg.mode
    };
    let durable = next_epoch - 1;
    let shared = Arc::new(Shared {
        lanes: Lanes::new(cfg.lanes, next_epoch),
        dir,
        vfs,
        epoch_bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        state: Mutex::new(EpochState {
            filling: next_epoch,
            seal_requested: durable,
            durable,
            poison: None,
            closing: false,
            flusher_exited: false,
            first_at: [None, None],
            inflight_min_seq: None,
            durable_max_seq: None,
            unsynced_since: None,
        }),
        flusher_cv: Condvar::new(),
        durable_cv: [Condvar::new(), Condvar::new()],
        poisoned: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        seal_lock: Mutex::new(()),
        catalog: Mutex::new(Catalog {
            segments,
            next_id,
            spares,
            next_spare,
            preparing: false,
            stop: false,
        }),
        catalog_cv: Condvar::new(),
        flush: Mutex::new(crate::flusher::FlushState::new(
            synced_through,
            checkpoint_epoch,
        )),
        mode: AtomicU8::new(mode_to_u8(mode)),
        fallback: Mutex::new(cfg.forced_by_operator.then(|| {
            (
                FallbackReason::OperatorForced,
                "PWAL_MODE=conservative".to_string(),
            )
        })),
        counters: Counters::new(),
        shadow_counter: AtomicU64::new(0),
        inject_encoding_fault: AtomicBool::new(false),
        threads: Mutex::new(Vec::new()),
        _lock: Mutex::new(Some(lock)),
        cfg,
    });
    let flusher = {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("pwal-flusher".into())
            .spawn(move || crate::flusher::run(s))
            .map_err(|e| Error::io("starting the flusher thread", e))?
    };
    let preparer = {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("pwal-prealloc".into())
            .spawn(move || crate::flusher::prepare_spares(s))
            .map_err(|e| Error::io("starting the preallocation thread", e))?
    };
    shared.threads.lock().extend([flusher, preparer]);
    Ok(shared)
}
