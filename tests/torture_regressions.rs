//! Regression tests for bugs the torture tests found, one behaviour each.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use pwal::io::sim::{CrashMode, Fault, FaultKind, FaultOp};
use pwal::io::SimVfs;
use pwal::{Log, Options};

fn opts() -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// Found by torture_faults (SyncFailKept/Sync/10/once): an epoch written but
/// never synced (its fsync failed, or the process died first) is still in the
/// kernel's cache, so recovery replays it and a reopened log continues after
/// it, in a new segment. Unless the reopen syncs it, a later power loss
/// drops it while keeping the later epochs: an epoch gap, and the log no
/// longer opens.
#[test]
fn reopen_makes_the_replayed_tail_durable_before_writing_after_it() {
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let j = Journal::new();
    let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
    j.commit(&log, j.next_id()).unwrap();
    let (_, syncs, _) = vfs.op_counts();
    vfs.inject(Fault {
        op: FaultOp::Sync,
        at_op: syncs + 1,
        persistent: true,
        kind: FaultKind::SyncFailKept,
    });
    let id = j.next_id();
    let e = j.submit(&log, id).unwrap();
    assert!(
        log.wait_durable(e, None).is_err(),
        "the failed sync is reported"
    );
    assert!(log.close().is_err(), "the log is poisoned");
    vfs.clear_faults();

    // The process goes on: recovery sees the unsynced epoch in the cache.
    let replayed = recover(&vfs, db).unwrap();
    assert!(replayed.batches.contains_key(&id));
    let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
    let after = j.next_id();
    j.commit(&log, after).unwrap();
    j.close(log).unwrap();

    // Then the power fails.
    let mut x = Expect::from_events(&j.snapshot());
    for (id, g) in &replayed.batches {
        x.acked.insert(*id, g.epoch);
    }
    check_recovery(&vfs.crash(CrashMode::DropAll), db, &x).unwrap();
}

/// Found by fuzz_recovery (a bit flip in a segment header): a segment whose
/// header no longer validates was skipped as if it had never been activated,
/// so every acknowledged epoch in it vanished without a word (recovery
/// returned Ok, no damage reported). Its frames still validate, which a
/// never-activated file cannot have (the header is synced before the first
/// frame is written): that is corruption, and recovery must fail closed.
#[test]
fn a_damaged_segment_header_before_valid_frames_is_corruption() {
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let j = Journal::new();
    for _ in 0..2 {
        // Each open starts a new segment.
        let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
        for _ in 0..3 {
            j.commit(&log, j.next_id()).unwrap();
        }
        j.close(log).unwrap();
    }
    let segs: Vec<_> = vfs
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pwseg"))
        .collect();
    assert_eq!(segs.len(), 2);
    for seg in &segs {
        let image = vfs.process_crash();
        let byte = image.contents(seg).unwrap()[20];
        image.poke(seg, 20, &[byte ^ 0x08]);
        match recover(&image, db) {
            Err(pwal::Error::Corrupt { file, offset, what }) => {
                assert_eq!(&file, seg);
                assert_eq!(offset, 0);
                assert!(what.contains("header"), "{what}");
            }
            other => panic!(
                "{}: expected corruption, got {:?}",
                seg.display(),
                other.map(|r| r.report)
            ),
        }
        // The durable prefix stops before the damaged segment.
        let prefix = recover_opts(&image, db, true).unwrap();
        assert!(prefix.report.damage.is_some());
        let want = if seg == &segs[0] { 0 } else { 3 };
        assert_eq!(prefix.batches.len(), want, "{}", seg.display());
        assert!(
            Log::open_with_vfs(db, &opts(), Arc::new(image.clone())).is_err(),
            "a log with a damaged segment header opened"
        );
    }
}
