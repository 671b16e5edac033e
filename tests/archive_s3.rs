//! Archiving to a real S3-compatible server: `moto_server` (from
//! `pip install 'moto[s3,server]'`, which `.ci/run` installs), started here
//! on 127.0.0.1 with a free port. moto models `If-None-Match: *` on
//! PutObject (412 when the key exists), which the create-only writes rely
//! on; the first scenario checks that it does.
//!
//! One test function runs every scenario in turn: the S3 settings come
//! from the standard `AWS_*` environment variables, which this binary sets
//! once, before any thread reads them.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pwal::archive::{Put, RestoreTarget};
use pwal::{Error, Log, Options, SyncPolicy};

/// The moto server, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let moto = Moto { child, port };
        let end = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "moto_server did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP / SIGCONT the server: a store that stops answering.
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of the child this test started.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

fn opts(url: &str) -> Options {
    Options {
        sync: SyncPolicy::Full,
        segment_bytes: 64 << 10,
        lanes: 2,
        use_env: false,
        archive_url: url.to_string(),
        ..Options::default()
    }
}

fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(90);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn commit_id(log: &Log, id: u64, timeout: Option<Duration>) -> pwal::Result<u64> {
    let owned = frames_of(id);
    let frames: Vec<pwal::Frame<'_>> = owned
        .iter()
        .map(|(p, d, b)| pwal::Frame {
            page_number: *p,
            db_size_if_commit: *d,
            data: b,
        })
        .collect();
    log.commit(
        &pwal::Txn {
            txn_id: id,
            commit_seq: id,
            txn_epoch: (id % 7) as u32,
            frames: &frames,
        },
        timeout,
    )
}

fn assert_restores_exactly(url: &str, into: &Path, acked: &BTreeMap<u64, u64>) {
    let v = pwal::archive::verify(url).unwrap();
    assert!(v.problems.is_empty(), "{url}: {:?}", v.problems);
    pwal::archive::restore(url, into, RestoreTarget::Latest, false).unwrap();
    let r = recover(&pwal::io::RealVfs, into).unwrap();
    let got: Vec<u64> = r.batches.keys().copied().collect();
    let want: Vec<u64> = acked.keys().copied().collect();
    assert_eq!(got, want, "{url}: restored batches differ");
    for (id, e) in acked {
        assert_eq!(r.batches[id].epoch, *e);
        assert_eq!(r.batches[id].frames, frames_of(*id), "batch {id}");
    }
}

