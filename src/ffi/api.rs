//! The entry points of a log handle: open, submit, wait, commit, checkpoint,
//! stats, close.

use std::ffi::{CStr, OsStr};
use std::os::raw::{c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::boundary::{ffi_boundary, out_size, read_sized, write_sized, Failure};
use super::recover::{c_callback, fill_report, recover_options, report_size, KNOWN_FLAGS};
use super::status::pwal_status;
use super::types::{
    pwal_frame, pwal_options, pwal_record_fn, pwal_recovery_report, pwal_stats, pwal_txn,
    PWAL_MAX_PAGE_BYTES, PWAL_MAX_TXN_FRAMES, PWAL_OPTIONS_MIN_SIZE, PWAL_STATS_MIN_SIZE,
    PWAL_WAIT_FOREVER,
};
use crate::io::RealVfs;
use crate::{Error, Frame, Log, Options, RecoveryReport, Txn};

/// An open log: opaque. Created by `pwal_open`, destroyed by `pwal_close`.
/// One handle may be used from any number of threads at once, in the process
/// that opened it only: in a child of `fork()` every call on it returns
/// `PWAL_ERR_FORKED` (see FORK at the top).
pub struct pwal {
    /// [`LIVE`] from `pwal_open` until `pwal_close` overwrites it with
    /// [`CLOSED`] just before freeing the handle: catches the common double
    /// close and use after close (as SQLite's `magic` does). Best effort: freed
    /// memory may be reused, so use after close stays undefined behaviour.
    magic: u64,
    pub(crate) log: Log,
}

/// `pwal.magic` of a live handle ("pwal" "open").
const LIVE: u64 = 0x7077_616c_6f70_656e;
/// `pwal.magic` of a handle being closed or freed ("pwal" "dead").
const CLOSED: u64 = 0x7077_616c_6465_6164;

/// The handle behind `log`, if it is not NULL and looks live.
///
/// # Safety
///
/// `log` is NULL or points to a `pwal` (live, or freed by `pwal_close`: the
/// read of freed memory is the best-effort part).
pub(crate) unsafe fn handle<'a>(log: *mut pwal) -> Result<&'a pwal, Failure> {
    if log.is_null() {
        return Err(Failure::invalid("log is NULL"));
    }
    // SAFETY: non-NULL and, by the caller's promise, a handle from
    // `pwal_open`; volatile so that the check reads what is in memory now.
    let magic = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*log).magic)) };
    match magic {
        // SAFETY: a live handle stays valid until `pwal_close`, which must
        // not race with this call.
        LIVE => Ok(unsafe { &*log }),
        CLOSED => Err(Failure {
            status: pwal_status::PWAL_ERR_CLOSED,
            message: "log is closed: this handle was closed by pwal_close (using it again is \
                      undefined behaviour)"
                .into(),
        }),
        _ => Err(Failure::invalid(
            "log is not a live handle: it was closed by pwal_close, or did not come from pwal_open",
        )),
    }
}

/// A path from C: non-NULL, non-empty, taken as raw bytes (no UTF-8 needed).
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn path_from_c<'a>(path: *const c_char) -> Result<&'a Path, Failure> {
    if path.is_null() {
        return Err(Failure::invalid("path is NULL"));
    }
    // SAFETY: non-NULL, and the caller promised a NUL-terminated string that
    // outlives the call.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::invalid("path is empty"));
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// The options a C caller passed: the defaults for NULL, else the first
/// `struct_size` bytes (at least `PWAL_OPTIONS_MIN_SIZE`) over the defaults.
///
/// # Safety
///
/// `options` is NULL or points to at least `options->struct_size` readable
/// bytes.
unsafe fn options_from_c(options: *const pwal_options) -> Result<pwal_options, Failure> {
    if options.is_null() {
        return Ok(pwal_options::from(&Options::from_env()));
    }
    // SAFETY: non-NULL and valid for `struct_size` bytes (the caller's
    // promise).
    let mut o = unsafe {
        read_sized(
            options,
            pwal_options::default(),
            PWAL_OPTIONS_MIN_SIZE as usize,
            "options",
        )
    }?;
    if (o.struct_size as usize) < std::mem::offset_of!(pwal_options, env_fields) + 4 {
        // Built against 0.1.0, whose pwal_options_init did not fill the
        // options from the environment: fill what it left at the defaults
        // (the 0.1.0 part holds no trace pointers to lose on the way).
        let mut core = o.to_core()?;
        core.fill_defaults_from_env();
        o = pwal_options {
            struct_size: o.struct_size,
            ..pwal_options::from(&core)
        };
    }
    Ok(o)
}

fn timeout_from_c(timeout_ms: u32) -> Option<Duration> {
    (timeout_ms != PWAL_WAIT_FOREVER).then(|| Duration::from_millis(timeout_ms.into()))
}

/// Frames up to this many are converted on the stack; larger transactions
/// allocate (the count is checked against `PWAL_MAX_TXN_FRAMES` first).
const INLINE_FRAMES: usize = 16;

const EMPTY_FRAME: Frame<'static> = Frame {
    page_number: 0,
    db_size_if_commit: 0,
    data: &[],
};

