//! Stable fuzzing of recovery (no nightly needed): replays the saved corpus
//! of `fuzz/corpus/` and then mutates valid logs at random (bit flips, byte
//! runs, truncations, splices within and across files, swapped, deleted,
//! duplicated and extended files) and recovers each over the simulated file
//! system. Recovery must never panic, never make one allocation larger than
//! the log's largest file (or its fixed 1 MiB search buffer), and always
//! return either a contiguous run of the original epochs that starts where
//! the log begins, each epoch whole and byte for byte, or `Error::Corrupt`
//! naming a file and an offset.
//!
//! For in-place damage of one segment (flips and overwrites) the outcome is
//! exact: damage in no frame leaves every epoch; damage in a frame that a
//! valid frame follows is corruption (the logs are written under
//! `sync=full`, so every later frame says the damaged epoch was synced);
//! damage in the last frames only is a torn tail, and recovery returns
//! exactly the epochs before it.
//!
//! `PWAL_FUZZ_ITERS=<n>` (default 100 000), `PWAL_FUZZ_SEED=<seed>`.

mod common;
#[allow(dead_code)]
#[path = "recovery_layout/mod.rs"]
mod layout;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use pwal::fuzzing::{bytes_from_log_dir, decode_epoch_frame, log_dir_from_bytes, FUZZ_DB};
use pwal::io::sim::SplitMix;
use pwal::io::SimVfs;
use pwal::{log_dir, Error, Log, Options};

/// Records the largest single allocation made by this thread while armed.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(new)));
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// recovery's search buffer (recovery.rs `search_after`).
const SEARCH_CHUNK: usize = (1 << 20) + 3;

/// One epoch frame of a base log: where it lies.
#[derive(Clone, Debug)]
struct FrameLoc {
    file: usize,
    start: u64,
    end: u64,
    epoch: u64,
}

/// A valid log to mutate: its files (segments and spares, zero tails
/// trimmed), its epochs in order with their batch ids, and its frames.
struct Base {
    files: Vec<(PathBuf, Vec<u8>)>,
    epochs: BTreeMap<u64, Vec<u64>>,
    frames: Vec<FrameLoc>,
    expect: Expect,
    /// The durable checkpoint mark of the log as built.
    mark: u64,
}

fn dir() -> PathBuf {
    log_dir(Path::new(FUZZ_DB))
}

fn opts(seg: u64) -> Options {
    Options {
        segment_bytes: seg,
        lanes: 2,
        use_env: false,
        // The logs here end as a process that died right after its last
        // sync leaves them: no close writes a frame vouching for the last
        // epoch, so damage there is a torn tail.
        close_proof: false,
        ..Options::default()
    }
}

/// Three small segments (one per open), or (`recycled`) a log whose
/// segments were recycled, so stale frames of earlier lives lie in them.
fn build_base(recycled: bool) -> Base {
    let vfs = SimVfs::new();
    let j = Journal::new();
    if recycled {
        let log = Log::open_with_vfs(FUZZ_DB, &opts(64 << 10), Arc::new(vfs.clone())).unwrap();
        for i in 0..90 {
            j.commit(&log, j.next_id()).unwrap();
            // The last 30 epochs move the log into new segments, whose
            // headers name the log's start after the checkpoints.
            if i % 30 == 29 && i < 60 {
                j.checkpoint(&log).unwrap();
            }
        }
        j.close(log).unwrap();
    } else {
        for _ in 0..3 {
            let log = Log::open_with_vfs(FUZZ_DB, &opts(64 << 10), Arc::new(vfs.clone())).unwrap();
            for k in 0..4 {
                if k == 3 {
                    // Several batches in one epoch.
                    let ids: Vec<(u64, u64)> = (0..3)
                        .map(|_| {
                            let id = j.next_id();
                            (id, j.submit(&log, id).unwrap())
                        })
                        .collect();
                    for (id, e) in ids {
                        j.wait(&log, id, e).unwrap();
                    }
                } else {
                    j.commit(&log, j.next_id()).unwrap();
                }
            }
            j.close(log).unwrap();
        }
    }
    let mut files = Vec::new();
    for p in vfs.paths() {
        let mut data = vfs.contents(&p).unwrap();
        let keep = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        data.truncate((keep + 128).min(data.len()));
        files.push((p, data));
    }
    let got = recover(&vfs, Path::new(FUZZ_DB)).unwrap();
    let mut epochs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (e, _, id) in &got.order {
        epochs.entry(*e).or_default().push(*id);
    }
    let mut frames = Vec::new();
    for (i, (p, data)) in files.iter().enumerate() {
        if p.extension().is_some_and(|x| x == "pwseg") && data.len() >= 64 {
            for f in layout::frames_of_segment(data) {
                frames.push(FrameLoc {
                    file: i,
                    start: f.start,
                    end: f.end,
                    epoch: f.epoch,
                });
            }
        }
    }
    assert_eq!(frames.len() as u64, got.report.epochs, "frame walk");
    // Epochs without transactions (a checkpoint mark written at close) are
    // epochs too: damage before one is damage before valid data.
    for f in &frames {
        epochs.entry(f.epoch).or_default();
    }
    let mut expect = Expect::from_events(&j.snapshot());
    expect.acked.clear();
    // A recovered run of epochs must start where this log begins: a lost
    // beginning is not a prefix.
    let first = *epochs.keys().next().expect("the base log has epochs");
    expect.checkpointed = first - 1;
    Base {
        files,
        epochs,
        frames,
        expect,
        mark: got.report.checkpoint_epoch,
    }
}

