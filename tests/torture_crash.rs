//! Crash torture: every mutating file operation of scripted and seeded random
//! workloads is a crash point; at each, the file system a power loss would
//! leave is built in several ways (keep all, drop all, a prefix, a random
//! subset, torn at 512 and 4096 bytes, extended regions of zeros or garbage)
//! and the oracle of `common` is checked on it. A sample of crash states is
//! also reopened (recovery, then more commits), itself with a crash point at
//! every operation of the reopen.
//!
//! Replay one seed: `PWAL_TORTURE_SEED=<seed> [PWAL_TORTURE_WORKLOAD=<name>]
//! cargo test --test torture_crash -- --nocapture`. More seeds:
//! `PWAL_TORTURE_SEEDS=<n>` (scripts/soak.sh). The engine's threads make
//! runs differ in interleaving; a seed fixes the workload's choices and the
//! crash choices, and a failing crash image is written to disk so that it can
//! be inspected whatever the interleaving.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use pwal::io::sim::{CrashMode, CrashPoint, SplitMix};
use pwal::io::SimVfs;
use pwal::{Log, Options, SyncPolicy};

const DB: &str = "/sim/db";

fn opts(lanes: usize) -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes,
        use_env: false,
        ..Options::default()
    }
}

/// What a workload gets: the file system, the journal, and a seeded
/// generator for its choices.
struct Ctx {
    vfs: SimVfs,
    db: PathBuf,
    j: Arc<Journal>,
    rng: Mutex<SplitMix>,
}

impl Ctx {
    fn open(&self, lanes: usize) -> Log {
        Log::open_with_vfs(&self.db, &opts(lanes), Arc::new(self.vfs.clone())).unwrap()
    }
    fn open_sync(&self, lanes: usize, sync: SyncPolicy) -> Log {
        let o = Options {
            sync,
            ..opts(lanes)
        };
        Log::open_with_vfs(&self.db, &o, Arc::new(self.vfs.clone())).unwrap()
    }
    fn pick(&self, n: u64) -> u64 {
        self.rng.lock().unwrap().below(n)
    }
    /// A fresh id, big one time in `big_one_in`.
    fn id(&self, big_one_in: u64) -> u64 {
        let id = self.j.next_id();
        if big_one_in > 0 && self.pick(big_one_in) == 0 {
            id | BIG
        } else {
            id
        }
    }
}

type Workload = fn(&Ctx);

fn single_writer(c: &Ctx) {
    let log = c.open(2);
    for _ in 0..14 {
        c.j.commit(&log, c.id(0)).unwrap();
    }
    c.j.close(log).unwrap();
}

fn threads(c: &Ctx) {
    let log = c.open(3);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for i in 0..5 {
                    let id = c.id(0);
                    if i % 2 == 0 {
                        c.j.commit(&log, id).unwrap();
                    } else {
                        let e = c.j.submit(&log, id).unwrap();
                        c.j.wait(&log, id, e).unwrap();
                    }
                }
            });
        }
    });
    c.j.close(log).unwrap();
}

fn group_commit(c: &Ctx) {
    let log = c.open(2);
    for _ in 0..3 {
        let ids: Vec<(u64, u64)> = (0..4)
            .map(|_| {
                let id = c.id(0);
                (id, c.j.submit(&log, id).unwrap())
            })
            .collect();
        // Waiting for the last ticket makes every earlier one durable too.
        for (id, e) in ids {
            c.j.wait(&log, id, e).unwrap();
        }
    }
    // Submitted, never waited for: the clean close must make it durable.
    c.j.submit(&log, c.id(0)).unwrap();
    c.j.close(log).unwrap();
}

fn checkpoint_recycle(c: &Ctx) {
    let log = c.open(1);
    for i in 0..40 {
        c.j.commit(&log, c.id(0)).unwrap();
        if i % 10 == 9 {
            c.j.checkpoint(&log).unwrap();
        }
    }
    c.j.close(log).unwrap();
}

fn reopen(c: &Ctx) {
    let log = c.open(2);
    for _ in 0..4 {
        c.j.commit(&log, c.id(0)).unwrap();
    }
    c.j.close(log).unwrap();
    let log = c.open(2);
    for _ in 0..4 {
        c.j.commit(&log, c.id(0)).unwrap();
    }
    c.j.checkpoint(&log).unwrap();
    for _ in 0..4 {
        c.j.commit(&log, c.id(0)).unwrap();
    }
    c.j.close(log).unwrap();
    let log = c.open(1);
    c.j.commit(&log, c.id(0)).unwrap();
    c.j.close(log).unwrap();
}

fn big_batches(c: &Ctx) {
    let log = c.open(2);
    for i in 0..8 {
        let id = c.j.next_id();
        let id = if i % 3 == 2 { id | BIG } else { id };
        c.j.commit(&log, id).unwrap();
    }
    c.j.close(log).unwrap();
}