/// Checks a transaction from C and hands the core's view of it to `f`.
fn with_txn<R>(
    txn: &pwal_txn,
    f: impl FnOnce(&Txn<'_>) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let n = txn.frame_count;
    if n == 0 {
        return Err(Failure::invalid("txn->frame_count is 0"));
    }
    if n > PWAL_MAX_TXN_FRAMES {
        return Err(Failure::invalid(format!(
            "txn->frame_count = {n}: at most PWAL_MAX_TXN_FRAMES ({PWAL_MAX_TXN_FRAMES})"
        )));
    }
    if txn.frames.is_null() {
        return Err(Failure::invalid("txn->frames is NULL"));
    }
    // SAFETY: non-NULL, and the caller promised (pwal_submit's contract) that
    // `frames` points to `frame_count` initialised pwal_frame values that stay
    // valid and unmodified for the call.
    let c_frames: &[pwal_frame] = unsafe { std::slice::from_raw_parts(txn.frames, n as usize) };

    let mut inline = [EMPTY_FRAME; INLINE_FRAMES];
    let mut heap = Vec::new();
    let frames: &mut [Frame<'_>] = if c_frames.len() <= INLINE_FRAMES {
        &mut inline[..c_frames.len()]
    } else {
        heap.resize(c_frames.len(), EMPTY_FRAME);
        &mut heap
    };
    for (i, (c, out)) in c_frames.iter().zip(frames.iter_mut()).enumerate() {
        if c.page_number == 0 {
            return Err(Failure::invalid(format!(
                "txn->frames[{i}].page_number is 0 (pages are numbered from 1)"
            )));
        }
        if c.len == 0 || c.len > PWAL_MAX_PAGE_BYTES {
            return Err(Failure::invalid(format!(
                "txn->frames[{i}].len = {}: expected 1 to PWAL_MAX_PAGE_BYTES ({PWAL_MAX_PAGE_BYTES})",
                c.len
            )));
        }
        if c.data.is_null() {
            return Err(Failure::invalid(format!("txn->frames[{i}].data is NULL")));
        }
        // SAFETY: non-NULL, and the caller promised `data` is readable for
        // `len` bytes and not modified during the call; pwal copies it before
        // returning.
        let data = unsafe { std::slice::from_raw_parts(c.data as *const u8, c.len as usize) };
        *out = Frame {
            page_number: c.page_number,
            db_size_if_commit: c.db_size_if_commit,
            data,
        };
    }
    f(&Txn {
        txn_id: txn.txn_id,
        commit_seq: txn.commit_seq,
        txn_epoch: txn.txn_epoch,
        frames,
    })
}

/// Opens (creating if needed) the log of the database at `path`; the log
/// lives in the directory `<path>-pwal/`. Opening a log left by a crash
/// continues it: new epochs follow the last durable one and nothing durable
/// is overwritten. To replay the log into the database, call `pwal_recover`
/// first, or open with `pwal_recover_and_open`, which does both with one read
/// of the log.
///
/// Open reads and validates every epoch of the log (it reads the whole log
/// once) and never appends behind damage: a damaged epoch that later data
/// proves durable fails the open with `PWAL_ERR_CORRUPT`, naming the file,
/// the offset and the epoch expected there, as does a torn epoch followed by
/// later segment files (new epochs would be hidden behind it); nothing is
/// written. Then replay the prefix before the damage (`pwal_recover` with
/// `PWAL_RECOVER_DURABLE_PREFIX`) and cut the log back to it with
/// `pwal_repair`, after which open succeeds. A torn tail at the very end of
/// the log is not damage: open continues after the last whole epoch. Cost:
/// open reads every live segment once (before, only the last).
///
/// `options` may be NULL for what `pwal_options_init` gives (the defaults,
/// filled from the `PWAL_*` environment variables); otherwise initialise it
/// with `pwal_options_init` and set what you need: the fields you set win
/// over the environment. A `PWAL_*` variable that does not parse fails the
/// open with `PWAL_ERR_INVALID` naming it (unless `options->ignore_env`);
/// `pwal_stats.env_fields` says which values in effect came from the
/// environment. On success `*out_log` is a handle that the caller
/// owns and must give to `pwal_close`; on failure it is set to NULL.
///
/// A second `pwal_open` of the same path in the same process returns another
/// handle to the same log (each must be closed). It must ask for the same
/// options as the open log, compared after defaults and `PWAL_*` variables
/// are applied (so `ignore_env` itself need not match): `sync`, `mode`,
/// `lanes`, `segment_bytes`, `max_batch_bytes`, `max_flush_delay_us`, the
/// archive (`archive_url`, `archive_max_lag_bytes`, `archive_durable`), and
/// `shadow_compare_per_mille` when the mode is `PWAL_MODE_SHADOW_COMPARE`
/// (each changes durability, file layout, lane mapping or when epochs seal,
/// which one log cannot do two ways). Otherwise it returns
/// `PWAL_ERR_INVALID` with a message naming the first differing field and
/// both values, and the open log is unaffected.
///
/// fork(): a handle belongs to the process that opened it. In a child created
/// by `fork()` without exec, every call on an inherited handle returns
/// `PWAL_ERR_FORKED` and does nothing (`pwal_close` frees the child's copy),
/// and `pwal_open` or `pwal_recover` of a log the parent has open returns
/// `PWAL_ERR_LOCKED`, as in any other process. The child does not keep the
/// parent's lock or files alive: pwal points its copies of them at
/// `/dev/null` in a `pthread_atfork` handler, so the parent may close and
/// reopen the log while the child lives. A `fork()` in another thread waits
/// for a `pwal_open` or `pwal_close` in progress, and while pwal has files
/// open, `fork()` returns in the parent only once the child has let go of
/// them (one pipe round trip). Exec after fork is
/// unaffected (pwal's descriptors are close-on-exec).
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `path` or `out_log`, empty
/// path, `options->struct_size` below `PWAL_OPTIONS_MIN_SIZE`, unknown sync
/// or mode, an option or environment variable out of range, options that
/// differ from those of the same log already open in this process, the log
/// on a network file system: see FILE SYSTEMS at the top); `PWAL_ERR_LOCKED`
/// (another process has the log open, including the parent of a `fork()`ed
/// child); `PWAL_ERR_IO` (the directory or a segment could not be
/// created, opened or read); `PWAL_ERR_CORRUPT` (the existing log is damaged
/// before valid data, or torn before later segments: see above; nothing was
/// written).
///
/// Thread safety: safe from any thread.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `options` is NULL or points to
/// at least `options->struct_size` readable bytes; `out_log` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn pwal_open(
    path: *const c_char,
    options: *const pwal_options,
    out_log: *mut *mut pwal,
) -> pwal_status {
    ffi_boundary("pwal_open", || {
        let out_log = try_mut!(out_log);
        *out_log = std::ptr::null_mut();
        // SAFETY: see this function's `# Safety`.
        let path = unsafe { path_from_c(path) }?;
        // SAFETY: see this function's `# Safety`.
        let options = unsafe { options_from_c(options) }?;
        let log = Log::open(path, &options.to_core()?)?;
        *out_log = Box::into_raw(Box::new(pwal { magic: LIVE, log }));
        Ok(())
    })
}

