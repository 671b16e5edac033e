//! fork() without exec: a child must never write through, share, or keep
//! alive anything of the parent's open logs. Each test forks this test
//! process; the child runs a few pwal calls and `_exit`s with a code the
//! parent checks (it never returns into the test harness). Children are
//! killed by `alarm` if they hang (joining a thread that does not exist in
//! the child would hang forever).

use std::ffi::{CStr, CString};
use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use pwal::ffi::{
    pwal_checkpoint, pwal_close, pwal_commit, pwal_durable, pwal_frame, pwal_last_error, pwal_open,
    pwal_options, pwal_record, pwal_recover, pwal_status, pwal_txn,
};

type Handle = pwal::ffi::pwal;

/// One fork at a time: a test's child must not inherit another test's
/// half-done pwal calls, which would make a failure here hard to read.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    // Before any test opens a log, so that this child handler is registered
    // ahead of pwal's, and runs first in the child.
    static SLOW: std::sync::Once = std::sync::Once::new();
    SLOW.call_once(|| {
        // SAFETY: registers a handler that only calls nanosleep
        // (async-signal-safe) and never unwinds.
        let r = unsafe { libc::pthread_atfork(None, None, Some(slow_child)) };
        assert_eq!(r, 0);
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set while a test wants its children slow to reach pwal's fork handler.
static SLOW_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Child handler that delays pwal's (registered after it, so run after it):
/// the child of `fork()` runs its handlers concurrently with the parent, and
/// on a busy machine it may be scheduled late. This makes "late" certain.
extern "C" fn slow_child() {
    if SLOW_CHILD.load(std::sync::atomic::Ordering::Relaxed) {
        let t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 300_000_000,
        };
        // SAFETY: `t` is a valid timespec; the remainder is not wanted.
        unsafe { libc::nanosleep(&t, std::ptr::null_mut()) };
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fork-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("test.db")
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn last_error() -> String {
    // SAFETY: pwal_last_error never returns NULL and the string lives until
    // the next failing call on this thread.
    unsafe { CStr::from_ptr(pwal_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn options() -> pwal_options {
    pwal_options {
        segment_bytes: 1 << 20,
        ignore_env: 1,
        ..pwal_options::default()
    }
}

fn open(db: &Path) -> *mut Handle {
    let path = c_path(db);
    let o = options();
    let mut log = std::ptr::null_mut();
    // SAFETY: valid path, options and out-pointer.
    let st = unsafe { pwal_open(path.as_ptr(), &o, &mut log) };
    assert_eq!(st, pwal_status::PWAL_OK, "{}", last_error());
    log
}

fn page(id: u64) -> Vec<u8> {
    (0..64)
        .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i))
        .collect()
}

/// Commits transaction `id` (one frame) and returns the status.
fn commit(log: *mut Handle, id: u64) -> pwal_status {
    let data = page(id);
    let frame = pwal_frame {
        page_number: id as u32,
        db_size_if_commit: id as u32,
        data: data.as_ptr() as *const c_void,
        len: data.len() as u32,
    };
    let txn = pwal_txn {
        txn_id: id,
        commit_seq: id,
        frames: &frame,
        frame_count: 1,
        txn_epoch: 0,
    };
    // SAFETY: `log` is the caller's handle; txn and frame outlive the call.
    unsafe { pwal_commit(log, &txn, 60_000, std::ptr::null_mut()) }
}

fn commit_ok(log: *mut Handle, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        assert_eq!(commit(log, id), pwal_status::PWAL_OK, "{}", last_error());
    }
}

fn close(log: *mut Handle) -> pwal_status {
    // SAFETY: the caller's handle, not used again.
    unsafe { pwal_close(log) }
}

unsafe extern "C" fn collect(user: *mut c_void, r: *const pwal_record) -> i32 {
    // SAFETY: `user` is the Vec given to pwal_recover below; `r` and its data
    // are valid during the callback.
    unsafe {
        let out = &mut *(user as *mut Vec<(u64, Vec<u8>)>);
        let r = &*r;
        let data = std::slice::from_raw_parts(r.data as *const u8, r.len as usize);
        out.push((r.txn_id, data.to_vec()));
    }
    0
}

fn recover(db: &Path) -> (pwal_status, Vec<(u64, Vec<u8>)>) {
    let path = c_path(db);
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    // SAFETY: valid path and callback; `out` outlives the call.
    let st = unsafe {
        pwal_recover(
            path.as_ptr(),
            0,
            Some(collect),
            &mut out as *mut _ as *mut c_void,
            std::ptr::null_mut(),
        )
    };
    (st, out)
}

/// The log holds exactly the transactions `ids`, each with its own bytes.
fn assert_log_holds(db: &Path, ids: &[u64]) {
    let (st, got) = recover(db);
    assert_eq!(st, pwal_status::PWAL_OK, "{}", last_error());
    let got_ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(got_ids, ids);
    for (id, data) in got {
        assert_eq!(data, page(id), "transaction {id} has the wrong bytes");
    }
}

/// Forks; the child runs `child` and `_exit`s with what it returns (a panic
/// is 101, a hang is killed after 20 s). Returns the child's exit code, or
/// the signal that killed it as 1000 + signal.
fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
    let pid = start_child(child);
    wait_child(pid)
}

fn start_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no preconditions; the child only runs `child` and
    // `_exit`s, so it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe and always valid.
        unsafe { libc::alarm(20) };
        let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child without running the harness's atexit code.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn wait_child(pid: libc::pid_t) -> i32 {
    let mut st = 0;
    // SAFETY: `pid` is our child; `st` is writable.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(r, pid);
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        1000 + libc::WTERMSIG(st)
    }
}