#[test]
fn archiving_to_s3_restores_conflicts_and_survives_a_stopped_store() {
    let Some(moto) = Moto::start() else {
        missing_precondition(
            "archive_s3",
            "moto_server not found (pip install 'moto[s3,server]')",
        );
        return;
    };
    // Before any other thread exists: the only writer of the environment.
    std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("PWAL_ARCHIVE_REQUEST_TIMEOUT_MS", "5000");
    ureq::put(&format!("{}/pwal", moto.endpoint()))
        .call()
        .expect("creating the bucket");
    let root = scratch("archive-s3");

    // The store refuses to replace an object (If-None-Match: *).
    let store = pwal::archive::backend::open("s3://pwal/probe").unwrap();
    assert_eq!(store.put_new("x", b"one").unwrap(), Put::Created);
    assert_eq!(store.put_new("x", b"two").unwrap(), Put::Exists);
    assert_eq!(store.get("x").unwrap().unwrap(), b"one");
    assert_eq!(store.get("nothing").unwrap(), None);

    // Archive, then restore what was acknowledged.
    let url = "s3://pwal/a";
    let log = Log::open(root.join("a"), &opts(url)).unwrap();
    let mut acked = BTreeMap::new();
    for id in 1..150 {
        acked.insert(id, commit_id(&log, id, None).unwrap());
        if id % 50 == 0 {
            log.checkpoint(log.durable_epoch()).unwrap();
        }
    }
    log.wait_archived(log.durable_epoch(), None).unwrap();
    log.close().unwrap();
    assert_restores_exactly(url, &root.join("a-restored"), &acked);

    // Two logs on one URL: the second one's conflict is reported.
    let b = Log::open(root.join("b"), &opts(url)).unwrap();
    commit_id(&b, 9000, None).unwrap();
    assert!(eventually(|| b
        .archive_status()
        .unwrap()
        .unwrap()
        .last_error
        .contains("conflict")));
    b.close().unwrap();
    assert_restores_exactly(url, &root.join("a-restored-again"), &acked);

    // The store stops answering (SIGSTOP) and comes back (SIGCONT).
    let url = "s3://pwal/c";
    let lag_cap = 128 << 10;
    let o = Options {
        archive_max_lag_bytes: lag_cap,
        ..opts(url)
    };
    let log = Log::open(root.join("c"), &o).unwrap();
    let mut acked = BTreeMap::new();
    for id in 1..10 {
        acked.insert(id, commit_id(&log, id, None).unwrap());
    }
    log.wait_archived(log.durable_epoch(), None).unwrap();
    let deleted_before = log.stats().segments_deleted + log.stats().segments_recycled;
    moto.signal(libc::SIGSTOP);
    let mut refused = false;
    for id in 10..100_000 {
        match commit_id(&log, id, None) {
            Ok(e) => {
                acked.insert(id, e);
            }
            Err(Error::ArchiveBehind(_)) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
        log.checkpoint(log.durable_epoch()).unwrap();
    }
    assert!(
        refused,
        "commits were never refused while the store was stopped"
    );
    let s = log.stats();
    assert_eq!(
        s.segments_deleted + s.segments_recycled,
        deleted_before,
        "segments left while the store was stopped"
    );
    assert!(eventually(|| log
        .archive_status()
        .unwrap()
        .unwrap()
        .consecutive_failures
        > 0));
    moto.signal(libc::SIGCONT);
    assert!(
        eventually(|| commit_id(&log, 50_000, None)
            .map(|e| acked.insert(50_000, e))
            .is_ok()),
        "commits did not resume: {:?}",
        log.archive_status().unwrap()
    );
    log.wait_archived(log.durable_epoch(), None).unwrap();
    assert_eq!(
        log.archive_status().unwrap().unwrap().consecutive_failures,
        0
    );
    log.close().unwrap();
    assert_restores_exactly(url, &root.join("c-restored"), &acked);

    // Archive-durable commits time out while the store is stopped (still
    // locally durable), and are archived once it is back.
    let url = "s3://pwal/d";
    let o = Options {
        archive_durable: true,
        ..opts(url)
    };
    let log = Log::open(root.join("d"), &o).unwrap();
    let mut acked = BTreeMap::new();
    acked.insert(1, commit_id(&log, 1, None).unwrap());
    moto.signal(libc::SIGSTOP);
    match commit_id(&log, 2, Some(Duration::from_millis(300))) {
        Err(Error::Timeout { epoch, .. }) => {
            assert!(log.durable_epoch() >= epoch, "not locally durable");
            acked.insert(2, epoch);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    moto.signal(libc::SIGCONT);
    log.wait_archived(acked[&2], None).unwrap();
    acked.insert(3, commit_id(&log, 3, None).unwrap());
    log.close().unwrap();
    assert_restores_exactly(url, &root.join("d-restored"), &acked);

    // Archive-durable commits from many writers group: each upload carries
    // what became durable while the ones before it were in flight, so
    // there are far fewer objects than commits.
    let url = "s3://pwal/e";
    let o = Options {
        archive_durable: true,
        ..opts(url)
    };
    let log = Log::open(root.join("e"), &o).unwrap();
    let acked = std::sync::Mutex::new(BTreeMap::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (log, acked) = (&log, &acked);
            s.spawn(move || {
                for n in 0..20 {
                    let id = 1 + n * 8 + t;
                    let e = commit_id(log, id, None).unwrap();
                    acked.lock().unwrap().insert(id, e);
                }
            });
        }
    });
    let elapsed = t0.elapsed();
    let objects = log.archive_status().unwrap().unwrap().objects_archived;
    log.close().unwrap();
    let acked = acked.into_inner().unwrap();
    assert!(
        objects * 2 <= acked.len() as u64,
        "{objects} objects for {} commits",
        acked.len()
    );
    println!(
        "archive_s3: {} archive-durable commits from 8 writers in {objects} objects, {elapsed:?}",
        acked.len()
    );
    assert_restores_exactly(url, &root.join("e-restored"), &acked);
}