/// Copies the transaction `txn` into this thread's lane and returns in
/// `*out_epoch` the epoch it belongs to (pass it to `pwal_wait_durable`). It
/// is not durable yet. The caller keeps ownership of `txn`, its frames and
/// their data, which may be reused once the call returns.
///
/// May block briefly when the filling epoch is full (backpressure: epochs
/// hold at most `PWAL_MAX_EPOCH_BYTES`).
///
/// A transaction of up to `PWAL_MAX_TXN_BYTES` is accepted. One that encodes
/// to more than 16 MiB is copied and written in parts of at most 16 MiB, in
/// this epoch and the following ones: the call returns once the last part is
/// in the lane, so it blocks while the flusher writes the earlier parts (the
/// memory pwal holds stays bounded by the epoch limit, whatever the size;
/// other threads keep committing meanwhile), and `*out_epoch` is the epoch
/// of the last part, the one that commits the transaction. It is still one
/// transaction: recovery gives all of its frames, in that epoch, or none of
/// them, after any crash. A log that has to keep the first parts of such a
/// transaction keeps them past a checkpoint below its epoch (see
/// `pwal_checkpoint`).
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `log`, `txn` or `out_epoch`,
/// `frame_count` 0 or over `PWAL_MAX_TXN_FRAMES`, NULL `frames`, for a
/// frame: page number 0, NULL `data`, `len` 0 or over `PWAL_MAX_PAGE_BYTES`,
/// and frames of more than `PWAL_MAX_TXN_BYTES` in all; nothing is
/// submitted); `PWAL_ERR_POISONED` (an earlier I/O failure);
/// `PWAL_ERR_CLOSED`; `PWAL_ERR_FORKED` (the handle was inherited across
/// `fork()`: nothing was done); `PWAL_ERR_ARCHIVE_BEHIND` (the log archives
/// and more than `archive_max_lag_bytes` is not archived yet: nothing was
/// submitted; retry once the archive catches up).
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle from `pwal_open`; `txn` is NULL or valid
/// with `frame_count` readable frames, each with `len` readable bytes at
/// `data`; `out_epoch` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pwal_submit(
    log: *mut pwal,
    txn: *const pwal_txn,
    out_epoch: *mut u64,
) -> pwal_status {
    // SAFETY: the caller's promise, passed on.
    unsafe { submit_in("pwal_submit", log, 0, txn, out_epoch) }
}

