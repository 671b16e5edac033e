//! The cost of reading the whole log: recovery (which reads the checkpoint
//! mark before it replays) and open (which validates every epoch), on a
//! real-disk log of about 64 MiB that was never checkpointed. Ignored by
//! default (it writes 64 MiB and more); run it with
//!
//! ```sh
//! PWAL_COST_DIR=/some/dir [PWAL_COST_SEGMENT_MIB=16] cargo test --release --test contract_cost -- --ignored --nocapture
//! ```
//!
//! It prints the median and the minimum of 7 rounds of each, with the page cache warm.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pwal::{Frame, Log, Options, RecoverOptions, RecoveryReport, SyncPolicy, Txn};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore]
fn cost_of_reading_a_64_mib_log() {
    let dir = std::env::var_os("PWAL_COST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("pwal-cost-{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("db");
    // PWAL_COST_SEGMENT_MIB: the segment size (default 64: the whole log in
    // one segment, where open read all of it before too; 16: four segments,
    // where open used to read only the last).
    let seg_mib: u64 = std::env::var("PWAL_COST_SEGMENT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let o = Options {
        segment_bytes: seg_mib << 20,
        sync: SyncPolicy::Normal,
        use_env: false,
        ..Options::default()
    };
    if !pwal::log_dir(&db).exists() {
        let log = Log::open(&db, &o).unwrap();
        let page = vec![0x5au8; 16 << 10];
        // 3 800 transactions of one 16 KiB page, waited for 16 at a time
        // (epochs of about 256 KiB): about 62 MiB of frames.
        for id in 1..=3800u64 {
            let frames = [Frame {
                page_number: 1 + (id % 1000) as u32,
                db_size_if_commit: 1000,
                data: &page,
            }];
            let e = log
                .submit(&Txn {
                    txn_id: id,
                    commit_seq: id,
                    txn_epoch: 0,
                    frames: &frames,
                })
                .unwrap();
            if id % 16 == 0 {
                log.wait_durable(e, None).unwrap();
            }
        }
        log.flush(None).unwrap();
        log.close().unwrap();
    }
    let mut rec = Vec::new();
    let mut opn = Vec::new();
    let mut records = 0;
    let mut epochs = 0;
    // Recovery with the cache warm (the first round warms it), then opens
    // (each open drops the segments' cached pages before it reads them).
    for _ in 0..8 {
        let mut report = RecoveryReport::default();
        let t = Instant::now();
        pwal::recover_into(&db, &RecoverOptions::default(), &mut |_| true, &mut report).unwrap();
        rec.push(t.elapsed());
        records = report.records;
        epochs = report.epochs;
    }
    rec.remove(0);
    for _ in 0..7 {
        let t = Instant::now();
        let log = Log::open(&db, &o).unwrap();
        opn.push(t.elapsed());
        log.close().unwrap();
    }
    let segs: Vec<u64> = std::fs::read_dir(pwal::log_dir(&db))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pwseg"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    let bytes: u64 = segs.iter().sum();
    println!(
        "log: {} segments, {} MiB, {epochs} epochs, {records} records; recovery median {:?} (min {:?}); open median {:?} (min {:?})",
        segs.len(),
        bytes >> 20,
        median(rec.clone()),
        rec.iter().min().unwrap(),
        median(opn.clone()),
        opn.iter().min().unwrap()
    );
}
