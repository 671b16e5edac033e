//! Large transactions against the disk's sequential durable bandwidth, in
//! the same run, contenders alternating (median of `--runs`):
//!
//! For each size in `--mib` (default 1, 16 and 256 MiB):
//!
//! - the floor: that many MiB written to a pre-zeroed file in `pwrite`s of
//!   `MAX_RECORD_BYTES` (the size of the parts pwal writes, one per epoch),
//!   each followed by `fdatasync`: the disk's sequential durable bandwidth
//!   at that granularity;
//! - pwal: one transaction of that many MiB of 4 KiB pages, `pwal_commit`
//!   under sync full, from the call to its return (the log is new: segments
//!   are preallocated as it goes, as they would be in production);
//! - recovery of that log, against reading the same number of bytes.
//!
//! ```text
//! cargo bench --bench large_txn -- [--runs N] [--mib 1,16,256]
//! ```

#[allow(dead_code)]
mod harness;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use pwal::{Frame, Log, Options, RecoverOptions, SyncPolicy, Txn};

const CHUNK: usize = pwal::MAX_RECORD_BYTES;
const PAGE: usize = 4096;

fn floor(dir: &Path, data: &[u8]) -> f64 {
    let path = dir.join("floor.bin");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // Pre-zeroed and synced, as pwal's segments are before use.
    let zeros = vec![0u8; CHUNK];
    for (i, _) in data.chunks(CHUNK).enumerate() {
        f.write_all_at(&zeros, (i * CHUNK) as u64).unwrap();
    }
    f.sync_all().unwrap();
    let t = Instant::now();
    for (i, c) in data.chunks(CHUNK).enumerate() {
        f.write_all_at(c, (i * CHUNK) as u64).unwrap();
        f.sync_data().unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    s
}

fn read_back(dir: &Path, data: &[u8]) -> f64 {
    let path = dir.join("read.bin");
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    drop_cache(&f);
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut off = 0u64;
    let mut sum = 0u32;
    loop {
        let n = f.read_at(&mut buf, off).unwrap();
        if n == 0 {
            break;
        }
        sum = crc32c::crc32c_append(sum, &buf[..n]);
        off += n as u64;
    }
    let s = t.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    std::fs::remove_file(&path).unwrap();
    s
}

fn drop_cache(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; advice only.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// Commits `data` as one transaction into a new log; returns the commit's
/// seconds, and recovery's.
fn pwal_round(dir: &Path, data: &[u8]) -> (f64, f64) {
    let db = dir.join("db");
    let _ = std::fs::remove_dir_all(pwal::log_dir(&db));
    let frames: Vec<Frame<'_>> = data
        .chunks(PAGE)
        .enumerate()
        .map(|(i, d)| Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: 0,
            data: d,
        })
        .collect();
    let opts = Options {
        sync: SyncPolicy::Full,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open(&db, &opts).unwrap();
    let t = Instant::now();
    log.commit(
        &Txn {
            txn_id: 1,
            commit_seq: 1,
            txn_epoch: 0,
            frames: &frames,
        },
        None,
    )
    .unwrap();
    let commit = t.elapsed().as_secs_f64();
    if std::env::var_os("LARGE_TXN_STATS").is_some() {
        let st = log.stats();
        eprintln!(
            "  epochs {} syncs {} sync p50 {} us p99 {} us max {} us, segments created {}",
            st.epochs,
            st.syncs,
            st.sync_latency.p50_us,
            st.sync_latency.p99_us,
            st.sync_latency.max_us,
            st.segments_created
        );
    }
    log.close().unwrap();
    for e in std::fs::read_dir(pwal::log_dir(&db)).unwrap() {
        drop_cache(&std::fs::File::open(e.unwrap().path()).unwrap());
    }
    let t = Instant::now();
    let mut n = 0usize;
    pwal::recover(&db, &RecoverOptions::default(), |r| {
        n += r.data.len();
        true
    })
    .unwrap();
    let recover = t.elapsed().as_secs_f64();
    assert_eq!(n, data.len(), "recovery returned the whole transaction");
    let _ = std::fs::remove_dir_all(pwal::log_dir(&db));
    (commit, recover)
}

fn main() {
    let args = harness::args::Args::parse(&["runs", "mib"]);
    let runs = args.get("runs", 5usize);
    let sizes: Vec<usize> = args.list("mib", &[1, 16, 256]);
    let dir = harness::default_data_dir().join("large_txn");
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = Vec::new();
    for &mib in &sizes {
        lines.extend(one_size(&dir, runs, mib));
    }
    println!("\n== {}", harness::command_line("large_txn"));
    for l in lines {
        println!("{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `runs` alternating rounds of one transaction of `mib` MiB; the summary
/// lines (medians).
fn one_size(dir: &Path, runs: usize, mib: usize) -> Vec<String> {
    let bytes = mib << 20;
    let data: Vec<u8> = (0..bytes)
        .map(|i| (i / PAGE * 31 + i % 251) as u8)
        .collect();
    let (mut f, mut c, mut rd, mut rc) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        // Alternate which goes first, so neither always gets the warmer disk.
        let (fl, (co, re)) = if run % 2 == 0 {
            let a = floor(dir, &data);
            (a, pwal_round(dir, &data))
        } else {
            let b = pwal_round(dir, &data);
            (floor(dir, &data), b)
        };
        let r = read_back(dir, &data);
        let mbs = |s: f64| bytes as f64 / s / 1e6;
        println!(
            "{mib} MiB, run {run}: floor {:.0} MB/s, pwal commit {:.0} MB/s; read {:.0} MB/s, pwal recovery {:.0} MB/s",
            mbs(fl),
            mbs(co),
            mbs(r),
            mbs(re)
        );
        f.push(mbs(fl));
        c.push(mbs(co));
        rd.push(mbs(r));
        rc.push(mbs(re));
    }
    let (f, c, rd, rc) = (
        harness::median(f),
        harness::median(c),
        harness::median(rd),
        harness::median(rc),
    );
    vec![
        format!(
            "  one transaction of {mib} MiB, sync full: {c:.0} MB/s vs the disk's sequential durable bandwidth {f:.0} MB/s ({} MiB pwrite + fdatasync): {:.2}x",
            CHUNK.min(bytes) >> 20,
            c / f
        ),
        format!(
            "  recovery of it: {rc:.0} MB/s vs a cold sequential read + CRC32C of as many bytes {rd:.0} MB/s: {:.2}x",
            rc / rd
        ),
    ]
}