/// `pwal_submit` for a transaction of the file `file_id`: when several files
/// (for example several databases) share one log, so that their commits
/// share its group commit, the engine numbers its files and says which one
/// each transaction belongs to. pwal stores the number with the transaction
/// and gives it back in `pwal_record.file_id`; it does not interpret it.
/// `pwal_submit` is file 0. Keep the numbering stable across restarts (the
/// log does not record which name a number stands for). `commit_seq` stays
/// one sequence for the whole log, across files: the commit-sequence
/// watermark (`pwal_durable`) and the inversion count compare sequences of
/// every file; and `(file_id, txn_id, commit_seq)` must not be reused by two
/// transactions in flight at once.
///
/// Returns, and is safe to call, as `pwal_submit`.
///
/// Since 0.2.0.
///
/// # Safety
///
/// As for `pwal_submit`.
#[no_mangle]
pub unsafe extern "C" fn pwal_submit_file(
    log: *mut pwal,
    file_id: u32,
    txn: *const pwal_txn,
    out_epoch: *mut u64,
) -> pwal_status {
    // SAFETY: the caller's promise, passed on.
    unsafe { submit_in("pwal_submit_file", log, file_id, txn, out_epoch) }
}

/// `pwal_submit` and `pwal_submit_file`.
///
/// # Safety
///
/// As for `pwal_submit`.
unsafe fn submit_in(
    name: &'static str,
    log: *mut pwal,
    file_id: u32,
    txn: *const pwal_txn,
    out_epoch: *mut u64,
) -> pwal_status {
    ffi_boundary(name, || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        let txn = try_ref!(txn);
        let out_epoch = try_mut!(out_epoch);
        *out_epoch = with_txn(txn, |t| Ok(log.log.submit_file(file_id, t)?))?;
        Ok(())
    })
}

