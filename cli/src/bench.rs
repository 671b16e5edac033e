//! `pwal bench`: what this disk allows a write-ahead log, then what pwal
//! gets out of it, in the manner of PostgreSQL's `pg_test_fsync`.
//!
//! 1. the overwrite floor: one 4 KiB block overwritten and `fdatasync`ed in
//!    a loop (the most a log that syncs every commit on its own can do);
//! 2. sequential durable bandwidth: 1 MiB appends, each `fdatasync`ed;
//! 3. pwal under `SyncPolicy::Full` through the Rust API, default options,
//!    one 4 KiB page per transaction, `Log::commit` in a loop from 1, 4 and
//!    16 threads, each on a fresh log once its first segment is active and
//!    the next spare preallocated.
//!
//! Everything lives in a temporary directory under DIR, removed at the end.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use pwal::{Frame, Log, Options, SyncPolicy, Txn};

use crate::{Outcome, CLEAN};

/// Prints a line; when stdout no longer takes it (its reader went away, or
/// another error `main` reports), nothing reads the figures: the bench
/// stops there, removing its directory.
macro_rules! say {
    ($($arg:tt)*) => {
        if !crate::out::print(format_args!("{}\n", format_args!($($arg)*))) {
            return Ok(ExitCode::from(CLEAN));
        }
    };
}

const PAGE: usize = 4096;
const APPEND: usize = 1 << 20;
/// The append file is emptied (outside the measured time) when it reaches
/// this size, so the measurement needs no more disk than this.
const APPEND_FILE_MAX: u64 = 256 << 20;
const WRITERS: [usize; 3] = [1, 4, 16];

/// A directory removed with everything in it when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(dir: Option<&Path>, seconds: f64) -> Outcome {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!(
            "--seconds must be above 0 and at most 3600, not {seconds}"
        ));
    }
    let per = Duration::from_secs_f64(seconds);
    let base = dir.unwrap_or(Path::new("."));
    if !base.is_dir() {
        return Err(format!("{} is not a directory", base.display()));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = TempDir(base.join(format!("pwal-bench-{}-{nanos:08x}", std::process::id())));
    std::fs::create_dir(&tmp.0).map_err(|e| format!("creating {}: {e}", tmp.0.display()))?;
    say!(
        "pwal bench in {} ({} s per measurement)",
        tmp.0.display(),
        seconds
    );

    let rate = overwrite(&tmp.0.join("overwrite"), per)?;
    say!("disk: 4 KiB overwrite + fdatasync: {rate:.0} commits/s");
    let mbps = append(&tmp.0.join("append"), per)?;
    say!("disk: 1 MiB append + fdatasync: {mbps:.1} MB/s");

    say!("pwal: sync full, one 4 KiB page per transaction, Log::commit in a loop");
    for writers in WRITERS {
        let db = tmp.0.join(format!("bench-{writers}.db"));
        let rate = pwal_commits(&db, writers, per)?;
        let noun = if writers == 1 { "writer" } else { "writers" };
        say!("pwal: {writers} {noun}: {rate:.0} commits/s");
        let _ = std::fs::remove_dir_all(pwal::log_dir(&db));
    }
    Ok(ExitCode::from(CLEAN))
}

fn io<'a>(what: &str, path: &'a Path) -> impl Fn(std::io::Error) -> String + 'a {
    let what = what.to_string();
    move |e| format!("{what} {}: {e}", path.display())
}

