//! `pwal_recover`: streams the durable records of a log to a C callback;
//! `pwal_repair`: cuts a log back to its durable prefix. Also the pieces
//! `pwal_recover_and_open` (in `api`) shares with them: the flags, the
//! callback adapter and the report.

use std::os::raw::{c_char, c_void};

use super::api::path_from_c;
use super::boundary::{ffi_boundary, out_size, write_sized, Failure};
use super::status::pwal_status;
use super::types::{
    pwal_record, pwal_record_fn, pwal_recovery_report, PWAL_RECOVERY_REPORT_MIN_SIZE,
    PWAL_RECOVER_DURABLE_PREFIX, PWAL_RECOVER_REFUSE_SEQ_INVERSIONS, PWAL_RECOVER_VALIDATE_FIRST,
};
use crate::io::RealVfs;
use crate::{replay_with_vfs, Record, RecoveryReport, ReplayOptions};

/// Every flag `pwal_recover` knows; other bits are rejected so that a flag
/// from a newer header is not silently ignored.
pub(crate) const KNOWN_FLAGS: u32 =
    PWAL_RECOVER_DURABLE_PREFIX | PWAL_RECOVER_REFUSE_SEQ_INVERSIONS | PWAL_RECOVER_VALIDATE_FIRST;

/// The recovery options of `flags`, refusing bits outside `known`.
pub(crate) fn recover_options(flags: u32, known: u32) -> Result<ReplayOptions, Failure> {
    if flags & !known != 0 {
        return Err(Failure::invalid(format!(
            "flags = {flags:#x}: unknown bits {:#x}",
            flags & !known
        )));
    }
    Ok(ReplayOptions {
        durable_prefix: flags & PWAL_RECOVER_DURABLE_PREFIX != 0,
        refuse_seq_inversions: flags & PWAL_RECOVER_REFUSE_SEQ_INVERSIONS != 0,
        validate_first: flags & PWAL_RECOVER_VALIDATE_FIRST != 0,
        ..ReplayOptions::default()
    })
}

