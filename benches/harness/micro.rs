//! The core benchmark: the four ratios the core promises (4 KiB pages, one
//! page per commit), each taken in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use pwal::{Log, Mode, Options, SyncPolicy};

use super::contenders::{empty_frames, pwal_txn, Kind, Shared};
use super::{make_pages, median, ratio, run_cell, Cell, CellResult};

/// Frames per measured submit-path run.
pub const SUBMIT_FRAMES: u64 = 50_000;
/// Frames submitted before the measured ones (lane binding, first segment).
pub const SUBMIT_WARMUP_FRAMES: u64 = 5_000;
/// Size of the ring the memcpy baseline copies into (larger than the caches,
/// like the lane buffers the submit path copies into).
const MEMCPY_RING_BYTES: usize = 4 << 20;
const PAGE: usize = 4096;
/// Frames per burst of the burst measurement: 1 MiB, under the default
/// 4 MiB batch bound, so that no writer waits for the flusher.
pub const BURST_FRAMES: u64 = 256;
pub const BURSTS: u64 = 40;
/// Bound on the wait for the flusher to drain the lanes between bursts.
const DRAIN_POLLS: usize = 2000;

#[derive(Clone, Debug, Default)]
pub struct SubmitPath {
    /// Sustained: 50,000 frames back to back, including any wait for room in
    /// the lane while the flusher writes (and preallocates segments).
    pub submit_ns_per_frame: f64,
    /// Bursts of 256 frames with the lanes drained in between: the encode and
    /// copy path alone.
    pub burst_ns_per_frame: f64,
    pub memcpy_crc_ns_per_frame: f64,
    /// What the kernel alone costs for the bytes: writing as many 4 KiB
    /// pages into a new file, 4 MiB per `pwrite` (as the flusher writes
    /// epochs), no sync; per 4 KiB.
    pub file_write_ns_per_frame: f64,
    /// The same, with an `fdatasync` wherever the log switches segments
    /// (segments start at `FIRST_SEGMENT_BYTES` and double up to
    /// `DEFAULT_SEGMENT_BYTES`): a log under `off` syncs each segment it
    /// leaves, so these syncs are in the submit path's stretch too.
    pub file_write_synced_ns_per_frame: f64,
    pub runs: usize,
    pub error: Option<String>,
}

impl SubmitPath {
    pub fn ratio(&self) -> f64 {
        ratio(self.submit_ns_per_frame, self.memcpy_crc_ns_per_frame)
    }
    pub fn file_write_ratio(&self) -> f64 {
        ratio(self.submit_ns_per_frame, self.file_write_ns_per_frame)
    }
    pub fn file_write_synced_ratio(&self) -> f64 {
        ratio(
            self.submit_ns_per_frame,
            self.file_write_synced_ns_per_frame,
        )
    }
    pub fn burst_ratio(&self) -> f64 {
        ratio(self.burst_ns_per_frame, self.memcpy_crc_ns_per_frame)
    }
}

/// ns per frame of `Log::submit` with sync off, one writer.
fn submit_once(dir: &Path) -> Result<f64, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let opts = Options {
        sync: SyncPolicy::Off,
        mode: Mode::Auto,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open(dir.join("db"), &opts).map_err(|e| format!("pwal open: {e}"))?;
    let bufs = make_pages(1, PAGE, 7);
    let pages: [&[u8]; 1] = [&bufs[0]];
    let run = |from: u64, n: u64| -> Result<f64, String> {
        let t0 = Instant::now();
        for seq in from..from + n {
            let mut frames = empty_frames();
            let txn = pwal_txn(seq, &pages, &mut frames);
            log.submit(&txn).map_err(|e| format!("pwal submit: {e}"))?;
        }
        Ok(t0.elapsed().as_nanos() as f64 / n as f64)
    };
    run(1, SUBMIT_WARMUP_FRAMES)?;
    let ns = run(1 + SUBMIT_WARMUP_FRAMES, SUBMIT_FRAMES)?;
    log.close().map_err(|e| format!("pwal close: {e}"))?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(ns)
}

