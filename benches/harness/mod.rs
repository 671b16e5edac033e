//! Shared machinery of the `compare` and `core` benchmarks:
//! the runner that drives one contender at a time with N writer threads, the
//! contenders themselves, the recovery measurement, the core micro benchmark
//! and the report writer (Markdown tables and hand-drawn SVG charts).
//!
//! Every figure is taken in the same process run as the figures it is compared
//! with, and each cell is the median of several runs in which the contenders
//! take turns (the order rotates between runs), so that drift of the shared
//! disk hits every contender alike.

pub mod args;
pub mod contenders;
pub mod footprint;
pub mod micro;
pub mod new_space;
pub mod peers;
pub mod recovery;
pub mod report;
pub mod sustained;
pub mod sys;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use contenders::{Contender, Kind, Shared};

/// Most pages one commit of the benchmark carries (the frame array of the pwal
/// contender lives on the stack).
pub const MAX_PAGES_PER_COMMIT: usize = 16;
/// Latencies kept per thread and run before the rest are dropped (bounds the
/// memory of a long run; the throughput count is not affected).
pub const MAX_LATENCY_SAMPLES_PER_THREAD: usize = 1 << 20;

/// One point of the benchmark grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub threads: usize,
    pub pages: usize,
    pub page_size: usize,
}

impl Cell {
    pub fn commit_bytes(&self) -> usize {
        self.pages * self.page_size
    }
}

/// pwal's own counters over the measured window of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct PwalWindow {
    pub epochs: u64,
    pub transactions: u64,
    pub records: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    /// Transactions per epoch, from the log's histogram (whole run).
    pub txns_per_epoch_p50: u64,
    pub txns_per_epoch_p99: u64,
    pub txns_per_epoch_max: u64,
    /// `fdatasync` latency from the log's histogram (whole run), us.
    pub sync_p50_us: u64,
    pub sync_p99_us: u64,
}

impl PwalWindow {
    pub fn txns_per_epoch_mean(&self) -> f64 {
        ratio(self.transactions as f64, self.epochs as f64)
    }
    /// Bytes written per page frame beyond the page itself.
    pub fn overhead_per_frame(&self, page_size: usize) -> f64 {
        ratio(self.bytes_written as f64, self.records as f64) - page_size as f64
    }
}

/// The figures of one run of one contender in one cell.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub commits: u64,
    pub secs: f64,
    pub commits_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// User + system CPU seconds of the whole process per 1000 commits.
    pub cpu_s_per_1000: f64,
    pub pwal: Option<PwalWindow>,
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_u64(v: Vec<u64>) -> u64 {
    median(v.into_iter().map(|x| x as f64).collect()).round() as u64
}

/// The per-metric median of several runs of one contender in one cell.
pub fn median_metrics(runs: &[Metrics]) -> Metrics {
    let m = |f: &dyn Fn(&Metrics) -> f64| median(runs.iter().map(f).collect());
    let pw: Vec<PwalWindow> = runs.iter().filter_map(|r| r.pwal).collect();
    let pwal = if pw.is_empty() {
        None
    } else {
        let mu = |f: &dyn Fn(&PwalWindow) -> u64| median_u64(pw.iter().map(f).collect());
        Some(PwalWindow {
            epochs: mu(&|p| p.epochs),
            transactions: mu(&|p| p.transactions),
            records: mu(&|p| p.records),
            bytes_written: mu(&|p| p.bytes_written),
            syncs: mu(&|p| p.syncs),
            txns_per_epoch_p50: mu(&|p| p.txns_per_epoch_p50),
            txns_per_epoch_p99: mu(&|p| p.txns_per_epoch_p99),
            txns_per_epoch_max: mu(&|p| p.txns_per_epoch_max),
            sync_p50_us: mu(&|p| p.sync_p50_us),
            sync_p99_us: mu(&|p| p.sync_p99_us),
        })
    };
    Metrics {
        commits: median_u64(runs.iter().map(|r| r.commits).collect()),
        secs: m(&|r| r.secs),
        commits_per_s: m(&|r| r.commits_per_s),
        mb_per_s: m(&|r| r.mb_per_s),
        p50_us: m(&|r| r.p50_us),
        p99_us: m(&|r| r.p99_us),
        p999_us: m(&|r| r.p999_us),
        cpu_s_per_1000: m(&|r| r.cpu_s_per_1000),
        pwal,
    }
}

