//! The segment store: the catalog of segment files, the spares, and every
//! rule about the order in which segment files are created, named, synced,
//! recycled and removed. The byte layout of a segment is `segment.rs`; what
//! goes into one is the flusher's.
//!
//! The ordering rules, each written once, here:
//!
//! * a spare the preparer makes is zero-filled and synced, with its
//!   directory entry, before it is used (`create_spare`), so that the
//!   `fdatasync` after each epoch flushes data, not metadata (under `off`:
//!   neither); a segment started with no spare ready is an empty file whose
//!   syncs flush its size too (`take_spare`);
//! * a spare becomes a segment by a rename that is made durable, then a
//!   header that is written and synced, before the first frame is written
//!   (`activate`): a segment whose header does not validate but whose
//!   frames do was damaged after the fact;
//! * a segment leaves the catalog only after its rename or unlink
//!   succeeded, and a recycled file becomes a spare only after the directory
//!   sync (`remove_through`); the caller has made a synced frame carry the
//!   checkpoint mark first;
//! * at open, every segment and the directory are synced and the page cache
//!   of the segments is dropped before the tail is read (`sync_all`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::{Resolved, SyncPolicy};
use crate::coordinator::Shared;
use crate::error::{Error, Result};
use crate::io::{Vfs, VfsFile};
use crate::segment::{
    new_salt, parse_segment_name, parse_spare_name, segment_name, FoundSegment, SegmentHeader,
};
use crate::trace::{TraceEvent, TraceKind};

/// A failed file operation: what was being done, and the OS error.
pub(crate) type IoFailure = (String, std::io::Error);

/// A segment that holds epochs: its file and first epoch.
#[derive(Clone, Debug)]
pub(crate) struct SegMeta {
    pub first_epoch: u64,
    pub path: PathBuf,
    /// The bytes it was made to hold (`Spare::capacity`; for a segment
    /// found at open, its length): a segment that started empty is shorter
    /// than that on disk.
    pub capacity: u64,
    /// Recovery found damage in it (at or below the checkpoint mark, or
    /// open would have refused the log): deleted, never recycled, when a
    /// checkpoint removes it.
    pub damaged: bool,
}

/// A preallocated (or recycled) file waiting to become a segment.
#[derive(Debug)]
pub(crate) struct Spare {
    pub path: PathBuf,
    /// Holds stale frames from an earlier life.
    pub recycled: bool,
    /// The bytes the segment may hold (the file's preallocated length, or
    /// for a file that grows as written, the size it may grow to).
    pub capacity: u64,
}

/// The segment files of the log.
pub(crate) struct Catalog {
    /// Segments holding epochs, ascending; the last is being written.
    pub segments: Vec<SegMeta>,
    pub next_id: u64,
    pub spares: VecDeque<Spare>,
    pub next_spare: u64,
    pub stop: bool,
    /// Recoveries reading the log beside this process's writer: while any
    /// runs, no segment is removed or recycled (a checkpoint records its
    /// mark and leaves the segments to the next one).
    pub readers: usize,
    /// The capacity of the next spare to prepare: segments start small
    /// (`FIRST_SEGMENT_BYTES`) and double up to `segment_bytes`.
    pub next_capacity: u64,
}

/// The capacity of a log's first segment.
pub(crate) fn first_capacity(cfg: &Resolved) -> u64 {
    crate::config::FIRST_SEGMENT_BYTES.min(cfg.segment_bytes)
}

/// Spares kept ready (preallocated or recycled); more recycled files are
/// deleted.
pub(crate) const SPARES_KEPT: usize = 2;

