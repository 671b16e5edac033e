//! `include/pwal.h` is what cbindgen generates from `src/ffi/` with
//! `cbindgen.toml`. Refresh it with
//!
//! ```text
//! PWAL_BLESS_HEADER=1 cargo test --test header_fresh
//! ```

use std::path::PathBuf;

#[test]
fn checked_in_header_matches_cbindgen_output() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    // Only src/ffi/ is the C ABI: parsing the whole crate would also emit the
    // core's public constants as unprefixed macros.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");

    let path = root.join("include/pwal.h");
    if std::env::var_os("PWAL_BLESS_HEADER").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first_diff = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "include/pwal.h is stale (first difference at line {}).\n\
             Refresh it with: PWAL_BLESS_HEADER=1 cargo test --test header_fresh",
            first_diff + 1
        );
    }
}

#[test]
fn every_name_in_the_header_has_the_pwal_prefix() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/pwal.h")).unwrap();
    for line in header.lines() {
        let line = line.trim_start();
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("typedef struct ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("enum ") {
            rest.split_whitespace().next()
        } else {
            None
        };
        if let Some(name) = name {
            assert!(
                name.starts_with("pwal") || name.starts_with("PWAL_"),
                "unprefixed name {name:?} in pwal.h: {line}"
            );
        }
    }
}
