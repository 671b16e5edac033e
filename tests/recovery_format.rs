//! Format version 2: the synced-through proof that tells corruption from a
//! torn tail, the bound on epoch numbers, the log-start rule, and the refusal
//! of version-1 logs. Each of those tests reproduces a defect of version 1.
//! Format version 5: the bytes a small commit adds to its page, and the
//! identity block that tells a segment's first frame from a stale one.

mod common;
#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use layout::*;
use pwal::io::sim::{CrashMode, SplitMix};
use pwal::io::{SimVfs, Vfs};
use pwal::{Error, Log, Options, SyncPolicy};

const DB: &str = "/sim/db";

fn opts(sync: SyncPolicy) -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        sync,
        use_env: false,
        // The logs here end as a process that died right after its last
        // sync leaves them: no close writes a frame vouching for the last
        // epoch, so damage there is a torn tail.
        close_proof: false,
        ..Options::default()
    }
}

fn open(vfs: &SimVfs, sync: SyncPolicy) -> pwal::Result<Log> {
    Log::open_with_vfs(DB, &opts(sync), Arc::new(vfs.clone()))
}

/// A log of `n` epochs, one batch each, in one segment.
fn one_segment_log(n: u64) -> (SimVfs, PathBuf) {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, SyncPolicy::Full).unwrap();
    for _ in 0..n {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    let segs = segments(&vfs, Path::new(DB));
    assert_eq!(segs.len(), 1);
    (vfs, segs[0].clone())
}

/// Zeroing the header of a frame in the middle of a log made recovery stop
/// there with Ok and no damage reported, and a reopen then wrote new epochs
/// under the numbers of the lost ones. The later frames say the epoch was
/// synced: it is corruption, named with file, offset and epoch.
#[test]
fn a_zeroed_frame_header_before_frames_that_prove_it_synced_is_corruption() {
    for zeros in [CERT_MIN_LEN, 64] {
        let (vfs, seg) = one_segment_log(6);
        let frames = frames_of_segment(&vfs.contents(&seg).unwrap());
        let third = &frames[2];
        assert_eq!(third.epoch, 3);
        vfs.poke(&seg, third.start, &vec![0u8; zeros]);
        match recover(&vfs, Path::new(DB)) {
            Err(Error::Corrupt { file, offset, what }) => {
                assert_eq!(file, seg);
                assert_eq!(offset, third.start);
                assert!(what.contains("epoch 3"), "{what}");
                assert!(what.contains("synced"), "{what}");
            }
            other => panic!(
                "{zeros} zero bytes: expected corruption, got {:?}",
                other.map(|r| r.report)
            ),
        }
        // The durable prefix is the two epochs before it.
        let prefix = recover_opts(&vfs, Path::new(DB), true).unwrap();
        assert_eq!(prefix.report.last_epoch, 2);
        assert_eq!(prefix.batches.len(), 2);
        assert!(
            matches!(open(&vfs, SyncPolicy::Full), Err(Error::Corrupt { .. })),
            "a log missing a synced epoch opened"
        );
    }
}

