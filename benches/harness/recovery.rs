//! Recovery against a sequential read of the same files. Both run in a child
//! process (this binary re-executed with `--child-recover` / `--child-read`)
//! so that each reports its own time and peak resident memory (`VmHWM`), and
//! every file of the log is synced and dropped from the page cache
//! (`posix_fadvise(DONTNEED)`) before each child starts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pwal::{Log, Mode, Options, RecoverOptions, SyncPolicy};

use super::contenders::{empty_frames, pwal_txn};
use super::{make_pages, median, sys};

/// Pages per transaction of the generated logs.
const GEN_PAGES: usize = 8;
const GEN_PAGE_SIZE: usize = 4096;
const GEN_THREADS: usize = 2;
/// How pwal names its segment files and its preallocated spares (see
/// docs/FORMAT.md).
const SEGMENT_SUFFIX: &str = ".pwseg";
const SPARE_PREFIX: &str = "spare-";
/// Read size of the sequential-read baseline.
const READ_CHUNK: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct ChildReport {
    pub secs: f64,
    pub bytes: u64,
    pub records: u64,
    pub epochs: u64,
    pub segments: u64,
    pub hwm_kib: u64,
    /// User + system CPU seconds of the child.
    pub cpu_secs: f64,
}

impl ChildReport {
    fn to_line(&self) -> String {
        format!(
            "secs={} bytes={} records={} epochs={} segments={} hwm_kib={} cpu_secs={}",
            self.secs,
            self.bytes,
            self.records,
            self.epochs,
            self.segments,
            self.hwm_kib,
            self.cpu_secs
        )
    }
    fn parse(s: &str) -> Option<ChildReport> {
        let line = s.lines().rev().find(|l| l.starts_with("secs="))?;
        let mut r = ChildReport::default();
        for kv in line.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "secs" => r.secs = v.parse().ok()?,
                "bytes" => r.bytes = v.parse().ok()?,
                "records" => r.records = v.parse().ok()?,
                "epochs" => r.epochs = v.parse().ok()?,
                "segments" => r.segments = v.parse().ok()?,
                "hwm_kib" => r.hwm_kib = v.parse().ok()?,
                "cpu_secs" => r.cpu_secs = v.parse().ok()?,
                _ => {}
            }
        }
        Some(r)
    }
}

/// The figures of one log size (medians of the runs).
#[derive(Clone, Debug, Default)]
pub struct RecoveryResult {
    pub target_mib: u64,
    pub log_bytes: u64,
    pub file_bytes: u64,
    pub records: u64,
    pub epochs: u64,
    pub segments: u64,
    pub recover_secs: f64,
    pub recover_hwm_kib: u64,
    pub read_secs: f64,
    pub read_hwm_kib: u64,
    pub recover_cpu_secs: f64,
    pub read_cpu_secs: f64,
    pub runs: usize,
    pub error: Option<String>,
}

impl RecoveryResult {
    /// Recovered log bytes per second.
    pub fn recover_mb_s(&self) -> f64 {
        self.log_bytes as f64 / self.recover_secs / 1e6
    }
    /// Bytes of the same files read per second.
    pub fn read_mb_s(&self) -> f64 {
        self.file_bytes as f64 / self.read_secs / 1e6
    }
}

/// Entry point of the child processes; returns true if `args` asked for one.
pub fn child_main(args: &[String]) -> bool {
    // `--child-generate <db> <mib>`: writes the log `measure` would and keeps
    // it, for profiling `--child-recover` by hand.
    if let [m, p, mib, ..] = args {
        if m == "--child-generate" {
            let mib: u64 = mib.parse().expect("--child-generate <db> <mib>");
            if let Err(e) = generate(Path::new(p), mib << 20) {
                eprintln!("{m}: {e}");
                std::process::exit(1);
            }
            return true;
        }
    }
    let (mode, path) = match args {
        [m, p, ..] if m == "--child-recover" || m == "--child-read" => {
            (m.as_str(), PathBuf::from(p))
        }
        _ => return false,
    };
    let limit = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    let r = if mode == "--child-recover" {
        child_recover(&path)
    } else {
        child_read(&path, limit)
    };
    match r {
        Ok(mut r) => {
            r.cpu_secs = sys::cpu_seconds_self();
            println!("{}", r.to_line())
        }
        Err(e) => {
            eprintln!("{mode}: {e}");
            std::process::exit(1);
        }
    }
    true
}

