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
use crate::epoch::{header_len, Certificate};
use crate::io::VfsFile;
use crate::lane::LaneBuf;
use crate::log::{SegMeta, Shared, Spare};
use crate::segment::{new_salt, segment_name, SegmentHeader, DATA_OFFSET, END_MARK_LEN};

/// Under `normal`, written data is synced at most this long after it was
/// written (and at segment switch and close).
const NORMAL_SYNC_INTERVAL: Duration = Duration::from_millis(50);

static ZEROS: [u8; END_MARK_LEN] = [0; END_MARK_LEN];

type IoFailure = (String, std::io::Error);

struct ActiveSegment {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    id: u64,
    salt: u64,
    /// Where the next frame goes.
    off: u64,
    /// Holds stale frames: each write is followed by an end mark.
    recycled: bool,
}

enum Action {
    Seal(u64),
    BackgroundSync,
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
    /// Every epoch up to this one was made durable by an `fdatasync` that
    /// returned: stamped into each frame, so that recovery can tell damage
    /// to a synced epoch (corruption) from a write lost with the power
    /// (a torn tail). Raised only after a sync of the active segment.
    synced_through: u64,
    /// The checkpoint mark stamped into each frame (0: none), so recovery
    /// can tell a log whose oldest segments a checkpoint removed from one
    /// that lost its beginning.
    checkpoint_epoch: u64,
}

