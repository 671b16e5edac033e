//! Behaviour of the safe Rust core, one behaviour per test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pwal::io::sim::{CrashMode, Fault, FaultKind, FaultOp};
use pwal::io::{SimVfs, Vfs};
use pwal::{
    log_dir, recover, recover_with_vfs, Error, FallbackReason, Frame, Log, Mode, Options,
    RecoverOptions, RecoveryReport, SyncPolicy, Txn,
};

fn scratch(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "core-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db")
}

fn opts() -> Options {
    Options {
        segment_bytes: 256 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// Deterministic page contents for (transaction, frame).
fn page(txn: u64, frame: u32, len: usize) -> Vec<u8> {
    let mut x = txn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ frame as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A recovered transaction: its epoch, commit sequence and (page, bytes).
#[derive(Debug, PartialEq, Eq, Clone)]
struct Got {
    epoch: u64,
    seq: u64,
    frames: Vec<(u32, u32, Vec<u8>)>,
}

/// Groups recovered records by transaction (checking none spans two
/// epochs) and keeps the order transactions were first seen in.
fn collect(recs: Vec<(u64, u64, u64, u32, u32, Vec<u8>)>) -> (BTreeMap<u64, Got>, Vec<u64>) {
    let mut by_txn: BTreeMap<u64, Got> = BTreeMap::new();
    let mut order = Vec::new();
    for (epoch, txn, seq, pg, db, data) in recs {
        let g = by_txn.entry(txn).or_insert_with(|| {
            order.push(txn);
            Got {
                epoch,
                seq,
                frames: vec![],
            }
        });
        assert_eq!(g.epoch, epoch, "transaction {txn} spans two epochs");
        g.frames.push((pg, db, data));
    }
    (by_txn, order)
}

type Recovered = (BTreeMap<u64, Got>, Vec<u64>, RecoveryReport);

fn recover_all(vfs: Option<&dyn Vfs>, db: &Path, prefix: bool) -> pwal::Result<Recovered> {
    let mut recs = Vec::new();
    let mut report = RecoveryReport::default();
    let o = RecoverOptions {
        durable_prefix: prefix,
    };
    let mut cb = |r: &pwal::Record<'_>| {
        recs.push((
            r.epoch,
            r.txn_id,
            r.commit_seq,
            r.page_number,
            r.db_size_if_commit,
            r.data.to_vec(),
        ));
        true
    };
    let r = match vfs {
        Some(v) => recover_with_vfs(v, db, &o, &mut cb, &mut report),
        None => pwal::recover_into(db, &o, &mut cb, &mut report),
    };
    r?;
    let (m, order) = collect(recs);
    Ok((m, order, report))
}

fn txn_frames(id: u64, pages: u32, len: usize) -> Vec<(u32, u32, Vec<u8>)> {
    (0..pages)
        .map(|f| {
            (
                1 + ((id as u32 * 7 + f) % 1000),
                if f + 1 == pages { 1000 } else { 0 },
                page(id, f, len),
            )
        })
        .collect()
}

fn submit_owned(log: &Log, id: u64, seq: u64, frames: &[(u32, u32, Vec<u8>)]) -> pwal::Result<u64> {
    let fr: Vec<Frame<'_>> = frames
        .iter()
        .map(|(p, d, b)| Frame {
            page_number: *p,
            db_size_if_commit: *d,
            data: b,
        })
        .collect();
    log.submit(&Txn {
        txn_id: id,
        commit_seq: seq,
        txn_epoch: 0,
        frames: &fr,
    })
}

/// What a writer was told: transaction id -> (epoch, commit sequence, frames).
type Acked = BTreeMap<u64, (u64, u64, Vec<(u32, u32, Vec<u8>)>)>;

/// Checks a recovery against what was acknowledged: every recovered
/// transaction was acknowledged, in the epoch and with the commit sequence
/// and bytes it was acknowledged with; every acknowledged one in an epoch
/// after `checkpointed` is there; replay order is epoch, then commit
/// sequence.
fn check_against_acked(got: &BTreeMap<u64, Got>, order: &[u64], acked: &Acked, checkpointed: u64) {
    for (id, g) in got {
        let (e, s, frames) = acked
            .get(id)
            .unwrap_or_else(|| panic!("txn {id} was recovered but never acknowledged"));
        assert_eq!((g.epoch, g.seq), (*e, *s), "txn {id}: epoch and sequence");
        assert_eq!(&g.frames, frames, "txn {id}: recovered bytes differ");
    }
    for (id, (e, _, _)) in acked {
        if *e > checkpointed {
            assert!(
                got.contains_key(id),
                "acknowledged txn {id} (epoch {e}, after checkpoint {checkpointed}) is missing"
            );
        }
    }
    let keys: Vec<(u64, u64)> = order
        .iter()
        .map(|id| (got[id].epoch, got[id].seq))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "replay order is not epoch, then commit sequence"
    );
}

#[test]
fn many_threads_commit_and_recovery_returns_every_acknowledged_batch_in_order() {
    let db = scratch("many");
    let log = Arc::new(Log::open(&db, &Options { lanes: 4, ..opts() }).unwrap());
    let seq = Arc::new(AtomicU64::new(1));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (log, seq, acked) = (log.clone(), seq.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..150u64 {
                    let id = t * 1_000_000 + i;
                    let frames = txn_frames(id, 1 + (i % 3) as u32, 512 + (i as usize * 37) % 4000);
                    // Commit sequence taken just before submit, as an engine
                    // would under its commit lock.
                    let s = seq.fetch_add(1, Ordering::SeqCst);
                    let e = submit_owned(&log, id, s, &frames).unwrap();
                    log.wait_durable(e, None).unwrap();
                    acked.lock().unwrap().insert(id, (e, s, frames));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = log.stats();
    assert_eq!(stats.transactions, 1200);
    assert!(stats.syncs >= stats.epochs, "sync=full syncs every epoch");
    assert_eq!(log.durable_commit_seq(), 1200);
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();

    let (got, order, report) = recover_all(None, &db, false).unwrap();
    let acked = acked.lock().unwrap();
    assert_eq!(got.len(), acked.len());
    for (id, (e, s, frames)) in acked.iter() {
        let g = &got[id];
        assert_eq!((g.epoch, g.seq), (*e, *s), "txn {id}");
        assert_eq!(&g.frames, frames, "txn {id} bytes differ");
    }
    // Replay order: epoch, then commit sequence.
    let keys: Vec<(u64, u64)> = order
        .iter()
        .map(|id| (got[id].epoch, got[id].seq))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(report.transactions, 1200);
    assert_eq!(report.first_epoch, 1);
    assert_eq!(report.epochs, report.last_epoch, "gap-free from 1");
    assert!(report.segments > 1, "small segments roll over");
    assert_eq!(report.torn_tail_bytes, 0);
}

#[test]
fn reopen_continues_epochs_and_keeps_earlier_files() {
    let db = scratch("reopen");
    let frames = txn_frames(1, 1, 4096);
    let log = Log::open(&db, &opts()).unwrap();
    let e1 = submit_owned(&log, 1, 1, &frames).unwrap();
    log.wait_durable(e1, None).unwrap();
    log.close().unwrap();
    let files_before = segment_files(&db);

    let log = Log::open(&db, &opts()).unwrap();
    let e2 = submit_owned(&log, 2, 2, &frames).unwrap();
    log.wait_durable(e2, None).unwrap();
    assert!(e2 > e1, "epoch {e2} does not continue after {e1}");
    log.close().unwrap();
    for f in files_before {
        assert!(f.exists(), "{f:?} vanished on reopen");
    }
    let (got, _, report) = recover_all(None, &db, false).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[&1].epoch, e1);
    assert_eq!(got[&2].epoch, e2);
    assert_eq!(report.torn_tail_bytes, 0);
}

fn segment_files(db: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(log_dir(db))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pwseg"))
        .collect();
    v.sort();
    v
}

/// Commits `n` one-page transactions, one epoch each; returns the log size.
fn write_epochs(db: &Path, n: u64) {
    write_epochs_with(db, n, true)
}

/// `close_proof: false` leaves the log as a process that died right after
/// its last sync leaves it: no frame vouches for the last epoch.
fn write_epochs_with(db: &Path, n: u64, close_proof: bool) {
    let o = Options {
        close_proof,
        ..opts()
    };
    let log = Log::open(db, &o).unwrap();
    for i in 1..=n {
        let f = txn_frames(i, 1, 1000);
        let e = submit_owned(&log, i, i, &f).unwrap();
        log.wait_durable(e, None).unwrap();
    }
    log.close().unwrap();
}

fn poke(path: &Path, offset: u64, f: impl FnOnce(u8) -> u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, offset).unwrap();
    file.write_all_at(&[f(b[0])], offset).unwrap();
}

const FRAME_1000: u64 = 80 + 4 * 2 + 4 + 44 + 12 + 1000;

#[test]
fn torn_tail_is_discarded_and_reported() {
    let db = scratch("torn");
    write_epochs_with(&db, 3, false);
    let seg = segment_files(&db).pop().unwrap();
    let frame = FRAME_1000;
    // Damage the middle of the last frame: nothing valid follows it.
    poke(&seg, 4096 + 2 * frame + frame / 2, |b| !b);
    let (got, _, report) = recover_all(None, &db, false).unwrap();
    assert_eq!(got.len(), 2, "the torn epoch is dropped whole");
    assert_eq!(report.last_epoch, 2);
    assert!(report.torn_tail_bytes > 0);
    assert!(
        report.damage.as_deref().unwrap().contains("torn tail"),
        "{:?}",
        report.damage
    );
}

/// After a clean close nothing was torn: the close wrote a frame vouching
/// for the last epoch, so rot there is corruption (the durable prefix keeps
/// the epochs before it), not a silently dropped torn tail.
#[test]
fn rot_in_the_last_epoch_of_a_cleanly_closed_log_is_corruption() {
    let db = scratch("closed-rot");
    write_epochs(&db, 3);
    let seg = segment_files(&db).pop().unwrap();
    let frame = FRAME_1000;
    poke(&seg, 4096 + 2 * frame + frame / 2, |b| !b);
    match recover_all(None, &db, false) {
        Err(Error::Corrupt { file, what, .. }) => {
            assert_eq!(file, seg);
            assert!(
                what.contains("records every epoch through 3 as synced"),
                "{what}"
            );
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let (got, _, report) = recover_all(None, &db, true).unwrap();
    assert_eq!(
        got.len(),
        2,
        "the durable prefix keeps the epochs before it"
    );
    assert_eq!(report.last_epoch, 2);
    assert_eq!(report.damage_epoch, 3);
}

#[test]
fn bit_flip_before_valid_data_is_corruption_naming_file_and_offset() {
    let db = scratch("flip");
    write_epochs(&db, 3);
    let seg = segment_files(&db).pop().unwrap();
    poke(&seg, 4096 + 200, |b| b ^ 0x10); // inside the first frame's page
    let err = recover_all(None, &db, false).unwrap_err();
    match &err {
        Error::Corrupt { file, offset, what } => {
            assert_eq!(file, &seg);
            assert_eq!(*offset, 4096);
            assert!(what.contains("checksum"), "{what}");
        }
        other => panic!("expected corruption, got {other}"),
    }

    // Durable-prefix mode returns what precedes the damage and reports the rest.
    let (got, _, report) = recover_all(None, &db, true).unwrap();
    assert!(got.is_empty());
    assert_eq!(report.skipped_segments, 1);
    assert!(report.skipped_bytes > 0);
    assert!(report.damage.unwrap().contains("offset 4096"));
}

#[test]
fn invalid_batches_are_rejected_before_anything_is_written() {
    let db = scratch("invalid");
    let log = Log::open(&db, &opts()).unwrap();
    let big = vec![0u8; 65537];
    let small = vec![1u8; 10];
    let cases: Vec<(Vec<Frame<'_>>, &str)> = vec![
        (
            vec![Frame {
                page_number: 1,
                db_size_if_commit: 0,
                data: &big,
            }],
            "65536",
        ),
        (
            vec![Frame {
                page_number: 0,
                db_size_if_commit: 0,
                data: &small,
            }],
            "page number 0",
        ),
        (
            vec![Frame {
                page_number: 1,
                db_size_if_commit: 0,
                data: &[],
            }],
            "bytes",
        ),
        (vec![], "no frames"),
    ];
    for (frames, needle) in cases {
        let err = log
            .submit(&Txn {
                txn_id: 5,
                commit_seq: 5,
                txn_epoch: 0,
                frames: &frames,
            })
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }
    // A mixed batch (one good frame, one bad) is rejected whole.
    let mixed = [
        Frame {
            page_number: 3,
            db_size_if_commit: 0,
            data: &small,
        },
        Frame {
            page_number: 0,
            db_size_if_commit: 3,
            data: &small,
        },
    ];
    assert!(log
        .submit(&Txn {
            txn_id: 6,
            commit_seq: 6,
            txn_epoch: 0,
            frames: &mixed
        })
        .is_err());
    assert!(log.stats().lane_backlog_bytes.iter().all(|&b| b == 0));
    let err = log
        .wait_durable(1_000_000, Some(Duration::from_millis(1)))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    log.close().unwrap();
    let (got, _, _) = recover_all(None, &db, false).unwrap();
    assert!(got.is_empty());
}

fn sim_db() -> (SimVfs, PathBuf) {
    (SimVfs::new(), PathBuf::from("/sim/db"))
}

#[test]
fn failed_sync_poisons_the_log_and_nothing_after_is_acknowledged() {
    let (vfs, db) = sim_db();
    let log = Log::open_with_vfs(&db, &opts(), Arc::new(vfs.clone())).unwrap();
    let f = txn_frames(1, 1, 100);
    log.wait_durable(submit_owned(&log, 1, 1, &f).unwrap(), None)
        .unwrap();
    let (_, syncs, _) = vfs.op_counts();
    // Every sync fails from now on (the preallocation thread may sync too).
    vfs.inject(Fault {
        op: FaultOp::Sync,
        at_op: syncs + 1,
        persistent: true,
        kind: FaultKind::SyncFailDropped,
    });
    let e = submit_owned(&log, 2, 2, &f).unwrap();
    let err = log.wait_durable(e, None).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }),
        "the waiter gets an I/O error: {err}"
    );
    // The device works again; the log stays failed anyway: a retried fsync
    // could report success for pages that were dropped (fsyncgate).
    vfs.clear_faults();
    let err = submit_owned(&log, 3, 3, &f).unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(log.stats().poisoned);
    assert!(matches!(log.checkpoint(0), Err(Error::Poisoned(_))));
    assert!(matches!(log.close(), Err(Error::Poisoned(_))));

    let after = vfs.crash(CrashMode::KeepAll);
    let (got, _, _) = recover_all(Some(&after), &db, false).unwrap();
    assert!(got.contains_key(&1));
    assert!(!got.contains_key(&3));
    // Reopening runs recovery and continues.
    let log = Log::open_with_vfs(&db, &opts(), Arc::new(after.clone())).unwrap();
    log.wait_durable(submit_owned(&log, 4, 4, &f).unwrap(), None)
        .unwrap();
    log.close().unwrap();
}

