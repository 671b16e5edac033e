//! A simulated file system for tests: it keeps, per file, the image a crash
//! would leave (what was synced) beside the image reads see, and per directory
//! which entries were synced. [`SimVfs::crash`] builds the file system a power
//! loss would leave; [`SimVfs::inject`] makes the Nth file operation fail;
//! [`SimVfs::set_crash_points`] takes the crash image *before* chosen
//! operations of a run, so one run yields a crash state per operation.
//!
//! Every mutating operation is atomic with respect to crash images: it counts
//! itself, fires its fault and applies its effect under the file system's
//! lock. So an image taken before operation N holds exactly the effects of
//! operations 1..N-1, and a sync that returned before an image was taken is in
//! it (the oracle of the torture tests relies on that).
//!
//! What a crash can lose is file contents that were not synced and directory
//! entries (creations, renames, removals) that were not synced, including the
//! entry of a directory created since its parent's last sync: the crash image
//! then lacks that directory and everything under it. The root and the
//! directories directly under it stand for mount points and always survive
//! (a test's `/sim` plays the part of the database's directory, which exists
//! before any log is opened in it).
//!
//! The page cache is modelled as Linux runs it after a failed writeback: a
//! sync writes only what is dirty, and [`FaultKind::SyncFailCleanCached`]
//! leaves the unwritten bytes in the cache marked clean, readable but never
//! written by a later sync, until [`Vfs::drop_cache`] evicts them or a new
//! write over them dirties them again.
//!
//! Read-side operations (reads, directory listings, opens of existing files)
//! can fail too ([`FaultOp::Read`], [`FaultOp::List`], [`FaultOp::Open`],
//! [`FaultOp::ReadSide`]); they are counted apart from the mutating
//! operations, so adding a read to the engine shifts neither the numbering of
//! mutating operations nor the crash points.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Vfs, VfsFile};

/// The state of one file.
///
/// `data` is the page cache, `durable` the disk, `pending` the dirty pages.
/// Normally `data` is `durable` with `pending` laid over it; after a
/// [`FaultKind::SyncFailCleanCached`] fault `data` also holds bytes that are
/// in neither (cached, marked clean, never written): reads see them, no sync
/// writes them and no crash image holds them.
#[derive(Clone, Debug, Default)]
pub struct SimFileData {
    /// What reads see now.
    pub data: Vec<u8>,
    /// What survives a crash for certain (the image as of the last sync).
    /// Shared copy-on-write with the crash images taken since.
    pub durable: Arc<Vec<u8>>,
    /// Dirty writes since the last sync, in order: a crash may keep any of
    /// them, and the next successful sync writes all of them.
    pub pending: PendingWrites,
}

impl SimFileData {
    /// What the disk holds once the dirty writes reach it: the durable image
    /// with every pending write laid over it, without the bytes a failed
    /// writeback left cached and clean.
    pub fn disk_image(&self) -> Vec<u8> {
        let mut image = self.durable.to_vec();
        for (off, bytes) in &self.pending {
            apply(&mut image, *off, bytes);
        }
        image
    }

    /// A sync that worked: the dirty writes reach the disk. Bytes cached
    /// clean by an earlier failed sync are not dirty, so they are not
    /// written.
    fn write_back(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let durable = Arc::make_mut(&mut self.durable);
        for (off, bytes) in &pending {
            apply(durable, *off, bytes);
        }
    }

    /// A sync that failed with `kind`.
    fn fail_sync(&mut self, kind: FaultKind) -> io::Error {
        match kind {
            FaultKind::SyncFailDropped => {
                // The pages were marked clean without reaching the disk; model
                // them as evicted too, so no later sync can write them.
                self.pending.clear();
                self.data = self.durable.to_vec();
                err(FaultKind::Eio)
            }
            FaultKind::SyncFailCleanCached => {
                // The pages stay cached and readable but are no longer dirty:
                // no later sync writes them, and a crash cannot keep them.
                self.pending.clear();
                err(FaultKind::Eio)
            }
            kind => err(kind),
        }
    }
}

/// Unsynced writes of a file, in order: (offset, bytes).
pub type PendingWrites = Vec<(u64, Arc<Vec<u8>>)>;

fn apply(image: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(bytes);
}

/// Which kind of operation a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// File writes.
    Write,
    /// File syncs, directory syncs and the sync of [`Vfs::drop_cache`].
    Sync,
    /// Any operation that changes the file system (write, sync, create,
    /// rename, remove, directory sync), counted together.
    Any,
    /// File reads (`read_at`). Read-side operations are counted apart from
    /// the mutating ones.
    Read,
    /// Directory listings.
    List,
    /// Opens of an existing file (`open` that does not create, `open_read`,
    /// and the open of [`Vfs::drop_cache`]).
    Open,
    /// Reads, listings and opens, counted together.
    ReadSide,
}

