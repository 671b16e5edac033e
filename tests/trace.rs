//! The trace callback: every durable epoch exactly once, in order, before
//! close returns, with its transactions; segments, checkpoints, fallback and
//! poisoning reported as they happen.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use pwal::io::sim::{Fault, FaultKind, FaultOp};
use pwal::io::SimVfs;
use pwal::{Frame, Log, Mode, Options, SyncPolicy, TraceKind, Tracer, Txn};

type Events = Arc<Mutex<Vec<(TraceKind, u64, u64, u64, String)>>>;

fn traced(events: &Events) -> Options {
    let ev = events.clone();
    Options {
        sync: SyncPolicy::Full,
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        trace: Some(Tracer::new(move |e| {
            ev.lock().unwrap().push((
                e.kind,
                e.epoch,
                e.transactions,
                e.bytes,
                e.detail.to_string(),
            ));
        })),
        ..Options::default()
    }
}

fn txn_of(id: u64, page: &[u8]) -> (u64, Vec<Frame<'_>>) {
    (
        id,
        vec![Frame {
            page_number: id as u32 + 1,
            db_size_if_commit: 1,
            data: page,
        }],
    )
}

fn commit(log: &Log, id: u64, page: &[u8]) -> pwal::Result<u64> {
    let (id, frames) = txn_of(id, page);
    log.commit(
        &Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: 0,
            frames: &frames,
        },
        None,
    )
}

#[test]
fn every_durable_epoch_is_traced_once_in_order_before_close_returns() {
    let events: Events = Arc::default();
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let log = Arc::new(Log::open_with_vfs(db, &traced(&events), Arc::new(vfs.clone())).unwrap());
    let page = vec![3u8; 4000];
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let log = log.clone();
            let page = page.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    commit(&log, t * 1000 + i, &page).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mark = log.stats().durable_epoch;
    log.checkpoint(mark).unwrap();
    commit(&log, 9999, &page).unwrap();
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();

    let ev = events.lock().unwrap().clone();
    let durable: Vec<_> = ev
        .iter()
        .filter(|e| e.0 == TraceKind::EpochDurable)
        .collect();
    let epochs: Vec<u64> = durable.iter().map(|e| e.1).collect();
    let want: Vec<u64> = (1..=epochs.len() as u64).collect();
    assert_eq!(epochs, want, "each epoch once, in order, from the first");
    let txns: u64 = durable.iter().map(|e| e.2).sum();
    assert_eq!(
        txns, 181,
        "every transaction in the epoch that made it durable"
    );
    assert!(durable.iter().all(|e| e.3 > 0), "an epoch's bytes");
    let count = |k| ev.iter().filter(|e| e.0 == k).count();
    assert!(count(TraceKind::SegmentCreated) >= 2, "{ev:?}");
    assert!(
        count(TraceKind::SegmentRecycled) + count(TraceKind::SegmentDeleted) >= 1,
        "the checkpoint removed segments"
    );
    let cps: Vec<_> = ev.iter().filter(|e| e.0 == TraceKind::Checkpoint).collect();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].1, mark);
    assert_eq!(count(TraceKind::Poisoned), 0);
}

#[test]
fn poisoning_and_fallback_are_traced() {
    let events: Events = Arc::default();
    let vfs = SimVfs::new();
    let db = Path::new("/sim/db");
    let opts = Options {
        mode: Mode::ShadowCompare,
        ..traced(&events)
    };
    let log = Log::open_with_vfs(db, &opts, Arc::new(vfs.clone())).unwrap();
    let page = vec![1u8; 100];
    commit(&log, 1, &page).unwrap();
    log.debug_inject_lane_encoding_fault();
    commit(&log, 2, &page).unwrap();
    let (_, syncs, _) = vfs.op_counts();
    vfs.inject(Fault {
        op: FaultOp::Sync,
        at_op: syncs + 1,
        persistent: true,
        kind: FaultKind::Eio,
    });
    assert!(commit(&log, 3, &page).is_err());
    let _ = log.close();
    let ev = events.lock().unwrap().clone();
    let fallback: Vec<_> = ev.iter().filter(|e| e.0 == TraceKind::Fallback).collect();
    assert_eq!(fallback.len(), 1, "{ev:?}");
    assert!(fallback[0].4.contains("transaction 2"), "{:?}", fallback[0]);
    let poisoned: Vec<_> = ev.iter().filter(|e| e.0 == TraceKind::Poisoned).collect();
    assert_eq!(
        poisoned.len(),
        1,
        "once, however many calls fail after: {ev:?}"
    );
    assert!(poisoned[0].4.contains("fdatasync"), "{:?}", poisoned[0]);
    let last_durable = ev
        .iter()
        .filter(|e| e.0 == TraceKind::EpochDurable)
        .map(|e| e.1)
        .max()
        .unwrap();
    assert_eq!(
        poisoned[0].1,
        last_durable + 1,
        "the first epoch not acknowledged"
    );
}

/// A durable epoch's event carries the commit-sequence range of its
/// transactions and the number of lanes that held a record in it.
#[test]
fn a_durable_epoch_carries_its_commit_sequence_range_and_lane_count() {
    type Durable = Arc<Mutex<Vec<(u64, u64, u64, u64, u32)>>>;
    let seen: Durable = Arc::default();
    let ev = seen.clone();
    let opts = Options {
        sync: SyncPolicy::Full,
        lanes: 2,
        use_env: false,
        trace: Some(Tracer::new(move |e| {
            if e.kind == TraceKind::EpochDurable {
                let t = (
                    e.epoch,
                    e.transactions,
                    e.first_commit_seq,
                    e.last_commit_seq,
                    e.lanes,
                );
                ev.lock().unwrap().push(t);
            }
        })),
        ..Options::default()
    };
    let vfs = SimVfs::new();
    let log = Arc::new(Log::open_with_vfs(Path::new("/sim/db"), &opts, Arc::new(vfs)).unwrap());
    let page = vec![5u8; 1000];
    let writers: Vec<_> = (1..=3u64)
        .map(|t| {
            let (log, page) = (log.clone(), page.clone());
            std::thread::spawn(move || {
                (0..40)
                    .map(|i| {
                        let id = t * 1000 + i;
                        (id, commit(&log, id, &page).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let committed: Vec<(u64, u64)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    let seen = seen.lock().unwrap().clone();
    for &(id, epoch) in &committed {
        let &(_, n, first, last, lanes) = seen.iter().find(|e| e.0 == epoch).unwrap();
        assert!(
            n > 0 && (1..=2).contains(&lanes),
            "epoch {epoch}: {n} txns, {lanes} lanes"
        );
        assert!(
            first <= id && id <= last,
            "seq {id} outside {first}..={last} of epoch {epoch}"
        );
    }
    for &(epoch, n, first, last, lanes) in &seen {
        if n == 0 {
            assert_eq!((first, last, lanes), (0, 0, 0), "empty epoch {epoch}");
        }
        let inside = committed
            .iter()
            .filter(|&&(id, _)| id >= first && id <= last)
            .count();
        assert!(
            inside as u64 >= n,
            "epoch {epoch}: {n} txns in a range of {inside}"
        );
    }
}
