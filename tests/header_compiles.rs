//! `include/pwal.h` compiles without a single warning as C99 and as C++
//! (`-Wall -Wextra -Wpedantic -Werror`), and its macros have the values the
//! ABI promises.

#[path = "c/support.rs"]
mod support;

fn compile(cpp: bool, std: &str) {
    let dir = support::scratch(&format!("header-{std}"));
    let mut cc = support::compiler(cpp);
    if cpp {
        cc.args(["-x", "c++"]);
    }
    cc.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c"])
        .arg("-I")
        .arg(support::root().join("include"))
        .arg(support::root().join("tests/c/header_check.c"))
        .arg("-o")
        .arg(dir.join("header_check.o"));
    support::run(cc, &format!("compiling pwal.h as {std}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn header_compiles_warning_free_as_c99() {
    compile(false, "c99");
}

#[test]
fn header_compiles_warning_free_as_c11() {
    compile(false, "c11");
}

#[test]
fn header_compiles_warning_free_as_cpp11() {
    compile(true, "c++11");
}

#[test]
fn header_compiles_warning_free_as_cpp17() {
    compile(true, "c++17");
}
