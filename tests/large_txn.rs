//! Transactions larger than one record (`MAX_RECORD_BYTES`): written in
//! parts over several epochs and segments, they are replayed whole and in
//! order, never in part after any crash, and a checkpoint below the epoch
//! that commits one keeps the segments of its first parts.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::scratch;
use pwal::io::sim::CrashMode;
use pwal::io::{SimVfs, Vfs};
use pwal::{Frame, Log, Options, RecoverOptions, SyncPolicy, Txn, MAX_RECORD_BYTES};

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Full,
        // Smaller than a part: each part's epoch goes into a segment of its
        // own, so parts span segments.
        segment_bytes: 4 << 20,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// The pages of a transaction: `count` pages of `size` bytes, each filled
/// from its transaction id and page index so that any misplaced byte shows.
fn pages(txn_id: u64, count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut x = txn_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 + 1);
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn frames(p: &[Vec<u8>]) -> Vec<Frame<'_>> {
    let n = p.len() as u32;
    p.iter()
        .enumerate()
        .map(|(i, d)| Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: if i as u32 + 1 == n { n } else { 0 },
            data: d,
        })
        .collect()
}

/// What recovery gave back: per transaction id, its epoch and its frames'
/// page numbers and data checksums, in delivery order; and the order of
/// transaction ids as delivered (each id once per contiguous run).
#[derive(Default, Debug)]
struct Seen {
    txns: std::collections::BTreeMap<u64, (u64, Vec<(u32, u32)>)>,
    runs: Vec<u64>,
}

fn recover(vfs: &dyn Vfs, db: &Path) -> pwal::Result<(Seen, pwal::RecoveryReport)> {
    let mut seen = Seen::default();
    let mut report = pwal::RecoveryReport::default();
    pwal::recover_with_vfs(
        vfs,
        db,
        &RecoverOptions::default(),
        &mut |r| {
            if seen.runs.last() != Some(&r.txn_id) {
                seen.runs.push(r.txn_id);
            }
            let e = seen.txns.entry(r.txn_id).or_insert((r.epoch, Vec::new()));
            assert_eq!(e.0, r.epoch, "one transaction delivered in two epochs");
            e.1.push((r.page_number, crc32c::crc32c(r.data)));
            true
        },
        &mut report,
    )?;
    Ok((seen, report))
}

fn expected(p: &[Vec<u8>]) -> Vec<(u32, u32)> {
    p.iter()
        .enumerate()
        .map(|(i, d)| (i as u32 + 1, crc32c::crc32c(d)))
        .collect()
}

/// The transaction `id` (its commit sequence too) of the pages `p`.
fn txn<'a>(id: u64, f: &'a [Frame<'a>]) -> Txn<'a> {
    Txn {
        txn_id: id,
        commit_seq: id,
        txn_epoch: 0,
        frames: f,
    }
}

/// Commits the pages `p` as transaction `id` and returns its epoch.
fn commit(log: &Log, id: u64, p: &[Vec<u8>]) -> u64 {
    log.commit(&txn(id, &frames(p)), None).unwrap()
}

fn small(log: &Log, id: u64) -> u64 {
    commit(log, id, &pages(id, 2, 512))
}

#[test]
fn a_transaction_of_many_parts_is_replayed_whole_in_its_commit_epoch() {
    let dir = scratch("large-round-trip");
    let db = dir.join("db");
    let log = Arc::new(Log::open(&db, &opts()).unwrap());
    // About 2.6 records' worth of 8 KiB pages: three parts.
    let count = (MAX_RECORD_BYTES * 5 / 2) / 8192 + 100;
    let big = pages(1000, count, 8192);
    let others = {
        let log = log.clone();
        std::thread::spawn(move || (1..=60).map(|id| (id, small(&log, id))).collect::<Vec<_>>())
    };
    let f = frames(&big);
    let epoch = log
        .commit(
            &Txn {
                txn_id: 1000,
                commit_seq: 1000,
                txn_epoch: 7,
                frames: &f,
            },
            None,
        )
        .unwrap();
    let others = others.join().unwrap();
    let stats = log.stats();
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    assert_eq!(
        stats.transactions, 61,
        "parts are not counted as transactions"
    );
    let segments = std::fs::read_dir(pwal::log_dir(&db))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pwseg")
        })
        .count();
    assert!(segments >= 3, "parts span segments ({segments} segments)");

    let (seen, report) = recover(&pwal::io::RealVfs, &db).unwrap();
    let (e, got) = &seen.txns[&1000];
    assert_eq!(*e, epoch, "delivered in the epoch that committed it");
    assert!(*got == expected(&big), "frames in order, bytes intact");
    for (id, e) in &others {
        assert_eq!(seen.txns[id].0, *e, "small transaction {id}");
        assert!(seen.txns[id].1 == expected(&pages(*id, 2, 512)));
    }
    assert_eq!(report.transactions, 61);
    assert_eq!(report.records, count as u64 + 120);
    // Delivered as one run, not interleaved with the others.
    assert_eq!(seen.runs.iter().filter(|&&id| id == 1000).count(), 1);
}

