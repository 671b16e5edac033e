//! Read-side faults: every read, directory listing and open of recovery and
//! of opening a log fails in turn. Each must fail closed with an `Io` error
//! naming the file and the errno (never success with fewer records, never
//! `Corrupt`, never a panic), change nothing, and leave a log that the next
//! attempt, with the disk working again, reads whole.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use pwal::io::sim::{Fault, FaultKind, FaultOp};
use pwal::io::SimVfs;
use pwal::{Error, Log, Options};

const DB: &str = "/sim/db";

fn opts() -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// A closed log of several segments, and what it must recover.
fn several_segments() -> (SimVfs, Expect) {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())).unwrap();
    for _ in 0..60 {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    let segments = vfs
        .paths()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pwseg"))
        .count();
    assert!(segments >= 3, "only {segments} segments: {:?}", vfs.paths());
    (vfs, Expect::from_events(&j.snapshot()))
}

fn read_side_ops(vfs: &SimVfs) -> u64 {
    let (r, l, o) = vfs.read_op_counts();
    r + l + o
}

fn eio_at(vfs: &SimVfs, op: FaultOp, at_op: u64) {
    vfs.inject(Fault {
        op,
        at_op,
        persistent: false,
        kind: FaultKind::Eio,
    });
}

/// What is wrong with `r`, the outcome of an operation that met an injected
/// EIO, if it is not an `Io` error naming a file of the log and the errno.
fn fails_closed<T>(r: pwal::Result<T>) -> Result<(), String> {
    let dir = pwal::log_dir(Path::new(DB));
    match r {
        Ok(_) => Err("succeeded despite the fault".into()),
        Err(e @ Error::Io { .. }) => {
            let msg = e.to_string();
            if !msg.contains(dir.to_str().unwrap()) {
                return Err(format!("the error does not name the file: {msg}"));
            }
            match &e {
                Error::Io { source, .. } if source.raw_os_error() == Some(libc::EIO) => Ok(()),
                _ => Err(format!("the error lost the errno: {msg}")),
            }
        }
        Err(e) => Err(format!("not an Io error: {e}")),
    }
}

#[test]
fn recovery_fails_closed_at_every_read_side_fault() {
    let (base, x) = several_segments();
    let db = Path::new(DB);
    let clean = base.process_crash();
    recover(&clean, db).unwrap();
    let (reads, lists, opens) = clean.read_op_counts();
    assert!(
        reads > 0 && lists > 0 && opens > 0,
        "recovery did not read, list and open: {:?}",
        (reads, lists, opens)
    );
    let mut cases = 0;
    for (op, n) in [
        (FaultOp::Read, reads),
        (FaultOp::List, lists),
        (FaultOp::Open, opens),
    ] {
        for at in 1..=n {
            let vfs = base.process_crash();
            let digest = vfs.digest();
            eio_at(&vfs, op, at);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recover(&vfs, db)))
                .unwrap_or_else(|_| panic!("{op:?} {at}: recovery panicked"));
            assert_eq!(
                vfs.faults_injected(),
                1,
                "{op:?} {at}: the fault did not fire"
            );
            if let Err(m) = fails_closed(r) {
                panic!("{op:?} {at} of {n}: {m}");
            }
            vfs.clear_faults();
            assert_eq!(
                vfs.digest(),
                digest,
                "{op:?} {at}: recovery changed the log"
            );
            check_recovery(&vfs, db, &x)
                .unwrap_or_else(|m| panic!("{op:?} {at}: recovery without the fault: {m}"));
            cases += 1;
        }
    }
    println!("recovery met a read-side EIO in {cases} places and failed closed in each");
}

#[test]
fn open_fails_closed_at_every_read_side_fault_and_writes_nothing() {
    let (base, x) = several_segments();
    let db = Path::new(DB);
    let clean = base.process_crash();
    let log = Log::open_with_vfs(db, &opts(), Arc::new(clean.clone())).unwrap();
    let n = read_side_ops(&clean);
    log.close().unwrap();
    assert!(n > 0, "open read nothing");
    for at in 1..=n {
        let vfs = base.process_crash();
        let digest = vfs.digest();
        eio_at(&vfs, FaultOp::ReadSide, at);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone()))
        }))
        .unwrap_or_else(|_| panic!("read-side op {at}: open panicked"));
        assert_eq!(
            vfs.faults_injected(),
            1,
            "read-side op {at}: the fault did not fire"
        );
        if let Err(m) = fails_closed(r) {
            panic!("read-side op {at} of {n}: open: {m}");
        }
        assert_eq!(
            vfs.digest(),
            digest,
            "read-side op {at}: the failed open wrote"
        );
        vfs.clear_faults();

        // The disk works again: the log opens, has everything, continues.
        let j = Journal::new();
        j.raise_ids(x.submitted.keys().max().copied().unwrap_or(0));
        let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone()))
            .unwrap_or_else(|e| panic!("read-side op {at}: open after the fault: {e}"));
        j.commit(&log, j.next_id()).unwrap();
        j.close(log).unwrap();
        let mut x2 = x.clone();
        for e in j.snapshot() {
            x2.add(e);
        }
        check_recovery(&vfs, db, &x2)
            .unwrap_or_else(|m| panic!("read-side op {at}: after reopening: {m}"));
    }
    println!("open met a read-side EIO in {n} places and failed closed in each");
}
