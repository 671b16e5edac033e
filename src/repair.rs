//! Repair: cuts a log back to its durable prefix (what recovery in
//! durable-prefix mode returns), moving every byte it takes out of the log
//! into `<path>-pwal/damaged/`; nothing is deleted.
//!
//! Where the prefix ends inside a segment, the whole segment is first copied
//! into `damaged/` (and synced), then the live copy is cut by writing zeros
//! from the cut to the end of the file: the file keeps its size (the store's
//! files are all preallocated to their size), and zeros where an epoch is
//! expected are the ordinary end of a segment's frames (FORMAT.md, "Reading a
//! log"), so recovery's rules read the cut log as ending there. Every
//! segment file after it is renamed into `damaged/`. A segment whose header
//! is itself the damage is moved whole. Once nothing past the cut is in the
//! log, an empty frame carrying the durable checkpoint mark is written at
//! the cut (the frames cut may have been the only ones carrying it).
//! Everything changed is synced: the copies, `damaged/`, the mark's frame,
//! the cut file, and the log directory.
//!
//! Repair can be run again after a crash part-way: the later segments still
//! in place, or moved with the file not yet cut, the file cut at the same
//! place on the next run, which reads the mark from `damaged/` too (at worst
//! the segment is copied into `damaged/` twice, or a run after the mark's
//! frame was written cuts one epoch later, after it).

use std::path::{Path, PathBuf};

use crate::epoch::{Certificate, SegmentIdent, END_MARK_LEN};
use crate::error::{Error, Result};
use crate::io::{RealVfs, Vfs};
use crate::recovery::{scan, RecoveryReport, ReplayOptions};
use crate::segment::{list_segments, DATA_OFFSET};

/// The directory, inside the log directory, that receives what repair
/// takes out of the log.
pub const DAMAGED_DIR: &str = "damaged";

const CHUNK: usize = 1 << 20;

/// Cuts the log of the database at `db_path` back to its durable prefix; see
/// [`repair_with_vfs`].
pub fn repair(db_path: impl AsRef<Path>, report: &mut RecoveryReport) -> Result<()> {
    repair_with_vfs(&RealVfs, db_path.as_ref(), report)
}

/// Cuts the log back to exactly the records recovery with
/// [`RecoverOptions::durable_prefix`] returns, moving everything after them
/// into `damaged/` (see the module documentation). Afterwards plain
/// recovery returns that prefix and the log opens. A log with nothing to
/// cut is left as it is. `report` is filled on every return: what the
/// durable-prefix scan found (the prefix kept, and in `damage` what was cut).
/// Takes the log's lock: fails with [`Error::Locked`] when another process,
/// or this one, has the log open.
pub fn repair_with_vfs(vfs: &dyn Vfs, db_path: &Path, report: &mut RecoveryReport) -> Result<()> {
    *report = RecoveryReport::default();
    let dir = crate::log_dir(db_path);
    if !vfs.exists(&dir) {
        return Ok(());
    }
    let _guard = crate::registry::lock_for_reading(vfs, &dir)?;
    if let crate::registry::Reading::Beside(_) = _guard {
        return Err(Error::Locked(format!(
            "{} is open in this process: close every handle before repairing it",
            dir.display()
        )));
    }
    let opts = ReplayOptions {
        durable_prefix: true,
        ..ReplayOptions::default()
    };
    let end = scan(vfs, &dir, &opts, None, report)?;
    let Some((cut_file, cut_at, cut_epoch)) = end.stop.clone() else {
        return Ok(());
    };
    let cut_id = end
        .segments
        .iter()
        .find(|s| s.path == cut_file)
        .map(|s| s.id)
        .ok_or_else(|| Error::Internal("the cut segment is not in the listing".into()))?;

    let damaged = dir.join(DAMAGED_DIR);
    vfs.create_dir_all(&damaged)
        .map_err(|e| io_err("creating", &damaged, e))?;
    sync_dir(vfs, &dir)?;

    // A header that is the damage: the file holds nothing of the prefix.
    let move_cut_file = cut_at < DATA_OFFSET;
    if !move_cut_file {
        copy_into(vfs, &cut_file, &damaged)?;
        sync_dir(vfs, &damaged)?;
    }
    let mut moved = false;
    for s in list_segments(vfs, &dir)?
        .iter()
        .filter(|s| s.id > cut_id || (move_cut_file && s.id == cut_id))
    {
        let to = unique_name(vfs, &damaged, &s.path)?;
        vfs.rename(&s.path, &to).map_err(|e| {
            Error::io(
                format!("moving {} to {}", s.path.display(), to.display()),
                e,
            )
        })?;
        moved = true;
    }
    if moved {
        sync_dir(vfs, &damaged)?;
        sync_dir(vfs, &dir)?;
    }
    // The durable checkpoint mark may be carried only by frames past the
    // cut: a frame of its own keeps it, written where the prefix ends, once
    // everything after the cut is out of the log (written earlier, a crash
    // before the moves were durable would leave a log reading on from the
    // new frame into the next segment, the damaged epoch silently empty).
    // The mark is also read from `damaged/`: after a crash between the moves
    // and this frame, the frames carrying it are there only. Without it
    // recovery would hand the engine checkpointed epochs again, and a log
    // whose first segments a checkpoint removed would look as if it had lost
    // its beginning.
    let durable_mark = end
        .checkpoint_epoch
        .max(crate::recovery::mark_in_dir(vfs, &damaged)?);
    let mark = durable_mark.min(cut_epoch.saturating_sub(1));
    let mut zero_after = cut_at;
    if mark > 0 {
        let place = if move_cut_file {
            end.prefix_end.clone()
        } else {
            end.segments
                .iter()
                .find(|s| s.path == cut_file)
                .and_then(|s| s.header)
                .map(|h| (cut_file.clone(), cut_at, h.ident()))
        };
        if let Some((file, at, ident)) = place {
            let written = write_mark_frame(vfs, &file, at, ident, cut_epoch, mark)?;
            if !move_cut_file {
                zero_after = at + written;
            }
        }
    }
    if !move_cut_file {
        zero_from(vfs, &cut_file, zero_after)?;
    }
    Ok(())
}