#[test]
fn failed_write_poisons_the_log() {
    let (vfs, db) = sim_db();
    let log = Log::open_with_vfs(&db, &opts(), Arc::new(vfs.clone())).unwrap();
    let f = txn_frames(1, 1, 100);
    log.wait_durable(submit_owned(&log, 1, 1, &f).unwrap(), None)
        .unwrap();
    let (w, _, _) = vfs.op_counts();
    vfs.inject(Fault {
        op: FaultOp::Write,
        at_op: w + 1,
        persistent: true,
        kind: FaultKind::Enospc,
    });
    let e = submit_owned(&log, 2, 2, &f).unwrap();
    let err = log.wait_durable(e, None).unwrap_err();
    assert!(err.to_string().contains("No space"), "{err}");
    assert!(matches!(
        submit_owned(&log, 3, 3, &f),
        Err(Error::Poisoned(_))
    ));
    let _ = log.close();
}

#[test]
fn sync_policies_differ_in_what_a_power_loss_keeps() {
    for (sync, survives) in [
        (SyncPolicy::Full, true),
        (SyncPolicy::Normal, false),
        (SyncPolicy::Off, false),
    ] {
        let (vfs, db) = sim_db();
        // The background sync under normal is pushed to its longest
        // interval, so nothing here depends on how soon the test thread gets
        // to the power loss.
        let o = Options {
            sync,
            normal_sync_interval: Duration::from_secs(10), // the longest allowed
            ..opts()
        };
        let log = Log::open_with_vfs(&db, &o, Arc::new(vfs.clone())).unwrap();
        let f = txn_frames(1, 1, 100);
        log.wait_durable(submit_owned(&log, 1, 1, &f).unwrap(), None)
            .unwrap();
        let lost = vfs.crash(CrashMode::DropAll);
        let (got, _, _) = recover_all(Some(&lost), &db, false).unwrap();
        assert_eq!(got.contains_key(&1), survives, "{sync:?}");
        // A process crash leaves what the OS has: every policy writes to the
        // OS before acknowledging.
        let (got, _, _) = recover_all(Some(&vfs), &db, false).unwrap();
        assert!(got.contains_key(&1), "{sync:?} acknowledged before writing");
        let syncs = log.stats().syncs;
        match sync {
            SyncPolicy::Full => assert!(syncs >= 1),
            SyncPolicy::Normal | SyncPolicy::Off => {
                assert_eq!(syncs, 0, "{sync:?} synced on the commit path")
            }
        }
        log.close().unwrap();
        if sync == SyncPolicy::Normal {
            let closed = vfs.crash(CrashMode::DropAll);
            let (got, _, _) = recover_all(Some(&closed), &db, false).unwrap();
            assert!(got.contains_key(&1), "normal syncs at close");
        }
    }
}