/// Under `sync=normal`, a power loss drops some of the unsynced writes and
/// keeps others: in a recycled segment a lost frame leaves the stale bytes
/// of the file's previous life in front of a surviving later frame. Version
/// 1 called that corruption and the log no longer opened. No later frame
/// says the lost epoch was synced, so it is a torn tail: recovery returns
/// every synced epoch (at least what a loss of every unsynced write leaves),
/// and the log opens, continues, and recovers again.
#[test]
fn lost_unsynced_writes_under_normal_are_a_torn_tail_not_corruption() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, SyncPolicy::Normal).unwrap();
    // Fill a few segments, then checkpoint them away so that their files are
    // recycled, and write on into recycled files.
    while log.stats().segments_created < 4 {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.checkpoint(&log).unwrap();
    // Until a recycled file is the active segment: its header names the
    // log's new start, so the removed segments are accounted for without a
    // checkpoint mark in a frame.
    let log_start = |vfs: &SimVfs| {
        let last = segments(vfs, Path::new(DB)).pop().unwrap();
        u64::from_le_bytes(vfs.contents(&last).unwrap()[32..40].try_into().unwrap())
    };
    while log.stats().segments_recycled == 0 || log_start(&vfs) == 1 {
        j.commit(&log, j.next_id()).unwrap();
    }
    let jt = j.clone();
    vfs.set_crash_points(|_| true, move || jt.len());
    let mut written = 0;
    while written < 240 {
        // Several epochs between background syncs.
        for _ in 0..3 {
            j.commit(&log, j.next_id()).unwrap();
        }
        written += 3;
    }
    let points = vfs.take_crash_points();
    vfs.clear_crash_points();
    j.close(log).unwrap();
    let events = j.snapshot();

    let mut images = 0;
    let mut torn_with_later_frame = 0;
    let mut rng = SplitMix(0x7017);
    for p in points.iter().filter(|p| p.frozen.has_pending()) {
        if images == 200 {
            break;
        }
        images += 1;
        let mut x = Expect::at(&events, p.tag);
        x.acked.clear(); // under normal nothing is promised across a power loss
        let synced = p.frozen.image(CrashMode::DropAll);
        let floor = recover(&synced, Path::new(DB))
            .unwrap_or_else(|e| panic!("crash before op {}: drop-all image: {e}", p.op));
        let mode = CrashMode::RandomSubset {
            seed: rng.next_u64(),
        };
        let image = p.frozen.image(mode);
        let got = check_recovery(&image, Path::new(DB), &x)
            .unwrap_or_else(|m| panic!("crash before op {} ({}): {m}", p.op, mode.name()));
        let want: BTreeSet<u64> = floor.batches.keys().copied().collect();
        let have: BTreeSet<u64> = got.batches.keys().copied().collect();
        assert!(
            want.is_subset(&have),
            "crash before op {} ({}): synced batches {:?} were lost",
            p.op,
            mode.name(),
            want.difference(&have).collect::<Vec<_>>()
        );
        if got.report.torn_tail_bytes > 0 && have.len() > want.len() {
            torn_with_later_frame += 1;
        }
        // The log opens, writes after what it recovered, and recovers again.
        let log = open(&image, SyncPolicy::Normal)
            .unwrap_or_else(|e| panic!("crash before op {} ({}): open: {e}", p.op, mode.name()));
        let j2 = Journal::new();
        j2.raise_ids(1 << 30);
        j2.commit(&log, j2.next_id()).unwrap();
        j2.close(log).unwrap();
        let again = recover(&image, Path::new(DB)).unwrap_or_else(|e| {
            panic!(
                "crash before op {} ({}): after reopen: {e}",
                p.op,
                mode.name()
            )
        });
        assert!(have.iter().all(|id| again.batches.contains_key(id)));
        assert!(again.batches.contains_key(&((1 << 30) + 1)));
    }
    assert_eq!(images, 200, "not enough crash points with unsynced writes");
    assert!(
        torn_with_later_frame > 0,
        "no image had a torn tail: the case is not exercised"
    );
}

