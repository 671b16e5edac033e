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
        // The logs here end as a process that died right after its last
        // sync leaves them: no close writes a frame vouching for the last
        // epoch, so damage there is a torn tail.
        close_proof: false,
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
    // The frame, its identity and epoch moved to MAX_EPOCH.
    let moved = Ident {
        first_epoch: MAX_EPOCH,
        ..f.ident
    };
    let mut c = f.cert(&data);
    c.epoch = MAX_EPOCH;
    let body = data[f.start as usize + f.header_len()..f.end as usize].to_vec();
    let frame = [c.encode(&moved, &record_crcs(&body)), body].concat();
    replace_frame(&mut data, f, &frame);
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

// ---------------------------------------------------------------------------
// Transactions in parts, forged small. The engine writes a transaction in
// parts only when it is larger than a record (16 MiB, `tests/large_txn.rs`);
// the format does not care how large a part is, so a log of small records
// whose part and flags fields are rewritten (record CRCs, commit ranges and
// certificates recomputed) is a valid log of transactions in parts, which
// recovery reads in milliseconds.

/// Commits the pages of batch `pages_of` as transaction `txn_id` with
/// commit sequence `seq`, in an epoch of its own; returns the epoch.
fn commit_as(log: &Log, pages_of: u64, txn_id: u64, seq: u64) -> u64 {
    let e = submit_as(log, pages_of, txn_id, seq);
    log.wait_durable(e, None).unwrap();
    e
}

/// Submits the pages of batch `pages_of` as transaction `txn_id` with
/// commit sequence `seq`; returns the epoch.
fn submit_as(log: &Log, pages_of: u64, txn_id: u64, seq: u64) -> u64 {
    let owned = frames_of(pages_of);
    let frames: Vec<pwal::Frame<'_>> = owned
        .iter()
        .map(|(p, d, b)| pwal::Frame {
            page_number: *p,
            db_size_if_commit: *d,
            data: b,
        })
        .collect();
    log.submit(&pwal::Txn {
        txn_id,
        commit_seq: seq,
        txn_epoch: (pages_of % 7) as u32,
        frames: &frames,
    })
    .unwrap()
}

/// Rewrites, in every frame of the log, the records of transaction `txn_id`
/// as `(part, more)` by the frame's epoch (records of epochs not named are
/// left alone), then makes every record, commit range and certificate valid
/// again: the commit range covers only the records that commit.
fn forge_parts(vfs: &SimVfs, txn_id: u64, parts: &[(u64, u32, bool)]) {
    for seg in segments(vfs, Path::new(DB)) {
        let mut data = vfs.contents(&seg).unwrap();
        // Walked from the last frame: a rebuilt frame may change length and
        // move the frames after it, never those before.
        for f in frames_of_segment(&data).iter().rev() {
            rebuild_frame(
                &mut data,
                f,
                |recs| {
                    for r in recs.iter_mut().filter(|r| r.txn_id == txn_id) {
                        if let Some(&(_, part, more)) = parts.iter().find(|p| p.0 == f.epoch) {
                            (r.part, r.more) = (part.into(), more);
                        }
                    }
                },
                |_| (),
            );
        }
        vfs.set_contents(&seg, data);
    }
}

/// Frames delivered per transaction id: (epoch, frames in delivery order).
type Delivered = std::collections::BTreeMap<u64, (u64, Vec<OwnedFrame>)>;

fn recover_parts(vfs: &dyn pwal::io::Vfs) -> pwal::Result<(Delivered, pwal::RecoveryReport)> {
    let mut got = Delivered::new();
    let mut report = pwal::RecoveryReport::default();
    pwal::recover_with_vfs(
        vfs,
        Path::new(DB),
        &pwal::RecoverOptions::default(),
        &mut |r: &pwal::Record<'_>| {
            let e = got.entry(r.txn_id).or_insert((r.epoch, Vec::new()));
            assert_eq!(e.0, r.epoch, "transaction {} in two epochs", r.txn_id);
            e.1.push((r.page_number, r.db_size_if_commit, r.data.to_vec()));
            true
        },
        &mut report,
    )?;
    Ok((got, report))
}

/// A log of: transaction 50 in three parts (epochs 1, 3, 4: the pages of
/// batches 101, 102, 103), whole transactions 1 and 2 in epochs 2 and 5.
/// Returns the epochs written.
fn three_part_log(vfs: &SimVfs) -> Vec<u64> {
    let log = Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())).unwrap();
    let epochs = vec![
        commit_as(&log, 101, 50, 50),
        commit_as(&log, 1, 1, 1),
        commit_as(&log, 102, 50, 50),
        commit_as(&log, 103, 50, 50),
        commit_as(&log, 2, 2, 2),
    ];
    log.close().unwrap();
    assert_eq!(epochs, vec![1, 2, 3, 4, 5], "one epoch per commit");
    forge_parts(vfs, 50, &[(1, 0, true), (3, 1, true), (4, 2, false)]);
    epochs
}

/// The frames of batches `ids`, concatenated.
fn frames_of_all(ids: &[u64]) -> Vec<OwnedFrame> {
    ids.iter().flat_map(|&id| frames_of(id)).collect()
}