/// A power loss at any instant while a transaction in parts is written
/// keeps all of it (if it was acknowledged, it must) or none of it, in
/// every way the disk may have kept the unsynced writes.
#[test]
fn a_transaction_in_parts_is_all_or_nothing_at_every_crash_point() {
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let acked = Arc::new(AtomicU64::new(0));
    let a = acked.clone();
    vfs.set_crash_points(|_| true, move || a.load(Ordering::SeqCst));
    let log = Log::open_with_vfs(db, &opts(), Arc::new(vfs.clone())).unwrap();
    small(&log, 1);
    let count = (MAX_RECORD_BYTES * 2 + MAX_RECORD_BYTES / 4) / 4096;
    let big = pages(50, count, 4096);
    commit(&log, 50, &big);
    acked.store(1, Ordering::SeqCst);
    small(&log, 2);
    log.close().unwrap();
    let points = vfs.take_crash_points();
    vfs.clear_crash_points();
    assert!(points.len() > 10, "{} crash points", points.len());
    let want = expected(&big);
    let mut whole = 0;
    for p in &points {
        for mode in [
            CrashMode::DropAll,
            CrashMode::KeepAll,
            CrashMode::RandomSubset { seed: p.op },
            CrashMode::RandomTorn {
                seed: p.op,
                sector: 4096,
            },
        ] {
            let image = p.frozen.image(mode);
            let (seen, _) = recover(&image, db)
                .unwrap_or_else(|e| panic!("before operation {} ({mode:?}): {e}", p.op));
            match seen.txns.get(&50) {
                Some((_, got)) => {
                    assert!(
                        *got == want,
                        "before operation {} ({mode:?}): {} of {} frames, or frames changed",
                        p.op,
                        got.len(),
                        want.len()
                    );
                    whole += 1;
                }
                None => assert_eq!(
                    p.tag, 0,
                    "before operation {} ({mode:?}): the acknowledged transaction is gone",
                    p.op
                ),
            }
        }
    }
    assert!(whole > 0, "no crash point kept the transaction");
}

