//! What every entry point shares: the panic boundary, the thread-local last
//! error, and the small macros that check what C handed us.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::pwal_status;

/// A `&'static` NUL-terminated C string from a literal.
macro_rules! cstr {
    ($s:expr) => {
        concat!($s, "\0").as_ptr() as *const ::std::os::raw::c_char
    };
}

/// `try_ref!(ptr)`: a shared reference from a pointer C gave us, or
/// `Err(PWAL_ERR_INVALID)` naming the argument if it is NULL.
macro_rules! try_ref {
    ($ptr:ident) => {{
        // SAFETY: every entry point documents (in its `# Safety` section and
        // in pwal.h) that this pointer is NULL or valid for reads of its type
        // for the whole call; NULL is handled by `as_ref`.
        match unsafe { $ptr.as_ref() } {
            Some(r) => r,
            None => {
                return Err($crate::ffi::boundary::Failure::invalid(concat!(
                    stringify!($ptr),
                    " is NULL"
                )))
            }
        }
    }};
}

/// `try_mut!(ptr)`: like `try_ref!` for an out-pointer.
macro_rules! try_mut {
    ($ptr:ident) => {{
        // SAFETY: every entry point documents that this out-pointer is NULL or
        // valid for writes of its type for the whole call, and not aliased by
        // any other argument; NULL is handled by `as_mut`.
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => {
                return Err($crate::ffi::boundary::Failure::invalid(concat!(
                    stringify!($ptr),
                    " is NULL"
                )))
            }
        }
    }};
}

/// Why an entry point refused or failed: the status C gets back and the
/// message `pwal_last_error()` gives.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: pwal_status,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: pwal_status::PWAL_ERR_INVALID,
            message: format!("invalid argument: {}", message.into()),
        }
    }
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Failure {
        let mut message = e.to_string();
        if let crate::Error::Corrupt { .. } = e {
            // What a C engine can do next, said where it reads the failure.
            message.push_str(
                " (to go on with what lies before the damage: replay it with pwal_recover and \
                 PWAL_RECOVER_DURABLE_PREFIX, then cut the log back to it with pwal_repair)",
            );
        }
        Failure {
            status: pwal_status::from(&e),
            message,
        }
    }
}

/// Longest message kept for `pwal_last_error()`, in bytes. Messages come from
/// paths and from our own formatting; the bound keeps a pathological path from
/// pinning memory in every thread that ever failed.
const MAX_MESSAGE_BYTES: usize = 4096;

thread_local! {
    /// The message of this thread's last failed call. A `CString` so that the
    /// pointer handed to C stays valid (and NUL-terminated) until the next
    /// failure on the same thread replaces it.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

pub(crate) fn set_last_error(mut message: String) {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    // An interior NUL would end the C string early; it can only come from a
    // path, where a visible stand-in is more useful than losing the rest.
    let bytes: Vec<u8> = message
        .into_bytes()
        .into_iter()
        .map(|b| if b == 0 { b'?' } else { b })
        .collect();
    let message = CString::new(bytes).unwrap_or_default();
    // `try_with` fails only while this thread's locals are being destroyed;
    // the message is then lost, which is better than a panic.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(message));
}

/// This thread's last message, or "" if none; valid until the next failed
/// call on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| match slot.borrow().as_ref() {
            Some(m) => m.as_ptr(),
            None => cstr!(""),
        })
        .unwrap_or(cstr!(""))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs the body of entry point `name` so that nothing escapes into C: an
/// `Err` becomes its status and a last-error message prefixed with `name`, and
/// a panic becomes `PWAL_ERR_INTERNAL` (unwinding into C is undefined
/// behaviour, so this is the one place every entry point goes through).
pub(crate) fn ffi_boundary(name: &str, body: impl FnOnce() -> Result<(), Failure>) -> pwal_status {
    // AssertUnwindSafe: after a panic the only state we look at again is the
    // handle, whose core guards its own invariants (locks poison or recover);
    // the panic is reported, never swallowed.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => pwal_status::PWAL_OK,
        Ok(Err(failure)) => {
            set_last_error(format!("{name}: {}", failure.message));
            failure.status
        }
        Err(payload) => {
            set_last_error(format!(
                "{name}: internal error: panic: {}",
                panic_message(payload.as_ref())
            ));
            pwal_status::PWAL_ERR_INTERNAL
        }
    }
}

