//! The oracle shared by the torture, fault, SIGKILL and fuzz tests: what a
//! recovered log must look like given what the engine acknowledged.
//!
//! Every batch's contents are a pure function of its id ([`frames_of`]), so a
//! checker needs only the ids and epochs that were acknowledged. The oracle
//! (see [`check_recovery`]):
//!
//! 1. every acknowledged batch (wait_durable returned Ok under sync=full, or
//!    the log closed cleanly after it was submitted) is recovered byte for byte,
//!    in the epoch its ticket named, unless a checkpoint covering that epoch
//!    had started;
//! 2. the recovered epochs are a gap-free run (from 1 when nothing was
//!    checkpointed);
//! 3. every recovered batch is whole: all its frames, its exact bytes, one
//!    epoch, and it is a batch that was submitted;
//! 4. replay order is epoch, then commit sequence;
//! 5. recovery run twice gives the same records and report, and changes no
//!    byte and no name of the file system.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pwal::io::sim::SplitMix;
use pwal::io::{SimVfs, Vfs};
use pwal::{Frame, Log, RecoverOptions, RecoveryReport, Txn};

/// A frame owned by the test: (page number, db size if commit, bytes).
pub type OwnedFrame = (u32, u32, Vec<u8>);

/// Ids with this bit set are "big" batches: two 40 000-byte pages, more than
/// a 64 KiB segment holds, so their frame goes alone into a segment it
/// extends.
pub const BIG: u64 = 1 << 40;
/// Ids with this bit set are "huge" batches: twenty 60 000-byte pages,
/// 1.2 MB, a frame large enough that the segment it starts is not
/// zero-filled and the preparer pauses (a spell of large frames).
pub const HUGE: u64 = 1 << 41;
/// The id without its [`BIG`] and [`HUGE`] bits.
pub fn base_id(id: u64) -> u64 {
    id & !(BIG | HUGE)
}

fn mix(x: u64) -> u64 {
    SplitMix(x ^ 0x5151_7a7a).next_u64()
}

/// The frames of batch `id`: 1 to 3 pages of 1 to ~3 000 bytes (two pages of
/// 40 000 bytes for [`BIG`] ids, twenty of 60 000 for [`HUGE`] ones),
/// deterministic.
pub fn frames_of(id: u64) -> Vec<OwnedFrame> {
    let h = mix(id);
    let (n, len) = if id & HUGE != 0 {
        (20, 60_000)
    } else if id & BIG != 0 {
        (2, 40_000)
    } else {
        (1 + (h % 3) as u32, 1 + ((h >> 8) % 3000) as usize)
    };
    (0..n)
        .map(|f| {
            let mut r = SplitMix(h ^ (f as u64) << 32);
            let bytes: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
            let page = 1 + ((h >> 20) as u32 + f * 7) % 100_000;
            (page, if f + 1 == n { page + 1 } else { 0 }, bytes)
        })
        .collect()
}

/// Submits batch `id` (commit sequence = id).
pub fn submit(log: &Log, id: u64) -> pwal::Result<u64> {
    let owned = frames_of(id);
    let frames: Vec<Frame<'_>> = owned
        .iter()
        .map(|(p, d, b)| Frame {
            page_number: *p,
            db_size_if_commit: *d,
            data: b,
        })
        .collect();
    log.submit(&Txn {
        txn_id: id,
        commit_seq: id,
        txn_epoch: (id % 7) as u32,
        frames: &frames,
    })
}

/// What happened, in the order it happened, as the oracle needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `submit` returned this epoch for the batch.
    Submitted { id: u64, epoch: u64 },
    /// `wait_durable` returned Ok for the batch (or the log closed cleanly
    /// after it was submitted).
    Acked { id: u64, epoch: u64 },
    /// A checkpoint through this epoch is about to start: segments holding
    /// only epochs up to it may vanish from now on.
    Checkpointing { through: u64 },
}

/// The journal of a run, shared by its threads and read by crash points.
#[derive(Default)]
pub struct Journal {
    pub events: Mutex<Vec<Event>>,
    next_id: AtomicU64,
}

impl Journal {
    pub fn new() -> Arc<Journal> {
        Arc::new(Journal {
            events: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        })
    }

    pub fn len(&self) -> u64 {
        self.events.lock().unwrap().len() as u64
    }

    pub fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// A fresh batch id (ids, and so commit sequences, ascend).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Ids from here on are above `floor` (after a log was recovered).
    pub fn raise_ids(&self, floor: u64) {
        self.next_id.fetch_max(floor + 1, Ordering::SeqCst);
    }

    /// Submits batch `id`, journaling the ticket.
    pub fn submit(&self, log: &Log, id: u64) -> pwal::Result<u64> {
        let e = submit(log, id)?;
        self.push(Event::Submitted { id, epoch: e });
        Ok(e)
    }

    /// Submits and waits; journals the acknowledgement.
    pub fn commit(&self, log: &Log, id: u64) -> pwal::Result<u64> {
        let e = self.submit(log, id)?;
        log.wait_durable(e, None)?;
        self.push(Event::Acked { id, epoch: e });
        Ok(e)
    }