/// Syncs every segment file of `dir` and the directory itself, and drops
/// their cached pages so that the scan that follows reads what the disk
/// holds: after a failed writeback Linux keeps the pages cached but marks
/// them clean, so a read through the cache could see data that never
/// reached the disk, and a later `fsync` would not write it.
pub(crate) fn sync_all(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for name in names.iter().filter(|n| parse_segment_name(n).is_some()) {
        let path = dir.join(name);
        vfs.drop_cache(&path)
            .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    }
    vfs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Builds the catalog at open from the segments the tail scan listed:
/// removes a newest segment left without a header by a crash, keeps up to
/// [`SPARES_KEPT`] spares of the right size and deletes the others.
pub(crate) fn open_catalog(
    vfs: &dyn Vfs,
    dir: &Path,
    cfg: &Resolved,
    found: Vec<FoundSegment>,
    damaged: &[PathBuf],
) -> Result<Catalog> {
    // A file without a valid header between activated segments (the scan
    // found every epoch it can hold at or below the checkpoint mark, or
    // open would have refused the log) stands in the catalog for the epochs
    // before the next segment: it goes with the segment before it, once a
    // checkpoint covers the next segment's first epoch - 1.
    let segments: Vec<SegMeta> = found
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let first_epoch = match s.header {
                Some(h) => h.first_epoch,
                None => found[i + 1..].iter().find_map(|n| n.header)?.first_epoch,
            };
            Some(SegMeta {
                first_epoch,
                path: s.path.clone(),
                capacity: s.len.clamp(first_capacity(cfg), cfg.segment_bytes.max(1)),
                damaged: s.header.is_none() || damaged.contains(&s.path),
            })
        })
        .collect();
    // A segment file newer than every activated one, without a valid header
    // (the scan has checked that its first frame is not valid either): a
    // crash hit between the rename that named it and the sync of its
    // header. It holds no epoch; remove it so it cannot be mistaken later
    // for a segment damaged after use.
    let newest = found
        .iter()
        .filter(|s| s.header.is_some())
        .map(|s| s.id)
        .max()
        .unwrap_or(0);
    let mut removed = false;
    for s in found.iter().filter(|s| s.header.is_none() && s.id > newest) {
        vfs.remove_file(&s.path)
            .map_err(|e| Error::io(format!("removing {}", s.path.display()), e))?;
        removed = true;
    }
    if removed {
        vfs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
    }
    let mut next_id = found.iter().map(|s| s.id).max().unwrap_or(0) + 1;
    let mut spares = VecDeque::new();
    let mut next_spare = 0;
    for name in vfs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
    {
        if let Some(n) = parse_spare_name(&name) {
            next_spare = next_spare.max(n + 1);
            let path = dir.join(&name);
            let len = vfs
                .open_read(&path)
                .and_then(|f| f.len())
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if len > 0 && len <= cfg.segment_bytes && spares.len() < SPARES_KEPT {
                spares.push_back(Spare {
                    path,
                    recycled: true,
                    capacity: len,
                });
            } else {
                vfs.remove_file(&path)
                    .map_err(|e| Error::io(format!("deleting {}", path.display()), e))?;
            }
        } else if let Some(id) = parse_segment_name(&name) {
            next_id = next_id.max(id + 1);
        }
    }
    Ok(Catalog {
        segments,
        next_id,
        spares,
        next_spare,
        stop: false,
        readers: 0,
        next_capacity: first_capacity(cfg),
    })
}

/// Whether a checkpoint through `through` can remove a segment: whole
/// segments only, oldest first, never the one being written.
pub(crate) fn removable(cat: &Catalog, through: u64) -> bool {
    cat.readers == 0 && cat.segments.len() > 1 && cat.segments[1].first_epoch - 1 <= through
}

/// Keeps every segment file in place while a recovery reads the log beside
/// this process's writer (the catalog's `readers`): dropped, removal may go
/// on at the next checkpoint.
pub(crate) struct RemovalHold {
    shared: std::sync::Arc<Shared>,
}