/// A transaction in parts is delivered once, whole, in the epoch of its last
/// part, its parts' frames in part order, and counted as one transaction
/// with all its frames as records.
#[test]
fn a_transaction_in_parts_is_delivered_whole_in_the_epoch_of_its_last_part() {
    let vfs = SimVfs::new();
    three_part_log(&vfs);
    let (got, report) = recover_parts(&vfs).unwrap();
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![1, 2, 50]);
    assert_eq!(got[&50].0, 4, "delivered in the epoch of its last part");
    assert!(
        got[&50].1 == frames_of_all(&[101, 102, 103]),
        "the frames of parts 0, 1, 2 in order"
    );
    assert_eq!(got[&1], (2, frames_of(1)));
    assert_eq!(got[&2], (5, frames_of(2)));
    assert_eq!(report.transactions, 3, "{report:?}");
    let frames = frames_of_all(&[101, 102, 103, 1, 2]).len() as u64;
    assert_eq!(report.records, frames, "{report:?}");
    assert_eq!(report.epochs, 5);
}

/// A log of `commits` (pages of batch `.0` as transaction `.1`, commit
/// sequence `.1`), one epoch each, with a checkpoint through the epoch of
/// commit `checkpoint_after` (its index) right after it; then the records of
/// transaction `txn` rewritten as `parts`.
fn parts_log(
    vfs: &SimVfs,
    commits: &[(u64, u64)],
    checkpoint_after: Option<usize>,
    txn: u64,
    parts: &[(u64, u32, bool)],
) {
    let log = Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())).unwrap();
    for (i, &(pages, id)) in commits.iter().enumerate() {
        let e = commit_as(&log, pages, id, id);
        assert_eq!(e, i as u64 + 1, "one epoch per commit");
        if checkpoint_after == Some(i) {
            log.checkpoint(e).unwrap();
        }
    }
    log.close().unwrap();
    forge_parts(vfs, txn, parts);
}

/// A transaction whose last part commits above the checkpoint mark is
/// delivered whole although its first parts lie at or below the mark; one
/// whose last part is at or below the mark is in the database and is not
/// delivered.
#[test]
fn the_checkpoint_mark_decides_by_the_last_part() {
    let vfs = SimVfs::new();
    // Epochs: 1 60/0, 2 50/0, 3 60/1 last, 4 50/1, (mark 4), 5 50/2 last, 6 1.
    parts_log(
        &vfs,
        &[
            (104, 60),
            (101, 50),
            (105, 60),
            (102, 50),
            (103, 50),
            (1, 1),
        ],
        Some(3),
        50,
        &[(2, 0, true), (4, 1, true), (5, 2, false)],
    );
    forge_parts(&vfs, 60, &[(1, 0, true), (3, 1, false)]);
    let (got, report) = recover_parts(&vfs).unwrap();
    assert_eq!(report.checkpoint_epoch, 4, "{report:?}");
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![1, 50]);
    assert_eq!(got[&50].0, 5);
    assert!(got[&50].1 == frames_of_all(&[101, 102, 103]));
    assert_eq!(got[&1], (6, frames_of(1)));
    assert_eq!(report.transactions, 2, "{report:?}");
    assert_eq!(
        report.records,
        frames_of_all(&[101, 102, 103, 1]).len() as u64,
        "{report:?}"
    );
}

/// A part whose earlier parts are not in the log: above the checkpoint mark
/// its transaction was acknowledged and is lost, which is corruption (the
/// durable prefix stops before its epoch); at the mark, its transaction is
/// in the database and the segments of its first parts may be gone, which
/// is no damage. Open decides the same way (it reads the mark late).
#[test]
fn a_part_without_its_earlier_parts_is_damage_above_the_mark_only() {
    // Above the mark: part 1 (last) in epoch 3, part 0 never written.
    let vfs = SimVfs::new();
    parts_log(
        &vfs,
        &[(1, 1), (2, 2), (101, 50), (3, 3)],
        Some(0),
        50,
        &[(3, 1, false)],
    );
    match recover_parts(&vfs) {
        Err(pwal::Error::Corrupt { what: message, .. }) => {
            assert!(message.contains("earlier parts are missing"), "{message}")
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|g| g.1)),
    }
    let r = recover_opts(&vfs, Path::new(DB), true).unwrap();
    assert_eq!(r.batches.keys().copied().collect::<Vec<_>>(), vec![2]);
    assert_eq!(r.report.damage_epoch, 3, "{:?}", r.report);
    assert_eq!(r.report.last_epoch, 2);
    assert!(matches!(
        Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())),
        Err(pwal::Error::Corrupt { .. })
    ));

    // A gap between parts, above the mark: part 0 in epoch 1, part 2 in 3.
    let vfs = SimVfs::new();
    parts_log(
        &vfs,
        &[(101, 50), (1, 1), (102, 50)],
        None,
        50,
        &[(1, 0, true), (3, 2, false)],
    );
    match recover_parts(&vfs) {
        Err(pwal::Error::Corrupt { what: message, .. }) => assert!(
            message.contains("part 2 found where part 1 was expected"),
            "{message}"
        ),
        other => panic!("expected Corrupt, got {:?}", other.map(|g| g.1)),
    }

    // At the mark: part 1 (last) in epoch 2, the mark at 2.
    let vfs = SimVfs::new();
    parts_log(
        &vfs,
        &[(1, 1), (101, 50), (2, 2)],
        Some(1),
        50,
        &[(2, 1, false)],
    );
    let (got, report) = recover_parts(&vfs).unwrap();
    assert_eq!(report.checkpoint_epoch, 2);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![2]);
    assert_eq!(report.transactions, 1);
    assert!(report.damage.is_none(), "{report:?}");
    Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone()))
        .expect("open accepts an orphan at the mark")
        .close()
        .unwrap();
}