/// Blocks until `epoch` (from `pwal_submit`) is durable under the log's sync
/// policy, or `timeout_ms` milliseconds pass. Only after `PWAL_OK` may the
/// engine publish the batches of that epoch.
///
/// Who does the work, by timeout:
/// - `0`: only checks. Never seals, writes or syncs; returns at once.
/// - below `PWAL_LEAD_MIN_TIMEOUT_MS`: hands the flush to the log's flusher
///   thread and sleeps until the epoch is durable or the time is up. Costs
///   two thread wake-ups per commit, but never spends the caller's time on
///   a write that could outlast the deadline (a segment switch may wait for
///   preallocation).
/// - `PWAL_WAIT_FOREVER`, or at least `PWAL_LEAD_MIN_TIMEOUT_MS`: the calling
///   thread writes and syncs the epoch itself when no other thread is doing
///   so (the fastest path at one writer). A write it has started is not
///   abandoned at the deadline: the call returns when that write ends.
///
/// With `pwal_options.archive_durable = 1`, `PWAL_OK` also means the epoch
/// is archived (docs/ARCHIVE.md); the timeout covers both waits, and a
/// timeout after the local write leaves the epoch locally durable (it is
/// archived later: `pwal_wait_archived`).
///
/// Returns `PWAL_OK`; `PWAL_ERR_TIMEOUT` (not durable yet, or under
/// `archive_durable` not archived yet; the batch is not lost and a later
/// wait may succeed); `PWAL_ERR_IO` or `PWAL_ERR_POISONED` (a
/// write or sync failed: the epoch will never be acknowledged by this handle);
/// `PWAL_ERR_INVALID` (NULL `log`, or an epoch never handed out);
/// `PWAL_ERR_CLOSED`; `PWAL_ERR_FORKED` (the handle was inherited across
/// `fork()`: nothing was done).
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle from `pwal_open`.
#[no_mangle]
pub unsafe extern "C" fn pwal_wait_durable(
    log: *mut pwal,
    epoch: u64,
    timeout_ms: u32,
) -> pwal_status {
    ffi_boundary("pwal_wait_durable", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        Ok(log.log.wait_durable(epoch, timeout_from_c(timeout_ms))?)
    })
}

/// `pwal_submit` then `pwal_wait_durable`, in one call (which lets the log
/// start the flush of the epoch in the same step as the append): returns
/// once the transaction is durable, or the wait fails. `*out_epoch` receives
/// the transaction's epoch on `PWAL_OK` and on `PWAL_ERR_TIMEOUT` (so that
/// it can be waited on again); `out_epoch` may be NULL if not wanted.
///
/// Returns what `pwal_submit` and `pwal_wait_durable` return.
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// As for `pwal_submit`, except that `out_epoch` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn pwal_commit(
    log: *mut pwal,
    txn: *const pwal_txn,
    timeout_ms: u32,
    out_epoch: *mut u64,
) -> pwal_status {
    // SAFETY: the caller's promise, passed on.
    unsafe { commit_in("pwal_commit", log, 0, txn, timeout_ms, out_epoch) }
}

/// `pwal_commit` for a transaction of the file `file_id` (see
/// `pwal_submit_file`).
///
/// Returns, and is safe to call, as `pwal_commit`.
///
/// Since 0.2.0.
///
/// # Safety
///
/// As for `pwal_commit`.
#[no_mangle]
pub unsafe extern "C" fn pwal_commit_file(
    log: *mut pwal,
    file_id: u32,
    txn: *const pwal_txn,
    timeout_ms: u32,
    out_epoch: *mut u64,
) -> pwal_status {
    // SAFETY: the caller's promise, passed on.
    unsafe { commit_in("pwal_commit_file", log, file_id, txn, timeout_ms, out_epoch) }
}

/// `pwal_commit` and `pwal_commit_file`.
///
/// # Safety
///
/// As for `pwal_commit`.
unsafe fn commit_in(
    name: &'static str,
    log: *mut pwal,
    file_id: u32,
    txn: *const pwal_txn,
    timeout_ms: u32,
    out_epoch: *mut u64,
) -> pwal_status {
    ffi_boundary(name, || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        let txn = try_ref!(txn);
        let result = with_txn(txn, |t| {
            Ok(log.log.commit_file(file_id, t, timeout_from_c(timeout_ms)))
        })?;
        let epoch = match &result {
            Ok(epoch) | Err(Error::Timeout { epoch, .. }) => Some(*epoch),
            Err(_) => None,
        };
        if let (Some(epoch), false) = (epoch, out_epoch.is_null()) {
            // SAFETY: non-NULL, and the caller promised it is writable.
            unsafe { out_epoch.write(epoch) };
        }
        result.map(drop).map_err(Failure::from)
    })
}