/// What a mutation did, when the outcome is exact.
enum Damage {
    /// Bytes [start, end) of file `file` changed in place.
    InPlace { file: usize, start: u64, end: u64 },
    /// Anything else: only the general oracle applies.
    Other,
}

fn mutate(base: &Base, rng: &mut SplitMix) -> (Vec<(PathBuf, Vec<u8>)>, Damage, &'static str) {
    let mut files = base.files.clone();
    let n = files.len();
    let pick = |rng: &mut SplitMix, files: &Vec<(PathBuf, Vec<u8>)>| -> (usize, usize) {
        // Segments more often than spares.
        let segs: Vec<usize> = (0..files.len())
            .filter(|&i| files[i].0.extension().is_some_and(|x| x == "pwseg"))
            .collect();
        let f = if !segs.is_empty() && rng.below(5) != 0 {
            segs[rng.below(segs.len() as u64) as usize]
        } else {
            rng.below(files.len() as u64) as usize
        };
        (f, files[f].1.len())
    };
    // Offsets favour the frames and the segment header.
    let offset = |rng: &mut SplitMix, len: usize| -> usize {
        if len == 0 {
            return 0;
        }
        match rng.below(4) {
            0 => rng.below(64.min(len) as u64) as usize,
            1 => rng.below(len as u64) as usize,
            _ => (4096 + rng.below(len.saturating_sub(4096).max(1) as u64) as usize).min(len - 1),
        }
    };
    match rng.below(10) {
        0..=3 => {
            let (f, len) = pick(rng, &files);
            if len == 0 {
                return (files, Damage::Other, "flip");
            }
            let at = offset(rng, len);
            files[f].1[at] ^= 1 << rng.below(8);
            let damage = Damage::InPlace {
                file: f,
                start: at as u64,
                end: at as u64 + 1,
            };
            (files, damage, "bit flip")
        }
        4 => {
            let (f, len) = pick(rng, &files);
            if len == 0 {
                return (files, Damage::Other, "overwrite");
            }
            let at = offset(rng, len);
            let run = (1 + rng.below(64) as usize).min(len - at);
            let v = rng.next_u64() as u8;
            let before = files[f].1[at..at + run].to_vec();
            for b in &mut files[f].1[at..at + run] {
                *b = if rng.below(2) == 0 {
                    v
                } else {
                    rng.next_u64() as u8
                };
            }
            if before == files[f].1[at..at + run] {
                return (files, Damage::Other, "overwrite");
            }
            let damage = Damage::InPlace {
                file: f,
                start: at as u64,
                end: (at + run) as u64,
            };
            (files, damage, "overwrite")
        }
        5 => {
            let (f, len) = pick(rng, &files);
            let at = offset(rng, len.max(1)).min(len);
            files[f].1.truncate(at);
            (files, Damage::Other, "truncate")
        }
        6 => {
            let (a, la) = pick(rng, &files);
            let (b, lb) = pick(rng, &files);
            if la == 0 || lb == 0 {
                return (files, Damage::Other, "splice");
            }
            let from = offset(rng, la);
            let run = (1 + rng.below(2048) as usize).min(la - from);
            let chunk = files[a].1[from..from + run].to_vec();
            let to = offset(rng, lb);
            let end = (to + run).min(lb);
            files[b].1[to..end].copy_from_slice(&chunk[..end - to]);
            (files, Damage::Other, "splice")
        }
        7 => {
            let a = rng.below(n as u64) as usize;
            let b = rng.below(n as u64) as usize;
            let tmp = files[a].1.clone();
            files[a].1 = files[b].1.clone();
            files[b].1 = tmp;
            (files, Damage::Other, "swap files")
        }
        8 => {
            let a = rng.below(n as u64) as usize;
            if rng.below(2) == 0 {
                files.remove(a);
                (files, Damage::Other, "delete file")
            } else {
                let id = 90 + rng.below(20);
                let copy = files[a].1.clone();
                files.push((dir().join(format!("{id:020}.pwseg")), copy));
                (files, Damage::Other, "duplicate file")
            }
        }
        _ => {
            let (f, _) = pick(rng, &files);
            let extra = 1 + rng.below(4096) as usize;
            let zeros = rng.below(2) == 0;
            for _ in 0..extra {
                let b = if zeros { 0 } else { rng.next_u64() as u8 };
                files[f].1.push(b);
            }
            (files, Damage::Other, "extend file")
        }
    }
}