/// The callback can stop recovery while the earlier parts of a transaction
/// are delivered: recovery stops there, with the epoch being replayed.
#[test]
fn a_callback_can_stop_recovery_inside_an_earlier_part() {
    let vfs = SimVfs::new();
    three_part_log(&vfs);
    let first = frames_of(101)[0].2.clone();
    let mut seen = 0;
    let mut report = pwal::RecoveryReport::default();
    let r = pwal::recover_with_vfs(
        &vfs,
        Path::new(DB),
        &pwal::RecoverOptions::default(),
        &mut |rec: &pwal::Record<'_>| {
            seen += 1;
            rec.data != first.as_slice()
        },
        &mut report,
    );
    assert!(matches!(r, Err(pwal::Error::Aborted { epoch: 4 })), "{r:?}");
    assert_eq!(seen, frames_of(1).len() + 1, "stopped at once");
}

/// A file system that, once `armed`, applies `change` to the simulated file
/// system before the next `open_read` (once): a file changed by someone else
/// while recovery reads the log.
struct ChangesUnderfoot {
    sim: SimVfs,
    armed: Arc<std::sync::atomic::AtomicBool>,
    change: Box<dyn Fn(&SimVfs) + Send + Sync>,
}

impl pwal::io::Vfs for ChangesUnderfoot {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Box<dyn pwal::io::VfsFile>> {
        self.sim.open(path, create)
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn pwal::io::VfsFile>> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            (self.change)(&self.sim);
        }
        self.sim.open_read(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.sim.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.sim.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.sim.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.sim.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.sim.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.sim.exists(path)
    }
    fn drop_cache(&self, path: &Path) -> std::io::Result<()> {
        self.sim.drop_cache(path)
    }
    fn evict_cache(&self, path: &Path) -> std::io::Result<()> {
        self.sim.evict_cache(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn std::any::Any + Send + Sync>> {
        self.sim.lock(path)
    }
    fn instance_id(&self) -> usize {
        self.sim.instance_id()
    }
}

/// Recovery reads the earlier parts of a transaction again when it reaches
/// the last part; a part whose bytes are no longer those first validated
/// (its pages, or only its stored checksum) is refused, never delivered.
#[test]
fn a_part_changed_on_disk_during_recovery_is_refused() {
    // (offset in the record, from its start) of the byte changed: a page
    // byte, then a byte of the record's stored CRC.
    for what in ["a page byte", "the stored checksum"] {
        let vfs = SimVfs::new();
        three_part_log(&vfs);
        let seg = segments(&vfs, Path::new(DB)).pop().unwrap();
        let f = frames_of_segment(&vfs.contents(&seg).unwrap())[0].clone();
        // Epoch 1 holds one record: part 0 of transaction 50.
        let data = vfs.contents(&seg).unwrap();
        let body = &data[f.start as usize + f.header_len()..f.end as usize];
        let at = match what {
            "a page byte" => Rec::all(body)[0].first_page_byte(),
            _ => 0,
        };
        let byte = f.start as usize + f.header_len() + at;
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fs = ChangesUnderfoot {
            sim: vfs.clone(),
            armed: armed.clone(),
            change: Box::new(move |sim: &SimVfs| {
                let mut data = sim.contents(&seg).unwrap();
                data[byte] ^= 0x20;
                sim.set_contents(&seg, data);
            }),
        };
        let mut delivered = Vec::new();
        let mut report = pwal::RecoveryReport::default();
        let r = pwal::recover_with_vfs(
            &fs,
            Path::new(DB),
            &pwal::RecoverOptions::default(),
            &mut |rec: &pwal::Record<'_>| {
                // Transaction 1 (epoch 2) is delivered after every frame of
                // the segment was read and validated, before part 0 is
                // read again.
                if rec.txn_id == 1 {
                    armed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                delivered.push(rec.txn_id);
                true
            },
            &mut report,
        );
        match r {
            Err(pwal::Error::Corrupt { what: m, .. }) => assert!(
                m.contains("part of transaction 50") && m.contains("changed on disk"),
                "{what}: {m}"
            ),
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(
            !delivered.contains(&50),
            "{what}: a changed part was delivered"
        );
    }
}

/// An open finds the transactions in parts the log replays and keeps the
/// segments of their first parts through a checkpoint below their last
/// part (the writer that wrote them is gone); a checkpoint through the last
/// part releases them.
#[test]
fn an_open_keeps_the_first_parts_of_a_transaction_through_a_checkpoint_below_its_last() {
    let vfs = SimVfs::new();
    // Each BIG batch (80 KB) fills a 64 KiB segment: one epoch per segment.
    let o = Options {
        segment_bytes: 64 << 10,
        ..opts()
    };
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    for (pages, id) in [(BIG | 1, 50), (1, 1), (BIG | 2, 50), (BIG | 3, 50), (2, 2)] {
        commit_as(&log, pages, id, id);
    }
    log.close().unwrap();
    forge_parts(&vfs, 50, &[(1, 0, true), (3, 1, true), (4, 2, false)]);
    let whole = frames_of_all(&[BIG | 1, BIG | 2, BIG | 3]);
    let (got, _) = recover_parts(&vfs).unwrap();
    assert!(got[&50] == (4, whole.clone()));
    let before = segments(&vfs, Path::new(DB)).len();

    // A checkpoint through epoch 3, below the last part.
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    commit_as(&log, 3, 3, 3);
    log.checkpoint(3).unwrap();
    log.close().unwrap();
    let (got, report) = recover_parts(&vfs).expect("the first parts were kept");
    assert_eq!(report.checkpoint_epoch, 3);
    assert!(
        got[&50] == (4, whole),
        "delivered whole after the checkpoint"
    );
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![2, 3, 50]);

    // A checkpoint through the last part releases them.
    let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
    log.checkpoint(4).unwrap();
    log.close().unwrap();
    let (got, report) = recover_parts(&vfs).unwrap();
    assert_eq!(report.checkpoint_epoch, 4);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    let after = segments(&vfs, Path::new(DB)).len();
    assert!(
        after < before,
        "the released segments were removed ({before} then {after})"
    );
}

/// An earlier part is read again from where it lies in its epoch's body,
/// not only when it is the body's first record.
#[test]
fn an_earlier_part_after_another_record_in_its_epoch_is_read_from_its_place() {
    let o = Options { lanes: 1, ..opts() };
    for attempt in 0.. {
        assert!(attempt < 50, "never two records in one epoch");
        let vfs = SimVfs::new();
        let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
        // One lane: records lie in the body in the order submitted.
        let e1 = submit_as(&log, 1, 1, 1);
        let e = submit_as(&log, 101, 50, 50);
        log.wait_durable(e, None).unwrap();
        let last = commit_as(&log, 102, 50, 50);
        log.close().unwrap();
        if e1 != e {
            continue;
        }
        forge_parts(&vfs, 50, &[(e, 0, true), (last, 1, false)]);
        let (got, report) = recover_parts(&vfs).unwrap();
        assert_eq!(got[&1], (e, frames_of(1)));
        assert!(got[&50] == (last, frames_of_all(&[101, 102])));
        assert_eq!(report.transactions, 2);
        return;
    }
}

/// A transaction in parts takes its place in the replay order at its last
/// part: delivered after a higher commit sequence it is a commit sequence
/// inversion (counted, or refused before it is delivered when asked);
/// equal sequences are not inversions.
#[test]
fn a_transaction_in_parts_is_ordered_by_its_last_part() {
    let vfs = SimVfs::new();
    // Epochs: 1 50/0 (sequence 50), 2 60 (60), 3 61 (60), 4 50/1 last (50).
    let log = Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())).unwrap();
    commit_as(&log, 101, 50, 50);
    commit_as(&log, 1, 60, 60);
    commit_as(&log, 2, 61, 60);
    commit_as(&log, 102, 50, 50);
    log.close().unwrap();
    forge_parts(&vfs, 50, &[(1, 0, true), (4, 1, false)]);
    let (got, report) = recover_parts(&vfs).unwrap();
    assert!(got[&50] == (4, frames_of_all(&[101, 102])));
    assert_eq!(report.seq_inversions, 1, "{report:?}");

