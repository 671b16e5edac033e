//! The disk a log takes, pwal against SQLite's WAL and RocksDB's WAL: fresh
//! (open + one 4 KiB commit), small (1,000 commits), busy (after 10 s of 16
//! writers) and idle (3 s after those writers stopped). Prints Markdown.
//! `--quick` shortens the busy spell to 2 s.
//!
//! ```text
//! cargo bench --bench footprint -- [--quick] [--busy-secs 10] [--idle-secs 3] [--threads 16]
//! ```
//! Data files go to `PWAL_BENCH_DIR` or `target/bench-data` and are removed.

#[allow(dead_code)]
mod harness;

use harness::footprint::{markdown, measure, Opts};

fn main() {
    let args =
        harness::args::Args::parse_with_flags(&["busy-secs", "idle-secs", "threads"], &["quick"]);
    let base = if args.flag("quick") {
        Opts::quick()
    } else {
        Opts::full()
    };
    let opts = Opts {
        busy_secs: args.get("busy-secs", base.busy_secs),
        idle_secs: args.get("idle-secs", base.idle_secs),
        threads: args.get("threads", base.threads),
        ..base
    };
    let r =
        measure(&harness::default_data_dir(), &opts).unwrap_or_else(|e| panic!("footprint: {e}"));
    println!("{}", markdown(&r));
}