#[test]
fn a_second_open_in_one_process_shares_the_coordinator() {
    let db = scratch("share");
    let a = Log::open(&db, &opts()).unwrap();
    let b = Log::open(&db, &opts()).unwrap();
    let f = txn_frames(1, 1, 100);
    let e = submit_owned(&a, 1, 1, &f).unwrap();
    b.wait_durable(e, None).unwrap();
    assert_eq!(a.stats().transactions, b.stats().transactions);
    a.close().unwrap();
    // b still works after a closed.
    let e = submit_owned(&b, 2, 2, &f).unwrap();
    b.wait_durable(e, None).unwrap();
    b.close().unwrap();
    let (got, _, _) = recover_all(None, &db, false).unwrap();
    assert_eq!(got.len(), 2);
}

#[test]
fn a_second_process_gets_a_locked_error() {
    if let Ok(db) = std::env::var("PWAL_TEST_LOCK_CHILD") {
        // Child side: the parent holds the log.
        match Log::open(&db, &opts()) {
            Err(Error::Locked(msg)) => {
                assert!(msg.contains("LOCK"), "{msg}");
                match recover(&db, &RecoverOptions::default(), |_| true) {
                    Err(Error::Locked(_)) => std::process::exit(42),
                    other => panic!("recover: expected Locked, got {other:?}"),
                }
            }
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
    }
    let db = scratch("lock");
    let log = Log::open(&db, &opts()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_gets_a_locked_error",
            "--nocapture",
        ])
        .env("PWAL_TEST_LOCK_CHILD", &db)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(42), "child did not see PWAL_ERR_LOCKED");
    log.close().unwrap();
    // Released at close: a new open succeeds.
    Log::open(&db, &opts()).unwrap().close().unwrap();
}

