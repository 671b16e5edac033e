//! The contenders, behind one trait: each commit is durable (synced) before
//! `commit` returns, except in the rows labelled otherwise.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pwal::{Frame, Log, Mode, Options, SyncPolicy, Txn};

use super::peers::{Rocks, Sqlite};
use super::{Cell, PwalWindow, MAX_PAGES_PER_COMMIT};

/// Size of the pre-zeroed file the mutex baseline and the floor overwrite
/// (cyclically).
pub const PREZEROED_BYTES: u64 = 64 << 20;
/// How often the pwal contenders checkpoint everything durable, as an engine
/// would after copying pages home (keeps segments recycled rather than
/// created during the measurement).
pub const PWAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Lane count given to the pwal contenders (0: pwal's default, the CPU
/// count); set once by `--pwal-lanes` for experiments.
pub static PWAL_LANES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One engine under test, open on a directory of its own.
pub trait Contender: Send + Sync {
    /// Commits one transaction of `pages` from writer thread `thread`
    /// (`0..threads`); `seq` is unique and increasing in submission order.
    fn commit(&self, thread: usize, seq: u64, pages: &[&[u8]]) -> Result<(), String>;
    /// pwal's counters, for the pwal contenders.
    fn pwal_counters(&self) -> Option<PwalWindow> {
        None
    }
    /// How many commits one call stands for (1 but for the sequential
    /// floor, whose one write carries many commits' bytes).
    fn commits_per_call(&self) -> u64 {
        1
    }
    fn close(self: Box<Self>) -> Result<(), String>;
}

/// What every contender of a run may share: where files go and the
/// pre-zeroed file of the raw baselines.
pub struct Shared {
    pub data_dir: PathBuf,
    pub prezeroed: PathBuf,
    /// Whether this value created the pre-zeroed file (and removes it).
    owned: bool,
}

impl Shared {
    pub fn new(data_dir: &Path) -> std::io::Result<Shared> {
        std::fs::create_dir_all(data_dir)?;
        let prezeroed = data_dir.join("prezeroed.dat");
        super::sys::create_prezeroed(&prezeroed, PREZEROED_BYTES)?;
        Ok(Shared {
            data_dir: data_dir.to_path_buf(),
            prezeroed,
            owned: true,
        })
    }

    /// The files another process of this run created (for child processes).
    pub fn existing(data_dir: &Path) -> Shared {
        Shared {
            data_dir: data_dir.to_path_buf(),
            prezeroed: data_dir.join("prezeroed.dat"),
            owned: false,
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.prezeroed);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    PwalAutoFull,
    PwalAutoFullNoCheckpoint,
    PwalConservativeFull,
    PwalAutoNormal,
    SqliteFull,
    SqliteNormal,
    Rocksdb,
    Mutex,
    Floor,
    SeqFloor,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::PwalAutoFull,
        Kind::PwalAutoFullNoCheckpoint,
        Kind::PwalConservativeFull,
        Kind::PwalAutoNormal,
        Kind::SqliteFull,
        Kind::SqliteNormal,
        Kind::Rocksdb,
        Kind::Mutex,
        Kind::Floor,
        Kind::SeqFloor,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Kind::PwalAutoFull => "pwal-auto-full",
            Kind::PwalAutoFullNoCheckpoint => "pwal-auto-full-nockpt",
            Kind::PwalConservativeFull => "pwal-conservative-full",
            Kind::PwalAutoNormal => "pwal-auto-normal",
            Kind::SqliteFull => "sqlite-full",
            Kind::SqliteNormal => "sqlite-normal",
            Kind::Rocksdb => "rocksdb",
            Kind::Mutex => "mutex",
            Kind::Floor => "floor",
            Kind::SeqFloor => "seq-floor",
        }
    }

    pub fn from_slug(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.slug() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::PwalAutoFull => "pwal auto, full",
            Kind::PwalAutoFullNoCheckpoint => "pwal auto, full, no checkpoint",
            Kind::PwalConservativeFull => "pwal conservative, full",
            Kind::PwalAutoNormal => "pwal auto, normal (*)",
            Kind::SqliteFull => "SQLite WAL, FULL",
            Kind::SqliteNormal => "SQLite WAL, NORMAL (*)",
            Kind::Rocksdb => "RocksDB, sync=true",
            Kind::Mutex => "mutex + pwrite + fdatasync",
            Kind::Floor => "floor (1 thread)",
            Kind::SeqFloor => "sequential floor (1 thread, 4 MiB writes)",
        }
    }

    /// Whether a commit is durable against power loss when acknowledged.
    pub fn durable(self) -> bool {
        !matches!(self, Kind::PwalAutoNormal | Kind::SqliteNormal)
    }

    /// The floors run one thread, whatever the cell says: they are the
    /// disk's own figure for the cell's commit size, not a contender.
    pub fn single_thread(self) -> bool {
        matches!(self, Kind::Floor | Kind::SeqFloor)
    }

    pub fn effective_cell(self, cell: Cell) -> Cell {
        if self.single_thread() {
            Cell { threads: 1, ..cell }
        } else {
            cell
        }
    }

    pub fn open(
        self,
        dir: &Path,
        cell: Cell,
        shared: &Shared,
    ) -> Result<Box<dyn Contender>, String> {
        Ok(match self {
            Kind::PwalAutoFull => Box::new(PwalContender::open(
                dir,
                Mode::Auto,
                SyncPolicy::Full,
                true,
            )?),
            Kind::PwalAutoFullNoCheckpoint => Box::new(PwalContender::open(
                dir,
                Mode::Auto,
                SyncPolicy::Full,
                false,
            )?),
            Kind::PwalConservativeFull => Box::new(PwalContender::open(
                dir,
                Mode::Conservative,
                SyncPolicy::Full,
                true,
            )?),
            Kind::PwalAutoNormal => Box::new(PwalContender::open(
                dir,
                Mode::Auto,
                SyncPolicy::Normal,
                true,
            )?),
            Kind::SqliteFull => Box::new(SqliteContender(Sqlite::open(dir, cell.threads, true)?)),
            Kind::SqliteNormal => {
                Box::new(SqliteContender(Sqlite::open(dir, cell.threads, false)?))
            }
            Kind::Rocksdb => Box::new(RocksContender(Rocks::open(dir)?)),
            Kind::Mutex | Kind::Floor => Box::new(RawWal::open(&shared.prezeroed, cell)?),
            Kind::SeqFloor => Box::new(SeqFloor::open(&shared.prezeroed, cell)?),
        })
    }
}