    let mut o = pwal::ReplayOptions::default();
    o.refuse_seq_inversions = true;
    let mut delivered = Vec::new();
    let mut report = pwal::RecoveryReport::default();
    let r = pwal::replay_with_vfs(
        &vfs,
        Path::new(DB),
        &o,
        &mut |rec: &pwal::Record<'_>| {
            delivered.push(rec.txn_id);
            true
        },
        &mut report,
    );
    match r {
        Err(pwal::Error::Corrupt { what, .. }) => assert!(
            what.contains(
                "commit sequence inversion: transaction 50 with commit sequence 50 in epoch 4"
            ),
            "{what}"
        ),
        other => panic!("expected the inversion refused, got {other:?}"),
    }
    delivered.dedup();
    assert_eq!(
        delivered,
        vec![60, 61],
        "nothing of transaction 50 delivered"
    );
}

// ---------------------------------------------------------------------------
// Recovery's reading of a segment (src/recovery.rs: `FrameReader::window`,
// `read_frame`, `search_after`, and the exits of `scan`). The logs of the
// other tests fit in one read-ahead window (1 MiB) and in one search chunk,
// and no other test counts a torn tail to the byte.

/// Commits `pages` (page i + 1, the last one committing) as transaction
/// `id` with commit sequence `id`, in an epoch of its own; returns it.
fn commit_pages(log: &Log, id: u64, pages: &[Vec<u8>]) -> u64 {
    let frames: Vec<pwal::Frame<'_>> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| pwal::Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: if i + 1 == pages.len() {
                pages.len() as u32
            } else {
                0
            },
            data: p,
        })
        .collect();
    let e = log
        .submit(&pwal::Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: 0,
            frames: &frames,
        })
        .unwrap();
    log.wait_durable(e, None).unwrap();
    e
}

