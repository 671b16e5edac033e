//! A sustained run: `threads` writers committing one 4 KiB page each through
//! `Log::commit` (default options, sync full) for `secs`, twice, on a fresh
//! log each time: once with a thread checkpointing everything durable every
//! 100 ms (as the pwal contenders of `compare` have), once with no
//! checkpoint at all. The commits completed in each one-second interval are
//! recorded; the report compares the last third of each run with its first
//! third, and the two runs' last thirds with each other, and gives the disk
//! the log directory took at the end of each.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pwal::{Log, Options, SyncPolicy};

use super::contenders::{close_pwal, spawn_checkpointer};
use super::contenders::{empty_frames, pwal_txn};
use super::footprint::{dir_usage_all, Usage};
use super::new_space::{NewSpace, ROUNDS};
use super::report::Series;
use super::{make_pages, median, ratio};

const MIB: f64 = (1u64 << 20) as f64;

#[derive(Clone, Debug)]
pub struct Opts {
    pub secs: u64,
    pub threads: usize,
    pub page_size: usize,
    /// The command line shown in the report.
    pub command: String,
}

impl Opts {
    pub fn full() -> Opts {
        Opts {
            secs: 60,
            threads: 16,
            page_size: 4096,
            command: super::command_line("sustained"),
        }
    }

    pub fn quick() -> Opts {
        Opts {
            secs: 6,
            ..Opts::full()
        }
    }
}

/// One run of the log.
#[derive(Clone, Debug)]
pub struct Variant {
    pub checkpoint: bool,
    /// Commits completed in each one-second interval.
    pub per_second: Vec<u64>,
    /// The log directory at the end of the run, before close.
    pub disk: Usage,
    pub segments_created: u64,
    pub segments_recycled: u64,
    pub segments_deleted: u64,
    /// Commit latency (median, p99) of the commits that began in the last
    /// third of the run: the log's steady state.
    pub last_third_latency_us: (f64, f64),
    pub error: Option<String>,
}

impl Variant {
    pub fn label(&self) -> &'static str {
        if self.checkpoint {
            "checkpoint every 100 ms"
        } else {
            "no checkpoint"
        }
    }

    fn third(&self, which: usize) -> f64 {
        let n = self.per_second.len();
        let k = n / 3;
        if k == 0 {
            return f64::NAN;
        }
        let part = match which {
            0 => &self.per_second[..k],
            _ => &self.per_second[n - k..],
        };
        median(part.iter().map(|&x| x as f64).collect())
    }

    /// Median commits/s over the first third of the seconds.
    pub fn first_third(&self) -> f64 {
        self.third(0)
    }

    /// Median commits/s over the last third of the seconds.
    pub fn last_third(&self) -> f64 {
        self.third(2)
    }

    pub fn mean(&self) -> f64 {
        ratio(
            self.per_second.iter().sum::<u64>() as f64,
            self.per_second.len() as f64,
        )
    }
}

#[derive(Clone, Debug)]
pub struct SustainedResult {
    pub opts: Opts,
    /// With checkpoints, then without.
    pub variants: Vec<Variant>,
    /// What a no-checkpoint log meets: the disk's sync rate for small writes
    /// into new space against an overwrite, in the same run.
    pub new_space: Option<NewSpace>,
}

/// The write of the new-space measurement: about what the sustained run's
/// epochs hold (a dozen 4 KiB commits).
const NEW_SPACE_WRITE: usize = 16 << 10;
const NEW_SPACE_WRITES: usize = 2000;

impl SustainedResult {
    pub fn with_checkpoints(&self) -> Option<&Variant> {
        self.variants.iter().find(|v| v.checkpoint)
    }
    pub fn without_checkpoints(&self) -> Option<&Variant> {
        self.variants.iter().find(|v| !v.checkpoint)
    }

    /// (target, measured, wanted, met).
    pub fn targets(&self) -> Vec<(String, String, String, bool)> {
        let (Some(w), Some(n)) = (self.with_checkpoints(), self.without_checkpoints()) else {
            return Vec::new();
        };
        let r1 = ratio(n.last_third(), w.last_third());
        let r2 = ratio(n.last_third(), n.first_third());
        let (p50, p99) = w.last_third_latency_us;
        let r3 = ratio(p99, p50);
        vec![
            (
                format!(
                    "{} writers, steady state (last third, checkpoint every 100 ms): commit p99 / p50",
                    self.opts.threads
                ),
                format!("{r3:.2}x ({p99:.0} / {p50:.0} us)"),
                "<= 3x".into(),
                r3 <= 3.0,
            ),
            (
                "last third: no checkpoint / checkpoint every 100 ms".into(),
                format!(
                    "{r1:.3}x ({:.0} vs {:.0} commits/s)",
                    n.last_third(),
                    w.last_third()
                ),
                ">= 0.9x".into(),
                r1 >= 0.9,
            ),
            (
                "no checkpoint: last third / first third".into(),
                format!(
                    "{r2:.3}x ({:.0} vs {:.0} commits/s)",
                    n.last_third(),
                    n.first_third()
                ),
                ">= 0.95x".into(),
                r2 >= 0.95,
            ),
        ]
    }
}