/// pwal through its public Rust API, with a background checkpointer (or,
/// for the no-checkpoint rows, none: the log only grows, as one nobody
/// checkpoints does).
pub struct PwalContender {
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    checkpointer: Option<JoinHandle<Result<(), String>>>,
}

impl PwalContender {
    pub fn open(
        dir: &Path,
        mode: Mode,
        sync: SyncPolicy,
        checkpoints: bool,
    ) -> Result<PwalContender, String> {
        let opts = Options {
            mode,
            sync,
            lanes: PWAL_LANES.load(Ordering::Relaxed),
            use_env: false,
            ..Options::default()
        };
        let log =
            Arc::new(Log::open(dir.join("db"), &opts).map_err(|e| format!("pwal open: {e}"))?);
        wait_for_spare(&pwal::log_dir(&dir.join("db")));
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer =
            checkpoints.then(|| spawn_checkpointer(Arc::clone(&log), Arc::clone(&stop)));
        Ok(PwalContender {
            log,
            stop,
            checkpointer,
        })
    }

    pub fn log(&self) -> &Log {
        &self.log
    }
}

/// How long a pwal contender waits after open for its first spare segment.
const SPARE_WAIT: Duration = Duration::from_secs(3);

/// Waits (bounded) until pwal's preallocation thread has zero-filled its
/// first spare segment (a `spare-<n>.tmp` that has stopped growing). Right
/// after open that fill, synced 1 MiB at a time, shares the disk with the
/// commits; the benchmark measures the steady state, not the first moments.
fn wait_for_spare(log_dir: &Path) {
    let spare_len = || {
        std::fs::read_dir(log_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("spare-"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let t0 = std::time::Instant::now();
    let mut last = 0;
    while t0.elapsed() < SPARE_WAIT {
        std::thread::sleep(Duration::from_millis(30));
        let len = spare_len();
        if len >= PWAL_FIRST_SEGMENT_BYTES && len == last {
            std::thread::sleep(Duration::from_millis(20)); // its final sync
            return;
        }
        last = len;
    }
}

/// The size of pwal's first segment, and so of its smallest spare
/// (`PWAL_FIRST_SEGMENT_BYTES`).
const PWAL_FIRST_SEGMENT_BYTES: u64 = 4 << 20;

/// A transaction of `pages` frames with page numbers derived from `seq` (so
/// that consecutive commits touch different pages, as an engine's would).
pub fn pwal_txn<'a>(
    seq: u64,
    pages: &[&'a [u8]],
    frames: &'a mut [Frame<'a>; MAX_PAGES_PER_COMMIT],
) -> Txn<'a> {
    let n = pages.len();
    let base = ((seq * n as u64) % (1 << 20)) as u32 + 1;
    for (i, (f, p)) in frames.iter_mut().zip(pages).enumerate() {
        *f = Frame {
            page_number: base + i as u32,
            db_size_if_commit: if i + 1 == n { (1 << 20) + 64 } else { 0 },
            data: p,
        };
    }
    Txn {
        txn_id: seq,
        commit_seq: seq,
        txn_epoch: 0,
        frames: &frames[..n],
    }
}

pub fn empty_frames<'a>() -> [Frame<'a>; MAX_PAGES_PER_COMMIT] {
    [Frame {
        page_number: 1,
        db_size_if_commit: 0,
        data: &[],
    }; MAX_PAGES_PER_COMMIT]
}