/// Checks `report` (NULL allowed) and returns how many of its bytes to fill.
///
/// # Safety
///
/// `report` is NULL or writable for `report->struct_size` bytes.
pub(crate) unsafe fn report_size(
    report: *mut pwal_recovery_report,
) -> Result<Option<usize>, Failure> {
    if report.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and valid for `struct_size` bytes (the caller's
    // promise).
    let n = unsafe {
        out_size(
            report,
            PWAL_RECOVERY_REPORT_MIN_SIZE as usize,
            "pwal_recovery_report",
        )
    }?;
    Ok(Some(n))
}

/// Fills `report` (if not NULL) with `found`.
///
/// # Safety
///
/// `size` came from [`report_size`] for this `report`.
pub(crate) unsafe fn fill_report(
    report: *mut pwal_recovery_report,
    size: Option<usize>,
    found: &RecoveryReport,
) {
    if let Some(n) = size {
        // SAFETY: `report_size` returned a size the caller's struct has room
        // for.
        unsafe { write_sized(report, &pwal_recovery_report::from(found), n) };
    }
}

/// The core's callback for a C `pwal_record_fn`: true (go on) when it
/// returns 0.
///
/// # Safety
///
/// `callback` is a C function of the `pwal_record_fn` type, and `user_data`
/// is what the caller wants passed to it, for as long as the closure is
/// called.
pub(crate) unsafe fn c_callback(
    callback: unsafe extern "C" fn(*mut c_void, *const pwal_record) -> i32,
    user_data: *mut c_void,
) -> impl FnMut(&Record<'_>) -> bool + 'static {
    move |r| {
        let record = pwal_record {
            epoch: r.epoch,
            txn_id: r.txn_id,
            commit_seq: r.commit_seq,
            txn_epoch: r.txn_epoch,
            page_number: r.page_number,
            db_size_if_commit: r.db_size_if_commit,
            data: r.data.as_ptr() as *const c_void,
            // Pages are at most MAX_PAGE_BYTES, checked on read.
            len: r.data.len() as u32,
            file_id: r.file_id,
        };
        // SAFETY: `callback` is a C function of the right type (this
        // function's promise); `record` and the bytes it points to live
        // until it returns, which is all the header promises.
        unsafe { callback(user_data, &record) == 0 }
    }
}

/// Replays the log of the database at `path` (the directory `<path>-pwal/`):
/// calls `callback(user_data, record)` once per durable frame, in replay
/// order. A transaction is given whole or not at all. A torn tail (an epoch
/// that was never acknowledged) is dropped and counted in
/// `report->torn_tail_bytes`. Memory use does not grow with the size of the
/// log. A missing log directory is an empty log (`PWAL_OK`, nothing
/// replayed). Nothing on disk is changed.
///
/// Order: epoch ascending; within an epoch, transactions by `commit_seq`,
/// then `txn_id`, then the order they were submitted in; within a
/// transaction, frames in order. The epochs given are a gap-free run from
/// the one after the checkpoint mark (1 when the log was never
/// checkpointed). Across epochs the order is the epochs', not the
/// sequences': a transaction submitted after another lands in the same or a
/// later epoch, so commit sequences ascend through the whole replay exactly
/// when the engine submitted them in ascending order (assigned the sequence
/// and called `pwal_submit`/`pwal_commit` under one lock, or otherwise never
/// submitted a lower sequence after a higher one). When it did not,
/// recovery counts each transaction replayed after one with a higher
/// sequence in `report->seq_inversions`, or, with
/// `PWAL_RECOVER_REFUSE_SEQ_INVERSIONS`, fails with `PWAL_ERR_CORRUPT` before
/// giving it.
///
/// Checkpointed epochs: the epochs at or below the durable checkpoint mark
/// (the highest `through_epoch` a `pwal_checkpoint` made durable, reported
/// in `report->checkpoint_epoch`) are in the database already and are never
/// given to the callback, even while their segments are still on disk. They
/// are still validated, and damage wholly at or below the mark (a rotted
/// frame, or a segment header in front of such epochs) is reported
/// (`has_damage`, `damage` saying it lies at or below the checkpoint mark,
/// `damage_file`, `damage_offset`, `damage_epoch`) but is not corruption:
/// their pages are in the database, so recovery reads past it and returns
/// `PWAL_OK` with every epoch above the mark; `pwal_open` accepts the log,
/// and the damaged segment is deleted when a checkpoint removes it.
///
/// After `pwal_close` (under `PWAL_SYNC_FULL` or `NORMAL`) nothing is torn:
/// damage to an epoch holding a record of a cleanly closed log is
/// `PWAL_ERR_CORRUPT`, never a dropped torn tail. After a crash, the last
/// epochs written that no later frame vouches for read as a torn tail
/// whether their write was lost or rotted afterwards.
///
/// `flags`: 0, or any of `PWAL_RECOVER_DURABLE_PREFIX`,
/// `PWAL_RECOVER_REFUSE_SEQ_INVERSIONS` and `PWAL_RECOVER_VALIDATE_FIRST`
/// (the whole log is validated before the callback is called: on damage it
/// is never called; costs a second read of the log). `report` may be NULL; otherwise set
/// `report->struct_size = sizeof(pwal_recovery_report)`, and it is filled on
/// every return, whatever the status (as far as recovery got; on
/// `PWAL_ERR_CORRUPT` `damage`, `damage_file`, `damage_offset` and
/// `damage_epoch` say where and what).
///
/// Returns `PWAL_OK`; `PWAL_ERR_ABORTED` (the callback returned non-zero);
/// `PWAL_ERR_CORRUPT` (damage before valid later data, and no
/// `PWAL_RECOVER_DURABLE_PREFIX`; a lost beginning or a log of another
/// format version, in either mode; a commit-sequence inversion under
/// `PWAL_RECOVER_REFUSE_SEQ_INVERSIONS`; records before it were already
/// given to the callback, unless `PWAL_RECOVER_VALIDATE_FIRST`);
/// `PWAL_ERR_IO`; `PWAL_ERR_LOCKED` (another process
/// is writing the log, including the parent of a `fork()`ed child);
/// `PWAL_ERR_INVALID` (NULL or empty `path`, NULL `callback`, unknown `flags`
/// bits, `report->struct_size` below `PWAL_RECOVERY_REPORT_MIN_SIZE`, the log
/// on a network file system: see FILE SYSTEMS at the top).
///
/// On any status but `PWAL_OK` the callback may have been given the first
/// frames of the transaction that was being delivered (a transaction in
/// parts is delivered part by part, each part read again and checked as it
/// goes): discard what the callback received of the last transaction, or
/// treat the whole replay as failed.
///
/// Thread safety: safe from any thread; the callback runs on the calling
/// thread. The usual place is before `pwal_open` (or use
/// `pwal_recover_and_open`, which does both with one read of the log). While
/// this process has the log open it may run too: it then reads a consistent
/// prefix of the log, every epoch that was durable when the call began (none
/// written later, and no torn tail), while checkpoints leave the segments
/// they could free in place until it returns (the next checkpoint removes
/// them).
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `callback`, if not NULL, is a
/// function of the `pwal_record_fn` type; `report` is NULL or writable for
/// `report->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn pwal_recover(
    path: *const c_char,
    flags: u32,
    callback: pwal_record_fn,
    user_data: *mut c_void,
    report: *mut pwal_recovery_report,
) -> pwal_status {
    ffi_boundary("pwal_recover", || {
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
            // SAFETY: `callback` is a `pwal_record_fn` (the caller's promise)
            // and the closure lives for this call only.
            let mut cb = unsafe { c_callback(callback, user_data) };
            Ok(replay_with_vfs(&RealVfs, path, &opts, &mut cb, &mut found)?)
        })();
        // SAFETY: `size` came from `report_size` for `report`.
        unsafe { fill_report(report, size, &found) };
        result
    })
}