    /// Waits for a batch submitted earlier; journals the acknowledgement.
    pub fn wait(&self, log: &Log, id: u64, epoch: u64) -> pwal::Result<()> {
        log.wait_durable(epoch, None)?;
        self.push(Event::Acked { id, epoch });
        Ok(())
    }

    /// Checkpoints through the durable epoch, journaling the intent first.
    pub fn checkpoint(&self, log: &Log) -> pwal::Result<()> {
        let through = log.durable_epoch();
        self.push(Event::Checkpointing { through });
        log.checkpoint(through)
    }

    /// Closes the log; a clean close of the last handle acknowledges every
    /// batch submitted before it (close flushes and syncs under full).
    pub fn close(&self, log: Log) -> pwal::Result<()> {
        log.close()?;
        let mut ev = self.events.lock().unwrap();
        let acked: BTreeSet<u64> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Acked { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let late: Vec<Event> = ev
            .iter()
            .filter_map(|e| match *e {
                Event::Submitted { id, epoch } if !acked.contains(&id) => {
                    Some(Event::Acked { id, epoch })
                }
                _ => None,
            })
            .collect();
        ev.extend(late);
        Ok(())
    }
}

/// What the oracle expects of a recovered log, from a prefix of a journal.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Acknowledged batches and their epochs.
    pub acked: BTreeMap<u64, u64>,
    /// Every batch ever submitted (only these may be recovered).
    pub submitted: BTreeMap<u64, u64>,
    /// The highest epoch a checkpoint was started for (0: none).
    pub checkpointed: u64,
    /// Batches missing from `submitted` may be recovered too (their writer
    /// was killed before it could say it submitted them); their bytes are
    /// still checked.
    pub unknown_ok: bool,
}

impl Expect {
    pub fn from_events(events: &[Event]) -> Expect {
        let mut x = Expect::default();
        for e in events {
            x.add(*e);
        }
        x
    }

    /// What must hold at an instant when the first `tag` events had
    /// happened. Any batch of the whole run may be recovered: a submit is
    /// journaled after it returned, by which time the flusher may have
    /// written it.
    pub fn at(events: &[Event], tag: u64) -> Expect {
        let mut x = Expect::from_events(&events[..tag as usize]);
        for e in &events[tag as usize..] {
            if let Event::Submitted { id, epoch } | Event::Acked { id, epoch } = *e {
                x.submitted.insert(id, epoch);
            }
        }
        x
    }

    pub fn add(&mut self, e: Event) {
        match e {
            Event::Submitted { id, epoch } => {
                self.submitted.insert(id, epoch);
            }
            Event::Acked { id, epoch } => {
                self.acked.insert(id, epoch);
                self.submitted.insert(id, epoch);
            }
            Event::Checkpointing { through } => self.checkpointed = self.checkpointed.max(through),
        }
    }
}

/// One recovered batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub epoch: u64,
    pub seq: u64,
    pub txn_epoch: u32,
    pub frames: Vec<OwnedFrame>,
}

/// The result of one recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub batches: BTreeMap<u64, Got>,
    /// (epoch, commit sequence, id) in replay order.
    pub order: Vec<(u64, u64, u64)>,
    pub report: RecoveryReport,
}

/// Recovers the log of `db` over `vfs` and gathers what it replayed.
pub fn recover(vfs: &dyn Vfs, db: &Path) -> pwal::Result<Recovered> {
    recover_opts(vfs, db, false)
}

pub fn recover_opts(vfs: &dyn Vfs, db: &Path, durable_prefix: bool) -> pwal::Result<Recovered> {
    let mut out = Recovered::default();
    let mut records = Vec::new();
    let mut report = RecoveryReport::default();
    let mut cb = |r: &pwal::Record<'_>| {
        records.push((
            r.epoch,
            r.txn_id,
            r.commit_seq,
            r.txn_epoch,
            (r.page_number, r.db_size_if_commit, r.data.to_vec()),
        ));
        true
    };
    pwal::recover_with_vfs(
        vfs,
        db,
        &RecoverOptions { durable_prefix },
        &mut cb,
        &mut report,
    )?;
    for (epoch, id, seq, txn_epoch, frame) in records {
        if out.order.last().map(|o| o.2) != Some(id) || out.order.last().map(|o| o.0) != Some(epoch)
        {
            out.order.push((epoch, seq, id));
        }
        let g = out.batches.entry(id).or_insert_with(|| Got {
            epoch,
            seq,
            txn_epoch,
            frames: Vec::new(),
        });
        if g.epoch != epoch {
            // Recorded as a split batch; the oracle reports it.
            g.seq = u64::MAX;
        }
        g.frames.push(frame);
    }
    out.report = report;
    Ok(out)
}