/// ns per frame of `Log::submit` in bursts that fit the lane buffers (sync
/// off, one writer), the lanes drained (untimed) between bursts.
fn burst_once(dir: &Path) -> Result<f64, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let opts = Options {
        sync: SyncPolicy::Off,
        mode: Mode::Auto,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open(dir.join("db"), &opts).map_err(|e| format!("pwal open: {e}"))?;
    let bufs = make_pages(1, PAGE, 7);
    let pages: [&[u8]; 1] = [&bufs[0]];
    let mut timed = Duration::ZERO;
    let mut seq = 1u64;
    for b in 0..=BURSTS {
        let t0 = Instant::now();
        for _ in 0..BURST_FRAMES {
            let mut frames = empty_frames();
            let txn = pwal_txn(seq, &pages, &mut frames);
            log.submit(&txn).map_err(|e| format!("pwal submit: {e}"))?;
            seq += 1;
        }
        if b > 0 {
            timed += t0.elapsed(); // burst 0 warms up (lane binding)
        }
        for _ in 0..DRAIN_POLLS {
            if log.stats().lane_backlog_bytes.iter().sum::<u64>() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    log.close().map_err(|e| format!("pwal close: {e}"))?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(timed.as_nanos() as f64 / (BURSTS * BURST_FRAMES) as f64)
}

/// ns per 4 KiB of copying the page into a ring buffer and CRC32C-ing it.
fn memcpy_crc_once() -> f64 {
    let page = make_pages(1, PAGE, 7).pop().unwrap();
    let mut ring = vec![0u8; MEMCPY_RING_BYTES];
    let mut off = 0usize;
    let mut acc = 0u32;
    let mut step = |acc: &mut u32| {
        let dst = &mut ring[off..off + PAGE];
        dst.copy_from_slice(std::hint::black_box(&page));
        *acc ^= crc32c::crc32c(dst);
        off = (off + PAGE) % MEMCPY_RING_BYTES;
    };
    for _ in 0..SUBMIT_WARMUP_FRAMES {
        step(&mut acc);
    }
    let t0 = Instant::now();
    for _ in 0..SUBMIT_FRAMES {
        step(&mut acc);
    }
    let ns = t0.elapsed().as_nanos() as f64 / SUBMIT_FRAMES as f64;
    std::hint::black_box(acc);
    ns
}

/// ns per 4 KiB of writing the submit path's bytes (warm-up and measured
/// frames) into a new file in 4 MiB `pwrite`s, without sync: the page cache's
/// own cost, which the flusher pays for every byte a writer submits.
fn file_write_once(dir: &Path, sync_at_switches: bool) -> Result<f64, String> {
    use std::os::unix::fs::FileExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("file-write.dat");
    let f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    const CHUNK: usize = 4 << 20;
    let buf = make_pages(1, CHUNK, 7).pop().unwrap();
    let frames = SUBMIT_WARMUP_FRAMES + SUBMIT_FRAMES;
    let total = frames * PAGE as u64;
    let t0 = Instant::now();
    let mut off = 0u64;
    // Where the log's segments end: 4, 8, 16, 32, 64, 64, ... MiB long.
    let mut segment = pwal::FIRST_SEGMENT_BYTES;
    let mut switch_at = segment;
    while off < total {
        let n = (total - off).min(CHUNK as u64).min(switch_at - off) as usize;
        f.write_all_at(&buf[..n], off)
            .map_err(|e| format!("pwrite: {e}"))?;
        off += n as u64;
        if off == switch_at {
            if sync_at_switches {
                f.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
            }
            segment = (segment * 2).min(pwal::DEFAULT_SEGMENT_BYTES);
            switch_at += segment;
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / frames as f64;
    drop(f);
    let _ = std::fs::remove_dir_all(dir);
    Ok(ns)
}

pub fn submit_path(data_dir: &Path, runs: usize) -> SubmitPath {
    let dir = data_dir.join("submit-path");
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut w, mut ws) = (Vec::new(), Vec::new());
    let mut out = SubmitPath {
        runs,
        ..Default::default()
    };
    for r in 0..runs {
        if r % 2 == 1 {
            b.push(memcpy_crc_once());
        }
        match submit_once(&dir) {
            Ok(ns) => a.push(ns),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        match burst_once(&dir) {
            Ok(ns) => c.push(ns),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        match file_write_once(&dir, false) {
            Ok(ns) => w.push(ns),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        match file_write_once(&dir, true) {
            Ok(ns) => ws.push(ns),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        if r % 2 == 0 {
            b.push(memcpy_crc_once());
        }
    }
    out.file_write_ns_per_frame = median(w);
    out.file_write_synced_ns_per_frame = median(ws);
    out.burst_ns_per_frame = median(c);
    out.submit_ns_per_frame = median(a);
    out.memcpy_crc_ns_per_frame = median(b);
    out
}

/// The core cells, each the median of `runs` runs with the contenders
/// alternating: the floor, pwal auto at 1 and 16 writers, pwal conservative at
/// 16 writers.
pub struct CoreRatios {
    pub floor: CellResult,
    pub auto_1: CellResult,
    pub auto_16: CellResult,
    pub conservative_16: CellResult,
    pub submit: SubmitPath,
}

impl CoreRatios {
    fn cps(c: &CellResult) -> f64 {
        c.median().map(|m| m.commits_per_s).unwrap_or(f64::NAN)
    }
    pub fn one_writer_vs_floor(&self) -> f64 {
        ratio(Self::cps(&self.auto_1), Self::cps(&self.floor))
    }
    pub fn sixteen_vs_one(&self) -> f64 {
        ratio(Self::cps(&self.auto_16), Self::cps(&self.auto_1))
    }
    pub fn auto_vs_conservative_16(&self) -> f64 {
        ratio(Self::cps(&self.auto_16), Self::cps(&self.conservative_16))
    }

    /// Builds the ratios from cells already measured (by `compare`).
    pub fn from_results(results: &[CellResult], submit: SubmitPath) -> Option<CoreRatios> {
        let find = |k: Kind, t: usize| {
            results
                .iter()
                .find(|r| {
                    r.kind == k
                        && r.cell
                            == Cell {
                                threads: t,
                                pages: 1,
                                page_size: PAGE,
                            }
                })
                .cloned()
        };
        Some(CoreRatios {
            floor: find(Kind::Floor, 1)?,
            auto_1: find(Kind::PwalAutoFull, 1)?,
            auto_16: find(Kind::PwalAutoFull, 16)?,
            conservative_16: find(Kind::PwalConservativeFull, 16)?,
            submit,
        })
    }

    /// Measures the core cells on their own.
    pub fn measure(shared: &Shared, runs: usize, warmup: Duration, secs: Duration) -> CoreRatios {
        let one = Cell {
            threads: 1,
            pages: 1,
            page_size: PAGE,
        };
        let sixteen = Cell { threads: 16, ..one };
        let mut a = run_cell(
            &[Kind::Floor, Kind::PwalAutoFull],
            one,
            runs,
            shared,
            warmup,
            secs,
        );
        let mut b = run_cell(
            &[Kind::PwalAutoFull, Kind::PwalConservativeFull],
            sixteen,
            runs,
            shared,
            warmup,
            secs,
        );
        let submit = submit_path(&shared.data_dir, runs.max(3));
        CoreRatios {
            conservative_16: b.pop().unwrap(),
            auto_16: b.pop().unwrap(),
            auto_1: a.pop().unwrap(),
            floor: a.pop().unwrap(),
            submit,
        }
    }

    /// The four core lines, each with its target.
    /// (what, wanted, met); `met` is `None` for a line that is context, not
    /// a target.
    pub fn lines(&self) -> Vec<(String, String, Option<bool>)> {
        let f = |x: f64| {
            if x.is_finite() {
                format!("{x:.2}x")
            } else {
                "n/a".into()
            }
        };
        let c = |x: f64| format!("{x:.0}");
        let s = &self.submit;
        vec![
            (
                format!(
                    "1 writer vs raw overwrite+fdatasync loop: {} ({} vs {} commits/s)",
                    f(self.one_writer_vs_floor()),
                    c(Self::cps(&self.auto_1)),
                    c(Self::cps(&self.floor))
                ),
                ">= 0.85x".into(),
                Some(self.one_writer_vs_floor() >= 0.85),
            ),
            (
                format!(
                    "16 writers vs 1 writer: {} ({} vs {} commits/s)",
                    f(self.sixteen_vs_one()),
                    c(Self::cps(&self.auto_16)),
                    c(Self::cps(&self.auto_1))
                ),
                ">= 4x".into(),
                Some(self.sixteen_vs_one() >= 4.0),
            ),
            (
                format!(
                    "auto vs conservative at 16 writers: {} ({} vs {} commits/s)",
                    f(self.auto_vs_conservative_16()),
                    c(Self::cps(&self.auto_16)),
                    c(Self::cps(&self.conservative_16))
                ),
                ">= 1.0x".into(),
                Some(self.auto_vs_conservative_16() >= 1.0),
            ),
            (
                format!(
                    "submit path (sync=off, 1 writer, 50,000 frames back to back) vs memcpy+crc32c per 4 KiB frame: {} ({:.0} vs {:.0} ns){}",
                    f(s.ratio()),
                    s.submit_ns_per_frame,
                    s.memcpy_crc_ns_per_frame,
                    s.error.as_deref().map(|e| format!(" [error: {e}]")).unwrap_or_default()
                ),
                "<= 3x".into(),
                Some(s.ratio() <= 3.0),
            ),
            (
                format!(
                    "what bounds it: writing the same bytes into a new file in 4 MiB pwrites costs {:.0} ns per 4 KiB without a sync ({} memcpy+crc32c; the submit path is {} of it), and {:.0} ns with an fdatasync where the log switches segments, as a log under off does ({} memcpy+crc32c; the submit path is {} of it)",
                    s.file_write_ns_per_frame,
                    f(ratio(s.file_write_ns_per_frame, s.memcpy_crc_ns_per_frame)),
                    f(s.file_write_ratio()),
                    s.file_write_synced_ns_per_frame,
                    f(ratio(s.file_write_synced_ns_per_frame, s.memcpy_crc_ns_per_frame)),
                    f(s.file_write_synced_ratio()),
                ),
                "-".into(),
                None,
            ),
            (
                format!(
                    "submit path in bursts of {BURST_FRAMES} frames (lanes drained between bursts, untimed) vs memcpy+crc32c: {} ({:.0} vs {:.0} ns)",
                    f(s.burst_ratio()),
                    s.burst_ns_per_frame,
                    s.memcpy_crc_ns_per_frame,
                ),
                "<= 3x".into(),
                Some(s.burst_ratio() <= 3.0),
            ),
        ]
    }
}
