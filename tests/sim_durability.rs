//! What a power loss keeps of a log on the simulated file system, where a
//! directory created since its parent's last sync vanishes with everything in
//! it, and a failed fsync leaves the data cached but clean, as Linux does.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use pwal::io::sim::{CrashMode, Fault, FaultKind, FaultOp};
use pwal::io::{SimVfs, Vfs};
use pwal::{Log, Options, SyncPolicy};

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Full,
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// The log directory is new, so its entry in the database's directory is
/// lost by a power loss until that directory is synced: open must sync it
/// before acknowledging anything written inside.
#[test]
fn a_commit_under_full_survives_a_power_loss_with_the_new_log_directory() {
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let dir = pwal::log_dir(db);
    assert!(!vfs.exists(&dir), "the log directory exists before open");
    // The image before the first operation of open shows the directory is
    // not durable by itself; the image at each acknowledgement must keep it.
    let j = Journal::new();
    let jt = j.clone();
    vfs.set_crash_points(|_| true, move || jt.len());
    let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
    let ids: Vec<u64> = (0..3).map(|_| j.next_id()).collect();
    for &id in &ids {
        j.commit(&log, id).unwrap();
    }
    let lost = vfs.crash(CrashMode::DropAll);
    let points = vfs.take_crash_points();
    vfs.clear_crash_points();
    assert!(
        vfs.exists(&dir) && !points[0].frozen.image(CrashMode::KeepAll).exists(&dir),
        "a power loss before open synced anything kept the new log directory"
    );

    let x = Expect::from_events(&j.snapshot());
    assert_eq!(x.acked.len(), ids.len());
    let got = check_recovery(&lost, db, &x).unwrap();
    for id in &ids {
        assert!(got.batches.contains_key(id), "batch {id} lost");
    }
    // The same at every instant of the run, not only at its end.
    let events = j.snapshot();
    for p in &points {
        check_recovery(
            &p.frozen.image(CrashMode::DropAll),
            db,
            &Expect::at(&events, p.tag),
        )
        .unwrap_or_else(|m| panic!("power loss before operation {}: {m}", p.op));
    }
    j.close(log).unwrap();
}

/// After a failed fsync Linux keeps the unwritten pages cached and marks
/// them clean: the tail still reads back, but it is not on the disk and no
/// later fsync writes it. A reopen in the same process must not take that
/// tail for the end of the log, or the epochs it writes after it follow a
/// hole once the power fails.
#[test]
fn reopen_after_a_failed_fsync_that_left_the_tail_cached_continues_after_the_disk() {
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let j = Journal::new();
    let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
    let first = j.next_id();
    j.commit(&log, first).unwrap();
    let (_, syncs, _) = vfs.op_counts();
    // Every sync fails from here until the faults are cleared: the
    // preallocation thread may take the next sync operation, and the
    // commit's own fdatasync must be one that fails.
    vfs.inject(Fault {
        op: FaultOp::Sync,
        at_op: syncs + 1,
        persistent: true,
        kind: FaultKind::SyncFailCleanCached,
    });
    let lost = j.next_id();
    let e = j.submit(&log, lost).unwrap();
    let err = log.wait_durable(e, None).unwrap_err();
    assert!(err.to_string().contains("Input/output error"), "{err}");
    assert!(log.close().is_err(), "the log is poisoned");
    vfs.clear_faults();
    // The premise: some segment reads back bytes that are not on the disk.
    let cached_differs = vfs
        .paths()
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pwseg"))
        .any(|p| vfs.contents(p) != vfs.disk_contents(p));
    assert!(
        cached_differs,
        "the failed sync did not leave unwritten bytes cached"
    );
    // Recovery reads what the disk holds: it used to replay `lost` from the
    // cache, handing the engine a batch the next open no longer had.
    let replayed = recover(&vfs, db).unwrap();
    assert!(
        !replayed.batches.contains_key(&lost),
        "recovery replayed a batch that is only in the page cache"
    );
    assert!(replayed.batches.contains_key(&first));

    // A journal of its own: closing the reopened log acknowledges what it
    // was given, not `lost`, which the poisoned log never acknowledged.
    let j2 = Journal::new();
    j2.raise_ids(lost);
    let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
    let after = j2.next_id();
    j2.commit(&log, after).unwrap();
    j2.close(log).unwrap();

    // `lost` was never acknowledged: whether it survives is open, but
    // `first` and `after` must, in gap-free epochs.
    let mut x = Expect::from_events(&j.snapshot());
    for e in j2.snapshot() {
        x.add(e);
    }
    assert!(x.acked.contains_key(&first) && x.acked.contains_key(&after));
    assert!(!x.acked.contains_key(&lost));
    check_recovery(&vfs, db, &x).unwrap();
    check_recovery(&vfs.crash(CrashMode::DropAll), db, &x)
        .unwrap_or_else(|m| panic!("after a power loss: {m}"));
}
