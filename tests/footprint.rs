//! The disk a log takes: segments start small and double with throughput,
//! so a fresh log after one small commit stays under 16 MiB, and after an
//! idle spell the large spares go and the next segment starts small again.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use pwal::{Frame, Log, Options, SyncPolicy, Txn};

const MIB: u64 = 1 << 20;

/// (name, length) of every file in the log directory.
fn files(db: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(pwal::log_dir(db))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

fn total(db: &Path) -> u64 {
    files(db).iter().map(|f| f.1).sum()
}

/// Polls `cond` for up to a minute (the background preparer and the idle
/// trim run on their own schedule); fails with `what` if it never holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Full,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

fn commit(log: &Log, id: u64, pages: usize) -> u64 {
    let page = vec![id as u8; 16 << 10];
    let frames: Vec<Frame<'_>> = (0..pages)
        .map(|i| Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: 0,
            data: &page,
        })
        .collect();
    log.commit(
        &Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: 0,
            frames: &frames,
        },
        None,
    )
    .unwrap()
}

#[test]
fn a_fresh_log_after_one_small_commit_takes_at_most_16_mib() {
    let dir = common::scratch("footprint-fresh");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    commit(&log, 1, 1);
    // Once the preparer has made the next spare, nothing more is written.
    eventually("a spare is prepared", || {
        files(&db).iter().any(|f| f.0.starts_with("spare-"))
    });
    std::thread::sleep(Duration::from_millis(200));
    let used = total(&db);
    assert!(used <= 16 * MIB, "{used} bytes: {:?}", files(&db));
    log.close().unwrap();
}

#[test]
fn segments_double_with_throughput_and_an_idle_log_shrinks_back_to_a_fresh_ones_size() {
    let dir = common::scratch("footprint-grow");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    // The first segment from the preparer's zero-filled spare (a commit
    // that comes first starts an empty one, which grows as written).
    eventually("the first spare is ready", || log.debug_spares_ready() > 0);
    // About 40 MiB in commits of 256 KiB.
    let mut last = 0;
    for id in 1..=160 {
        last = commit(&log, id, 16);
    }
    let segs: Vec<u64> = files(&db)
        .into_iter()
        .filter(|f| f.0.ends_with(".pwseg"))
        .map(|f| f.1)
        .collect();
    assert!(segs.len() >= 3, "{segs:?}");
    assert_eq!(segs[0], 4 * MIB, "the first segment is small: {segs:?}");
    // Each segment's capacity doubles the one before. A segment made from
    // a zero-filled spare is as long as its capacity; one that started
    // empty, because the preparer had not finished its spare (a loaded
    // machine), is as long as what was written into it: nearly its
    // capacity once the log moved past it (it switched when the next
    // commit did not fit), anything up to it while active.
    let commit_bytes = 16 * 16384 + 64 * 1024; // the pages, with room for headers
    for (i, &len) in segs.iter().enumerate() {
        let cap = ((4 * MIB) << i).min(64 * MIB);
        let active = i + 1 == segs.len();
        assert!(
            len == cap || len > 64 * MIB || (len < cap && (active || len + commit_bytes > cap)),
            "segment {i} of {segs:?}: {len} bytes, its capacity {cap}: the segments do not double"
        );
    }
    // Checkpoint everything, then leave the log idle: the large spares go,
    // the large active segment is left for a small one, and the log takes
    // what a fresh one does.
    log.checkpoint(last).unwrap();
    // Both at once: the directory can be under 16 MiB before the shrink
    // (the large active segment started empty, no spare beside it).
    let small_segments = |f: &[(String, u64)]| {
        f.iter()
            .filter(|f| f.0.ends_with(".pwseg"))
            .all(|f| f.1 <= 4 * MIB)
    };
    eventually(
        "the idle log shrinks to at most 16 MiB, in segments of 4 MiB",
        || total(&db) <= 16 * MIB && small_segments(&files(&db)),
    );
    // Nothing checkpointed was kept, and nothing else was lost: the log
    // recovers empty, and takes new commits.
    log.close().unwrap();
    let report = pwal::recover(&db, &Default::default(), |_| {
        panic!("a checkpointed epoch was replayed")
    })
    .unwrap();
    assert!(report.checkpoint_epoch >= last, "{report:?}");
    let log = Log::open(&db, &opts()).unwrap();
    let e = commit(&log, 2000, 1);
    log.close().unwrap();
    let mut got = Vec::new();
    pwal::recover(&db, &Default::default(), |r| {
        got.push((r.epoch, r.txn_id));
        true
    })
    .unwrap();
    assert_eq!(got, vec![(e, 2000)]);
}

