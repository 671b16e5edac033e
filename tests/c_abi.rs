//! The C harness (`tests/c/harness.c`): compiled with the `cc` crate, linked
//! against the `libpwal.so` cargo just built, and run one case per process
//! under valgrind (any leak, invalid access or use of uninitialised memory
//! fails the case). Without valgrind on PATH a case still runs, natively, but
//! that is a missing precondition: a failure under `CI=true`, a visible
//! `SKIPPED` line otherwise. `PWAL_NO_VALGRIND=1` runs natively on purpose.

#[path = "c/support.rs"]
mod support;

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Builds the harness once per test run.
fn harness() -> &'static PathBuf {
    static HARNESS: OnceLock<PathBuf> = OnceLock::new();
    HARNESS.get_or_init(|| support::build_harness(&support::scratch("harness-build")))
}

/// Whether to run `case` under valgrind: yes when it is on PATH, unless
/// `PWAL_NO_VALGRIND` is set (an explicit opt-out). A missing valgrind fails
/// the case under `CI=true` and is reported otherwise.
fn use_valgrind(case: &str) -> bool {
    if std::env::var_os("PWAL_NO_VALGRIND").is_some() {
        println!("C harness case {case}: not under valgrind (PWAL_NO_VALGRIND is set)");
        return false;
    }
    if support::on_path("valgrind") {
        return true;
    }
    let why = "valgrind is not on PATH: the case runs without memory checking \
               (install valgrind, or set PWAL_NO_VALGRIND=1 to opt out)";
    common::missing_precondition(&format!("valgrind for C harness case {case}"), why);
    // The test harness captures print! and eprint! of passing tests; say it
    // once where it is seen in a plain `cargo test` too.
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED valgrind in tests/c_abi.rs: {why}"
        );
    });
    false
}

