//! Fault torture: the Nth write, sync, file-system operation or read-side
//! operation fails (EIO, ENOSPC, EFBIG, a short write, a failing fsync that
//! drops the data, keeps it pending, or leaves it cached but clean as Linux
//! does), once or from then on, for every N a clean run performs. Each run
//! checks that the caller sees a clear error carrying the errno (a checkpoint
//! and a close too), that a
//! failure on the write path poisons the log (every later call fails, close
//! reports it), that nothing is acknowledged after it (crash images taken
//! after the fault still hold every acknowledged batch, even when the failed
//! fsync dropped the data: "fsyncgate"), and that reopening recovers and
//! continues, on the same file system and after a power loss.
//!
//! Replay one case: `PWAL_FAULT_CASE=<kind>/<op>/<n>/<once|persistent>
//! cargo test --test torture_faults -- --nocapture`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use pwal::io::sim::{CrashMode, Fault, FaultKind, FaultOp};
use pwal::io::SimVfs;
use pwal::{Error, Log, Options};

const DB: &str = "/sim/db";

fn opts() -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// What the workload saw.
#[derive(Default, Debug)]
struct Seen {
    /// The first error a commit or open returned.
    first_error: Option<String>,
    /// That error was neither `Io` nor `Poisoned` (say `Corrupt`).
    first_error_odd: bool,
    /// The error the checkpoint half way returned.
    checkpoint_error: Option<String>,
    /// The log refused later calls as poisoned.
    poisoned: bool,
    close_error: Option<String>,
    /// The error came from open (nothing to poison).
    open_failed: bool,
}

/// Two writers commit 12 batches each; one checkpoints half way. Stops at
/// the first error of each writer.
fn workload(vfs: &SimVfs, j: &Arc<Journal>) -> Seen {
    let mut seen = Seen::default();
    let log = match Log::open_with_vfs(DB, &opts(), Arc::new(vfs.clone())) {
        Ok(l) => l,
        Err(e) => {
            seen.first_error_odd = !matches!(e, Error::Io { .. });
            seen.first_error = Some(e.to_string());
            seen.open_failed = true;
            return seen;
        }
    };
    let checkpoint_error = std::sync::Mutex::new(None);
    let errors: Vec<Option<(String, bool)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let (log, j, checkpoint_error) = (&log, j.clone(), &checkpoint_error);
                s.spawn(move || {
                    for i in 0..12 {
                        if t == 0 && i == 6 {
                            // A checkpoint failure is reported, not fatal:
                            // the writer goes on, and `run_case` checks the
                            // error says what failed.
                            if let Err(e) = j.checkpoint(log) {
                                *checkpoint_error.lock().unwrap() = Some(e.to_string());
                            }
                        }
                        let id = j.next_id();
                        let r = if i % 3 == 2 {
                            j.submit(log, id).and_then(|e| j.wait(log, id, e))
                        } else {
                            j.commit(log, id).map(|_| ())
                        };
                        if let Err(e) = r {
                            let odd = !matches!(e, Error::Io { .. } | Error::Poisoned(_));
                            return Some((e.to_string(), odd));
                        }
                    }
                    None
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    seen.checkpoint_error = checkpoint_error.into_inner().unwrap();
    if let Some((e, odd)) = errors.into_iter().flatten().next() {
        seen.first_error = Some(e);
        seen.first_error_odd = odd;
    }
    if seen.first_error.is_some() {
        seen.poisoned =
            matches!(submit(&log, j.next_id()), Err(Error::Poisoned(_))) && log.stats().poisoned;
    }
    if let Err(e) = j.close(log) {
        seen.close_error = Some(e.to_string());
    }
    seen
}

fn errno_text(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Enospc => "No space left on device",
        FaultKind::Efbig => "File too large",
        FaultKind::ShortWrite => "short write",
        _ => "Input/output error",
    }
}

struct Case {
    kind: FaultKind,
    op: FaultOp,
    at: u64,
    persistent: bool,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{:?}/{:?}/{}/{}",
            self.kind,
            self.op,
            self.at,
            if self.persistent {
                "persistent"
            } else {
                "once"
            }
        )
    }
}

