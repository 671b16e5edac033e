//! The flusher thread (seal, write, sync, publish) and the preallocation
//! thread that keeps a zero-filled spare segment ready.
//!
//! One flusher per log. It seals the filling epoch when a waiter needs it (and
//! it is idle, which it is whenever it is deciding), when the buffered bytes
//! reach `max_batch_bytes`, or when `max_flush_delay` has passed since the
//! epoch's first record. Sealing swaps every lane's buffer for an empty one,
//! so writers fill epoch e+1 while e is written and synced: at one writer a
//! commit costs about one `fdatasync`, at many writers the groups grow.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SyncPolicy;
use crate::coordinator::Shared;
use crate::epoch::{Certificate, SegmentIdent, CERT_MAX_LEN};
use crate::io::VfsFile;
use crate::lane::LaneBuf;
use crate::segment::{DATA_OFFSET, END_MARK_LEN};
use crate::store::{IoFailure, NewSegment};
use crate::trace::TraceKind;

/// After this long without a seal, the lane buffers (and the pool of emptied
/// ones) are released: a burst does not leave its memory resident.
pub(crate) const IDLE_TRIM_AFTER: Duration = Duration::from_secs(1);

static ZEROS: [u8; END_MARK_LEN] = [0; END_MARK_LEN];

struct ActiveSegment {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    /// Its id, salt and first epoch, which its frames' certificates name.
    ident: SegmentIdent,
    /// Where the next frame goes.
    off: u64,
    /// Holds stale frames: each write is followed by an end mark.
    recycled: bool,
    /// The bytes it may hold (`store::Spare::capacity`).
    capacity: u64,
}

enum Action {
    Seal(u64),
    BackgroundSync,
    Trim,
    Exit,
}

/// What the flush-lock holder owns: the segment being written and the pool
/// of emptied lane buffers. Whoever holds `Shared::flush` is the one thread
/// that seals and writes; see [`lead`].
pub(crate) struct FlushState {
    active: Option<ActiveSegment>,
    /// Each lane's emptied buffer from the epoch before last, given back to
    /// the same lane at the next seal: a lane keeps two allocations sized to
    /// its own load, and a writer never appends into fresh (page-faulting)
    /// memory in the steady state.
    spare_bufs: Vec<Option<LaneBuf>>,
    /// The active segment has writes no `fdatasync` has covered yet.
    unsynced: bool,
    /// The next epoch starts a new segment whatever room is left
    /// ([`FlushState::shrink_when_idle`]).
    roll_next: bool,
    /// The last epoch written with a record in it (at open: the last epoch
    /// of the log, as if every epoch recovered held one).
    last_data_epoch: u64,
    /// The highest `synced_through` stamped in a frame (at open: the
    /// highest one on disk). A close leaves no epoch with a record above it:
    /// it writes a frame that proves the last one.
    proven_through: u64,
    /// The last epoch known to hold a record (at open: the last such epoch
    /// on disk): what a close must leave proven.
    last_record_epoch: u64,
    /// Bytes of frames smaller than `store::LARGE_FRAME` written since the
    /// last larger one: a long enough run ends a spell of large frames.
    small_run: u64,
}

impl FlushState {
    /// `durable`: the last epoch of the log at open; `proven`: the highest
    /// `synced_through` of a frame on disk (what a close need not prove
    /// again).
    pub fn new(durable: u64, proven: u64, last_record: u64) -> FlushState {
        FlushState {
            active: None,
            spare_bufs: Vec::new(),
            unsynced: false,
            roll_next: false,
            last_data_epoch: durable,
            proven_through: proven.min(durable),
            last_record_epoch: last_record.min(durable),
            small_run: 0,
        }
    }

    /// Bytes held by the pool of emptied lane buffers.
    pub fn pooled_capacity(&self) -> usize {
        self.spare_bufs
            .iter()
            .flatten()
            .map(LaneBuf::capacity)
            .sum()
    }
}

/// What a frame says besides its records, read when its epoch is sealed:
/// the checkpoint mark it carries (read before the write, so what is
/// published as written is at most what the frame holds), and the last
/// epoch a sync covered (recovery counts damage to an epoch as corruption
/// only where a later frame proves it was synced; a value read before a
/// segment switch's sync is lower, and still true).
#[derive(Clone, Copy)]
struct Stamps {
    mark: u64,
    synced: u64,
    /// When the epoch was sealed (the trace's epoch duration starts there).
    sealed_at: Instant,
}