#[test]
fn checkpoint_recycles_covered_segments_while_writers_append() {
    let db = scratch("ckpt");
    let log = Arc::new(Log::open(&db, &Options { lanes: 2, ..opts() }).unwrap());
    let seq = Arc::new(AtomicU64::new(1));
    let acked = Arc::new(Mutex::new(Acked::new()));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let (log, seq, acked) = (log.clone(), seq.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut last = 0;
                while n < 300 {
                    let id = t * 1_000_000 + n;
                    let s = seq.fetch_add(1, Ordering::SeqCst);
                    let frames = txn_frames(id, 2, 4096);
                    last = submit_owned(&log, id, s, &frames).unwrap();
                    log.wait_durable(last, None).unwrap();
                    acked.lock().unwrap().insert(id, (last, s, frames));
                    n += 1;
                }
                last
            })
        })
        .collect();
    let mut checkpointed = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
        let d = log.durable_epoch();
        log.checkpoint(d).unwrap();
        checkpointed = d;
    }
    for w in writers {
        w.join().unwrap();
    }
    let st = log.stats();
    assert!(st.segments_recycled + st.segments_deleted > 0, "{st:?}");
    assert!(matches!(
        log.checkpoint(st.current_epoch + 5),
        Err(Error::Invalid(_))
    ));
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    let (got, order, report) = recover_all(None, &db, false).unwrap();
    assert!(report.first_epoch > 1, "checkpointed segments are gone");
    assert!(
        report.first_epoch <= checkpointed + 1,
        "a segment with uncovered epochs was dropped"
    );
    assert_eq!(
        report.epochs,
        report.last_epoch - report.first_epoch + 1,
        "gap-free"
    );
    // Checkpointed epochs are read but never replayed (the last checkpoint
    // may have covered every epoch: then nothing is).
    assert!(report.checkpoint_epoch > 0 && report.checkpoint_epoch <= checkpointed);
    assert!(got.values().all(|g| g.epoch > report.checkpoint_epoch));
    assert_eq!(report.torn_tail_bytes, 0, "{:?}", report.damage);
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len(), 600);
    check_against_acked(&got, &order, &acked, checkpointed);
    // Only what a checkpoint covered may be missing: the transactions
    // replayed are exactly those acknowledged in the recovered epochs above
    // the checkpoint mark.
    let in_range = acked
        .values()
        .filter(|(e, _, _)| *e >= report.first_epoch && *e > report.checkpoint_epoch)
        .count();
    assert_eq!(got.len(), in_range, "a recovered epoch lost a transaction");
}

