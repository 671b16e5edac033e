//! The archive's entry points (docs/ARCHIVE.md): its status, waiting for
//! an epoch to be archived, and restoring a log from an archive.

use std::os::raw::c_char;

use super::api::{handle, path_from_c, pwal};
use super::boundary::{ffi_boundary, out_size, write_sized, Failure};
use super::status::pwal_status;
use super::types::{copy_text, PWAL_TEXT_BYTES};
use crate::archive::RestoreTarget;

/// What the archiver of a log has done (`pwal_get_archive_status`). Set
/// `struct_size = sizeof(pwal_archive_status)` before the call; on return
/// it holds the number of bytes filled.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_archive_status {
    /// `sizeof(pwal_archive_status)`, set by the caller.
    pub struct_size: u32,
    /// 1 when the log archives (`pwal_options.archive_url` set), else 0
    /// and every other field is 0.
    pub enabled: u32,
    /// Every epoch up to this one is in the archive.
    pub archived_epoch: u64,
    /// Bytes of durable epochs (their frames) not archived yet; commits
    /// fail with `PWAL_ERR_ARCHIVE_BEHIND` while it is above
    /// `archive_max_lag_bytes`.
    pub lag_bytes: u64,
    /// Objects uploaded since the log was opened.
    pub objects_archived: u64,
    /// The first epoch of the last object (0: none yet).
    pub last_object_first_epoch: u64,
    /// Failed attempts since the last success (0: the last one succeeded).
    pub consecutive_failures: u32,
    /// 1 when commits wait for the archive (`archive_durable`).
    pub archive_durable: u32,
    /// The last failure's message, "" when none since open; NUL-terminated,
    /// truncated to `PWAL_TEXT_BYTES - 1` bytes. A failure stays here after
    /// later successes (see `consecutive_failures`).
    pub last_error: [c_char; PWAL_TEXT_BYTES],
}

/// The smallest `pwal_archive_status.struct_size` accepted: the size of the
/// struct in the first version that had it. Never changes when fields are
/// appended.
pub const PWAL_ARCHIVE_STATUS_MIN_SIZE: u32 = 304;
const _: () =
    assert!(std::mem::size_of::<pwal_archive_status>() == PWAL_ARCHIVE_STATUS_MIN_SIZE as usize);

/// Fills `*out` with what the log's archiver has done: the archived
/// epoch, the lag, the failures. Set `out->struct_size =
/// sizeof(pwal_archive_status)` first. A log without an archive gets
/// `enabled = 0`.
///
/// Returns `PWAL_OK`; `PWAL_ERR_INVALID` (NULL `log` or `out`,
/// `out->struct_size` below `PWAL_ARCHIVE_STATUS_MIN_SIZE`);
/// `PWAL_ERR_FORKED` (the handle was inherited across `fork()`: nothing
/// was done).
///
/// Thread safety: safe from any thread, concurrently with every call on
/// the same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle; `out` is NULL or writable for
/// `out->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn pwal_get_archive_status(
    log: *mut pwal,
    out: *mut pwal_archive_status,
) -> pwal_status {
    ffi_boundary("pwal_get_archive_status", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: non-NULL and valid for `struct_size` bytes (the caller's
        // promise).
        let n = unsafe {
            out_size(
                out,
                PWAL_ARCHIVE_STATUS_MIN_SIZE as usize,
                "pwal_archive_status",
            )
        }?;
        let mut c = pwal_archive_status {
            struct_size: std::mem::size_of::<pwal_archive_status>() as u32,
            enabled: 0,
            archived_epoch: 0,
            lag_bytes: 0,
            objects_archived: 0,
            last_object_first_epoch: 0,
            consecutive_failures: 0,
            archive_durable: 0,
            last_error: [0; PWAL_TEXT_BYTES],
        };
        if let Some(s) = log.log.archive_status()? {
            c.enabled = 1;
            c.archived_epoch = s.archived_epoch;
            c.lag_bytes = s.lag_bytes;
            c.objects_archived = s.objects_archived;
            c.last_object_first_epoch = s.last_object_first_epoch;
            c.consecutive_failures = s.consecutive_failures;
            c.archive_durable = u32::from(log.log.archive_durable());
            copy_text(&mut c.last_error, &s.last_error);
        }
        // SAFETY: `out_size` returned a size the caller's struct has room for.
        unsafe { write_sized(out, &c, n) };
        Ok(())
    })
}

