//! Damage to each field of a commit certificate, in the first frame of the
//! segment (which carries the segment's identity), in a frame in the middle
//! of the log and in the last frame, and recovery's exact verdict: before
//! the last, corruption naming the file, the frame's offset and its epoch
//! (the frames after it say it was synced), with the durable prefix stopping
//! before it; in the last frame, a torn tail with exactly the epochs before
//! it. No record of the damaged epoch is ever delivered.
//!
//! Each field is damaged twice: a flipped bit with the checksum left as it
//! was (the checksum, or the field's own check, catches it), and a value no
//! writer produces with the checksum recomputed: the field's own check must
//! catch it, and the verdict says which.

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
        // The logs here end as a process that died right after its last
        // sync leaves them: no close writes a frame vouching for the last
        // epoch, so damage there is a torn tail.
        close_proof: false,
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

/// A certificate field of frame `f`: its name, where it lies in the header
/// and its length, and a value of it no writer produces (set with the
/// checksum recomputed: the field's own check must catch it). `None` for
/// the checksum itself, and for the magic, flags, tag and identity, which
/// are forged by a flipped bit ([`damaged`]).
type Field = (&'static str, usize, usize, Option<fn(&mut Cert)>);

/// What the verdict on a field forged with the checksum recomputed says.
fn why(name: &str) -> &'static str {
    match name {
        "magic" => "bad epoch magic",
        "flags" => "unknown certificate flags",
        "tag" | "identity" => "another incarnation",
        "epoch" => "is outside 1..=",
        "body length" => "records end at body offset",
        "transaction count" => "runs past the body",
        "page-set size" => "frames, records hold",
        "first commit sequence" | "commit range" => "certificate commit range",
        "synced through" => "synced-through epoch",
        "checkpoint epoch" => "checkpoint epoch",
        other => panic!("no verdict known for {other}"),
    }
}

fn fields(vfs: &SimVfs, seg: &Path, f: &FrameLoc) -> Vec<Field> {
    let data = vfs.contents(seg).unwrap();
    cert_fields(&data[f.start as usize..])
        .into_iter()
        .map(|(name, at, len)| {
            let forge: Option<fn(&mut Cert)> = match name {
                "magic" | "flags" | "tag" | "identity" => None,
                "epoch" => Some(|c| c.epoch = MAX_EPOCH + 1),
                "body length" => Some(|c| c.body_len += 1),
                "transaction count" => Some(|c| c.txn_count += 1),
                "page-set size" => Some(|c| c.page_set += 1),
                "first commit sequence" => Some(|c| c.first_seq -= 1),
                "commit range" => Some(|c| c.last_seq += 1),
                "synced through" => Some(|c| c.synced_through = c.epoch),
                "checkpoint epoch" => Some(|c| c.checkpoint = c.epoch),
                "database size" | "certificate checksum" => None,
                other => panic!("a field this test does not know: {other}"),
            };
            (name, at, len, forge)
        })
        .filter(|(name, ..)| *name != "database size")
        .collect()
}

/// The log with one field of frame `f` damaged: the lowest bit of its first
/// byte flipped (checksum as it was), or forged with `forge` and the
/// checksum recomputed. Magic, flags and tag are forged by flipping their
/// top bit and resealing.
fn damaged(vfs: &SimVfs, seg: &Path, f: &FrameLoc, field: &Field, reseal_it: bool) -> SimVfs {
    let image = vfs.process_crash();
    let mut data = image.contents(seg).unwrap();
    let (name, at, size, forge) = *field;
    if !reseal_it {
        data[f.start as usize + at] ^= 0x01;
    } else if matches!(name, "magic" | "flags" | "tag" | "identity") {
        let frame = &mut data[f.start as usize..f.end as usize];
        frame[at + size - 1] ^= 0x80;
        reseal(frame, f.header_len(), &f.ident);
    } else {
        let new = f.edited(&data, forge.expect("forged"));
        replace_frame(&mut data, f, &new);
    }
    image.set_contents(seg, data);
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
    for f in [&frames[0], &frames[2]] {
        let fields = fields(&vfs, &seg, f);
        assert_eq!(
            fields.iter().any(|x| x.0 == "identity"),
            f.epoch == 1,
            "the first frame, and only it, carries the identity"
        );
        for field in fields {
            let name = field.0;
            for reseal_it in [false, true] {
                // The checksum itself cannot be damaged and resealed.
                if reseal_it && name == "certificate checksum" {
                    continue;
                }
                let case = format!("{name} of epoch {} (resealed: {reseal_it})", f.epoch);
                let image = damaged(&vfs, &seg, f, &field, reseal_it);
                match recover(&image, Path::new(DB)) {
                    Err(Error::Corrupt { file, offset, what }) => {
                        assert_eq!(file, seg, "{case}");
                        assert_eq!(offset, f.start, "{case}: {what}");
                        assert!(
                            what.contains(&format!("epoch {}", f.epoch)),
                            "{case}: {what}"
                        );
                        if reseal_it {
                            assert!(what.contains(why(name)), "{case}: {what}");
                        }
                    }
                    other => panic!(
                        "{case}: expected corruption, got {:?}",
                        other.map(|r| r.report)
                    ),
                }
                let prefix = recover_opts(&image, Path::new(DB), true).unwrap();
                assert_eq!(
                    epochs_of(&prefix),
                    (1..f.epoch).collect::<Vec<_>>(),
                    "{case}"
                );
                let damage = prefix.report.damage.as_deref().unwrap_or_default();
                assert!(
                    damage.contains(&format!("offset {}", f.start)),
                    "{case}: {damage}"
                );
                assert_eq!(prefix.report.skipped_segments, 1, "{case}");
            }
        }
    }
}

#[test]
fn damage_to_any_certificate_field_of_the_last_frame_is_a_torn_tail() {
    let (vfs, seg, frames) = base();
    let f = frames.last().unwrap();
    for field in fields(&vfs, &seg, f) {
        let name = field.0;
        for reseal_it in [false, true] {
            if reseal_it && name == "certificate checksum" {
                continue;
            }
            let case = format!("{name} (resealed: {reseal_it})");
            let image = damaged(&vfs, &seg, f, &field, reseal_it);
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
            if reseal_it {
                // When the last frame ends the file (the segment started
                // empty: no spare was ready at the first commit), a body one
                // byte longer runs past it before the records are read; in a
                // zero-filled spare the records' own check catches it.
                let ends_file = f.end == vfs.contents(&seg).unwrap().len() as u64;
                let want = match name {
                    "body length" if ends_file => "runs past the end of the file",
                    _ => why(name),
                };
                assert!(damage.contains(want), "{case}: {damage}");
            }
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
        let data = vfs.contents(&seg).unwrap();
        let db = cert_fields(&data[f.start as usize..])
            .into_iter()
            .find(|c| c.0 == "database size")
            .unwrap();
        let field: Field = (db.0, db.1, db.2, Some(|c| c.db_size ^= 1));
        let image = damaged(&vfs, &seg, f, &field, true);
        let r = recover(&image, Path::new(DB)).unwrap();
        assert_eq!(r, clean);
        // Without the reseal the checksum catches it.
        let image = damaged(&vfs, &seg, f, &field, false);
        let r = recover_opts(&image, Path::new(DB), true).unwrap();
        assert_eq!(r.report.last_epoch, f.epoch - 1);
    }
}
