//! Read-only inspection of a log, for tools that look at a log while its
//! writer may be running (the `pwal` command: `info`, `verify`, `dump`,
//! `repair --dry-run`).
//!
//! [`inspect`] reads the log with recovery's own scan and rules, but, unlike
//! [`recover`](crate::recover), it neither takes the log's lock nor evicts
//! cached pages, and it never opens a file for writing: a writer holding the
//! log is not disturbed. What it reports is what the files held while they
//! were read: an epoch the writer was writing at that moment reads as a torn
//! tail, as it would after a crash at that instant. [`list_log`] lists the
//! log directory's files with their segment headers, without validating any
//! epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{RealVfs, Vfs, VfsFile};
use crate::recovery::{scan, RecoveryReport, ReplayOptions};
use crate::repair::DAMAGED_DIR;
use crate::segment::{list_segments, parse_spare_name, FoundSegment, DATA_OFFSET};
use crate::Record;

/// How to inspect.
#[derive(Clone, Debug, Default)]
pub struct InspectOptions {
    /// As [`RecoverOptions::durable_prefix`](crate::RecoverOptions): on
    /// corruption, read the durable prefix and report the rest as skipped
    /// instead of failing with [`Error::Corrupt`].
    pub durable_prefix: bool,
    /// When set, every byte read from the log's files is added to it as the
    /// scan goes (for a progress meter: another thread may read it).
    pub bytes_read: Option<Arc<AtomicU64>>,
}

/// What the header of a segment file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentHeaderState {
    /// A valid, activated header whose id matches the file name.
    Valid {
        first_epoch: u64,
        log_start_epoch: u64,
    },
    /// No usable header: never activated, torn, not a header, or the header
    /// of another segment id.
    Absent,
    /// A checksum-valid header with values no writer produces.
    Rejected(String),
    /// A checksum-valid header of another format version.
    OtherVersion(u16),
}

/// One segment file of the log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub name: String,
    pub path: PathBuf,
    pub id: u64,
    /// The file's size in bytes (preallocated: not the bytes of its frames).
    pub bytes: u64,
    pub header: SegmentHeaderState,
    /// The epochs of this segment that are in the durable prefix, first and
    /// last (checkpointed ones included); `None` when none are, or when the
    /// segment was only listed ([`list_log`]).
    pub epochs: Option<(u64, u64)>,
}

/// A file of the log directory that is not a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherFile {
    pub name: String,
    pub bytes: u64,
}

/// The files of a log directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogListing {
    /// The log directory, `<db_path>-pwal`.
    pub dir: PathBuf,
    /// False when the directory does not exist (an empty log).
    pub exists: bool,
    /// Every `*.pwseg` file, ascending by id.
    pub segments: Vec<SegmentInfo>,
    /// The `spare-N.tmp` files (preallocated or recycled, not log data).
    pub spares: Vec<OtherFile>,
    /// The files `repair` moved or copied into `damaged/`.
    pub damaged: Vec<OtherFile>,
}

impl LogListing {
    /// Bytes of every segment file.
    pub fn segment_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

/// Where the durable prefix ends before the ordinary end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixEnd {
    /// The file and offset of the first byte past the prefix.
    pub file: PathBuf,
    pub offset: u64,
    /// The epoch expected there.
    pub epoch: u64,
}

/// What [`repair`](crate::repair) would do to the log as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairPlan {
    /// The segment the prefix ends in and where: zeros from `offset` to its
    /// end, after a copy of the whole file goes into `damaged/`. `None` when
    /// the file's header is itself the damage: the file is moved whole
    /// instead (it is then in `moved`).
    pub cut: Option<(PathBuf, u64)>,
    /// The segment files moved into `damaged/`.
    pub moved: Vec<PathBuf>,
}

/// The result of [`inspect`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The files as the scan listed them, each segment with its epochs.
    pub listing: LogListing,
    /// Where the durable prefix ends early: at corruption (durable-prefix
    /// mode), or at a torn tail that no later segment supersedes. Every
    /// segment after it is past the prefix.
    pub prefix_end: Option<PrefixEnd>,
    /// Segment files after a torn tail that recovery discards: `open`
    /// refuses such a log until `repair` moves them aside.
    pub discarded_later: u64,
}