/// Pages of the given sizes, each filled with one byte (never 0, so that
/// the last byte of a frame is not zero, and never one of `PWEP`).
fn filled_pages(sizes: &[usize], fill: u8) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| vec![(fill.wrapping_add(i as u8) % 60) + 1; n])
        .collect()
}

fn corrupt_what(r: pwal::Result<Recovered>) -> (u64, String) {
    match r {
        Err(pwal::Error::Corrupt { offset, what, .. }) => (offset, what),
        other => panic!("expected Corrupt, got {:?}", other.map(|r| r.report)),
    }
}

fn frames_in(vfs: &SimVfs, seg: &Path) -> Vec<FrameLoc> {
    frames_of_segment(&vfs.contents(seg).unwrap())
}

/// Small epochs before the large one: 120 frames of about 9 KiB, more than
/// the read-ahead window holds, so that one of them straddles its end.
const SMALL_EPOCHS: u64 = 120;

/// A 4 MiB segment: `SMALL_EPOCHS` small epochs, one whose frame is
/// `big_len` bytes (above the 1 MiB read-ahead window and search chunk),
/// and a small last one. Returns the file system, the segment and the big
/// transaction's pages.
fn big_frame_log(big_len: usize) -> (SimVfs, std::path::PathBuf, Vec<Vec<u8>>) {
    let o = Options {
        segment_bytes: 4 << 20,
        ..opts()
    };
    let build = |last: usize| {
        let vfs = SimVfs::new();
        let log = Log::open_with_vfs(DB, &o, Arc::new(vfs.clone())).unwrap();
        let mut sizes = vec![65_536; 15];
        sizes.push(last);
        let big = filled_pages(&sizes, 7);
        for id in 1..=SMALL_EPOCHS {
            assert_eq!(
                commit_pages(&log, id, &filled_pages(&[9_000], id as u8)),
                id
            );
        }
        let e = SMALL_EPOCHS + 1;
        assert_eq!(commit_pages(&log, e, &big), e);
        assert_eq!(commit_pages(&log, e + 1, &filled_pages(&[500], 3)), e + 1);
        log.close().unwrap();
        let seg = segments(&vfs, Path::new(DB)).pop().unwrap();
        (vfs, seg, big)
    };
    // The frame's overhead over its pages, measured, then the last page
    // sized for a frame of exactly `big_len` bytes.
    let b = SMALL_EPOCHS as usize;
    let (probe, seg, _) = build(60_000);
    let f = frames_in(&probe, &seg);
    let overhead = (f[b].end - f[b].start) as usize - (15 * 65_536 + 60_000);
    let (vfs, seg, big) = build(big_len - overhead - 15 * 65_536);
    let f = frames_in(&vfs, &seg);
    assert_eq!(f.len(), b + 2);
    assert_eq!((f[b].end - f[b].start) as usize, big_len, "{:?}", f[b]);
    let window_end = 4096 + (1 << 20);
    assert!(
        f[..b]
            .iter()
            .any(|f| f.start < window_end && f.end > window_end),
        "a small frame straddles the end of the first window"
    );
    (vfs, seg, big)
}