/// The engine may checkpoint through an epoch between a transaction's first
/// parts and its last: the transaction is replayed (it commits above the
/// mark), so the segments of its first parts must stay, across a reopen
/// too, until a checkpoint covers its last part.
#[test]
fn a_checkpoint_below_the_last_part_keeps_the_first_parts() {
    let dir = scratch("large-checkpoint");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    small(&log, 1);
    let count = (MAX_RECORD_BYTES * 2 + MAX_RECORD_BYTES / 2) / 4096;
    let big = pages(9, count, 4096);
    let e = commit(&log, 9, &big);
    small(&log, 10);
    log.checkpoint(e - 1).unwrap();
    log.close().unwrap();
    let (seen, report) = recover(&pwal::io::RealVfs, &db).unwrap();
    assert_eq!(report.checkpoint_epoch, e - 1);
    assert!(seen.txns.get(&9).is_some_and(|t| t.1 == expected(&big)));

    // After a reopen the pin comes from the log itself.
    let log = Log::open(&db, &opts()).unwrap();
    small(&log, 11);
    log.checkpoint(e - 1).unwrap();
    log.close().unwrap();
    let (seen, _) = recover(&pwal::io::RealVfs, &db).unwrap();
    assert!(seen.txns.get(&9).is_some_and(|t| t.1 == expected(&big)));

    // A checkpoint through its last part releases it.
    let log = Log::open(&db, &opts()).unwrap();
    let last = small(&log, 12);
    log.checkpoint(last).unwrap();
    log.close().unwrap();
    let (seen, report) = recover(&pwal::io::RealVfs, &db).unwrap();
    assert!(seen.txns.is_empty(), "{:?}", seen.txns.keys());
    assert_eq!(report.checkpoint_epoch, last);
    let segments = std::fs::read_dir(pwal::log_dir(&db))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pwseg")
        })
        .count();
    assert_eq!(segments, 1, "the released segments were removed");
}

/// A transaction larger than the limit is refused before anything is
/// written, naming the limit.
#[test]
fn a_transaction_over_the_limit_is_refused() {
    let dir = scratch("large-limit");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    let page = vec![1u8; pwal::MAX_PAGE_BYTES];
    let n = pwal::MAX_TXN_BYTES / pwal::MAX_PAGE_BYTES + 1;
    let f: Vec<Frame<'_>> = (0..n)
        .map(|i| Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: 0,
            data: &page,
        })
        .collect();
    let err = log
        .submit(&Txn {
            txn_id: 1,
            commit_seq: 1,
            txn_epoch: 0,
            frames: &f,
        })
        .unwrap_err();
    assert!(
        err.to_string().contains(&pwal::MAX_TXN_BYTES.to_string()),
        "{err}"
    );
    assert_eq!(log.stats().bytes_written, 0);
    log.close().unwrap();
}

/// An attempt that never committed leaves parts behind; once a checkpoint
/// removed the first of them (nothing pins an attempt that did not commit),
/// the rest are leftovers, not damage: recovery and open go on, and every
/// acknowledged transaction is there.
#[test]
fn leftover_parts_of_an_attempt_that_never_committed_are_not_damage_after_a_checkpoint() {
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    // The tag of each crash point: how many epochs were durable then.
    let durable = Arc::new(AtomicU64::new(0));
    let d = durable.clone();
    let traced = Options {
        trace: Some(pwal::Tracer::new(move |e| {
            if e.kind == pwal::TraceKind::EpochDurable {
                d.store(e.epoch, Ordering::SeqCst);
            }
        })),
        ..opts()
    };
    let d = durable.clone();
    vfs.set_crash_points(|_| true, move || d.load(Ordering::SeqCst));
    let log = Log::open_with_vfs(db, &traced, Arc::new(vfs.clone())).unwrap();
    let e1 = small(&log, 1);
    let count = (MAX_RECORD_BYTES * 3 + MAX_RECORD_BYTES / 2) / 4096;
    let big = pages(50, count, 4096);
    let last = commit(&log, 50, &big);
    log.close().unwrap();
    let points = vfs.take_crash_points();
    vfs.clear_crash_points();
    assert!(
        last >= e1 + 4,
        "four parts in their own epochs: {e1}..{last}"
    );
    // A process crash once the first two parts were durable, before the last.
    let p = points
        .iter()
        .find(|p| p.tag == e1 + 2)
        .expect("a crash point with two parts durable");
    let image = p.frozen.image(CrashMode::KeepAll);
    let log = Log::open_with_vfs(db, &opts(), Arc::new(image.clone())).unwrap();
    let a = small(&log, 60);
    small(&log, 61);
    // Through the first part's epoch: its segment goes, the second part's
    // stays.
    log.checkpoint(e1 + 1).unwrap();
    log.close().unwrap();
    let (seen, report) = recover(&image, db).expect("leftover parts are not damage");
    assert!(report.damage.is_none(), "{:?}", report.damage);
    assert!(!seen.txns.contains_key(&50), "the attempt never committed");
    assert_eq!(seen.txns[&60].0, a);
    assert!(seen.txns.contains_key(&61));
    // And the log opens.
    Log::open_with_vfs(db, &opts(), Arc::new(image))
        .unwrap()
        .close()
        .unwrap();
}

