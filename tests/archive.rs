//! Archiving to a `file://` store and restoring from it (docs/ARCHIVE.md):
//! restore compared record for record with what was acknowledged (latest,
//! to an epoch, to a time), a machine loss under archive-durable commits,
//! the archive gate and the lag bound while the store is down, create-only
//! conflicts, damaged and missing objects, and a reopen that neither loses
//! nor repeats what was archived. The same against an S3 server is
//! `tests/archive_s3.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use pwal::archive::{RestoreTarget, STATE_FILE};
use pwal::{Error, Log, Options, SyncPolicy};

fn opts(url: &str) -> Options {
    Options {
        sync: SyncPolicy::Full,
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        archive_url: url.to_string(),
        ..Options::default()
    }
}

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Polls `cond` until it holds or a generous limit passes (the limit only
/// bounds a failing run; nothing asserts how long it took).
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Checks that the log of `db` recovers exactly the batches of `acked`
/// (id -> epoch), each byte for byte as `frames_of` made it, in its epoch.
fn assert_recovers_exactly(db: &Path, acked: &BTreeMap<u64, u64>) {
    let r = recover(&pwal::io::RealVfs, db).unwrap();
    let got: Vec<u64> = r.batches.keys().copied().collect();
    let want: Vec<u64> = acked.keys().copied().collect();
    assert_eq!(
        got, want,
        "recovered batches differ from the acknowledged ones"
    );
    for (id, epoch) in acked {
        let g = &r.batches[id];
        assert_eq!(g.epoch, *epoch, "batch {id} in another epoch");
        assert_eq!(g.frames, frames_of(*id), "batch {id} differs");
    }
}

/// Commits batches `ids` from `threads` threads; returns id -> epoch.
fn commit_all(log: &Log, ids: std::ops::Range<u64>, threads: u64) -> BTreeMap<u64, u64> {
    let acked = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let acked = &acked;
            let ids = ids.clone();
            s.spawn(move || {
                for id in ids.filter(|i| i % threads == t) {
                    let e = submit(log, id).unwrap();
                    log.wait_durable(e, None).unwrap();
                    acked.lock().unwrap().insert(id, e);
                }
            });
        }
    });
    acked.into_inner().unwrap()
}

#[test]
fn restore_gives_back_every_acknowledged_record_latest_to_an_epoch_and_to_a_time() {
    let root = scratch("archive-restore");
    let url = file_url(&root.join("store"));
    let db = root.join("db");
    let log = Log::open(&db, &opts(&url)).unwrap();
    let mut acked = commit_all(&log, 1..120, 4);
    // Checkpoints do not limit the restore: every archived epoch comes back.
    log.checkpoint(log.durable_epoch()).unwrap();
    // A time between two commits: the first is durable before it, the
    // second after.
    let e = submit(&log, 500).unwrap();
    log.wait_durable(e, None).unwrap();
    acked.insert(500, e);
    let before_time = acked.clone();
    std::thread::sleep(Duration::from_millis(5));
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    std::thread::sleep(Duration::from_millis(5));
    acked.extend(commit_all(&log, 1000..1100, 3));
    let last = log.durable_epoch();
    log.wait_archived(last, None).unwrap();
    let st = log.archive_status().unwrap().unwrap();
    assert_eq!(st.archived_epoch, last);
    assert_eq!(st.lag_bytes, 0);
    assert!(st.objects_archived >= 1);
    log.close().unwrap();

    let verified = pwal::archive::verify(&url).unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    // Far fewer objects than commits: runs of epochs, not one per commit.
    assert!(
        verified.objects.len() < acked.len() / 2,
        "{} objects",
        verified.objects.len()
    );

    let restored = root.join("restored");
    let rep = pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    // The close may add one empty epoch (the frame that vouches for the
    // last commit's), archived before close returns.
    assert!(
        rep.last_epoch == last || rep.last_epoch == last + 1,
        "{} vs {last}",
        rep.last_epoch
    );
    assert!(rep.continues_archive);
    assert_recovers_exactly(&restored, &acked);

    // To an epoch: exactly the batches of epochs up to it.
    let mid = acked[&60];
    let to_epoch = root.join("to-epoch");
    pwal::archive::restore(&url, &to_epoch, RestoreTarget::Epoch(mid), false).unwrap();
    let want: BTreeMap<u64, u64> = acked
        .iter()
        .filter(|(_, e)| **e <= mid)
        .map(|(i, e)| (*i, *e))
        .collect();
    assert_recovers_exactly(&to_epoch, &want);

    // To a time: what was durable at that instant.
    let to_time = root.join("to-time");
    pwal::archive::restore(&url, &to_time, RestoreTarget::Time(t), false).unwrap();
    assert_recovers_exactly(&to_time, &before_time);

    // An existing log is not overwritten without force; with it, it is.
    let err = pwal::archive::restore(&url, &to_time, RestoreTarget::Latest, false).unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref m) if m.contains("--force")),
        "{err}"
    );
    pwal::archive::restore(&url, &to_time, RestoreTarget::Latest, true).unwrap();
    assert_recovers_exactly(&to_time, &acked);

    // The restored log opens and goes on; with the same archive URL it
    // continues the chain.
    let log = Log::open(&restored, &opts(&url)).unwrap();
    let e = submit(&log, 5000).unwrap();
    log.wait_durable(e, None).unwrap();
    assert_eq!(e, rep.last_epoch + 1);
    log.wait_archived(e, None).unwrap();
    log.close().unwrap();
    let v = pwal::archive::verify(&url).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

