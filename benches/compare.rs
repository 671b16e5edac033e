//! pwal against SQLite's WAL, RocksDB's WAL, a mutex baseline and the
//! floor, with recovery, the core ratios and syscall counts; writes
//! `docs/BENCHMARKS.md` and the SVG charts.
//!
//! The command line is [`USAGE`] (what `--help` prints).
//! `--only-recovery` runs the recovery measurements alone (no contender grid,
//! no submit path, no strace) and prints them; it implies `--no-write`.
//! Data files go to `PWAL_BENCH_DIR` or `target/bench-data` and are removed.

#[allow(dead_code)]
mod harness;

use harness::args::parse_list;

/// What `--help` prints: the command line of the header comment.
const USAGE: &str = "cargo bench --bench compare -- [--quick] [--runs N] [--secs S] [--warmup S]
    [--threads 1,2,4] [--pages 1,8] [--page-sizes 4096,16384]
    [--contenders pwal-auto-full,sqlite-full,...] [--recovery-mib 64,256]
    [--no-recovery] [--only-recovery] [--no-strace] [--no-sustained]
    [--no-footprint] [--no-write] [--out docs/BENCHMARKS.md] [--pwal-lanes N]";

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::contenders::{Kind, Shared};
use harness::micro::{submit_path, CoreRatios};
use harness::report::{kept_notes, StraceResult, Suite};
use harness::{run_fresh, run_grid, sys, Cell};

struct Args {
    quick: bool,
    runs: usize,
    secs: f64,
    warmup: f64,
    threads: Vec<usize>,
    pages: Vec<usize>,
    page_sizes: Vec<usize>,
    kinds: Vec<Kind>,
    recovery_mib: Vec<u64>,
    only_recovery: bool,
    strace: bool,
    write: bool,
    out: PathBuf,
    pwal_lanes: usize,
    sustained: bool,
    footprint: bool,
}

fn parse_args(argv: &[String]) -> Args {
    let quick = argv.iter().any(|a| a == "--quick");
    let mut a = Args {
        quick,
        runs: 3,
        secs: if quick { 0.4 } else { 0.8 },
        warmup: if quick { 0.1 } else { 0.2 },
        threads: if quick {
            vec![1, 4, 16, 64]
        } else {
            vec![1, 2, 4, 8, 16, 32, 64]
        },
        pages: if quick { vec![1] } else { vec![1, 8] },
        page_sizes: if quick { vec![4096] } else { vec![4096, 16384] },
        kinds: Kind::ALL.to_vec(),
        recovery_mib: if quick { vec![64] } else { vec![64, 256, 1024] },
        only_recovery: false,
        strace: true,
        write: true,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BENCHMARKS.md"),
        pwal_lanes: 0,
        sustained: true,
        footprint: true,
    };
    let mut it = argv.iter();
    while let Some(x) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| panic!("{x} needs a value"))
                .clone()
        };
        match x.as_str() {
            "--quick" | "--bench" => {}
            "--runs" => a.runs = val().parse().expect("--runs N"),
            "--secs" => a.secs = val().parse().expect("--secs S"),
            "--warmup" => a.warmup = val().parse().expect("--warmup S"),
            "--threads" => a.threads = parse_list("threads", &val()),
            "--pages" => a.pages = parse_list("pages", &val()),
            "--page-sizes" => a.page_sizes = parse_list("page-sizes", &val()),
            "--contenders" => {
                a.kinds = val()
                    .split(',')
                    .map(|s| Kind::from_slug(s).unwrap_or_else(|| panic!("unknown contender {s}")))
                    .collect()
            }
            "--recovery-mib" => a.recovery_mib = parse_list("recovery-mib", &val()),
            "--no-recovery" => a.recovery_mib.clear(),
            "--only-recovery" => {
                a.only_recovery = true;
                a.write = false;
                a.strace = false;
            }
            "--no-strace" => a.strace = false,
            "--no-write" => a.write = false,
            "--no-sustained" => a.sustained = false,
            "--no-footprint" => a.footprint = false,
            "--pwal-lanes" => {
                let n: usize = val().parse().expect("--pwal-lanes N");
                harness::contenders::PWAL_LANES.store(n, std::sync::atomic::Ordering::Relaxed);
                a.pwal_lanes = n;
            }
            "--out" => a.out = PathBuf::from(val()),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}; see the top of benches/compare.rs"),
        }
    }
    assert!(a.runs >= 1 && !a.threads.is_empty());
    a.threads.sort_unstable();
    a
}