/// Returns once every transaction submitted before the call (by any thread)
/// is written and fdatasynced, whatever the sync policy, or `timeout_ms`
/// passes (`PWAL_WAIT_FOREVER`: no limit). Under `PWAL_SYNC_NORMAL` this is
/// how an engine makes its log power-safe before it writes pages home;
/// under `PWAL_SYNC_FULL` it only waits for what is in flight.
///
/// Returns `PWAL_OK`; `PWAL_ERR_TIMEOUT` (not all synced yet; nothing is
/// lost, call again); `PWAL_ERR_IO` or `PWAL_ERR_POISONED` (a write or sync
/// failed); `PWAL_ERR_INVALID` (NULL `log`); `PWAL_ERR_CLOSED`;
/// `PWAL_ERR_FORKED` (the handle was inherited across `fork()`: nothing was
/// done).
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle from `pwal_open`.
#[no_mangle]
pub unsafe extern "C" fn pwal_flush(log: *mut pwal, timeout_ms: u32) -> pwal_status {
    ffi_boundary("pwal_flush", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        Ok(log.log.flush(timeout_from_c(timeout_ms))?)
    })
}

/// Tells the log that every epoch up to and including `through_epoch` is
/// reflected in the database file and synced there, so segment files wholly
/// covered may be recycled or deleted.
///
/// In order, each step durable before the next: the epochs up to
/// `through_epoch` are fdatasynced if they are not yet (under
/// `PWAL_SYNC_NORMAL` and `PWAL_SYNC_OFF`; an engine must never have pages
/// home ahead of the log); the mark is recorded in the log (in the frames
/// written from now on, synced before any file is removed: this can write
/// and sync one empty epoch); then segments wholly at or below the mark are
/// recycled or deleted, oldest first. Recovery never returns an epoch at or
/// below the mark, whether or not its segment is still there. Segments that
/// still hold a later epoch stay, and so do those holding the first parts of
/// a transaction written in parts (see `pwal_submit`) whose last part is
/// above the mark: recovery returns that transaction whole.
///
/// A failed rename, unlink or sync poisons the log (as any write failure
/// does): reopen it to go on.
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `log`, or `through_epoch` beyond
/// the durable epoch); `PWAL_ERR_IO` (a sync, rename or unlink failed; the
/// log is poisoned);
/// `PWAL_ERR_POISONED`; `PWAL_ERR_CLOSED`; `PWAL_ERR_FORKED` (the handle was
/// inherited across `fork()`: nothing was done).
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle from `pwal_open`.
#[no_mangle]
pub unsafe extern "C" fn pwal_checkpoint(log: *mut pwal, through_epoch: u64) -> pwal_status {
    ffi_boundary("pwal_checkpoint", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        Ok(log.log.checkpoint(through_epoch)?)
    })
}

/// The durable watermark, for publishing commits in order: `*out_epoch`
/// gets the highest epoch such that it and every epoch before it are
/// durable, and `*out_commit_seq` the highest commit sequence `s` such that,
/// when it was computed, every transaction with `commit_seq <= s` that had
/// entered `pwal_submit` or `pwal_commit` (including one waiting inside for
/// room in a full epoch) was durable (0 when none is). Either pointer may be
/// NULL if not wanted. Cheaper than `pwal_get_stats`.
///
/// Both values never decrease. A transaction submitted after `s` was
/// reported, with a `commit_seq` at or below `s`, is not covered by it: an
/// engine that publishes commits up to `s` must submit each transaction
/// before any transaction with a higher `commit_seq` can become durable
/// (for example, assign `commit_seq` under a latch it holds until
/// `pwal_submit` returns).
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `log`); `PWAL_ERR_FORKED` (the
/// handle was inherited across `fork()`: nothing was done).
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle; each out-pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pwal_durable(
    log: *mut pwal,
    out_epoch: *mut u64,
    out_commit_seq: *mut u64,
) -> pwal_status {
    ffi_boundary("pwal_durable", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        log.log.check_not_forked()?;
        if !out_epoch.is_null() {
            // SAFETY: non-NULL, and the caller promised it is writable.
            unsafe { out_epoch.write(log.log.durable_epoch()) };
        }
        if !out_commit_seq.is_null() {
            // SAFETY: non-NULL, and the caller promised it is writable.
            unsafe { out_commit_seq.write(log.log.durable_commit_seq()) };
        }
        Ok(())
    })
}

