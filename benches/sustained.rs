//! pwal under a sustained load, with and without checkpoints: 16 writers
//! committing one 4 KiB page each (sync full) for a minute, twice, on a
//! fresh log each time; commits per second over time, the last third
//! against the first, and the log's disk at the end. Prints Markdown and
//! writes the chart `sustained.svg` into `--out-dir` (default `docs`; with
//! `--quick`, 6 s per run, no chart unless `--out-dir` is given).
//!
//! ```text
//! cargo bench --bench sustained -- [--quick] [--secs 60] [--threads 16] [--out-dir docs]
//! ```
//! Data files go to `PWAL_BENCH_DIR` or `target/bench-data` and are removed.

#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

use harness::sustained::{markdown, measure, write_chart, Opts};

fn main() {
    let args = harness::args::Args::parse_with_flags(&["secs", "threads", "out-dir"], &["quick"]);
    let quick = args.flag("quick");
    let base = if quick { Opts::quick() } else { Opts::full() };
    let opts = Opts {
        secs: args.get("secs", base.secs),
        threads: args.get("threads", base.threads),
        ..base
    };
    assert!(
        opts.secs >= 3 && opts.threads >= 1,
        "--secs >= 3, --threads >= 1"
    );
    let out_dir: Option<PathBuf> = match args.raw("out-dir") {
        Some(d) => Some(PathBuf::from(d)),
        None if quick => None,
        None => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")),
    };
    let data = harness::default_data_dir();
    let r = measure(&data, &opts).unwrap_or_else(|e| panic!("sustained: {e}"));
    println!("{}", markdown(&r));
    if let Some(d) = out_dir {
        let name = write_chart(&r, &d).expect("write the chart");
        println!("Chart: {}", d.join(name).display());
    }
}