/// The sync policy changes from one open to the next (seeded). Only what
/// `full` acknowledged must survive a power loss; what `normal` and `off`
/// acknowledged is only submitted as far as the oracle is concerned, until a
/// later `full` acknowledgement (in a later epoch, with gap-free recovery)
/// makes it required too: a reopen under `full` must make the older
/// segments durable before it acknowledges anything.
fn policy_changes(c: &Ctx) {
    const POLICIES: [SyncPolicy; 3] = [SyncPolicy::Off, SyncPolicy::Normal, SyncPolicy::Full];
    for round in 0..5 {
        let sync = if round == 4 {
            SyncPolicy::Full
        } else {
            POLICIES[c.pick(3) as usize]
        };
        let log = c.open_sync(1 + c.pick(2) as usize, sync);
        for i in 0..6 {
            let id = c.id(10);
            if sync == SyncPolicy::Full {
                c.j.commit(&log, id).unwrap();
            } else {
                let e = c.j.submit(&log, id).unwrap();
                log.wait_durable(e, None).unwrap();
            }
            if i == 3 && c.pick(3) == 0 {
                c.j.checkpoint(&log).unwrap();
            }
        }
        if sync == SyncPolicy::Full {
            c.j.close(log).unwrap();
        } else {
            log.close().unwrap();
        }
    }
}

/// A seeded mix of everything above.
fn random(c: &Ctx) {
    let mut log = Some(c.open(1 + c.pick(3) as usize));
    let mut unacked: Vec<(u64, u64)> = Vec::new();
    for _ in 0..24 {
        let l = log.as_ref().unwrap();
        match c.pick(10) {
            0..=3 => {
                c.j.commit(l, c.id(12)).unwrap();
            }
            4 | 5 => {
                let id = c.id(12);
                unacked.push((id, c.j.submit(l, id).unwrap()));
            }
            6 => {
                for (id, e) in unacked.drain(..) {
                    c.j.wait(l, id, e).unwrap();
                }
            }
            7 => c.j.checkpoint(l).unwrap(),
            8 => {
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| c.j.commit(l, c.id(0)).unwrap());
                    }
                });
            }
            _ => {
                unacked.clear();
                c.j.close(log.take().unwrap()).unwrap();
                log = Some(c.open(1 + c.pick(3) as usize));
            }
        }
    }
    c.j.close(log.take().unwrap()).unwrap();
}

const WORKLOADS: &[(&str, Workload)] = &[
    ("single_writer", single_writer),
    ("threads", threads),
    ("group_commit", group_commit),
    ("checkpoint_recycle", checkpoint_recycle),
    ("reopen", reopen),
    ("big_batches", big_batches),
    ("policy_changes", policy_changes),
    ("random", random),
];

/// The damage choices tried at a crash point.
fn modes(point_seed: u64, has_pending: bool) -> Vec<CrashMode> {
    if !has_pending {
        // Nothing unsynced: every mode gives the same image.
        return vec![CrashMode::DropAll];
    }
    let s = point_seed;
    vec![
        CrashMode::KeepAll,
        CrashMode::DropAll,
        CrashMode::KeepPrefix(1),
        CrashMode::RandomSubset { seed: s },
        CrashMode::RandomTorn {
            seed: s,
            sector: 512,
        },
        CrashMode::RandomTorn {
            seed: s ^ 1,
            sector: 4096,
        },
        CrashMode::Extended {
            seed: s ^ 2,
            garbage: false,
        },
        CrashMode::Extended {
            seed: s ^ 3,
            garbage: true,
        },
    ]
}

#[derive(Default)]
struct Tally {
    states: AtomicU64,
    points: AtomicU64,
    runs: AtomicU64,
    reopens: AtomicU64,
    nested: AtomicU64,
}

fn point_seed(seed: u64, op: u64, nest: u64) -> u64 {
    SplitMix(seed ^ op.rotate_left(24) ^ nest.rotate_left(48)).next_u64()
}

fn fail(workload: &str, seed: u64, what: String, image: &SimVfs) -> ! {
    let dir = scratch(&format!("torture-failure-{workload}-{seed:#x}"));
    let dumped = match image.dump_to(&dir) {
        Ok(()) => format!("the crash image is in {}", dir.display()),
        Err(e) => format!("(could not write the crash image: {e})"),
    };
    panic!(
        "crash torture failed: workload {workload}, seed {seed:#x}: {what}\n{dumped}\n\
         replay: PWAL_TORTURE_SEED={seed:#x} PWAL_TORTURE_WORKLOAD={workload} \
         cargo test --test torture_crash -- --nocapture"
    );
}