/// A frame larger than the read-ahead window is read whole, and the frame
/// after it is read although it lies past the window (the window is
/// refilled), and is counted; when the large frame is damaged, the walk for
/// a later frame proving its epoch synced goes on past its first 1 MiB
/// search chunk, to a frame starting exactly where the second chunk starts.
/// Kills the `FrameReader::window` mutants that keep a window which does
/// not cover the range (`<=` to `>`, `+` to `-` and `*`), and in
/// `search_after` `at_end`'s `+` to `*`, `n - 3` to `n + 3`, `limit == 0`
/// to `!=`, `pos += limit` to `-=` and `*=`; also `report.bytes += len` and
/// `report.segments += 1` to `-=`, `*=`.
#[test]
fn a_frame_larger_than_the_read_ahead_window_and_the_frames_after_it_are_read() {
    // The search after a damaged frame at `off` starts at `off + 1` and
    // reads chunks of 1 MiB + 3 bytes, stepping by 1 MiB: a frame of
    // 1 MiB + 1 bytes puts the next one at the start of the second chunk.
    let big_len = (1 << 20) + 1;
    let (vfs, seg, big) = big_frame_log(big_len);
    let f = frames_in(&vfs, &seg);
    let (b, e) = (SMALL_EPOCHS as usize, SMALL_EPOCHS + 1);
    let got = recover(&vfs, Path::new(DB)).expect("an undamaged log");
    assert_eq!(
        got.batches.keys().copied().collect::<Vec<_>>(),
        (1..=e + 1).collect::<Vec<_>>()
    );
    for id in 1..=SMALL_EPOCHS {
        assert_eq!(
            got.batches[&id].frames[0].2,
            filled_pages(&[9_000], id as u8)[0]
        );
    }
    let big_frames: Vec<OwnedFrame> = big
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let commit = if i + 1 == big.len() {
                big.len() as u32
            } else {
                0
            };
            (i as u32 + 1, commit, p.clone())
        })
        .collect();
    assert!(
        got.batches[&e].frames == big_frames,
        "the large transaction"
    );
    assert_eq!(got.batches[&(e + 1)].frames.len(), 1);
    assert_eq!(
        got.batches[&(e + 1)].frames[0].2,
        filled_pages(&[500], 3)[0]
    );
    assert_eq!(got.report.epochs, e + 1);
    assert_eq!(got.report.segments, 1);
    let bytes: u64 = f.iter().map(|f| f.end - f.start).sum();
    assert_eq!(got.report.bytes, bytes, "bytes of valid frames");

    // Damage a page byte in the middle of the large frame: the last epoch,
    // which records it as synced, makes it corruption.
    let data = vfs.contents(&seg).unwrap();
    assert!(f[b + 1].cert(&data).synced_through >= e);
    let mid = (f[b].start + f[b].end) / 2;
    vfs.poke(&seg, mid, &[data[mid as usize] ^ 0x40]);
    let (offset, what) = corrupt_what(recover(&vfs, Path::new(DB)));
    assert_eq!(offset, f[b].start);
    assert!(
        what.contains(&format!(
            "the frame of epoch {} at offset {}",
            e + 1,
            f[b + 1].start
        )),
        "{what}"
    );
}

/// A log of `commits` small epochs in one 1 MiB segment; returns the
/// segment and its frames.
fn small_log(vfs: &SimVfs, commits: u64) -> (std::path::PathBuf, Vec<FrameLoc>) {
    let j = Journal::new();
    let log = Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())).unwrap();
    wait_for_spare(&log);
    for _ in 0..commits {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.close(log).unwrap();
    let segs = segments(vfs, Path::new(DB));
    assert_eq!(segs.len(), 1);
    let f = frames_in(vfs, &segs[0]);
    assert_eq!(f.len() as u64, commits);
    (segs[0].clone(), f)
}