/// Runs one case of the harness in a scratch directory of its own.
fn run_case(case: &str) {
    let exe = harness();
    let dir = support::scratch(case);
    let mut cmd = if use_valgrind(case) {
        let mut v = Command::new("valgrind");
        v.args([
            "--quiet",
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-fds=no",
        ]);
        v.arg(exe);
        v
    } else {
        Command::new(exe)
    };
    cmd.arg(case).arg(&dir);
    // The harness sets its options explicitly; the caller's PWAL_* must not
    // change what a case tests.
    for var in [
        "PWAL_MODE",
        "PWAL_SYNC",
        "PWAL_LANES",
        "PWAL_MAX_BATCH_BYTES",
        "PWAL_MAX_FLUSH_DELAY_MS",
        "PWAL_SHADOW_COMPARE_PER_MILLE",
    ] {
        cmd.env_remove(var);
    }
    let out = support::run(cmd, &format!("C harness case {case}"));
    print!("{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn c_round_trip_from_eight_threads_recovers_every_byte() {
    run_case("round_trip");
}

#[test]
fn c_misuse_is_refused_with_a_status_and_a_message() {
    run_case("misuse");
}

#[test]
fn c_callback_returning_nonzero_aborts_recovery() {
    run_case("abort");
}

#[test]
fn c_reopen_after_close_continues_the_epochs() {
    run_case("reopen");
}

#[test]
fn c_a_transaction_of_40_mib_commits_whole_and_one_over_the_limit_is_refused() {
    run_case("large_txn");
}

#[test]
fn c_the_environment_fills_the_options_and_the_program_wins() {
    run_case("env_rule");
}

#[test]
fn c_transactions_of_several_files_share_one_log() {
    run_case("file_ids");
}

#[test]
fn c_archive_durable_commits_status_wait_and_restore() {
    run_case("archive");
}

#[test]
fn c_the_trace_callback_sees_every_durable_epoch_in_order() {
    run_case("trace");
}

#[test]
fn c_flush_syncs_what_was_submitted() {
    run_case("flush");
}

#[test]
fn c_two_opens_in_one_process_share_the_log() {
    run_case("two_opens");
}

#[test]
fn c_second_process_gets_locked() {
    run_case("locked");
}

#[test]
fn c_version_function_matches_the_macros() {
    run_case("version");
}

#[test]
fn c_recovery_of_a_missing_log_is_empty() {
    run_case("empty");
}

#[test]
fn c_write_error_is_io_then_poisoned_and_loses_nothing_acknowledged() {
    run_case("fail_stop");
}

#[test]
fn c_inherited_handle_in_a_forked_child_is_refused() {
    run_case("forked_handle");
}

#[test]
fn c_second_open_with_other_options_is_refused() {
    run_case("second_open_options");
}

#[test]
fn c_the_frozen_minimum_struct_sizes_work_and_one_byte_less_is_refused() {
    run_case("min_sizes");
}

#[test]
fn c_checkpointed_epochs_are_not_replayed_and_the_mark_is_reported() {
    run_case("checkpoint_mark");
}

#[test]
fn c_corruption_fills_the_report_and_open_refuses_the_damaged_log() {
    run_case("corrupt_report");
}

#[test]
fn c_commit_sequence_inversions_are_counted_or_refused() {
    run_case("seq_inversions");
}

#[test]
fn c_recover_and_open_replays_once_then_the_log_is_open() {
    run_case("recover_and_open");
}

#[test]
fn c_recover_and_open_refuses_a_damaged_log() {
    run_case("recover_and_open_damaged");
}

#[test]
fn c_damage_at_or_below_the_checkpoint_mark_costs_nothing() {
    run_case("damage_below_mark");
}

#[test]
fn c_repair_keeps_the_checkpoint_mark() {
    run_case("repair_keeps_mark");
}

#[test]
fn c_repair_after_a_checkpoint_removed_segments_leaves_a_log_that_opens() {
    run_case("repair_after_removal");
}

#[test]
fn c_rot_in_the_last_epoch_of_a_closed_log_is_corruption() {
    run_case("closed_last_epoch_rot");
}

#[test]
fn c_validate_first_gives_the_callback_nothing_from_a_damaged_log() {
    run_case("validate_first");
}

#[test]
fn c_repair_cuts_to_the_durable_prefix_and_keeps_every_byte() {
    run_case("repair");
}

/// Double close and use after close, through the entry points from Rust
/// (under valgrind the C harness would count the deliberate read of freed
/// memory as an error). What this checks is best effort by design: the
/// handle's magic, overwritten before the memory is freed.
mod closed_handles {
    use std::ffi::{CStr, CString};

    use pwal::ffi::{
        pwal_close, pwal_durable, pwal_last_error, pwal_open, pwal_options, pwal_status,
    };

    fn last_error() -> String {
        // SAFETY: never NULL, valid until the next failing call here.
        unsafe { CStr::from_ptr(pwal_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn double_close_and_use_after_close_are_refused() {
        let dir = super::support::scratch("closed-handles");
        let db = CString::new(dir.join("test.db").into_os_string().into_encoded_bytes()).unwrap();
        let o = pwal_options {
            segment_bytes: 1 << 20,
            ignore_env: 1,
            ..pwal_options::default()
        };
        let mut log = std::ptr::null_mut();
        // SAFETY: valid path, options and out-pointer.
        let st = unsafe { pwal_open(db.as_ptr(), &o, &mut log) };
        assert_eq!(st, pwal_status::PWAL_OK, "{}", last_error());
        // SAFETY: a live handle.
        assert_eq!(unsafe { pwal_close(log) }, pwal_status::PWAL_OK);

        // The deliberate misuse: `log` was freed just above.
        let (mut e, mut s) = (0, 0);
        // SAFETY: none; this is the undefined behaviour pwal catches on a
        // best-effort basis (nothing has reused the freed block yet).
        let st = unsafe { pwal_durable(log, &mut e, &mut s) };
        assert!(
            matches!(
                st,
                pwal_status::PWAL_ERR_CLOSED | pwal_status::PWAL_ERR_INVALID
            ),
            "use after close returned {st:?}"
        );
        assert!(last_error().contains("closed"), "{}", last_error());
        // SAFETY: as above.
        let st = unsafe { pwal_close(log) };
        assert!(
            matches!(
                st,
                pwal_status::PWAL_ERR_CLOSED | pwal_status::PWAL_ERR_INVALID
            ),
            "double close returned {st:?}"
        );
        assert!(last_error().contains("closed"), "{}", last_error());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A program built against the header as 0.1.0 shipped it
/// (`tests/c/abi-0.1.0/pwal.h`, never edited) runs against this library:
/// the 0.1.0 struct sizes and functions keep working.
#[test]
fn c_a_program_built_against_the_0_1_0_header_still_runs() {
    let dir = support::scratch("abi-0.1.0");
    let lib = support::stage_library(&dir);
    let exe = dir.join("program");
    let old = support::root().join("tests/c/abi-0.1.0");
    let mut cc = support::compiler(false);
    cc.arg("-std=c99")
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(&old)
        .arg(old.join("program.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lpwal");
    support::run(cc, "compiling tests/c/abi-0.1.0/program.c");
    let mut run = Command::new(&exe);
    run.arg(&dir).env_clear();
    let out = support::run(run, "running the 0.1.0 program");
    assert!(out.contains("committed and recovered 20"), "{out}");
}
