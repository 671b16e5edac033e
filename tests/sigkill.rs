//! SIGKILL loop: a real writer process (this test binary, re-executed as a
//! child) commits batches from two threads to a real directory and reports
//! each acknowledgement through an append-only file; the parent kills it with
//! SIGKILL at a random moment, recovers, and checks the oracle of `common`:
//! every batch acknowledged before the kill is there, byte for byte, the
//! epochs are gap-free, every batch is whole. Then the next child reopens the
//! same log (recovery) and goes on. Most children use sync=full, one in four
//! sync=normal (a process crash must keep what normal acknowledged too).
//! One batch in 61 is huge (1.2 MB): its frame starts a segment that is not
//! zero-filled, and the spare preparer pauses until small frames have been
//! written for a while, so kills land in and out of such spells.
//!
//! `PWAL_SIGKILL_KILLS=<n>` (default 200; scripts/soak.sh: 10 000),
//! `PWAL_SIGKILL_SEED=<seed>` replays the kill timings.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pwal::io::sim::SplitMix;
use pwal::io::RealVfs;
use pwal::{Log, Options, SyncPolicy};

fn opts(sync: SyncPolicy) -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        sync,
        use_env: false,
        ..Options::default()
    }
}

/// The child: commits until killed, appending "A <id> <epoch>" after each
/// acknowledgement and "C <through>" before each checkpoint.
fn child(db: &str) -> ! {
    let start: u64 = std::env::var("PWAL_SIGKILL_START")
        .unwrap()
        .parse()
        .unwrap();
    let sync = match std::env::var("PWAL_SIGKILL_SYNC").as_deref() {
        Ok("normal") => SyncPolicy::Normal,
        _ => SyncPolicy::Full,
    };
    let acks = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(std::env::var("PWAL_SIGKILL_ACKS").unwrap())
        .unwrap();
    let log = Log::open(db, &opts(sync)).unwrap();
    // Tells the parent that open is done, so that the time it lets the
    // writers run does not depend on how loaded the machine is.
    (&acks).write_all(b"R\n").unwrap();
    let next = AtomicU64::new(start);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let id = next.fetch_add(1, Ordering::SeqCst);
                let huge = id % 61 == 7;
                if id.is_multiple_of(40) {
                    let through = log.durable_epoch();
                    // One write(2) per line: a kill leaves whole lines.
                    (&acks)
                        .write_all(format!("C {through}\n").as_bytes())
                        .unwrap();
                    log.checkpoint(through).unwrap();
                }
                let id = if huge { id | HUGE } else { id };
                let e = submit(&log, id).unwrap();
                log.wait_durable(e, None).unwrap();
                (&acks)
                    .write_all(format!("A {id} {e}\n").as_bytes())
                    .unwrap();
            });
        }
    });
    unreachable!()
}

fn parse_acks(text: &str, x: &mut Expect) {
    for line in text.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        match line.as_bytes().first() {
            Some(b'A') => x.add(Event::Acked {
                id: f[0],
                epoch: f[1],
            }),
            Some(b'C') => x.add(Event::Checkpointing { through: f[0] }),
            Some(b'R') => {}
            _ => panic!("bad ack line {line:?}"),
        }
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_an_acknowledged_batch() {
    if let Ok(db) = std::env::var("PWAL_SIGKILL_CHILD") {
        child(&db);
    }
    let kills = env_u64("PWAL_SIGKILL_KILLS", 200);
    let seed = env_u64("PWAL_SIGKILL_SEED", 0x5161_c0de);
    let mut rng = SplitMix(seed);
    let dir = scratch("sigkill");
    let db = dir.join("db");
    let acks = dir.join("acks");
    let started = Instant::now();
    let mut x = Expect {
        unknown_ok: true,
        ..Expect::default()
    };
    let mut next = 1u64;
    let (mut recovered_batches, mut max_epoch) = (0usize, 0u64);
    for i in 0..kills {
        let _ = std::fs::remove_file(&acks);
        let sync = if i % 4 == 3 { "normal" } else { "full" };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_at_random_moments_never_loses_an_acknowledged_batch",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PWAL_SIGKILL_CHILD", &db)
            .env("PWAL_SIGKILL_START", next.to_string())
            .env("PWAL_SIGKILL_SYNC", sync)
            .env("PWAL_SIGKILL_ACKS", &acks)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Mostly while it commits (counted from the end of its open); now
        // and then during start-up or open.
        match rng.below(8) {
            0 => std::thread::sleep(Duration::from_micros(rng.below(3_000))),
            _ => {
                let limit = Instant::now() + Duration::from_secs(30);
                while !std::fs::read(&acks).is_ok_and(|b| b.starts_with(b"R\n")) {
                    assert!(Instant::now() < limit, "kill {i}: the writer never opened");
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::thread::sleep(Duration::from_micros(rng.below(25_000)));
            }
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.code().is_some() {
            // It exited by itself: a failure in the child.
            panic!(
                "kill {i}: the writer exited with {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        parse_acks(&std::fs::read_to_string(&acks).unwrap_or_default(), &mut x);
        let got = recover(&RealVfs, &db).unwrap_or_else(|e| {
            panic!("kill {i} (seed {seed:#x}): recovery failed: {e}\nreplay: PWAL_SIGKILL_SEED={seed:#x} cargo test --test sigkill -- --nocapture")
        });
        if let Err(m) = check_recovered(&got, &x) {
            panic!("kill {i} (seed {seed:#x}, sync={sync}): {m}\nreplay: PWAL_SIGKILL_SEED={seed:#x} cargo test --test sigkill -- --nocapture");
        }
        // What recovery replayed is the engine's from now on.
        for (id, g) in &got.batches {
            x.acked.insert(*id, g.epoch);
        }
        recovered_batches = got.batches.len();
        max_epoch = max_epoch.max(got.report.last_epoch);
        // Ids carry the HUGE bit: the next child starts after their bases.
        next = next
            .max(got.batches.keys().map(|&k| base_id(k)).max().unwrap_or(0) + 1)
            .max(x.acked.keys().map(|&k| base_id(k)).max().unwrap_or(0) + 1);
    }
    println!(
        "sigkill loop: {kills} kills in {:.1} s, {} batches acknowledged, {} in the last recovered log, up to epoch {max_epoch}",
        started.elapsed().as_secs_f64(),
        x.acked.len(),
        recovered_batches
    );
    assert!(x.acked.len() > kills as usize, "the writers barely ran");
    let _ = std::fs::remove_dir_all(&dir);
}
