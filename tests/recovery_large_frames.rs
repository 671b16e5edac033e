//! Frames larger than recovery's 1 MiB read-ahead window, which recovery
//! reads whole into a buffer of their own, their first bytes taken from the
//! window. A log of such frames recovers byte for byte; a byte damaged in
//! the last frame (in the part the window holds, across the window's end,
//! in the rest) or the last frame cut short by the end of its file is a
//! torn tail with exactly the epochs before it; the same damage in a frame
//! that a later frame records as synced is corruption naming the file and
//! the frame's offset. No record of a damaged epoch is delivered.

#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use layout::*;
use pwal::io::SimVfs;
use pwal::{Error, Frame, Log, Options, RecoverOptions, RecoveryReport, Txn};

const DB: &str = "/sim/db";
const EPOCHS: u64 = 3;
/// Pages per transaction and their size: one transaction of about 1.2 MB
/// per epoch, so every frame is larger than the 1 MiB window.
const PAGES: u32 = 30;
const PAGE: usize = 40_000;
const WINDOW: u64 = 1 << 20;

fn page(epoch: u64, p: u32) -> Vec<u8> {
    let mut x = epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(p) << 17;
    (0..PAGE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A one-segment log (the first segment, 4 MiB) of `EPOCHS` epochs of one
/// large transaction each,
/// every one synced before the next is written.
fn base() -> (SimVfs, PathBuf, Vec<FrameLoc>) {
    let vfs = SimVfs::new();
    let o = Options {
        segment_bytes: 64 << 20,
        lanes: 1,
        use_env: false,
        // The logs here end as a process that died right after its last
        // sync leaves them: no close writes a frame vouching for the last
        // epoch, so damage there is a torn tail.
        close_proof: false,
        ..Options::default()
    };
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    for id in 1..=EPOCHS {
        let pages: Vec<Vec<u8>> = (0..PAGES).map(|p| page(id, p)).collect();
        let frames: Vec<Frame<'_>> = pages
            .iter()
            .enumerate()
            .map(|(i, b)| Frame {
                page_number: i as u32 + 1,
                db_size_if_commit: if i as u32 + 1 == PAGES { PAGES } else { 0 },
                data: b,
            })
            .collect();
        let e = log
            .submit(&Txn {
                txn_id: id,
                commit_seq: id,
                txn_epoch: 0,
                frames: &frames,
            })
            .unwrap();
        log.wait_durable(e, None).unwrap();
    }
    log.close().unwrap();
    let seg = segments(&vfs, Path::new(DB)).pop().unwrap();
    let frames = frames_of_segment(&vfs.contents(&seg).unwrap());
    assert_eq!(frames.len() as u64, EPOCHS);
    for f in &frames {
        assert!(
            f.end - f.start > WINDOW + 4096,
            "frame of {} bytes",
            f.end - f.start
        );
    }
    (vfs, seg, frames)
}

/// Recovers; returns the report and, per epoch delivered, the transaction
/// ids and the pages (checked against what was written).
fn recover(vfs: &SimVfs, prefix: bool) -> pwal::Result<(RecoveryReport, Vec<u64>)> {
    let mut epochs = Vec::new();
    let mut report = RecoveryReport::default();
    let mut cb = |r: &pwal::Record<'_>| {
        assert_eq!(r.txn_id, r.epoch, "one transaction per epoch, same number");
        assert_eq!(r.data, &page(r.epoch, r.page_number - 1)[..]);
        if r.page_number == PAGES {
            epochs.push(r.epoch);
        }
        true
    };
    pwal::recover_with_vfs(
        vfs,
        Path::new(DB),
        &RecoverOptions {
            durable_prefix: prefix,
        },
        &mut cb,
        &mut report,
    )?;
    Ok((report, epochs))
}

#[test]
fn a_log_of_large_frames_recovers_whole() {
    let (vfs, _, frames) = base();
    let (report, epochs) = recover(&vfs, false).unwrap();
    assert_eq!(epochs, (1..=EPOCHS).collect::<Vec<_>>());
    assert_eq!(report.records, EPOCHS * u64::from(PAGES));
    assert_eq!(
        report.bytes,
        frames.iter().map(|f| f.end - f.start).sum::<u64>()
    );
    assert_eq!(report.damage, None);
}

/// Offsets in a frame to damage: in its body inside the window, on both
/// sides of the window's end, and near the frame's end.
fn spots(f: &FrameLoc) -> Vec<u64> {
    let body = f.start + f.header_len() as u64;
    vec![
        body + 100,
        f.start + WINDOW - 1,
        f.start + WINDOW,
        f.start + WINDOW + 5000,
        f.end - 3,
    ]
}

fn flip(vfs: &SimVfs, seg: &Path, at: u64) {
    let b = vfs.contents(seg).unwrap()[at as usize];
    vfs.poke(seg, at, &[b ^ 0x20]);
}

#[test]
fn damage_in_the_last_large_frame_is_a_torn_tail() {
    let (_, _, frames) = base();
    let last = frames.last().unwrap().clone();
    for at in spots(&last) {
        let (vfs, seg, _) = base();
        flip(&vfs, &seg, at);
        let (report, epochs) = recover(&vfs, false).unwrap_or_else(|e| panic!("at {at}: {e}"));
        assert_eq!(epochs, (1..EPOCHS).collect::<Vec<_>>(), "at {at}");
        assert_eq!(report.last_epoch, EPOCHS - 1, "at {at}");
        assert!(report.torn_tail_bytes > 0, "at {at}: {report:?}");
        assert_eq!(report.damage_offset, last.start, "at {at}");
        assert_eq!(report.damage_epoch, EPOCHS, "at {at}");
    }
}

#[test]
fn damage_in_a_large_frame_synced_before_the_next_is_corruption() {
    let (_, _, frames) = base();
    let mid = frames[1].clone();
    for at in spots(&mid) {
        let (vfs, seg, _) = base();
        flip(&vfs, &seg, at);
        match recover(&vfs, false) {
            Err(Error::Corrupt { file, offset, .. }) => {
                assert_eq!(file, seg, "at {at}");
                assert_eq!(offset, mid.start, "at {at}");
            }
            other => panic!("at {at}: {other:?}"),
        }
        let (report, epochs) = recover(&vfs, true).unwrap();
        assert_eq!(epochs, vec![1], "at {at}");
        assert_eq!(report.damage_offset, mid.start, "at {at}");
    }
}

#[test]
fn a_large_frame_cut_short_by_the_end_of_the_file_is_a_torn_tail() {
    let (_, _, frames) = base();
    let last = frames.last().unwrap().clone();
    for end in [
        last.start + 100,
        last.start + WINDOW - 1,
        last.start + WINDOW,
        last.start + WINDOW + 1,
        last.end - 1,
    ] {
        let (vfs, seg, _) = base();
        let mut bytes = vfs.contents(&seg).unwrap();
        bytes.truncate(end as usize);
        vfs.set_contents(&seg, bytes);
        let (report, epochs) = recover(&vfs, false).unwrap_or_else(|e| panic!("end {end}: {e}"));
        assert_eq!(epochs, (1..EPOCHS).collect::<Vec<_>>(), "end {end}");
        assert_eq!(report.last_epoch, EPOCHS - 1, "end {end}");
        // The torn bytes end at the last non-zero byte left.
        let torn = report.torn_tail_bytes;
        assert!(torn > 0 && torn <= end - last.start, "end {end}: {torn}");
        assert_eq!(report.damage_offset, last.start, "end {end}");
    }
}
