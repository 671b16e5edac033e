//! The coordinator of one log (`Shared`): the epoch state, the two
//! watermarks (written and synced), the waiters and who leads a flush, the
//! commit-sequence watermark, checkpoint's ordering, and start-up and
//! shutdown. The handle callers hold is `log.rs`; the segment files are the
//! store's (`store.rs`); sealing, writing and syncing are the flusher's.
//!
//! Lock order (a thread holding one may take only those below it):
//!
//! 1. `registry` (process-wide, held across open and the last close);
//! 2. `flush` (the flush lock: one sealer/writer at a time);
//! 3. `seal_lock` (held while lanes are swapped and by the commit-sequence
//!    watermark, so it sees all of an epoch's lanes or none);
//! 4. a lane's `buf` (one at a time);
//! 5. `blocked_seqs`, `pins`, `catalog`, `fallback` (leaves, never nested);
//! 6. `state` (the epoch state; a thread holding it takes no other lock,
//!    except `flush.try_lock`, which never blocks).
//!
//! `checkpoint` holds `catalog` across the file operations that remove
//! segments; the flusher takes `catalog` only briefly (next id, new segment)
//! and never while it holds `state`.

use std::any::Any;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::{FallbackReason, Mode, Resolved, MAX_RECORD_BYTES};
use crate::epoch::{encode_record, encode_record_reference, parts, validate_txn, RecordHead};
use crate::error::{Error, Result};
use crate::io::Vfs;
use crate::lane::{lane_of_current_thread, Lanes};
use crate::pins::Pins;
use crate::stats::{Counters, Stats};
use crate::store::Catalog;
use crate::trace::{TraceEvent, TraceKind};
use crate::Txn;

/// Epoch bookkeeping shared by writers, waiters and the flusher.
pub(crate) struct EpochState {
    /// The epoch new batches are appended to.
    pub filling: u64,
    /// The highest epoch a waiter (or a writer out of room) needs sealed.
    pub seal_requested: u64,
    /// Every epoch up to this one is acknowledged: written under `normal`
    /// and `off`, synced under `full`. `wait_durable` waits on it.
    pub durable: u64,
    /// Every epoch up to this one was written to the OS (`pwritev` returned).
    pub written: u64,
    /// Every epoch up to this one was made durable by an `fdatasync` that
    /// returned. Never ahead of `written`.
    pub synced: u64,
    /// The highest epoch the engine passed to `checkpoint`, or above it over
    /// epochs holding no record (the idle shrink): frames written from now
    /// on carry it.
    pub checkpoint_mark: u64,
    /// The checkpoint mark carried by the last frame written, and by the last
    /// frame synced: a segment may be removed only once a synced frame
    /// carries a mark covering it (recovery learns where the log begins from
    /// that mark).
    pub mark_written: u64,
    pub mark_synced: u64,
    /// Set once a write or sync failed: the message, the OS error, and the
    /// first epoch that was not made durable.
    pub poison: Option<Poison>,
    pub closing: bool,
    pub flusher_exited: bool,
    /// When the first record of the epoch with this parity was appended.
    pub first_at: [Option<Instant>; 2],
    /// The epoch being written and the lowest commit sequence in it.
    pub inflight_min_seq: Option<u64>,
    /// The highest commit sequence among durable batches.
    pub durable_max_seq: Option<u64>,
    /// Under `normal`: when the oldest write not yet synced was made (the
    /// background flusher syncs `normal_sync_interval` after it).
    pub unsynced_since: Option<Instant>,
    /// When the flusher releases idle lane buffers (set at each write).
    pub trim_due: Option<Instant>,
}

/// Why a log stopped: what failed, the OS error, and the first epoch that
/// was not made durable.
#[derive(Clone, Debug)]
pub(crate) struct Poison {
    pub msg: String,
    pub kind: std::io::ErrorKind,
    /// The errno, when the failure had one: waiters get it back.
    pub errno: Option<i32>,
    pub epoch: u64,
}

