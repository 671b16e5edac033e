//! What writing into new disk space costs, against overwriting: one thread
//! writing a file front to back, each write followed by `fdatasync`, into a
//! pre-zeroed file (what a recycled or zero-filled segment gives), an empty
//! file (a segment started empty, which grows), and a file allocated by
//! `fallocate` (unwritten extents). A log nobody checkpoints never
//! overwrites: every byte it writes lands on new space, under a zero-fill
//! (the byte then reaches the disk twice) or under the commits themselves
//! (each sync then also commits the file system's metadata).

use std::path::Path;
use std::time::Instant;

/// Rounds of each kind of file, alternating; each figure is their median.
pub const ROUNDS: usize = 3;

/// Synced writes per second into each kind of file.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewSpace {
    /// The size of each write, in bytes.
    pub write_bytes: usize,
    pub overwrite: f64,
    pub append: f64,
    pub fallocated: f64,
}

/// Measures [`NewSpace`] for `writes` writes of `write_bytes` in `dir`
/// (created and removed).
pub fn measure(dir: &Path, write_bytes: usize, writes: usize) -> Result<NewSpace, String> {
    let [a, b, c] = measure_kinds(dir, &[write_bytes], writes, &[0, 1, 2])?
        .pop()
        .unwrap();
    Ok(NewSpace {
        write_bytes,
        overwrite: a,
        append: b,
        fallocated: c,
    })
}

/// For each size of `sizes`, the median rate of each kind of file in
/// `kinds` (0: pre-zeroed, 1: empty, 2: fallocated; the others 0), the
/// sizes and kinds alternating within each round.
fn measure_kinds(
    dir: &Path,
    sizes: &[usize],
    writes: usize,
    kinds: &[usize],
) -> Result<Vec<[f64; 3]>, String> {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut rates: Vec<[Vec<f64>; 3]> = sizes.iter().map(|_| Default::default()).collect();
    for round in 0..ROUNDS {
        // The sizes take turns going first.
        for k in 0..sizes.len() {
            let i = (k + round) % sizes.len();
            let (write_bytes, rates) = (sizes[i], &mut rates[i]);
            let total = (write_bytes * writes) as u64;
            let buf = super::make_pages(1, write_bytes, 11).pop().unwrap();
            for &mode in kinds {
                let out = &mut rates[mode];
                let p = dir.join(format!("new-space-{mode}"));
                let _ = std::fs::remove_file(&p);
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&p)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                match mode {
                    0 => {
                        let zeros = vec![0u8; 1 << 20];
                        let mut o = 0;
                        while o < total {
                            f.write_all_at(&zeros, o).map_err(|e| e.to_string())?;
                            o += zeros.len() as u64;
                        }
                    }
                    2 => {
                        // SAFETY: fallocate on a descriptor this function owns,
                        // no pointer arguments.
                        let rc =
                            unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, total as libc::off_t) };
                        if rc != 0 {
                            return Err(format!("fallocate: {}", std::io::Error::last_os_error()));
                        }
                    }
                    _ => {}
                }
                f.sync_all().map_err(|e| e.to_string())?;
                let t0 = Instant::now();
                for i in 0..writes {
                    f.write_all_at(&buf, (i * write_bytes) as u64)
                        .map_err(|e| e.to_string())?;
                    f.sync_data().map_err(|e| e.to_string())?;
                }
                out.push(writes as f64 / t0.elapsed().as_secs_f64());
                drop(f);
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(rates
        .into_iter()
        .map(|r| r.map(|v| if v.is_empty() { 0.0 } else { super::median(v) }))
        .collect())
}

/// What bounds the 1-writer cell against the floor. The floor overwrites
/// one page per commit; a frame of pwal is the page and its headers, so
/// frames straddle pages and each sync also writes again the page the last
/// frame ended in. Measured: the floor's loop (one thread, each write over
/// a pre-zeroed file followed by `fdatasync`) at the cell's mean frame size
/// and, alternating with it, at the page size.
#[derive(Clone, Copy, Debug)]
pub struct FrameBound {
    pub cell: super::Cell,
    /// The cell's mean epoch frame, bytes.
    pub frame_bytes: usize,
    /// The cell's mean transactions per epoch.
    pub txns_per_epoch: f64,
    /// Synced writes per second of a frame, and of a page.
    pub at_frame: f64,
    pub at_page: f64,
}