/// A torn tail is counted to the byte: from the missing epoch to the end
/// of the last valid frame after it (one that does not prove the missing
/// epoch synced), or, with no valid frame after it, to the last non-zero
/// byte. Kills in `search_after` `&&` to `||` (every frame header found
/// taken for a stale one), `pos + last` to `*`, `at + len` to `-` and `*`,
/// `b != 0` to `==` and `pos + last` to `*` (the end of the non-zero
/// bytes), and in `scan` `torn_tail_bytes +=` to `-=` and `- off` to `+`.
#[test]
fn a_torn_tail_is_counted_to_the_last_byte_written() {
    let vfs = SimVfs::new();
    let (seg, f) = small_log(&vfs, 4);
    let mut data = vfs.contents(&seg).unwrap();
    // Nothing after epoch 4 (a closed segment may hold an end mark).
    data[f[3].end as usize..].fill(0);
    // Epoch 4 does not vouch for epoch 3, whose header is damaged.
    let f4 = f[3].edited(&data, |c| c.synced_through = 2);
    assert_eq!(f4.len() as u64, f[3].end - f[3].start);
    replace_frame(&mut data, &f[3], &f4);
    data[f[2].start as usize] ^= 0xff;
    let image = vfs.process_crash();
    image.set_contents(&seg, data.clone());
    let got = recover(&image, Path::new(DB)).expect("a torn tail");
    assert_eq!(got.batches.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(got.report.damage_offset, f[2].start, "{:?}", got.report);
    assert_eq!(got.report.damage_epoch, 3);
    assert_eq!(
        got.report.torn_tail_bytes,
        f[3].end - f[2].start,
        "the torn epoch and the frame written after it: {:?}",
        got.report
    );
    assert_eq!(got.report.segments, 1);

    // Epoch 4's header damaged too: no valid frame after epoch 3, and the
    // tail ends at the last non-zero byte.
    data[f[3].start as usize] ^= 0xff;
    let last = data.iter().rposition(|&b| b != 0).unwrap() as u64;
    assert!(last + 1 < data.len() as u64 && last >= f[3].start);
    let image = vfs.process_crash();
    image.set_contents(&seg, data);
    let got = recover(&image, Path::new(DB)).expect("a torn tail");
    assert_eq!(got.batches.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        got.report.torn_tail_bytes,
        last + 1 - f[2].start,
        "{:?}",
        got.report
    );
}

/// A segment file that ends inside a frame is a torn tail, described as
/// what it is: a frame header cut short, or a frame running past the end;
/// a file ending in fewer zero bytes than a frame header is the ordinary
/// end of the log. Kills in `read_frame` `n < CERT_MAX_LEN` to `>`,
/// `b == 0` to `!=`, and `file_len - off` to `+`.
#[test]
fn a_segment_file_ending_inside_a_frame_is_described_as_such() {
    let vfs = SimVfs::new();
    let (seg, f) = small_log(&vfs, 3);
    let data = vfs.contents(&seg).unwrap();
    let cut = |len: u64| {
        let image = vfs.process_crash();
        let mut d = data[..len as usize].to_vec();
        d[f[2].end.min(len) as usize..].fill(0);
        image.set_contents(&seg, d);
        recover(&image, Path::new(DB)).expect("a torn tail")
    };
    let got = cut(f[2].start + 10);
    let damage = got.report.damage.clone().unwrap_or_default();
    assert!(
        damage.contains("frame header cut short by the end of the file (10 bytes)"),
        "{damage}"
    );
    assert_eq!(got.batches.len(), 2);

    let len = f[2].end - f[2].start;
    assert!(len > 200, "{len}");
    let got = cut(f[2].start + 200);
    let damage = got.report.damage.clone().unwrap_or_default();
    assert!(
        damage.contains(&format!(
            "frame of {len} bytes runs past the end of the file (200 bytes left)"
        )),
        "{damage}"
    );

    let got = cut(f[2].end + 40);
    assert_eq!(got.batches.len(), 3);
    assert_eq!(got.report.damage, None);
    assert_eq!(got.report.torn_tail_bytes, 0);
}

fn small_segments() -> Options {
    Options {
        segment_bytes: 64 << 10,
        ..opts()
    }
}

/// A log of exactly `n` segments of 64 KiB, the last one holding two
/// epochs; returns the segment files.
fn segments_log(vfs: &SimVfs, n: usize) -> Vec<std::path::PathBuf> {
    let j = Journal::new();
    let log = Log::open_with_vfs(DB, &small_segments(), Arc::new(vfs.clone())).unwrap();
    while segments(vfs, Path::new(DB)).len() < n {
        j.commit(&log, j.next_id()).unwrap();
    }
    j.commit(&log, j.next_id()).unwrap();
    j.close(log).unwrap();
    let segs = segments(vfs, Path::new(DB));
    assert_eq!(segs.len(), n);
    assert!(frames_in(vfs, &segs[n - 1]).len() >= 2);
    segs
}

/// Rewrites `synced_through` in every frame of `seg`.
fn set_synced(vfs: &SimVfs, seg: &Path, synced: u64) {
    let mut data = vfs.contents(seg).unwrap();
    for f in frames_of_segment(&data).iter().rev() {
        let new = f.edited(&data, |c| c.synced_through = synced);
        replace_frame(&mut data, f, &new);
    }
    vfs.set_contents(seg, data);
}

/// A torn last epoch in one segment, followed by a later segment (an epoch
/// gap) none of whose frames records it synced: recovery discards the tail
/// and the later segment, and open refuses to continue behind them. When a
/// frame of the later segment does record it synced, it is corruption, and
/// the message names no segment as unreadable. Kills `proof_in` returning
/// a proof, `n.first_epoch < exp` to `>`, `scan_for_open`'s guard `n > 0` to
/// `false` and `>` to `<`, and in `unreadable_before` `&&` to `||`.
#[test]
fn a_torn_tail_before_a_later_segment_that_does_not_vouch_for_it() {
    let vfs = SimVfs::new();
    let segs = segments_log(&vfs, 2);
    let fa = frames_in(&vfs, &segs[0]);
    let last = fa.last().unwrap().clone();
    let b_len = vfs.contents(&segs[1]).unwrap().len() as u64;
    let b_first = frames_in(&vfs, &segs[1])[0].clone();
    assert_eq!(b_first.epoch, last.epoch + 1);
    // The last epoch of the first segment damaged in its body.
    let mid = (last.start + last.end) / 2;
    let byte = vfs.contents(&segs[0]).unwrap()[mid as usize];
    vfs.poke(&segs[0], mid, &[byte ^ 0x40]);

    let proven = vfs.process_crash();
    set_synced(&vfs, &segs[1], last.epoch - 1);
    let got = recover(&vfs, Path::new(DB)).expect("a torn tail");
    assert_eq!(got.report.last_epoch, last.epoch - 1, "{:?}", got.report);
    assert_eq!(got.report.damage_offset, last.start);
    assert!(
        got.report.torn_tail_bytes > b_len - 4096,
        "{:?}",
        got.report
    );
    assert_eq!(got.report.segments, 1);
    let damage = got.report.damage.unwrap();
    assert!(
        damage.contains("with the 1 later segment files, which no frame shows synced"),
        "{damage}"
    );
    match Log::open_with_vfs(DB, &small_segments(), Arc::new(vfs.clone())) {
        Err(pwal::Error::Corrupt { what, .. }) => {
            assert!(what.contains("1 later segment files follow it"), "{what}")
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }

    // The later segment as written: its first frame vouches for the epoch.
    let data = proven.contents(&segs[1]).unwrap();
    assert!(b_first.cert(&data).synced_through >= last.epoch);
    let (offset, what) = corrupt_what(recover(&proven, Path::new(DB)));
    assert_eq!(offset, last.start);
    assert!(what.contains("(an epoch gap)"), "{what}");
    assert!(!what.contains("no valid header"), "{what}");
}

/// A later segment whose header starts at an epoch the segment before it
/// already holds is an overlap, said so. Kills `n.first_epoch < exp` to
/// `==`.
#[test]
fn a_later_segment_starting_inside_the_epochs_before_it_is_an_overlap() {
    let vfs = SimVfs::new();
    let segs = segments_log(&vfs, 2);
    let last = frames_in(&vfs, &segs[0]).last().unwrap().epoch;
    let mut data = vfs.contents(&segs[1]).unwrap();
    let (id, salt, log_start) = (rd64(&data, 8), rd64(&data, 16), rd64(&data, 32));
    data[..64].copy_from_slice(&segment_header(id, salt, last, log_start));
    vfs.set_contents(&segs[1], data);
    let (_, what) = corrupt_what(recover(&vfs, Path::new(DB)));
    assert!(what.contains("(epochs overlap)"), "{what}");
}

/// A segment whose header was damaged in front of a valid first frame cuts
/// the durable prefix there: it and every later segment are skipped, and
/// their bytes counted. Kills `s.id >= seg.id` to `<` (the segments before
/// it counted instead) and the `skipped_bytes` mutants (`+=` to `-=`, `*=`,
/// `+` to `-`, `*`).
#[test]
fn a_damaged_segment_header_skips_it_and_every_later_segment() {
    let vfs = SimVfs::new();
    let segs = segments_log(&vfs, 3);
    let len = |p: &Path| vfs.contents(p).unwrap().len() as u64;
    let a_last = frames_in(&vfs, &segs[0]).last().unwrap().epoch;
    let mut data = vfs.contents(&segs[1]).unwrap();
    data[24] ^= 1;
    vfs.set_contents(&segs[1], data);
    let (offset, _) = corrupt_what(recover(&vfs, Path::new(DB)));
    assert_eq!(offset, 0);
    let got = recover_opts(&vfs, Path::new(DB), true).expect("the durable prefix");
    assert_eq!(got.report.last_epoch, a_last, "{:?}", got.report);
    assert_eq!(got.report.skipped_segments, 2, "{:?}", got.report);
    assert_eq!(
        got.report.skipped_bytes,
        len(&segs[1]) + len(&segs[2]) - 4096,
        "{:?}",
        got.report
    );
}

/// After a checkpoint through the last epoch of the oldest segment, which
/// removes it, the log begins exactly one epoch after the mark: that is no
/// lost beginning. Kills `first > must` to `>=`.
#[test]
fn a_log_beginning_right_after_its_checkpoint_mark_is_whole() {
    let vfs = SimVfs::new();
    let j = Journal::new();
    let log = Log::open_with_vfs(DB, &small_segments(), Arc::new(vfs.clone())).unwrap();
    while segments(&vfs, Path::new(DB)).len() < 2 {
        j.commit(&log, j.next_id()).unwrap();
    }
    let segs = segments(&vfs, Path::new(DB));
    let mark = frames_in(&vfs, &segs[0]).last().unwrap().epoch;
    log.checkpoint(mark).unwrap();
    j.commit(&log, j.next_id()).unwrap();
    j.close(log).unwrap();
    let now = segments(&vfs, Path::new(DB));
    assert_eq!(now, segs[1..].to_vec(), "the first segment was removed");
    let data = vfs.contents(&now[0]).unwrap();
    assert_eq!(first_epoch(&data), mark + 1);
    assert!(
        rd64(&data, 32) < mark + 1,
        "the header names an older log start"
    );
    let got = recover(&vfs, Path::new(DB)).expect("a whole log");
    assert_eq!(got.report.checkpoint_epoch, mark);
    assert_eq!(got.report.first_epoch, mark + 1);
    assert!(got.report.damage.is_none(), "{:?}", got.report);
}

/// `recover_and_open` on a log this process already has open replays
/// nothing and must say so instead of returning a handle. Kills the guard
/// `!ran` to `false` in `recover_and_open_with_vfs`.
#[test]
fn recover_and_open_refuses_a_log_already_open_in_this_process() {
    let vfs = SimVfs::new();
    let shared: Arc<dyn pwal::io::Vfs> = Arc::new(vfs.clone());
    let log = Log::open_with_vfs(DB, &opts(), shared.clone()).unwrap();
    commit_pages(&log, 1, &filled_pages(&[100], 1));
    let mut report = pwal::RecoveryReport::default();
    let r = pwal::recover_and_open_with_vfs(
        shared,
        Path::new(DB),
        &opts(),
        &pwal::ReplayOptions::default(),
        Box::new(|_: &pwal::Record<'_>| true),
        &mut report,
    );
    match r {
        Err(pwal::Error::Invalid(m)) => assert!(m.contains("already open"), "{m}"),
        other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
    }
    log.close().unwrap();
}