/// Checks a recovered log against `x`; returns what is wrong.
pub fn check_recovered(r: &Recovered, x: &Expect) -> Result<(), String> {
    let rep = &r.report;
    // Gap-free epochs (damage at or below the checkpoint mark is read past:
    // the epochs read may have a gap there, never above it).
    let below_mark = rep
        .damage
        .as_deref()
        .is_some_and(|d| d.contains("at or below the checkpoint mark"));
    if rep.epochs > 0 && !below_mark {
        if rep.epochs != rep.last_epoch - rep.first_epoch + 1 {
            return Err(format!(
                "recovered epochs are not gap-free: {} epochs from {} to {}",
                rep.epochs, rep.first_epoch, rep.last_epoch
            ));
        }
        if x.checkpointed == 0 && rep.first_epoch != 1 {
            return Err(format!(
                "nothing was checkpointed but recovery starts at epoch {}",
                rep.first_epoch
            ));
        }
        if rep.first_epoch > x.checkpointed + 1 {
            return Err(format!(
                "recovery starts at epoch {} but only epochs up to {} were checkpointed",
                rep.first_epoch, x.checkpointed
            ));
        }
    }
    // Each batch whole, submitted, with its bytes, in a recovered epoch.
    let mut seen = BTreeSet::new();
    for (id, g) in &r.batches {
        seen.insert(*id);
        if g.seq == u64::MAX {
            return Err(format!("batch {id} spans two epochs"));
        }
        let ticket = match x.submitted.get(id) {
            Some(&t) => t,
            None if x.unknown_ok => g.epoch,
            None => return Err(format!("batch {id} was recovered but never submitted")),
        };
        if g.epoch != ticket {
            return Err(format!(
                "batch {id} recovered in epoch {} but its ticket was epoch {ticket}",
                g.epoch
            ));
        }
        if g.seq != *id || g.txn_epoch != (*id % 7) as u32 {
            return Err(format!("batch {id}: wrong commit sequence or txn epoch"));
        }
        if g.frames != frames_of(*id) {
            return Err(format!(
                "batch {id} recovered with {} frames whose bytes differ from what was submitted ({} frames)",
                g.frames.len(),
                frames_of(*id).len()
            ));
        }
        if g.epoch < rep.first_epoch || g.epoch > rep.last_epoch {
            return Err(format!(
                "batch {id} in epoch {} outside the report's range",
                g.epoch
            ));
        }
    }
    if r.order.len() != r.batches.len() {
        return Err("a batch's frames were not replayed together".into());
    }
    let mut sorted = r.order.clone();
    sorted.sort();
    if sorted != r.order {
        return Err("replay order is not epoch, then commit sequence".into());
    }
    // Every acknowledged batch is there.
    for (id, epoch) in &x.acked {
        if *epoch <= x.checkpointed {
            continue;
        }
        if !seen.contains(id) {
            return Err(format!(
                "acknowledged batch {id} (epoch {epoch}) is missing; recovered epochs {}..={}, report {:?}",
                rep.first_epoch, rep.last_epoch, rep
            ));
        }
    }
    Ok(())
}

/// Recovers twice, checking both agree, that recovery changed nothing, and
/// the oracle. Returns the recovered log.
pub fn check_recovery(vfs: &SimVfs, db: &Path, x: &Expect) -> Result<Recovered, String> {
    // What the disk holds: recovery may evict clean cached pages (which
    // changes what reads see after a failed writeback), never write.
    let before = (vfs.disk_digest(), vfs.op_counts());
    let first = recover(vfs, db).map_err(|e| format!("recovery failed: {e}"))?;
    let second = recover(vfs, db).map_err(|e| format!("second recovery failed: {e}"))?;
    if first != second {
        return Err(format!(
            "recovery is not idempotent: {:?} then {:?}",
            first.report, second.report
        ));
    }
    if (vfs.disk_digest(), vfs.op_counts()) != before {
        return Err("recovery wrote to the log".into());
    }
    check_recovered(&first, x)?;
    Ok(first)
}

/// The highest batch id in a recovered log (0 when empty).
pub fn max_id(r: &Recovered) -> u64 {
    r.batches.keys().next_back().copied().unwrap_or(0)
}

/// A fresh directory under the target's scratch space.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_dead_scratch(root, name);
    let dir = root.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the scratch directories `name-<pid>-<n>` of processes no longer
/// running: without it every run of the suite left its logs behind (a
/// 256 MiB transaction's among them), and repeated runs filled the disk.
/// A test's own directories, and those of a run still going, are kept.
fn remove_dead_scratch(root: &Path, name: &str) {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(name)?.strip_prefix('-'))
        else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if n.parse::<u64>().is_err() || pid == me {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A seed from the environment variable `var`, or `default`.
pub fn env_u64(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{var}={v:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// Reports that `test` cannot run here because `why`: a failure when
/// `CI=true` (a CI machine must provide what the test needs), a visible
/// message otherwise. The caller returns right after.
pub fn missing_precondition(test: &str, why: &str) {
    let msg = format!("SKIPPED {test}: {why}");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (a failure under CI=true)"
    );
    println!("{msg}");
    eprintln!("{msg}");
}

/// Waits until the log's preparer has a zero-filled spare ready, so that
/// the next segment the log starts is preallocated (a commit never waits for
/// one: without it the segment starts empty and grows as frames are
/// written). For tests about the bytes after the last frame.
pub fn wait_for_spare(log: &pwal::Log) {
    let t = std::time::Instant::now();
    while log.debug_spares_ready() == 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "no spare was ever prepared"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