impl Contender for PwalContender {
    fn commit(&self, _thread: usize, seq: u64, pages: &[&[u8]]) -> Result<(), String> {
        let mut frames = empty_frames();
        let txn = pwal_txn(seq, pages, &mut frames);
        self.log
            .commit(&txn, None)
            .map(|_| ())
            .map_err(|e| format!("pwal commit: {e}"))
    }

    fn pwal_counters(&self) -> Option<PwalWindow> {
        let s = self.log.stats();
        Some(PwalWindow {
            epochs: s.epochs,
            transactions: s.transactions,
            records: s.records,
            bytes_written: s.bytes_written,
            syncs: s.syncs,
            txns_per_epoch_p50: s.txns_per_epoch.p50_us,
            txns_per_epoch_p99: s.txns_per_epoch.p99_us,
            txns_per_epoch_max: s.txns_per_epoch.max_us,
            sync_p50_us: s.sync_latency.p50_us,
            sync_p99_us: s.sync_latency.p99_us,
        })
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        let PwalContender {
            log,
            stop,
            checkpointer,
        } = *self;
        close_pwal(log, &stop, checkpointer)
    }
}

/// A thread checkpointing everything durable every 100 ms until `stop`.
pub fn spawn_checkpointer(
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(PWAL_CHECKPOINT_EVERY);
            let durable = log.stats().durable_epoch;
            if durable > 0 {
                log.checkpoint(durable)
                    .map_err(|e| format!("pwal checkpoint: {e}"))?;
            }
        }
        Ok(())
    })
}

/// Stops and joins a checkpointer, then closes its log.
pub fn close_pwal(
    log: Arc<Log>,
    stop: &AtomicBool,
    checkpointer: Option<std::thread::JoinHandle<Result<(), String>>>,
) -> Result<(), String> {
    stop.store(true, Ordering::Release);
    let ck = match checkpointer {
        Some(h) => h.join().map_err(|_| "checkpointer panicked".to_string())?,
        None => Ok(()),
    };
    let log = Arc::try_unwrap(log).map_err(|_| "pwal log still shared".to_string())?;
    log.close().map_err(|e| format!("pwal close: {e}"))?;
    ck
}