/// Blocks until every epoch up to `epoch` (from `pwal_submit`) is in the
/// archive, or `timeout_ms` milliseconds pass (`PWAL_WAIT_FOREVER`: no
/// limit; 0: only checks). Does not make the epoch locally durable: wait
/// for that with `pwal_wait_durable` (the archiver uploads only epochs
/// durable on the local disk).
///
/// Returns `PWAL_OK`; `PWAL_ERR_TIMEOUT` (not archived yet: the store is
/// slow or unreachable, `pwal_get_archive_status` says why; a later wait
/// may succeed); `PWAL_ERR_INVALID` (NULL `log`, a log without
/// `archive_url`, or an epoch never handed out); `PWAL_ERR_CLOSED` (the
/// log is closing); `PWAL_ERR_FORKED` (the handle was inherited across
/// `fork()`: nothing was done).
///
/// Thread safety: safe from any thread, concurrently with every call on
/// the same handle except `pwal_close`.
///
/// # Safety
///
/// `log` is NULL or a live handle from `pwal_open`.
#[no_mangle]
pub unsafe extern "C" fn pwal_wait_archived(
    log: *mut pwal,
    epoch: u64,
    timeout_ms: u32,
) -> pwal_status {
    ffi_boundary("pwal_wait_archived", || {
        // SAFETY: see this function's `# Safety`.
        let log = unsafe { handle(log) }?;
        let timeout = (timeout_ms != super::types::PWAL_WAIT_FOREVER)
            .then(|| std::time::Duration::from_millis(timeout_ms.into()));
        Ok(log.log.wait_archived(epoch, timeout)?)
    })
}

/// `pwal_restore` flag: replace an existing log directory (refused while a
/// process has that log open: `PWAL_ERR_LOCKED`).
pub const PWAL_RESTORE_FORCE: u32 = 1;

/// Restores the log of the database at `path` (the directory
/// `<path>-pwal/`) from the archive at `url` (as `pwal_options.archive_url`;
/// S3 settings from the `AWS_*` variables): every archived epoch, with its
/// epoch number, whatever checkpoints the archived log had made; or, with
/// `to_epoch` non-zero, those up to `to_epoch`; or, with `to_time_unix_ms`
/// non-zero (milliseconds since the Unix epoch), those that became durable
/// at or before that time. At most one of the two may be non-zero. Then `pwal_recover` (or `pwal_recover_and_open`) replays them
/// all as usual. The time resolution is one epoch: an epoch is restored
/// whole or not at all, by the time it became durable on the archiving
/// machine (its wall clock).
///
/// The whole chain is verified before anything is written: every
/// object's checksum, every frame, and that each object follows the one
/// before (no gap, no fork).
///
/// Returns `PWAL_OK`; `PWAL_ERR_CORRUPT` (a damaged, missing or forked
/// object: nothing was written; `pwal_last_error()` names it);
/// `PWAL_ERR_INVALID` (NULL or bad `url` or `path`, unknown `flags`, an
/// existing non-empty log directory without `PWAL_RESTORE_FORCE`, an empty
/// archive, or a target the archive does not hold); `PWAL_ERR_IO` (the
/// store is unreachable, or writing the log failed); `PWAL_ERR_LOCKED`
/// (forced over a log a process has open).
///
/// Thread safety: safe from any thread; do not run it on a log that
/// another thread or process opens meanwhile.
///
/// # Safety
///
/// `url` and `path` are NULL or NUL-terminated strings valid for the call.
#[no_mangle]
pub unsafe extern "C" fn pwal_restore(
    url: *const c_char,
    path: *const c_char,
    to_epoch: u64,
    to_time_unix_ms: u64,
    flags: u32,
) -> pwal_status {
    ffi_boundary("pwal_restore", || {
        if url.is_null() {
            return Err(Failure::invalid("url is NULL"));
        }
        // SAFETY: non-NULL and NUL-terminated (the caller's promise).
        let url = unsafe { std::ffi::CStr::from_ptr(url) }
            .to_str()
            .map_err(|_| Failure::invalid("url is not UTF-8"))?;
        // SAFETY: the caller's promise, passed on.
        let path = unsafe { path_from_c(path) }?;
        if flags & !PWAL_RESTORE_FORCE != 0 {
            return Err(Failure::invalid(format!(
                "flags = {flags:#x}: only PWAL_RESTORE_FORCE is known"
            )));
        }
        if to_epoch != 0 && to_time_unix_ms != 0 {
            return Err(Failure::invalid(
                "give to_epoch or to_time_unix_ms, not both",
            ));
        }
        let target = if to_epoch != 0 {
            RestoreTarget::Epoch(to_epoch)
        } else if to_time_unix_ms != 0 {
            RestoreTarget::Time(to_time_unix_ms.saturating_mul(1_000_000))
        } else {
            RestoreTarget::Latest
        };
        crate::archive::restore(url, path, target, flags & PWAL_RESTORE_FORCE != 0)?;
        Ok(())
    })
}