/// Poisons the log if the thread unwinds while it holds the flush lock: an
/// epoch may have been sealed and not written, and the next flush must not
/// acknowledge a later epoch over the hole.
struct PoisonOnUnwind<'a> {
    sh: &'a Shared,
    epoch: u64,
}

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.sh.poison(
                self.epoch,
                "a thread panicked while flushing".into(),
                &std::io::Error::other("panic on the flush path"),
            );
        }
    }
}

/// Called by a committer waiting for `epoch` when the flush lock was free:
/// it becomes the leader and seals and writes up to `epoch` itself, saving
/// the two thread switches of a hand-off to the background flusher (at one
/// writer, a commit is then one write and one `fdatasync` on the caller's
/// thread, as in the single-mutex design, minus the mutex for appending).
pub(crate) fn lead(sh: &Shared, fs: &mut FlushState, epoch: u64) {
    fs.flush_through(sh, epoch);
}

/// After releasing the flush lock: if work was requested meanwhile, hand it
/// to the background flusher. A waiter that registered its request while the
/// lock was held, and so could not lead, is served this way.
pub(crate) fn hand_off(sh: &Shared) {
    let st = sh.state.lock();
    if st.seal_requested >= st.filling || st.closing {
        sh.flusher_cv.notify_one();
    }
}

/// The background flusher thread: seals on the timer, on the batch-size
/// threshold, and for requests no leader took; syncs in the background under
/// `normal`; drains at close.
pub(crate) fn run(sh: Arc<Shared>) {
    loop {
        match next_action(&sh) {
            Action::Exit => {
                let mut fs = sh.flush.lock();
                // A closed log whose epochs are all checkpointed keeps what a
                // fresh one has: a large active segment is left for a small
                // one, as the idle trim does (spares go at shutdown).
                if !sh.poisoned.load(Ordering::Acquire) {
                    crate::store::trim_spares(&sh);
                    if let Some(through) = fs.shrink_when_idle(&sh) {
                        drop(fs);
                        if let Some(limit) = sh.removal_limit(through) {
                            let _ = crate::store::remove_through(&sh, limit);
                        }
                        fs = sh.flush.lock();
                    }
                }
                if sh.cfg.sync != SyncPolicy::Off {
                    if let Err((ctx, e)) = fs.sync_active(&sh) {
                        let next = sh.state.lock().synced + 1;
                        sh.poison(next, ctx, &e);
                    } else {
                        fs.prove_last_epoch(&sh);
                    }
                }
                break;
            }
            Action::BackgroundSync => {
                let mut fs = sh.flush.lock();
                if let Err((ctx, e)) = fs.sync_active(&sh) {
                    let next = sh.state.lock().synced + 1;
                    sh.poison(next, ctx, &e);
                    break;
                }
            }
            Action::Trim => {
                let mut fs = sh.flush.lock();
                crate::store::trim_spares(&sh);
                fs.spare_bufs.clear();
                for lane in &sh.lanes.lanes {
                    let mut g = lane.buf.lock();
                    if g.txns == 0 {
                        g.release();
                    }
                }
                let moved = fs.shrink_when_idle(&sh);
                drop(fs);
                if let Some(through) = moved {
                    // The large segment holds only checkpointed or empty
                    // epochs, and a synced frame carries the mark over
                    // them: remove it as a checkpoint would (the segments of
                    // a transaction in parts stay pinned; a failure poisons
                    // the log). Nothing here waits for an epoch.
                    if let Some(limit) = sh.removal_limit(through) {
                        let _ = crate::store::remove_through(&sh, limit);
                    }
                }
                if sh.poisoned.load(Ordering::Acquire) {
                    break;
                }
            }
            Action::Seal(epoch) => {
                let mut fs = sh.flush.lock();
                fs.flush_through(&sh, epoch);
                drop(fs);
                if sh.poisoned.load(Ordering::Acquire) {
                    break;
                }
            }
        }
    }
    let mut st = sh.state.lock();
    st.flusher_exited = true;
    drop(st);
    sh.durable_cv.iter().for_each(|cv| {
        cv.notify_all();
    });
}

