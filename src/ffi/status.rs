//! `pwal_status`, and the one place a core [`crate::Error`] becomes one.

use std::os::raw::c_char;

use crate::Error;

/// The result of every pwal call that can fail. `PWAL_OK` is 0; every other
/// value is an error, and the call that returned it has left a message for
/// this thread in `pwal_last_error()`. Values never change between versions;
/// new ones may be added, so treat an unknown non-zero value as an error.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pwal_status {
    /// Success.
    PWAL_OK = 0,
    /// An argument was rejected (NULL pointer, zero page number, bad length,
    /// struct_size too small, unknown enum value or flag, an option or a
    /// `PWAL_*` environment variable out of range). Nothing was changed.
    PWAL_ERR_INVALID = 1,
    /// A file operation failed. If it happened on the write path the handle is
    /// poisoned: later calls return `PWAL_ERR_POISONED`; close and reopen.
    PWAL_ERR_IO = 2,
    /// `pwal_wait_durable` / `pwal_commit` gave up before the epoch became
    /// durable. The batch is not lost: it may still become durable, and a
    /// later wait on the same epoch can succeed.
    PWAL_ERR_TIMEOUT = 3,
    /// Recovery found damage that is not a torn tail (bad bytes before valid
    /// later data). The message names the file, the offset and what was
    /// wrong. Retry with `PWAL_RECOVER_DURABLE_PREFIX` to get the prefix.
    PWAL_ERR_CORRUPT = 4,
    /// Another process has the log open.
    PWAL_ERR_LOCKED = 5,
    /// An earlier write or sync failed, so nothing more is acknowledged on
    /// this handle (fail-stop). Close it and reopen, which runs recovery.
    PWAL_ERR_POISONED = 6,
    /// The log is closing or closed.
    PWAL_ERR_CLOSED = 7,
    /// A recovery callback returned non-zero: recovery stopped there.
    PWAL_ERR_ABORTED = 8,
    /// A bug in pwal (a caught panic or a broken invariant). The message says
    /// where; please report it.
    PWAL_ERR_INTERNAL = 9,
    /// The handle was opened before `fork()` and this process is the child:
    /// the log belongs to the parent, which goes on writing it. The call did
    /// nothing (wrote, flushed and read nothing). Call `pwal_close` on the
    /// handle (it frees this process's copy, and returns this status too),
    /// then `pwal_open` the log again if this process needs it (it gets
    /// `PWAL_ERR_LOCKED` while the parent has it open).
    PWAL_ERR_FORKED = 10,
    /// The log archives (`pwal_options.archive_url`) and more than
    /// `archive_max_lag_bytes` of durable epochs are not archived yet (the
    /// store is unreachable or slow; `pwal_get_archive_status` says why).
    /// The transaction was refused and nothing was written. Retry later:
    /// commits are accepted again by themselves once the archive catches up.
    PWAL_ERR_ARCHIVE_BEHIND = 11,
}

impl From<&Error> for pwal_status {
    fn from(e: &Error) -> pwal_status {
        // Exhaustive on purpose: a new core error must be given a status here.
        match e {
            Error::Invalid(_) => pwal_status::PWAL_ERR_INVALID,
            Error::Io { .. } => pwal_status::PWAL_ERR_IO,
            Error::Timeout { .. } => pwal_status::PWAL_ERR_TIMEOUT,
            Error::Corrupt { .. } => pwal_status::PWAL_ERR_CORRUPT,
            Error::Locked(_) => pwal_status::PWAL_ERR_LOCKED,
            Error::Poisoned(_) => pwal_status::PWAL_ERR_POISONED,
            Error::Closed => pwal_status::PWAL_ERR_CLOSED,
            Error::Aborted { .. } => pwal_status::PWAL_ERR_ABORTED,
            Error::Internal(_) => pwal_status::PWAL_ERR_INTERNAL,
            Error::Forked(_) => pwal_status::PWAL_ERR_FORKED,
            Error::ArchiveBehind(_) => pwal_status::PWAL_ERR_ARCHIVE_BEHIND,
            Error::ArchiveDamaged(_) => pwal_status::PWAL_ERR_CORRUPT,
        }
    }
}

