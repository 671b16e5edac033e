//! Real kernel errors, not simulated ones: a file-size limit (RLIMIT_FSIZE,
//! so writes past it fail with EFBIG) in a child process, and a tiny tmpfs
//! (ENOSPC) where this machine allows mounting one. Each must give the
//! waiter a clear error naming the cause, poison the log, and leave a log
//! that recovers cleanly, with every acknowledged batch, and reopens once the
//! cause is gone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use pwal::io::RealVfs;
use pwal::{Error, Log, Options};

fn opts() -> Options {
    Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        ..Options::default()
    }
}

/// Commits small batches until `stop` says so or one fails; then checks the
/// failure is `needle`, the log is poisoned, and recovery has every
/// acknowledged batch. Returns what was expected.
fn fill_until_failure(db: &Path, big_after: Option<u64>, needle: &str) -> Expect {
    let j = Journal::new();
    let log = Log::open(db, &opts()).unwrap();
    let mut failure = None;
    for n in 0..10_000u64 {
        let mut id = j.next_id();
        if big_after.is_some_and(|b| n >= b) {
            id |= BIG;
        }
        if let Err(e) = j.commit(&log, id) {
            failure = Some(e);
            break;
        }
    }
    let err = failure.expect("the writes never failed");
    let msg = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{msg}");
    assert!(
        msg.contains(needle),
        "the error does not say {needle:?}: {msg}"
    );
    assert!(
        matches!(submit(&log, j.next_id()), Err(Error::Poisoned(_))),
        "the log is not poisoned"
    );
    assert!(log.stats().poisoned);
    assert!(matches!(log.close(), Err(Error::Poisoned(_))));
    let x = Expect::from_events(&j.snapshot());
    let got = recover(&RealVfs, db).expect("recovery after the failure");
    check_recovered(&got, &x).unwrap();
    assert!(
        !x.acked.is_empty(),
        "nothing was acknowledged before the failure"
    );
    x
}

/// Reopens, commits one more batch, closes, and checks everything is there.
fn reopen_and_commit(db: &Path, mut x: Expect) {
    let j = Journal::new();
    j.raise_ids(x.submitted.keys().map(|i| i & !BIG).max().unwrap_or(0) + 1);
    let log = Log::open(db, &opts()).expect("reopen");
    j.commit(&log, j.next_id()).expect("commit after reopen");
    j.close(log).unwrap();
    for e in j.snapshot() {
        x.add(e);
    }
    check_recovered(&recover(&RealVfs, db).unwrap(), &x).unwrap();
}

#[test]
fn a_file_size_limit_gives_efbig_poisons_and_recovers() {
    if let Ok(db) = std::env::var("PWAL_EFBIG_CHILD") {
        let db = PathBuf::from(db);
        // SAFETY: plain libc calls on this process's own signal disposition
        // and limits, before any other thread of the test exists.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 80 << 10,
                rlim_max: libc::RLIM_INFINITY,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
        // 64 KiB segments fit; a big batch's frame (> 80 KiB) goes alone into
        // a segment it extends past the limit.
        let x = fill_until_failure(&db, Some(6), "File too large");
        unsafe {
            let lim = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
        reopen_and_commit(&db, x);
        std::process::exit(0);
    }
    let db = scratch("efbig").join("db");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_file_size_limit_gives_efbig_poisons_and_recovers",
            "--nocapture",
        ])
        .env("PWAL_EFBIG_CHILD", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the EFBIG child failed: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unmounts on drop, panic or not.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_tmpfs_gives_enospc_poisons_and_recovers() {
    let dir = scratch("enospc");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=320k", "pwal-enospc"])
        .arg(&dir)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            missing_precondition(
                "a_full_tmpfs_gives_enospc_poisons_and_recovers",
                &format!(
                    "cannot mount a tmpfs here ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            );
            return;
        }
        Err(e) => {
            missing_precondition(
                "a_full_tmpfs_gives_enospc_poisons_and_recovers",
                &format!("no mount command ({e})"),
            );
            return;
        }
    }
    let _mount = Mount(dir.clone());
    let db = dir.join("db");
    let x = fill_until_failure(&db, None, "No space left on device");
    // Room again: the log reopens (recovery) and continues.
    let status = Command::new("mount")
        .args(["-o", "remount,size=4m"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    reopen_and_commit(&db, x);
}
