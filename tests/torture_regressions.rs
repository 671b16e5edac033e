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
