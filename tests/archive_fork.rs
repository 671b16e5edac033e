//! fork() and the archive: in a child, the inherited handle's archive
//! calls fail with `Forked` and do nothing, its close joins no archiver
//! thread (there is none in the child), and the parent's archiver goes on.
//! One test in this binary: a fork while other tests run threads would copy
//! their half-done calls.

mod common;

use std::time::Duration;

use common::*;
use pwal::archive::RestoreTarget;
use pwal::{Error, Log, Options};

#[test]
fn a_forked_child_cannot_touch_the_parents_archive_and_the_parent_goes_on() {
    let root = scratch("archive-fork");
    let url = format!("file://{}", root.join("store").display());
    let db = root.join("db");
    let o = Options {
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        archive_url: url.clone(),
        ..Options::default()
    };
    let log = Log::open(&db, &o).unwrap();
    let mut ids = Vec::new();
    for id in 1..20 {
        let e = submit(&log, id).unwrap();
        log.wait_durable(e, None).unwrap();
        ids.push(id);
    }
    // SAFETY: fork has no preconditions; the child only makes pwal calls
    // that return at once and `_exit`s, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: alarm is async-signal-safe; it ends a child that hangs.
        unsafe { libc::alarm(20) };
        let code = (|| {
            if !matches!(log.archive_status(), Err(Error::Forked(_))) {
                return 3;
            }
            if !matches!(
                log.wait_archived(1, Some(Duration::from_secs(1))),
                Err(Error::Forked(_))
            ) {
                return 4;
            }
            if !matches!(log.close(), Err(Error::Forked(_))) {
                return 5;
            }
            0
        })();
        // SAFETY: ends the child without running the harness's atexit code.
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    // SAFETY: `pid` is our child; `st` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    assert!(libc::WIFEXITED(st), "the child was killed (a hang?)");
    assert_eq!(libc::WEXITSTATUS(st), 0, "the child saw the wrong result");
    for id in 20..40 {
        let e = submit(&log, id).unwrap();
        log.wait_durable(e, None).unwrap();
        ids.push(id);
    }
    log.wait_archived(log.durable_epoch(), None).unwrap();
    log.close().unwrap();
    let restored = root.join("restored");
    pwal::archive::restore(&url, &restored, RestoreTarget::Latest, false).unwrap();
    let r = recover(&pwal::io::RealVfs, &restored).unwrap();
    assert_eq!(r.batches.keys().copied().collect::<Vec<_>>(), ids);
}