/// Fills `*out` with a snapshot of the log's counters. Set
/// `out->struct_size = sizeof(pwal_stats)` first; on return it holds the
/// number of bytes filled (fewer if the library is older than the header).
/// Works on a poisoned log too (see `out->poisoned`).
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `log` or `out`,
/// `out->struct_size` below `PWAL_STATS_MIN_SIZE`); `PWAL_ERR_FORKED` (the
/// handle was inherited across `fork()`: nothing was done).
///
/// Thread safety: safe from any thread, concurrently with every call on the
/// same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle; `out` is NULL or writable for
/// `out->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn pwal_get_stats(log: *mut pwal, out: *mut pwal_stats) -> pwal_status {
    ffi_boundary("pwal_get_stats", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        log.log.check_not_forked()?;
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: non-NULL and valid for `struct_size` bytes (the caller's
        // promise).
        let n = unsafe { out_size(out, PWAL_STATS_MIN_SIZE as usize, "pwal_stats") }?;
        let stats = pwal_stats::from(&log.log.stats());
        // SAFETY: `out_size` returned a size the caller's struct has room for.
        unsafe { write_sized(out, &stats, n) };
        Ok(())
    })
}

/// Closes the handle and frees it. What else happens depends on whether it
/// is the log's last handle in this process (one per `pwal_open` that
/// returned `PWAL_OK`):
///
/// - The last handle closes the log: everything submitted through any
///   handle and not yet written is written (and synced under
///   `PWAL_SYNC_FULL`/`NORMAL`); under those two, when the last epoch
///   holding a record has no later frame vouching for it, one more empty
///   frame that does is written and synced (so that damage to it reads as
///   corruption, not as a torn tail); a log whose epochs are all
///   checkpointed is left as small as a fresh one (its spares deleted, a
///   grown segment left for a small one); the log's threads stop, and its
///   lock is released. A failure of that final write or sync, or an
///   earlier one, is reported.
/// - Any other handle only gives up its share of the log: nothing is
///   flushed or waited for, no earlier failure is reported, and the result is
///   `PWAL_OK`. Batches submitted through it stay in the log like any other
///   and are written by the log's flusher or by the last close; to know they
///   are durable, `pwal_wait_durable` on their epochs before closing.
///
/// The handle is freed whatever the result, and must not be used again.
/// pwal catches the common double close and use after close on a
/// best-effort basis (`PWAL_ERR_CLOSED`, or `PWAL_ERR_INVALID` once the
/// freed memory was reused); it remains undefined behaviour.
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `log`, or not a live handle);
/// `PWAL_ERR_CLOSED` (the handle was already closed, detected as above);
/// `PWAL_ERR_IO` or `PWAL_ERR_POISONED` (last handle only: the final write
/// or sync failed, or one had failed before: batches not acknowledged may be
/// lost; reopen runs recovery);
/// `PWAL_ERR_FORKED` (the handle was inherited across `fork()`: this
/// process's copy of the handle is freed and nothing else happens: nothing
/// is flushed, no thread is joined, the parent's files are not touched; the
/// parent's log state that the child inherited (buffers, the parent threads'
/// memory) is leaked in the child, as the threads that own it exist only in
/// the parent).
///
/// Thread safety: must not race with any other call on the same handle
/// (make sure every other thread is done with it first). Other handles are
/// unaffected.
///
/// # Safety
///
/// `log` is NULL or a live handle from `pwal_open`, not used by any other
/// thread during or after the call.
#[no_mangle]
pub unsafe extern "C" fn pwal_close(log: *mut pwal) -> pwal_status {
    ffi_boundary("pwal_close", || {
        // SAFETY: see this function's `# Safety`.
        unsafe { handle(log) }?;
        // SAFETY: live (checked above), so writable; marked before anything
        // else so that a second close, even one racing this one against the
        // contract, most likely sees it.
        unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*log).magic), CLOSED) };
        // SAFETY: a live handle comes from `Box::into_raw` in `pwal_open`, and
        // the caller gives up its ownership here (no other thread uses it).
        let pwal { log, .. } = *unsafe { Box::from_raw(log) };
        Ok(log.close()?)
    })
}

