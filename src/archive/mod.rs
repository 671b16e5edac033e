//! Continuous archiving of the log to object storage, and restore from it.
//! The layout and the guarantees are in `docs/ARCHIVE.md`.
//!
//! One archiver thread per open log with an archive URL uploads the durable
//! epochs in order, as runs (everything durable and not yet archived, up to
//! [`OBJECT_MAX_BYTES`]) in create-only objects that each name the one
//! before and its checksum. What it has archived is persisted in the log
//! directory ([`STATE_FILE`]); segment removal waits for it (the archive
//! gate, `Shared::removal_limit`), and commits are refused with
//! [`Error::ArchiveBehind`] while more than `max_lag_bytes` waits.
//!
//! Lock order: `Archive::inner` is a leaf (taken by the flusher's hook
//! under the flush lock, and by waiters); the archiver thread holds no
//! lock of its own while it calls into the log.

pub mod backend;
mod local;
pub mod object;
mod restore;
pub mod settings;
mod state;
pub mod time;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::coordinator::Shared;
use crate::error::{Error, Result};
use crate::trace::{TraceEvent, TraceKind};

pub use backend::{Backend, Put};
pub use restore::{
    list, persisted_status, restore, verify, ListedObject, PersistedStatus, RestoreReport,
    RestoreTarget, VerifyReport,
};
pub use settings::{ArchiveConfig, ArchiveUrl, DEFAULT_MAX_LAG_BYTES};
pub use state::STATE_FILE;

/// An object holds epochs up to about this many bytes (one epoch alone may
/// be larger): `PWAL_ARCHIVE_OBJECT_MAX_BYTES`.
pub const OBJECT_MAX_BYTES: u64 = 16 << 20;
/// Without archive-durable commits or a waiter, the archiver lets epochs
/// gather this long before it uploads: an idle log is archived within this,
/// a busy one sends an object per interval, not per commit.
pub const GATHER_DELAY: Duration = Duration::from_millis(200);
/// Retries after a failure wait from this long, doubling, up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What [`crate::Log::archive_status`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStatus {
    /// Every epoch up to this one is in the archive.
    pub archived_epoch: u64,
    /// Bytes of durable epochs (their frames) not archived yet.
    pub lag_bytes: u64,
    /// Failed attempts since the last success (0 when the last one
    /// succeeded).
    pub consecutive_failures: u32,
    /// The last failure's message ("" when none since open).
    pub last_error: String,
    /// Objects this handle's log uploaded since open.
    pub objects_archived: u64,
    /// The last object's first epoch (0: none yet).
    pub last_object_first_epoch: u64,
}

/// An epoch durable and not yet archived: its frame's length and when it
/// became durable.
#[derive(Clone, Copy, Debug)]
struct Pending {
    epoch: u64,
    frame_len: u64,
    unix_ns: u64,
}

struct Inner {
    pending: VecDeque<Pending>,
    status: ArchiveStatus,
    /// The last object's checksum.
    last_crc: u32,
    /// The highest epoch a waiter wants archived.
    wanted: u64,
    /// The store was checked against the persisted state.
    checked: bool,
    /// Finished uploads: (first epoch, result), for the archiver.
    done: Vec<(u64, std::result::Result<Put, String>)>,
}

/// The archive side of one open log.
pub(crate) struct Archive {
    pub cfg: ArchiveConfig,
    store: Box<dyn Backend>,
    inner: Mutex<Inner>,
    /// The archiver sleeps on it: a new durable epoch, a waiter, close.
    work_cv: Condvar,
    /// Waiters for an archived epoch sleep on it.
    done_cv: Condvar,
    archived: AtomicU64,
    lag: AtomicU64,
}