/// Checks the outcome of recovering mutated `files`; returns what is wrong.
fn judge(
    base: &Base,
    files: &[(PathBuf, Vec<u8>)],
    damage: &Damage,
    result: pwal::Result<Recovered>,
) -> Result<(), String> {
    let exact = match damage {
        Damage::InPlace { file, start, end } => {
            let hit: Vec<u64> = base
                .frames
                .iter()
                .filter(|f| f.file == *file && f.start < *end && *start < f.end)
                .map(|f| f.epoch)
                .collect();
            let is_seg = base.files[*file]
                .0
                .extension()
                .is_some_and(|x| x == "pwseg");
            // Only a change to the 64 header bytes counts: an overwrite that
            // starts inside the header may leave them as they were and go on
            // into the reserved zeros before offset 4096, which hold nothing.
            let header_hit = is_seg && *start < 64 && {
                let hi = (*end).min(64) as usize;
                base.files[*file].1[*start as usize..hi] != files[*file].1[*start as usize..hi]
            };
            let seg_has_frames = base.frames.iter().any(|f| f.file == *file);
            // Damage wholly at or below the durable checkpoint mark costs
            // nothing (those pages are in the database): every epoch is
            // recovered as before.
            let seg_above_mark = base
                .frames
                .iter()
                .any(|f| f.file == *file && f.epoch > base.mark);
            let below_mark = if header_hit {
                seg_has_frames && !seg_above_mark
            } else {
                !hit.is_empty() && hit.iter().all(|&e| e <= base.mark)
            };
            Some(if below_mark {
                Some(u64::MAX)
            } else if header_hit && seg_has_frames {
                // A segment whose header no longer validates but whose frames
                // do: acknowledged epochs would vanish.
                None
            } else if let Some(&e0) = hit.iter().min() {
                let later_intact = base.epochs.keys().any(|&e| e > e0 && !hit.contains(&e));
                if later_intact {
                    None
                } else {
                    Some(e0)
                }
            } else {
                Some(u64::MAX)
            })
        }
        Damage::Other => None,
    };
    match result {
        Err(Error::Corrupt { file, offset, what }) => {
            if !files.iter().any(|(p, _)| *p == file) || what.is_empty() {
                return Err(format!(
                    "corruption names no file of the log: {file:?} {offset}"
                ));
            }
            if let Some(Some(e0)) = exact {
                return Err(format!(
                    "damage leaves a torn tail from epoch {e0} (or nothing), yet recovery failed: {file:?} offset {offset}: {what}"
                ));
            }
            Ok(())
        }
        Err(e) => Err(format!(
            "recovery failed with something else than Corrupt: {e}"
        )),
        Ok(r) => {
            check_recovered(&r, &base.expect)?;
            let mut by_epoch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for (e, _, id) in &r.order {
                by_epoch.entry(*e).or_default().push(*id);
            }
            // Epochs without transactions are replayed too (they carry no
            // record): the report's range says which.
            if r.report.epochs > 0 {
                for e in r.report.first_epoch..=r.report.last_epoch {
                    by_epoch.entry(e).or_default();
                }
            }
            for (e, ids) in &by_epoch {
                if base.epochs.get(e) != Some(ids) {
                    return Err(format!(
                        "epoch {e} recovered with batches {ids:?}, originally {:?}",
                        base.epochs.get(e)
                    ));
                }
            }
            match exact {
                Some(None) => Err(format!(
                    "damage before intact later data was not reported as corruption (recovered epochs {:?}, report {:?})",
                    by_epoch.keys().collect::<Vec<_>>(),
                    r.report
                )),
                Some(Some(e0)) => {
                    // Damage read past at or below the mark leaves those
                    // checkpointed epochs unread: compare the epochs above it.
                    let below_mark = r
                        .report
                        .damage
                        .as_deref()
                        .is_some_and(|d| d.contains("at or below the checkpoint mark"));
                    let floor = if below_mark { base.mark } else { 0 };
                    let want: Vec<u64> = base
                        .epochs
                        .keys()
                        .copied()
                        .filter(|&e| e < e0 && e > floor)
                        .collect();
                    let got: Vec<u64> = by_epoch.keys().copied().filter(|&e| e > floor).collect();
                    if want != got {
                        Err(format!("expected epochs {want:?}, recovered {got:?}"))
                    } else {
                        Ok(())
                    }
                }
                None => Ok(()),
            }
        }
    }
}