impl Inspection {
    /// What [`repair`](crate::repair) would cut and move, by its rules
    /// (FORMAT.md, "Repairing a log"), if the log is still as it was read;
    /// `None` when it would change nothing.
    pub fn repair_plan(&self) -> Option<RepairPlan> {
        let end = self.prefix_end.as_ref()?;
        let cut_id = self
            .listing
            .segments
            .iter()
            .find(|s| s.path == end.file)?
            .id;
        let whole = end.offset < DATA_OFFSET;
        Some(RepairPlan {
            cut: (!whole).then(|| (end.file.clone(), end.offset)),
            moved: self
                .listing
                .segments
                .iter()
                .filter(|s| s.id > cut_id || (whole && s.id == cut_id))
                .map(|s| s.path.clone())
                .collect(),
        })
    }
}

/// Lists the log directory of the database at `db_path` and reads each
/// segment's header; validates no epoch and takes no lock.
pub fn list_log(db_path: impl AsRef<Path>) -> Result<LogListing> {
    list_log_with_vfs(&RealVfs, db_path.as_ref())
}

/// [`list_log`] over any file system.
pub fn list_log_with_vfs(vfs: &dyn Vfs, db_path: &Path) -> Result<LogListing> {
    let dir = crate::log_dir(db_path);
    if !vfs.exists(&dir) {
        return Ok(LogListing {
            dir,
            ..LogListing::default()
        });
    }
    let found = list_segments(vfs, &dir)?;
    listing(vfs, dir, &found)
}