impl Poison {
    /// The failure as an error for one waiter.
    pub fn io_error(&self) -> std::io::Error {
        match self.errno {
            Some(n) => std::io::Error::from_raw_os_error(n),
            None => std::io::Error::new(self.kind, self.msg.clone()),
        }
    }
}

/// A waiter leads a flush only with at least this much of its timeout left;
/// with less it hands the flush to the background flusher.
pub(crate) const LEAD_MIN_BUDGET: Duration = Duration::from_millis(100);

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
    pub inject_encoding_fault: AtomicBool,
    /// Test hook: the next flush panics between seal and publish.
    pub inject_flush_panic: AtomicBool,
    /// Test hook: the next seal pauses this many milliseconds between
    /// moving `filling` on and swapping the lanes.
    pub inject_seal_pause_ms: AtomicU64,
    /// Test hook: the preparer holds before it makes its next spare (as one
    /// outrun by the log would be, still filling), and says so in
    /// `preparer_held`.
    pub inject_hold_preparer: AtomicBool,
    pub preparer_held: AtomicBool,
    /// A spell of large frames: the last segment was started for a frame
    /// of at least `store::LARGE_FRAME`, and since then small frames have
    /// not been written for long (`store::SMALL_RUN_BYTES`) and the log has
    /// not idled. The preparer zero-fills no spare meanwhile, and abandons
    /// the one it is filling: a stream of large frames appends to empty
    /// segments, and zeros written beside it would only double the bytes
    /// of a stream bound by the disk's bandwidth (while the log grew, every
    /// spare the preparer filled was outgrown before it was used). Changed
    /// only under the `catalog` lock, where the preparer waits on it.
    pub large_frames: AtomicBool,
    /// The preparer is waiting with nothing to do (every spare it should
    /// make is made, or the log is writing large frames).
    pub preparer_idle: AtomicBool,
    /// Commit sequences of batches waiting inside `submit` for room in a full
    /// epoch: submitted, yet in no lane buffer, so the commit-sequence
    /// watermark must not pass them.
    blocked_seqs: Mutex<Vec<u64>>,
    /// Epochs checkpoint keeps for transactions written in parts.
    pub(crate) pins: Mutex<Pins>,
    /// The highest commit-sequence watermark reported: it never goes back.
    published_seq: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
    /// The process's fork generation when the log was opened: a different
    /// one now means this is a `fork()`ed child, where the log is not ours.
    pub fork_generation: u64,
    /// archive: the archiver's side of the log, when it has an archive URL.
    pub archive: std::sync::OnceLock<Arc<crate::archive::Archive>>,
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
        // No lock is held across the trace: `stats` takes `state` then
        // `fallback`, so taking `state` under `fallback` would deadlock.
        let traced = self.cfg.trace.is_some().then(|| detail.clone());
        let first = {
            let mut f = self.fallback.lock();
            let first = f.is_none();
            if first {
                *f = Some((reason, detail));
            }
            first
        };
        self.mode
            .store(mode_to_u8(Mode::Conservative), Ordering::Release);
        if let (true, Some(t), Some(detail)) = (first, &self.cfg.trace, traced) {
            let epoch = self.state.lock().filling;
            t.emit(&TraceEvent::new(TraceKind::Fallback, epoch, &detail));
        }
    }

    /// Records a failed write or sync: nothing is acknowledged from `epoch`
    /// on, every waiter is woken, every later call fails.
    pub fn poison(&self, epoch: u64, context: String, err: &std::io::Error) {
        let mut st = self.state.lock();
        let first = st.poison.is_none();
        if first {
            st.poison = Some(Poison {
                msg: format!("{context}: {err}"),
                kind: err.kind(),
                errno: err.raw_os_error(),
                epoch,
            });
        }
        self.poisoned.store(true, Ordering::Release);
        drop(st);
        if let (true, Some(t)) = (first, &self.cfg.trace) {
            let detail = format!("{context}: {err}");
            t.emit(&TraceEvent::new(TraceKind::Poisoned, epoch, &detail));
        }
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

    pub(crate) fn poisoned_error(&self) -> Error {
        let st = self.state.lock();
        match &st.poison {
            Some(p) => Error::Poisoned(p.msg.clone()),
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

    /// Appends `txn` to the caller's lane and returns the epoch it commits
    /// in. `seal_now` marks a commit that is about to wait (and lead the
    /// flush): it does not wake the background flusher for the epoch's
    /// timer, and takes the state lock only when it must (first record of
    /// the epoch, batch threshold crossed).
    ///
    /// A transaction that encodes to more than `MAX_RECORD_BYTES` is
    /// appended as parts, one record each, in order ([`Shared::submit_parts`]).
    pub(crate) fn submit(&self, txn: &Txn<'_>, file_id: u32, seal_now: bool) -> Result<u64> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error());
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // archive: the lag gate (refused at once, nothing written).
        if let Some(a) = self.archive.get() {
            a.check_lag()?;
        }
        let len = validate_txn(txn, file_id)?;
        if len > MAX_RECORD_BYTES {
            return self.submit_parts(txn, file_id, seal_now);
        }
        self.append(
            &RecordHead::of(txn, file_id, 0, false),
            txn.frames,
            len,
            seal_now,
            0,
        )
    }

    /// Appends a transaction larger than one record as consecutive parts
    /// (whole frames each), which land in this epoch and later ones as room
    /// allows: the writer holds at most the part it is copying, and waits for
    /// the flusher like any writer whose epoch is full. Only the last part
    /// commits the transaction: recovery delivers the parts when it reads it,
    /// and discards parts whose last part never became durable.
    ///
    /// Until the last part is in its lane the commit sequence is registered
    /// as blocked (the commit-sequence watermark stays below it), and until
    /// a checkpoint covers the last part's epoch the epochs of the first
    /// parts are pinned (checkpoint keeps their segments).
    fn submit_parts(&self, txn: &Txn<'_>, file_id: u32, seal_now: bool) -> Result<u64> {
        struct Unblock<'a>(&'a Shared, u64);
        impl Drop for Unblock<'_> {
            fn drop(&mut self) {
                self.0.unblock(self.1);
            }
        }
        self.blocked_seqs.lock().push(txn.commit_seq);
        let _unblock = Unblock(self, txn.commit_seq);
        // Every part lands in the filling epoch or a later one, or in the
        // one before it: a seal moves `filling` on before it swaps the lanes,
        // and a lane not yet swapped still takes records of the old epoch.
        let first = self.state.lock().filling.saturating_sub(1).max(1);
        let pin = self.pins.lock().add(first);
        let mut last = 0;
        let whole = RecordHead::of(txn, file_id, 0, false);
        for (part, (frames, len)) in parts(&whole, txn.frames).enumerate() {
            let more = frames.end < txn.frames.len();
            let head = RecordHead::of(txn, file_id, part as u32, more);
            // One part per epoch: an epoch's frame stays near one record's
            // size, whoever else commits, and each part is written while the
            // next is copied.
            match self.append(&head, &txn.frames[frames], len, seal_now && !more, last) {
                Ok(epoch) => last = epoch,
                Err(e) => {
                    // The parts written stay without their last part, which
                    // recovery discards: nothing to keep them for.
                    self.pins.lock().remove(pin);
                    return Err(e);
                }
            }
        }
        self.pins.lock().commit(pin, last);
        Ok(last)
    }

    /// Forgets one registration of `seq` in `blocked_seqs` (a multiset: a
    /// transaction in parts is registered for its whole submit, and again
    /// while it waits for room).
    fn unblock(&self, seq: u64) {
        let mut b = self.blocked_seqs.lock();
        if let Some(i) = b.iter().position(|&s| s == seq) {
            b.swap_remove(i);
        }
    }

    /// Appends one record (a whole transaction or one part of it) to the
    /// caller's lane, in an epoch after `after`, and returns its epoch.
    fn append(
        &self,
        head: &RecordHead,
        frames: &[crate::Frame<'_>],
        len: usize,
        seal_now: bool,
        after: u64,
    ) -> Result<u64> {
        let mode = self.mode();
        let index = if mode == Mode::Conservative {
            0
        } else {
            lane_of_current_thread(&self.lanes)
        };
        let lane = &self.lanes.lanes[index];
        let cap = self.cfg.epoch_body_cap();
        let mut g = lane.buf.lock();
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                drop(g);
                return Err(self.poisoned_error());
            }
            if self.closing.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            // The epoch is read under the lane lock the sealer takes.
            let epoch = g.epoch;
            let slot = &self.epoch_bytes[(epoch & 1) as usize];
            let prev = slot.fetch_add(len as u64, Ordering::AcqRel);
            if epoch <= after || (prev > 0 && prev + len as u64 > cap as u64) {
                // The epoch is full (or holds the previous part): wait for
                // the sealer to move this lane on (bounded memory; a record
                // is never split).
                slot.fetch_sub(len as u64, Ordering::AcqRel);
                if epoch > after {
                    lane.counters.room_waits.fetch_add(1, Ordering::Relaxed);
                }
                self.request_seal(epoch);
                self.blocked_seqs.lock().push(head.commit_seq);
                lane.swapped.wait(&mut g);
                self.unblock(head.commit_seq);
                continue;
            }
            let start = g.bytes.len();
            // Grow by doubling, but not past the cap (unless this record
            // alone needs more): the flusher keeps buffers up to the cap
            // for reuse, and a doubling from just under it would make one
            // it drops.
            let need = start + len;
            if need > g.bytes.capacity() {
                let to = (g.bytes.capacity() * 2).clamp(need, cap.max(need));
                g.bytes.reserve_exact(to - start);
            }
            let mut crc = encode_record(&mut g.bytes, head, frames, len);
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
                let reference = encode_record_reference(head, frames);
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
                        FallbackReason::EncoderDivergence,
                        format!(
                            "transaction {}: lane encoding differs from the conservative encoding at record byte {at}; the conservative bytes were logged",
                            head.txn_id
                        ),
                    );
                }
            }
            g.crcs.push(crc);
            g.txns += 1;
            g.frames += frames.len() as u32;
            if !head.more {
                g.commits += 1;
                g.min_seq = g.min_seq.min(head.commit_seq);
                if head.commit_seq >= g.max_seq {
                    g.max_seq = head.commit_seq;
                    g.db_size_at_max = frames
                        .iter()
                        .rev()
                        .map(|f| f.db_size_if_commit)
                        .find(|&s| s != 0)
                        .unwrap_or(0);
                }
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

    /// Waits until `epoch` is acknowledged (see [`EpochState::durable`]).
    ///
    /// Who does the work: a waiter with no timeout, or with at least
    /// [`LEAD_MIN_BUDGET`] left, leads the flush itself when nobody holds
    /// the flush lock (at one writer a commit is then one write and one
    /// `fdatasync` on the caller's thread). A waiter with less time left
    /// never leads, since a flush can take longer than a short deadline (a
    /// segment switch renames, writes a header and syncs twice): it hands
    /// its request to the background flusher and sleeps until the deadline.
    /// A zero timeout only checks: it never writes or syncs.
    pub(crate) fn wait_durable(&self, epoch: u64, timeout: Option<Duration>) -> Result<()> {
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
            if let Some(p) = &st.poison {
                return Err(if epoch >= p.epoch {
                    Error::io(
                        format!("epoch {epoch} was not made durable: {}", p.msg),
                        p.io_error(),
                    )
                } else {
                    Error::Poisoned(p.msg.clone())
                });
            }
            if st.flusher_exited {
                return Err(Error::Closed);
            }
            let timed_out = |st: &EpochState| Error::Timeout {
                epoch,
                durable: st.durable,
                waited_ms: start.elapsed().as_millis() as u64,
            };
            if timeout == Some(Duration::ZERO) {
                return Err(timed_out(&st));
            }
            let may_lead = deadline.is_none_or(|d| d >= Instant::now() + LEAD_MIN_BUDGET);
            if st.seal_requested < epoch {
                st.seal_requested = epoch;
                if !may_lead {
                    self.flusher_cv.notify_one();
                }
            }
            // Lead the flush when nobody is flushing. (try_lock while holding
            // the state lock cannot deadlock: it never blocks.)
            if may_lead {
                if let Some(mut fs) = self.flush.try_lock() {
                    drop(st);
                    crate::flusher::lead(self, &mut fs, epoch);
                    drop(fs);
                    crate::flusher::hand_off(self);
                    st = self.state.lock();
                    continue;
                }
            }
            match deadline {
                None => self.durable_cv[(epoch & 1) as usize].wait(&mut st),
                Some(d) => {
                    if self.durable_cv[(epoch & 1) as usize]
                        .wait_until(&mut st, d)
                        .timed_out()
                        && st.durable < epoch
                    {
                        return Err(timed_out(&st));
                    }
                }
            }
        }
    }

    /// Makes everything submitted before the call durable (written and
    /// fdatasynced, whatever the sync policy), within `timeout`.
    pub(crate) fn flush(&self, timeout: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let target = {
            let st = self.state.lock();
            // A batch returned from submit has counted its bytes in its
            // epoch: an empty filling epoch needs no seal.
            let filling_bytes = self.epoch_bytes[(st.filling & 1) as usize].load(Ordering::Acquire);
            if filling_bytes > 0 {
                st.filling
            } else {
                st.filling - 1
            }
        };
        self.wait_durable(target, timeout)?;
        self.sync_through(target, deadline, start)
    }

    /// Syncs the active segment until every epoch up to `target` (already
    /// written) is synced.
    pub(crate) fn sync_through(
        &self,
        target: u64,
        deadline: Option<Instant>,
        start: Instant,
    ) -> Result<()> {
        if self.state.lock().synced >= target {
            return Ok(());
        }
        let mut fs = match deadline {
            None => self.flush.lock(),
            Some(d) => self.flush.try_lock_until(d).ok_or_else(|| {
                let st = self.state.lock();
                Error::Timeout {
                    epoch: target,
                    durable: st.synced,
                    waited_ms: start.elapsed().as_millis() as u64,
                }
            })?,
        };
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error());
        }
        if self.state.lock().synced >= target {
            return Ok(());
        }
        if let Err((ctx, e)) = fs.sync_active(self) {
            let next = self.state.lock().synced + 1;
            self.poison(next, ctx.clone(), &e);
            return Err(Error::io(ctx, e));
        }
        Ok(())
    }

    pub(crate) fn durable_commit_seq(&self) -> u64 {
        // Read where a batch goes in the order it goes there (blocked in
        // submit, then a lane buffer, then the epoch in flight), so a batch
        // moving on while this runs is seen at one of its stops.
        let mut cap = self
            .blocked_seqs
            .lock()
            .iter()
            .copied()
            .min()
            .unwrap_or(u64::MAX);
        let _seal = self.seal_lock.lock();
        for lane in &self.lanes.lanes {
            let g = lane.buf.lock();
            if g.commits > 0 {
                cap = cap.min(g.min_seq);
            }
        }
        let st = self.state.lock();
        if let Some(m) = st.inflight_min_seq {
            cap = cap.min(m);
        }
        let now = match st.durable_max_seq {
            None => 0,
            Some(d) if cap == u64::MAX => d,
            Some(d) => d.min(cap.saturating_sub(1)),
        };
        drop(st);
        // A batch submitted later with a lower sequence than one already
        // covered does not pull the watermark back: what was reported stays
        // true of every batch submitted before it was reported.
        self.published_seq.fetch_max(now, Ordering::AcqRel).max(now)
    }

    /// Records that the engine has written every page up to `through` home,
    /// and removes the segments that hold only such epochs.
    ///
    /// Ordering, each step durable before the next: the epochs up to
    /// `through` are synced (under `normal` and `off` they may not be yet,
    /// and an engine must never have pages home ahead of the log); a synced
    /// frame carries the mark (recovery learns from it where the log now
    /// begins, so a missing segment before it is not mistaken for lost
    /// data); then whole segments go from the front, each one leaving the
    /// catalog only once its rename or unlink succeeded, and recycled files
    /// become spares only once the directory is synced. A failed file
    /// operation poisons the log (fail-stop, like any write-path failure).
    pub(crate) fn checkpoint(&self, through: u64) -> Result<()> {
        let start = Instant::now();
        self.checkpoint_steps(through, start)?;
        if let Some(t) = &self.cfg.trace {
            t.emit(&TraceEvent {
                duration: start.elapsed(),
                ..TraceEvent::new(TraceKind::Checkpoint, through, "")
            });
        }
        Ok(())
    }

    pub(crate) fn checkpoint_steps(&self, through: u64, start: Instant) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error());
        }
        let durable = self.state.lock().durable;
        if through > durable {
            return Err(Error::invalid(format!(
                "cannot checkpoint through epoch {through}: only epochs up to {durable} are durable"
            )));
        }
        self.sync_through(through, None, start)?;
        {
            let mut st = self.state.lock();
            st.checkpoint_mark = st.checkpoint_mark.max(through);
        }
        let Some(limit) = self.removal_limit(through) else {
            return Ok(());
        };
        if self.state.lock().mark_synced < through {
            // Write (and sync) a frame carrying the mark: the filling epoch,
            // empty if nothing is buffered.
            let e = self.state.lock().filling;
            self.wait_durable(e, None)?;
            self.sync_through(e, None, start)?;
        }
        debug_assert!(self.state.lock().mark_synced >= through);

        crate::store::remove_through(self, limit)
    }

    /// The epoch through which segments may go once `through` is
    /// checkpointed (the first parts of a transaction that commits above the
    /// mark stay), or `None` when no segment would.
    pub(crate) fn removal_limit(&self, through: u64) -> Option<u64> {
        // archive: the gate. No segment goes before its epochs are archived.
        let through = match self.archive.get() {
            Some(a) => through.min(a.archived_epoch()),
            None => through,
        };
        let limit = self.pins.lock().removable_through(through);
        crate::store::removable(&self.catalog.lock(), limit).then_some(limit)
    }

    pub(crate) fn stats(&self) -> Stats {
        let lane_backlog_bytes = self
            .lanes
            .lanes
            .iter()
            .map(|l| l.buf.lock().bytes.len() as u64)
            .collect();
        let durable_commit_seq = self.durable_commit_seq();
        // `fallback` before `state`: a thread holding `state` takes no other
        // lock (the order at the top of this file).
        let (fallback, fallback_detail) = match &*self.fallback.lock() {
            Some((r, d)) => (Some(*r), d.clone()),
            None => (None, String::new()),
        };
        let st = self.state.lock();
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
            lane_counters: self
                .lanes
                .lanes
                .iter()
                .map(|l| {
                    let c = &l.counters;
                    crate::stats::LaneStats {
                        commits: c.commits.load(Ordering::Relaxed),
                        bytes: c.bytes.load(Ordering::Relaxed),
                        room_waits: c.room_waits.load(Ordering::Relaxed),
                        seals: c.seals.load(Ordering::Relaxed),
                    }
                })
                .collect(),
            sync_latency: c.sync_latency.summary(),
            commit_wait_latency: c.commit_wait.summary(),
            txns_per_epoch: c.txns_per_epoch.summary(),
            poisoned: st.poison.is_some(),
            env_fields: self.cfg.env_fields,
        }
    }

    /// Flushes what is buffered, stops the threads, releases the lock.
    pub(crate) fn shutdown(&self) -> Result<()> {
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
        // archive: the archiver makes its last attempt once the flusher is done.
        if let Some(a) = self.archive.get() {
            a.wake();
        }
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.threads.lock());
        let mut panicked = false;
        for t in threads {
            panicked |= t.join().is_err();
        }
        if !panicked && !self.poisoned.load(Ordering::Acquire) {
            // A closed log needs no spares (the next open prepares its own):
            // they go, so that a closed log takes no more than a fresh one.
            if let Err(e) = crate::store::delete_spares(self) {
                self._lock.lock().take();
                return Err(e);
            }
        }
        self._lock.lock().take();
        if panicked {
            return Err(Error::Internal("a pwal background thread panicked".into()));
        }
        let st = self.state.lock();
        match &st.poison {
            Some(p) => Err(Error::Poisoned(p.msg.clone())),
            None => Ok(()),
        }
    }
}