fn child_recover(db: &Path) -> Result<ChildReport, String> {
    let t0 = Instant::now();
    let mut records = 0u64;
    let mut check = 0u8;
    let rep = pwal::recover(db, &RecoverOptions::default(), |r| {
        records += 1;
        check ^= r.data.first().copied().unwrap_or(0);
        true
    })
    .map_err(|e| format!("recover: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(check);
    Ok(ChildReport {
        secs,
        bytes: rep.bytes,
        records,
        epochs: rep.epochs,
        segments: rep.segments,
        hwm_kib: sys::vm_hwm_kib(),
        cpu_secs: 0.0,
    })
}

fn log_files(db: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = pwal::log_dir(db);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    // The segments only: not the lock file, nor a preallocated spare that
    // holds no frame yet (recovery has no reason to read it either).
    let is_segment = |p: &PathBuf| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        n.ends_with(SEGMENT_SUFFIX) && !n.starts_with(SPARE_PREFIX)
    };
    if v.iter().any(is_segment) {
        v.retain(is_segment);
    }
    v.sort();
    Ok(v)
}

/// Reads the segments in order, 1 MiB at a time, until `limit` bytes (the log
/// bytes recovery reported: the preallocated zero tail of the last segment is
/// not part of the log).
fn child_read(db: &Path, limit: u64) -> Result<ChildReport, String> {
    use std::io::Read;
    let files = log_files(db)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let t0 = Instant::now();
    let mut bytes = 0u64;
    let mut check = 0u8;
    for p in &files {
        let mut f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if n == 0 {
                break;
            }
            check ^= buf[n - 1];
            bytes += n as u64;
            if bytes >= limit {
                break;
            }
        }
        if bytes >= limit {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(check);
    Ok(ChildReport {
        secs,
        bytes,
        segments: files.len() as u64,
        hwm_kib: sys::vm_hwm_kib(),
        ..Default::default()
    })
}

fn run_child(mode: &str, db: &Path, limit: Option<u64>) -> Result<ChildReport, String> {
    for f in log_files(db)? {
        sys::drop_from_cache(&f).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .arg(mode)
        .arg(db)
        .args(limit.map(|l| l.to_string()))
        .output()
        .map_err(|e| format!("spawn {mode}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{mode} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    ChildReport::parse(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("{mode}: no report"))
}

/// Writes a log with at least `target_bytes` of epoch frames (2 writers,
/// 8 pages of 4 KiB per transaction, sync off, then closed).
fn generate(db: &Path, target_bytes: u64) -> Result<(), String> {
    let opts = Options {
        sync: SyncPolicy::Off,
        mode: Mode::Auto,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open(db, &opts).map_err(|e| format!("pwal open: {e}"))?;
    let seq = std::sync::atomic::AtomicU64::new(1);
    let err: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for t in 0..GEN_THREADS {
            let (log, seq, err) = (&log, &seq, &err);
            s.spawn(move || {
                let bufs = make_pages(GEN_PAGES, GEN_PAGE_SIZE, 100 + t as u64);
                let pages: Vec<&[u8]> = bufs.iter().map(|b| b.as_slice()).collect();
                let mut i = 0u64;
                loop {
                    // Page bytes submitted so far (the flushed count lags
                    // behind by what the lanes hold).
                    let submitted = seq.load(std::sync::atomic::Ordering::Relaxed)
                        * (GEN_PAGES * GEN_PAGE_SIZE) as u64;
                    if submitted >= target_bytes || (i & 255 == 0 && err.lock().unwrap().is_some())
                    {
                        break;
                    }
                    i += 1;
                    let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut frames = empty_frames();
                    let txn = pwal_txn(n, &pages, &mut frames);
                    if let Err(e) = log.submit(&txn) {
                        err.lock()
                            .unwrap()
                            .get_or_insert(format!("pwal submit: {e}"));
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = err.into_inner().unwrap() {
        return Err(e);
    }
    log.close().map_err(|e| format!("pwal close: {e}"))
}

/// Measures one log size: generate, then `runs` times recover and read
/// (alternating which goes first), medians.
pub fn measure(data_dir: &Path, target_mib: u64, runs: usize) -> RecoveryResult {
    let dir = data_dir.join(format!("recovery-{target_mib}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut res = RecoveryResult {
        target_mib,
        runs,
        ..Default::default()
    };
    let r = (|| -> Result<(), String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let db = dir.join("db");
        let t0 = Instant::now();
        generate(&db, target_mib << 20)?;
        eprintln!(
            "  generated {target_mib} MiB log in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let (mut rec, mut read) = (Vec::new(), Vec::new());
        for r in 0..runs {
            if r % 2 == 0 {
                rec.push(run_child("--child-recover", &db, None)?);
                read.push(run_child("--child-read", &db, Some(rec[0].bytes))?);
            } else {
                read.push(run_child("--child-read", &db, Some(rec[0].bytes))?);
                rec.push(run_child("--child-recover", &db, None)?);
            }
            eprintln!(
                "  recovery {target_mib} MiB run {}: recover {:.3} s ({} KiB peak), read {:.3} s ({} KiB peak)",
                r + 1,
                rec[r].secs,
                rec[r].hwm_kib,
                read[r].secs,
                read[r].hwm_kib
            );
        }
        res.log_bytes = rec[0].bytes;
        res.records = rec[0].records;
        res.epochs = rec[0].epochs;
        res.segments = rec[0].segments;
        res.file_bytes = read[0].bytes;
        res.recover_secs = median(rec.iter().map(|r| r.secs).collect());
        res.read_secs = median(read.iter().map(|r| r.secs).collect());
        res.recover_cpu_secs = median(rec.iter().map(|r| r.cpu_secs).collect());
        res.read_cpu_secs = median(read.iter().map(|r| r.cpu_secs).collect());
        res.recover_hwm_kib = rec.iter().map(|r| r.hwm_kib).max().unwrap_or(0);
        res.read_hwm_kib = read.iter().map(|r| r.hwm_kib).max().unwrap_or(0);
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("  recovery {target_mib} MiB: ERROR {e}");
        res.error = Some(e);
    }
    let _ = std::fs::remove_dir_all(&dir);
    res
}
