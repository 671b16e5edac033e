//! Link settings for the C library (see README.md, "Install").
//!
//! Sets the soname `libpwal.so.<major>`, so that programs linked against 0.1
//! load any later 0.x that keeps the ABI.
//!
//! Exports: rustc already exports from a cdylib only the `#[no_mangle]`
//! functions of the crate and its dependencies (through a version script of
//! its own). A second `--version-script` passed from here is silently
//! overridden by rustc's, so it cannot narrow the list further;
//! `tests/symbols_exported.rs` enforces "only `pwal_*`" with `nm -D` instead.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // For the tests that compile C with the `cc` crate (tests/c/support.rs),
    // which needs the target triple outside a build script.
    let target = env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=PWAL_BUILD_TARGET={target}");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpwal.so.{major}");
}