#[test]
fn recycled_segments_never_replay_stale_frames() {
    let (vfs, db) = sim_db();
    let o = Options {
        segment_bytes: 64 << 10,
        ..opts()
    };
    let log = Log::open_with_vfs(&db, &o, Arc::new(vfs.clone())).unwrap();
    let mut id = 0;
    for round in 0..6 {
        for _ in 0..40 {
            id += 1;
            log.wait_durable(
                submit_owned(&log, id, id, &txn_frames(id, 1, 3000)).unwrap(),
                None,
            )
            .unwrap();
        }
        if round < 5 {
            log.checkpoint(log.durable_epoch()).unwrap();
        }
    }
    assert!(log.stats().segments_recycled > 0);
    log.close().unwrap();
    let (got, order, report) = recover_all(Some(&vfs), &db, false).unwrap();
    assert_eq!(report.torn_tail_bytes, 0, "{:?}", report.damage);
    assert_eq!(*order.last().unwrap(), id);
    for (id, g) in &got {
        assert_eq!(g.frames, txn_frames(*id, 1, 3000), "txn {id}");
    }
    assert_eq!(report.epochs, report.last_epoch - report.first_epoch + 1);
}

#[test]
fn shadow_compare_catches_a_divergent_lane_encoding_and_falls_back() {
    let db = scratch("shadow");
    let log = Log::open(
        &db,
        &Options {
            mode: Mode::ShadowCompare,
            shadow_compare_per_mille: 1000,
            ..opts()
        },
    )
    .unwrap();
    let f = txn_frames(1, 1, 500);
    log.wait_durable(submit_owned(&log, 1, 1, &f).unwrap(), None)
        .unwrap();
    assert_eq!(log.stats().mode, Mode::ShadowCompare);
    log.debug_inject_lane_encoding_fault();
    log.wait_durable(submit_owned(&log, 2, 2, &f).unwrap(), None)
        .unwrap();
    let st = log.stats();
    assert_eq!(st.mode, Mode::Conservative);
    assert_eq!(st.fallback, Some(FallbackReason::EncoderDivergence));
    assert!(
        st.fallback_detail.contains("transaction 2"),
        "{}",
        st.fallback_detail
    );
    assert_eq!(st.shadow_compares, 2);
    log.wait_durable(submit_owned(&log, 3, 3, &f).unwrap(), None)
        .unwrap();
    log.close().unwrap();
    let (got, _, _) = recover_all(None, &db, false).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[&2].frames, f, "the conservative bytes were logged");
}