struct SqliteContender(Sqlite);

impl Contender for SqliteContender {
    fn commit(&self, thread: usize, _seq: u64, pages: &[&[u8]]) -> Result<(), String> {
        self.0.commit(thread, pages)
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.0.close()
    }
}

struct RocksContender(Rocks);

impl Contender for RocksContender {
    fn commit(&self, _thread: usize, seq: u64, pages: &[&[u8]]) -> Result<(), String> {
        self.0.commit(seq, pages)
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.0.close()
    }
}

/// The design pwal replaces (one global mutex held across `pwrite` +
/// `fdatasync` of each commit) and, run with one thread, the floor: each
/// commit overwrites the next bytes of a pre-zeroed file and syncs them.
pub struct RawWal {
    file: Mutex<(File, u64)>,
    /// Per-thread staging buffers (a WAL copies the pages into its record
    /// before writing; done outside the lock).
    staging: Vec<Mutex<Vec<u8>>>,
}

impl RawWal {
    pub fn open(prezeroed: &Path, cell: Cell) -> Result<RawWal, String> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(prezeroed)
            .map_err(|e| format!("{}: {e}", prezeroed.display()))?;
        Ok(RawWal {
            file: Mutex::new((f, 0)),
            staging: (0..cell.threads)
                .map(|_| Mutex::new(Vec::with_capacity(cell.commit_bytes())))
                .collect(),
        })
    }
}

impl Contender for RawWal {
    fn commit(&self, thread: usize, _seq: u64, pages: &[&[u8]]) -> Result<(), String> {
        let mut buf = self.staging[thread].lock().unwrap();
        buf.clear();
        for p in pages {
            buf.extend_from_slice(p);
        }
        let mut g = self.file.lock().unwrap();
        let len = buf.len() as u64;
        if g.1 + len > PREZEROED_BYTES {
            g.1 = 0;
        }
        let off = g.1;
        g.0.write_all_at(&buf, off)
            .map_err(|e| format!("pwrite: {e}"))?;
        g.0.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        g.1 += len;
        Ok(())
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        Ok(())
    }
}

/// The disk's sequential durable bandwidth: one thread overwrites the
/// pre-zeroed file (cyclically) in writes of [`SEQ_FLOOR_WRITE`] bytes, each
/// followed by `fdatasync`. One call stands for as many commits of the cell
/// as fit in one write, so its commits/s and MB/s compare with the
/// contenders' directly.
pub struct SeqFloor {
    file: Mutex<(File, u64)>,
    buf: Vec<u8>,
    per_call: u64,
}

/// The size of each write of the sequential floor.
pub const SEQ_FLOOR_WRITE: usize = 4 << 20;

impl SeqFloor {
    pub fn open(prezeroed: &Path, cell: Cell) -> Result<SeqFloor, String> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(prezeroed)
            .map_err(|e| format!("{}: {e}", prezeroed.display()))?;
        let per_call = (SEQ_FLOOR_WRITE / cell.commit_bytes()).max(1);
        let mut buf = super::make_pages(1, per_call * cell.commit_bytes(), 7).remove(0);
        buf.truncate(per_call * cell.commit_bytes());
        Ok(SeqFloor {
            file: Mutex::new((f, 0)),
            buf,
            per_call: per_call as u64,
        })
    }
}

impl Contender for SeqFloor {
    fn commit(&self, _thread: usize, _seq: u64, _pages: &[&[u8]]) -> Result<(), String> {
        let mut g = self.file.lock().unwrap();
        let len = self.buf.len() as u64;
        if g.1 + len > PREZEROED_BYTES {
            g.1 = 0;
        }
        let off = g.1;
        g.0.write_all_at(&self.buf, off)
            .map_err(|e| format!("pwrite: {e}"))?;
        g.0.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        g.1 += len;
        Ok(())
    }
    fn commits_per_call(&self) -> u64 {
        self.per_call
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        Ok(())
    }
}