/// Reads a caller-owned struct that begins with a `uint32_t struct_size` and
/// may come from an older or newer header: the first `min(struct_size,
/// size_of::<T>())` bytes are taken from C, the rest keep `defaults`.
///
/// # Safety
///
/// `ptr` is non-NULL and valid for reads of `struct_size` bytes (which is what
/// a caller promises by setting `struct_size`).
pub(crate) unsafe fn read_sized<T: Copy>(
    ptr: *const T,
    defaults: T,
    min_size: usize,
    what: &str,
) -> Result<T, Failure> {
    // SAFETY: the struct begins with a `uint32_t struct_size` (checked by the
    // layout tests in `types`), and `ptr` is valid for at least that.
    let size = unsafe { std::ptr::read_unaligned(ptr as *const u32) } as usize;
    if size < min_size {
        return Err(Failure::invalid(format!(
            "{what}->struct_size = {size}: expected at least {min_size} (set it to sizeof({what}), \
             or call the init function)"
        )));
    }
    let mut value = defaults;
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `n` is at most the size of both the source (the caller's
    // `struct_size`) and the destination (`T`); `T` is a `#[repr(C)]` struct
    // of integers and pointers, for which every byte pattern is valid; the
    // two do not overlap (`value` is a local).
    unsafe {
        std::ptr::copy_nonoverlapping(ptr as *const u8, &mut value as *mut T as *mut u8, n);
    }
    Ok(value)
}

/// Checks the caller-set `struct_size` of an out-struct and returns how many
/// bytes of it may be written: `min(struct_size, size_of::<T>())`.
///
/// # Safety
///
/// As for [`read_sized`].
pub(crate) unsafe fn out_size<T>(
    ptr: *mut T,
    min_size: usize,
    what: &str,
) -> Result<usize, Failure> {
    // SAFETY: as in `read_sized`: the struct begins with its size.
    let size = unsafe { std::ptr::read_unaligned(ptr as *const u32) } as usize;
    if size < min_size {
        return Err(Failure::invalid(format!(
            "{what}->struct_size = {size}: expected at least {min_size} (set it to sizeof({what}) \
             before the call)"
        )));
    }
    Ok(size.min(std::mem::size_of::<T>()))
}

/// Writes the first `n` bytes of `value` (from [`out_size`]) to `ptr`, then
/// sets its `struct_size` to `n` so the caller sees which fields were filled.
///
/// # Safety
///
/// `ptr` is valid for writes of `n` bytes and `n >= 4`.
pub(crate) unsafe fn write_sized<T: Copy>(ptr: *mut T, value: &T, n: usize) {
    debug_assert!(n >= 4 && n <= std::mem::size_of::<T>());
    // SAFETY: the caller promised `ptr` is valid for `n` bytes, `n` is within
    // `T`, and a caller-owned out-struct never overlaps our local `value`.
    unsafe {
        std::ptr::copy_nonoverlapping(value as *const T as *const u8, ptr as *mut u8, n);
        std::ptr::write_unaligned(ptr as *mut u32, n as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: last_error_ptr returns a NUL-terminated string that lives
        // until the next failure on this thread.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_internal_with_its_message() {
        let status = ffi_boundary("pwal_test", || panic!("lane {} exploded", 3));
        assert_eq!(status, pwal_status::PWAL_ERR_INTERNAL);
        assert_eq!(
            last_error(),
            "pwal_test: internal error: panic: lane 3 exploded"
        );
    }

    #[test]
    fn a_failure_sets_status_and_prefixed_message_and_success_keeps_it() {
        let status = ffi_boundary("pwal_test", || Err(Failure::invalid("txn is NULL")));
        assert_eq!(status, pwal_status::PWAL_ERR_INVALID);
        assert_eq!(last_error(), "pwal_test: invalid argument: txn is NULL");
        assert_eq!(ffi_boundary("pwal_test", || Ok(())), pwal_status::PWAL_OK);
        assert_eq!(last_error(), "pwal_test: invalid argument: txn is NULL");
    }

    #[test]
    fn messages_are_bounded_and_never_contain_nul() {
        set_last_error(format!("a\0b{}", "x".repeat(3 * MAX_MESSAGE_BYTES)));
        let m = last_error();
        assert!(m.starts_with("a?b"));
        assert_eq!(m.len(), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn the_last_error_is_per_thread() {
        set_last_error("main thread".into());
        std::thread::spawn(|| assert_eq!(last_error(), ""))
            .join()
            .unwrap();
        assert_eq!(last_error(), "main thread");
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Sized2 {
        struct_size: u32,
        a: u32,
        b: u64,
    }

    #[test]
    fn sized_structs_from_a_newer_header_are_read_up_to_our_size() {
        // A caller built against a header whose struct has grown: a larger
        // struct_size, extra bytes after the fields we know.
        let mut buf = [0u64; 4];
        let mine = Sized2 {
            struct_size: 32,
            a: 7,
            b: 9,
        };
        // SAFETY: buf is 32 bytes, larger than Sized2, and 8-aligned.
        unsafe { std::ptr::write(buf.as_mut_ptr() as *mut Sized2, mine) };
        let defaults = Sized2 {
            struct_size: 16,
            a: 0,
            b: 0,
        };
        // SAFETY: buf is valid for the 32 bytes its struct_size claims.
        let got = unsafe { read_sized(buf.as_ptr() as *const Sized2, defaults, 16, "s") }.unwrap();
        assert_eq!((got.a, got.b), (7, 9));
        // SAFETY: as above.
        let small = unsafe { read_sized(buf.as_ptr() as *const Sized2, defaults, 40, "s") };
        assert_eq!(small.unwrap_err().status, pwal_status::PWAL_ERR_INVALID);
    }
}