/// Cuts the log of the database at `path` back to its durable prefix:
/// afterwards `pwal_recover` (without flags) returns exactly the records
/// `pwal_recover` with `PWAL_RECOVER_DURABLE_PREFIX` returned before, and
/// `pwal_open` succeeds and continues the epochs after them. Nothing is
/// deleted: every segment file after the damage is moved into
/// `<path>-pwal/damaged/` (created if needed), and a segment the prefix
/// ends in is first copied whole into `damaged/`, then overwritten with zeros
/// from the end of the prefix to its end (its size does not change).
/// Every change is synced (the files, `damaged/` and the log directory)
/// before the call returns. A log with nothing to cut (no damage, or only a
/// torn tail at its very end followed by zeros) is left unchanged; a missing
/// log directory is an empty log. Damage at or below the checkpoint mark is
/// not cut (it costs nothing: see `pwal_recover`). The durable checkpoint
/// mark is kept: when only the frames cut carried it, repair writes an
/// empty frame at the cut that carries it, so that recovery does not hand
/// checkpointed epochs back and a log whose first segments a checkpoint
/// removed still opens. An interrupted repair (a crash) can simply be run
/// again. Use it when `pwal_recover` or `pwal_open` fails with
/// `PWAL_ERR_CORRUPT` and the engine accepts losing what lies after the
/// damage; keep `damaged/` for inspection, pwal never reads it.
///
/// `report` may be NULL; otherwise set `report->struct_size =
/// sizeof(pwal_recovery_report)`: it is filled on every return with what the
/// durable-prefix scan found (the prefix kept; `damage`, `damage_file`,
/// `damage_offset` and `damage_epoch`: where the log was cut and why).
///
/// Returns `PWAL_OK`; `PWAL_ERR_LOCKED` (a writer holds the log: another
/// process, or this one has it open: close every handle first);
/// `PWAL_ERR_CORRUPT` (nothing to cut back to: a lost beginning or a log of
/// another format version; nothing was changed); `PWAL_ERR_IO` (the log may
/// be repaired in part: run it again); `PWAL_ERR_INVALID` (NULL or empty
/// `path`, `report->struct_size` below `PWAL_RECOVERY_REPORT_MIN_SIZE`, a
/// network file system).
///
/// Thread safety: safe from any thread; it takes the log's lock for the
/// whole call.
///
/// Since 0.2.0.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `report` is NULL or writable
/// for `report->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn pwal_repair(
    path: *const c_char,
    report: *mut pwal_recovery_report,
) -> pwal_status {
    ffi_boundary("pwal_repair", || {
        // SAFETY: see this function's `# Safety`.
        let size = unsafe { report_size(report) }?;
        let mut found = RecoveryReport::default();
        let result = (|| {
            // SAFETY: see this function's `# Safety`.
            let path = unsafe { path_from_c(path) }?;
            Ok(crate::repair(path, &mut found)?)
        })();
        // SAFETY: `size` came from `report_size` for `report`.
        unsafe { fill_report(report, size, &found) };
        result
    })
}
