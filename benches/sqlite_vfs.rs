//! SQLite through the pwal VFS against SQLite's own WAL, the same SQLite
//! build, side by side in one run: one writer thread per database, one-row
//! autocommit inserts, `synchronous=FULL`, at 1 and 16 databases. Each run
//! of each contender is `examples-c/sqlite/build/bench` in a fresh
//! directory; the contenders alternate (which goes first alternates too),
//! and the table gives the median commits/s of the runs, their ratio, and
//! the median of the ratios of each run's back-to-back pair.
//!
//! ```text
//! cargo bench --bench sqlite_vfs -- [--runs N] [--secs S] [--warmup S] [--dbs 1,16]
//! ```
//!
//! Files go to `PWAL_BENCH_DIR` or `target/bench-data/sqlite_vfs` (the real
//! disk). Builds SQLite and the VFS with `make -C examples-c sqlite` first.

// Its flags (`--quick` and such) are not used here.
#[allow(dead_code)]
#[path = "harness/args.rs"]
mod args;
#[path = "../tests/c/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PWAL_BENCH_DIR") {
        return PathBuf::from(d).join("sqlite_vfs");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-data").join("sqlite_vfs")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One run: commits/s of `mode` ("pwal" or "wal") at `dbs` databases.
fn run_once(exe: &Path, mode: &str, dbs: usize, secs: f64, warmup: f64, dir: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("bench directory");
    let mut cmd = Command::new(exe);
    cmd.arg(mode)
        .arg(dbs.to_string())
        .arg(secs.to_string())
        .arg(warmup.to_string())
        .arg(dir);
    let out = support::run(cmd, &format!("bench {mode} {dbs}"));
    let rate = out
        .split_whitespace()
        .find_map(|f| f.strip_prefix("commits_per_sec="))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no commits_per_sec in: {out}"));
    let _ = std::fs::remove_dir_all(dir);
    rate
}

fn main() {
    let args = args::Args::parse(&["runs", "secs", "warmup", "dbs"]);
    let (runs, secs, warmup) = (
        args.get("runs", 5usize),
        args.get("secs", 3.0f64),
        args.get("warmup", 1.0f64),
    );
    let dbs_list: Vec<usize> = args.list("dbs", &[1, 16]);
    assert!(runs >= 1, "--runs must be at least 1");

    let mut make = Command::new("make");
    make.arg("-C")
        .arg(support::root().join("examples-c"))
        .arg("sqlite")
        .arg(format!("PWAL_SO={}", support::cdylib().display()));
    support::run(make, "make -C examples-c sqlite");
    let exe = support::root().join("examples-c/sqlite/build/bench");
    let dir = data_dir();

    let shown = &args.shown;
    println!(
        "cargo bench --bench sqlite_vfs -- {}",
        if shown.is_empty() {
            "(defaults)".to_string()
        } else {
            shown.join(" ")
        }
    );
    println!(
        "one writer thread per database, one-row autocommit inserts, synchronous=FULL; \
         median of {runs} runs of {secs} s (after {warmup} s unmeasured), contenders alternating"
    );
    println!();
    println!(
        "| databases | pwal VFS commits/s | WAL commits/s | ratio of medians | median of paired ratios | paired ratios |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | --- |");
    for &dbs in &dbs_list {
        let (mut p, mut w) = (Vec::new(), Vec::new());
        for r in 0..runs {
            let order: [&str; 2] = if r % 2 == 0 {
                ["pwal", "wal"]
            } else {
                ["wal", "pwal"]
            };
            for mode in order {
                let rate = run_once(&exe, mode, dbs, secs, warmup, &dir);
                eprintln!("  {dbs} dbs, run {}: {mode} {rate:.0} commits/s", r + 1);
                if mode == "pwal" {
                    p.push(rate)
                } else {
                    w.push(rate)
                }
            }
        }
        // Each run's two contenders ran back to back, so their ratio sees the
        // same machine; the spread of these shows how steady it was.
        let mut paired: Vec<f64> = p.iter().zip(&w).map(|(a, b)| a / b).collect();
        let shown: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
        let (mp, mw) = (median(&mut p), median(&mut w));
        println!(
            "| {dbs} | {mp:.0} | {mw:.0} | {:.2}x | {:.2}x | {} |",
            mp / mw,
            median(&mut paired),
            shown.join(" ")
        );
    }
}