pub(crate) fn unix_ns_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Archive {
    /// Every epoch up to this one is archived.
    pub fn archived_epoch(&self) -> u64 {
        self.archived.load(Ordering::Acquire)
    }

    /// The flusher's hook: `epoch` (its frame `frame_len` bytes) became
    /// durable. Called in epoch order, under the flush lock.
    pub fn note_durable(&self, epoch: u64, frame_len: u64) {
        let mut g = self.inner.lock();
        if epoch > g.pending.back().map_or(self.archived_epoch(), |p| p.epoch) {
            g.pending.push_back(Pending {
                epoch,
                frame_len,
                unix_ns: unix_ns_now(),
            });
            self.lag.fetch_add(frame_len, Ordering::AcqRel);
        }
        drop(g);
        self.work_cv.notify_one();
    }

    /// The lag gate of `submit`: refuses a commit while too much waits.
    pub fn check_lag(&self) -> Result<()> {
        let lag = self.lag.load(Ordering::Acquire);
        if lag > self.cfg.max_lag_bytes {
            let g = self.inner.lock();
            return Err(Error::ArchiveBehind(format!(
                "{lag} bytes of durable epochs are not archived to {} (the limit is {}; archived through epoch {}; last error: {})",
                self.cfg.url,
                self.cfg.max_lag_bytes,
                g.status.archived_epoch,
                if g.status.last_error.is_empty() { "none" } else { &g.status.last_error }
            )));
        }
        Ok(())
    }

    pub fn status(&self) -> ArchiveStatus {
        let g = self.inner.lock();
        ArchiveStatus {
            lag_bytes: self.lag.load(Ordering::Acquire),
            ..g.status.clone()
        }
    }

    /// Waits until `epoch` is archived, `timeout` passes, or the log
    /// closes.
    pub fn wait_archived(&self, sh: &Shared, epoch: u64, timeout: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut g = self.inner.lock();
        if g.wanted < epoch {
            g.wanted = epoch;
            self.work_cv.notify_one();
        }
        while self.archived_epoch() < epoch {
            if sh.closing.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let timed_out = || Error::Timeout {
                epoch,
                durable: self.archived_epoch(),
                waited_ms: start.elapsed().as_millis() as u64,
            };
            if timeout == Some(Duration::ZERO) {
                return Err(timed_out());
            }
            // Wake now and then to see a close.
            let step = Instant::now() + Duration::from_millis(100);
            let until = deadline.map_or(step, |d| d.min(step));
            self.done_cv.wait_until(&mut g, until);
            if deadline.is_some_and(|d| Instant::now() >= d) && self.archived_epoch() < epoch {
                return Err(timed_out());
            }
        }
        Ok(())
    }

    /// Wakes the archiver (at close).
    pub fn wake(&self) {
        let _g = self.inner.lock();
        self.work_cv.notify_all();
        self.done_cv.notify_all();
    }
}

/// Starts archiving for a log being opened: reads the persisted state,
/// measures the durable epochs not yet archived (the lag), and starts the
/// archiver thread. `None` when the log has no archive URL.
pub(crate) fn start(sh: &Arc<Shared>) -> Result<Option<std::thread::JoinHandle<()>>> {
    let Some(cfg) = sh.cfg.archive.clone() else {
        return Ok(None);
    };
    let store = backend::open(&cfg.url).map_err(Error::Invalid)?;
    let persisted = state::read(&*sh.vfs, &sh.dir)?;
    let durable = sh.state.lock().durable;
    let oldest = {
        let cat = sh.catalog.lock();
        cat.segments.first().map_or(durable + 1, |s| s.first_epoch)
    };
    // State of another archive URL says nothing about this one: archive
    // what the log still holds, from its oldest epoch.
    let (archived, last_first, last_crc) = match &persisted {
        Some(p) if p.url == cfg.url => (p.archived_epoch, p.last_first_epoch, p.last_crc),
        _ => (oldest.saturating_sub(1), 0, 0),
    };
    let mut pending = VecDeque::new();
    let mut lag = 0;
    let mut cursor = None;
    let now = unix_ns_now();
    let from = (archived + 1).max(oldest);
    for e in from..=durable {
        let l = local::read_epoch(sh, &mut cursor, e, false).map_err(|why| {
            Error::io(
                format!("archive: measuring epoch {e}"),
                std::io::Error::other(why),
            )
        })?;
        lag += l.frame_len;
        pending.push_back(Pending {
            epoch: e,
            frame_len: l.frame_len,
            unix_ns: now,
        });
    }
    let mut status = ArchiveStatus {
        archived_epoch: archived,
        last_object_first_epoch: last_first,
        ..ArchiveStatus::default()
    };
    if archived + 1 < oldest {
        status.last_error = format!(
            "epochs {} to {} left the log before they were archived to {}",
            archived + 1,
            oldest - 1,
            cfg.url
        );
    }
    let archive = Arc::new(Archive {
        cfg,
        store,
        inner: Mutex::new(Inner {
            pending,
            status,
            last_crc,
            wanted: 0,
            checked: last_first == 0,
            done: Vec::new(),
        }),
        work_cv: Condvar::new(),
        done_cv: Condvar::new(),
        archived: AtomicU64::new(archived),
        lag: AtomicU64::new(lag),
    });
    if sh.archive.set(archive.clone()).is_err() {
        return Err(Error::Internal("archive started twice".into()));
    }
    let s = sh.clone();
    let t = std::thread::Builder::new()
        .name("pwal-archiver".into())
        .spawn(move || run(s, archive))
        .map_err(|e| Error::io("starting the archiver thread", e))?;
    Ok(Some(t))
}

