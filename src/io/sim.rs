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
//! Directories themselves are treated as durable once created; what a crash
//! can lose is file contents that were not synced and directory entries
//! (creations, renames, removals) that were not synced.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Vfs, VfsFile};

/// The state of one file.
#[derive(Clone, Debug, Default)]
pub struct SimFileData {
    /// What reads see now.
    pub data: Vec<u8>,
    /// What survives a crash for certain (the image as of the last sync).
    /// Shared copy-on-write with the crash images taken since.
    pub durable: Arc<Vec<u8>>,
    /// Writes since the last sync, in order: a crash may keep any of them.
    pub pending: PendingWrites,
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
    /// File syncs and directory syncs.
    Sync,
    /// Any operation that changes the file system (write, sync, create,
    /// rename, remove, directory sync), counted together.
    Any,
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
/// its old name; a removed one is back).
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
/// directory entry with its synced image and unsynced writes. Cheap to take
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
    dirs: HashSet<PathBuf>,
    locks: HashSet<PathBuf>,
    write_ops: u64,
    sync_ops: u64,
    any_ops: u64,
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
        self.any_ops += 1;
        match op {
            FaultOp::Write => self.write_ops += 1,
            FaultOp::Sync => self.sync_ops += 1,
            FaultOp::Any => {}
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

    fn freeze(&self) -> Frozen {
        let mut files: Vec<_> = self
            .durable_names
            .iter()
            .map(|(p, f)| {
                let f = f.lock();
                (p.clone(), f.durable.clone(), f.pending.clone())
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Frozen {
            files,
            dirs: self.dirs.clone(),
        }
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

    /// A file system after a crash: these directories, and these files with
    /// these contents, all synced, with synced directory entries.
    fn from_images(
        dirs: HashSet<PathBuf>,
        files: impl Iterator<Item = (PathBuf, Vec<u8>)>,
    ) -> SimVfs {
        let mut out = State {
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
        let f = self.data.lock();
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
                let image = f.data.clone();
                f.durable = Arc::new(image);
                f.pending.clear();
                Ok(())
            }
            Some(FaultKind::SyncFailDropped) => {
                // The pages were marked clean without reaching the disk; model
                // them as evicted too, so no later sync can write them.
                f.pending.clear();
                f.data = f.durable.to_vec();
                Err(err(FaultKind::Eio))
            }
            Some(kind) => Err(err(kind)),
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
        let data = match s.files.get(path) {
            Some(d) => d.clone(),
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
        let s = self.state.lock();
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
        let s = self.state.lock();
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
        let st = &mut *s;
        st.durable_names.retain(|p, _| p.parent() != Some(path));
        for (p, d) in st.files.iter() {
            if p.parent() == Some(path) {
                st.durable_names.insert(p.clone(), d.clone());
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state.lock();
        s.files.contains_key(path) || s.dirs.contains(path)
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