impl FlushState {
    /// `synced_through`: the last epoch known durable when the log was
    /// opened (0 under `sync=off`); `checkpoint_epoch`: the highest mark
    /// found in the log, so the marks in frames never go down.
    pub fn new(synced_through: u64, checkpoint_epoch: u64) -> FlushState {
        FlushState {
            active: None,
            spare_bufs: Vec::new(),
            synced_through,
            checkpoint_epoch,
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
                if let Err((ctx, e)) = fs.sync_if_unsynced(&sh) {
                    let next = sh.state.lock().durable + 1;
                    sh.poison(next, ctx, &e);
                }
                break;
            }
            Action::BackgroundSync => {
                let mut fs = sh.flush.lock();
                if let Err((ctx, e)) = fs.sync_if_unsynced(&sh) {
                    let next = sh.state.lock().durable + 1;
                    sh.poison(next, ctx, &e);
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
            return Action::Exit;
        }
        let mut deadline = first_at.map(|t| t + delay);
        if let Some(t) = st.unsynced_since {
            let d = t + NORMAL_SYNC_INTERVAL;
            if Instant::now() >= d {
                return Action::BackgroundSync;
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
            let sealed = self.seal(sh, epoch);
            if let Err((ctx, e)) = self.write_epoch(sh, epoch, &sealed) {
                // Fail-stop: nothing from this epoch on is ever
                // acknowledged; the log must be reopened (recovered).
                sh.poison(epoch, ctx, &e);
                return;
            }
            self.spare_bufs.clear();
            self.spare_bufs.extend(sealed.into_iter().map(Some));
        }
    }

    /// Swaps every lane's buffer of `epoch` for an empty one of `epoch + 1`.
    fn seal(&mut self, sh: &Shared, epoch: u64) -> Vec<LaneBuf> {
        let _seal = sh.seal_lock.lock();
        // Issue epoch + 1 first: a writer that lands in it (its lane already
        // swapped) may wait for it at once.
        sh.state.lock().filling = epoch + 1;
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
        let min_seq = sealed
            .iter()
            .filter(|b| b.txns > 0)
            .map(|b| b.min_seq)
            .min();
        let mut st = sh.state.lock();
        st.first_at[(epoch & 1) as usize] = None;
        st.inflight_min_seq = min_seq;
        sealed
    }

    fn write_epoch(
        &mut self,
        sh: &Shared,
        epoch: u64,
        sealed: &[LaneBuf],
    ) -> Result<(), IoFailure> {
        let body_len: usize = sealed.iter().map(|b| b.bytes.len()).sum();
        let frame_len = (header_len(sealed.len()) + body_len) as u64;
        let fits = |a: &ActiveSegment| {
            let need = frame_len + if a.recycled { END_MARK_LEN as u64 } else { 0 };
            // A frame larger than a whole segment goes alone into a fresh one,
            // which it extends.
            a.off + need <= sh.cfg.segment_bytes || a.off == DATA_OFFSET
        };
        if !self.active.as_ref().is_some_and(fits) {
            self.rollover(sh, epoch)?;
        }
        let a = self
            .active
            .as_mut()
            .expect("rollover sets the active segment");

        let with_txns = || sealed.iter().filter(|b| b.txns > 0);
        let last = with_txns().max_by_key(|b| b.max_seq);
        let cert = Certificate {
            segment_id: a.id,
            segment_salt: a.salt,
            epoch,
            first_commit_seq: with_txns().map(|b| b.min_seq).min().unwrap_or(0),
            last_commit_seq: last.map_or(0, |b| b.max_seq),
            body_len: body_len as u32,
            txn_count: sealed.iter().map(|b| b.txns).sum(),
            db_size_pages: last.map_or(0, |b| b.db_size_at_max),
            page_set_size: sealed.iter().map(|b| b.frames).sum(),
            synced_through: self.synced_through,
            checkpoint_epoch: self.checkpoint_epoch,
            lane_counts: sealed.iter().map(|b| b.txns).collect(),
        };
        let crcs: Vec<&[u32]> = sealed.iter().map(|b| &b.crcs[..]).collect();
        let header = cert.encode(&crcs);
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
                self.synced_through = epoch;
                sh.counters.syncs.fetch_add(1, Ordering::Relaxed);
                sh.counters
                    .sync_latency
                    .record(t.elapsed().as_micros() as u64);
            }
            SyncPolicy::Normal => {
                sh.state
                    .lock()
                    .unsynced_since
                    .get_or_insert_with(Instant::now);
            }
            SyncPolicy::Off => {}
        }
        a.off += frame_len;
        let c = &sh.counters;
        c.epochs.fetch_add(1, Ordering::Relaxed);
        c.transactions
            .fetch_add(cert.txn_count as u64, Ordering::Relaxed);
        c.records
            .fetch_add(cert.page_set_size as u64, Ordering::Relaxed);
        let extra = if a.recycled { END_MARK_LEN as u64 } else { 0 };
        c.bytes_written
            .fetch_add(frame_len + extra, Ordering::Relaxed);
        c.txns_per_epoch.record(cert.txn_count as u64);

        let mut st = sh.state.lock();
        debug_assert_eq!(st.durable + 1, epoch, "epochs become durable in order");
        st.durable = epoch;
        if cert.txn_count > 0 {
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
        Ok(())
    }

    fn sync_if_unsynced(&mut self, sh: &Shared) -> Result<(), IoFailure> {
        // Every written epoch is in the active segment or in one synced when
        // it was left, and nothing is written without the flush lock held:
        // the sync below covers every epoch up to `written`.
        let written = {
            let mut st = sh.state.lock();
            if st.unsynced_since.take().is_none() {
                return Ok(());
            }
            st.durable
        };
        let Some(a) = &self.active else {
            return Ok(());
        };
        let t = Instant::now();
        a.file
            .sync_data()
            .map_err(|e| (format!("background fdatasync of {}", a.path.display()), e))?;
        self.synced_through = self.synced_through.max(written);
        sh.counters.syncs.fetch_add(1, Ordering::Relaxed);
        sh.counters
            .sync_latency
            .record(t.elapsed().as_micros() as u64);
        Ok(())
    }

    /// Makes a spare the segment that `first_epoch` starts.
    fn rollover(&mut self, sh: &Shared, first_epoch: u64) -> Result<(), IoFailure> {
        // Under `normal`, the segment being left is synced now: it will never
        // be written again.
        self.sync_if_unsynced(sh)?;
        let spare = take_spare(sh)?;
        let id = {
            let mut cat = sh.catalog.lock();
            let id = cat.next_id;
            cat.next_id += 1;
            id
        };
        let path = sh.dir.join(segment_name(id));
        sh.vfs.rename(&spare.path, &path).map_err(|e| {
            (
                format!("renaming {} to {}", spare.path.display(), path.display()),
                e,
            )
        })?;
        let file = sh
            .vfs
            .open(&path, false)
            .map_err(|e| (format!("opening {}", path.display()), e))?;
        let salt = new_salt();
        let header = SegmentHeader {
            id,
            salt,
            first_epoch,
            // The log must still hold from its oldest live segment on, and
            // from the epoch after the checkpoint mark; a new log starts
            // here.
            log_start_epoch: sh
                .catalog
                .lock()
                .segments
                .first()
                .map_or(first_epoch, |s| s.first_epoch)
                .max(self.checkpoint_epoch.saturating_add(1))
                .min(first_epoch),
        }
        .encode();
        file.write_all_at(&[&header], 0)
            .map_err(|e| (format!("writing the header of {}", path.display()), e))?;
        if sh.cfg.sync != SyncPolicy::Off {
            // The rename must be durable before anything in the file is
            // acknowledged.
            sh.vfs
                .sync_dir(&sh.dir)
                .map_err(|e| (format!("syncing directory {}", sh.dir.display()), e))?;
            // And the header before any frame is written: then a segment
            // whose frames validate but whose header does not was damaged
            // after the fact, and recovery fails closed on it instead of
            // taking it for a segment never activated.
            file.sync_data()
                .map_err(|e| (format!("fdatasync of the header of {}", path.display()), e))?;
        }
        sh.catalog.lock().segments.push(SegMeta {
            first_epoch,
            path: path.clone(),
        });
        if !spare.recycled {
            sh.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        }
        self.active = Some(ActiveSegment {
            file,
            path,
            id,
            salt,
            off: DATA_OFFSET,
            recycled: spare.recycled,
        });
        Ok(())
    }
}

/// Takes a ready spare, waiting for one being prepared, or makes one.
fn take_spare(sh: &Shared) -> Result<Spare, IoFailure> {
    let mut cat = sh.catalog.lock();
    loop {
        if let Some(s) = cat.spares.pop_front() {
            // Wake the preparer to replace it.
            sh.catalog_cv.notify_all();
            return Ok(s);
        }
        if cat.preparing {
            sh.catalog_cv.wait(&mut cat);
            continue;
        }
        let n = cat.next_spare;
        cat.next_spare += 1;
        drop(cat);
        let path = create_spare(sh, n, false)?;
        return Ok(Spare {
            path,
            recycled: false,
        });
    }
}

/// Creates `spare-<n>.tmp`, zero-filled to the segment size and synced with
/// its directory entry, so that later `fdatasync`s of it flush data only.
fn create_spare(sh: &Shared, n: u64, cancellable: bool) -> Result<PathBuf, IoFailure> {
    let path = sh.dir.join(format!("spare-{n}.tmp"));
    let ctx = |what: &str| format!("{what} {}", path.display());
    let file = sh.vfs.open(&path, true).map_err(|e| (ctx("creating"), e))?;
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut off = 0u64;
    // Under `off` nothing is ever synced, so zero-filling buys nothing (it
    // exists to keep metadata out of fdatasync) and would double the bytes
    // written: the segment grows as frames are written instead.
    let fill_to = if sh.cfg.sync == SyncPolicy::Off {
        0
    } else {
        sh.cfg.segment_bytes
    };
    while off < fill_to {
        if cancellable && sh.closing.load(Ordering::Acquire) {
            // Left short; the next open deletes it.
            return Err((
                ctx("abandoned preallocating"),
                std::io::Error::other("log is closing"),
            ));
        }
        let len = (sh.cfg.segment_bytes - off).min(CHUNK as u64) as usize;
        file.write_all_at(&[&zeros[..len]], off)
            .map_err(|e| (ctx("preallocating"), e))?;
        off += len as u64;
        if sh.cfg.sync != SyncPolicy::Off {
            // Flush as we go: one 64 MiB flush at the end would queue every
            // commit's fdatasync behind it for the whole transfer (~160 ms
            // at 400 MB/s); 1 MiB at a time bounds that to a few ms.
            file.sync_data().map_err(|e| (ctx("syncing"), e))?;
        }
    }
    if sh.cfg.sync != SyncPolicy::Off {
        file.sync_all().map_err(|e| (ctx("syncing"), e))?;
        sh.vfs
            .sync_dir(&sh.dir)
            .map_err(|e| (format!("syncing directory {}", sh.dir.display()), e))?;
    }
    Ok(path)
}

/// The preallocation thread: keeps one spare ready ahead of the flusher.
pub(crate) fn prepare_spares(sh: Arc<Shared>) {
    loop {
        let n = {
            let mut cat = sh.catalog.lock();
            while !cat.stop && !cat.spares.is_empty() {
                sh.catalog_cv.wait(&mut cat);
            }
            if cat.stop {
                return;
            }
            cat.preparing = true;
            let n = cat.next_spare;
            cat.next_spare += 1;
            n
        };
        let r = create_spare(&sh, n, true);
        let mut cat = sh.catalog.lock();
        cat.preparing = false;
        sh.catalog_cv.notify_all();
        match r {
            Ok(path) => cat.spares.push_back(Spare {
                path,
                recycled: false,
            }),
            // The flusher will make its own spare when it needs one and meet
            // the error itself, on the path that reports it.
            Err(_) => return,
        }
    }
}