/// `--child-single <slug> <threads> <secs> <data-dir>`: one contender, 4 KiB
/// pages, 1 page per commit, no warm-up; prints `commits=N` (run under strace).
fn child_single(argv: &[String]) -> bool {
    let [m, slug, threads, secs, dir, ..] = argv else {
        return false;
    };
    if m != "--child-single" {
        return false;
    }
    let kind = Kind::from_slug(slug).expect("contender");
    let cell = Cell {
        threads: threads.parse().unwrap(),
        pages: 1,
        page_size: 4096,
    };
    let shared = Shared::existing(Path::new(dir));
    let run_dir = Path::new(dir).join(format!("strace-{slug}"));
    let secs = Duration::from_secs_f64(secs.parse().unwrap());
    match run_fresh(kind, cell, &shared, &run_dir, Duration::ZERO, secs) {
        Ok(m) => println!("commits={}", m.commits),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
    true
}

fn strace_one(kind: Kind, threads: usize, data_dir: &Path) -> StraceResult {
    let mut r = StraceResult {
        kind: Some(kind),
        threads,
        ..Default::default()
    };
    let out_file = data_dir.join(format!("strace-{}.txt", kind.slug()));
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out_file)
        .arg(exe)
        .args(["--child-single", kind.slug(), &threads.to_string(), "1.0"])
        .arg(data_dir)
        .output();
    let parsed = (|| -> Result<(), String> {
        let out = out.map_err(|e| format!("strace: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "child failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        r.commits = stdout
            .lines()
            .find_map(|l| l.strip_prefix("commits="))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no commit count")?;
        let text = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 || !f[0].chars().next().is_some_and(|c| c.is_ascii_digit()) {
                continue;
            }
            let name = f[f.len() - 1];
            if name == "total" {
                continue;
            }
            if let Ok(calls) = f[3].parse::<u64>() {
                r.calls.push((name.to_string(), calls));
            }
        }
        r.calls.sort_by_key(|c| std::cmp::Reverse(c.1));
        Ok(())
    })();
    let _ = std::fs::remove_file(&out_file);
    if let Err(e) = parsed {
        r.error = Some(e);
    }
    r
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if harness::recovery::child_main(&argv) || child_single(&argv) {
        return;
    }
    let started = Instant::now();
    let load_at_start = sys::loadavg();
    // The tree the binary was built from: taken now, before anyone commits
    // during the run.
    let git = sys::git_state();
    let a = parse_args(&argv);
    let command = harness::command_line("compare");
    let data_dir = harness::default_data_dir();
    let mut notes = Vec::new();
    if sys::is_tmpfs(&data_dir) {
        notes.push(format!(
            "{} is on tmpfs: fdatasync is free there, figures are not meaningful",
            data_dir.display()
        ));
    }
    let shared = Shared::new(&data_dir).expect("benchmark data directory");
    if a.pwal_lanes != 0 {
        notes.push(format!(
            "pwal contenders run with {} lanes (--pwal-lanes), not the default",
            a.pwal_lanes
        ));
    }
    let mut kinds = a.kinds.clone();
    for (k, avail) in [
        (Kind::SqliteFull, harness::peers::sqlite_api().err()),
        (Kind::SqliteNormal, harness::peers::sqlite_api().err()),
        (Kind::Rocksdb, harness::peers::rocks_api().err()),
    ] {
        if let Some(e) = avail {
            if kinds.contains(&k) {
                notes.push(format!("{} skipped: {e}", k.label()));
                kinds.retain(|&x| x != k);
            }
        }
    }
    if a.only_recovery {
        only_recovery(&a, &data_dir, &command);
        drop(shared);
        let _ = std::fs::remove_dir(&data_dir);
        return;
    }
    let warmup = Duration::from_secs_f64(a.warmup);
    let secs = Duration::from_secs_f64(a.secs);
    eprintln!(
        "pwal compare: {command}\ndata in {} ({})",
        data_dir.display(),
        sys::filesystem_of(&data_dir)
    );

    // Rounds outermost: each cell's runs are spread over the whole suite, so a
    // burst of disk traffic from elsewhere spoils one run of a cell, not all.
    let mut grid = Vec::new();
    for &ps in &a.page_sizes {
        for &pages in &a.pages {
            for &threads in &a.threads {
                let cell = Cell {
                    threads,
                    pages,
                    page_size: ps,
                };
                let ks: Vec<Kind> = kinds
                    .iter()
                    .copied()
                    .filter(|&k| !k.single_thread() || threads == 1)
                    .collect();
                grid.push((cell, ks));
            }
        }
    }
    let results = run_grid(&grid, a.runs, &shared, warmup, secs);

    let mut epoch_bounds = Vec::new();
    for threads in [16, 64] {
        let cell = Cell {
            threads,
            pages: 8,
            page_size: 16384,
        };
        eprintln!("new space: epochs of {threads} writers, 8 x 16 KiB pages");
        epoch_bounds.extend(harness::new_space::epoch_bound(
            &results,
            cell,
            &data_dir.join("new-space"),
        ));
    }

    eprintln!("the floor's loop at the size of pwal's frames, 1 writer");
    let frame_bound = harness::new_space::frame_bound(
        &results,
        harness::contenders::Kind::PwalAutoFull,
        Cell {
            threads: 1,
            pages: 1,
            page_size: 4096,
        },
        &data_dir.join("frame-bound"),
    );

    eprintln!("submit path");
    let submit = submit_path(&data_dir, a.runs.max(3));
    let core = CoreRatios::from_results(&results, submit);

    let mut recovery = Vec::new();
    for &mib in &a.recovery_mib {
        eprintln!("recovery: {mib} MiB");
        recovery.push(harness::recovery::measure(&data_dir, mib, a.runs));
    }

    let sustained = a.sustained.then(|| {
        let o = harness::sustained::Opts {
            command: format!("{command} (its sustained part)"),
            ..if a.quick {
                harness::sustained::Opts::quick()
            } else {
                harness::sustained::Opts::full()
            }
        };
        eprintln!("sustained: {} s per variant", o.secs);
        harness::sustained::measure(&data_dir, &o)
    });
    let footprint = a.footprint.then(|| {
        let o = harness::footprint::Opts {
            command: format!("{command} (its footprint part)"),
            ..if a.quick {
                harness::footprint::Opts::quick()
            } else {
                harness::footprint::Opts::full()
            }
        };
        eprintln!("footprint");
        harness::footprint::measure(&data_dir, &o)
    });

    let mut strace = Vec::new();
    let have_strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok();
    if a.strace && have_strace {
        for (k, threads) in [
            (Kind::Floor, 1),
            (Kind::PwalAutoFull, 1),
            (Kind::PwalAutoFull, 16),
            (Kind::SqliteFull, 16),
            (Kind::Rocksdb, 16),
            (Kind::Mutex, 16),
        ] {
            if kinds.contains(&k) {
                eprintln!("strace: {}, {threads} thread(s)", k.label());
                strace.push(strace_one(k, threads, &data_dir));
            }
        }
    } else if a.strace {
        notes.push("strace not installed: no syscall counts".into());
    }

    let suite = Suite {
        command: command.clone(),
        date: sys::utc_now(),
        quick: a.quick,
        runs: a.runs,
        warmup,
        secs,
        threads: a.threads.clone(),
        pages: a.pages.clone(),
        page_sizes: a.page_sizes.clone(),
        kinds,
        results,
        recovery,
        core,
        strace,
        sustained,
        footprint,
        epoch_bounds,
        frame_bound,
        data_dir_fs: sys::filesystem_of(&data_dir),
        elapsed_secs: started.elapsed().as_secs_f64(),
        notes,
        git,
        load: (load_at_start, sys::loadavg()),
    };

    println!("\n== {command}");
    println!("targets (same run):");
    for (what, m, want, ok) in suite.targets() {
        println!(
            "  [{}] {what}: {m} (wanted {want})",
            if ok { "met" } else { "MISSED" }
        );
    }
    if let Some(c) = &suite.core {
        println!("core ratios:");
        for (l, want, ok) in c.lines() {
            println!(
                "  [{}] {l} (wanted {want})",
                match ok {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "info",
                }
            );
        }
    }

    if a.write {
        let existing = std::fs::read_to_string(&a.out).unwrap_or_default();
        let md = suite.markdown(kept_notes(&existing).as_deref());
        let docs = a.out.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(docs).expect("docs directory");
        sys::write_file(&a.out, &md).expect("write report");
        let mut charts = suite.write_charts(docs).expect("write charts");
        if let Some(Ok(r)) = &suite.sustained {
            charts.push(harness::sustained::write_chart(r, docs).expect("write chart"));
        }
        println!("wrote {} and {} charts", a.out.display(), charts.len());
    }
    drop(shared);
    let _ = std::fs::remove_dir(&data_dir);
}

/// `--only-recovery`: the recovery measurements alone, printed.
fn only_recovery(a: &Args, data_dir: &Path, command: &str) {
    println!("\n== {command}");
    for &mib in &a.recovery_mib {
        eprintln!("recovery: {mib} MiB");
        let r = harness::recovery::measure(data_dir, mib, a.runs);
        if let Some(e) = &r.error {
            println!("  {mib} MiB: error: {e}");
            continue;
        }
        println!(
            "  {mib} MiB: {:.3}x (recover {:.3} s, CPU {:.3} s; read {:.3} s, CPU {:.3} s; {} segments, {} epochs; peak {:.1} MiB vs {:.1} MiB)",
            r.recover_mb_s() / r.read_mb_s(),
            r.recover_secs,
            r.recover_cpu_secs,
            r.read_secs,
            r.read_cpu_secs,
            r.segments,
            r.epochs,
            r.recover_hwm_kib as f64 / 1024.0,
            r.read_hwm_kib as f64 / 1024.0,
        );
    }
}