/// Writes, at `at` of `file`, an empty frame of `epoch` that carries the
/// checkpoint mark `mark` (and says every epoch before it is synced: the
/// prefix is), followed by an end mark of zeros, and syncs it. Returns the
/// bytes written.
fn write_mark_frame(
    vfs: &dyn Vfs,
    file: &Path,
    at: u64,
    ident: SegmentIdent,
    epoch: u64,
    mark: u64,
) -> Result<u64> {
    let cert = Certificate {
        segment: ident,
        epoch,
        synced_through: epoch - 1,
        checkpoint_epoch: mark,
        ..Certificate::default()
    };
    let frame = cert.encode(&[]);
    let zeros = [0u8; END_MARK_LEN];
    let f = vfs
        .open(file, false)
        .map_err(|e| io_err("opening", file, e))?;
    f.write_all_at(&[&frame, &zeros], at)
        .map_err(|e| io_err("writing the checkpoint mark into", file, e))?;
    f.sync_data().map_err(|e| io_err("syncing", file, e))?;
    Ok(frame.len() as u64)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), e)
}

fn sync_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    vfs.sync_dir(dir)
        .map_err(|e| io_err("syncing directory", dir, e))
}

/// `damaged/<file name>`, or with `.1`, `.2`, ... appended when a file of
/// that name is already there (from an earlier repair).
fn unique_name(vfs: &dyn Vfs, damaged: &Path, file: &Path) -> Result<PathBuf> {
    let name = file
        .file_name()
        .ok_or_else(|| Error::Internal(format!("{} has no file name", file.display())))?;
    let mut to = damaged.join(name);
    let mut n = 0u32;
    while vfs.exists(&to) {
        n += 1;
        let mut s = name.to_owned();
        s.push(format!(".{n}"));
        to = damaged.join(s);
    }
    Ok(to)
}

/// Copies `file` whole into `damaged/` and syncs the copy.
fn copy_into(vfs: &dyn Vfs, file: &Path, damaged: &Path) -> Result<()> {
    let to = unique_name(vfs, damaged, file)?;
    let src = vfs
        .open_read(file)
        .map_err(|e| io_err("opening", file, e))?;
    let len = src.len().map_err(|e| io_err("reading", file, e))?;
    let dst = vfs
        .open(&to, true)
        .map_err(|e| io_err("creating", &to, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < len {
        let want = ((len - off) as usize).min(CHUNK);
        let n = src
            .read_at(&mut buf[..want], off)
            .map_err(|e| io_err("reading", file, e))?;
        if n == 0 {
            return Err(io_err(
                "reading",
                file,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        dst.write_all_at(&[&buf[..n]], off)
            .map_err(|e| io_err("writing", &to, e))?;
        off += n as u64;
    }
    dst.sync_all().map_err(|e| io_err("syncing", &to, e))?;
    Ok(())
}

/// Writes zeros over `file` from `from` to its end (only where it is not
/// zero already), then syncs it.
fn zero_from(vfs: &dyn Vfs, file: &Path, from: u64) -> Result<()> {
    let f = vfs
        .open(file, false)
        .map_err(|e| io_err("opening", file, e))?;
    let len = f.len().map_err(|e| io_err("reading", file, e))?;
    let zeros = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let mut off = from;
    while off < len {
        let want = ((len - off) as usize).min(CHUNK);
        let n = f
            .read_at(&mut buf[..want], off)
            .map_err(|e| io_err("reading", file, e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            f.write_all_at(&[&zeros[..n]], off)
                .map_err(|e| io_err("writing", file, e))?;
        }
        off += n as u64;
    }
    f.sync_data().map_err(|e| io_err("syncing", file, e))?;
    Ok(())
}