#[derive(Default)]
struct Tally {
    runs: AtomicU64,
    fired: AtomicU64,
    poisoned: AtomicU64,
    states: AtomicU64,
}

fn run_case(case: &Case, tally: &Tally) -> Result<(), String> {
    let vfs = SimVfs::new();
    let j = Journal::new();
    vfs.inject(Fault {
        op: case.op,
        at_op: case.at,
        persistent: case.persistent,
        kind: case.kind,
    });
    let jt = j.clone();
    // Crash images along the way, so that an acknowledgement given after a
    // failure is caught even if a later write would have covered it.
    vfs.set_crash_points(|op| op % 3 == 0, move || jt.len());
    let seen = workload(&vfs, &j);
    tally.runs.fetch_add(1, Ordering::Relaxed);
    let fired = vfs.faults_injected();
    tally.fired.fetch_add(fired, Ordering::Relaxed);
    let db = Path::new(DB);

    let text = errno_text(case.kind);
    // Every error the workload saw, first-hand or as a poison, must name the
    // injected fault: a poison message carries the error that caused it.
    for (what, e) in [
        ("a commit or open", &seen.first_error),
        ("the checkpoint", &seen.checkpoint_error),
        ("close", &seen.close_error),
    ] {
        let Some(e) = e else { continue };
        if fired == 0 {
            return Err(format!("{what} failed with no fault injected: {e}"));
        }
        if !e.contains(text) {
            return Err(format!(
                "{what} failed with an error that does not say what failed ({text:?}): {e}"
            ));
        }
    }
    if let Some(err) = &seen.first_error {
        if seen.first_error_odd {
            return Err(format!(
                "an I/O fault surfaced as neither Io nor Poisoned: {err}"
            ));
        }
        if !seen.open_failed && !seen.poisoned {
            return Err(format!("a failed commit did not poison the log: {err}"));
        }
        if seen.poisoned {
            tally.poisoned.fetch_add(1, Ordering::Relaxed);
            if seen.close_error.is_none() {
                return Err("close of a poisoned log reported success".into());
            }
        }
    }

    // Power loss at points along the run and at its end.
    let events = j.snapshot();
    let mut points = vfs.take_crash_points();
    vfs.clear_crash_points();
    points.push(pwal::io::sim::CrashPoint {
        op: u64::MAX,
        tag: events.len() as u64,
        frozen: vfs.freeze(),
    });
    for p in &points {
        let x = Expect::at(&events, p.tag);
        for mode in [
            CrashMode::DropAll,
            CrashMode::KeepAll,
            CrashMode::RandomTorn {
                seed: p.op,
                sector: 512,
            },
        ] {
            let image = p.frozen.image(mode);
            check_recovery(&image, db, &x).map_err(|m| {
                format!(
                    "power loss before operation {} ({}): {m}",
                    p.op,
                    mode.name()
                )
            })?;
            tally.states.fetch_add(1, Ordering::Relaxed);
        }
    }

    // Reopening recovers and continues: on the same file system (the disk
    // works again) and after a power loss.
    let x = Expect::from_events(&events);
    vfs.clear_faults();
    for (what, fs) in [
        ("the same file system", vfs.clone()),
        ("a power loss", vfs.crash(CrashMode::DropAll)),
    ] {
        check_recovery(&fs, db, &x).map_err(|m| format!("after {what}: {m}"))?;
        // What the reopened log must keep: every batch recovery finds on the
        // disk. Bytes a failed fsync left cached but clean are not there, and
        // a reopen that drops the cache rightly loses them (they were never
        // acknowledged); every other fault leaves the cache and the disk
        // alike.
        let before = check_recovery(&fs.disk_view(), db, &x)
            .map_err(|m| format!("after {what}, from the disk: {m}"))?;
        let j2 = Journal::new();
        j2.raise_ids(x.submitted.keys().max().copied().unwrap_or(0) + 100);
        let log = Log::open_with_vfs(db, &opts(), Arc::new(fs.clone()))
            .map_err(|e| format!("reopen after {what}: {e}"))?;
        let id = j2.next_id();
        j2.commit(&log, id)
            .map_err(|e| format!("commit after reopen after {what}: {e}"))?;
        j2.close(log)
            .map_err(|e| format!("close after {what}: {e}"))?;
        let mut x2 = x.clone();
        for (id, g) in &before.batches {
            x2.acked.insert(*id, g.epoch);
        }
        for e in j2.snapshot() {
            x2.add(e);
        }
        check_recovery(&fs.crash(CrashMode::DropAll), db, &x2)
            .map_err(|m| format!("after reopen after {what}: {m}"))?;
    }
    Ok(())
}