/// The child of the machine-loss test: commits with archive-durable
/// commits and prints each acknowledged batch until it is killed.
#[test]
fn machine_loss_child() {
    let Ok(dir) = std::env::var("PWAL_ARCHIVE_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let url = file_url(&dir.join("store"));
    let o = Options {
        archive_durable: true,
        ..opts(&url)
    };
    let log = Log::open(dir.join("db"), &o).unwrap();
    use std::io::Write;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let log = &log;
            s.spawn(move || {
                for n in 0.. {
                    let id = 1 + n * 4 + t;
                    let e = submit(log, id).unwrap();
                    log.wait_durable(e, None).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {id} {e}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn a_machine_loss_after_archive_durable_commits_loses_nothing_acknowledged() {
    use std::io::BufRead;
    let root = scratch("archive-loss");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "machine_loss_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PWAL_ARCHIVE_CHILD", &root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = BTreeMap::new();
    for line in out.lines() {
        let line = line.unwrap();
        let mut w = line.split_whitespace();
        if w.next() != Some("ACK") {
            continue;
        }
        let id: u64 = w.next().unwrap().parse().unwrap();
        let e: u64 = w.next().unwrap().parse().unwrap();
        acked.insert(id, e);
        if acked.len() >= 300 {
            break;
        }
    }
    // The machine is lost: the process dies and its disk with it.
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(pwal::log_dir(&root.join("db"))).unwrap();
    assert_eq!(acked.len(), 300, "the child stopped early");

    let url = file_url(&root.join("store"));
    let restored = root.join("restored");
    pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    let r = recover(&pwal::io::RealVfs, &restored).unwrap();
    for (id, e) in &acked {
        let g = r
            .batches
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged batch {id} (epoch {e}) lost"));
        assert_eq!(g.epoch, *e);
        assert_eq!(g.frames, frames_of(*id));
    }
}

fn dir_bytes(db: &Path) -> u64 {
    std::fs::read_dir(pwal::log_dir(db))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn while_the_store_is_down_segments_stay_commits_are_refused_at_the_lag_and_resume() {
    let root = scratch("archive-gate");
    // The store's directory lies under a regular file: every write fails
    // until the file is replaced by a directory.
    let blocker = root.join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let url = file_url(&blocker.join("store"));
    let db = root.join("db");
    let lag_cap = 256 << 10;
    let failures = Arc::new(Mutex::new(0u64));
    let f2 = failures.clone();
    let o = Options {
        archive_max_lag_bytes: lag_cap,
        trace: Some(pwal::Tracer::new(move |e| {
            if e.kind == pwal::TraceKind::ArchiveFailed {
                *f2.lock().unwrap() += 1;
            }
        })),
        ..opts(&url)
    };
    let log = Log::open(&db, &o).unwrap();
    let mut acked = BTreeMap::new();
    let mut refused = None;
    let mut max_bytes = 0;
    for id in 1..10_000u64 {
        match commit_id(&log, id) {
            Ok(e) => {
                acked.insert(id, e);
            }
            Err(Error::ArchiveBehind(msg)) => {
                assert!(msg.contains("not archived"), "{msg}");
                refused = Some(id);
                break;
            }
            Err(e) => panic!("commit {id}: {e}"),
        }
        // The engine checkpoints everything: without the archive gate every
        // full segment would go.
        log.checkpoint(log.durable_epoch()).unwrap();
        max_bytes = max_bytes.max(dir_bytes(&db));
    }
    let refused = refused.expect("commits were never refused");
    let stats = log.stats();
    assert_eq!(
        stats.segments_deleted, 0,
        "a segment left before it was archived"
    );
    assert_eq!(
        stats.segments_recycled, 0,
        "a segment left before it was archived"
    );
    // Disk use stays near the lag cap: what is unarchived, rounded up to
    // whole segments, plus the spares.
    let slack = 4 * (64 << 10) + 2 * (4 << 20);
    assert!(max_bytes <= lag_cap + slack, "{max_bytes} bytes on disk");
    assert!(log.archive_status().unwrap().unwrap().lag_bytes > lag_cap);
    // The archiver tries (after its gather delay), fails, and says so.
    assert!(eventually(|| log
        .archive_status()
        .unwrap()
        .unwrap()
        .consecutive_failures
        > 0));
    assert!(!log.archive_status().unwrap().unwrap().last_error.is_empty());
    assert!(*failures.lock().unwrap() > 0, "no failure was traced");
    // Refused again at once, and nothing of it was written.
    assert!(matches!(
        commit_id(&log, refused),
        Err(Error::ArchiveBehind(_))
    ));

    // The store comes back: the archive catches up, commits resume by
    // themselves, and the held-back segments go.
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir_all(&blocker).unwrap();
    assert!(eventually(|| log
        .archive_status()
        .unwrap()
        .unwrap()
        .lag_bytes
        <= lag_cap));
    let e = commit_id(&log, 20_000).unwrap();
    acked.insert(20_000, e);
    log.wait_archived(e, None).unwrap();
    log.checkpoint(e).unwrap();
    assert!(eventually(|| {
        let s = log.stats();
        s.segments_deleted + s.segments_recycled > 0
    }));
    log.close().unwrap();
    let restored = root.join("restored");
    pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    assert_recovers_exactly(&restored, &acked);
}

/// Commits batch `id` (as `submit` makes it) and waits for it.
fn commit_id(log: &Log, id: u64) -> pwal::Result<u64> {
    let owned = frames_of(id);
    let frames: Vec<pwal::Frame<'_>> = owned
        .iter()
        .map(|(p, d, b)| pwal::Frame {
            page_number: *p,
            db_size_if_commit: *d,
            data: b,
        })
        .collect();
    log.commit(
        &pwal::Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: (id % 7) as u32,
            frames: &frames,
        },
        None,
    )
}

#[test]
fn two_logs_archiving_to_one_url_is_a_conflict_reported_not_hidden() {
    let root = scratch("archive-conflict");
    let url = file_url(&root.join("store"));
    let a = Log::open(root.join("a"), &opts(&url)).unwrap();
    let acked = commit_all(&a, 1..20, 2);
    a.wait_archived(a.durable_epoch(), None).unwrap();
    a.close().unwrap();
    let before = pwal::archive::verify(&url).unwrap();

    let b = Log::open(root.join("b"), &opts(&url)).unwrap();
    commit_all(&b, 100..110, 1);
    assert!(eventually(|| {
        let s = b.archive_status().unwrap().unwrap();
        s.consecutive_failures > 0 && s.last_error.contains("conflict")
    }));
    assert_eq!(b.archive_status().unwrap().unwrap().archived_epoch, 0);
    b.close().unwrap();
    // Nothing of the first log's history was replaced.
    let after = pwal::archive::verify(&url).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!(before.objects, after.objects);
    let restored = root.join("restored");
    pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    assert_recovers_exactly(&restored, &acked);
}

/// Archives a few objects (a reopen between each, so that there are
/// several) and returns the URL and the store's directory.
fn archive_with_objects(root: &Path) -> (String, PathBuf) {
    let store = root.join("store");
    let url = file_url(&store);
    for round in 0..3u64 {
        let log = Log::open(root.join("db"), &opts(&url)).unwrap();
        commit_all(&log, round * 100..round * 100 + 10, 2);
        log.wait_archived(log.durable_epoch(), None).unwrap();
        log.close().unwrap();
    }
    (url, store)
}

fn objects_in(store: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pwarc"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_damaged_or_missing_object_is_found_by_verify_and_refused_by_restore() {
    let root = scratch("archive-damage");
    let (url, store) = archive_with_objects(&root);
    let objects = objects_in(&store);
    assert!(objects.len() >= 3, "{objects:?}");
    assert!(pwal::archive::verify(&url).unwrap().problems.is_empty());

    // A flipped byte in the middle object.
    let victim = &objects[1];
    let good = std::fs::read(victim).unwrap();
    let mut bad = good.clone();
    let i = bad.len() / 2;
    bad[i] ^= 1;
    std::fs::write(victim, &bad).unwrap();
    let v = pwal::archive::verify(&url).unwrap();
    assert!(
        v.problems.iter().any(|p| p.contains("checksum")),
        "{:?}",
        v.problems
    );
    let restored = root.join("restored");
    let err = pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap_err();
    assert!(matches!(err, Error::ArchiveDamaged(_)), "{err}");
    assert!(
        !pwal::log_dir(&restored).exists(),
        "restore wrote before it verified"
    );

    // The middle object missing: a gap.
    std::fs::remove_file(victim).unwrap();
    let v = pwal::archive::verify(&url).unwrap();
    assert!(
        v.problems.iter().any(|p| p.contains("gap")),
        "{:?}",
        v.problems
    );
    let err = pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap_err();
    assert!(matches!(err, Error::ArchiveDamaged(_)), "{err}");
    assert!(!pwal::log_dir(&restored).exists());

    // Put back, it is clean again.
    std::fs::write(victim, &good).unwrap();
    assert!(pwal::archive::verify(&url).unwrap().problems.is_empty());
}

#[test]
fn a_reopen_neither_loses_nor_repeats_what_was_archived() {
    let root = scratch("archive-reopen");
    let url = file_url(&root.join("store"));
    let db = root.join("db");
    let log = Log::open(&db, &opts(&url)).unwrap();
    let mut acked = commit_all(&log, 1..30, 2);
    log.wait_archived(log.durable_epoch(), None).unwrap();
    log.close().unwrap();
    let state = pwal::log_dir(&db).join(STATE_FILE);
    let first_state = std::fs::read(&state).unwrap();

    let log = Log::open(&db, &opts(&url)).unwrap();
    acked.extend(commit_all(&log, 100..130, 2));
    log.wait_archived(log.durable_epoch(), None).unwrap();
    log.close().unwrap();

    // A crash between an upload and the state that records it: the state
    // is the older one, and the store has the object. The reopen finds its
    // own object and adopts it instead of reporting a conflict.
    std::fs::write(&state, &first_state).unwrap();
    let log = Log::open(&db, &opts(&url)).unwrap();
    acked.extend(commit_all(&log, 200..210, 1));
    log.wait_archived(log.durable_epoch(), None).unwrap();
    let st = log.archive_status().unwrap().unwrap();
    assert_eq!(st.consecutive_failures, 0, "{}", st.last_error);
    log.close().unwrap();

    let v = pwal::archive::verify(&url).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    let restored = root.join("restored");
    pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    assert_recovers_exactly(&restored, &acked);

    // A state file naming an object the store does not have is reported.
    let other = root.join("other-store");
    std::fs::create_dir_all(&other).unwrap();
    let log = Log::open(&db, &opts(&url)).unwrap();
    log.close().unwrap();
    for o in objects_in(&root.join("store")) {
        std::fs::remove_file(o).unwrap();
    }
    let log = Log::open(&db, &opts(&url)).unwrap();
    assert!(eventually(|| log
        .archive_status()
        .unwrap()
        .unwrap()
        .last_error
        .contains("missing")));
    log.close().unwrap();
}

#[test]
fn archiving_a_log_that_already_dropped_its_first_epochs_restores_from_its_oldest() {
    let root = scratch("archive-late");
    let db = root.join("db");
    let plain = Options {
        archive_url: String::new(),
        ..opts("")
    };
    let log = Log::open(&db, &plain).unwrap();
    let early = commit_all(&log, 1..200, 2);
    log.checkpoint(log.durable_epoch()).unwrap();
    log.close().unwrap();
    // The checkpoint removed the early segments: the archive can begin only
    // where the log now begins.
    let url = file_url(&root.join("store"));
    let log = Log::open(&db, &opts(&url)).unwrap();
    let late = commit_all(&log, 1000..1050, 2);
    log.wait_archived(log.durable_epoch(), None).unwrap();
    log.close().unwrap();
    let v = pwal::archive::verify(&url).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    let first = v.objects[0].first_epoch;
    assert!(first > 1, "the early segments were not removed");
    let restored = root.join("restored");
    let rep = pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    assert_eq!(rep.first_epoch, first);
    let mut want: BTreeMap<u64, u64> = early.into_iter().filter(|(_, e)| *e >= first).collect();
    want.extend(late);
    assert_recovers_exactly(&restored, &want);
}
