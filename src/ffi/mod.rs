//! The C ABI: a thin layer over the safe core, declared in `include/pwal.h`.
//!
//! Every entry point has the same shape (after rustls-ffi): check the
//! pointers and integers it was given, convert them to the core's types, call
//! the safe [`crate::Log`] API, and convert the result back. The pieces each
//! entry point shares live in one place each:
//!
//! - `boundary`: the one panic boundary (`catch_unwind`), the thread-local
//!   last-error message and the pointer-checking macros;
//! - [`status`]: `pwal_status` and the one mapping from [`crate::Error`];
//! - [`types`]: the `#[repr(C)]` structs and enums and their conversions;
//! - [`api`]: the entry points of a log handle;
//! - [`recover`](mod@recover): the `pwal_recover` entry point.
//!
//! The C header is generated from this module (and only this module) by
//! cbindgen with `cbindgen.toml`; `tests/header_fresh.rs` fails when the
//! checked-in header is stale and says how to refresh it.
//!
//! Nothing here takes a Rust enum by value from C: modes, sync policies,
//! statuses and flags arrive as plain integers and are range-checked, because
//! an out-of-range value in a Rust enum is undefined behaviour.

#![allow(non_camel_case_types)]

#[macro_use]
mod boundary;
pub mod api;
// archive: pwal_get_archive_status, pwal_wait_archived, pwal_restore.
pub mod archive;
pub mod recover;
pub mod status;
pub mod types;

pub use api::*;
pub use archive::*;
pub use recover::*;
pub use status::*;
pub use types::*;
