//! For the tests, which build the C harness with the `cc` crate
//! (`tests/c/support.rs`): the target triple, which `cc` needs outside a
//! build script.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=PWAL_BUILD_TARGET={target}");
}
