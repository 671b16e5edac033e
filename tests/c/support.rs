//! Shared by the tests that build C against libpwal (`tests/c_abi.rs`,
//! `tests/header_*.rs`, `tests/symbols_*.rs`, and the `pwal` command's
//! tests in `cli/tests/`): where the library cargo just built is, a C
//! compiler from the `cc` crate, and the C harness built with them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the manifest directory, or its parent for the
/// `cli/` package).
pub fn root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if dir.join("include/pwal.h").exists() {
        dir
    } else {
        dir.parent().expect("cli/ has a parent").to_path_buf()
    }
}

/// `target/<profile>`: the directory of this test executable's `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test exe has a directory");
    deps.parent().expect("deps has a parent").to_path_buf()
}

/// The shared library cargo built with this test. `cargo test` builds the
/// package's cdylib into `deps/` but copies it up to `target/<profile>/` only
/// on `cargo build`, so the newer of the two is the one matching the sources.
pub fn cdylib() -> PathBuf {
    let dir = profile_dir();
    let newest = [dir.join("deps").join("libpwal.so"), dir.join("libpwal.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified);
    if let Some((_, p)) = newest {
        return p;
    }
    panic!(
        "libpwal.so not found in {} (or its deps/): build it with `cargo build` (or run the \
         tests with `cargo test`, which builds it)",
        dir.display()
    );
}

/// A fresh scratch directory under cargo's per-target tmp dir. Scratch
/// directories left by earlier runs (a failed case keeps its files for a
/// look) are removed once they are an hour old.
pub fn scratch(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let hour = std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > hour));
        if stale && entry.file_name().to_string_lossy().starts_with("pwal-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("pwal-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A C (or C++) compiler command as the `cc` crate finds it, with the flags it
/// would use for this target.
pub fn compiler(cpp: bool) -> Command {
    let target = env!("PWAL_BUILD_TARGET");
    cc::Build::new()
        .cargo_metadata(false)
        .target(target)
        .host(target)
        .opt_level(1)
        .debug(true)
        .cpp(cpp)
        .get_compiler()
        .to_command()
}

/// Copies the library into `dir` under its soname (`libpwal.so.0`) with the
/// link-time name beside it, so a program linked with `-L dir -lpwal
/// -Wl,-rpath,dir` finds it at run time. A copy (not a link to target/) keeps
/// a concurrent rebuild from changing it under a running test.
pub fn stage_library(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let soname = format!("libpwal.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
    std::fs::copy(cdylib(), lib.join(&soname)).expect("copy libpwal.so");
    let link = lib.join("libpwal.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&soname, &link).unwrap();
    lib
}

/// Runs `cmd`, panicking with its output if it fails.
pub fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{cmd:?}\n{text}",
        out.status
    );
    text
}

/// Whether `tool` is on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Compiles `tests/c/harness.c` into `dir`, linked against a copy of the
/// library staged there; returns the executable.
pub fn build_harness(dir: &Path) -> PathBuf {
    let lib = stage_library(dir);
    let exe = dir.join("harness");
    let mut cc = compiler(false);
    cc.arg("-std=c99")
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/harness.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lpwal", "-pthread"]);
    run(cc, "compiling tests/c/harness.c");
    exe
}