/// Reads the log of the database at `db_path` like
/// [`recover`](crate::recover) (every epoch validated, the same verdicts,
/// `callback` given each record after the checkpoint mark in replay order
/// when there is one), without taking the log's lock, evicting cached pages,
/// or opening any file for writing. `report` is filled on every return, as
/// by recovery. A missing log directory is an empty log.
pub fn inspect(
    db_path: impl AsRef<Path>,
    opts: &InspectOptions,
    callback: Option<&mut dyn FnMut(&Record<'_>) -> bool>,
    report: &mut RecoveryReport,
) -> Result<Inspection> {
    inspect_with_vfs(&RealVfs, db_path.as_ref(), opts, callback, report)
}

/// [`inspect`] over any file system.
pub fn inspect_with_vfs(
    vfs: &dyn Vfs,
    db_path: &Path,
    opts: &InspectOptions,
    callback: Option<&mut dyn FnMut(&Record<'_>) -> bool>,
    report: &mut RecoveryReport,
) -> Result<Inspection> {
    *report = RecoveryReport::default();
    let dir = crate::log_dir(db_path);
    if !vfs.exists(&dir) {
        return Ok(Inspection {
            listing: LogListing {
                dir,
                ..LogListing::default()
            },
            ..Inspection::default()
        });
    }
    let replay = ReplayOptions {
        durable_prefix: opts.durable_prefix,
        ..ReplayOptions::default()
    };
    // Every call through `read_only` that would change a file fails, so the
    // scan cannot change one (it never tries to).
    let mut read_only = Counting {
        inner: vfs,
        read: opts.bytes_read.clone().unwrap_or_default(),
        newest: None,
        image: None,
    };
    (read_only.newest, read_only.image) = newest_segment_image(&read_only, &dir)?;
    let end = scan(&read_only, &dir, &replay, callback, report)?;
    let mut listing = listing(vfs, dir, &end.segments)?;
    let prefix_end = end.stop.map(|(file, offset, epoch)| PrefixEnd {
        file,
        offset,
        epoch,
    });
    // Each segment holds the epochs from its first one up to the next
    // segment's first one less one (a torn tail superseded by the next
    // segment ends exactly there), within what the scan validated, and
    // nothing past the end of the prefix.
    let last = report.last_epoch;
    let stop_id = prefix_end
        .as_ref()
        .and_then(|p| listing.segments.iter().find(|s| s.path == p.file))
        .map(|s| s.id);
    let firsts: Vec<(u64, u64)> = listing
        .segments
        .iter()
        .filter_map(|s| match s.header {
            SegmentHeaderState::Valid { first_epoch, .. } => Some((s.id, first_epoch)),
            _ => None,
        })
        .collect();
    for (k, &(id, first)) in firsts.iter().enumerate() {
        if last == 0 || stop_id.is_some_and(|stop| id > stop) {
            continue;
        }
        let mut hi = last;
        if let Some(&(_, next)) = firsts.get(k + 1) {
            hi = hi.min(next.saturating_sub(1));
        }
        if let (Some(stop), Some(p)) = (stop_id, &prefix_end) {
            if id == stop {
                hi = hi.min(p.epoch.saturating_sub(1));
            }
        }
        if hi >= first {
            if let Some(s) = listing.segments.iter_mut().find(|s| s.id == id) {
                s.epochs = Some((first, hi));
            }
        }
    }
    Ok(Inspection {
        listing,
        prefix_end,
        discarded_later: end.discarded_later,
    })
}

fn listing(vfs: &dyn Vfs, dir: PathBuf, found: &[FoundSegment]) -> Result<LogListing> {
    let segments = found
        .iter()
        .map(|s| SegmentInfo {
            name: s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: s.path.clone(),
            id: s.id,
            bytes: s.len,
            header: match (&s.header, &s.rejected, s.other_version) {
                (Some(h), _, _) => SegmentHeaderState::Valid {
                    first_epoch: h.first_epoch,
                    log_start_epoch: h.log_start_epoch,
                },
                (None, Some(why), _) => SegmentHeaderState::Rejected(why.clone()),
                (None, None, Some(v)) => SegmentHeaderState::OtherVersion(v),
                (None, None, None) => SegmentHeaderState::Absent,
            },
            epochs: None,
        })
        .collect();
    let names = vfs
        .list_dir(&dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let spares = sized(
        vfs,
        &dir,
        names.iter().filter(|n| parse_spare_name(n).is_some()),
    );
    let damaged_dir = dir.join(DAMAGED_DIR);
    let damaged = if vfs.exists(&damaged_dir) {
        let names = vfs
            .list_dir(&damaged_dir)
            .map_err(|e| Error::io(format!("listing {}", damaged_dir.display()), e))?;
        sized(vfs, &damaged_dir, names.iter())
    } else {
        Vec::new()
    };
    Ok(LogListing {
        dir,
        exists: true,
        segments,
        spares,
        damaged,
    })
}

/// The files named, with their sizes; a file gone since the directory was
/// listed (a spare the writer just renamed) is left out.
fn sized<'a>(vfs: &dyn Vfs, dir: &Path, names: impl Iterator<Item = &'a String>) -> Vec<OtherFile> {
    names
        .filter_map(|n| {
            let bytes = vfs.open_read(&dir.join(n)).ok()?.len().ok()?;
            Some(OtherFile {
                name: n.clone(),
                bytes,
            })
        })
        .collect()
}

/// The newest segment is read whole into memory when it is at most this
/// large; a larger one is read in place.
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The id of the newest segment of `dir` (the only one a running writer
/// appends to), and that segment read into memory front to back in one
/// pass, so that the scan reads one image of it: read in place, the scan's
/// read-ahead could hold zeros where the writer has since written two
/// frames, the later of which says the earlier was synced, and a frame the
/// scan never saw would read as damage. In one forward pass, a frame whose
/// write was under way shows as torn and what follows it as not yet
/// written, as after a crash at that instant. Segments the writer starts
/// after this are hidden from the scan (see [`Counting::list_dir`]).
type Image = (PathBuf, Arc<[u8]>);

fn newest_segment_image(vfs: &Counting<'_>, dir: &Path) -> Result<(Option<u64>, Option<Image>)> {
    let names = vfs
        .inner
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let Some((id, name)) = names
        .iter()
        .filter_map(|n| crate::segment::parse_segment_name(n).map(|id| (id, n)))
        .max()
    else {
        return Ok((None, None));
    };
    let path = dir.join(name);
    let io_err = |e| Error::io(format!("reading {}", path.display()), e);
    let file = vfs.open_read(&path).map_err(io_err)?;
    let len = file.len().map_err(io_err)?;
    if len > MAX_IMAGE_BYTES {
        return Ok((Some(id), None));
    }
    let mut image = vec![0u8; len as usize];
    let mut off = 0;
    while off < image.len() {
        let n = file
            .read_at(&mut image[off..], off as u64)
            .map_err(io_err)?;
        if n == 0 {
            break;
        }
        off += n;
    }
    image.truncate(off);
    Ok((Some(id), Some((path, image.into()))))
}

/// A read-only view of a file system that counts the bytes read, reads
/// one file from an image in memory, and lists no segment newer than the
/// one imaged. Every call that would change a file fails: the scan never
/// makes one, and this makes sure of it.
struct Counting<'a> {
    inner: &'a dyn Vfs,
    read: Arc<AtomicU64>,
    /// The newest segment id when the image was taken (`None`: there was
    /// no segment).
    newest: Option<u64>,
    image: Option<Image>,
}

/// A file read from its image in memory.
struct ImageFile {
    bytes: Arc<[u8]>,
    read: Arc<AtomicU64>,
}

impl VfsFile for ImageFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let from = (offset.min(self.bytes.len() as u64)) as usize;
        let n = buf.len().min(self.bytes.len() - from);
        buf[..n].copy_from_slice(&self.bytes[from..from + n]);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn write_all_at(&self, _: &[&[u8]], _: u64) -> std::io::Result<()> {
        Err(read_only())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Err(read_only())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        Err(read_only())
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }
}

struct CountingFile {
    inner: Box<dyn VfsFile>,
    read: Arc<AtomicU64>,
}

fn read_only() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "inspection is read-only",
    )
}