/// A checksum-valid segment header with first epoch u64::MAX made the epochs
/// wrap: the reopened log acknowledged a commit as epoch 0 and wrote
/// nothing. Epochs above MAX_EPOCH are damage.
#[test]
fn a_segment_header_with_an_absurd_first_epoch_is_corruption() {
    let (vfs, seg) = one_segment_log(2);
    let dir = pwal::log_dir(Path::new(DB));
    let forged = dir.join(format!("{:020}.pwseg", segment_id(&seg) + 1));
    let mut bytes = vec![0u8; 8192];
    bytes[..64].copy_from_slice(&segment_header(segment_id(&seg) + 1, 7, u64::MAX, 1));
    vfs.set_contents(&forged, bytes);
    for result in [
        recover(&vfs, Path::new(DB)).map(|_| ()),
        open(&vfs, SyncPolicy::Full).map(|_| ()),
    ] {
        match result {
            Err(Error::Corrupt { file, offset, what }) => {
                assert_eq!(file, forged);
                assert_eq!(offset, 0);
                assert!(what.contains(&u64::MAX.to_string()), "{what}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
    // The durable prefix stops before the forged segment.
    let prefix = recover_opts(&vfs, Path::new(DB), true).unwrap();
    assert_eq!(prefix.report.last_epoch, 2);
}

/// A frame whose certificate (checksum included) names an epoch above the
/// bound is damage too, never a reason to wrap.
#[test]
fn a_frame_with_an_absurd_epoch_is_damage() {
    let (vfs, seg) = one_segment_log(3);
    let data = vfs.contents(&seg).unwrap();
    let frames = frames_of_segment(&data);
    for (which, f) in [(1usize, &frames[1]), (2, &frames[2])] {
        let image = vfs.process_crash();
        let mut forged = data.clone();
        let frame = f.edited(&data, |c| c.epoch = MAX_EPOCH + 1);
        replace_frame(&mut forged, f, &frame);
        image.set_contents(&seg, forged);
        let r = recover(&image, Path::new(DB));
        if which == 1 {
            // Epoch 3 follows and says epoch 2 was synced.
            match r {
                Err(Error::Corrupt { offset, what, .. }) => {
                    assert_eq!(offset, f.start);
                    assert!(what.contains("outside"), "{what}");
                }
                other => panic!("expected corruption, got {:?}", other.map(|r| r.report)),
            }
        } else {
            let r = r.unwrap();
            assert_eq!(r.report.last_epoch, 2);
            assert!(r.report.torn_tail_bytes > 0);
            // The reopened log continues at epoch 3, not at MAX_EPOCH + 2 or 0.
            let log = open(&image, SyncPolicy::Full).unwrap();
            let j = Journal::new();
            j.raise_ids(100);
            assert_eq!(j.commit(&log, j.next_id()).unwrap(), 3);
            j.close(log).unwrap();
        }
    }
}

/// Writes `segments` segments without a checkpoint, then returns the log.
fn multi_segment_log(segments_wanted: u64) -> (SimVfs, Vec<PathBuf>) {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, SyncPolicy::Full).unwrap();
    while log.stats().segments_created < segments_wanted {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.commit(&log, j.next_id()).unwrap();
    j.close(log).unwrap();
    let segs = segments(&vfs, Path::new(DB));
    assert!(segs.len() as u64 >= segments_wanted);
    (vfs, segs)
}

/// Truncating the first segment of a never-checkpointed log to 0 bytes (or
/// deleting it) left a log that recovered Ok from a later epoch, reported no
/// damage, and opened. The later segments' headers say where the log
/// begins: the missing prefix is corruption, in durable-prefix mode too.
#[test]
fn a_lost_first_segment_is_corruption_naming_the_missing_epochs() {
    let (vfs, segs) = multi_segment_log(3);
    let second_first = first_epoch(&vfs.contents(&segs[1]).unwrap());
    assert!(second_first > 1);
    for delete in [false, true] {
        let image = vfs.process_crash();
        if delete {
            image.delete(&segs[0]);
        } else {
            image.set_contents(&segs[0], Vec::new());
        }
        for durable_prefix in [false, true] {
            match recover_opts(&image, Path::new(DB), durable_prefix) {
                Err(Error::Corrupt { file, offset, what }) => {
                    assert_eq!(file, segs[1]);
                    assert_eq!(offset, 0);
                    let range = format!("epochs 1..={} are missing", second_first - 1);
                    assert!(what.contains(&range), "{what}");
                    if !delete {
                        assert!(what.contains(&segs[0].display().to_string()), "{what}");
                    }
                }
                other => panic!(
                    "delete={delete} durable_prefix={durable_prefix}: expected corruption, got {:?}",
                    other.map(|r| r.report)
                ),
            }
        }
        assert!(
            matches!(open(&image, SyncPolicy::Full), Err(Error::Corrupt { .. })),
            "a log without its beginning opened"
        );
    }
}

/// The segments a log keeps after losing its first ones still recover when
/// their own headers say the log begins with them: a segment activated
/// after the oldest was gone names the new start.
#[test]
fn the_log_start_follows_the_oldest_live_segment_at_activation() {
    let (vfs, segs) = multi_segment_log(2);
    let image = vfs.process_crash();
    image.delete(&segs[0]);
    // A reopen after the loss is refused (tested above); a log whose
    // segments were activated after segs[0] went away is fine: forge one
    // by rewriting the later headers with a log start at their own first
    // epoch.
    for s in &segs[1..] {
        let data = image.contents(s).unwrap();
        let first = first_epoch(&data);
        let mut h = [0u8; 64];
        h.copy_from_slice(&data[..64]);
        let salt = u64::from_le_bytes(h[16..24].try_into().unwrap());
        image.poke(s, 0, &segment_header(segment_id(s), salt, first, first));
    }
    let r = recover(&image, Path::new(DB)).unwrap();
    assert_eq!(
        r.report.first_epoch,
        first_epoch(&vfs.contents(&segs[1]).unwrap())
    );
    assert!(r.report.damage.is_none(), "{:?}", r.report.damage);
}

/// A log written in format version 1 is refused with an error that names
/// both versions, whatever the recovery mode, and does not open.
#[test]
fn a_version_1_log_is_refused_naming_both_versions() {
    let (vfs, seg) = one_segment_log(2);
    let data = vfs.contents(&seg).unwrap();
    let mut h = [0u8; 64];
    h.copy_from_slice(&data[..64]);
    h[4..6].copy_from_slice(&1u16.to_le_bytes());
    let crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    vfs.poke(&seg, 0, &h);
    let check = |r: pwal::Result<()>| match r {
        Err(Error::Corrupt { file, what, .. }) => {
            assert_eq!(file, seg);
            assert!(
                what.contains("version 1") && what.contains(&format!("version {FORMAT_VERSION}")),
                "{what}"
            );
        }
        other => panic!("expected a version error, got {other:?}"),
    };
    check(recover_opts(&vfs, Path::new(DB), false).map(|_| ()));
    check(recover_opts(&vfs, Path::new(DB), true).map(|_| ()));
    check(open(&vfs, SyncPolicy::Full).map(|_| ()));
    // Nothing was changed by the attempts.
    assert_eq!(vfs.contents(&seg).unwrap()[..64], h[..]);
    let _ = vfs.list_dir(&pwal::log_dir(Path::new(DB))).unwrap();
}

/// The first frame after an open says every epoch on disk is synced. Under
/// `off` nothing was: an open under `full` must sync every segment an `off`
/// writer left (not only the last), or a power loss keeps the new frame,
/// drops the old epochs, and the log is corrupt.
#[test]
fn an_open_after_an_off_writer_syncs_every_segment_it_left() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = open(&vfs, SyncPolicy::Off).unwrap();
    while log.stats().segments_created < 3 {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    let log = open(&vfs, SyncPolicy::Full).unwrap();
    j.commit(&log, j.next_id()).unwrap();
    j.close(log).unwrap();
    let x = Expect::from_events(&j.snapshot());
    let got = check_recovery(&vfs.crash(CrashMode::DropAll), Path::new(DB), &x).unwrap();
    assert_eq!(got.batches.len(), x.acked.len());
}

/// Format version 5: a one-page commit alone in its epoch (one writer under
/// `full`, the log's worst case for bytes written) adds at most 64 bytes to
/// its page, with ids, sequences and page numbers of a busy database; the
/// first frame of a segment carries the segment's identity on top. Version
/// 4 added 148 bytes in a log of two lanes.
#[test]
fn a_one_page_commit_alone_in_its_epoch_adds_at_most_64_bytes() {
    let vfs = SimVfs::new();
    let log = open(&vfs, SyncPolicy::Full).unwrap();
    let page = vec![0x5au8; 4096];
    for i in 0..20u64 {
        let frames = [pwal::Frame {
            page_number: 100_000 + i as u32,
            db_size_if_commit: 200_000,
            data: &page,
        }];
        let txn = pwal::Txn {
            txn_id: 5_000_000 + i,
            commit_seq: 5_000_000 + i,
            txn_epoch: 70_000,
            frames: &frames,
        };
        log.commit(&txn, None).unwrap();
    }
    log.close().unwrap();
    let mut seen = 0;
    for seg in segments(&vfs, Path::new(DB)) {
        let data = vfs.contents(&seg).unwrap();
        seen += overheads_within(&data);
    }
    assert!(seen >= 20, "{seen} frames with pages");
}

/// Checks every frame of a segment against the bound; returns how many hold
/// pages.
fn overheads_within(data: &[u8]) -> usize {
    let mut seen = 0;
    for (i, f) in frames_of_segment(data).iter().enumerate() {
        let body = &data[f.start as usize + f.header_len()..f.end as usize];
        let pages: usize = Rec::all(body)
            .iter()
            .flat_map(|r| &r.frames)
            .map(|p| p.2.len())
            .sum();
        if pages == 0 {
            continue;
        }
        let extra = (f.end - f.start) as usize - pages;
        let bound = if i == 0 { 64 + IDENTITY_LEN } else { 64 };
        assert!(
            extra <= bound,
            "frame {i} (epoch {}) adds {extra} bytes to its page",
            f.epoch
        );
        seen += 1;
    }
    seen
}

/// A recycled spare renamed to the next segment, whose header was torn
/// before the header became durable, still holds the frames of its earlier
/// life: its first frame carries its earlier identity, so the file holds no
/// log data and recovery ignores it (version 5 frames carry no id of their
/// own but for that identity block). Were the stale frame taken for one of
/// this segment's, the damaged header would be reported as corruption.
#[test]
fn a_torn_header_in_front_of_a_stale_first_frame_holds_no_log_data() {
    let (vfs, seg) = one_segment_log(3);
    let clean = recover(&vfs, Path::new(DB)).unwrap();
    let mut data = vfs.contents(&seg).unwrap();
    data[..64].fill(0xa5);
    let next = seg.with_file_name(format!("{:020}.pwseg", segment_id(&seg) + 1));
    vfs.set_contents(&next, data.clone());
    let got = recover(&vfs, Path::new(DB)).expect("a stale file is no damage");
    assert_eq!(got.batches, clean.batches);
    assert_eq!(got.report.last_epoch, clean.report.last_epoch);
    // The same file whose first frame names this segment's id is a segment
    // whose header was damaged in front of its data: corruption at offset 0.
    let f = frames_of_segment(&vfs.contents(&seg).unwrap())[0].clone();
    let own = Ident {
        id: segment_id(&next),
        ..f.ident
    };
    let mut c = f.cert(&data);
    c.epoch = own.first_epoch;
    let body = data[f.start as usize + f.header_len()..f.end as usize].to_vec();
    let frame = [c.encode(&own, &record_crcs(&body)), body].concat();
    replace_frame(&mut data, &f, &frame);
    vfs.set_contents(&next, data);
    match recover(&vfs, Path::new(DB)) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, next);
            assert_eq!(offset, 0);
        }
        other => panic!("expected corruption, got {:?}", other.map(|r| r.report)),
    }
}