/// The name of a status code as a static string ("PWAL_OK",
/// "PWAL_ERR_LOCKED", ...), or "PWAL_ERR_UNKNOWN" for a value this version
/// does not know. Never NULL; the string is static: do not free it.
///
/// Thread safety: safe from any thread. Does not touch `pwal_last_error()`.
#[no_mangle]
pub extern "C" fn pwal_status_name(status: i32) -> *const c_char {
    match status {
        0 => cstr!("PWAL_OK"),
        1 => cstr!("PWAL_ERR_INVALID"),
        2 => cstr!("PWAL_ERR_IO"),
        3 => cstr!("PWAL_ERR_TIMEOUT"),
        4 => cstr!("PWAL_ERR_CORRUPT"),
        5 => cstr!("PWAL_ERR_LOCKED"),
        6 => cstr!("PWAL_ERR_POISONED"),
        7 => cstr!("PWAL_ERR_CLOSED"),
        8 => cstr!("PWAL_ERR_ABORTED"),
        9 => cstr!("PWAL_ERR_INTERNAL"),
        10 => cstr!("PWAL_ERR_FORKED"),
        11 => cstr!("PWAL_ERR_ARCHIVE_BEHIND"),
        _ => cstr!("PWAL_ERR_UNKNOWN"),
    }
}

/// The message of the last call on this thread that returned an error, or ""
/// if there was none. Never NULL. The string belongs to pwal and stays valid
/// until the next failing pwal call on this same thread; copy it to keep it.
/// Successful calls leave it unchanged.
///
/// Thread safety: each thread has its own message.
#[no_mangle]
pub extern "C" fn pwal_last_error() -> *const c_char {
    super::boundary::last_error_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_its_own_name() {
        for (code, name) in [
            (pwal_status::PWAL_OK, "PWAL_OK"),
            (pwal_status::PWAL_ERR_INVALID, "PWAL_ERR_INVALID"),
            (pwal_status::PWAL_ERR_IO, "PWAL_ERR_IO"),
            (pwal_status::PWAL_ERR_TIMEOUT, "PWAL_ERR_TIMEOUT"),
            (pwal_status::PWAL_ERR_CORRUPT, "PWAL_ERR_CORRUPT"),
            (pwal_status::PWAL_ERR_LOCKED, "PWAL_ERR_LOCKED"),
            (pwal_status::PWAL_ERR_POISONED, "PWAL_ERR_POISONED"),
            (pwal_status::PWAL_ERR_CLOSED, "PWAL_ERR_CLOSED"),
            (pwal_status::PWAL_ERR_ABORTED, "PWAL_ERR_ABORTED"),
            (pwal_status::PWAL_ERR_INTERNAL, "PWAL_ERR_INTERNAL"),
            (pwal_status::PWAL_ERR_FORKED, "PWAL_ERR_FORKED"),
            (
                pwal_status::PWAL_ERR_ARCHIVE_BEHIND,
                "PWAL_ERR_ARCHIVE_BEHIND",
            ),
        ] {
            // SAFETY: pwal_status_name returns a static NUL-terminated string.
            let got = unsafe { CStr::from_ptr(pwal_status_name(code as i32)) };
            assert_eq!(got.to_str().unwrap(), name);
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(pwal_status_name(-7)) };
        assert_eq!(unknown.to_str().unwrap(), "PWAL_ERR_UNKNOWN");
    }

    #[test]
    fn core_errors_map_to_their_status() {
        let io = Error::Io {
            context: "write".into(),
            source: std::io::Error::from_raw_os_error(5),
        };
        assert_eq!(pwal_status::from(&io), pwal_status::PWAL_ERR_IO);
        let p = Error::Poisoned("x".into());
        assert_eq!(pwal_status::from(&p), pwal_status::PWAL_ERR_POISONED);
        let a = Error::Aborted { epoch: 3 };
        assert_eq!(pwal_status::from(&a), pwal_status::PWAL_ERR_ABORTED);
        assert_eq!(
            pwal_status::from(&Error::Closed),
            pwal_status::PWAL_ERR_CLOSED
        );
        let f = Error::Forked("x".into());
        assert_eq!(pwal_status::from(&f), pwal_status::PWAL_ERR_FORKED);
    }
}
