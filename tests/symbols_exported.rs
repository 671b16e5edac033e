//! The shared library exports `pwal_*` functions and nothing else, and
//! carries the versioned soname.

#[path = "c/support.rs"]
mod support;

use std::process::Command;

#[test]
fn shared_library_exports_only_pwal_symbols() {
    let lib = support::cdylib();
    let mut nm = Command::new("nm");
    nm.args(["-D", "--defined-only"]).arg(&lib);
    let out = support::run(nm, "nm -D --defined-only libpwal.so");
    let symbols: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let foreign: Vec<&&str> = symbols.iter().filter(|s| !s.starts_with("pwal_")).collect();
    assert!(
        foreign.is_empty(),
        "symbols other than pwal_* exported: {foreign:?}"
    );
    for required in [
        "pwal_options_init",
        "pwal_options_init_sized",
        "pwal_open",
        "pwal_submit",
        "pwal_wait_durable",
        "pwal_commit",
        "pwal_checkpoint",
        "pwal_get_stats",
        "pwal_durable",
        "pwal_close",
        "pwal_recover",
        "pwal_last_error",
        "pwal_status_name",
        "pwal_version",
    ] {
        assert!(
            symbols.contains(&required),
            "{required} is not exported: {symbols:?}"
        );
    }
}

#[test]
fn shared_library_has_a_versioned_soname() {
    let lib = support::cdylib();
    let mut readelf = Command::new("readelf");
    readelf.arg("-d").arg(&lib);
    let out = support::run(readelf, "readelf -d libpwal.so");
    let want = format!("[libpwal.so.{}]", env!("CARGO_PKG_VERSION_MAJOR"));
    assert!(
        out.lines()
            .any(|l| l.contains("(SONAME)") && l.contains(&want)),
        "no SONAME {want} in:\n{out}"
    );
}
