//! Edge cases of the damage rules, each a regression test of a defect a
//! cold review found: reading past damage at or below the mark never
//! follows a superseded tail; a repair interrupted by a crash never leaves a
//! log that reads past its cut, and a re-run keeps the mark; a clean close
//! proves the last epoch holding a record even when this process committed
//! nothing.

mod common;
#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::path::Path;
use std::sync::Arc;

use common::*;
use layout::*;
use pwal::io::SimVfs;
use pwal::{Log, Options, SyncPolicy};

const DB: &str = "/sim/db";

fn opts(sync: SyncPolicy) -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 1,
        use_env: false,
        sync,
        close_proof: false,
        ..Options::default()
    }
}

fn open(vfs: &SimVfs, sync: SyncPolicy) -> pwal::Result<Log> {
    Log::open_with_vfs(DB, &opts(sync), Arc::new(vfs.clone()))
}

/// A torn tail superseded by the next open's segment (S0 torn at epoch t,
/// S1 starts at t, S0 keeps old unproven frames t+1.. after the tear),
/// then a checkpoint past t whose removal of S0 did not happen (crash
/// between the mark's sync and the removal, or a RemovalHold).
#[test]
fn superseded_torn_tail_read_past_as_damage_below_mark() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    // sync=off: frames carry no synced_through proof for later epochs.
    let log = open(&vfs, SyncPolicy::Off).unwrap();
    for _ in 0..6 {
        j.commit(&log, j.next_id()).unwrap();
    }
    log.close().unwrap();
    let s0 = segments(&vfs, Path::new(DB)).remove(0);
    let data = vfs.contents(&s0).unwrap();
    let fr = frames_of_segment(&data);
    eprintln!(
        "frames: {:?}",
        fr.iter()
            .map(|f| (f.epoch, f.start, f.cert(&data).synced_through))
            .collect::<Vec<_>>()
    );
    // Tear epoch 3 (a write that never reached the disk whole).
    let f3 = fr.iter().find(|f| f.epoch == 3).unwrap().clone();
    let at = f3.start + f3.header_len() as u64 + 5;
    let mut d = data.clone();
    d[at as usize] ^= 0x40;
    vfs.set_contents(&s0, d);
    let r = recover(&vfs, Path::new(DB)).unwrap();
    eprintln!(
        "before reopen: order {:?} damage {:?}",
        r.order, r.report.damage
    );
    // Reopen: a new segment starts at epoch 3, superseding the rest of S0.
    let log = open(&vfs, SyncPolicy::Full).unwrap();
    let mut new_ids = Vec::new();
    for _ in 0..6 {
        let id = j.next_id();
        let e = j.commit(&log, id).unwrap();
        new_ids.push((id, e));
    }
    eprintln!("new commits (id, epoch): {new_ids:?}");
    let clean = recover(&vfs, Path::new(DB)).unwrap();
    eprintln!("clean: {:?}", clean.order);
    let saved = vfs.contents(&s0).unwrap();
    // Checkpoint through epoch 4 (S1 holds 3..): S0 is removed...
    log.checkpoint(4).unwrap();
    log.close().unwrap();
    // ... unless a crash came between the mark's sync and the removal.
    if vfs.contents(&s0).is_none() {
        vfs.set_contents(&s0, saved);
    }
    let expect: Vec<_> = clean.order.iter().filter(|o| o.0 > 4).cloned().collect();
    match recover(&vfs, Path::new(DB)) {
        Ok(r) => {
            eprintln!("after: {:?} damage {:?}", r.order, r.report.damage);
            assert_eq!(r.order, expect, "every epoch above the mark, from S1");
        }
        Err(e) => eprintln!("REFUSED: {e}"),
    }
    let r = recover_opts(&vfs, Path::new(DB), true).unwrap();
    eprintln!("durable prefix: {:?} damage {:?}", r.order, r.report.damage);
    let o = open(&vfs, SyncPolicy::Full).map(|l| l.close());
    eprintln!("open: {:?}", o.err());
    let mut rep = pwal::RecoveryReport::default();
    pwal::repair_with_vfs(&vfs, Path::new(DB), &mut rep).unwrap();
    let after = recover(&vfs, Path::new(DB)).unwrap();
    eprintln!(
        "after repair: live segments {:?}, recovered {:?}",
        segments(&vfs, Path::new(DB)),
        after.order
    );
    assert_eq!(
        r.order, expect,
        "durable prefix: stale ids delivered, acknowledged ones hidden"
    );
}