fn percentile_us(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted_ns.len() as f64) * q).ceil().max(1.0) as usize;
    sorted_ns[rank.min(sorted_ns.len()) - 1] as f64 / 1000.0
}

/// Page contents: pseudo-random so that nothing along the way can compress
/// them away.
pub fn make_pages(pages: usize, page_size: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..pages)
        .map(|_| {
            (0..page_size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

/// Runs one contender (already open) with `cell.threads` writers: `warmup`
/// unmeasured, then `measure` measured. A commit counts if it completes inside
/// the measured window.
pub fn run_once(
    c: &dyn Contender,
    cell: Cell,
    warmup: Duration,
    measure: Duration,
) -> Result<Metrics, String> {
    assert!(cell.pages >= 1 && cell.pages <= MAX_PAGES_PER_COMMIT);
    let phase = AtomicU8::new(WARMING);
    let seq = AtomicU64::new(1);
    let error: Mutex<Option<String>> = Mutex::new(None);
    let (lats, ru0, ru1, secs, pw0, pw1) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cell.threads)
            .map(|t| {
                let (phase, seq, error) = (&phase, &seq, &error);
                s.spawn(move || {
                    let mut bufs = make_pages(cell.pages, cell.page_size, t as u64 + 1);
                    let mut lat: Vec<u64> = Vec::with_capacity(1 << 14);
                    loop {
                        if phase.load(Ordering::Acquire) == STOPPING {
                            break;
                        }
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        bufs[0][..8].copy_from_slice(&n.to_le_bytes());
                        let mut pages: [&[u8]; MAX_PAGES_PER_COMMIT] = [&[]; MAX_PAGES_PER_COMMIT];
                        for (p, b) in pages.iter_mut().zip(&bufs) {
                            *p = b;
                        }
                        let t0 = Instant::now();
                        if let Err(e) = c.commit(t, n, &pages[..cell.pages]) {
                            error.lock().unwrap().get_or_insert(e);
                            phase.store(STOPPING, Ordering::Release);
                            break;
                        }
                        let ns = t0.elapsed().as_nanos() as u64;
                        if phase.load(Ordering::Acquire) == MEASURING
                            && lat.len() < MAX_LATENCY_SAMPLES_PER_THREAD
                        {
                            lat.push(ns);
                        }
                    }
                    lat
                })
            })
            .collect();
        std::thread::sleep(warmup);
        let pw0 = c.pwal_counters();
        let ru0 = sys::cpu_seconds_self();
        let t0 = Instant::now();
        phase.store(MEASURING, Ordering::Release);
        // Sleep in slices so that a failing contender ends the run early.
        while t0.elapsed() < measure && phase.load(Ordering::Acquire) == MEASURING {
            std::thread::sleep(
                (measure - t0.elapsed().min(measure)).min(Duration::from_millis(20)),
            );
        }
        let _ = phase.compare_exchange(MEASURING, STOPPING, Ordering::AcqRel, Ordering::Acquire);
        let secs = t0.elapsed().as_secs_f64();
        let ru1 = sys::cpu_seconds_self();
        let pw1 = c.pwal_counters();
        let lats: Vec<Vec<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (lats, ru0, ru1, secs, pw0, pw1)
    });
    if let Some(e) = error.into_inner().unwrap() {
        return Err(e);
    }
    let mut all: Vec<u64> = lats.into_iter().flatten().collect();
    all.sort_unstable();
    let commits = all.len() as u64 * c.commits_per_call();
    let pwal = match (pw0, pw1) {
        (Some(a), Some(b)) => Some(PwalWindow {
            epochs: b.epochs - a.epochs,
            transactions: b.transactions - a.transactions,
            records: b.records - a.records,
            bytes_written: b.bytes_written - a.bytes_written,
            syncs: b.syncs - a.syncs,
            txns_per_epoch_p50: b.txns_per_epoch_p50,
            txns_per_epoch_p99: b.txns_per_epoch_p99,
            txns_per_epoch_max: b.txns_per_epoch_max,
            sync_p50_us: b.sync_p50_us,
            sync_p99_us: b.sync_p99_us,
        }),
        _ => None,
    };
    Ok(Metrics {
        commits,
        secs,
        commits_per_s: commits as f64 / secs,
        mb_per_s: commits as f64 * cell.commit_bytes() as f64 / secs / 1e6,
        p50_us: percentile_us(&all, 0.50),
        p99_us: percentile_us(&all, 0.99),
        p999_us: percentile_us(&all, 0.999),
        cpu_s_per_1000: (ru1 - ru0) / commits.max(1) as f64 * 1000.0,
        pwal,
    })
}