/// Every case, for the sync fault kinds `sync_kinds` (the other kinds only
/// when `others` is set).
fn cases(sync_kinds: &[FaultKind], others: bool) -> Vec<Case> {
    // Count the operations of a clean run.
    let vfs = SimVfs::new();
    let seen = workload(&vfs, &Journal::new());
    assert!(seen.first_error.is_none(), "{seen:?}");
    let (writes, syncs, any) = vfs.op_counts();
    let (reads, lists, opens) = vfs.read_op_counts();
    let read_side = reads + lists + opens;
    assert!(
        read_side > 0,
        "opening a log read nothing: no read-side case to run"
    );
    let mut out = Vec::new();
    for persistent in [false, true] {
        for &kind in sync_kinds {
            for at in 1..=syncs + 1 {
                out.push(Case {
                    kind,
                    op: FaultOp::Sync,
                    at,
                    persistent,
                });
            }
        }
        if !others {
            continue;
        }
        for kind in [
            FaultKind::Eio,
            FaultKind::Enospc,
            FaultKind::Efbig,
            FaultKind::ShortWrite,
        ] {
            for at in 1..=writes + 1 {
                out.push(Case {
                    kind,
                    op: FaultOp::Write,
                    at,
                    persistent,
                });
            }
        }
        for at in 1..=any + 1 {
            out.push(Case {
                kind: FaultKind::Eio,
                op: FaultOp::Any,
                at,
                persistent,
            });
        }
        for at in 1..=read_side + 1 {
            out.push(Case {
                kind: FaultKind::Eio,
                op: FaultOp::ReadSide,
                at,
                persistent,
            });
        }
    }
    out
}

/// Runs every case (or only `PWAL_FAULT_CASE`) and reports what it did.
fn run_all(title: &str, all: Vec<Case>) {
    let started = Instant::now();
    let only = std::env::var("PWAL_FAULT_CASE").ok();
    let tally = Tally::default();
    let total = all.len();
    for case in all {
        let name = case.name();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        if let Err(m) = run_case(&case, &tally) {
            panic!(
                "{title} failed: {name}: {m}\n\
                 replay: PWAL_FAULT_CASE={name} cargo test --release --test torture_faults -- --include-ignored --nocapture"
            );
        }
    }
    let runs = tally.runs.load(Ordering::Relaxed);
    if only.is_none() {
        assert_eq!(runs, total as u64, "a case was skipped");
    }
    println!(
        "{title}: {runs} runs of {total} cases, {} faults injected, {} runs poisoned the log, {} crash states checked, in {:.1} s",
        tally.fired.load(Ordering::Relaxed),
        tally.poisoned.load(Ordering::Relaxed),
        tally.states.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_fault_at_every_operation_is_fail_stop_and_recoverable() {
    run_all(
        "fault torture",
        cases(
            &[
                FaultKind::SyncFailDropped,
                FaultKind::SyncFailKept,
                FaultKind::Eio,
            ],
            true,
        ),
    );
}

/// The failed fsync as Linux does it: the tail stays readable in the page
/// cache although it is not on the disk and no later sync writes it.
#[test]

fn every_failed_sync_that_leaves_the_data_cached_but_clean_is_recoverable() {
    run_all(
        "clean-cached fsync torture",
        cases(&[FaultKind::SyncFailCleanCached], false),
    );
}
