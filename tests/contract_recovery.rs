//! The recovery contract over the simulated file system: the checkpoint mark
//! is kept (checkpointed epochs are validated, never replayed), the report
//! says where damage lies on every return, commit-sequence inversions are
//! counted or refused, open never appends behind damage,
//! `recover_and_open` replays once and opens, and `repair` cuts a log back
//! to its durable prefix without deleting a byte.

mod common;
#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use layout::*;
use pwal::io::SimVfs;
use pwal::{Error, Frame, Log, Options, RecoveryReport, ReplayOptions, Txn};

const DB: &str = "/sim/db";

fn opts(segment_bytes: u64) -> Options {
    Options {
        segment_bytes,
        lanes: 1,
        use_env: false,
        ..Options::default()
    }
}

fn open(vfs: &SimVfs, segment_bytes: u64) -> pwal::Result<Log> {
    Log::open_with_vfs(DB, &opts(segment_bytes), Arc::new(vfs.clone()))
}

/// A log of at least `segs` segments of 64 KiB, one batch per epoch.
fn multi_segment(segs: usize) -> (SimVfs, Arc<Journal>) {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, 64 << 10).unwrap();
    while segments(&vfs, Path::new(DB)).len() < segs + 1 {
        j.commit(&log, j.next_id()).unwrap();
    }
    // A few epochs into the last segment.
    for _ in 0..3 {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    (vfs, j)
}

/// Flips a byte in the middle of the body of the `n`th frame of `seg`;
/// returns that frame.
fn flip_body_byte(vfs: &SimVfs, seg: &Path, n: usize) -> FrameLoc {
    let data = vfs.contents(seg).unwrap();
    let f = frames_of_segment(&data)[n].clone();
    let at = f.start + f.header_len() as u64 + (f.end - f.start - f.header_len() as u64) / 2;
    vfs.poke(seg, at, &[data[at as usize] ^ 0x40]);
    f
}