impl RemovalHold {
    /// Waits for a removal in progress (it holds the catalog lock), then
    /// holds off every later one.
    pub fn new(shared: std::sync::Arc<Shared>) -> RemovalHold {
        shared.catalog.lock().readers += 1;
        RemovalHold { shared }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for RemovalHold {
    fn drop(&mut self) {
        self.shared.catalog.lock().readers -= 1;
    }
}

/// A frame at least this large that starts a segment stops the zero-fill
/// of spares ([`Shared::large_frames`](crate::coordinator::Shared);
/// [`activate`]).
pub(crate) const LARGE_FRAME: u64 = 1 << 20;

/// Frames smaller than [`LARGE_FRAME`] written back to back, this many
/// bytes of them, end a spell of large frames: the preparer zero-fills
/// spares again ([`small_frames_again`]).
pub(crate) const SMALL_RUN_BYTES: u64 = 4 * LARGE_FRAME;

/// Ends a spell of large frames (a run of small ones was written, or the
/// log went idle): the preparer makes zero-filled spares again.
pub(crate) fn small_frames_again(sh: &Shared) {
    if sh.large_frames.load(Ordering::Acquire) {
        // Under the catalog lock, where the preparer tests it.
        let _cat = sh.catalog.lock();
        sh.large_frames.store(false, Ordering::Release);
        sh.catalog_cv.notify_all();
    }
}

/// Removes (recycles up to [`SPARES_KEPT`], deletes the rest) every segment
/// whose epochs are all at or below `through`, oldest first, so that the log
/// stays a contiguous run of epochs whatever point a crash hits. A failed
/// file operation poisons the log.
pub(crate) fn remove_through(sh: &Shared, through: u64) -> Result<()> {
    let mut cat = sh.catalog.lock();
    let mut recycled = Vec::new();
    let mut failure = None;
    // Whole segments only, oldest first, never the one being written: the
    // log stays a contiguous run of epochs whatever point a crash hits.
    while removable(&cat, through) {
        let seg = cat.segments[0].clone();
        // A segment made smaller than the segments the log now grows to is
        // deleted, not recycled: the small first segments of a log that
        // grew would otherwise circulate for ever, each used up in a
        // fraction of a full one's time, so that the spares ran out between
        // checkpoints and the preparer zero-filled a new full-size file
        // beside the commits (deleted again at the next checkpoint). Its
        // capacity decides, not its length: a segment that started empty
        // (under `off`, for a large frame, or when the preparer was late)
        // is a little shorter than its capacity.
        let full_size = seg.capacity >= cat.next_capacity && !seg.damaged;
        let done = if cat.spares.len() + recycled.len() < SPARES_KEPT && full_size {
            let n = cat.next_spare;
            cat.next_spare += 1;
            let to = sh.dir.join(format!("spare-{n}.tmp"));
            sh.vfs
                .rename(&seg.path, &to)
                .map(|()| {
                    if let Some(t) = &sh.cfg.trace {
                        let what = format!("{} -> {}", seg.path.display(), to.display());
                        t.emit(&TraceEvent::new(
                            TraceKind::SegmentRecycled,
                            seg.first_epoch,
                            &what,
                        ));
                    }
                    recycled.push((to.clone(), seg.capacity))
                })
                .map_err(|e| {
                    let what = format!("recycling {} as {}", seg.path.display(), to.display());
                    (what, e)
                })
        } else {
            sh.vfs
                .remove_file(&seg.path)
                .map(|()| {
                    sh.counters.segments_deleted.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = &sh.cfg.trace {
                        let what = seg.path.display().to_string();
                        t.emit(&TraceEvent::new(
                            TraceKind::SegmentDeleted,
                            seg.first_epoch,
                            &what,
                        ));
                    }
                })
                .map_err(|e| (format!("deleting {}", seg.path.display()), e))
        };
        match done {
            Ok(()) => {
                cat.segments.remove(0);
            }
            Err(f) => {
                failure = Some(f);
                break;
            }
        }
    }
    // Under every policy, `off` included: a recycled file must be a spare
    // on disk before it can become a segment again. Otherwise a crash can
    // leave its new header (synced at activation) under its old segment
    // name, over frames of its old life, which recovery must take for a
    // segment header damaged after use.
    if failure.is_none() {
        if let Err(e) = sh.vfs.sync_dir(&sh.dir) {
            failure = Some((format!("syncing directory {}", sh.dir.display()), e));
        }
    }
    if let Some((what, e)) = failure {
        drop(cat);
        let next = sh.state.lock().durable + 1;
        sh.poison(
            next,
            format!("checkpoint through epoch {through}: {what}"),
            &e,
        );
        return Err(Error::io(
            format!("checkpoint through epoch {through}: {what}"),
            e,
        ));
    }
    for (path, made_for) in recycled {
        // A file that grew as written may be longer than the segment size
        // (its length is what it holds without growing); one that started
        // empty is a little shorter than the capacity it was made for, and
        // keeps that capacity (or it would count as a smaller segment).
        let capacity = sh
            .vfs
            .open_read(&path)
            .and_then(|f| f.len())
            .unwrap_or(0)
            .max(made_for)
            .clamp(first_capacity(&sh.cfg), sh.cfg.segment_bytes.max(1));
        cat.spares.push_back(Spare {
            path,
            recycled: true,
            capacity,
        });
        sh.counters
            .segments_recycled
            .fetch_add(1, Ordering::Relaxed);
    }
    sh.catalog_cv.notify_all();
    Ok(())
}

/// A spare made a segment by [`activate`].
pub(crate) struct NewSegment {
    pub file: Box<dyn VfsFile>,
    pub path: PathBuf,
    pub id: u64,
    pub salt: u64,
    /// Holds stale frames from an earlier life.
    pub recycled: bool,
    /// The bytes it may hold (`Spare::capacity`).
    pub capacity: u64,
}

/// Makes a spare the segment that `first_epoch` starts: renamed to its
/// segment name, its header written, and both synced (but under `off`)
/// before it is returned.
///
/// `large`: the frame about to be written is at least [`LARGE_FRAME`]; it
/// takes a ready spare (a recycled one first) and otherwise starts an empty
/// segment that grows as frames are written, and the preparer stops
/// zero-filling (`Shared::large_frames`) until a smaller frame starts a
/// segment, small frames have been written for a while, or the log idles.
/// Zero-filling exists so that a small commit's `fdatasync` flushes data
/// only, and for a frame of megabytes the metadata its sync
/// also flushes costs little next to the data, while the zeros would double
/// the bytes a bandwidth-bound stream writes. Any frame starts an empty
/// segment when no spare is ready ([`take_spare`]). Epochs written later
/// into an empty-started segment pay that metadata too, until the next
/// segment.
pub(crate) fn activate(
    sh: &Shared,
    first_epoch: u64,
    large: bool,
) -> std::result::Result<NewSegment, IoFailure> {
    let spare = take_spare(sh, large)?;
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
    // The log must still hold from its oldest live segment on, and from the
    // epoch after the checkpoint mark; a new log starts here.
    let oldest = sh
        .catalog
        .lock()
        .segments
        .first()
        .map_or(first_epoch, |s| s.first_epoch);
    let mark = sh.state.lock().checkpoint_mark;
    let header = SegmentHeader {
        id,
        salt,
        first_epoch,
        log_start_epoch: oldest.max(mark.saturating_add(1)).min(first_epoch),
    }
    .encode();
    file.write_all_at(&[&header], 0)
        .map_err(|e| (format!("writing the header of {}", path.display()), e))?;
    // Under every policy, `off` included (two syncs per segment, not per
    // commit): the rename must be durable before anything in the file is
    // acknowledged, and the header before any frame is written. Then a
    // segment whose frames validate but whose header does not was damaged
    // after the fact, and recovery fails closed on it instead of taking it
    // for a segment never activated; and a power loss under `off` cannot
    // leave frames behind a header that never reached the disk, which would
    // make the log refuse to open.
    sh.vfs
        .sync_dir(&sh.dir)
        .map_err(|e| (format!("syncing directory {}", sh.dir.display()), e))?;
    file.sync_data()
        .map_err(|e| (format!("fdatasync of the header of {}", path.display()), e))?;
    sh.catalog.lock().segments.push(SegMeta {
        first_epoch,
        path: path.clone(),
        damaged: false,
        capacity: spare.capacity,
    });
    if !spare.recycled {
        sh.counters.segments_created.fetch_add(1, Ordering::Relaxed);
    }
    let kind = if spare.recycled {
        TraceKind::SegmentReused
    } else {
        TraceKind::SegmentCreated
    };
    if let Some(t) = &sh.cfg.trace {
        t.emit(&TraceEvent::new(
            kind,
            first_epoch,
            &path.display().to_string(),
        ));
    }
    Ok(NewSegment {
        file,
        path,
        id,
        salt,
        recycled: spare.recycled,
        capacity: spare.capacity,
    })
}

/// Takes a ready spare, or starts an unfilled segment at once.
///
/// No commit ever waits for zeros: when the log outruns the preparer (a log
/// nobody checkpoints, written faster than the disk can also fill its next
/// segment), the segment starts empty and grows as frames are written. Its
/// `fdatasync`s then also flush the file's size until the next segment,
/// which costs less than stalling every committer behind a fill of up to a
/// whole segment, and writes each byte once instead of twice.
fn take_spare(sh: &Shared, large: bool) -> std::result::Result<Spare, IoFailure> {
    let mut cat = sh.catalog.lock();
    if sh.large_frames.swap(large, Ordering::AcqRel) != large {
        // Wake the preparer: a small frame wants spares filled again, and a
        // fill in progress stops for a large one.
        sh.catalog_cv.notify_all();
    }
    // A large frame takes a recycled file first (free to reuse), or a
    // zero-filled one (overwriting it costs less than appending); the
    // preparer then makes no other for it.
    let pick = if large {
        cat.spares
            .iter()
            .position(|s| s.recycled)
            .or((!cat.spares.is_empty()).then_some(0))
    } else if cat.spares.is_empty() {
        None
    } else {
        Some(0)
    };
    if let Some(s) = pick.and_then(|i| cat.spares.remove(i)) {
        cat.next_capacity = doubled(sh, s.capacity);
        // Wake the preparer to replace it.
        sh.catalog_cv.notify_all();
        return Ok(s);
    }
    let n = cat.next_spare;
    cat.next_spare += 1;
    let capacity = cat.next_capacity;
    cat.next_capacity = doubled(sh, capacity);
    drop(cat);
    let path =
        create_spare(sh, n, false, false, capacity)?.expect("an unfilled spare is never abandoned");
    Ok(Spare {
        path,
        recycled: false,
        capacity,
    })
}

/// After an idle spell (the flusher's trim): spares larger than a first
/// segment are deleted, and the next segment starts small again, so that an
/// idle log shrinks back to its active segment and one small spare. Deleting
/// a spare loses nothing (it holds no epoch); one that cannot be deleted is
/// kept.
pub(crate) fn trim_spares(sh: &Shared) {
    let first = first_capacity(&sh.cfg);
    let mut cat = sh.catalog.lock();
    let mut kept = VecDeque::new();
    // An idle spell ends a spell of large frames: zero-filling is free now,
    // and whatever comes next finds a spare.
    let mut removed = sh.large_frames.swap(false, Ordering::AcqRel);
    for s in std::mem::take(&mut cat.spares) {
        if s.capacity > first && sh.vfs.remove_file(&s.path).is_ok() {
            removed = true;
        } else {
            kept.push_back(s);
        }
    }
    cat.spares = kept;
    cat.next_capacity = first;
    if removed {
        // Wake the preparer to make a small one (or its first after large
        // frames).
        sh.catalog_cv.notify_all();
    }
}

/// Deletes every spare, those a stopped preparer left half filled too, and
/// syncs the directory (at close, once the threads are joined).
pub(crate) fn delete_spares(sh: &Shared) -> Result<()> {
    let mut cat = sh.catalog.lock();
    cat.spares.clear();
    let names = sh
        .vfs
        .list_dir(&sh.dir)
        .map_err(|e| Error::io(format!("listing {}", sh.dir.display()), e))?;
    let mut removed = false;
    for name in names.iter().filter(|n| parse_spare_name(n).is_some()) {
        let path = sh.dir.join(name);
        sh.vfs
            .remove_file(&path)
            .map_err(|e| Error::io(format!("deleting {}", path.display()), e))?;
        removed = true;
    }
    if removed {
        sh.vfs
            .sync_dir(&sh.dir)
            .map_err(|e| Error::io(format!("syncing directory {}", sh.dir.display()), e))?;
    }
    Ok(())
}

/// The capacity of the segment after one of `capacity`: twice as large, up
/// to the segment size.
fn doubled(sh: &Shared, capacity: u64) -> u64 {
    capacity
        .saturating_mul(2)
        .clamp(first_capacity(&sh.cfg), sh.cfg.segment_bytes)
}

/// The size of each write of zeros into a spare: small enough that the
/// page cache gives the segment small folios. A kernel sizes a folio by
/// the write that creates it, and each commit's write into a large folio
/// (made by a 1 MiB write) walks every block of it.
const FILL_WRITE: usize = 64 << 10;

/// A spare being zero-filled is synced every this many bytes. Each sync
/// puts this much writeback in front of the commits' own `fdatasync`s (the
/// disk queue is shared), so epochs written while a growing log fills its
/// spares take about 2 ms beside 0.2 ms ones. 256 KiB shortened those, but
/// filled so much slower that a growing log outran the preparer and broke
/// the doubling of its segments (two 8 MiB segments in a row).
const FILL_SYNC_EVERY: u64 = 1 << 20;

/// Creates `spare-<n>.tmp`, zero-filled to the segment size (when `fill`)
/// and synced with its directory entry, so that later `fdatasync`s of it
/// flush data only. `cancellable` (the preparer's own fills): the fill is
/// abandoned when the log closes (an error) or starts a segment for a large
/// frame (`None`: the file is removed; it holds no epoch).
fn create_spare(
    sh: &Shared,
    n: u64,
    cancellable: bool,
    fill: bool,
    capacity: u64,
) -> std::result::Result<Option<PathBuf>, IoFailure> {
    let path = sh.dir.join(format!("spare-{n}.tmp"));
    let ctx = |what: &str| format!("{what} {}", path.display());
    let file = sh.vfs.open(&path, true).map_err(|e| (ctx("creating"), e))?;
    let zeros = vec![0u8; FILL_WRITE];
    let mut off = 0u64;
    // Under `off` nothing is ever synced, so zero-filling buys nothing (it
    // exists to keep metadata out of fdatasync) and would double the bytes
    // written: the segment grows as frames are written instead.
    let fill_to = if sh.cfg.sync == SyncPolicy::Off || !fill {
        0
    } else {
        capacity
    };
    while off < fill_to {
        if cancellable && sh.closing.load(Ordering::Acquire) {
            // Left short: the next open keeps it as a spare of the size it
            // reached (a file holding no epoch, whatever its length), or
            // deletes it when it is empty.
            return Err((
                ctx("abandoned preallocating"),
                std::io::Error::other("log is closing"),
            ));
        }
        if cancellable && sh.large_frames.load(Ordering::Acquire) {
            drop(file);
            let _ = sh.vfs.remove_file(&path);
            return Ok(None);
        }
        let len = (fill_to - off).min(FILL_WRITE as u64) as usize;
        file.write_all_at(&[&zeros[..len]], off).map_err(|e| {
            (
                format!("preallocating {} at offset {off}", path.display()),
                e,
            )
        })?;
        off += len as u64;
        if off.is_multiple_of(FILL_SYNC_EVERY) || off == fill_to {
            // Flush as we go: one 64 MiB flush at the end would queue every
            // commit's fdatasync behind it for the whole transfer (~160 ms
            // at 400 MB/s); 1 MiB at a time bounds that to a few ms.
            file.sync_data().map_err(|e| {
                (
                    format!("syncing {} through offset {off}", path.display()),
                    e,
                )
            })?;
        }
    }
    if sh.cfg.sync != SyncPolicy::Off {
        file.sync_all().map_err(|e| (ctx("syncing"), e))?;
        sh.vfs
            .sync_dir(&sh.dir)
            .map_err(|e| (format!("syncing directory {}", sh.dir.display()), e))?;
    }
    Ok(Some(path))
}

/// The preallocation thread: keeps one spare ready ahead of the flusher.
pub(crate) fn prepare_spares(sh: Arc<Shared>) {
    loop {
        let n = {
            let mut cat = sh.catalog.lock();
            while !cat.stop && (!cat.spares.is_empty() || sh.large_frames.load(Ordering::Acquire)) {
                sh.preparer_idle.store(true, Ordering::Release);
                sh.catalog_cv.wait(&mut cat);
            }
            sh.preparer_idle.store(false, Ordering::Release);
            if cat.stop {
                return;
            }
            let n = cat.next_spare;
            cat.next_spare += 1;
            (n, cat.next_capacity)
        };
        let (n, capacity) = n;
        while sh.inject_hold_preparer.load(Ordering::Acquire) && !sh.closing.load(Ordering::Acquire)
        {
            sh.preparer_held.store(true, Ordering::Release);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        sh.preparer_held.store(false, Ordering::Release);
        let r = create_spare(&sh, n, true, true, capacity);
        let mut cat = sh.catalog.lock();
        sh.catalog_cv.notify_all();
        match r {
            // The log's growth moved while this one was being made: an idle
            // trim reset it (this spare is larger than the log now wants),
            // or the flusher, finding no spare ready, started an empty
            // segment of this size and doubled it (this spare would make
            // two segments of one size in a row, and be deleted at its
            // removal as too small). Drop it (it holds no epoch) and make
            // the one the log wants.
            Ok(Some(path)) if capacity != cat.next_capacity => {
                let _ = sh.vfs.remove_file(&path);
            }
            // Abandoned for a stream of large frames (and removed).
            Ok(None) => {}
            Ok(Some(path)) => cat.spares.push_back(Spare {
                path,
                recycled: false,
                capacity,
            }),
            // The flusher will make its own spare when it needs one and meet
            // the error itself, on the path that reports it.
            Err(_) => return,
        }
    }
}