/// Reads the tail of the log, builds the coordinator and starts its threads.
pub(crate) fn start(
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    cfg: Resolved,
    lock: Box<dyn Any + Send + Sync>,
) -> Result<Arc<Shared>> {
    // Before the tail is read: every segment, whatever policy wrote it (a
    // process under `off` or `normal` may have left epochs unsynced), is
    // made durable, with the directory, before anything new is
    // acknowledged: otherwise a power loss could keep new epochs and lose
    // older ones, an epoch gap that hides the new ones.
    crate::store::sync_all(&*vfs, &dir)?;
    // Every epoch is validated, so that the log is never continued behind
    // damage; the records are replayed here for `recover_and_open`.
    let end = crate::recovery::scan_for_open(&*vfs, &dir)?;
    // The log continues right after its last valid epoch. Frames found
    // after a torn one (written but never synced, so no later frame vouches
    // for the torn epoch) are superseded: the new segment starts at the torn
    // epoch, which tells recovery to skip the rest of the old one. Epochs
    // are bounded (`epoch::MAX_EPOCH`), so this cannot wrap.
    let next_epoch = end.last_epoch + 1;
    // Marks found on disk are durable (every segment was synced above).
    let mark = end.checkpoint_epoch;
    let end_synced = end.synced_through;
    let end_records = end.last_record_epoch;
    // Transactions in parts that the log will replay keep their first parts.
    let mut pins = Pins::default();
    for &(first, last) in &end.parted {
        pins.add_committed(first, last);
    }

    let catalog = crate::store::open_catalog(&*vfs, &dir, &cfg, end.segments, &end.damaged)?;

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
            written: durable,
            synced: durable,
            checkpoint_mark: mark,
            mark_written: mark,
            mark_synced: mark,
            poison: None,
            closing: false,
            flusher_exited: false,
            first_at: [None, None],
            inflight_min_seq: None,
            durable_max_seq: None,
            unsynced_since: None,
            trim_due: None,
        }),
        flusher_cv: Condvar::new(),
        durable_cv: [Condvar::new(), Condvar::new()],
        poisoned: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        seal_lock: Mutex::new(()),
        catalog: Mutex::new(catalog),
        catalog_cv: Condvar::new(),
        flush: Mutex::new(crate::flusher::FlushState::new(
            durable,
            end_synced,
            end_records,
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
        inject_flush_panic: AtomicBool::new(false),
        inject_seal_pause_ms: AtomicU64::new(0),
        inject_hold_preparer: AtomicBool::new(false),
        preparer_held: AtomicBool::new(false),
        preparer_idle: AtomicBool::new(false),
        large_frames: AtomicBool::new(false),
        blocked_seqs: Mutex::new(Vec::new()),
        pins: Mutex::new(pins),
        published_seq: AtomicU64::new(0),
        threads: Mutex::new(Vec::new()),
        _lock: Mutex::new(Some(lock)),
        fork_generation: crate::registry::fork_generation(),
        archive: std::sync::OnceLock::new(),
        cfg,
    });
    // archive: measures the lag and starts the archiver (joined last at close).
    let archiver = crate::archive::start(&shared)?;
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
            .spawn(move || crate::store::prepare_spares(s))
            .map_err(|e| Error::io("starting the preallocation thread", e))?
    };
    shared.threads.lock().extend([flusher, preparer]);
    shared.threads.lock().extend(archiver);
    Ok(shared)
}
