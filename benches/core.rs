//! The core benchmark: 4 KiB pages, one page per commit, sync full, each
//! ratio taken in the same run (median of `--runs`, contenders alternating):
//!
//! - 1 writer vs a raw loop overwriting 4 KiB of a pre-zeroed file + fdatasync;
//! - 16 writers vs 1 writer;
//! - auto vs conservative at 16 writers;
//! - the submit path (sync off, 1 writer) vs memcpy + CRC32C, ns per frame.
//!
//! ```text
//! cargo bench --bench core -- [--runs N] [--secs S] [--warmup S]
//! ```

#[allow(dead_code)]
mod harness;

use std::time::Duration;

use harness::contenders::Shared;
use harness::micro::CoreRatios;

fn main() {
    let args = harness::args::Args::parse(&["runs", "secs", "warmup"]);
    let (runs, secs, warmup) = (
        args.get("runs", 5usize),
        args.get("secs", 1.0f64),
        args.get("warmup", 0.2f64),
    );
    let data_dir = harness::default_data_dir().join("core");
    let shared = Shared::new(&data_dir).expect("benchmark data directory");
    let r = CoreRatios::measure(
        &shared,
        runs,
        Duration::from_secs_f64(warmup),
        Duration::from_secs_f64(secs),
    );
    println!("\n== {}", harness::command_line("core"));
    for (l, want, ok) in r.lines() {
        println!(
            "  [{}] {l} (wanted {want})",
            match ok {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "info",
            }
        );
    }
    drop(shared);
    let _ = std::fs::remove_dir_all(&data_dir);
}