/// Two transactions in parts under the same ids, one after the other from
/// one thread: the second's first part may share an epoch with the first's
/// last part, and each is replayed whole, in order, never spliced.
#[test]
fn two_transactions_in_parts_under_the_same_ids_stay_two() {
    let dir = scratch("large-same-ids");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    let count = (MAX_RECORD_BYTES * 3 / 2) / 4096;
    let a = pages(1, count, 4096);
    let b = pages(2, count, 4096);
    let mut epochs = Vec::new();
    for p in [&a, &b] {
        let f = frames(p);
        epochs.push(
            log.submit(&Txn {
                txn_id: 7,
                commit_seq: 7,
                txn_epoch: 0,
                frames: &f,
            })
            .unwrap(),
        );
    }
    log.flush(None).unwrap();
    log.close().unwrap();
    let mut got: Vec<(u64, Vec<(u32, u32)>)> = Vec::new();
    let mut report = pwal::RecoveryReport::default();
    pwal::recover_with_vfs(
        &pwal::io::RealVfs,
        &db,
        &RecoverOptions::default(),
        &mut |r| {
            if r.page_number == 1 {
                got.push((r.epoch, Vec::new()));
            }
            got.last_mut()
                .unwrap()
                .1
                .push((r.page_number, crc32c::crc32c(r.data)));
            true
        },
        &mut report,
    )
    .unwrap();
    assert_eq!(report.transactions, 2);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[1].0), (epochs[0], epochs[1]));
    assert!(got[0].1 == expected(&a), "the first whole");
    assert!(got[1].1 == expected(&b), "the second whole");
}

/// A writer that starts a transaction in parts while a seal is between
/// moving the filling epoch on and swapping the lanes appends its first
/// part to the epoch being sealed, one below the filling one: the pin must
/// cover it, or a checkpoint through that epoch removes the first part of a
/// transaction recovery then replays.
#[test]
fn the_pin_covers_a_first_part_appended_while_a_seal_swaps_the_lanes() {
    let dir = scratch("large-pin-race");
    let db = dir.join("db");
    let log = Arc::new(Log::open(&db, &Options { lanes: 1, ..opts() }).unwrap());
    small(&log, 1);
    // Something in the filling epoch, then a seal that pauses after moving
    // the filling epoch on.
    let p = pages(2, 1, 512);
    let f = frames(&p);
    let e2 = log
        .submit(&Txn {
            txn_id: 2,
            commit_seq: 2,
            txn_epoch: 0,
            frames: &f,
        })
        .unwrap();
    log.debug_inject_seal_pause(300);
    let sealer = {
        let log = log.clone();
        std::thread::spawn(move || log.flush(None).unwrap())
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let count = (MAX_RECORD_BYTES * 2 + MAX_RECORD_BYTES / 2) / 4096;
    let big = pages(9, count, 4096);
    let last = commit(&log, 9, &big);
    sealer.join().unwrap();
    assert!(last > e2 + 1);
    log.checkpoint(e2).unwrap();
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    let (seen, _) = recover(&pwal::io::RealVfs, &db).expect("the first part was kept");
    assert!(seen.txns.get(&9).is_some_and(|t| t.1 == expected(&big)));
}
