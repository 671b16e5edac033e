//! The registry of open logs: a second open of an open log in the same
//! process shares it, and so must ask for the same options.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pwal::{Error, Frame, Log, Options, SyncPolicy, Txn};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("registry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("test.db")
}

fn opts() -> Options {
    Options {
        use_env: false,
        lanes: 2,
        segment_bytes: 1 << 20,
        ..Options::default()
    }
}

fn commit(log: &Log, id: u64) {
    let data = [id as u8; 32];
    let frames = [Frame {
        page_number: 1,
        db_size_if_commit: 1,
        data: &data,
    }];
    let txn = Txn {
        txn_id: id,
        commit_seq: id,
        txn_epoch: 0,
        frames: &frames,
    };
    log.commit(&txn, Some(Duration::from_secs(60))).unwrap();
}

/// The message of refusing a second open with `change` applied, checked to
/// be `Invalid`.
fn refused(db: &Path, change: impl FnOnce(&mut Options)) -> String {
    let mut o = opts();
    change(&mut o);
    match Log::open(db, &o) {
        Err(Error::Invalid(m)) => m,
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(_) => panic!("a second open with other options was accepted"),
    }
}

#[test]
fn a_second_open_with_other_options_is_refused_naming_the_field_and_both_values() {
    let db = scratch("differ");
    let first = Log::open(&db, &opts()).unwrap();
    commit(&first, 1);

    let m = refused(&db, |o| o.sync = SyncPolicy::Normal);
    assert!(
        m.contains("sync: asked normal, the open log has full"),
        "{m}"
    );
    let m = refused(&db, |o| o.lanes = 3);
    assert!(m.contains("lanes: asked 3, the open log has 2"), "{m}");
    let m = refused(&db, |o| o.segment_bytes = 2 << 20);
    assert!(
        m.contains("segment_bytes: asked 2097152, the open log has 1048576"),
        "{m}"
    );
    let m = refused(&db, |o| o.mode = pwal::Mode::Conservative);
    assert!(
        m.contains("mode: asked conservative, the open log has auto"),
        "{m}"
    );
    let m = refused(&db, |o| o.max_batch_bytes = 1 << 16);
    assert!(m.contains("max_batch_bytes: asked 65536"), "{m}");
    let m = refused(&db, |o| o.max_flush_delay = Duration::from_micros(500));
    assert!(
        m.contains("max_flush_delay_us: asked 500, the open log has 2000"),
        "{m}"
    );

    // The refusals changed nothing: the first handle goes on, and is the
    // last one (its close is the one that shuts the log down).
    commit(&first, 2);
    first.close().unwrap();
    let again = Log::open(
        &db,
        &Options {
            sync: SyncPolicy::Normal,
            ..opts()
        },
    )
    .unwrap();
    again.close().unwrap();
}

#[test]
fn a_second_open_with_the_same_options_shares_the_log() {
    let db = scratch("same");
    let a = Log::open(&db, &opts()).unwrap();
    // Spelled differently, resolved the same: 0 means the 2 ms default.
    let b = Log::open(
        &db,
        &Options {
            max_flush_delay: Duration::from_millis(2),
            ..opts()
        },
    )
    .unwrap();
    commit(&a, 1);
    commit(&b, 2);
    assert_eq!(a.durable_epoch(), b.durable_epoch());
    a.close().unwrap();
    commit(&b, 3);
    b.close().unwrap();
}

#[test]
fn a_log_on_a_network_file_system_is_refused_naming_it() {
    let db = scratch("nfs");
    // statfs f_type of NFS, as if the directory were an NFS mount; only
    // opens on this thread see it.
    pwal::debug_inject_fs_type(Some(0x6969));
    let opened = Log::open(&db, &opts());
    let recovered = pwal::recover(&db, &pwal::RecoverOptions::default(), |_| true);
    pwal::debug_inject_fs_type(None);
    match opened {
        Err(Error::Invalid(m)) => {
            assert!(m.contains("NFS") && m.contains("local file systems"), "{m}")
        }
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(_) => panic!("a log on NFS was opened"),
    }
    match recovered {
        Err(Error::Invalid(m)) => assert!(m.contains("NFS"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // The refusal left nothing held: a local open works.
    let log = Log::open(&db, &opts()).unwrap();
    commit(&log, 1);
    log.close().unwrap();
}