impl FaultOp {
    fn is_read_side(self) -> bool {
        matches!(
            self,
            FaultOp::Read | FaultOp::List | FaultOp::Open | FaultOp::ReadSide
        )
    }
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`; nothing is written.
    Eio,
    /// `ENOSPC`; nothing is written.
    Enospc,
    /// `EFBIG`; nothing is written.
    Efbig,
    /// Half of the bytes are written, then the write fails (`EIO`).
    ShortWrite,
    /// `fsync` fails and the unsynced writes are dropped from what a crash
    /// keeps (the Linux behaviour behind "fsyncgate": the pages are marked
    /// clean although they never reached the disk).
    SyncFailDropped,
    /// `fsync` fails and the unsynced writes stay pending.
    SyncFailKept,
    /// `fsync` fails (`EIO`) the way Linux fails it after a writeback error:
    /// the dirty pages stay in the page cache marked clean, so reads keep
    /// seeing the new bytes, but no later sync (through any descriptor)
    /// writes them and a crash never keeps them. Only a new write over them,
    /// or dropping the cache ([`Vfs::drop_cache`]), ends the illusion.
    SyncFailCleanCached,
}

/// A fault armed on the `at_op`-th matching operation (1-based, counted over
/// operations of kind `op`), once or from then on.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub op: FaultOp,
    pub at_op: u64,
    pub persistent: bool,
    pub kind: FaultKind,
}

/// What a simulated power loss does with the writes that were not synced.
/// Whatever the mode, directory entries that were not synced are lost (a file
/// created or renamed since its directory's last sync is gone, or back under
/// its old name; a removed one is back; a directory created since its
/// parent's last sync is gone with everything under it), and bytes a failed
/// sync left cached but clean are not there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write reached the disk.
    KeepAll,
    /// No unsynced write reached the disk.
    DropAll,
    /// The first `n` unsynced writes of each file, in order, reached the disk.
    KeepPrefix(usize),
    /// A random subset of the unsynced writes reached the disk, each whole
    /// (the disk reordered them); seeded.
    RandomSubset { seed: u64 },
    /// A random subset of unsynced writes reached the disk, some of them torn:
    /// only some of their `sector`-aligned pieces (512 or 4096) landed; seeded.
    RandomTorn { seed: u64, sector: usize },
    /// A random subset of the unsynced writes reached the disk; where a
    /// dropped write had extended the file, the file keeps its new length
    /// (the size reached the journal, the data did not) and the extension
    /// reads as zeros, or as `garbage` (stale blocks); seeded.
    Extended { seed: u64, garbage: bool },
}

impl CrashMode {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            CrashMode::KeepAll => "keep-all".into(),
            CrashMode::DropAll => "drop-all".into(),
            CrashMode::KeepPrefix(n) => format!("keep-prefix-{n}"),
            CrashMode::RandomSubset { seed } => format!("random-subset/{seed:#x}"),
            CrashMode::RandomTorn { seed, sector } => format!("torn-{sector}/{seed:#x}"),
            CrashMode::Extended { seed, garbage } => format!(
                "extended-{}/{seed:#x}",
                if *garbage { "garbage" } else { "zeros" }
            ),
        }
    }
}

/// The file system as of one instant, before any crash choice: each durable
/// directory entry (in a directory that survives) with its synced image and
/// its dirty writes. Cheap to take
/// (the images are shared copy-on-write); [`Frozen::image`] builds the file
/// system a power loss at that instant would leave, for any mode.
#[derive(Clone)]
pub struct Frozen {
    files: Vec<(PathBuf, Arc<Vec<u8>>, PendingWrites)>,
    dirs: HashSet<PathBuf>,
}

/// A crash image taken by [`SimVfs::set_crash_points`]: the state before
/// operation `op`, and the caller's `tag` read at that instant (before the
/// image was taken, so everything the tag counts as done is in the image).
#[derive(Clone)]
pub struct CrashPoint {
    pub op: u64,
    pub tag: u64,
    pub frozen: Frozen,
}

type OpFilter = Box<dyn Fn(u64) -> bool + Send + Sync>;
type Tag = Box<dyn Fn() -> u64 + Send + Sync>;

struct CrashPoints {
    filter: OpFilter,
    tag: Tag,
    taken: Vec<CrashPoint>,
}

#[derive(Default)]
struct State {
    files: HashMap<PathBuf, Arc<Mutex<SimFileData>>>,
    /// The directory entries a crash keeps: as of each directory's last sync.
    durable_names: HashMap<PathBuf, Arc<Mutex<SimFileData>>>,
    /// Directories that exist now.
    dirs: HashSet<PathBuf>,
    /// Directories whose entry in their parent was synced (mount points need
    /// not be here: they always survive).
    durable_dirs: HashSet<PathBuf>,
    locks: HashSet<PathBuf>,
    write_ops: u64,
    sync_ops: u64,
    any_ops: u64,
    read_ops: u64,
    list_ops: u64,
    open_ops: u64,
    read_side_ops: u64,
    faults: Vec<Fault>,
    injected: u64,
    crash_points: Option<CrashPoints>,
}

/// The simulated file system. Cloning gives another handle on the same state.
#[derive(Clone, Default)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

/// A small deterministic generator (SplitMix64), enough for reproducible
/// crash choices.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Whether `dir` stands for a mount point (the root or a directory directly
/// under it), which no crash loses.
fn is_mount(dir: &Path) -> bool {
    match dir.parent() {
        None => true,
        Some(p) => p.as_os_str().is_empty() || p == Path::new("/"),
    }
}

fn err(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
        FaultKind::Efbig => io::Error::from_raw_os_error(libc::EFBIG),
        _ => io::Error::from_raw_os_error(libc::EIO),
    }
}

impl State {
    /// Counts an operation, takes the crash image armed for it, and returns
    /// the fault armed for it, if any.
    fn tick(&mut self, op: FaultOp) -> Option<FaultKind> {
        debug_assert!(!op.is_read_side());
        self.any_ops += 1;
        match op {
            FaultOp::Write => self.write_ops += 1,
            FaultOp::Sync => self.sync_ops += 1,
            _ => {}
        }
        let (w, s, a) = (self.write_ops, self.sync_ops, self.any_ops);
        if let Some(cp) = &self.crash_points {
            if (cp.filter)(a) {
                // The tag first: whatever it counts as done is in the image.
                let tag = (cp.tag)();
                let frozen = self.freeze();
                if let Some(cp) = &mut self.crash_points {
                    cp.taken.push(CrashPoint { op: a, tag, frozen });
                }
            }
        }
        let hit = self.faults.iter().position(|f| {
            let n = match f.op {
                FaultOp::Write if op == FaultOp::Write => w,
                FaultOp::Sync if op == FaultOp::Sync => s,
                FaultOp::Any => a,
                _ => return false,
            };
            n == f.at_op || (f.persistent && n > f.at_op)
        })?;
        let f = self.faults[hit];
        self.injected += 1;
        Some(f.kind)
    }

    /// Counts a read-side operation (`Read`, `List` or `Open`) and returns
    /// the fault armed for it, if any. Takes no crash image: a read changes
    /// nothing a crash could keep.
    fn tick_read(&mut self, op: FaultOp) -> Option<FaultKind> {
        self.read_side_ops += 1;
        let n = match op {
            FaultOp::Read => {
                self.read_ops += 1;
                self.read_ops
            }
            FaultOp::List => {
                self.list_ops += 1;
                self.list_ops
            }
            FaultOp::Open => {
                self.open_ops += 1;
                self.open_ops
            }
            _ => unreachable!("not a read-side operation: {op:?}"),
        };
        let all = self.read_side_ops;
        let hit = self.faults.iter().position(|f| {
            let m = if f.op == op {
                n
            } else if f.op == FaultOp::ReadSide {
                all
            } else {
                return false;
            };
            m == f.at_op || (f.persistent && m > f.at_op)
        })?;
        self.injected += 1;
        Some(self.faults[hit].kind)
    }

    /// The directories a power loss now would leave: mount points, and
    /// every directory whose entry and whose ancestors' entries were synced.
    fn surviving_dirs(&self) -> HashSet<PathBuf> {
        self.dirs
            .iter()
            .filter(|d| {
                let mut p = Some(d.as_path());
                while let Some(dir) = p {
                    if is_mount(dir) {
                        return true;
                    }
                    if !self.durable_dirs.contains(dir) {
                        return false;
                    }
                    p = dir.parent();
                }
                true
            })
            .cloned()
            .collect()
    }

    fn freeze(&self) -> Frozen {
        let dirs = self.surviving_dirs();
        let mut files: Vec<_> = self
            .durable_names
            .iter()
            .filter(|(p, _)| p.parent().is_some_and(|d| dirs.contains(d)))
            .map(|(p, f)| {
                let f = f.lock();
                (p.clone(), f.durable.clone(), f.pending.clone())
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Frozen { files, dirs }
    }
}

/// Lays the unsynced writes of one file over its synced image as `mode`
/// says.
fn crash_file(
    durable: &[u8],
    pending: &[(u64, Arc<Vec<u8>>)],
    mode: CrashMode,
    rng: &mut SplitMix,
) -> Vec<u8> {
    let mut image = durable.to_vec();
    for (i, (off, bytes)) in pending.iter().enumerate() {
        let (off, bytes) = (*off, &bytes[..]);
        match mode {
            CrashMode::KeepAll => apply(&mut image, off, bytes),
            CrashMode::DropAll => {}
            CrashMode::KeepPrefix(n) => {
                if i < n {
                    apply(&mut image, off, bytes)
                }
            }
            CrashMode::RandomSubset { .. } => {
                if rng.below(2) == 0 {
                    apply(&mut image, off, bytes)
                }
            }
            CrashMode::RandomTorn { sector, .. } => match rng.below(3) {
                0 => {}
                1 => apply(&mut image, off, bytes),
                _ => {
                    // A torn write: only whole sectors of it land.
                    let sector = sector.max(1) as u64;
                    let end = off + bytes.len() as u64;
                    let mut a = off;
                    while a < end {
                        let b = ((a / sector + 1) * sector).min(end);
                        if rng.below(2) == 0 {
                            let (lo, hi) = ((a - off) as usize, (b - off) as usize);
                            apply(&mut image, a, &bytes[lo..hi]);
                        }
                        a = b;
                    }
                }
            },
            CrashMode::Extended { garbage, .. } => {
                if rng.below(2) == 0 {
                    apply(&mut image, off, bytes)
                } else {
                    let end = off as usize + bytes.len();
                    if end > image.len() {
                        let from = image.len();
                        image.resize(end, 0);
                        if garbage {
                            for b in &mut image[from..] {
                                *b = rng.next_u64() as u8;
                            }
                        }
                    }
                }
            }
        }
    }
    image
}

impl Frozen {
    /// The file system a power loss at this instant would leave.
    pub fn image(&self, mode: CrashMode) -> SimVfs {
        let seed = match mode {
            CrashMode::RandomSubset { seed }
            | CrashMode::RandomTorn { seed, .. }
            | CrashMode::Extended { seed, .. } => seed,
            _ => 0,
        };
        let mut rng = SplitMix(seed);
        SimVfs::from_images(
            self.dirs.clone(),
            self.files.iter().map(|(path, durable, pending)| {
                (path.clone(), crash_file(durable, pending, mode, &mut rng))
            }),
        )
    }

    /// Whether any file has unsynced writes (if none, every mode gives the
    /// same image).
    pub fn has_pending(&self) -> bool {
        self.files.iter().any(|(_, _, p)| !p.is_empty())
    }

    /// Unsynced writes, over all files.
    pub fn pending_writes(&self) -> usize {
        self.files.iter().map(|(_, _, p)| p.len()).sum()
    }
}

impl SimVfs {
    pub fn new() -> SimVfs {
        SimVfs::default()
    }

    /// Arms a fault.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// How many faults fired so far.
    pub fn faults_injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// Operations counted so far: (writes, syncs, all mutating operations).
    pub fn op_counts(&self) -> (u64, u64, u64) {
        let s = self.state.lock();
        (s.write_ops, s.sync_ops, s.any_ops)
    }

    /// Read-side operations so far: (reads, listings, opens). They are not in
    /// [`SimVfs::op_counts`].
    pub fn read_op_counts(&self) -> (u64, u64, u64) {
        let s = self.state.lock();
        (s.read_ops, s.list_ops, s.open_ops)
    }

    /// Takes a crash image before every mutating operation whose number
    /// (counted as [`FaultOp::Any`], 1-based) passes `filter`, with the value
    /// of `tag` at that instant. `tag` is called under the file system's
    /// lock: it must not touch this file system.
    pub fn set_crash_points(
        &self,
        filter: impl Fn(u64) -> bool + Send + Sync + 'static,
        tag: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        self.state.lock().crash_points = Some(CrashPoints {
            filter: Box::new(filter),
            tag: Box::new(tag),
            taken: Vec::new(),
        });
    }

    /// The crash images taken so far (they are handed over, not kept).
    pub fn take_crash_points(&self) -> Vec<CrashPoint> {
        let mut s = self.state.lock();
        match &mut s.crash_points {
            Some(cp) => std::mem::take(&mut cp.taken),
            None => Vec::new(),
        }
    }

    /// Stops taking crash images.
    pub fn clear_crash_points(&self) {
        self.state.lock().crash_points = None;
    }

    /// The state as of now, for crash images in any mode.
    pub fn freeze(&self) -> Frozen {
        self.state.lock().freeze()
    }

    /// The contents of a file (what reads see).
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        s.files.get(path).map(|f| f.lock().data.clone())
    }

    /// What the disk of a file holds once its dirty writes reach it (the
    /// view [`Vfs::drop_cache`] leaves): unlike [`SimVfs::contents`], without
    /// the bytes a failed sync left cached and clean.
    pub fn disk_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        s.files.get(path).map(|f| f.lock().disk_image())
    }

    /// Overwrites bytes of a file, synced: for tests that damage a log.
    pub fn poke(&self, path: &Path, offset: u64, bytes: &[u8]) {
        let s = self.state.lock();
        let f = s.files.get(path).expect("poke: no such file");
        let mut f = f.lock();
        apply(&mut f.data, offset, bytes);
        apply(Arc::make_mut(&mut f.durable), offset, bytes);
    }

    /// Replaces the whole contents of a file (creating it, its entry
    /// durable), synced: for tests that damage or forge a log.
    pub fn set_contents(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.state.lock();
        if let Some(parent) = path.parent() {
            let mut p = Some(parent);
            while let Some(d) = p {
                s.dirs.insert(d.to_path_buf());
                s.durable_dirs.insert(d.to_path_buf());
                p = d.parent();
            }
        }
        let d = Arc::new(Mutex::new(SimFileData {
            data: bytes.clone(),
            durable: Arc::new(bytes),
            pending: Vec::new(),
        }));
        s.files.insert(path.to_path_buf(), d.clone());
        s.durable_names.insert(path.to_path_buf(), d);
    }

    /// Removes a file and its durable entry at once: for tests.
    pub fn delete(&self, path: &Path) {
        let mut s = self.state.lock();
        s.files.remove(path);
        s.durable_names.remove(path);
    }

    /// Paths of every file, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let s = self.state.lock();
        let mut v: Vec<PathBuf> = s.files.keys().cloned().collect();
        v.sort();
        v
    }

    /// A digest of every file's name and contents (what reads see), to check
    /// that something did not change the file system.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let s = self.state.lock();
        let mut names: Vec<&PathBuf> = s.files.keys().collect();
        names.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in names {
            p.hash(&mut h);
            s.files[p].lock().data.hash(&mut h);
        }
        h.finish()
    }

    /// Like [`SimVfs::digest`], over what the disk holds (the durable image
    /// and the writes still dirty) rather than what reads see: evicting
    /// clean pages from the cache changes the second, never the first.
    pub fn disk_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let s = self.state.lock();
        let mut names: Vec<&PathBuf> = s.files.keys().collect();
        names.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in names {
            p.hash(&mut h);
            s.files[p].lock().disk_image().hash(&mut h);
        }
        h.finish()
    }

    /// The file system a power loss would leave now: the synced directory
    /// entries, each file with its synced image plus the unsynced writes
    /// that `mode` keeps. Faults, locks and crash points are not carried
    /// over.
    pub fn crash(&self, mode: CrashMode) -> SimVfs {
        self.freeze().image(mode)
    }

    /// The file system a process crash (SIGKILL) would leave now: every
    /// write and every directory change, synced or not (the kernel has them).
    pub fn process_crash(&self) -> SimVfs {
        let s = self.state.lock();
        SimVfs::from_images(
            s.dirs.clone(),
            s.files
                .iter()
                .map(|(path, f)| (path.clone(), f.lock().data.clone())),
        )
    }

    /// What a reader sees after dropping the cache of every file
    /// ([`Vfs::drop_cache`]), as a separate file system: every name and
    /// every dirty write, as in [`SimVfs::process_crash`], but without the
    /// bytes a failed sync left cached and clean.
    pub fn disk_view(&self) -> SimVfs {
        let s = self.state.lock();
        SimVfs::from_images(
            s.dirs.clone(),
            s.files
                .iter()
                .map(|(path, f)| (path.clone(), f.lock().disk_image())),
        )
    }

    /// A file system after a crash: these directories, and these files with
    /// these contents, all synced, with synced directory entries.
    fn from_images(
        dirs: HashSet<PathBuf>,
        files: impl Iterator<Item = (PathBuf, Vec<u8>)>,
    ) -> SimVfs {
        let mut out = State {
            durable_dirs: dirs.clone(),
            dirs,
            ..State::default()
        };
        for (path, image) in files {
            let data = Arc::new(Mutex::new(SimFileData {
                data: image.clone(),
                durable: Arc::new(image),
                pending: Vec::new(),
            }));
            out.files.insert(path.clone(), data.clone());
            out.durable_names.insert(path, data);
        }
        SimVfs {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// Writes every file to a real directory (for a failing image to be
    /// inspected, or replayed with `pwal::recover`).
    pub fn dump_to(&self, root: &Path) -> io::Result<()> {
        let s = self.state.lock();
        for (path, f) in &s.files {
            let rel = path.strip_prefix("/").unwrap_or(path);
            let to = root.join(rel);
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(&to, &f.lock().data)?;
        }
        Ok(())
    }
}

struct SimFile {
    vfs: SimVfs,
    data: Arc<Mutex<SimFileData>>,
    writable: bool,
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.vfs.state.lock();
        if let Some(kind) = s.tick_read(FaultOp::Read) {
            return Err(err(kind));
        }
        let f = self.data.lock();
        drop(s);
        if offset >= f.data.len() as u64 {
            return Ok(0);
        }
        let n = buf.len().min(f.data.len() - offset as usize);
        buf[..n].copy_from_slice(&f.data[offset as usize..offset as usize + n]);
        Ok(n)
    }

    fn write_all_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // Held to the end: the write is atomic with respect to crash images.
        let mut s = self.vfs.state.lock();
        let fault = s.tick(FaultOp::Write);
        let joined: Vec<u8> = bufs.concat();
        let mut f = self.data.lock();
        match fault {
            None => {
                apply(&mut f.data, offset, &joined);
                f.pending.push((offset, Arc::new(joined)));
                Ok(())
            }
            Some(FaultKind::ShortWrite) => {
                let half = joined[..joined.len() / 2].to_vec();
                apply(&mut f.data, offset, &half);
                f.pending.push((offset, Arc::new(half)));
                Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "injected short write",
                ))
            }
            Some(kind) => Err(err(kind)),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.vfs.state.lock();
        let fault = s.tick(FaultOp::Sync);
        let mut f = self.data.lock();
        match fault {
            None => {
                f.write_back();
                Ok(())
            }
            Some(kind) => Err(f.fail_sync(kind)),
        }
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().data.len() as u64)
    }
}

struct SimLock {
    vfs: SimVfs,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.vfs.state.lock().locks.remove(&self.path);
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl Vfs for SimVfs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.state.lock();
        let existing = s.files.get(path).cloned();
        if existing.is_some() || !create {
            if let Some(kind) = s.tick_read(FaultOp::Open) {
                return Err(err(kind));
            }
        }
        let data = match existing {
            Some(d) => d,
            None if create => {
                if let Some(kind) = s.tick(FaultOp::Any) {
                    return Err(err(kind));
                }
                let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                if !s.dirs.contains(&parent) {
                    return Err(not_found(&parent));
                }
                let d = Arc::new(Mutex::new(SimFileData::default()));
                s.files.insert(path.to_path_buf(), d.clone());
                d
            }
            None => return Err(not_found(path)),
        };
        Ok(Box::new(SimFile {
            vfs: self.clone(),
            data,
            writable: true,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.state.lock();
        if let Some(kind) = s.tick_read(FaultOp::Open) {
            return Err(err(kind));
        }
        let data = s.files.get(path).cloned().ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile {
            vfs: self.clone(),
            data,
            writable: false,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        let mut p = Some(path);
        while let Some(dir) = p {
            s.dirs.insert(dir.to_path_buf());
            p = dir.parent();
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        if let Some(kind) = s.tick_read(FaultOp::List) {
            return Err(err(kind));
        }
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: Vec<String> = s
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(kind) = s.tick(FaultOp::Any) {
            return Err(err(kind));
        }
        s.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(kind) = s.tick(FaultOp::Any) {
            return Err(err(kind));
        }
        let d = s.files.remove(from).ok_or_else(|| not_found(from))?;
        s.files.insert(to.to_path_buf(), d);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(kind) = s.tick(FaultOp::Sync) {
            return Err(err(kind));
        }
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let st = &mut *s;
        st.durable_names.retain(|p, _| p.parent() != Some(path));
        for (p, d) in st.files.iter() {
            if p.parent() == Some(path) {
                st.durable_names.insert(p.clone(), d.clone());
            }
        }
        // Subdirectories created since are durable entries now too.
        for d in st.dirs.iter() {
            if d.parent() == Some(path) {
                st.durable_dirs.insert(d.clone());
            }
        }
        Ok(())
    }

    fn drop_cache(&self, path: &Path) -> io::Result<()> {
        // As `RealVfs` does it: open, sync, then evict, so that the view
        // becomes what the disk holds (the durable image and whatever is
        // still dirty); bytes a failed sync left cached and clean vanish.
        let mut s = self.state.lock();
        if let Some(kind) = s.tick_read(FaultOp::Open) {
            return Err(err(kind));
        }
        let data = s.files.get(path).cloned().ok_or_else(|| not_found(path))?;
        let fault = s.tick(FaultOp::Sync);
        let mut f = data.lock();
        let synced = match fault {
            None => {
                f.write_back();
                Ok(())
            }
            Some(kind) => Err(f.fail_sync(kind)),
        };
        // Evicted whether or not the sync worked, as `posix_fadvise` does.
        f.data = f.disk_image();
        synced
    }

    fn evict_cache(&self, path: &Path) -> io::Result<()> {
        // A read-side operation: nothing is written or synced. Clean pages
        // are evicted, so bytes a failed sync left cached and clean vanish;
        // dirty ones stay, still on their way to the disk.
        let mut s = self.state.lock();
        if let Some(kind) = s.tick_read(FaultOp::Open) {
            return Err(err(kind));
        }
        let data = s.files.get(path).cloned().ok_or_else(|| not_found(path))?;
        let mut f = data.lock();
        f.data = f.disk_image();
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state.lock();
        // Mount points exist from the start, as on a real machine: a test
        // opens `/sim/db` without creating `/sim`.
        s.files.contains_key(path) || s.dirs.contains(path) || is_mount(path)
    }

    fn instance_id(&self) -> usize {
        Arc::as_ptr(&self.state) as usize
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let mut s = self.state.lock();
        if !s.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked", path.display()),
            ));
        }
        Ok(Box::new(SimLock {
            vfs: self.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_data_and_drops_unsynced_entries() {
        let vfs = SimVfs::new();
        let dir = Path::new("/d");
        vfs.create_dir_all(dir).unwrap();
        let a = vfs.open(&dir.join("a"), true).unwrap();
        a.write_all_at(&[b"hello"], 0).unwrap();
        a.sync_data().unwrap();
        vfs.sync_dir(dir).unwrap();
        a.write_all_at(&[b"J"], 0).unwrap();
        let b = vfs.open(&dir.join("b"), true).unwrap();
        b.write_all_at(&[b"x"], 0).unwrap();
        b.sync_data().unwrap();

        let dropped = vfs.crash(CrashMode::DropAll);
        assert_eq!(dropped.contents(&dir.join("a")).unwrap(), b"hello");
        assert!(
            dropped.contents(&dir.join("b")).is_none(),
            "unsynced entry survived"
        );
        let kept = vfs.crash(CrashMode::KeepAll);
        assert_eq!(kept.contents(&dir.join("a")).unwrap(), b"Jello");
    }

    #[test]
    fn failed_sync_that_drops_data_never_makes_it_durable() {
        let vfs = SimVfs::new();
        vfs.create_dir_all(Path::new("/d")).unwrap();
        let f = vfs.open(Path::new("/d/f"), true).unwrap();
        vfs.sync_dir(Path::new("/d")).unwrap();
        vfs.inject(Fault {
            op: FaultOp::Sync,
            at_op: 2,
            persistent: false,
            kind: FaultKind::SyncFailDropped,
        });
        f.write_all_at(&[b"abc"], 0).unwrap();
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_ok(), "the fault fires once");
        let after = vfs.crash(CrashMode::KeepAll);
        assert_eq!(after.contents(Path::new("/d/f")).unwrap(), b"");
    }

    fn fault(op: FaultOp, at_op: u64, kind: FaultKind) -> Fault {
        Fault {
            op,
            at_op,
            persistent: false,
            kind,
        }
    }

    /// A file `/d/f` whose entry is durable, and the file system.
    fn one_file() -> (SimVfs, Box<dyn VfsFile>) {
        let vfs = SimVfs::new();
        vfs.create_dir_all(Path::new("/d")).unwrap();
        let f = vfs.open(Path::new("/d/f"), true).unwrap();
        vfs.sync_dir(Path::new("/d")).unwrap();
        (vfs, f)
    }

    #[test]
    fn a_sync_failed_clean_cached_leaves_bytes_readable_but_never_durable() {
        let (vfs, f) = one_file();
        let path = Path::new("/d/f");
        f.write_all_at(&[b"abcd"], 0).unwrap();
        f.sync_data().unwrap();
        vfs.inject(fault(FaultOp::Sync, 3, FaultKind::SyncFailCleanCached));
        f.write_all_at(&[b"WXYZ"], 4).unwrap();
        let e = f.sync_data().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        // Reads, even through a fresh descriptor, see the unwritten bytes.
        let again = vfs.open_read(path).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(again.read_at(&mut buf, 0).unwrap(), 8);
        assert_eq!(&buf, b"abcdWXYZ");
        assert_eq!(vfs.disk_contents(path).unwrap(), b"abcd");
        // A later sync through a fresh descriptor succeeds and writes nothing.
        vfs.open(path, false).unwrap().sync_data().unwrap();
        for mode in [CrashMode::KeepAll, CrashMode::DropAll] {
            assert_eq!(
                vfs.crash(mode).contents(path).unwrap(),
                b"abcd",
                "{}",
                mode.name()
            );
        }
        assert_eq!(vfs.contents(path).unwrap(), b"abcdWXYZ");
        assert_eq!(vfs.process_crash().contents(path).unwrap(), b"abcdWXYZ");
        assert_eq!(vfs.disk_view().contents(path).unwrap(), b"abcd");
        // Rewriting part of the range dirties it again: that part, and only
        // that part, becomes durable.
        f.write_all_at(&[b"xy"], 5).unwrap();
        assert_eq!(
            vfs.crash(CrashMode::DropAll).contents(path).unwrap(),
            b"abcd"
        );
        assert_eq!(
            vfs.crash(CrashMode::KeepAll).contents(path).unwrap(),
            b"abcd\0xy"
        );
        f.sync_data().unwrap();
        assert_eq!(
            vfs.crash(CrashMode::DropAll).contents(path).unwrap(),
            b"abcd\0xy"
        );
        assert_eq!(vfs.contents(path).unwrap(), b"abcdWxyZ");
    }

    #[test]
    fn evict_cache_drops_clean_cached_bytes_and_writes_nothing() {
        let (vfs, f) = one_file();
        let path = Path::new("/d/f");
        f.write_all_at(&[b"abcd"], 0).unwrap();
        f.sync_data().unwrap();
        vfs.inject(fault(FaultOp::Sync, 3, FaultKind::SyncFailCleanCached));
        f.write_all_at(&[b"1234"], 4).unwrap();
        assert!(f.sync_data().is_err());
        f.write_all_at(&[b"Q"], 0).unwrap();
        let ops = vfs.op_counts();
        vfs.evict_cache(path).unwrap();
        assert_eq!(vfs.op_counts(), ops, "evict_cache wrote or synced");
        // The dirty byte stays readable; the clean-but-lost ones are gone.
        assert_eq!(vfs.contents(path).unwrap(), b"Qbcd");
        assert_eq!(
            vfs.crash(CrashMode::DropAll).contents(path).unwrap(),
            b"abcd"
        );
    }

    #[test]
    fn drop_cache_shows_what_the_disk_holds() {
        let (vfs, f) = one_file();
        let path = Path::new("/d/f");
        f.write_all_at(&[b"abcd"], 0).unwrap();
        f.sync_data().unwrap();
        vfs.inject(fault(FaultOp::Sync, 3, FaultKind::SyncFailCleanCached));
        f.write_all_at(&[b"1234"], 4).unwrap();
        assert!(f.sync_data().is_err());
        // Dirty again after the failure: this one is on its way to the disk.
        f.write_all_at(&[b"Q"], 0).unwrap();
        assert_eq!(vfs.contents(path).unwrap(), b"Qbcd1234");
        let syncs = vfs.op_counts().1;
        vfs.drop_cache(path).unwrap();
        assert_eq!(vfs.op_counts().1, syncs + 1, "drop_cache syncs first");
        assert_eq!(vfs.contents(path).unwrap(), b"Qbcd");
        assert_eq!(f.len().unwrap(), 4);
        assert_eq!(
            vfs.crash(CrashMode::DropAll).contents(path).unwrap(),
            b"Qbcd"
        );
        assert_eq!(
            vfs.drop_cache(Path::new("/d/none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn drop_cache_evicts_even_when_its_sync_fails() {
        let (vfs, f) = one_file();
        let path = Path::new("/d/f");
        f.write_all_at(&[b"abcd"], 0).unwrap();
        vfs.inject(fault(FaultOp::Sync, 2, FaultKind::SyncFailCleanCached));
        let e = vfs.drop_cache(path).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert_eq!(vfs.contents(path).unwrap(), b"");
        // With the pending writes kept by the failure, they stay in view.
        f.write_all_at(&[b"efgh"], 0).unwrap();
        vfs.inject(fault(FaultOp::Sync, 3, FaultKind::SyncFailKept));
        assert!(vfs.drop_cache(path).is_err());
        assert_eq!(vfs.contents(path).unwrap(), b"efgh");
        assert_eq!(vfs.crash(CrashMode::DropAll).contents(path).unwrap(), b"");
    }

    #[test]
    fn a_new_directory_is_lost_until_its_parent_is_synced() {
        let vfs = SimVfs::new();
        let (a, b) = (Path::new("/m/a"), Path::new("/m/a/b"));
        vfs.create_dir_all(b).unwrap();
        let f = vfs.open(&b.join("f"), true).unwrap();
        f.write_all_at(&[b"data"], 0).unwrap();
        f.sync_data().unwrap();
        vfs.sync_dir(b).unwrap();
        let lost = vfs.crash(CrashMode::KeepAll);
        assert!(lost.exists(Path::new("/m")), "mount points always survive");
        assert!(!lost.exists(a) && !lost.exists(b));
        assert!(lost.paths().is_empty(), "{:?}", lost.paths());
        // b's entry is durable, but a's is not: still nothing under /m.
        vfs.sync_dir(a).unwrap();
        let lost = vfs.crash(CrashMode::KeepAll);
        assert!(!lost.exists(b) && lost.paths().is_empty());
        let points = {
            vfs.set_crash_points(|_| true, || 0);
            vfs.sync_dir(Path::new("/m")).unwrap();
            vfs.take_crash_points()
        };
        assert!(!points[0].frozen.image(CrashMode::KeepAll).exists(a));
        let kept = vfs.crash(CrashMode::DropAll);
        assert!(kept.exists(b));
        assert_eq!(kept.contents(&b.join("f")).unwrap(), b"data");
        // A crash image's directories are durable in turn.
        let again = kept.crash(CrashMode::DropAll);
        assert_eq!(again.contents(&b.join("f")).unwrap(), b"data");
        // A process crash keeps every directory: the kernel has them.
        let other = SimVfs::new();
        other.create_dir_all(b).unwrap();
        other.open(&b.join("g"), true).unwrap();
        let killed = other.process_crash();
        assert!(killed.exists(b) && killed.exists(&b.join("g")));
        assert!(killed.crash(CrashMode::DropAll).exists(&b.join("g")));
        assert!(!other.crash(CrashMode::KeepAll).exists(a));
        assert_eq!(
            other.sync_dir(Path::new("/m/none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn read_side_faults_are_counted_apart_from_mutating_operations() {
        let (vfs, f) = one_file();
        let path = Path::new("/d/f");
        f.write_all_at(&[b"abcd"], 0).unwrap();
        let mutating = vfs.op_counts();
        vfs.set_crash_points(|_| true, || 0);
        vfs.inject(fault(FaultOp::Read, 2, FaultKind::Eio));
        vfs.inject(fault(FaultOp::List, 1, FaultKind::Eio));
        vfs.inject(fault(FaultOp::Open, 2, FaultKind::Enospc));
        let mut buf = [0u8; 4];
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), 4);
        let e = f.read_at(&mut buf, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), 4, "the fault fires once");
        assert_eq!(
            vfs.list_dir(Path::new("/d")).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        assert_eq!(vfs.list_dir(Path::new("/d")).unwrap(), ["f"]);
        // Creating the file in `one_file` was a mutating operation: this is
        // open 1.
        assert!(vfs.open_read(path).is_ok());
        let e = vfs.open(path, false).err().expect("second open fails");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert!(vfs.open(path, true).is_ok());
        assert_eq!(vfs.read_op_counts(), (3, 2, 3));
        assert_eq!(vfs.op_counts(), mutating, "reads are not mutating ops");
        assert!(vfs.take_crash_points().is_empty(), "reads take no image");
        assert_eq!(vfs.faults_injected(), 3);

        vfs.clear_faults();
        vfs.inject(Fault {
            op: FaultOp::ReadSide,
            at_op: 10,
            persistent: true,
            kind: FaultKind::Eio,
        });
        assert!(f.read_at(&mut buf, 0).is_ok(), "read-side op 9");
        assert!(vfs.list_dir(Path::new("/d")).is_err(), "op 10");
        assert!(vfs.open_read(path).is_err(), "op 11");
        assert!(f.read_at(&mut buf, 0).is_err(), "op 12");
    }

    #[test]
    fn crash_points_capture_the_state_before_each_operation() {
        let vfs = SimVfs::new();
        vfs.create_dir_all(Path::new("/d")).unwrap();
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = counter.clone();
        vfs.set_crash_points(
            |_| true,
            move || c.load(std::sync::atomic::Ordering::SeqCst),
        );
        let f = vfs.open(Path::new("/d/f"), true).unwrap(); // op 1
        vfs.sync_dir(Path::new("/d")).unwrap(); // op 2
        f.write_all_at(&[b"abcd"], 0).unwrap(); // op 3
        f.sync_data().unwrap(); // op 4
        counter.store(7, std::sync::atomic::Ordering::SeqCst);
        f.write_all_at(&[b"XY"], 8).unwrap(); // op 5
        let points = vfs.take_crash_points();
        assert_eq!(
            points.iter().map(|p| p.op).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let path = Path::new("/d/f");
        assert!(points[1]
            .frozen
            .image(CrashMode::KeepAll)
            .contents(path)
            .is_none());
        assert_eq!(
            points[3]
                .frozen
                .image(CrashMode::KeepAll)
                .contents(path)
                .unwrap(),
            b"abcd"
        );
        assert_eq!(
            points[3]
                .frozen
                .image(CrashMode::DropAll)
                .contents(path)
                .unwrap(),
            b""
        );
        assert_eq!(points[4].tag, 7);
        assert_eq!(
            points[4]
                .frozen
                .image(CrashMode::DropAll)
                .contents(path)
                .unwrap(),
            b"abcd"
        );
        // After op 5: the extension is lost, kept, or kept as zeros/garbage.
        let end = vfs.freeze();
        let lens: HashSet<usize> = (0..64)
            .map(|seed| {
                end.image(CrashMode::Extended {
                    seed,
                    garbage: true,
                })
                .contents(path)
                .unwrap()
                .len()
            })
            .collect();
        assert_eq!(lens, HashSet::from([10]), "the length always grows");
        let zeros = (0..64).any(|seed| {
            end.image(CrashMode::Extended {
                seed,
                garbage: false,
            })
            .contents(path)
            .unwrap()
                == b"abcd\0\0\0\0\0\0"
        });
        assert!(zeros, "some seed drops the write and keeps the length");
        let torn = (0..64).any(|seed| {
            end.image(CrashMode::RandomTorn { seed, sector: 512 })
                .contents(path)
                .unwrap()
                == b"abcd"
        });
        assert!(torn);
    }
}
