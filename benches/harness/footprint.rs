//! The disk a log takes: pwal's log directory, SQLite's `-wal` and `-shm`
//! files (and its database file apart), RocksDB's WAL `*.log` files (and its
//! whole directory apart), in four states of one instance each:
//!
//! - **fresh**: open, one commit of one 4 KiB page;
//! - **small**: after `small_commits` such commits from one thread in all;
//! - **busy**: after `busy_secs` of `threads` writers;
//! - **idle**: the busy one `idle_secs` after its writers stopped.
//!
//! Every commit is durable when acknowledged (pwal sync full, SQLite
//! `synchronous=FULL`, RocksDB `sync=true`). pwal has one thread
//! checkpointing everything durable every 100 ms from open to close, as an
//! engine copying pages home would; SQLite checkpoints on its own (default
//! auto-checkpoint) and gets one `PRAGMA wal_checkpoint(PASSIVE)` before the
//! idle spell; RocksDB is left to itself. Sizes are allocated blocks
//! (`st_blocks * 512`) and apparent sizes (`st_size`); a figure is taken
//! once the directory has stopped changing (bounded wait), so that
//! background preallocation is counted in full.

use std::ffi::{c_void, CString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pwal::{Log, Options, SyncPolicy};

use super::contenders::{close_pwal, empty_frames, pwal_txn, spawn_checkpointer};
use super::make_pages;
use super::peers::{sqlite_api, Rocks, Sqlite};

const MIB: f64 = (1u64 << 20) as f64;
const PAGE: usize = 4096;
/// pwal's targets: a fresh log, and an idle one, take at most this much.
pub const PWAL_SMALL_TARGET_BYTES: u64 = 16 << 20;

#[derive(Clone, Debug)]
pub struct Opts {
    pub small_commits: usize,
    pub busy_secs: f64,
    pub idle_secs: f64,
    pub threads: usize,
    /// The command line shown in the report.
    pub command: String,
}

impl Opts {
    pub fn full() -> Opts {
        Opts {
            small_commits: 1000,
            busy_secs: 10.0,
            idle_secs: 3.0,
            threads: 16,
            command: super::command_line("footprint"),
        }
    }

    pub fn quick() -> Opts {
        Opts {
            busy_secs: 2.0,
            ..Opts::full()
        }
    }
}

/// Allocated and apparent bytes of some files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of `st_blocks * 512`.
    pub allocated: u64,
    /// Sum of `st_size`.
    pub apparent: u64,
    pub files: usize,
}

impl Usage {
    fn add(&mut self, m: &std::fs::Metadata) {
        self.allocated += m.blocks() * 512;
        self.apparent += m.len();
        self.files += 1;
    }
}

/// The files under `dir` (recursively) whose name satisfies `keep`.
pub fn dir_usage(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Usage {
    let mut u = Usage::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if keep(&e.file_name().to_string_lossy()) {
                u.add(&m);
            }
        }
    }
    u
}

/// Every file under `dir`.
pub fn dir_usage_all(dir: &Path) -> Usage {
    dir_usage(dir, &|_| true)
}

/// Waits (up to `max`) until the usage `f` returns holds still for 300 ms,
/// and returns it.
fn settled(max: Duration, f: &dyn Fn() -> Vec<Usage>) -> Vec<Usage> {
    let t0 = Instant::now();
    let mut last = f();
    let mut since = Instant::now();
    while t0.elapsed() < max {
        std::thread::sleep(Duration::from_millis(50));
        let now = f();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(300) {
            break;
        }
    }
    last
}

const SETTLE_MAX: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Fresh,
    Small,
    Busy,
    Idle,
}

impl State {
    pub const ALL: [State; 4] = [State::Fresh, State::Small, State::Busy, State::Idle];
    pub fn label(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Small => "small",
            State::Busy => "busy",
            State::Idle => "idle",
        }
    }
}

/// One measured part of one engine (pwal's log directory, SQLite's WAL
/// files, ...) in every state.
#[derive(Clone, Debug)]
pub struct Row {
    pub what: String,
    pub states: Vec<(State, Usage)>,
}

