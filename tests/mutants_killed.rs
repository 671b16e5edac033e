//! Tests written for mutants that `scripts/mutants.sh` found alive: each one
//! pins down a boundary or a branch of the trust boundary (src/segment.rs,
//! src/epoch.rs, src/recovery.rs) that no other test distinguished. The
//! mutant each test kills is named in its comment.

mod common;
#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::path::Path;
use std::sync::Arc;

use common::*;
use layout::*;
use pwal::io::SimVfs;
use pwal::{Log, Options};

const DB: &str = "/sim/db";

fn opts() -> Options {
    Options {
        segment_bytes: 1 << 20,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// A one-segment log of one epoch (one batch, id 1).
fn one_epoch_log() -> (SimVfs, std::path::PathBuf) {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())).unwrap();
    j.commit(&log, j.next_id()).unwrap();
    j.close(log).unwrap();
    let seg = segments(&vfs, Path::new(DB)).pop().unwrap();
    (vfs, seg)
}

/// Epoch numbers go up to `MAX_EPOCH` inclusive: a segment whose header
/// starts at `MAX_EPOCH` and whose frame is epoch `MAX_EPOCH` is a valid log
/// of that one epoch. Kills `replace > with >= in SegmentHeader::decode`
/// (the header bound), and the same boundary in the frame's own check.
#[test]
fn the_largest_epoch_number_is_still_a_valid_epoch() {
    let (vfs, seg) = one_epoch_log();
    let mut data = vfs.contents(&seg).unwrap();
    let id = segment_id(&seg);
    let salt = u64::from_le_bytes(data[16..24].try_into().unwrap());
    let frames = frames_of_segment(&data);
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    data[..64].copy_from_slice(&segment_header(id, salt, MAX_EPOCH, MAX_EPOCH));
    let frame = &mut data[f.start as usize..f.end as usize];
    frame[cert::EPOCH..cert::EPOCH + 8].copy_from_slice(&MAX_EPOCH.to_le_bytes());
    reseal(frame, f.header_len());
    vfs.set_contents(&seg, data);

    let got = recover(&vfs, Path::new(DB)).expect("a log at the largest epoch recovers");
    assert_eq!(got.report.first_epoch, MAX_EPOCH, "{:?}", got.report);
    assert_eq!(got.report.last_epoch, MAX_EPOCH);
    assert_eq!(got.report.epochs, 1);
    assert_eq!(got.batches.keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(got.batches[&1].epoch, MAX_EPOCH);
    assert_eq!(got.batches[&1].frames, frames_of(1));

    // One above the bound is refused, in the header and in the frame.
    let mut data = vfs.contents(&seg).unwrap();
    data[..64].copy_from_slice(&segment_header(id, salt, MAX_EPOCH + 1, MAX_EPOCH));
    let image = vfs.process_crash();
    image.set_contents(&seg, data);
    assert!(
        matches!(
            recover(&image, Path::new(DB)),
            Err(pwal::Error::Corrupt { .. })
        ),
        "a header above the bound was accepted"
    );
}

/// Every activation of a segment file draws a fresh salt, so a frame left by
/// an earlier life of a recycled file (or by another log that used the same
/// segment id) never passes for one of this segment's frames. Kills
/// `replace new_salt -> u64 with 0` and `with 1`, and the operator mutants
/// of its mixing that make every salt the same.
#[test]
fn every_segment_activation_draws_its_own_salt() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let o = Options {
        segment_bytes: 64 << 10,
        ..opts()
    };
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    // (segment id, salt) of every header seen, across checkpoints that
    // recycle files under new ids.
    let mut seen = std::collections::BTreeMap::new();
    let mut record = |vfs: &SimVfs| {
        for seg in segments(vfs, Path::new(DB)) {
            let data = vfs.contents(&seg).unwrap();
            let salt = u64::from_le_bytes(data[16..24].try_into().unwrap());
            seen.insert(segment_id(&seg), salt);
        }
    };
    for _ in 0..6 {
        for _ in 0..30 {
            j.commit(&log, j.next_id()).unwrap();
        }
        record(&vfs);
        j.checkpoint(&log).unwrap();
    }
    assert!(log.stats().segments_recycled > 0, "no file was recycled");
    j.close(log).unwrap();
    record(&vfs);
    assert!(seen.len() >= 4, "too few segments: {seen:?}");
    let salts: std::collections::BTreeSet<u64> = seen.values().copied().collect();
    assert_eq!(
        salts.len(),
        seen.len(),
        "two activations share a salt: {seen:?}"
    );
    assert!(!salts.contains(&0), "a zero salt: {seen:?}");
}