/// Runs `w` once with a crash point before every operation and checks the
/// oracle on every crash state.
fn explore(name: &str, w: Workload, seed: u64, reopen_every: u64, tally: &Tally) {
    let c = Ctx {
        vfs: SimVfs::new(),
        db: PathBuf::from(DB),
        j: Journal::new(),
        rng: Mutex::new(SplitMix(seed)),
    };
    let j = c.j.clone();
    c.vfs.set_crash_points(|_| true, move || j.len());
    w(&c);
    let mut points = c.vfs.take_crash_points();
    let events = c.j.snapshot();
    points.push(CrashPoint {
        op: u64::MAX,
        tag: events.len() as u64,
        frozen: c.vfs.freeze(),
    });
    tally.runs.fetch_add(1, Ordering::Relaxed);
    for p in &points {
        tally.points.fetch_add(1, Ordering::Relaxed);
        let x = Expect::at(&events, p.tag);
        let ps = point_seed(seed, p.op, 0);
        for (k, mode) in modes(ps, p.frozen.has_pending()).into_iter().enumerate() {
            let image = p.frozen.image(mode);
            let what =
                |m: String| format!("crash before operation {} ({}): {m}", p.op, mode.name());
            let got = match check_recovery(&image, Path::new(DB), &x) {
                Ok(g) => g,
                Err(m) => fail(name, seed, what(m), &image),
            };
            tally.states.fetch_add(1, Ordering::Relaxed);
            if k == 0 && reopen_every > 0 && ps.is_multiple_of(reopen_every) {
                if let Err(m) = reopen_with_crashes(&image, &x, &got, ps, tally) {
                    fail(name, seed, what(format!("on reopen: {m}")), &image);
                }
            }
        }
    }
}

/// Opens the log on a crash image (recovery), commits, closes, with a crash
/// point at every operation of that: what recovery returned before must
/// survive, and so must what the reopened log acknowledged.
fn reopen_with_crashes(
    image: &SimVfs,
    x: &Expect,
    before: &Recovered,
    seed: u64,
    tally: &Tally,
) -> Result<(), String> {
    tally.reopens.fetch_add(1, Ordering::Relaxed);
    let j = Journal::new();
    let floor = x.submitted.keys().map(|id| id & !BIG).max().unwrap_or(0);
    j.raise_ids(floor + 1000);
    // What recovery replayed counts as acknowledged from now on: the engine
    // above has rebuilt its pages from it.
    let mut base = x.clone();
    for (id, g) in &before.batches {
        base.acked.insert(*id, g.epoch);
        base.submitted.insert(*id, g.epoch);
    }
    let jt = j.clone();
    image.set_crash_points(|_| true, move || jt.len());
    let log = Log::open_with_vfs(DB, &opts(2), Arc::new(image.clone()))
        .map_err(|e| format!("open failed: {e}"))?;
    for _ in 0..2 {
        j.commit(&log, j.next_id())
            .map_err(|e| format!("commit: {e}"))?;
    }
    j.close(log).map_err(|e| format!("close: {e}"))?;
    let mut points = image.take_crash_points();
    image.clear_crash_points();
    let events = j.snapshot();
    points.push(CrashPoint {
        op: u64::MAX,
        tag: events.len() as u64,
        frozen: image.freeze(),
    });
    for p in &points {
        let mut xp = base.clone();
        let at = Expect::at(&events, p.tag);
        xp.acked.extend(at.acked);
        xp.submitted.extend(at.submitted);
        let ps = point_seed(seed, p.op, 1);
        let modes = modes(ps, p.frozen.has_pending());
        for mode in [modes[0], modes[modes.len() / 2], modes[modes.len() - 1]] {
            let img = p.frozen.image(mode);
            check_recovery(&img, Path::new(DB), &xp).map_err(|m| {
                format!(
                    "crash before operation {} of the reopen ({}): {m}",
                    p.op,
                    mode.name()
                )
            })?;
            tally.nested.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[test]
fn every_crash_point_of_every_workload_keeps_every_acknowledged_batch() {
    let started = Instant::now();
    let only_seed = std::env::var("PWAL_TORTURE_SEED")
        .ok()
        .map(|_| env_u64("PWAL_TORTURE_SEED", 0));
    let only_workload = std::env::var("PWAL_TORTURE_WORKLOAD").ok();
    let seeds = env_u64("PWAL_TORTURE_SEEDS", 3);
    let base = env_u64("PWAL_TORTURE_BASE_SEED", 0x0070_57a1);
    let reopen_every = env_u64("PWAL_TORTURE_REOPEN_EVERY", 6);
    let tally = Tally::default();
    for (name, w) in WORKLOADS {
        if only_workload.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let list: Vec<u64> = match only_seed {
            Some(s) => vec![s],
            None => (0..seeds)
                .map(|i| SplitMix(base ^ i.wrapping_mul(0x1000_0001)).next_u64() >> 16)
                .collect(),
        };
        for seed in list {
            explore(name, *w, seed, reopen_every, &tally);
        }
    }
    let states = tally.states.load(Ordering::Relaxed);
    let nested = tally.nested.load(Ordering::Relaxed);
    println!(
        "crash torture: explored {} crash states ({} crash points in {} runs) and {} crash states during {} reopens, in {:.1} s",
        states,
        tally.points.load(Ordering::Relaxed),
        tally.runs.load(Ordering::Relaxed),
        nested,
        tally.reopens.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if only_seed.is_none() && only_workload.is_none() {
        assert!(
            states + nested >= 10_000,
            "explored only {} crash states",
            states + nested
        );
    }
}
