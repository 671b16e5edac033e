//! A simulated file system for tests: it keeps, per file, the image a crash
//! would leave (what was synced) beside the image reads see, and per directory
//! which entries were synced. [`SimVfs::crash`] builds the file system a power
//! loss would leave; [`SimVfs::inject`] makes the Nth file operation fail.
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
    pub durable: Vec<u8>,
    /// Writes since the last sync, in order: a crash may keep any of them.
    pub pending: Vec<(u64, Vec<u8>)>,
}

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
    Write,
    Sync,
    /// Any operation that changes the file system (write, sync, create,
    /// rename, remove, directory sync).
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
    /// Half of the bytes are written, then the write fails.
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

/// What a simulated crash does with unsynced writes.
#[derive(Clone, Copy, Debug)]
pub enum CrashMode {
    /// Every unsynced write reached the disk.
    KeepAll,
    /// No unsynced write reached the disk.
    DropAll,
    /// The first `n` unsynced writes of each file, in order, reached the disk.
    KeepPrefix(usize),
    /// A random subset of unsynced writes reached the disk, each torn at a
    /// random multiple of `sector` bytes (512 or 4096); seeded.
    RandomTorn { seed: u64, sector: usize },
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
    /// Counts an operation and returns the fault armed for it, if any.
    fn tick(&mut self, op: FaultOp) -> Option<FaultKind> {
        self.any_ops += 1;
        match op {
            FaultOp::Write => self.write_ops += 1,
            FaultOp::Sync => self.sync_ops += 1,
            FaultOp::Any => {}
        }
        let (w, s, a) = (self.write_ops, self.sync_ops, self.any_ops);
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

    /// The current contents of a file (what reads see).
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
        apply(&mut f.durable, offset, bytes);
    }

    /// Paths of every file, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let s = self.state.lock();
        let mut v: Vec<PathBuf> = s.files.keys().cloned().collect();
        v.sort();
        v
    }

    /// The file system a power loss would leave now: the synced directory
    /// entries, each file with its synced image plus the unsynced writes
    /// that `mode` keeps. Faults and locks are not carried over.
    pub fn crash(&self, mode: CrashMode) -> SimVfs {
        let s = self.state.lock();
        let mut rng = match mode {
            CrashMode::RandomTorn { seed, .. } => SplitMix(seed),
            _ => SplitMix(0),
        };
        let mut names: Vec<&PathBuf> = s.durable_names.keys().collect();
        names.sort();
        let mut out = State {
            dirs: s.dirs.clone(),
            ..State::default()
        };
        for path in names {
            let f = s.durable_names[path].lock();
            let mut image = f.durable.clone();
            for (i, (off, bytes)) in f.pending.iter().enumerate() {
                match mode {
                    CrashMode::KeepAll => apply(&mut image, *off, bytes),
                    CrashMode::DropAll => {}
                    CrashMode::KeepPrefix(n) => {
                        if i < n {
                            apply(&mut image, *off, bytes)
                        }
                    }
                    CrashMode::RandomTorn { sector, .. } => match rng.below(3) {
                        0 => {}
                        1 => apply(&mut image, *off, bytes),
                        _ => {
                            // A torn write: only whole sectors of it land.
                            let sector = sector.max(1) as u64;
                            let start = *off;
                            let end = off + bytes.len() as u64;
                            let mut a = start;
                            while a < end {
                                let next = ((a / sector) + 1) * sector;
                                let b = next.min(end);
                                if rng.below(2) == 0 {
                                    let lo = (a - start) as usize;
                                    let hi = (b - start) as usize;
                                    apply(&mut image, a, &bytes[lo..hi]);
                                }
                                a = b;
                            }
                        }
                    },
                }
            }
            let data = Arc::new(Mutex::new(SimFileData {
                data: image.clone(),
                durable: image,
                pending: Vec::new(),
            }));
            out.files.insert(path.clone(), data.clone());
            out.durable_names.insert(path.clone(), data);
        }
        SimVfs {
            state: Arc::new(Mutex::new(out)),
        }
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
        let fault = self.vfs.state.lock().tick(FaultOp::Write);
        let joined: Vec<u8> = bufs.concat();
        let mut f = self.data.lock();
        match fault {
            None => {
                apply(&mut f.data, offset, &joined);
                f.pending.push((offset, joined));
                Ok(())
            }
            Some(FaultKind::ShortWrite) => {
                let half = joined[..joined.len() / 2].to_vec();
                apply(&mut f.data, offset, &half);
                f.pending.push((offset, half));
                Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "injected short write",
                ))
            }
            Some(kind) => Err(err(kind)),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let fault = self.vfs.state.lock().tick(FaultOp::Sync);
        let mut f = self.data.lock();
        match fault {
            None => {
                f.durable = f.data.clone();
                f.pending.clear();
                Ok(())
            }
            Some(FaultKind::SyncFailDropped) => {
                // The pages were marked clean without reaching the disk; model
                // them as evicted too, so no later sync can write them.
                f.pending.clear();
                f.data = f.durable.clone();
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
}
