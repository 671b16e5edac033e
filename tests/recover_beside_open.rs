//! `recover` while this process has the log open, with a writer committing
//! and checkpointing in another thread: every reading is a consistent
//! prefix of the log (every epoch durable when it began, from the one after
//! the mark on), never `Io` (a checkpoint removing a listed segment) nor
//! `Corrupt` (a read-ahead window showing zeros where the writer has since
//! appended), and never a torn tail.
//!
//! `PWAL_BESIDE_ROUNDS` sets the number of recoveries (default 1000).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use pwal::{Log, Options, RecoverOptions, RecoveryReport};

#[test]
fn recovery_beside_the_open_log_reads_a_consistent_prefix() {
    let rounds = env_u64("PWAL_BESIDE_ROUNDS", 1000);
    let dir = scratch("beside-open");
    let db = dir.join("test.db");
    let opts = Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    };
    let log = Arc::new(Log::open(&db, &opts).unwrap());
    // id -> epoch, for every acknowledged batch.
    let acked = Arc::new(parking_lot::Mutex::new(BTreeMap::<u64, u64>::new()));
    let last_acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, acked, last, stop) =
            (log.clone(), acked.clone(), last_acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let e = submit(&log, id).unwrap();
                log.wait_durable(e, None).unwrap();
                acked.lock().insert(id, e);
                last.store(id, Ordering::Release);
                // Checkpoint often, a few epochs behind: segments go.
                if id % 7 == 0 {
                    log.checkpoint(e.saturating_sub(3).max(1)).unwrap();
                }
            }
        })
    };
    let mut torn = 0;
    // As many readings as asked, and as long as the writer needs for 400
    // commits (each a segment switch or a checkpoint away from a race).
    let mut round = 0;
    while round < rounds || last_acked.load(Ordering::Acquire) < 400 {
        round += 1;
        // A reading holds off segment removal while it runs; back to back,
        // readings would keep every checkpoint from removing anything and
        // the log (and each reading) would only grow. A pause lets the
        // writer's checkpoints remove what they may.
        std::thread::sleep(std::time::Duration::from_micros(500));
        let before = last_acked.load(Ordering::Acquire);
        let mut ids = Vec::new();
        let mut report = RecoveryReport::default();
        let r = pwal::recover_into(
            &db,
            &RecoverOptions::default(),
            &mut |rec| {
                if ids.last() != Some(&rec.txn_id) {
                    ids.push(rec.txn_id);
                }
                true
            },
            &mut report,
        );
        if let Err(e) = r {
            stop.store(true, Ordering::Relaxed);
            panic!("round {round}: recovery beside the open log failed: {e} ({report:?})");
        }
        torn += u64::from(report.torn_tail_bytes > 0);
        let acked = acked.lock();
        // A gap-free run of ids, from the first one above the mark, up to
        // at least the last one acknowledged before the reading began.
        for w in ids.windows(2) {
            assert_eq!(w[1], w[0] + 1, "round {round}: ids {ids:?}");
        }
        if let Some(&first) = ids.first() {
            assert!(acked[&first] > report.checkpoint_epoch, "round {round}");
            if first > 1 {
                assert!(
                    acked[&(first - 1)] <= report.checkpoint_epoch,
                    "round {round}"
                );
            }
        }
        let last = ids.last().copied().unwrap_or(0);
        assert!(
            last >= before
                || acked
                    .get(&before)
                    .is_some_and(|&e| e <= report.checkpoint_epoch),
            "round {round}: read up to id {last}, but {before} was acknowledged before it began"
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(torn, 0, "a reading beside the writer has no torn tail");
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
}