/// Submits one transaction of pages `sizes` (page i+1 filled with i+1) and,
/// when it is accepted, commits it and checks recovery returns it byte for
/// byte.
fn submit_sizes(sizes: &[usize]) -> pwal::Result<()> {
    let vfs = SimVfs::new();
    // Under `off` no spare is zero-filled: only the frame is written.
    let o = Options {
        segment_bytes: 16 << 20,
        sync: pwal::SyncPolicy::Off,
        ..opts()
    };
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    let pages: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| vec![(i % 251) as u8 + 1; n])
        .collect();
    let frames: Vec<pwal::Frame<'_>> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| pwal::Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: if i + 1 == pages.len() {
                i as u32 + 1
            } else {
                0
            },
            data: p,
        })
        .collect();
    let txn = pwal::Txn {
        txn_id: 7,
        commit_seq: 7,
        txn_epoch: 0,
        frames: &frames,
    };
    let r = log.commit(&txn, None).map(|_| ());
    let closed = log.close();
    if r.is_ok() {
        closed.unwrap();
        let mut got = Vec::new();
        let mut report = pwal::RecoveryReport::default();
        pwal::recover_with_vfs(
            &vfs,
            Path::new(DB),
            &pwal::RecoverOptions::default(),
            &mut |rec: &pwal::Record<'_>| {
                got.push((rec.page_number, rec.data.to_vec()));
                true
            },
            &mut report,
        )
        .unwrap();
        assert_eq!(got.len(), pages.len(), "recovered frame count");
        for (i, (pn, data)) in got.iter().enumerate() {
            assert_eq!(*pn, i as u32 + 1);
            assert_eq!(data, &pages[i], "frame {i} bytes");
        }
    }
    r
}

fn refused(r: pwal::Result<()>, needle: &str) {
    match r {
        Err(pwal::Error::Invalid(m)) => assert!(m.contains(needle), "{m} lacks {needle:?}"),
        other => panic!("expected Invalid ({needle}), got {other:?}"),
    }
}

/// Each limit of a transaction admits its exact maximum and refuses one
/// more. Kills the `>` to `>=` / `==` / `<` mutants of `validate_txn` (page
/// size, frame count, page bytes).
#[test]
fn every_transaction_limit_admits_its_maximum_and_refuses_one_more() {
    use pwal::{MAX_PAGE_BYTES, MAX_TXN_BYTES, MAX_TXN_FRAMES};
    // Page size.
    submit_sizes(&[MAX_PAGE_BYTES]).expect("a page of the maximum size");
    refused(submit_sizes(&[MAX_PAGE_BYTES + 1]), "bytes");
    submit_sizes(&[1]).expect("a one-byte page");
    // Frame count.
    submit_sizes(&vec![1; MAX_TXN_FRAMES]).expect("the maximum frame count");
    refused(submit_sizes(&vec![1; MAX_TXN_FRAMES + 1]), "frames");
    // Page bytes: one byte over the limit is refused before anything is
    // written (the exact maximum, a GiB, is admitted by `validate_txn`'s
    // unit test, which needs no GiB written).
    let mut sizes = vec![MAX_PAGE_BYTES; MAX_TXN_BYTES / MAX_PAGE_BYTES];
    sizes.push(1);
    refused(submit_sizes(&sizes), "bytes of pages");
}