/// Objects being uploaded at once, at most: each next one names the one
/// before by its checksum, computed here, so it need not wait for it.
pub const PIPELINE_DEPTH: usize = 2;

/// An object built and handed to an upload thread.
struct Job {
    first: u64,
    last: u64,
    crc: u32,
    name: String,
    bytes: Arc<Vec<u8>>,
    started: Instant,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Starts the upload of `job` on a thread of its own; its result goes to
/// `Inner::done`, keyed by its first epoch, and wakes the archiver.
fn spawn_upload(a: &Arc<Archive>, job: &mut Job) -> std::result::Result<(), String> {
    let a2 = a.clone();
    let name = job.name.clone();
    let bytes = job.bytes.clone();
    let first = job.first;
    job.started = Instant::now();
    let h = std::thread::Builder::new()
        .name("pwal-archive-put".into())
        .spawn(move || {
            let r = a2.store.put_new(&name, &bytes);
            let mut g = a2.inner.lock();
            g.done.push((first, r));
            a2.work_cv.notify_all();
        })
        .map_err(|e| format!("starting an upload thread: {e}"))?;
    job.handle = Some(h);
    Ok(())
}

fn join(job: &mut Job) {
    if let Some(h) = job.handle.take() {
        let _ = h.join();
    }
}

/// The archiver's own bookkeeping: the uploads in flight, in epoch order,
/// and where the next object starts.
struct Pipeline {
    jobs: VecDeque<Job>,
    /// The last epoch of the last object built (in flight or done).
    built_through: u64,
    /// The link the next object built carries.
    next_prev: Option<object::PrevLink>,
    /// A failed upload waits for this instant before it is sent again.
    retry_at: Option<Instant>,
    backoff: Duration,
}

fn record_failure(sh: &Shared, a: &Archive, msg: String) {
    {
        let mut g = a.inner.lock();
        g.status.consecutive_failures += 1;
        g.status.last_error = msg.clone();
    }
    if let Some(t) = &sh.cfg.trace {
        let epoch = a.archived_epoch() + 1;
        t.emit(&TraceEvent::new(TraceKind::ArchiveFailed, epoch, &msg));
    }
}

fn run(sh: Arc<Shared>, a: Arc<Archive>) {
    let mut cursor = None;
    let mut p = Pipeline {
        jobs: VecDeque::new(),
        built_through: a.archived_epoch(),
        next_prev: None,
        retry_at: None,
        backoff: FIRST_BACKOFF,
    };
    {
        let g = a.inner.lock();
        let lf = g.status.last_object_first_epoch;
        p.next_prev = (lf != 0).then_some(object::PrevLink {
            first_epoch: lf,
            last_epoch: g.status.archived_epoch,
            crc: g.last_crc,
        });
    }
    loop {
        let closing = sh.closing.load(Ordering::Acquire);
        let flushed = closing && sh.state.lock().flusher_exited;
        // The store is checked against the persisted state first.
        if !a.inner.lock().checked {
            match check_store(&a) {
                Ok(()) => a.inner.lock().checked = true,
                Err(msg) => {
                    record_failure(&sh, &a, msg);
                    if closing {
                        return;
                    }
                    let mut g = a.inner.lock();
                    a.work_cv.wait_for(&mut g, p.backoff);
                    p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        // Finished uploads, oldest first.
        match complete(&sh, &a, &mut p, &mut cursor) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(()) => {
                if closing {
                    for j in p.jobs.iter_mut() {
                        join(j);
                    }
                    return;
                }
            }
        }
        // A failed upload goes again, the same bytes, when its time comes.
        if let Some(t) = p.retry_at {
            if Instant::now() >= t {
                p.retry_at = None;
                if let Some(j) = p.jobs.front_mut() {
                    if j.handle.is_none() {
                        if let Err(msg) = spawn_upload(&a, j) {
                            record_failure(&sh, &a, msg);
                            p.retry_at = Some(Instant::now() + p.backoff);
                        }
                    }
                }
                continue;
            }
        }
        // New objects, while there is room in the pipeline.
        let mut wait = if closing {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(100)
        };
        if p.retry_at.is_none() && p.jobs.len() < PIPELINE_DEPTH {
            match build(&sh, &a, &mut p, &mut cursor, closing) {
                Built::Job(mut job) => {
                    if let Err(msg) = spawn_upload(&a, &mut job) {
                        record_failure(&sh, &a, msg);
                        p.retry_at = Some(Instant::now() + p.backoff);
                    }
                    p.jobs.push_back(job);
                    continue;
                }
                Built::Later(d) => wait = wait.min(d),
                Built::Nothing => {
                    if flushed && p.jobs.is_empty() {
                        return;
                    }
                }
                Built::Failed(msg) => {
                    record_failure(&sh, &a, msg);
                    if closing && p.jobs.is_empty() {
                        return;
                    }
                    p.retry_at = None;
                    wait = p.backoff;
                    p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if let Some(t) = p.retry_at {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        let mut g = a.inner.lock();
        if g.done.is_empty() {
            a.work_cv.wait_for(&mut g, wait);
        }
    }
}

/// Handles the oldest upload if it finished: `Ok(true)` when it made
/// progress, `Ok(false)` when nothing finished, `Err(())` after a failure.
fn complete(
    sh: &Shared,
    a: &Archive,
    p: &mut Pipeline,
    cursor: &mut Option<local::Cursor>,
) -> std::result::Result<bool, ()> {
    let Some(front) = p.jobs.front() else {
        return Ok(false);
    };
    let first = front.first;
    let r = {
        let mut g = a.inner.lock();
        match g.done.iter().position(|(f, _)| *f == first) {
            Some(i) => g.done.swap_remove(i).1,
            None => return Ok(false),
        }
    };
    let mut job = p.jobs.pop_front().expect("front exists");
    join(&mut job);
    let archived = a.archived_epoch();
    let prev = {
        let g = a.inner.lock();
        let lf = g.status.last_object_first_epoch;
        (lf != 0).then_some(object::PrevLink {
            first_epoch: lf,
            last_epoch: archived,
            crc: g.last_crc,
        })
    };
    let outcome = match r {
        Ok(Put::Created) => Ok((job.first, job.last, job.crc)),
        Ok(Put::Exists) => adopt(a, &job, prev, sh, cursor),
        Err(msg) => {
            // Sent again later, the same bytes: the uploads after it (they
            // name it by its checksum) stay valid.
            record_failure(sh, a, msg);
            p.retry_at = Some(Instant::now() + p.backoff);
            p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
            p.jobs.push_front(job);
            return Err(());
        }
    };
    let (f, l, c) = match outcome {
        Ok(x) => x,
        Err(msg) => {
            record_failure(sh, a, msg);
            // What was built after it named it; start again from the
            // archived epoch once the uploads in flight are done.
            for j in p.jobs.iter_mut() {
                join(j);
            }
            p.jobs.clear();
            a.inner.lock().done.clear();
            p.built_through = archived;
            p.next_prev = prev;
            p.retry_at = Some(Instant::now() + p.backoff);
            p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
            return Err(());
        }
    };
    if (f, l, c) != (job.first, job.last, job.crc) {
        // An adopted object of another extent: what was built after ours
        // named ours, so it is built again after the adopted one.
        for j in p.jobs.iter_mut() {
            join(j);
        }
        p.jobs.clear();
        a.inner.lock().done.clear();
        p.built_through = l;
        p.next_prev = Some(object::PrevLink {
            first_epoch: f,
            last_epoch: l,
            crc: c,
        });
    }
    if let Err(e) = state::write(
        &*sh.vfs,
        &sh.dir,
        &state::Persisted {
            url: a.cfg.url.clone(),
            archived_epoch: l,
            last_first_epoch: f,
            last_crc: c,
        },
    ) {
        record_failure(sh, a, format!("persisting the archive state: {e}"));
        // Sent again: it exists, is found to be ours, and the state is
        // written again.
        p.jobs.push_front(job);
        p.retry_at = Some(Instant::now() + p.backoff);
        p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
        return Err(());
    }
    {
        let mut g = a.inner.lock();
        let mut freed = 0;
        while g.pending.front().is_some_and(|q| q.epoch <= l) {
            freed += g.pending.pop_front().expect("non-empty").frame_len;
        }
        g.status.archived_epoch = l;
        g.status.last_object_first_epoch = f;
        g.status.consecutive_failures = 0;
        g.status.objects_archived += 1;
        g.last_crc = c;
        a.archived.store(l, Ordering::Release);
        a.lag.fetch_sub(freed, Ordering::AcqRel);
        a.done_cv.notify_all();
    }
    p.backoff = FIRST_BACKOFF;
    if let Some(t) = &sh.cfg.trace {
        let detail = format!("{}/{}", a.cfg.url.trim_end_matches('/'), job.name);
        t.emit(&TraceEvent {
            transactions: 0,
            bytes: job.bytes.len() as u64,
            duration: job.started.elapsed(),
            ..TraceEvent::new(TraceKind::ArchiveObject, l, &detail)
        });
    }
    release_segments(sh);
    Ok(true)
}

enum Built {
    Job(Job),
    /// Epochs are gathering; look again after this long.
    Later(Duration),
    Nothing,
    Failed(String),
}

/// Builds the next object from the synced epochs after the last one built.
fn build(
    sh: &Shared,
    a: &Archive,
    p: &mut Pipeline,
    cursor: &mut Option<local::Cursor>,
    closing: bool,
) -> Built {
    // Only epochs synced to the local disk are archived: an epoch written
    // but not synced (under `normal` or `off`) could be lost with the
    // power, and the log would then number new epochs over it.
    let (synced, written) = {
        let st = sh.state.lock();
        (st.synced, st.written)
    };
    if written > synced && written > p.built_through && sh.cfg.sync != crate::SyncPolicy::Full {
        let now = Instant::now();
        let _ = sh.sync_through(written, Some(now + Duration::from_secs(1)), now);
    }
    let synced = sh.state.lock().synced.max(synced);
    if synced <= p.built_through {
        return Built::Nothing;
    }
    let (run, bytes, urgent) = {
        let g = a.inner.lock();
        let urgent = a.cfg.durable || g.wanted > p.built_through || closing;
        let mut run = Vec::new();
        let mut bytes = 0u64;
        for q in g
            .pending
            .iter()
            .filter(|q| q.epoch > p.built_through && q.epoch <= synced)
        {
            if !run.is_empty() && bytes + q.frame_len > OBJECT_MAX_BYTES {
                break;
            }
            bytes += q.frame_len;
            run.push(*q);
        }
        (run, bytes, urgent)
    };
    let Some(oldest) = run.first() else {
        return Built::Nothing;
    };
    if !urgent && bytes < OBJECT_MAX_BYTES {
        let age = Duration::from_nanos(unix_ns_now().saturating_sub(oldest.unix_ns));
        if age < GATHER_DELAY {
            return Built::Later(GATHER_DELAY - age);
        }
    }
    let mut epochs = Vec::with_capacity(run.len());
    for q in &run {
        match local::read_epoch(sh, cursor, q.epoch, true) {
            Ok(mut l) => {
                l.epoch.durable_unix_ns = q.unix_ns;
                epochs.push(l.epoch);
            }
            Err(why) => {
                *cursor = None;
                return Built::Failed(format!("reading epoch {} from the log: {why}", q.epoch));
            }
        }
    }
    let first = epochs[0].epoch;
    let last = epochs[epochs.len() - 1].epoch;
    let (bytes, crc) = object::encode(p.next_prev, &epochs);
    p.built_through = last;
    p.next_prev = Some(object::PrevLink {
        first_epoch: first,
        last_epoch: last,
        crc,
    });
    Built::Job(Job {
        first,
        last,
        crc,
        name: object::object_name(first),
        bytes: Arc::new(bytes),
        started: Instant::now(),
        handle: None,
    })
}

/// The store must hold the last object the state names, with its checksum:
/// otherwise the archive was changed or replaced behind this log's back.
fn check_store(a: &Archive) -> std::result::Result<(), String> {
    let (first, crc, archived) = {
        let g = a.inner.lock();
        (
            g.status.last_object_first_epoch,
            g.last_crc,
            g.status.archived_epoch,
        )
    };
    let name = object::object_name(first);
    match a.store.get(&name)? {
        None => Err(format!(
            "{}: the last archived object {name} is missing from the store",
            a.cfg.url
        )),
        Some(b) => {
            let o =
                object::decode(&b, first).map_err(|why| format!("{}: {name}: {why}", a.cfg.url))?;
            if o.crc != crc || o.last_epoch != archived {
                return Err(format!(
                    "{}: {name} is not the object this log archived (checksum {:08x}, epochs {}..={}; expected {crc:08x}, through {archived})",
                    a.cfg.url, o.crc, o.first_epoch, o.last_epoch
                ));
            }
            Ok(())
        }
    }
}

/// An object of the name the next upload wants exists. It is this log's
/// own when it chains onto the last object and holds exactly the epochs
/// the log holds (an upload whose state was not persisted before a
/// crash); then it is adopted. Otherwise another writer forked the
/// archive: a conflict, reported.
fn adopt(
    a: &Archive,
    job: &Job,
    prev: Option<object::PrevLink>,
    sh: &Shared,
    cursor: &mut Option<local::Cursor>,
) -> std::result::Result<(u64, u64, u32), String> {
    let name = &job.name;
    let conflict = |why: String| {
        format!(
            "conflict: {}/{name} exists and was not written by this log ({why}); another log archives to this URL",
            a.cfg.url.trim_end_matches('/')
        )
    };
    let b = a
        .store
        .get(name)?
        .ok_or_else(|| format!("{}: {name} exists yet cannot be read", a.cfg.url))?;
    if b == *job.bytes {
        // Ours: an earlier attempt was created and its answer lost.
        return Ok((job.first, job.last, job.crc));
    }
    let o = object::decode(&b, job.first)
        .map_err(|why| conflict(format!("it does not decode: {why}")))?;
    if o.prev != prev {
        return Err(conflict(format!(
            "it follows {:?}, this log's last object is {:?}",
            o.prev, prev
        )));
    }
    let durable = sh.state.lock().synced;
    if o.last_epoch > durable {
        return Err(conflict(format!(
            "it holds epochs through {}, this log has {durable}",
            o.last_epoch
        )));
    }
    for theirs in &o.epochs {
        let mine = local::read_epoch(sh, cursor, theirs.epoch, true)
            .map_err(|why| format!("reading epoch {}: {why}", theirs.epoch))?
            .epoch;
        let same = mine.body == theirs.body
            && mine.txn_count == theirs.txn_count
            && mine.first_commit_seq == theirs.first_commit_seq
            && mine.last_commit_seq == theirs.last_commit_seq
            && mine.db_size_pages == theirs.db_size_pages
            && mine.page_set_size == theirs.page_set_size;
        if !same {
            return Err(conflict(format!("epoch {} differs", theirs.epoch)));
        }
    }
    *cursor = None;
    Ok((o.first_epoch, o.last_epoch, o.crc))
}

/// After progress: segments that a checkpoint could free and the archive
/// held back are removed now (as a checkpoint would remove them).
fn release_segments(sh: &Shared) {
    let mark = sh.state.lock().checkpoint_mark;
    if mark == 0 || sh.poisoned.load(Ordering::Acquire) {
        return;
    }
    let _ = sh.checkpoint_steps(mark, Instant::now());
}