#[test]
fn a_batch_larger_than_the_room_left_waits_for_the_next_epoch() {
    let db = scratch("bound");
    let log = Arc::new(
        Log::open(
            &db,
            &Options {
                sync: SyncPolicy::Normal,
                segment_bytes: 64 << 20,
                ..opts()
            },
        )
        .unwrap(),
    );
    // 6 threads x 3 batches of ~7 MiB: more than one 32 MiB epoch holds.
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..3u64 {
                    let id = t * 10 + i;
                    let frames = txn_frames(id, 110, 65536);
                    let e = submit_owned(&log, id, id, &frames).unwrap();
                    log.wait_durable(e, None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    let mut per_epoch: BTreeMap<u64, usize> = BTreeMap::new();
    let rep = recover(&db, &RecoverOptions::default(), |r| {
        *per_epoch.entry(r.epoch).or_default() += r.data.len();
        true
    })
    .unwrap();
    assert_eq!(rep.transactions, 18);
    for (e, bytes) in per_epoch {
        assert!(
            bytes <= pwal::MAX_EPOCH_BODY_BYTES,
            "epoch {e} holds {bytes} bytes"
        );
    }
}

#[test]
fn recovery_callback_can_stop_and_missing_log_is_empty() {
    let db = scratch("stop");
    write_epochs(&db, 3);
    let mut seen = 0;
    let mut report = RecoveryReport::default();
    let err = pwal::recover_into(
        &db,
        &RecoverOptions::default(),
        &mut |_| {
            seen += 1;
            seen < 2
        },
        &mut report,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Aborted { epoch: 2 }), "{err}");
    assert_eq!(report.epochs, 1);
    let none = recover(scratch("nothing"), &RecoverOptions::default(), |_| true).unwrap();
    assert_eq!(none, RecoveryReport::default());
}

#[test]
fn stats_report_watermarks_latencies_and_lanes() {
    let db = scratch("stats");
    let log = Log::open(&db, &Options { lanes: 3, ..opts() }).unwrap();
    for i in 1..=5u64 {
        log.commit(
            &Txn {
                txn_id: i,
                commit_seq: 10 * i,
                txn_epoch: 0,
                frames: &[Frame {
                    page_number: 1,
                    db_size_if_commit: 1,
                    data: &[7; 64],
                }],
            },
            None,
        )
        .unwrap();
    }
    let st = log.stats();
    assert_eq!(st.lanes, 3);
    assert_eq!(st.lane_backlog_bytes.len(), 3);
    assert_eq!(st.durable_commit_seq, 50);
    assert_eq!(st.durable_epoch, st.current_epoch - 1);
    assert_eq!(st.commit_wait_latency.count, 5);
    assert_eq!(st.sync_latency.count, st.syncs);
    assert!(st.sync_latency.p99_us >= st.sync_latency.p50_us);
    assert_eq!(st.txns_per_epoch.count, st.epochs);
    log.close().unwrap();
}

#[test]
fn conservative_mode_uses_one_ordered_lane() {
    let db = scratch("cons");
    let log = Arc::new(
        Log::open(
            &db,
            &Options {
                mode: Mode::Conservative,
                lanes: 4,
                ..opts()
            },
        )
        .unwrap(),
    );
    assert_eq!(log.stats().lanes, 1);
    assert_eq!(log.stats().mode, Mode::Conservative);
    // Four writers share the one lane; what they were told must come back
    // whole, in epoch then commit-sequence order, byte for byte.
    let seq = Arc::new(AtomicU64::new(1));
    let acked = Arc::new(Mutex::new(Acked::new()));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (log, seq, acked) = (log.clone(), seq.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..60u64 {
                    let id = t * 1_000_000 + i;
                    let frames = txn_frames(id, 1 + (i % 3) as u32, 300 + (i as usize * 53) % 3000);
                    let s = seq.fetch_add(1, Ordering::SeqCst);
                    let e = submit_owned(&log, id, s, &frames).unwrap();
                    log.wait_durable(e, None).unwrap();
                    acked.lock().unwrap().insert(id, (e, s, frames));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let st = log.stats();
    assert_eq!(st.lanes, 1, "conservative mode grew lanes under load");
    assert_eq!(st.mode, Mode::Conservative);
    assert_eq!(st.transactions, 240);
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();

    let (got, order, report) = recover_all(None, &db, false).unwrap();
    let acked = acked.lock().unwrap();
    assert_eq!(got.len(), acked.len(), "recovered transaction count");
    check_against_acked(&got, &order, &acked, 0);
    assert_eq!(report.transactions, 240);
    assert_eq!(report.first_epoch, 1);
    assert_eq!(report.epochs, report.last_epoch, "gap-free from 1");
    assert_eq!(report.torn_tail_bytes, 0, "{:?}", report.damage);
}

#[test]
/// A segment shorter than its 4096-byte data offset, before a later frame
/// that proves the missing epoch synced: recovery used to compute the bytes
/// skipped as `file_len - off`, which overflows (a debug build panicked, a
/// release build under-reported `skipped_bytes` in durable-prefix mode).
fn a_segment_cut_short_inside_its_header_page_is_corruption_with_a_sane_skip_count() {
    let db = scratch("short-seg");
    let o = Options {
        segment_bytes: 64 << 10,
        ..opts()
    };
    let log = Log::open(&db, &o).unwrap();
    let mut id = 0;
    while log.stats().segments_created < 3 {
        id += 1;
        let e = submit_owned(&log, id, id, &txn_frames(id, 1, 3000)).unwrap();
        log.wait_durable(e, None).unwrap();
    }
    log.close().unwrap();
    let segs = segment_files(&db);
    assert!(segs.len() >= 3, "{segs:?}");
    // Keep the first segment's 64-byte header, lose the rest of the file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .unwrap()
        .set_len(100)
        .unwrap();
    match recover_all(None, &db, false) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, segs[0]);
            assert_eq!(offset, 4096);
        }
        other => panic!("expected corruption, got {:?}", other.map(|r| r.2)),
    }
    let (got, _, report) = recover_all(None, &db, true).unwrap();
    assert!(got.is_empty(), "nothing precedes the damage");
    // Nothing of the cut segment's data area is left; the later segments'
    // data areas are skipped whole.
    let later: u64 = segs[1..]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len() - 4096)
        .sum();
    assert_eq!(report.skipped_segments, segs.len() as u64);
    assert_eq!(report.skipped_bytes, later, "bytes reported skipped");
}