/// Replays the log of the database at `path` and opens it, with one read of
/// the log under one hold of its lock: `pwal_recover(path, flags, callback,
/// user_data, report)` followed by `pwal_open(path, options, out_log)`, with
/// no other writer able to come in between. Use it at startup, where an
/// engine replays and then opens anyway; use `pwal_recover` alone to read a
/// log without opening it (tools, or a log already open in this process),
/// and `pwal_open` alone when the database already holds every logged page.
///
/// Every record is given to the callback, in the order and under the rules
/// of `pwal_recover` (epochs after the checkpoint mark only), before the call
/// returns and before anything new is written; then the log is opened as by
/// `pwal_open`. If recovery fails, nothing is opened and nothing is written.
/// `flags`: 0, or any of `PWAL_RECOVER_REFUSE_SEQ_INVERSIONS` and
/// `PWAL_RECOVER_VALIDATE_FIRST` (the log is validated whole, as the open
/// will judge it, before the callback is called: on damage it is never
/// called and nothing is opened; costs a second read of the log);
/// `PWAL_RECOVER_DURABLE_PREFIX` is refused (`PWAL_ERR_INVALID`), since a log
/// with damage is not appended to: run `pwal_repair` first. `report` as for
/// `pwal_recover` (may be NULL; filled on every return). On success
/// `*out_log` is a handle the caller owns and must give to `pwal_close`; on
/// failure it is set to NULL.
///
/// The callback runs on the calling thread while pwal holds its process-wide
/// lock of open logs: it must not call any pwal function (it would wait
/// forever); it should only apply the page to the database.
///
/// Returns `PWAL_OK`; `PWAL_ERR_ABORTED` (the callback returned non-zero:
/// not opened); `PWAL_ERR_CORRUPT` (as for `pwal_recover` and `pwal_open`: not
/// opened; `report` says where); `PWAL_ERR_LOCKED` (another process has the
/// log); `PWAL_ERR_IO`; `PWAL_ERR_INVALID` (as for `pwal_recover` and
/// `pwal_open`, and when this process already has the log open: recovery
/// belongs before the first open; open further handles with `pwal_open`).
///
/// Thread safety: safe from any thread.
///
/// Since 0.2.0.
///
/// # Safety
///
/// As for `pwal_recover` and `pwal_open`: `path` is NULL or a NUL-terminated
/// string; `options` is NULL or points to at least `options->struct_size`
/// readable bytes; `callback`, if not NULL, is a function of the
/// `pwal_record_fn` type; `report` is NULL or writable for
/// `report->struct_size` bytes; `out_log` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pwal_recover_and_open(
    path: *const c_char,
    options: *const pwal_options,
    flags: u32,
    callback: pwal_record_fn,
    user_data: *mut c_void,
    report: *mut pwal_recovery_report,
    out_log: *mut *mut pwal,
) -> pwal_status {
    ffi_boundary("pwal_recover_and_open", || {
        let out_log = try_mut!(out_log);
        *out_log = std::ptr::null_mut();
        // SAFETY: see this function's `# Safety`.
        let size = unsafe { report_size(report) }?;
        let mut found = RecoveryReport::default();
        let result = (|| {
            // SAFETY: see this function's `# Safety`.
            let path = unsafe { path_from_c(path) }?;
            let Some(callback) = callback else {
                return Err(Failure::invalid("callback is NULL"));
            };
            let opts = recover_options(flags, KNOWN_FLAGS)?;
            // SAFETY: see this function's `# Safety`.
            let options = unsafe { options_from_c(options) }?;
            // SAFETY: `callback` is a `pwal_record_fn` (the caller's promise);
            // the closure is called only during this call.
            let cb = unsafe { c_callback(callback, user_data) };
            let log = crate::recover_and_open_with_vfs(
                Arc::new(RealVfs),
                path,
                &options.to_core()?,
                &opts,
                Box::new(cb),
                &mut found,
            )?;
            Ok(log)
        })();
        // SAFETY: `size` came from `report_size` for `report`.
        unsafe { fill_report(report, size, &found) };
        let log = result?;
        *out_log = Box::into_raw(Box::new(pwal { magic: LIVE, log }));
        Ok(())
    })
}