/// 0 when `st` is `want` (and, for an error, the message mentions `needle`);
/// otherwise a code naming what the child saw: 10 + the status it got, or 2
/// for a message without `needle`.
fn expect(st: pwal_status, want: pwal_status, needle: &str) -> i32 {
    if st != want {
        return 10 + st as i32;
    }
    if want != pwal_status::PWAL_OK && !last_error().contains(needle) {
        return 2;
    }
    0
}

#[test]
fn child_open_of_the_parents_log_is_locked() {
    let _s = serial();
    let db = scratch("open");
    let log = open(&db);
    commit_ok(log, 1..=3);
    let code = fork_and_wait(|| {
        let path = c_path(&db);
        let o = options();
        let mut child_log = std::ptr::null_mut();
        // SAFETY: valid arguments.
        let st = unsafe { pwal_open(path.as_ptr(), &o, &mut child_log) };
        expect(st, pwal_status::PWAL_ERR_LOCKED, "")
    });
    assert_eq!(code, 0, "child's pwal_open: 10 + status, or 2: bad message");
    commit_ok(log, 4..=6);
    assert_eq!(close(log), pwal_status::PWAL_OK, "{}", last_error());
    assert_log_holds(&db, &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn child_recover_of_the_parents_log_is_locked() {
    let _s = serial();
    let db = scratch("recover");
    let log = open(&db);
    commit_ok(log, 1..=3);
    let code = fork_and_wait(|| expect(recover(&db).0, pwal_status::PWAL_ERR_LOCKED, ""));
    assert_eq!(code, 0, "child's pwal_recover: 10 + status");
    assert_eq!(close(log), pwal_status::PWAL_OK, "{}", last_error());
    assert_log_holds(&db, &[1, 2, 3]);
}

#[test]
fn child_commit_through_an_inherited_handle_fails_and_writes_nothing() {
    let _s = serial();
    let db = scratch("commit");
    let log = open(&db);
    commit_ok(log, 1..=3);
    let code = fork_and_wait(|| {
        let st = commit(log, 100);
        if st == pwal_status::PWAL_OK {
            return 1;
        }
        if !last_error().contains("fork") {
            return 2;
        }
        // Every other call on the handle is refused too.
        let mut e = 0;
        let mut s = 0;
        // SAFETY: the inherited handle is live memory in the child.
        let st = unsafe { pwal_durable(log, &mut e, &mut s) };
        if st == pwal_status::PWAL_OK || !last_error().contains("fork") {
            return 3;
        }
        // SAFETY: as above.
        if unsafe { pwal_checkpoint(log, 1) } == pwal_status::PWAL_OK {
            return 4;
        }
        0
    });
    assert_eq!(
        code, 0,
        "1: commit OK; 2: message; 3: durable; 4: checkpoint"
    );
    commit_ok(log, 4..=6);
    assert_eq!(close(log), pwal_status::PWAL_OK, "{}", last_error());
    assert_log_holds(&db, &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn child_close_of_an_inherited_handle_leaves_the_parent_alone() {
    let _s = serial();
    let db = scratch("close");
    let log = open(&db);
    commit_ok(log, 1..=3);
    let code = fork_and_wait(|| {
        let st = close(log);
        if st == pwal_status::PWAL_OK || st == pwal_status::PWAL_ERR_INTERNAL {
            return 10 + st as i32;
        }
        if !last_error().contains("fork") {
            return 2;
        }
        0
    });
    assert_eq!(
        code, 0,
        "child's pwal_close: 10 + status, 2: message, 1014: hung"
    );
    commit_ok(log, 4..=6);
    assert_eq!(close(log), pwal_status::PWAL_OK, "{}", last_error());
    assert_log_holds(&db, &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn an_idle_child_does_not_block_the_parents_close_and_reopen() {
    let _s = serial();
    let db = scratch("idle");
    let log = open(&db);
    commit_ok(log, 1..=3);
    // The child is slow to run pwal's fork handler; the parent closes and
    // reopens at once after fork() returns.
    SLOW_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
    let child = start_child(|| {
        std::thread::sleep(Duration::from_secs(5));
        0
    });
    SLOW_CHILD.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(close(log), pwal_status::PWAL_OK, "{}", last_error());
    let path = c_path(&db);
    let o = options();
    let mut again = std::ptr::null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { pwal_open(path.as_ptr(), &o, &mut again) };
    let message = last_error();
    // SAFETY: the child is ours; it is reaped just below.
    unsafe { libc::kill(child, libc::SIGKILL) };
    wait_child(child);
    assert_eq!(
        st,
        pwal_status::PWAL_OK,
        "reopen while the child lives: {message}"
    );
    commit_ok(again, 4..=4);
    assert_eq!(close(again), pwal_status::PWAL_OK, "{}", last_error());
    assert_log_holds(&db, &[1, 2, 3, 4]);
}

#[test]
fn fork_then_exec_works_untouched() {
    let _s = serial();
    let db = scratch("exec");
    let log = open(&db);
    commit_ok(log, 1..=3);
    let code = fork_and_wait(|| {
        let prog = CString::new("/bin/true").unwrap();
        let argv = [prog.as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated program and argument vector.
        unsafe { libc::execv(prog.as_ptr(), argv.as_ptr()) };
        127
    });
    assert_eq!(code, 0, "/bin/true after fork");
    commit_ok(log, 4..=6);
    assert_eq!(close(log), pwal_status::PWAL_OK, "{}", last_error());
    assert_log_holds(&db, &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn the_rust_api_refuses_an_inherited_log_too() {
    let _s = serial();
    let db = scratch("rust");
    let o = pwal::Options {
        use_env: false,
        segment_bytes: 1 << 20,
        ..pwal::Options::default()
    };
    let log = pwal::Log::open(&db, &o).unwrap();
    let data = page(1);
    let frames = [pwal::Frame {
        page_number: 1,
        db_size_if_commit: 1,
        data: &data,
    }];
    let txn = pwal::Txn {
        txn_id: 1,
        commit_seq: 1,
        txn_epoch: 0,
        frames: &frames,
    };
    log.commit(&txn, None).unwrap();
    let code = fork_and_wait(|| {
        if !matches!(log.check_not_forked(), Err(pwal::Error::Forked(_))) {
            return 1;
        }
        if !matches!(log.submit(&txn), Err(pwal::Error::Forked(_))) {
            return 2;
        }
        // Log is not Clone: close a bitwise copy, as the child owns one.
        // SAFETY: the parent's `log` is never used in this child again.
        let copy = unsafe { std::ptr::read(&log) };
        match copy.close() {
            Err(pwal::Error::Forked(m)) if m.contains("fork") => 0,
            _ => 3,
        }
    });
    assert_eq!(code, 0, "1: check, 2: submit, 3: close");
    let data2 = page(2);
    let frames2 = [pwal::Frame {
        data: &data2,
        ..frames[0]
    }];
    let txn2 = pwal::Txn {
        txn_id: 2,
        commit_seq: 2,
        txn_epoch: 0,
        frames: &frames2,
    };
    log.commit(&txn2, None).unwrap();
    log.close().unwrap();
    assert_log_holds(&db, &[1, 2]);
}