/// Overwrites and `fdatasync`s one 4 KiB block for `per`; commits/s.
fn overwrite(path: &Path, per: Duration) -> Result<f64, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io("creating", path))?;
    let mut block = vec![0x5au8; PAGE];
    f.write_all_at(&block, 0).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))?;
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        block[..8].copy_from_slice(&n.to_le_bytes());
        f.write_all_at(&block, 0).map_err(io("writing", path))?;
        f.sync_data().map_err(io("syncing", path))?;
        n += 1;
        if start.elapsed() >= per {
            break;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Appends 1 MiB and `fdatasync`s, for `per`; MB/s (10^6 bytes).
fn append(path: &Path, per: Duration) -> Result<f64, String> {
    let f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io("creating", path))?;
    let chunk = vec![0xa5u8; APPEND];
    let mut measured = Duration::ZERO;
    let (mut bytes, mut len) = (0u64, 0u64);
    while measured < per {
        if len >= APPEND_FILE_MAX {
            f.set_len(0).map_err(io("emptying", path))?;
            f.sync_all().map_err(io("syncing", path))?;
            len = 0;
        }
        let t = Instant::now();
        f.write_all_at(&chunk, len).map_err(io("writing", path))?;
        f.sync_data().map_err(io("syncing", path))?;
        measured += t.elapsed();
        len += APPEND as u64;
        bytes += APPEND as u64;
    }
    Ok(bytes as f64 / 1e6 / measured.as_secs_f64())
}

/// The default segment size (`Options::segment_bytes` = 0).
const SEGMENT_BYTES: u64 = 64 << 20;

/// Waits, at most 3 s, until pwal's preallocation thread has zero-filled a
/// spare segment: while it fills one (64 MiB, synced 1 MiB at a time) it
/// shares the disk with the commits, and the benchmark measures the steady
/// state, not the first second of a new log.
fn wait_for_spare(log_dir: &Path) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        let ready = std::fs::read_dir(log_dir).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                e.file_name().to_string_lossy().starts_with("spare-")
                    && e.metadata().is_ok_and(|m| m.len() >= SEGMENT_BYTES)
            })
        });
        if ready {
            // Its final sync.
            std::thread::sleep(Duration::from_millis(20));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `writers` threads commit one-page transactions for `per`; commits/s.
fn pwal_commits(db: &Path, writers: usize, per: Duration) -> Result<f64, String> {
    let opts = Options {
        sync: SyncPolicy::Full,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open(db, &opts).map_err(|e| format!("opening {}: {e}", db.display()))?;
    // The first commit activates the first segment (from the first spare);
    // the preallocation thread then zero-fills the next spare.
    let page = vec![0u8; PAGE];
    let frames = [Frame {
        page_number: 1,
        db_size_if_commit: 100_000,
        data: &page,
    }];
    let first = Txn {
        txn_id: 1,
        commit_seq: 1,
        txn_epoch: 0,
        frames: &frames,
    };
    log.commit(&first, None)
        .map_err(|e| format!("commit: {e}"))?;
    wait_for_spare(&pwal::log_dir(db));
    let seq = AtomicU64::new(1);
    let commits = AtomicU64::new(0);
    let start = Barrier::new(writers + 1);
    let failure: std::sync::Mutex<Option<String>> = Default::default();
    let began = std::thread::scope(|s| {
        for w in 0..writers {
            let (log, seq, commits, start, failure) = (&log, &seq, &commits, &start, &failure);
            s.spawn(move || {
                let mut page = vec![w as u8; PAGE];
                start.wait();
                let t = Instant::now();
                loop {
                    let id = seq.fetch_add(1, Ordering::Relaxed) + 1;
                    page[..8].copy_from_slice(&id.to_le_bytes());
                    let frames = [Frame {
                        page_number: 1 + (id % 100_000) as u32,
                        db_size_if_commit: 100_000,
                        data: &page,
                    }];
                    let txn = Txn {
                        txn_id: id,
                        commit_seq: id,
                        txn_epoch: 0,
                        frames: &frames,
                    };
                    if let Err(e) = log.commit(&txn, None) {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("commit: {e}"));
                        return;
                    }
                    commits.fetch_add(1, Ordering::Relaxed);
                    if t.elapsed() >= per {
                        return;
                    }
                }
            });
        }
        start.wait();
        Instant::now()
    });
    let elapsed = began.elapsed();
    let closed = log.close();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    closed.map_err(|e| format!("closing {}: {e}", db.display()))?;
    Ok(commits.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}