impl VfsFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, offset)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn write_all_at(&self, _: &[&[u8]], _: u64) -> std::io::Result<()> {
        Err(read_only())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Err(read_only())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        Err(read_only())
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

impl Vfs for Counting<'_> {
    fn open(&self, _: &Path, _: bool) -> std::io::Result<Box<dyn VfsFile>> {
        Err(read_only())
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn VfsFile>> {
        if let Some((p, bytes)) = &self.image {
            if p == path {
                return Ok(Box::new(ImageFile {
                    bytes: bytes.clone(),
                    read: self.read.clone(),
                }));
            }
        }
        Ok(Box::new(CountingFile {
            inner: self.inner.open_read(path)?,
            read: self.read.clone(),
        }))
    }
    fn create_dir_all(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    /// Leaves out segments newer than the one imaged: a writer that started
    /// one since had finished every frame of the imaged one first, frames
    /// the image may not hold, and the new segment's frames would say they
    /// were synced.
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        let mut names = self.inner.list_dir(path)?;
        names.retain(|n| match crate::segment::parse_segment_name(n) {
            Some(id) => self.newest.is_some_and(|newest| id <= newest),
            None => true,
        });
        Ok(names)
    }
    fn remove_file(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn rename(&self, _: &Path, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn sync_dir(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn drop_cache(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn evict_cache(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn lock(&self, _: &Path) -> std::io::Result<Box<dyn std::any::Any + Send + Sync>> {
        Err(read_only())
    }
    fn instance_id(&self) -> usize {
        self.inner.instance_id()
    }
    fn canonical(&self, path: &Path) -> PathBuf {
        self.inner.canonical(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimVfs;
    use crate::{Frame, Log, Options, Txn};

    const DB: &str = "/sim/db";

    fn commit(log: &Log, id: u64) -> u64 {
        let page = vec![id as u8; 3000];
        let frames = [Frame {
            page_number: 1 + id as u32,
            db_size_if_commit: 100,
            data: &page,
        }];
        let txn = Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: 0,
            frames: &frames,
        };
        log.commit(&txn, None).unwrap()
    }

    /// A transaction of 24 pages of 64 KiB: its epoch frame is larger than
    /// recovery's read-ahead window.
    fn commit_big(log: &Log, id: u64) -> u64 {
        let page = vec![id as u8; 65536];
        let frames: Vec<Frame<'_>> = (0..24)
            .map(|i| Frame {
                page_number: 1 + i,
                db_size_if_commit: 100,
                data: &page,
            })
            .collect();
        let txn = Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: 0,
            frames: &frames,
        };
        log.commit(&txn, None).unwrap()
    }

    fn options() -> Options {
        Options {
            segment_bytes: 64 << 10,
            lanes: 1,
            use_env: false,
            ..Options::default()
        }
    }

    /// While the log is open (its lock held), inspection reads every epoch,
    /// takes no lock, writes nothing, and gives each segment its epochs.
    #[test]
    fn inspects_an_open_log_without_changing_anything() {
        let vfs = SimVfs::new();
        let log = Log::open_with_vfs(DB, &options(), Arc::new(vfs.clone())).unwrap();
        let mut last = 0;
        for id in 1..=60 {
            last = commit(&log, id);
        }
        let counter = Arc::new(AtomicU64::new(0));
        let opts = InspectOptions {
            durable_prefix: true,
            bytes_read: Some(counter.clone()),
        };
        let mut seen = Vec::new();
        let mut cb = |r: &Record<'_>| {
            seen.push(r.txn_id);
            true
        };
        let mut report = RecoveryReport::default();
        let got = inspect_with_vfs(&vfs, Path::new(DB), &opts, Some(&mut cb), &mut report).unwrap();
        assert_eq!(seen, (1..=60).collect::<Vec<_>>());
        assert_eq!((report.first_epoch, report.last_epoch), (1, last));
        assert!(report.damage.is_none(), "{:?}", report.damage);
        assert!(counter.load(Ordering::Relaxed) >= report.bytes);
        assert!(got.prefix_end.is_none() && got.repair_plan().is_none());
        // The segments' epochs are consecutive runs covering 1..=last.
        let runs: Vec<(u64, u64)> = got
            .listing
            .segments
            .iter()
            .filter_map(|s| s.epochs)
            .collect();
        assert!(runs.len() >= 3, "{runs:?}");
        let mut next = 1;
        for (lo, hi) in &runs {
            assert_eq!(*lo, next, "{runs:?}");
            next = hi + 1;
        }
        assert_eq!(next, last + 1);
        // The lock is still the writer's: a second taker is refused.
        let lock = crate::log_dir(Path::new(DB)).join(crate::segment::LOCK_FILE);
        assert!(vfs.lock(&lock).is_err());
        log.close().unwrap();
    }

    /// Damage in an early epoch of a later-proven segment: the prefix ends
    /// there, the segments after it have no epochs, and the plan moves them.
    #[test]
    fn damage_ends_the_prefix_and_the_plan_matches_repair() {
        let vfs = SimVfs::new();
        let log = Log::open_with_vfs(DB, &options(), Arc::new(vfs.clone())).unwrap();
        for id in 1..=60 {
            commit(&log, id);
        }
        log.close().unwrap();
        let dir = crate::log_dir(Path::new(DB));
        let listed = list_log_with_vfs(&vfs, Path::new(DB)).unwrap();
        assert!(listed.segments.len() >= 3);
        let second = listed.segments[1].clone();
        let mut byte = vfs.contents(&second.path).unwrap()[DATA_OFFSET as usize + 200];
        byte ^= 0x40;
        vfs.poke(&second.path, DATA_OFFSET + 200, &[byte]);

        let digest = vfs.digest();
        let mutations = vfs.op_counts();
        let mut report = RecoveryReport::default();
        let strict = InspectOptions::default();
        assert!(matches!(
            inspect_with_vfs(&vfs, Path::new(DB), &strict, None, &mut report),
            Err(Error::Corrupt { .. })
        ));
        let opts = InspectOptions {
            durable_prefix: true,
            ..InspectOptions::default()
        };
        let got = inspect_with_vfs(&vfs, Path::new(DB), &opts, None, &mut report).unwrap();
        let SegmentHeaderState::Valid { first_epoch, .. } = second.header else {
            panic!("{second:?}");
        };
        let end = got.prefix_end.clone().unwrap();
        assert_eq!(
            (&end.file, end.offset, end.epoch),
            (&second.path, DATA_OFFSET, first_epoch)
        );
        assert_eq!(report.last_epoch, first_epoch - 1);
        assert_eq!(got.listing.segments[0].epochs, Some((1, first_epoch - 1)));
        assert!(got.listing.segments[1..].iter().all(|s| s.epochs.is_none()));
        assert_eq!((vfs.digest(), vfs.op_counts()), (digest, mutations));
        let plan = got.repair_plan().unwrap();
        assert_eq!(plan.cut, Some((second.path.clone(), DATA_OFFSET)));
        let later: Vec<PathBuf> = listed.segments[2..]
            .iter()
            .map(|s| s.path.clone())
            .collect();
        assert_eq!(plan.moved, later);

        crate::repair_with_vfs(&vfs, Path::new(DB), &mut RecoveryReport::default()).unwrap();
        for p in &plan.moved {
            assert!(!vfs.exists(p));
            assert!(vfs.exists(&dir.join(DAMAGED_DIR).join(p.file_name().unwrap())));
        }
        let after = list_log_with_vfs(&vfs, Path::new(DB)).unwrap();
        assert_eq!(after.damaged.len(), plan.moved.len() + 1);
    }

    /// A file system on which the writer commits `appends` (true: a
    /// transaction larger than recovery's read-ahead window) right after a
    /// read of its newest segment first returned the end of what is written
    /// (zeros), before the next call: what a running writer can do between
    /// two reads of a scan.
    #[derive(Clone)]
    struct Meddling {
        vfs: SimVfs,
        log: Arc<Log>,
        appends: Vec<bool>,
        saw_end: Arc<std::sync::atomic::AtomicBool>,
        appended: Arc<AtomicU64>,
    }

    impl Meddling {
        fn new(vfs: &SimVfs, log: &Arc<Log>, appends: &[bool]) -> Meddling {
            Meddling {
                vfs: vfs.clone(),
                log: log.clone(),
                appends: appends.to_vec(),
                saw_end: Arc::default(),
                appended: Arc::default(),
            }
        }

        fn meddle(&self) {
            if self.saw_end.load(Ordering::Relaxed) && self.appended.load(Ordering::Relaxed) == 0 {
                for (i, &big) in self.appends.iter().enumerate() {
                    let id = 1001 + i as u64;
                    if big {
                        commit_big(&self.log, id);
                    } else {
                        commit(&self.log, id);
                    }
                    self.appended.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    struct MeddlingFile {
        inner: Box<dyn VfsFile>,
        m: Meddling,
    }

    impl VfsFile for MeddlingFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.m.meddle();
            let n = self.inner.read_at(buf, offset)?;
            if n >= 4096 && buf[n - 4096..n].iter().all(|&b| b == 0) {
                self.m.saw_end.store(true, Ordering::Relaxed);
            }
            Ok(n)
        }
        fn write_all_at(&self, b: &[&[u8]], o: u64) -> std::io::Result<()> {
            self.inner.write_all_at(b, o)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.inner.sync_data()
        }
        fn sync_all(&self) -> std::io::Result<()> {
            self.inner.sync_all()
        }
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
    }

    impl Vfs for Meddling {
        fn open(&self, p: &Path, c: bool) -> std::io::Result<Box<dyn VfsFile>> {
            self.vfs.open(p, c)
        }
        fn open_read(&self, p: &Path) -> std::io::Result<Box<dyn VfsFile>> {
            self.meddle();
            let inner = self.vfs.open_read(p)?;
            let newest = self
                .vfs
                .list_dir(p.parent().unwrap())?
                .into_iter()
                .filter(|n| n.ends_with(crate::segment::SEGMENT_SUFFIX))
                .max();
            if newest.as_deref() != p.file_name().and_then(|n| n.to_str()) {
                return Ok(inner);
            }
            Ok(Box::new(MeddlingFile {
                inner,
                m: self.clone(),
            }))
        }
        fn create_dir_all(&self, p: &Path) -> std::io::Result<()> {
            self.vfs.create_dir_all(p)
        }
        fn list_dir(&self, p: &Path) -> std::io::Result<Vec<String>> {
            self.meddle();
            self.vfs.list_dir(p)
        }
        fn remove_file(&self, p: &Path) -> std::io::Result<()> {
            self.vfs.remove_file(p)
        }
        fn rename(&self, a: &Path, b: &Path) -> std::io::Result<()> {
            self.vfs.rename(a, b)
        }
        fn sync_dir(&self, p: &Path) -> std::io::Result<()> {
            self.vfs.sync_dir(p)
        }
        fn exists(&self, p: &Path) -> bool {
            self.meddle();
            self.vfs.exists(p)
        }
        fn drop_cache(&self, p: &Path) -> std::io::Result<()> {
            self.vfs.drop_cache(p)
        }
        fn evict_cache(&self, p: &Path) -> std::io::Result<()> {
            self.vfs.evict_cache(p)
        }
        fn lock(&self, p: &Path) -> std::io::Result<Box<dyn std::any::Any + Send + Sync>> {
            self.vfs.lock(p)
        }
    }

    /// Waits for the preparer's first spare, so that the first commit's
    /// segment is zero-filled (a commit never waits for one: without it the
    /// segment would start empty), and the scan meets its zero tail.
    fn zero_filled_first_segment(log: &Log) {
        while log.debug_spares_ready() == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Frames the writer appends while the scan runs are either in the image
    /// the scan reads or not: never a later frame proving an earlier one
    /// synced that the scan read as zeros (read in place, this log reads as
    /// corrupt: "epoch 6: no frame ..., yet the frame of epoch 7 ... records
    /// every epoch through 6 as synced").
    #[test]
    fn frames_appended_during_the_scan_never_read_as_damage() {
        let vfs = SimVfs::new();
        let o = Options {
            segment_bytes: 64 << 20,
            ..options()
        };
        let log = Arc::new(Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap());
        zero_filled_first_segment(&log);
        for id in 1..=5 {
            commit(&log, id);
        }
        let meddling = Meddling::new(&vfs, &log, &[true, true]);
        let opts = InspectOptions::default();
        let mut report = RecoveryReport::default();
        let got = inspect_with_vfs(&meddling, Path::new(DB), &opts, None, &mut report);
        assert!(got.is_ok(), "{got:?}");
        assert!(report.damage.is_none(), "{:?}", report.damage);
        assert!(report.last_epoch >= 5);
        assert_eq!(
            meddling.appended.load(Ordering::Relaxed),
            2,
            "appended during the scan"
        );
        drop(meddling);
        Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    }

    /// A segment the writer starts during the scan (after frames it added
    /// to the segment the scan read an image of) is not read: its frames
    /// would say that epochs missing from the image were synced (read with
    /// it, this log reads as corrupt: "the next segment starts at epoch 8
    /// (an epoch gap), and the frame of epoch 8 ... records every epoch
    /// through 7 as synced").
    #[test]
    fn a_segment_started_during_the_scan_is_not_read() {
        let vfs = SimVfs::new();
        let log = Arc::new(Log::open_with_vfs(DB, &options(), Arc::new(vfs.clone())).unwrap());
        zero_filled_first_segment(&log);
        for id in 1..=5 {
            commit(&log, id);
        }
        let meddling = Meddling::new(&vfs, &log, &[false, false, true]);
        let opts = InspectOptions::default();
        let mut report = RecoveryReport::default();
        let got = inspect_with_vfs(&meddling, Path::new(DB), &opts, None, &mut report);
        assert!(got.is_ok(), "{got:?}");
        assert!(report.damage.is_none(), "{:?}", report.damage);
        assert_eq!(report.last_epoch, 5);
        assert_eq!(
            meddling.appended.load(Ordering::Relaxed),
            3,
            "appended during the scan"
        );
        drop(meddling);
        // The writer did start a segment.
        assert!(
            list_log_with_vfs(&vfs, Path::new(DB))
                .unwrap()
                .segments
                .len()
                >= 2
        );
        Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    }
}