#[test]
fn open_refuses_a_log_with_damage_before_its_tail_naming_file_offset_and_epoch() {
    let (vfs, _) = multi_segment(3);
    let segs = segments(&vfs, Path::new(DB));
    let f = flip_body_byte(&vfs, &segs[0], 1);
    match open(&vfs, 64 << 10) {
        Err(Error::Corrupt { file, offset, what }) => {
            assert_eq!(file, segs[0]);
            assert_eq!(offset, f.start);
            assert!(what.contains(&format!("epoch {}", f.epoch)), "{what}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("open appended behind a damaged epoch"),
    }
    // Nothing was written: no new segment.
    assert_eq!(segments(&vfs, Path::new(DB)), segs);
}

#[test]
fn recover_and_open_replays_every_record_once_then_commits() {
    let (vfs, j) = multi_segment(3);
    let before = recover(&vfs, Path::new(DB)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut report = RecoveryReport::default();
    let log = pwal::recover_and_open_with_vfs(
        Arc::new(vfs.clone()),
        Path::new(DB),
        &opts(64 << 10),
        &ReplayOptions::default(),
        Box::new(move |r| {
            s.lock().unwrap().push((r.epoch, r.txn_id, r.page_number));
            true
        }),
        &mut report,
    )
    .unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let want: Vec<(u64, u64, u32)> = before
        .order
        .iter()
        .flat_map(|(e, _, id)| {
            before.batches[id]
                .frames
                .iter()
                .map(move |f| (*e, *id, f.0))
        })
        .collect();
    assert_eq!(seen, want, "every record once, in replay order");
    assert_eq!(report, before.report);
    let id = j.next_id();
    let e = j.commit(&log, id).unwrap();
    assert_eq!(e, before.report.last_epoch + 1);
    j.close(log).unwrap();
    let after = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(after.order.len(), before.order.len() + 1);
    assert_eq!(after.order.last().unwrap().2, id);
    check_recovered(&after, &Expect::from_events(&j.snapshot())).unwrap();
}

#[test]
fn recover_and_open_refuses_damage_and_opens_nothing() {
    let (vfs, _) = multi_segment(3);
    let segs = segments(&vfs, Path::new(DB));
    let f = flip_body_byte(&vfs, &segs[0], 1);
    let mut report = RecoveryReport::default();
    let r = pwal::recover_and_open_with_vfs(
        Arc::new(vfs.clone()),
        Path::new(DB),
        &opts(64 << 10),
        &ReplayOptions::default(),
        Box::new(|_| true),
        &mut report,
    );
    assert!(matches!(r, Err(Error::Corrupt { .. })));
    assert_eq!(report.damage_file.as_deref(), Some(segs[0].as_path()));
    assert_eq!(
        (report.damage_offset, report.damage_epoch),
        (f.start, f.epoch)
    );
    assert_eq!(report.last_epoch, f.epoch - 1);
    assert_eq!(segments(&vfs, Path::new(DB)), segs);
}

#[test]
fn the_report_describes_corruption_on_failure() {
    let (vfs, _) = multi_segment(2);
    let segs = segments(&vfs, Path::new(DB));
    let f = flip_body_byte(&vfs, &segs[1], 0);
    let mut report = RecoveryReport::default();
    let r = pwal::recover_with_vfs(
        &vfs,
        Path::new(DB),
        &pwal::RecoverOptions::default(),
        &mut |_| true,
        &mut report,
    );
    assert!(matches!(r, Err(Error::Corrupt { .. })));
    assert!(report.damage.as_deref().unwrap().contains("offset"));
    assert_eq!(report.damage_file.as_deref(), Some(segs[1].as_path()));
    assert_eq!(report.damage_offset, f.start);
    assert_eq!(report.damage_epoch, f.epoch);
    assert_eq!(report.last_epoch, f.epoch - 1, "what was replayed before");
}

/// One segment: epochs 1..=5, a checkpoint through 3, epochs 6..=7 (the
/// first of which carries the mark, synced).
fn checkpointed_log() -> SimVfs {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, 1 << 20).unwrap();
    for _ in 0..5 {
        j.commit(&log, j.next_id()).unwrap();
    }
    log.checkpoint(3).unwrap();
    for _ in 0..2 {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    vfs
}

#[test]
fn checkpointed_epochs_are_validated_but_never_replayed() {
    let vfs = checkpointed_log();
    let r = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(r.report.checkpoint_epoch, 3);
    let epochs: Vec<u64> = r.order.iter().map(|o| o.0).collect();
    assert_eq!(epochs.first(), Some(&4), "{epochs:?}");
    assert!(epochs.iter().all(|&e| e > 3));
    // The frames of epochs 1..=3 are still on disk, read and validated.
    assert_eq!(r.report.first_epoch, 1);
    assert_eq!(r.report.epochs, r.report.last_epoch);

    // Damage in a checkpointed epoch is reported, where it lies, but costs
    // nothing: those pages are in the database, and every epoch after the
    // mark is still replayed.
    let seg = segments(&vfs, Path::new(DB)).pop().unwrap();
    let f = flip_body_byte(&vfs, &seg, 1);
    assert_eq!(f.epoch, 2);
    let d = recover(&vfs, Path::new(DB)).expect("damage at or below the mark is not corruption");
    assert_eq!(d.report.damage_offset, f.start);
    assert_eq!(d.report.damage_epoch, 2);
    assert_eq!(d.report.damage_file.as_deref(), Some(seg.as_path()));
    let text = d.report.damage.as_deref().unwrap();
    assert!(text.contains("at or below the checkpoint mark 3"), "{text}");
    assert_eq!(d.report.checkpoint_epoch, 3);
    assert_eq!(
        d.order, r.order,
        "every epoch after the mark, as before the damage"
    );
    assert_eq!(d.report.last_epoch, r.report.last_epoch);
    // And the log opens and goes on.
    let log = open(&vfs, 1 << 20).expect("opens beside damage at or below the mark");
    log.close().unwrap();
}

#[test]
fn a_reopened_log_keeps_its_mark() {
    let vfs = checkpointed_log();
    // Reopen and close without committing: the mark is still 3.
    open(&vfs, 1 << 20).unwrap().close().unwrap();
    let r = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(r.report.checkpoint_epoch, 3);
    assert!(r.order.iter().all(|o| o.0 > 3));
}

fn submit_seq(log: &Log, id: u64, seq: u64) -> u64 {
    let page = vec![id as u8; 100];
    let frames = [Frame {
        page_number: 1 + id as u32,
        db_size_if_commit: 10,
        data: &page,
    }];
    let e = log
        .submit(&Txn {
            txn_id: id,
            commit_seq: seq,
            txn_epoch: 0,
            frames: &frames,
        })
        .unwrap();
    log.wait_durable(e, None).unwrap();
    e
}

#[test]
fn commit_sequence_inversions_are_counted_or_refused() {
    let vfs = SimVfs::new();
    let log = open(&vfs, 1 << 20).unwrap();
    let e1 = submit_seq(&log, 1, 10);
    let e2 = submit_seq(&log, 2, 5);
    let e3 = submit_seq(&log, 3, 20);
    assert!(e1 < e2 && e2 < e3);
    log.close().unwrap();

    let r = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(r.report.seq_inversions, 1);
    let ids: Vec<u64> = r.order.iter().map(|o| o.2).collect();
    assert_eq!(ids, [1, 2, 3], "epoch order, not sequence order");

    let mut got = Vec::new();
    let mut report = RecoveryReport::default();
    let mut o = ReplayOptions::default();
    o.refuse_seq_inversions = true;
    let res = pwal::replay_with_vfs(
        &vfs,
        Path::new(DB),
        &o,
        &mut |r| {
            got.push(r.txn_id);
            true
        },
        &mut report,
    );
    match res {
        Err(Error::Corrupt { what, .. }) => {
            for needle in [
                "commit sequence 5",
                &format!("epoch {e2}"),
                "sequence 10",
                &format!("epoch {e1}"),
            ] {
                assert!(what.contains(needle), "{needle}: {what}");
            }
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(got, [1], "the inverted transaction is not delivered");
    assert_eq!(report.damage_epoch, e2);
    assert!(report.damage.is_some());
}

/// Every file of the log directory (and below), with its contents.
fn files(vfs: &SimVfs) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = pwal::log_dir(Path::new(DB));
    vfs.paths()
        .into_iter()
        .filter(|p| p.starts_with(&dir))
        .filter_map(|p| vfs.contents(&p).map(|c| (p, c)))
        .collect()
}

/// Every original segment is still, whole, somewhere under `damaged/` or in
/// the log directory.
fn nothing_deleted(before: &BTreeMap<PathBuf, Vec<u8>>, vfs: &SimVfs) {
    let now = files(vfs);
    for (p, data) in before
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|x| x == "pwseg"))
    {
        let name = p.file_name().unwrap();
        let kept = now.get(p) == Some(data)
            || now.iter().any(|(q, d)| {
                q.parent().is_some_and(|d| d.ends_with("damaged"))
                    && q.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&*name.to_string_lossy())
                    && d == data
            });
        assert!(kept, "{} lost bytes", p.display());
    }
}

#[test]
fn repair_cuts_to_the_durable_prefix_and_the_log_opens_and_continues() {
    let (vfs, j) = multi_segment(3);
    let segs = segments(&vfs, Path::new(DB));
    let f = flip_body_byte(&vfs, &segs[1], 2);
    let before = files(&vfs);
    assert!(matches!(
        recover(&vfs, Path::new(DB)),
        Err(Error::Corrupt { .. })
    ));
    let prefix = recover_opts(&vfs, Path::new(DB), true).unwrap();
    assert_eq!(prefix.report.last_epoch, f.epoch - 1);

    let mut report = RecoveryReport::default();
    pwal::repair_with_vfs(&vfs, Path::new(DB), &mut report).unwrap();
    assert_eq!(
        report, prefix.report,
        "the report is the durable-prefix scan's"
    );
    nothing_deleted(&before, &vfs);
    let dir = pwal::log_dir(Path::new(DB));
    assert!(vfs
        .contents(&dir.join("damaged").join(segs[2].file_name().unwrap()))
        .is_some());
    assert!(vfs.contents(&segs[2]).is_none(), "later segments moved out");

    // Plain recovery returns exactly the prefix, with no damage.
    let plain = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(plain.batches, prefix.batches);
    assert_eq!(plain.order, prefix.order);
    assert_eq!(plain.report.damage, None);
    // Running it again changes nothing.
    let snapshot = files(&vfs);
    pwal::repair_with_vfs(&vfs, Path::new(DB), &mut report).unwrap();
    assert_eq!(files(&vfs), snapshot);

    // Open, commit, recover: the prefix and the new commit.
    let log = open(&vfs, 64 << 10).unwrap();
    j.raise_ids(1 << 30);
    let id = j.next_id();
    let e = j.commit(&log, id).unwrap();
    assert_eq!(e, f.epoch, "the log continues right after the prefix");
    log.close().unwrap();
    let after = recover(&vfs, Path::new(DB)).unwrap();
    assert_eq!(after.order.len(), prefix.order.len() + 1);
    assert_eq!(&after.order[..prefix.order.len()], &prefix.order[..]);
    assert_eq!(after.order.last().unwrap().2, id);
    nothing_deleted(&before, &vfs);
}

#[test]
fn repair_refuses_a_log_open_in_this_process() {
    let (vfs, _) = multi_segment(1);
    let log = open(&vfs, 64 << 10).unwrap();
    let mut report = RecoveryReport::default();
    assert!(matches!(
        pwal::repair_with_vfs(&vfs, Path::new(DB), &mut report),
        Err(Error::Locked(_))
    ));
    log.close().unwrap();
}

/// A segment whose header rotted, holding only epochs at or below the
/// checkpoint mark (as a crash between the mark's sync and the removal
/// leaves one), costs nothing: recovery reports it and returns every epoch
/// above the mark, and the log opens; the next checkpoint deletes it.
#[test]
fn a_rotted_header_in_front_of_checkpointed_epochs_costs_nothing() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, 64 << 10).unwrap();
    while segments(&vfs, Path::new(DB)).len() < 3 {
        j.commit(&log, j.next_id()).unwrap();
    }
    // The first segment as it is before the checkpoint removes it.
    let first = segments(&vfs, Path::new(DB)).remove(0);
    let saved = vfs.contents(&first).unwrap();
    let mark = log.durable_epoch();
    j.checkpoint(&log).unwrap();
    for _ in 0..5 {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    assert!(vfs.contents(&first).is_none(), "the checkpoint removed it");
    let clean = recover(&vfs, Path::new(DB)).unwrap();
    // Put it back (the removal never happened), with a rotted header.
    let mut rotted = saved;
    rotted[20] ^= 0x08;
    vfs.set_contents(&first, rotted);
    let r = recover(&vfs, Path::new(DB)).expect("a rotted header below the mark is not corruption");
    assert_eq!(
        r.order, clean.order,
        "every epoch above the mark, as before"
    );
    assert_eq!(r.report.checkpoint_epoch, mark);
    assert_eq!(r.report.damage_file.as_deref(), Some(first.as_path()));
    assert_eq!(r.report.damage_offset, 0);
    let text = r.report.damage.as_deref().unwrap();
    assert!(text.contains("at or below the checkpoint mark"), "{text}");
    // It opens, and a checkpoint deletes the rotted file.
    let log = open(&vfs, 64 << 10).unwrap();
    j.commit(&log, j.next_id()).unwrap();
    j.checkpoint(&log).unwrap();
    assert!(
        vfs.contents(&first).is_none(),
        "deleted by the next checkpoint"
    );
    j.close(log).unwrap();
}