/// A sampling rate below 1000 compares that many batches in every 1000 (the
/// sample is a counter, not a coin); a rate given with another mode is
/// refused, naming the field, instead of being ignored.
#[test]
fn shadow_compare_samples_its_rate_and_a_rate_without_the_mode_is_refused() {
    let db = scratch("shadow-rate");
    for per_mille in [1u32, 10, 250] {
        let dir = db.join(format!("r{per_mille}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = Log::open(
            dir.join("db"),
            &Options {
                mode: Mode::ShadowCompare,
                shadow_compare_per_mille: per_mille,
                sync: SyncPolicy::Off,
                ..opts()
            },
        )
        .unwrap();
        let f = txn_frames(1, 1, 100);
        for id in 1..=2000 {
            submit_owned(&log, id, id, &f).unwrap();
        }
        log.flush(None).unwrap();
        let st = log.stats();
        assert_eq!(st.shadow_compares, 2 * per_mille as u64, "rate {per_mille}");
        assert_eq!(st.fallback, None);
        log.close().unwrap();
    }
    for mode in [Mode::Auto, Mode::Conservative] {
        let e = Log::open(
            db.join("refused"),
            &Options {
                mode,
                shadow_compare_per_mille: 10,
                ..opts()
            },
        )
        .err()
        .expect("a rate without shadow_compare mode is refused");
        match e {
            Error::Invalid(m) => assert!(m.contains("shadow_compare_per_mille = 10"), "{m}"),
            other => panic!("expected Invalid, got {other}"),
        }
    }
}

/// Per-lane counters: every commit, byte and seal is counted on the lane
/// that took it, and a writer whose epoch is full counts a wait for room.
#[test]
fn per_lane_counters_add_up_to_the_log_counters() {
    let db = scratch("lane-counters");
    let log = Arc::new(
        Log::open(
            &db,
            &Options {
                lanes: 2,
                max_batch_bytes: 64 << 10, // the epoch holds 8 MiB at least
                ..opts()
            },
        )
        .unwrap(),
    );
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let id = t * 1000 + i + 1;
                    let f = txn_frames(id, 1, 2000);
                    log.wait_durable(submit_owned(&log, id, id, &f).unwrap(), None)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let st = log.stats();
    assert_eq!(st.lane_counters.len(), 2);
    let commits: u64 = st.lane_counters.iter().map(|l| l.commits).sum();
    assert_eq!(commits, 100);
    assert_eq!(commits, st.transactions);
    let bytes: u64 = st.lane_counters.iter().map(|l| l.bytes).sum();
    assert!(bytes >= 100 * 2000 && bytes < st.bytes_written, "{bytes}");
    let seals: u64 = st.lane_counters.iter().map(|l| l.seals).sum();
    assert!(
        seals >= st.epochs.min(100) / 2 && seals <= 2 * st.epochs,
        "{seals}"
    );
    assert!(st
        .lane_counters
        .iter()
        .all(|l| l.commits > 0 && l.seals > 0));
    // A writer that outruns the disk fills its epoch and waits for room:
    // batches of 240 KB submitted without waiting (a full epoch holds 8 MiB;
    // writing and syncing one takes far longer than copying it).
    let big = txn_frames(9000, 4, 60_000);
    let room_waits =
        |log: &Log| -> u64 { log.stats().lane_counters.iter().map(|l| l.room_waits).sum() };
    let before = room_waits(&log);
    let mut last = 0;
    let mut n = 0;
    while room_waits(&log) == before {
        n += 1;
        assert!(
            n <= 2000,
            "2000 batches of 240 KB and no writer waited for room"
        );
        last = submit_owned(&log, 9000 + n, 9000 + n, &big).unwrap();
    }
    log.wait_durable(last, None).unwrap();
    Arc::try_unwrap(log).ok().unwrap().close().unwrap();
}