/// A log that grew kept recycling its small first segments for ever. Each
/// was used up in a fraction of a full segment's time, so the spares ran
/// out between checkpoints and the preparer zero-filled a new full-size
/// file beside the commits, deleted again at the next checkpoint: at 16
/// writers with a checkpoint every 100 ms, that churn put bursts of 2 ms
/// syncs into the steady state. Once grown, a log recycles only segments
/// made as large as it grows them, and the small ones are deleted. Under
/// `off` too, where no spare is zero-filled and every segment starts empty
/// (a first fix compared lengths, and so recycled nothing there).
#[test]
fn a_grown_log_recycles_only_full_size_segments() {
    const SEGMENT: u64 = 16 * MIB;
    for sync in [SyncPolicy::Full, SyncPolicy::Off] {
        let dir = common::scratch(&format!("footprint-recycle-{sync:?}"));
        let db = dir.join("db");
        let o = Options {
            segment_bytes: SEGMENT,
            sync,
            ..opts()
        };
        let log = Log::open(&db, &o).unwrap();
        // About 160 MiB in commits of 256 KiB, everything durable
        // checkpointed every 4 MiB: segments of 4, 8 and 16 MiB, then
        // 16 MiB ones recycled.
        let mut created_when_grown = None;
        for id in 1..=640 {
            let e = commit(&log, id, 16);
            if id % 16 == 0 {
                log.checkpoint(e).unwrap();
            }
            if id == 320 {
                created_when_grown = Some(log.stats().segments_created);
            }
        }
        let f = files(&db);
        // A segment that started empty (every one under `off`, and under
        // `full` one the preparer was late for) is shorter than its
        // capacity by less than a commit.
        let commit_bytes = 16 * 16384 + 64 * 1024;
        let active = f
            .iter()
            .filter(|f| f.0.ends_with(".pwseg"))
            .map(|f| f.0.clone())
            .max()
            .unwrap();
        let short: Vec<_> = f
            .iter()
            .filter(|f| f.0 != active && (f.0.ends_with(".pwseg") || f.0.starts_with("spare-")))
            .filter(|f| f.1 + commit_bytes < SEGMENT)
            .collect();
        assert!(
            short.is_empty(),
            "{sync:?}: short files still in circulation: {f:?}"
        );
        // No file was created while the recycled ones kept up.
        let stats = log.stats();
        assert_eq!(
            Some(stats.segments_created),
            created_when_grown,
            "{sync:?}: segments created in the second half of the run ({} recycled, {} deleted; {f:?})",
            stats.segments_recycled,
            stats.segments_deleted
        );
        log.close().unwrap();
    }
}

/// A preparer that finished a spare after the flusher, finding none ready,
/// had started an empty segment of that size kept it: two segments of one
/// size in a row instead of doubling, the second deleted at its removal as
/// too small. It now drops such a spare and makes the size the log wants.
#[test]
fn a_spare_finished_after_the_log_grew_past_it_is_not_used() {
    let dir = common::scratch("footprint-late-spare");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    eventually("the first spare is ready", || log.debug_spares_ready() > 0);
    log.debug_hold_preparer(true);
    // Takes the 4 MiB spare: the preparer starts on an 8 MiB one, and holds.
    commit(&log, 1, 1);
    eventually("the preparer holds", || log.debug_preparer_held());
    // Past the first segment: no spare is ready, so the flusher starts an
    // empty 8 MiB segment itself, and the log now wants 16 MiB next.
    for id in 2..=20 {
        commit(&log, id, 16);
    }
    assert!(
        log.stats().segments_created >= 2,
        "the first segment was not left: {:?}",
        files(&db)
    );
    log.debug_hold_preparer(false);
    eventually(
        "a 16 MiB spare is made (not the 8 MiB one the preparer had begun)",
        || {
            files(&db)
                .iter()
                .any(|f| f.0.starts_with("spare-") && f.1 == 16 * MIB)
        },
    );
    log.close().unwrap();
}

/// A log of `segment_bytes` in a fresh scratch directory, once its first
/// spare is ready.
fn open_with_a_spare(name: &str, segment_bytes: u64) -> (Log, std::path::PathBuf) {
    let db = common::scratch(name).join("db");
    let opts = Options {
        segment_bytes,
        ..opts()
    };
    let log = Log::open(&db, &opts).unwrap();
    eventually("the first spare is ready", || log.debug_spares_ready() > 0);
    (log, db)
}