impl FrameBound {
    /// Commits per second the frames carry.
    pub fn frame_cps(&self) -> f64 {
        self.at_frame * self.txns_per_epoch
    }
}

/// The mean epoch frame (bytes) and transactions per epoch of the median
/// run of `kind` in `cell`, from pwal's counters; `None` when that cell was
/// not run or wrote no epoch.
fn mean_epoch(
    results: &[super::CellResult],
    kind: super::contenders::Kind,
    cell: super::Cell,
) -> Option<(usize, f64)> {
    let w = results
        .iter()
        .find(|r| r.kind == kind && r.cell == cell)?
        .median()?
        .pwal?;
    (w.epochs > 0).then(|| {
        (
            (w.bytes_written / w.epochs) as usize,
            w.txns_per_epoch_mean(),
        )
    })
}

/// Synced writes of each size in [`frame_bound`], per round.
const FRAME_BOUND_WRITES: usize = 3000;

/// Measures the [`FrameBound`] of `cell` for the pwal run of `kind` in
/// `results` (`None` when that cell was not run).
pub fn frame_bound(
    results: &[super::CellResult],
    kind: super::contenders::Kind,
    cell: super::Cell,
    dir: &Path,
) -> Option<Result<FrameBound, (super::Cell, String)>> {
    let (frame, txns_per_epoch) = mean_epoch(results, kind, cell)?;
    let page = cell.commit_bytes();
    Some(
        measure_kinds(dir, &[frame, page], FRAME_BOUND_WRITES, &[0])
            .map(|r| FrameBound {
                cell,
                frame_bytes: frame,
                txns_per_epoch,
                at_frame: r[0][0],
                at_page: r[1][0],
            })
            .map_err(|e| (cell, e)),
    )
}

/// What bounds a no-checkpoint cell against the sequential floor: the same
/// epochs written back to back by one thread with nothing else to do, each
/// followed by `fdatasync`, into new space and (for comparison) over a
/// pre-zeroed file.
#[derive(Clone, Copy, Debug)]
pub struct EpochBound {
    pub cell: super::Cell,
    /// The cell's mean transactions per epoch (pwal's counters, median run).
    pub txns_per_epoch: f64,
    /// Measured with writes of the cell's mean epoch frame.
    pub space: NewSpace,
}

impl EpochBound {
    /// Commits per second the epochs carry when appended to an empty file.
    pub fn append_cps(&self) -> f64 {
        self.space.append * self.txns_per_epoch
    }
    /// Commits per second the epochs carry when they overwrite a pre-zeroed
    /// file.
    pub fn overwrite_cps(&self) -> f64 {
        self.space.overwrite * self.txns_per_epoch
    }
}

/// Bytes written by each kind of file in [`epoch_bound`], at least.
const EPOCH_BOUND_BYTES: usize = 96 << 20;

/// Measures the [`EpochBound`] of `cell` for the no-checkpoint pwal run in
/// `results` (`None` when that cell was not run).
pub fn epoch_bound(
    results: &[super::CellResult],
    cell: super::Cell,
    dir: &Path,
) -> Option<Result<EpochBound, (super::Cell, String)>> {
    let kind = super::contenders::Kind::PwalAutoFullNoCheckpoint;
    // The mean epoch frame, written back to back as the log writes them.
    let (frame, txns_per_epoch) = mean_epoch(results, kind, cell)?;
    let writes = EPOCH_BOUND_BYTES.div_ceil(frame).max(16);
    Some(
        measure(dir, frame, writes)
            .map(|space| EpochBound {
                cell,
                txns_per_epoch,
                space,
            })
            .map_err(|e| (cell, e)),
    )
}
