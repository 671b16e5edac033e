//! `pwal_recover`: streams the durable records of a log to a C callback.

use std::os::raw::{c_char, c_void};

use super::api::path_from_c;
use super::boundary::{ffi_boundary, out_size, write_sized, Failure};
use super::status::pwal_status;
use super::types::{
    pwal_record, pwal_record_fn, pwal_recovery_report, PWAL_RECOVERY_REPORT_MIN_SIZE,
    PWAL_RECOVER_DURABLE_PREFIX,
};
use crate::{recover_into, RecoverOptions, RecoveryReport};

/// Every flag `pwal_recover` knows; other bits are rejected so that a flag
/// from a newer header is not silently ignored.
const KNOWN_FLAGS: u32 = PWAL_RECOVER_DURABLE_PREFIX;

/// Replays the log of the database at `path` (the directory `<path>-pwal/`):
/// calls `callback(user_data, record)` once per durable frame, in replay
/// order: epoch ascending, then commit_seq, then transaction, then frame
/// order within the transaction. The epochs form a gap-free prefix, and a
/// transaction is given whole or not at all. A torn tail (an epoch that was
/// never acknowledged) is dropped and counted in `report->torn_tail_bytes`.
/// Memory use does not grow with the size of the log. A missing log
/// directory is an empty log (`PWAL_OK`, nothing replayed).
///
/// `flags`: 0 or `PWAL_RECOVER_DURABLE_PREFIX`. `report` may be NULL;
/// otherwise set `report->struct_size = sizeof(pwal_recovery_report)`, and it
/// is filled on return, whatever the status (as far as recovery got).
///
/// Returns `PWAL_OK`; `PWAL_ERR_ABORTED` (the callback returned non-zero);
/// `PWAL_ERR_CORRUPT` (damage before valid later data, and no
/// `PWAL_RECOVER_DURABLE_PREFIX`; records before the damage were already given
/// to the callback); `PWAL_ERR_IO`; `PWAL_ERR_LOCKED` (another process is
/// writing the log, including the parent of a `fork()`ed child);
/// `PWAL_ERR_INVALID` (NULL or empty `path`, NULL `callback`, unknown `flags`
/// bits, `report->struct_size` below `PWAL_RECOVERY_REPORT_MIN_SIZE`, the log
/// on a network file system: see FILE SYSTEMS at the top).
///
/// Thread safety: safe from any thread; the callback runs on the calling
/// thread. The usual place is before `pwal_open`; while this process has the
/// log open it may run too, and what is not yet written reads as a torn tail.
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
        let path = unsafe { path_from_c(path) }?;
        let Some(callback) = callback else {
            return Err(Failure::invalid("callback is NULL"));
        };
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Failure::invalid(format!(
                "flags = {flags:#x}: unknown bits {:#x}",
                flags & !KNOWN_FLAGS
            )));
        }
        let report_size = if report.is_null() {
            None
        } else {
            // SAFETY: non-NULL and valid for `struct_size` bytes (the
            // caller's promise).
            Some(unsafe {
                out_size(
                    report,
                    PWAL_RECOVERY_REPORT_MIN_SIZE as usize,
                    "pwal_recovery_report",
                )
            }?)
        };

        let opts = RecoverOptions {
            durable_prefix: flags & PWAL_RECOVER_DURABLE_PREFIX != 0,
        };
        let mut found = RecoveryReport::default();
        let result = recover_into(
            path,
            &opts,
            &mut |r| {
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
                };
                // SAFETY: `callback` is a C function of the right type (the
                // caller's promise); `record` and the bytes it points to live
                // until it returns, which is all the header promises.
                unsafe { callback(user_data, &record) == 0 }
            },
            &mut found,
        );
        if let Some(n) = report_size {
            // SAFETY: `out_size` returned a size the caller's struct has room for.
            unsafe { write_sized(report, &pwal_recovery_report::from(&found), n) };
        }
        Ok(result?)
    })
}