#[test]
fn a_stream_of_large_frames_stops_the_zero_fill_until_a_small_frame_starts_a_segment() {
    let (log, db) = open_with_a_spare("footprint-large-frames", 8 * MIB);
    log.debug_hold_preparer(true);
    // Takes the 4 MiB spare: the preparer starts on the next one, and holds.
    commit(&log, 1, 1);
    eventually("the preparer holds", || log.debug_preparer_held());
    // Frames of 2 MiB (128 pages of 16 KiB) through several segments, each
    // started empty (no spare is ready): a stream of large frames.
    // Ten of them: one in the 4 MiB segment, then three in each 8 MiB one,
    // so that the last has less room left than a run of small frames needs
    // to end the spell by itself.
    let created = log.stats().segments_created;
    for id in 2..=11 {
        commit(&log, id, 128);
    }
    assert!(
        log.stats().segments_created >= created + 2,
        "the large frames did not start segments: {:?}",
        files(&db)
    );
    // Released, the preparer fills nothing for them: zeros written beside
    // a bandwidth-bound stream would double its bytes, and while the log
    // grew every spare it filled was outgrown before it was used.
    log.debug_hold_preparer(false);
    eventually("the preparer is idle", || log.debug_preparer_idle());
    assert_eq!(
        log.debug_spares_ready(),
        0,
        "a spare was zero-filled for a stream of large frames: {:?}",
        files(&db)
    );
    assert!(
        !files(&db).iter().any(|f| f.0.starts_with("spare-")),
        "a spare file is left: {:?}",
        files(&db)
    );
    // A small frame starting a segment wants zero-filled spares again.
    let created = log.stats().segments_created;
    let mut id = 100;
    while log.stats().segments_created == created {
        id += 1;
        assert!(id < 1000, "small commits never started a segment");
        commit(&log, id, 16);
    }
    assert!(
        !log.debug_large_frames(),
        "a small frame started a segment and the spell went on"
    );
    eventually("a spare is zero-filled again", || {
        log.debug_spares_ready() > 0
    });
    log.close().unwrap();
}

/// A log at the start of a spell of large frames: 2 MiB frames have started
/// an empty segment, and the preparer is idle with no spare.
fn log_in_a_spell_of_large_frames(name: &str) -> (Log, std::path::PathBuf) {
    let (log, db) = open_with_a_spare(name, 16 * MIB);
    // The first takes the spare, a later one starts an empty segment.
    let mut id = 0;
    while log.stats().segments_created < 2 {
        id += 1;
        assert!(id < 10, "large frames never started a segment");
        commit(&log, id, 128);
    }
    eventually("the preparer is idle", || log.debug_preparer_idle());
    assert_eq!(log.debug_spares_ready(), 0, "{:?}", files(&db));
    assert!(log.debug_large_frames());
    (log, db)
}

#[test]
fn a_run_of_small_frames_ends_a_spell_of_large_frames() {
    let (log, db) = log_in_a_spell_of_large_frames("footprint-small-run");
    let created = log.stats().segments_created;
    // 5 MiB of 256 KiB frames, all in the segment the large frames started.
    for id in 100..120 {
        commit(&log, id, 16);
    }
    assert_eq!(
        log.stats().segments_created,
        created,
        "the small frames started a segment: {:?}",
        files(&db)
    );
    // Ended by the run itself (the flusher's write of the frame that
    // completed it), not by the idle trim a second later.
    assert!(
        !log.debug_large_frames(),
        "5 MiB of small frames did not end the spell of large frames"
    );
    eventually("a spare is zero-filled again", || {
        log.debug_spares_ready() > 0
    });
    log.close().unwrap();
}

#[test]
fn an_idle_spell_ends_a_spell_of_large_frames() {
    let (log, _db) = log_in_a_spell_of_large_frames("footprint-large-idle");
    // Nothing more is written: the idle trim comes after a second.
    eventually("a spare is zero-filled again", || {
        log.debug_spares_ready() > 0
    });
    log.close().unwrap();
}

/// A closed log whose epochs are all checkpointed takes no more than a
/// fresh log: close deletes the spares and leaves a grown active segment
/// for a small one.
#[test]
fn a_closed_checkpointed_log_takes_no_more_than_a_fresh_one() {
    let dir = common::scratch("footprint-closed");
    let db = dir.join("db");
    let log = Log::open(&db, &opts()).unwrap();
    let mut e = 0;
    for id in 1..=320 {
        e = commit(&log, id, 1); // 5 MiB of 16 KiB pages
    }
    log.checkpoint(e).unwrap();
    log.close().unwrap();
    let used = total(&db);
    assert!(used <= 8 * MIB, "{used} bytes: {:?}", files(&db));
    assert!(
        !files(&db).iter().any(|f| f.0.starts_with("spare-")),
        "{:?}",
        files(&db)
    );
    // Nothing is replayed, and the log opens and goes on.
    let r = pwal::recover(&db, &pwal::RecoverOptions::default(), |_| true).unwrap();
    assert_eq!(r.transactions, 0);
    assert!(r.checkpoint_epoch >= e);
    let log = Log::open(&db, &opts()).unwrap();
    assert!(commit(&log, 321, 1) > e);
    log.close().unwrap();
}