#[derive(Clone, Debug)]
pub struct EngineResult {
    pub engine: &'static str,
    pub rows: Vec<Row>,
    /// Commits from the start of the busy spell to its end.
    pub busy_commits: u64,
    /// (name, allocated bytes) of the log's files when idle (pwal only).
    pub idle_files: Vec<(String, u64)>,
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct FootprintResult {
    pub opts: Opts,
    pub engines: Vec<EngineResult>,
}

/// How one engine is driven and measured.
trait Engine: Sync {
    fn commit(&self, thread: usize, seq: u64, page: &[u8]) -> Result<(), String>;
    /// (label, usage) of each measured part.
    fn usage(&self) -> Vec<(String, Usage)>;
    /// (name, allocated bytes) of each file of the engine's log, for the
    /// report's listing of the idle state (pwal only).
    fn listing(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Called once the busy writers have stopped, before the idle spell.
    fn quiesce(&self) -> Result<(), String> {
        Ok(())
    }
    fn close(self: Box<Self>) -> Result<(), String>;
}

struct PwalEngine {
    log: Arc<Log>,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    checkpointer: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl PwalEngine {
    fn open(dir: &Path) -> Result<PwalEngine, String> {
        let opts = Options {
            sync: SyncPolicy::Full,
            use_env: false,
            ..Options::default()
        };
        let db = dir.join("db");
        let log = Arc::new(Log::open(&db, &opts).map_err(|e| format!("pwal open: {e}"))?);
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = Some(spawn_checkpointer(Arc::clone(&log), Arc::clone(&stop)));
        Ok(PwalEngine {
            log,
            dir: pwal::log_dir(&db),
            stop,
            checkpointer,
        })
    }
}

impl Engine for PwalEngine {
    fn commit(&self, _thread: usize, seq: u64, page: &[u8]) -> Result<(), String> {
        let mut frames = empty_frames();
        let txn = pwal_txn(seq, &[page], &mut frames);
        self.log
            .commit(&txn, None)
            .map(|_| ())
            .map_err(|e| format!("pwal commit: {e}"))
    }
    fn usage(&self) -> Vec<(String, Usage)> {
        vec![("log directory".into(), dir_usage_all(&self.dir))]
    }
    fn listing(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let m = e.metadata().ok()?;
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            m.blocks() * 512,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
    fn close(mut self: Box<Self>) -> Result<(), String> {
        let ck = self.checkpointer.take();
        close_pwal(self.log, &self.stop, ck)
    }
}

struct SqliteEngine {
    db: Sqlite,
    dir: PathBuf,
}

impl Engine for SqliteEngine {
    fn commit(&self, thread: usize, _seq: u64, page: &[u8]) -> Result<(), String> {
        self.db.commit(thread, &[page])
    }
    fn usage(&self) -> Vec<(String, Usage)> {
        vec![
            (
                "-wal + -shm".into(),
                dir_usage(&self.dir, &|n| n.ends_with("-wal") || n.ends_with("-shm")),
            ),
            (
                "database file".into(),
                dir_usage(&self.dir, &|n| n.ends_with(".sqlite")),
            ),
        ]
    }
    fn quiesce(&self) -> Result<(), String> {
        sqlite_checkpoint_passive(&self.dir.join("bench.sqlite"))
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.db.close()
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own.
fn sqlite_checkpoint_passive(path: &Path) -> Result<(), String> {
    let api = sqlite_api()?;
    let p = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let sql = CString::new("PRAGMA wal_checkpoint(PASSIVE);").unwrap();
    let mut db: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid C strings and out-pointers; the connection is closed
    // before returning and used by this thread only.
    unsafe {
        let rc = (api.sqlite3_open_v2)(p.as_ptr(), &mut db, 0x2, std::ptr::null());
        if rc != 0 {
            (api.sqlite3_close_v2)(db);
            return Err(format!("sqlite3_open_v2: rc {rc}"));
        }
        let rc = (api.sqlite3_exec)(
            db,
            sql.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        (api.sqlite3_close_v2)(db);
        if rc != 0 {
            return Err(format!("wal_checkpoint(PASSIVE): rc {rc}"));
        }
    }
    Ok(())
}

struct RocksEngine {
    db: Rocks,
    dir: PathBuf,
}

impl Engine for RocksEngine {
    fn commit(&self, _thread: usize, seq: u64, page: &[u8]) -> Result<(), String> {
        self.db.commit(seq, &[page])
    }
    fn usage(&self) -> Vec<(String, Usage)> {
        vec![
            (
                "WAL *.log".into(),
                dir_usage(&self.dir, &|n| n.ends_with(".log") && n != "LOG"),
            ),
            ("whole directory".into(), dir_usage_all(&self.dir)),
        ]
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.db.close()
    }
}

/// Commits from `threads` writers for `secs`; returns how many completed.
fn writers(e: &dyn Engine, threads: usize, secs: f64, seq: &AtomicU64) -> Result<u64, String> {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let error: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, done, error) = (&stop, &done, &error);
            s.spawn(move || {
                let mut page = make_pages(1, PAGE, t as u64 + 1).pop().unwrap();
                while !stop.load(Ordering::Acquire) {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    page[..8].copy_from_slice(&n.to_le_bytes());
                    if let Err(x) = e.commit(t, n, &page) {
                        error.lock().unwrap().get_or_insert(x);
                        stop.store(true, Ordering::Release);
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < secs && !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Release);
    });
    match error.into_inner().unwrap() {
        Some(x) => Err(x),
        None => Ok(done.into_inner()),
    }
}

/// Takes `e` through the four states, recording its usage in each.
fn drive(e: &dyn Engine, opts: &Opts, out: &mut EngineResult) -> Result<(), String> {
    let seq = AtomicU64::new(1);
    let mut record = |state: State, usage: Vec<(String, Usage)>| {
        for (what, u) in usage {
            match out.rows.iter_mut().find(|r| r.what == what) {
                Some(r) => r.states.push((state, u)),
                None => out.rows.push(Row {
                    what,
                    states: vec![(state, u)],
                }),
            }
        }
    };
    let snapshot = || {
        settled(SETTLE_MAX, &|| {
            e.usage().into_iter().map(|(_, u)| u).collect()
        });
        e.usage()
    };
    let mut page = make_pages(1, PAGE, 0).pop().unwrap();
    let one = |page: &mut Vec<u8>| {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        page[..8].copy_from_slice(&n.to_le_bytes());
        e.commit(0, n, page)
    };
    one(&mut page)?;
    record(State::Fresh, snapshot());
    for _ in 1..opts.small_commits {
        one(&mut page)?;
    }
    record(State::Small, snapshot());
    out.busy_commits = writers(e, opts.threads, opts.busy_secs, &seq)?;
    // Right as the writers stop: no settling, that would be idle time.
    record(State::Busy, e.usage());
    e.quiesce()?;
    std::thread::sleep(Duration::from_secs_f64(opts.idle_secs));
    record(State::Idle, e.usage());
    out.idle_files = e.listing();
    Ok(())
}

fn run_engine(name: &'static str, dir: &Path, opts: &Opts) -> EngineResult {
    let mut out = EngineResult {
        engine: name,
        rows: Vec::new(),
        busy_commits: 0,
        idle_files: Vec::new(),
        error: None,
    };
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        out.error = Some(format!("{}: {e}", dir.display()));
        return out;
    }
    let opened: Result<Box<dyn Engine>, String> = match name {
        "pwal" => PwalEngine::open(dir).map(|e| Box::new(e) as Box<dyn Engine>),
        "SQLite" => Sqlite::open(dir, opts.threads, true).map(|db| {
            Box::new(SqliteEngine {
                db,
                dir: dir.to_path_buf(),
            }) as Box<dyn Engine>
        }),
        _ => Rocks::open(dir).map(|db| {
            Box::new(RocksEngine {
                db,
                dir: dir.join("rocksdb"),
            }) as Box<dyn Engine>
        }),
    };
    match opened {
        Err(e) => out.error = Some(e),
        Ok(e) => {
            let r = drive(&*e, opts, &mut out);
            let c = e.close();
            out.error = r.err().or(c.err());
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    out
}

/// Measures pwal, SQLite and RocksDB in turn under `data_dir`.
pub fn measure(data_dir: &Path, opts: &Opts) -> Result<FootprintResult, String> {
    let mut engines = Vec::new();
    for name in ["pwal", "SQLite", "RocksDB"] {
        eprintln!("footprint: {name}");
        let dir = data_dir.join(format!("footprint-{}", name.to_lowercase()));
        let r = run_engine(name, &dir, opts);
        if let Some(e) = &r.error {
            eprintln!("  {name}: ERROR {e}");
        }
        engines.push(r);
    }
    if engines.iter().all(|e| e.error.is_some()) {
        return Err("every engine failed".into());
    }
    Ok(FootprintResult {
        opts: opts.clone(),
        engines,
    })
}

fn usage_cell(u: Option<&Usage>) -> String {
    match u {
        None => "-".into(),
        Some(u) => format!(
            "{:.1} MiB ({:.1} MiB, {} files)",
            u.allocated as f64 / MIB,
            u.apparent as f64 / MIB,
            u.files
        ),
    }
}

impl FootprintResult {
    /// pwal's log directory in `state`.
    pub fn pwal(&self, state: State) -> Option<Usage> {
        let e = self.engines.iter().find(|e| e.engine == "pwal")?;
        let r = e.rows.first()?;
        r.states.iter().find(|s| s.0 == state).map(|s| s.1)
    }

    /// (target, measured, wanted, met) of pwal's two footprint targets.
    pub fn targets(&self) -> Vec<(String, String, String, bool)> {
        [State::Fresh, State::Idle]
            .into_iter()
            .map(|st| {
                let u = self.pwal(st);
                (
                    format!("pwal log directory, {}", st.label()),
                    u.map(|u| format!("{:.1} MiB allocated", u.allocated as f64 / MIB))
                        .unwrap_or_else(|| "-".into()),
                    "<= 16 MiB".to_string(),
                    u.is_some_and(|u| u.allocated <= PWAL_SMALL_TARGET_BYTES),
                )
            })
            .collect()
    }
}

pub fn markdown(r: &FootprintResult) -> String {
    use std::fmt::Write;
    let o = &r.opts;
    let mut s = String::new();
    let _ = writeln!(s, "## Disk footprint of the log\n");
    let _ = writeln!(s, "Command: `{}`\n", o.command);
    let _ = writeln!(
        s,
        "One instance per engine, taken through four states: **fresh** (open, one commit of one 4 KiB page), \
         **small** ({} such commits from one thread in all), **busy** (right after {} s of {} writers committing one 4 KiB page each) \
         and **idle** (the busy one {} s after its writers stopped). Every commit is durable when acknowledged: \
         pwal default options with sync full and one thread checkpointing everything durable every 100 ms from open to close; \
         SQLite WAL mode, `synchronous=FULL`, default auto-checkpoint, and one `PRAGMA wal_checkpoint(PASSIVE)` before the idle spell; \
         RocksDB default options, `sync=true`. \
         Each cell: allocated bytes (`st_blocks * 512`), then apparent bytes (`st_size`) and the file count. \
         Fresh and small are taken once the files have stopped changing (background preallocation included).\n",
        o.small_commits, o.busy_secs, o.threads, o.idle_secs
    );
    let _ = writeln!(
        s,
        "| engine | what is counted | fresh | small | busy | idle |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
    for e in &r.engines {
        for row in &e.rows {
            let _ = write!(s, "| {} | {} |", e.engine, row.what);
            for st in State::ALL {
                let u = row.states.iter().find(|x| x.0 == st).map(|x| &x.1);
                let _ = write!(s, " {} |", usage_cell(u));
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(s);
    for e in &r.engines {
        if let Some(err) = &e.error {
            let _ = writeln!(s, "- {}: ERROR {err}", e.engine);
        } else {
            let _ = writeln!(
                s,
                "- {}: {} commits in the busy spell ({:.0} commits/s)",
                e.engine,
                e.busy_commits,
                e.busy_commits as f64 / o.busy_secs
            );
        }
        if !e.idle_files.is_empty() {
            let files: Vec<String> = e
                .idle_files
                .iter()
                .map(|(n, b)| format!("`{n}` {:.1} MiB", *b as f64 / MIB))
                .collect();
            let _ = writeln!(s, "- {} files when idle: {}", e.engine, files.join(", "));
        }
    }
    let _ = writeln!(s, "\n{}", super::report::targets_table(&r.targets()));
    s
}