fn files_to_vfs(files: &[(PathBuf, Vec<u8>)]) -> SimVfs {
    let vfs = SimVfs::new();
    for (p, d) in files {
        vfs.set_contents(p, d.clone());
    }
    vfs
}

fn recover_measured(vfs: &SimVfs) -> (pwal::Result<Recovered>, usize) {
    LARGEST.with(|c| c.set(0));
    let r = recover(vfs, Path::new(FUZZ_DB));
    (r, LARGEST.with(|c| c.get()))
}

#[test]
fn random_mutations_of_valid_logs_recover_a_prefix_or_fail_with_corruption() {
    let iters = env_u64("PWAL_FUZZ_ITERS", 100_000);
    let seed = env_u64("PWAL_FUZZ_SEED", 0x00f0_22ed);
    let started = Instant::now();
    let bases = [build_base(false), build_base(true)];
    let mut rng = SplitMix(seed);
    let mut outcomes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for i in 0..iters {
        let base = &bases[usize::from(rng.below(8) == 0)];
        let case_seed = rng.next_u64();
        let mut crng = SplitMix(case_seed);
        let (files, damage, what) = mutate(base, &mut crng);
        let vfs = files_to_vfs(&files);
        let largest_file = files.iter().map(|(_, d)| d.len()).max().unwrap_or(0);
        let (result, largest) = recover_measured(&vfs);
        let ok = result.is_ok();
        let verdict = judge(base, &files, &damage, result).and_then(|()| {
            if largest > SEARCH_CHUNK.max(largest_file) + 4096 {
                Err(format!("one allocation of {largest} bytes for a log whose largest file is {largest_file}"))
            } else {
                Ok(())
            }
        });
        if let Err(m) = verdict {
            let dump = scratch("fuzz-failure");
            let _ = vfs.dump_to(&dump);
            panic!(
                "fuzz iteration {i} ({what}, case seed {case_seed:#x}): {m}\nthe log is in {}\nreplay: PWAL_FUZZ_SEED={seed:#x} PWAL_FUZZ_ITERS={} cargo test --test fuzz_recovery -- --nocapture",
                dump.display(),
                i + 1
            );
        }
        let o = outcomes.entry(what).or_default();
        if ok {
            o.0 += 1
        } else {
            o.1 += 1
        }
    }
    println!(
        "recovery fuzz: {iters} mutated logs in {:.1} s (mutation: recovered ok / corrupt): {outcomes:?}",
        started.elapsed().as_secs_f64()
    );
}

/// Every file of `fuzz/corpus/` through both fuzz targets' code paths, with
/// the outcome each must have: the corpus holds whole frames (named
/// `frame-<log>-epoch-<epoch>`) and whole valid logs (`valid-log-<n>`).
#[test]
fn the_saved_fuzz_corpus_replays_to_its_exact_outcomes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut n = 0;
    for target in ["epoch_frame", "recovery"] {
        let entries = std::fs::read_dir(root.join(target))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"));
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let bytes = std::fs::read(&path).unwrap();
            n += 1;
            if target == "epoch_frame" {
                let epoch: u64 = name
                    .rsplit("-epoch-")
                    .next()
                    .and_then(|e| e.parse().ok())
                    .unwrap_or_else(|| panic!("corpus file {name}: no epoch in the name"));
                match decode_epoch_frame(&bytes) {
                    Ok((got, txns)) => {
                        assert_eq!(got, epoch, "corpus file {name}");
                        assert!(txns > 0, "corpus file {name}: no transactions");
                    }
                    Err(why) => panic!("corpus file {name} does not decode: {why}"),
                }
            } else {
                assert!(
                    name.starts_with("valid-log-"),
                    "unexpected corpus file {name}"
                );
                let vfs = log_dir_from_bytes(&bytes);
                let r = recover(&vfs, Path::new(FUZZ_DB))
                    .unwrap_or_else(|e| panic!("corpus file {name}: recovery failed: {e}"));
                assert!(r.report.damage.is_none(), "{name}: {:?}", r.report.damage);
                assert!(r.report.epochs > 1, "{name}: {:?}", r.report);
                assert_eq!(
                    r.report.epochs,
                    r.report.last_epoch - r.report.first_epoch + 1,
                    "{name}"
                );
            }
        }
    }
    println!("fuzz corpus: {n} inputs replayed");
    assert!(n >= 3, "fuzz/corpus is missing inputs");
}