fn next_action(sh: &Shared) -> Action {
    let delay = sh.cfg.max_flush_delay;
    let mut st = sh.state.lock();
    loop {
        if st.poison.is_some() {
            return Action::Exit;
        }
        let e = st.filling;
        let parity = (e & 1) as usize;
        let pending = sh.epoch_bytes[parity].load(Ordering::Acquire);
        let first_at = st.first_at[parity];
        let due = first_at.is_some_and(|t| t.elapsed() >= delay);
        if st.seal_requested >= e
            || pending >= sh.cfg.max_batch_bytes as u64
            || (pending > 0 && (due || st.closing))
        {
            return Action::Seal(e);
        }
        if st.closing {
            // A checkpoint mark no frame carries yet is written at close.
            if st.checkpoint_mark > st.mark_written {
                return Action::Seal(e);
            }
            return Action::Exit;
        }
        let now = Instant::now();
        let mut deadline = first_at.map(|t| t + delay);
        if let Some(t) = st.unsynced_since {
            let d = t + sh.cfg.normal_sync_interval;
            if now >= d {
                return Action::BackgroundSync;
            }
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        if let Some(d) = st.trim_due {
            if now >= d {
                st.trim_due = None;
                return Action::Trim;
            }
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        match deadline {
            Some(d) => {
                sh.flusher_cv.wait_until(&mut st, d);
            }
            None => sh.flusher_cv.wait(&mut st),
        }
    }
}

impl FlushState {
    /// Seals and writes epochs until `target` is durable or the log fails.
    /// Nothing is in flight outside the flush lock, so the epoch to seal is
    /// always the filling one.
    fn flush_through(&mut self, sh: &Shared, target: u64) {
        loop {
            let epoch = {
                let st = sh.state.lock();
                if st.poison.is_some() || st.durable >= target {
                    return;
                }
                debug_assert_eq!(
                    st.durable + 1,
                    st.filling,
                    "an epoch in flight outside the flush lock"
                );
                st.filling
            };
            let unwind = PoisonOnUnwind { sh, epoch };
            let (sealed, stamps) = self.seal(sh, epoch);
            if sh.inject_flush_panic.load(Ordering::Relaxed)
                && sh.inject_flush_panic.swap(false, Ordering::Relaxed)
            {
                panic!("injected panic between seal and write of epoch {epoch}");
            }
            let written = self.write_epoch(sh, epoch, &sealed, stamps);
            drop(unwind);
            if let Err((ctx, e)) = written {
                // Fail-stop: nothing from this epoch on is ever
                // acknowledged; the log must be reopened (recovered).
                sh.poison(epoch, ctx, &e);
                return;
            }
            self.spare_bufs.clear();
            // A buffer a part of a large transaction grew past what epochs
            // normally hold is not kept for reuse: lane memory returns to
            // the epoch cap instead of staying at a part's size per lane.
            let keep = sh.cfg.epoch_body_cap();
            self.spare_bufs.extend(
                sealed
                    .into_iter()
                    .map(|b| (b.bytes.capacity() <= keep).then_some(b)),
            );
        }
    }

    /// Swaps every lane's buffer of `epoch` for an empty one of `epoch + 1`.
    /// Also returns the frame's stamps, read under the state lock the seal
    /// takes anyway: the checkpoint mark and the synced watermark.
    fn seal(&mut self, sh: &Shared, epoch: u64) -> (Vec<LaneBuf>, Stamps) {
        let _seal = sh.seal_lock.lock();
        // Issue epoch + 1 first: a writer that lands in it (its lane already
        // swapped) may wait for it at once.
        sh.state.lock().filling = epoch + 1;
        if sh.inject_seal_pause_ms.load(Ordering::Relaxed) > 0 {
            let ms = sh.inject_seal_pause_ms.swap(0, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let mut sealed = Vec::with_capacity(sh.lanes.lanes.len());
        for (i, lane) in sh.lanes.lanes.iter().enumerate() {
            let mut fresh = self
                .spare_bufs
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or_default();
            fresh.reset(epoch + 1);
            let mut g = lane.buf.lock();
            debug_assert_eq!(g.epoch, epoch, "a lane was not in the epoch being sealed");
            sealed.push(std::mem::replace(&mut *g, fresh));
            drop(g);
            lane.swapped.notify_all();
        }
        // No writer can add to `epoch` any more: every lane has moved on.
        sh.epoch_bytes[(epoch & 1) as usize].store(0, Ordering::Release);
        for (lane, b) in sh.lanes.lanes.iter().zip(&sealed) {
            if b.txns > 0 {
                let c = &lane.counters;
                c.commits.fetch_add(b.commits.into(), Ordering::Relaxed);
                c.bytes.fetch_add(b.bytes.len() as u64, Ordering::Relaxed);
                c.seals.fetch_add(1, Ordering::Relaxed);
            }
        }
        let min_seq = sealed
            .iter()
            .filter(|b| b.commits > 0)
            .map(|b| b.min_seq)
            .min();
        let mut st = sh.state.lock();
        st.first_at[(epoch & 1) as usize] = None;
        st.inflight_min_seq = min_seq;
        let stamps = Stamps {
            mark: st.checkpoint_mark,
            synced: st.synced,
            sealed_at: Instant::now(),
        };
        (sealed, stamps)
    }

    fn write_epoch(
        &mut self,
        sh: &Shared,
        epoch: u64,
        sealed: &[LaneBuf],
        stamps: Stamps,
    ) -> Result<(), IoFailure> {
        let body_len: usize = sealed.iter().map(|b| b.bytes.len()).sum();
        // The certificate's length depends on the segment it goes to; no
        // longer than CERT_MAX_LEN.
        let frame_max = (CERT_MAX_LEN + body_len) as u64;
        let fits = |a: &ActiveSegment| {
            let need = frame_max + if a.recycled { END_MARK_LEN as u64 } else { 0 };
            // A frame larger than a whole segment goes alone into a fresh one,
            // which it extends.
            a.off + need <= a.capacity || a.off == DATA_OFFSET
        };
        if std::mem::take(&mut self.roll_next) || !self.active.as_ref().is_some_and(fits) {
            self.rollover(sh, epoch, frame_max >= crate::store::LARGE_FRAME)?;
        }
        let a = self
            .active
            .as_mut()
            .expect("rollover sets the active segment");

        let Stamps {
            mark,
            synced,
            sealed_at,
        } = stamps;
        let with_txns = || sealed.iter().filter(|b| b.commits > 0);
        let last = with_txns().max_by_key(|b| b.max_seq);
        let cert = Certificate {
            segment: a.ident,
            epoch,
            first_commit_seq: with_txns().map(|b| b.min_seq).min().unwrap_or(0),
            last_commit_seq: last.map_or(0, |b| b.max_seq),
            body_len: body_len as u32,
            txn_count: sealed.iter().map(|b| b.txns).sum(),
            db_size_pages: last.map_or(0, |b| b.db_size_at_max),
            page_set_size: sealed.iter().map(|b| b.frames).sum(),
            synced_through: synced,
            checkpoint_epoch: mark,
        };
        let crcs: Vec<&[u32]> = sealed.iter().map(|b| &b.crcs[..]).collect();
        let header = cert.encode(&crcs);
        let frame_len = (header.len() + body_len) as u64;
        let mut iov: Vec<&[u8]> = Vec::with_capacity(sealed.len() + 2);
        iov.push(&header);
        iov.extend(sealed.iter().map(|b| &b.bytes[..]));
        if a.recycled {
            iov.push(&ZEROS);
        }
        a.file.write_all_at(&iov, a.off).map_err(|e| {
            (
                format!(
                    "writing epoch {epoch} to {} at offset {}",
                    a.path.display(),
                    a.off
                ),
                e,
            )
        })?;
        match sh.cfg.sync {
            SyncPolicy::Full => {
                let t = Instant::now();
                a.file.sync_data().map_err(|e| {
                    (
                        format!("fdatasync of {} after epoch {epoch}", a.path.display()),
                        e,
                    )
                })?;
                sh.counters.syncs.fetch_add(1, Ordering::Relaxed);
                sh.counters
                    .sync_latency
                    .record(t.elapsed().as_micros() as u64);
            }
            SyncPolicy::Normal | SyncPolicy::Off => self.unsynced = true,
        }
        a.off += frame_len;
        let c = &sh.counters;
        c.epochs.fetch_add(1, Ordering::Relaxed);
        let commits: u32 = sealed.iter().map(|b| b.commits).sum();
        c.transactions.fetch_add(commits as u64, Ordering::Relaxed);
        c.records
            .fetch_add(cert.page_set_size as u64, Ordering::Relaxed);
        let extra = if a.recycled { END_MARK_LEN as u64 } else { 0 };
        c.bytes_written
            .fetch_add(frame_len + extra, Ordering::Relaxed);
        c.txns_per_epoch.record(commits as u64);
        if cert.txn_count > 0 {
            self.last_data_epoch = epoch;
            self.last_record_epoch = epoch;
        }
        self.proven_through = self.proven_through.max(synced);
        if frame_len >= crate::store::LARGE_FRAME {
            self.small_run = 0;
        } else {
            self.small_run = self.small_run.saturating_add(frame_len);
            if self.small_run >= crate::store::SMALL_RUN_BYTES {
                crate::store::small_frames_again(sh);
            }
        }

        // archive: the archiver learns of each durable epoch, in order, with
        // its time taken before the epoch is published to any waiter.
        if let Some(a) = sh.archive.get() {
            a.note_durable(epoch, frame_len);
        }
        let mut st = sh.state.lock();
        debug_assert_eq!(st.durable + 1, epoch, "epochs become durable in order");
        st.durable = epoch;
        st.written = epoch;
        st.mark_written = mark;
        // The background flusher may be asleep with no deadline (a committer
        // led this flush): wake it on the first write after an idle spell so
        // that it arms the trim timer, or the trim would never come.
        if st
            .trim_due
            .replace(Instant::now() + IDLE_TRIM_AFTER)
            .is_none()
        {
            sh.flusher_cv.notify_one();
        }
        match sh.cfg.sync {
            SyncPolicy::Full => {
                st.synced = epoch;
                st.mark_synced = mark;
            }
            SyncPolicy::Normal => {
                if st.unsynced_since.is_none() {
                    // The background flusher may be asleep with no deadline:
                    // wake it so that it arms the sync timer.
                    st.unsynced_since = Some(Instant::now());
                    sh.flusher_cv.notify_one();
                }
            }
            SyncPolicy::Off => {}
        }
        if commits > 0 {
            st.durable_max_seq = Some(
                st.durable_max_seq
                    .map_or(cert.last_commit_seq, |m| m.max(cert.last_commit_seq)),
            );
        }
        st.inflight_min_seq = None;
        drop(st);
        // One broadcast per epoch, to its own waiters; and one waiter of the
        // next epoch is woken to lead its flush (if nobody does, `hand_off`
        // has passed the request to the background flusher).
        sh.durable_cv[(epoch & 1) as usize].notify_all();
        sh.durable_cv[((epoch + 1) & 1) as usize].notify_one();
        // In epoch order: epochs become durable here only, one at a time
        // under the flush lock.
        if let Some(t) = &sh.cfg.trace {
            t.emit(&crate::TraceEvent {
                transactions: commits as u64,
                bytes: frame_len,
                duration: sealed_at.elapsed(),
                first_commit_seq: cert.first_commit_seq,
                last_commit_seq: cert.last_commit_seq,
                lanes: sealed.iter().filter(|b| b.txns > 0).count() as u32,
                ..crate::TraceEvent::new(TraceKind::EpochDurable, epoch, "")
            });
        }
        Ok(())
    }

    /// After an idle spell: when the active segment is larger than a first
    /// segment and every epoch holding a record is checkpointed, writes the
    /// filling epoch (empty but for the checkpoint mark it carries) into a
    /// new, small segment, raises the mark to the epoch before it and
    /// writes and syncs a frame carrying that, and returns that epoch,
    /// through which the caller removes the large segment: every epoch
    /// there is checkpointed or holds nothing. An idle log then keeps one small
    /// segment and small spares, whatever size its segments grew to while
    /// busy. `None` when there is nothing to do (or the write failed, which
    /// poisoned the log).
    fn shrink_when_idle(&mut self, sh: &Shared) -> Option<u64> {
        let large = self
            .active
            .as_ref()
            .is_some_and(|a| a.capacity > crate::store::first_capacity(&sh.cfg));
        if !large {
            return None;
        }
        let filling = {
            let st = sh.state.lock();
            if st.poison.is_some() || st.checkpoint_mark < self.last_data_epoch {
                return None;
            }
            st.filling
        };
        // Nobody else seals while this thread holds the flush lock: the
        // epochs from the mark to `filling - 1` stay empty.
        self.roll_next = true;
        self.flush_through(sh, filling);
        // The mark over those empty epochs, carried by a frame of its own
        // and synced before anything is removed (what `checkpoint` does),
        // written here, under the flush lock this thread holds: the flusher
        // must never wait for an epoch that another thread leads (nobody
        // would hand that flush back to it).
        let through = filling - 1;
        let next = {
            let mut st = sh.state.lock();
            st.checkpoint_mark = st.checkpoint_mark.max(through);
            st.filling
        };
        self.flush_through(sh, next);
        if sh.cfg.sync != SyncPolicy::Full {
            if let Err((ctx, e)) = self.sync_active(sh) {
                let next = sh.state.lock().synced + 1;
                sh.poison(next, ctx, &e);
            }
        }
        if sh.poisoned.load(Ordering::Acquire) {
            return None;
        }
        debug_assert!(sh.state.lock().mark_synced >= through);
        Some(through)
    }

    /// At a clean close, once everything written is synced: when the last
    /// epoch holding a record is not yet vouched for by a later frame's
    /// `synced_through`, writes one more frame (empty) that is, and syncs
    /// it. Damage to that last epoch is then corruption, not a torn tail:
    /// after a close nothing was torn. A failure poisons the log (close
    /// reports it).
    fn prove_last_epoch(&mut self, sh: &Shared) {
        let filling = {
            let st = sh.state.lock();
            if st.poison.is_some()
                || !sh.cfg.close_proof
                || self.last_record_epoch <= self.proven_through
            {
                return;
            }
            debug_assert_eq!(st.synced, st.durable, "synced before the proof");
            st.filling
        };
        self.flush_through(sh, filling);
        if sh.poisoned.load(Ordering::Acquire) {
            return;
        }
        if let Err((ctx, e)) = self.sync_active(sh) {
            let next = sh.state.lock().synced + 1;
            sh.poison(next, ctx, &e);
        }
    }

    /// Syncs what was written to the active segment and not yet synced;
    /// every epoch written is then synced (the segments left before were
    /// synced when they were left, and at open).
    pub fn sync_active(&mut self, sh: &Shared) -> Result<(), IoFailure> {
        if self.unsynced {
            let a = self
                .active
                .as_ref()
                .expect("writes were made to an active segment");
            let t = Instant::now();
            a.file
                .sync_data()
                .map_err(|e| (format!("fdatasync of {}", a.path.display()), e))?;
            sh.counters.syncs.fetch_add(1, Ordering::Relaxed);
            sh.counters
                .sync_latency
                .record(t.elapsed().as_micros() as u64);
            self.unsynced = false;
        }
        let mut st = sh.state.lock();
        st.unsynced_since = None;
        st.synced = st.written;
        st.mark_synced = st.mark_written;
        Ok(())
    }

    /// Makes a spare the segment that `first_epoch` starts.
    fn rollover(&mut self, sh: &Shared, first_epoch: u64, large: bool) -> Result<(), IoFailure> {
        // Under `normal` and `off` too, the segment being left is synced now:
        // it will never be written again, `flush` and `checkpoint` then need
        // to sync only the active segment, and only the last segment of a
        // log can be torn by a power loss. (Under `off`, leaving older
        // segments unsynced made a log unrecoverable after a power loss and
        // a reopen: the tear sat in a segment open does not scan, behind
        // frames that the reopen stamped as synced.)
        self.sync_active(sh)?;
        let seg = crate::store::activate(sh, first_epoch, large)?;
        let NewSegment {
            file,
            path,
            id,
            salt,
            recycled,
            capacity,
        } = seg;
        self.active = Some(ActiveSegment {
            file,
            path,
            ident: SegmentIdent {
                id,
                salt,
                first_epoch,
            },
            off: DATA_OFFSET,
            recycled,
            capacity,
        });
        Ok(())
    }
}
