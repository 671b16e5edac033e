//! Damage to each field of a commit certificate, in a frame in the middle of
//! the log and in the last frame, and recovery's exact verdict: in the
//! middle, corruption naming the file, the frame's offset and its epoch (the
//! frames after it say it was synced), with the durable prefix stopping
//! before it; in the last frame, a torn tail with exactly the epochs before
//! it. No record of the damaged epoch is ever delivered.
//!
//! Each field is damaged twice: a flipped bit with the checksum left as it
//! was (the checksum catches it), and a flipped top bit with the checksum
//! recomputed (the field's own check must catch it).

mod common;
#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use layout::*;
use pwal::io::SimVfs;
use pwal::{Error, Log, Options};

const DB: &str = "/sim/db";
const EPOCHS: u64 = 5;

/// A one-segment log of `EPOCHS` epochs, one batch each.
fn base() -> (SimVfs, PathBuf, Vec<FrameLoc>) {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let o = Options {
        segment_bytes: 1 << 20,
        lanes: 2,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    for _ in 0..EPOCHS {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    let seg = segments(&vfs, Path::new(DB)).pop().unwrap();
    let frames = frames_of_segment(&vfs.contents(&seg).unwrap());
    let epochs: Vec<u64> = frames.iter().map(|f| f.epoch).collect();
    assert_eq!(epochs, (1..=EPOCHS).collect::<Vec<_>>());
    (vfs, seg, frames)
}

/// A certificate field: name, offset in the header (lane counts and the
/// checksum are placed by the lane count), size.
fn fields(f: &FrameLoc) -> Vec<(&'static str, usize, usize)> {
    vec![
        ("magic", 0, 4),
        ("version", 4, 2),
        ("lane count", cert::LANES, 2),
        ("segment id", cert::SEGMENT_ID, 8),
        ("segment salt", cert::SALT, 8),
        ("epoch", cert::EPOCH, 8),
        ("first commit sequence", cert::FIRST_SEQ, 8),
        ("last commit sequence", cert::LAST_SEQ, 8),
        ("body length", cert::BODY_LEN, 4),
        ("transaction count", cert::TXN_COUNT, 4),
        ("page-set size", cert::PAGE_SET, 4),
        ("synced through", cert::SYNCED_THROUGH, 8),
        ("checkpoint epoch", cert::CHECKPOINT, 8),
        ("lane 0 count", cert::LANE_COUNTS, 4),
        ("lane 1 count", cert::LANE_COUNTS + 4, 4),
        ("certificate checksum", f.header_len() - 4, 4),
    ]
}

/// The log with one field of frame `f` damaged: the lowest bit flipped
/// (checksum as it was), or the top bit flipped and the checksum recomputed.
fn damaged(
    vfs: &SimVfs,
    seg: &Path,
    f: &FrameLoc,
    at: usize,
    size: usize,
    reseal_it: bool,
) -> SimVfs {
    let image = vfs.process_crash();
    let data = image.contents(seg).unwrap();
    let mut frame = data[f.start as usize..f.end as usize].to_vec();
    if reseal_it {
        frame[at + size - 1] ^= 0x80;
        reseal(&mut frame, f.header_len());
    } else {
        frame[at] ^= 0x01;
    }
    image.poke(seg, f.start, &frame);
    image
}

fn epochs_of(r: &Recovered) -> Vec<u64> {
    let mut e: Vec<u64> = r.order.iter().map(|o| o.0).collect();
    e.dedup();
    e
}

#[test]
fn damage_to_any_certificate_field_of_a_middle_frame_is_corruption_at_that_frame() {
    let (vfs, seg, frames) = base();
    let f = &frames[2];
    for (name, at, size) in fields(f) {
        for reseal_it in [false, true] {
            // The checksum itself cannot be damaged and resealed.
            if reseal_it && name == "certificate checksum" {
                continue;
            }
            let case = format!("{name} (resealed: {reseal_it})");
            let image = damaged(&vfs, &seg, f, at, size, reseal_it);
            match recover(&image, Path::new(DB)) {
                Err(Error::Corrupt { file, offset, what }) => {
                    assert_eq!(file, seg, "{case}");
                    assert_eq!(offset, f.start, "{case}: {what}");
                    assert!(what.contains("epoch 3"), "{case}: {what}");
                }
                other => panic!(
                    "{case}: expected corruption, got {:?}",
                    other.map(|r| r.report)
                ),
            }
            let prefix = recover_opts(&image, Path::new(DB), true).unwrap();
            assert_eq!(epochs_of(&prefix), vec![1, 2], "{case}");
            let damage = prefix.report.damage.as_deref().unwrap_or_default();
            assert!(
                damage.contains(&format!("offset {}", f.start)),
                "{case}: {damage}"
            );
            assert_eq!(prefix.report.skipped_segments, 1, "{case}");
        }
    }
}

#[test]
fn damage_to_any_certificate_field_of_the_last_frame_is_a_torn_tail() {
    let (vfs, seg, frames) = base();
    let f = frames.last().unwrap();
    for (name, at, size) in fields(f) {
        for reseal_it in [false, true] {
            if reseal_it && name == "certificate checksum" {
                continue;
            }
            let case = format!("{name} (resealed: {reseal_it})");
            let image = damaged(&vfs, &seg, f, at, size, reseal_it);
            let r = recover(&image, Path::new(DB))
                .unwrap_or_else(|e| panic!("{case}: expected a torn tail, got {e}"));
            assert_eq!(epochs_of(&r), (1..EPOCHS).collect::<Vec<_>>(), "{case}");
            assert_eq!(r.report.last_epoch, EPOCHS - 1, "{case}");
            assert!(
                r.report.torn_tail_bytes >= f.end - f.start,
                "{case}: {:?}",
                r.report
            );
            let damage = r.report.damage.as_deref().unwrap_or_default();
            assert!(
                damage.contains("torn tail") && damage.contains(&format!("offset {}", f.start)),
                "{case}: {damage}"
            );
        }
    }
}

/// The database size of the certificate is not checked against the records
/// (recovery hands each frame's own `db_size_if_commit` to the caller, never
/// the certificate's): a flip of it with the checksum recomputed leaves a
/// valid frame, and every record is delivered as written.
#[test]
fn a_resealed_database_size_is_not_damage() {
    let (vfs, seg, frames) = base();
    let clean = recover(&vfs, Path::new(DB)).unwrap();
    for f in [&frames[2], frames.last().unwrap()] {
        let image = damaged(&vfs, &seg, f, cert::DB_SIZE, 4, true);
        let r = recover(&image, Path::new(DB)).unwrap();
        assert_eq!(r, clean);
        // Without the reseal the checksum catches it.
        let image = damaged(&vfs, &seg, f, cert::DB_SIZE, 4, false);
        let r = recover_opts(&image, Path::new(DB), true).unwrap();
        assert_eq!(r.report.last_epoch, f.epoch - 1);
    }
}