/// Writes the seed corpus; run after a format change with
/// `scripts/fuzz-corpus.sh` (`cargo test --release --test fuzz_recovery
/// write_seed_corpus -- --ignored`).
#[test]
#[ignore = "writes fuzz/corpus; run by scripts/fuzz-corpus.sh"]
fn write_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (k, base) in [build_base(false), build_base(true)].iter().enumerate() {
        let dir = root.join("recovery");
        if k == 0 {
            // Files named after the epochs of an older format would linger.
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir_all(root.join("epoch_frame"));
        }
        std::fs::create_dir_all(&dir).unwrap();
        let entries: Vec<(u8, u16, Vec<u8>)> = base
            .files
            .iter()
            .map(|(p, d)| {
                let name = p.file_name().unwrap().to_str().unwrap();
                if let Some(id) = name.strip_suffix(".pwseg") {
                    (0, id.parse().unwrap(), d.clone())
                } else {
                    let id = name.trim_start_matches("spare-").trim_end_matches(".tmp");
                    (1, id.parse().unwrap_or(0), d.clone())
                }
            })
            .collect();
        std::fs::write(
            dir.join(format!("valid-log-{k}")),
            bytes_from_log_dir(&entries),
        )
        .unwrap();
        let fdir = root.join("epoch_frame");
        std::fs::create_dir_all(&fdir).unwrap();
        for f in base.frames.iter().take(4) {
            let seg = &base.files[f.file].1;
            // The segment's identity, then the frame.
            let data = [&seg[8..32], &seg[f.start as usize..f.end as usize]].concat();
            std::fs::write(fdir.join(format!("frame-{k}-epoch-{}", f.epoch)), data).unwrap();
        }
    }
}

/// A frame's record count is checked against its CRC only after its
/// records; before, it bounds nothing but the body's length over the
/// smallest record. Recovery sized its index of the frame's records by the
/// count, so a damaged count in a 1.5 MiB frame, in a file no larger,
/// allocated 5 MB at once (an index entry is larger than the smallest
/// record). The index now grows with the records read.
#[test]
fn a_damaged_record_count_sizes_no_allocation_beyond_the_file() {
    let vfs = SimVfs::new();
    let log = Log::open_with_vfs(
        FUZZ_DB,
        &Options {
            use_env: false,
            ..Options::default()
        },
        Arc::new(vfs.clone()),
    )
    .unwrap();
    let page = vec![0x3cu8; 4096];
    let frames: Vec<pwal::Frame<'_>> = (1..=384)
        .map(|n| pwal::Frame {
            page_number: n,
            db_size_if_commit: 0,
            data: &page,
        })
        .collect();
    let txn = pwal::Txn {
        txn_id: 1,
        commit_seq: 1,
        txn_epoch: 0,
        frames: &frames,
    };
    log.commit(&txn, None).unwrap();
    log.close().unwrap();
    let dir = log_dir(Path::new(FUZZ_DB));
    let (seg, f) = vfs
        .paths()
        .into_iter()
        .filter(|p| p.parent() == Some(&dir) && p.extension().is_some_and(|x| x == "pwseg"))
        .find_map(|p| {
            let data = vfs.contents(&p).unwrap();
            let big = layout::frames_of_segment(&data)
                .into_iter()
                .find(|f| f.end - f.start > 1 << 20)?;
            Some((p, big))
        })
        .expect("the large frame");
    let mut data = vfs.contents(&seg).unwrap();
    let body = f.end - f.start - f.header_len() as u64;
    let forged = f.edited(&data, |c| c.txn_count = body / 15);
    layout::replace_frame(&mut data, &f, &forged);
    let largest_file = data.len();
    vfs.set_contents(&seg, data);
    let (r, largest) = recover_measured(&vfs);
    assert!(r.is_err() || r.unwrap().report.damage.is_some());
    assert!(
        largest <= SEARCH_CHUNK.max(largest_file) + 4096,
        "one allocation of {largest} bytes for a log whose largest file is {largest_file}"
    );
}