/// Waits (bounded) for pwal's preparer to have made its first spare: until
/// then its zero fill shares the disk with the commits.
fn wait_for_first_spare(log_dir: &Path) {
    let t0 = Instant::now();
    let mut last = (0usize, 0u64);
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        let spares: Vec<u64> = std::fs::read_dir(log_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("spare-"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        m.blocks()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = (spares.len(), spares.iter().sum());
        if !spares.is_empty() && now == last {
            return;
        }
        last = now;
    }
}

fn run_variant(dir: &Path, opts: &Opts, checkpoint: bool) -> Variant {
    let mut v = Variant {
        checkpoint,
        per_second: Vec::new(),
        disk: Usage::default(),
        segments_created: 0,
        segments_recycled: 0,
        segments_deleted: 0,
        last_third_latency_us: (f64::NAN, f64::NAN),
        error: None,
    };
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        v.error = Some(format!("{}: {e}", dir.display()));
        return v;
    }
    let db = dir.join("db");
    let options = Options {
        sync: SyncPolicy::Full,
        use_env: false,
        ..Options::default()
    };
    let log = match Log::open(&db, &options) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            v.error = Some(format!("pwal open: {e}"));
            return v;
        }
    };
    let log_dir = pwal::log_dir(&db);
    wait_for_first_spare(&log_dir);
    let stop_ck = Arc::new(AtomicBool::new(false));
    let checkpointer =
        checkpoint.then(|| spawn_checkpointer(Arc::clone(&log), Arc::clone(&stop_ck)));

    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let seq = AtomicU64::new(1);
    let error: Mutex<Option<String>> = Mutex::new(None);
    let latencies: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let last_third_from = Instant::now() + Duration::from_secs(opts.secs - opts.secs / 3);
    std::thread::scope(|s| {
        for t in 0..opts.threads {
            let (stop, done, seq, error, log) = (&stop, &done, &seq, &error, &log);
            let latencies = &latencies;
            s.spawn(move || {
                let mut bufs = make_pages(1, opts.page_size, t as u64 + 1);
                let mut mine: Vec<u32> = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let began = Instant::now();
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    bufs[0][..8].copy_from_slice(&n.to_le_bytes());
                    let pages: [&[u8]; 1] = [&bufs[0]];
                    let mut frames = empty_frames();
                    let txn = pwal_txn(n, &pages, &mut frames);
                    if let Err(e) = log.commit(&txn, None) {
                        error
                            .lock()
                            .unwrap()
                            .get_or_insert(format!("pwal commit: {e}"));
                        stop.store(true, Ordering::Release);
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    if began >= last_third_from && !stop.load(Ordering::Acquire) {
                        mine.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
        let t0 = Instant::now();
        let mut prev = 0u64;
        for k in 1..=opts.secs {
            let due = t0 + Duration::from_secs(k);
            while Instant::now() < due && !stop.load(Ordering::Acquire) {
                std::thread::sleep((due - Instant::now().min(due)).min(Duration::from_millis(20)));
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
            let now = done.load(Ordering::Relaxed);
            v.per_second.push(now - prev);
            prev = now;
        }
        stop.store(true, Ordering::Release);
    });
    let mut lat = latencies.into_inner().unwrap();
    lat.sort_unstable();
    if !lat.is_empty() {
        let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64;
        v.last_third_latency_us = (at(0.5), at(0.99));
    }
    v.disk = dir_usage_all(&log_dir);
    let st = log.stats();
    v.segments_created = st.segments_created;
    v.segments_recycled = st.segments_recycled;
    v.segments_deleted = st.segments_deleted;
    let closed = close_pwal(log, &stop_ck, checkpointer);
    v.error = error.into_inner().unwrap().or(closed.err());
    let _ = std::fs::remove_dir_all(dir);
    v
}

/// Runs the two variants, with checkpoints first, each on a fresh log under
/// `data_dir`.
pub fn measure(data_dir: &Path, opts: &Opts) -> Result<SustainedResult, String> {
    let mut variants = Vec::new();
    for checkpoint in [true, false] {
        let dir = data_dir.join(if checkpoint {
            "sustained-ckpt"
        } else {
            "sustained-no-ckpt"
        });
        let v = run_variant(&dir, opts, checkpoint);
        eprintln!(
            "sustained, {}: mean {:.0} commits/s, first third {:.0}, last third {:.0}, disk {:.1} MiB{}",
            v.label(),
            v.mean(),
            v.first_third(),
            v.last_third(),
            v.disk.allocated as f64 / MIB,
            v.error
                .as_deref()
                .map(|e| format!(", ERROR {e}"))
                .unwrap_or_default()
        );
        variants.push(v);
    }
    let new_space = match super::new_space::measure(
        &data_dir.join("new-space"),
        NEW_SPACE_WRITE,
        NEW_SPACE_WRITES,
    ) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("sustained: new-space measurement failed: {e}");
            None
        }
    };
    if variants.iter().all(|v| v.per_second.is_empty()) {
        return Err(variants
            .iter()
            .filter_map(|v| v.error.clone())
            .collect::<Vec<_>>()
            .join("; "));
    }
    Ok(SustainedResult {
        opts: opts.clone(),
        variants,
        new_space,
    })
}

pub fn markdown(r: &SustainedResult) -> String {
    let o = &r.opts;
    let mut s = String::new();
    let _ = writeln!(s, "## Sustained commits, with and without checkpoints\n");
    let _ = writeln!(s, "Command: `{}`\n", o.command);
    let _ = writeln!(
        s,
        "{} writers commit one {} KiB page each through `Log::commit` (default options, sync full) for {} s, \
         twice, each on a fresh log: with one thread checkpointing everything durable every 100 ms, then with no checkpoint at all. \
         The commits completed in each one-second interval are counted; a third is the median of its seconds; \
         the latency columns are over the commits that began in the last third. \
         Disk: the log directory at the end of the run (allocated `st_blocks * 512`, then apparent size and file count).\n",
        o.threads,
        o.page_size / 1024,
        o.secs
    );
    let _ = writeln!(
        s,
        "| variant | mean commits/s | first third | last third | last / first | last third: commit p50 / p99 | log directory at the end | segments created / recycled / deleted |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for v in &r.variants {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.0} | {:.3}x | {:.0} / {:.0} us | {:.1} MiB ({:.1} MiB, {} files) | {} / {} / {} |",
            v.label(),
            v.mean(),
            v.first_third(),
            v.last_third(),
            ratio(v.last_third(), v.first_third()),
            v.last_third_latency_us.0,
            v.last_third_latency_us.1,
            v.disk.allocated as f64 / MIB,
            v.disk.apparent as f64 / MIB,
            v.disk.files,
            v.segments_created,
            v.segments_recycled,
            v.segments_deleted
        );
    }
    for v in &r.variants {
        if let Some(e) = &v.error {
            let _ = writeln!(s, "\n- {}: ERROR {e}", v.label());
        }
    }
    let _ = writeln!(s, "\n{}", super::report::targets_table(&r.targets()));
    if let Some(n) = &r.new_space {
        let _ = writeln!(
            s,
            "\nWhat a log nobody checkpoints meets: every byte it writes lands on new disk space, under a \
             zero-fill or under the commits themselves. One thread, {} KiB writes each followed by `fdatasync`, \
             medians of {ROUNDS} alternating rounds of {NEW_SPACE_WRITES} writes, in this run:\n",
            NEW_SPACE_WRITE / 1024
        );
        let _ = writeln!(s, "| file written | syncs/s | against the overwrite |");
        let _ = writeln!(s, "| --- | ---: | ---: |");
        for (what, x) in [
            (
                "overwrite of a pre-zeroed file (a recycled or zero-filled segment)",
                n.overwrite,
            ),
            (
                "append to an empty file (a segment started empty)",
                n.append,
            ),
            ("into a file allocated by `fallocate`", n.fallocated),
        ] {
            let _ = writeln!(s, "| {what} | {x:.0} | {:.3}x |", ratio(x, n.overwrite));
        }
    }
    let _ = writeln!(s, "\nCommits per second, second by second:\n");
    let _ = writeln!(s, "| variant | commits in each second |");
    let _ = writeln!(s, "| --- | --- |");
    for v in &r.variants {
        let xs: Vec<String> = v.per_second.iter().map(|x| x.to_string()).collect();
        let _ = writeln!(s, "| {} | {} |", v.label(), xs.join(" "));
    }
    s
}

/// The chart: commits/s over time, one line per variant.
pub fn chart_svg(r: &SustainedResult) -> String {
    let series: Vec<Series> = r
        .variants
        .iter()
        .map(|v| Series {
            label: v.label().to_string(),
            color: if v.checkpoint { "#1f77b4" } else { "#d62728" },
            dashed: false,
            points: v
                .per_second
                .iter()
                .enumerate()
                .map(|(i, &c)| (i as f64 + 1.0, c as f64))
                .collect(),
        })
        .collect();
    super::report::line_chart(
        &format!(
            "pwal, {} writers, {} KiB pages, sync full",
            r.opts.threads,
            r.opts.page_size / 1024
        ),
        "seconds since start",
        "commits/s (per 1 s interval)",
        super::report::XAxis::Linear(r.opts.secs as f64),
        &series,
        false,
        None,
    )
}

/// Writes [`chart_svg`] to `dir/sustained.svg`; returns the file name.
pub fn write_chart(r: &SustainedResult, dir: &Path) -> std::io::Result<String> {
    let name = "sustained.svg".to_string();
    std::fs::create_dir_all(dir)?;
    super::sys::write_file(&dir.join(&name), &chart_svg(r))?;
    Ok(name)
}