/// Repair writes its mark frame at the cut before it moves the later
/// segments aside. When the cut epoch e is the last frame of its segment and
/// the next segment starts at e + 1, a crash between the two leaves
/// S = ..e-1, mark(e) (empty), zeros; next segment starts at e + 1: the
/// ordinary end of S, so recovery reads on into the segment the repair was
/// moving aside, delivering e+1.. with e's records gone.
/// A repair interrupted after the later segments were moved aside and before
/// the mark's frame was written: a re-run takes the mark from `damaged/` and
/// repairs to the same result as an uninterrupted run (the mark's frame is
/// written only once nothing past the cut is in the log, so no crash leaves
/// a log that reads on from it into a later segment).
#[test]
fn repair_interrupted_before_its_mark_frame_is_completed_by_a_rerun() {
    let build = || {
        let vfs = SimVfs::new();
        let j = Journal::new();
        let mut o = opts(SyncPolicy::Full);
        o.close_proof = true;
        let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
        j.commit(&log, j.next_id()).unwrap();
        j.commit(&log, j.next_id()).unwrap();
        while segments(&vfs, Path::new(DB)).len() < 3 {
            j.commit(&log, j.next_id()).unwrap();
        }
        log.checkpoint(log.durable_epoch()).unwrap();
        while segments(&vfs, Path::new(DB)).len() < 5 {
            j.commit(&log, j.next_id()).unwrap();
        }
        log.close().unwrap();
        // Rot the last frame of the second-to-last segment: later frames
        // prove it synced; only frames past the cut carry the mark.
        let segs = segments(&vfs, Path::new(DB));
        let s = segs[segs.len() - 2].clone();
        let data = vfs.contents(&s).unwrap();
        let last = frames_of_segment(&data).last().unwrap().clone();
        let mut d = data.clone();
        d[(last.start + last.header_len() as u64 + 3) as usize] ^= 0x40;
        vfs.set_contents(&s, d);
        (vfs, s, segs)
    };
    let (whole, _, _) = build();
    let want = recover_opts(&whole, Path::new(DB), true).unwrap();
    assert!(want.report.checkpoint_epoch > 0);
    let mut rep = pwal::RecoveryReport::default();
    pwal::repair_with_vfs(&whole, Path::new(DB), &mut rep).unwrap();
    let repaired = recover(&whole, Path::new(DB)).unwrap();
    assert_eq!(repaired.order, want.order);
    assert_eq!(
        repaired.report.checkpoint_epoch,
        want.report.checkpoint_epoch
    );

    // The crash image: the later segment moved into damaged/, nothing else.
    let (vfs, s, segs) = build();
    let damaged = pwal::log_dir(Path::new(DB)).join("damaged");
    let later = segs.last().unwrap();
    vfs.set_contents(
        &damaged.join(later.file_name().unwrap()),
        vfs.contents(later).unwrap(),
    );
    pwal::io::Vfs::remove_file(&vfs, later).unwrap();
    assert!(vfs.contents(&s).is_some());
    let mut rep = pwal::RecoveryReport::default();
    pwal::repair_with_vfs(&vfs, Path::new(DB), &mut rep).unwrap();
    let after = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(after.order, want.order, "the prefix, nothing past the cut");
    assert_eq!(
        after.report.checkpoint_epoch, want.report.checkpoint_epoch,
        "the mark kept"
    );
}

#[test]
fn open_then_clean_close_without_commits_leaves_last_epoch_unproven() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, SyncPolicy::Full).unwrap(); // close_proof off: as a crash leaves it
    for _ in 0..3 {
        j.commit(&log, j.next_id()).unwrap();
    }
    log.close().unwrap();
    let mut o = opts(SyncPolicy::Full);
    o.close_proof = true;
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    log.close().unwrap(); // a clean close
    let seg = segments(&vfs, Path::new(DB)).remove(0);
    let data = vfs.contents(&seg).unwrap();
    let fr = frames_of_segment(&data);
    eprintln!(
        "frames after the clean close: {:?}",
        fr.iter().map(|f| f.epoch).collect::<Vec<_>>()
    );
    let last = fr.iter().find(|f| f.epoch == 3).unwrap().clone();
    let mut d = data.clone();
    let at = (last.start + last.header_len() as u64 + 3) as usize;
    d[at] ^= 0x40;
    vfs.set_contents(&seg, d);
    match recover(&vfs, Path::new(DB)) {
        Err(pwal::Error::Corrupt { .. }) => {}
        Ok(r) => panic!("rot in the acknowledged last epoch of a cleanly closed log passed as {:?} ({} batches)", r.report.damage, r.order.len()),
        Err(e) => panic!("{e}"),
    }
}

/// Finding 1 without a crash: a checkpoint taken while pwal_recover reads
/// beside the open log (RemovalHold) leaves the superseded segment S0 in
/// place; commits follow, the log closes cleanly, and the next open refuses.
#[test]
fn superseded_torn_tail_kept_by_removal_hold_then_clean_close_refuses_open() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, SyncPolicy::Off).unwrap();
    for _ in 0..6 {
        j.commit(&log, j.next_id()).unwrap();
    }
    log.close().unwrap();
    let s0 = segments(&vfs, Path::new(DB)).remove(0);
    let data = vfs.contents(&s0).unwrap();
    let f3 = frames_of_segment(&data)
        .into_iter()
        .find(|f| f.epoch == 3)
        .unwrap();
    let mut d = data.clone();
    d[(f3.start + f3.header_len() as u64 + 5) as usize] ^= 0x40;
    vfs.set_contents(&s0, d);
    let log = open(&vfs, SyncPolicy::Full).unwrap();
    for _ in 0..6 {
        j.commit(&log, j.next_id()).unwrap();
    }
    // The engine reads its own log beside the writer and checkpoints meanwhile.
    let mut done = false;
    let mut rep = pwal::RecoveryReport::default();
    let mut cb = |_: &pwal::Record<'_>| {
        if !done {
            done = true;
            log.checkpoint(4).unwrap();
        }
        true
    };
    pwal::recover_with_vfs(
        &vfs,
        Path::new(DB),
        &pwal::RecoverOptions {
            durable_prefix: false,
        },
        &mut cb,
        &mut rep,
    )
    .unwrap();
    for _ in 0..2 {
        j.commit(&log, j.next_id()).unwrap();
    }
    log.close().unwrap();
    assert!(vfs.contents(&s0).is_some(), "S0 kept by the hold");
    match open(&vfs, SyncPolicy::Full) {
        Ok(l) => l.close().unwrap(),
        Err(e) => panic!("a cleanly closed log does not open: {e}"),
    }
}