/// Opens a fresh instance of `kind` for `cell` under `dir`, runs it once and
/// removes its files.
pub fn run_fresh(
    kind: Kind,
    cell: Cell,
    shared: &Shared,
    dir: &Path,
    warmup: Duration,
    measure: Duration,
) -> Result<Metrics, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let c = kind.open(dir, cell, shared)?;
    let r = run_once(&*c, cell, warmup, measure);
    let closed = c.close();
    let _ = std::fs::remove_dir_all(dir);
    let m = r?;
    closed?;
    Ok(m)
}

/// Where benchmark files go: `PWAL_BENCH_DIR`, else `target/bench-data` of
/// this package (on the real disk: tmpfs would make every `fdatasync` free).
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PWAL_BENCH_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-data")
}

/// The results of every run of one contender in one cell.
#[derive(Clone, Debug)]
pub struct CellResult {
    pub kind: Kind,
    pub cell: Cell,
    pub runs: Vec<Metrics>,
    pub errors: Vec<String>,
}

impl CellResult {
    pub fn median(&self) -> Option<Metrics> {
        if self.runs.is_empty() {
            None
        } else {
            Some(median_metrics(&self.runs))
        }
    }
}

/// Runs every contender in `kinds` on `cell`, `runs` times, rotating the order
/// each run. Progress goes to stderr.
pub fn run_cell(
    kinds: &[Kind],
    cell: Cell,
    runs: usize,
    shared: &Shared,
    warmup: Duration,
    measure: Duration,
) -> Vec<CellResult> {
    run_grid(&[(cell, kinds.to_vec())], runs, shared, warmup, measure)
}

/// Runs a grid of cells, each with its contenders, in `runs` rounds: every
/// round visits every cell once, and within a cell the contenders take turns
/// in an order that rotates from round to round.
pub fn run_grid(
    grid: &[(Cell, Vec<Kind>)],
    runs: usize,
    shared: &Shared,
    warmup: Duration,
    measure: Duration,
) -> Vec<CellResult> {
    let mut out: Vec<Vec<CellResult>> = grid
        .iter()
        .map(|(cell, kinds)| {
            kinds
                .iter()
                .map(|&kind| CellResult {
                    kind,
                    cell: kind.effective_cell(*cell),
                    runs: Vec::new(),
                    errors: Vec::new(),
                })
                .collect()
        })
        .collect();
    for r in 0..runs {
        eprintln!("round {} of {runs}", r + 1);
        for ((cell, kinds), results) in grid.iter().zip(out.iter_mut()) {
            for i in 0..kinds.len() {
                let res = &mut results[(i + r) % kinds.len()];
                let dir = shared.data_dir.join(format!("run-{}", res.kind.slug()));
                match run_fresh(res.kind, res.cell, shared, &dir, warmup, measure) {
                    Ok(m) => {
                        eprintln!(
                            "  {:<26} t={:<2} p={} ps={:<5}: {:>9.0} commits/s  p99 {:>8.0} us",
                            res.kind.label(),
                            res.cell.threads,
                            cell.pages,
                            cell.page_size,
                            m.commits_per_s,
                            m.p99_us
                        );
                        res.runs.push(m)
                    }
                    Err(e) => {
                        eprintln!("  {} {:?}: ERROR {e}", res.kind.label(), cell);
                        res.errors.push(e)
                    }
                }
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// The command line as it was typed, for the reports.
pub fn command_line(bench: &str) -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut s = format!("cargo bench --bench {bench}");
    if !args.is_empty() {
        s.push_str(" -- ");
        s.push_str(&args.join(" "));
    }
    s
}
