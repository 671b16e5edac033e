//! `pwal restore` and `pwal archive status|verify|ls` against an archive
//! in a `file://` store, written by a log opened through the Rust API.

#[path = "../../tests/c/support.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

fn pwal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pwal"))
        .args(args)
        .output()
        .expect("run pwal")
}

/// Runs pwal and checks its exit status; returns stdout.
fn pwal_ok(args: &[&str], code: i32) -> String {
    let out = pwal(args);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "pwal {args:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Commits one page per transaction (page `id`, byte `id`), each in its
/// own epoch; returns the epochs.
fn commit(log: &pwal::Log, ids: std::ops::Range<u32>) -> Vec<u64> {
    ids.map(|id| {
        let page = vec![id as u8; 100];
        let frames = [pwal::Frame {
            page_number: id,
            db_size_if_commit: id,
            data: &page,
        }];
        log.commit(
            &pwal::Txn {
                txn_id: id.into(),
                commit_seq: id.into(),
                txn_epoch: 0,
                frames: &frames,
            },
            None,
        )
        .unwrap()
    })
    .collect()
}

/// The page numbers the log of `db` recovers.
fn pages(db: &Path) -> Vec<u32> {
    let mut v = Vec::new();
    pwal::recover(db, &Default::default(), |r: &pwal::Record<'_>| {
        assert_eq!(r.data, vec![r.page_number as u8; 100]);
        v.push(r.page_number);
        true
    })
    .unwrap();
    v
}

#[test]
fn restore_status_verify_and_ls_of_a_file_archive() {
    let root = support::scratch("cli-archive");
    let store = root.join("store");
    let url = format!("file://{}", store.display());
    let db = root.join("app.db");
    let opts = pwal::Options {
        use_env: false,
        archive_url: url.clone(),
        ..pwal::Options::default()
    };
    let mut epochs = Vec::new();
    let mut mid_time = String::new();
    for round in 0..3 {
        let log = pwal::Log::open(&db, &opts).unwrap();
        epochs.extend(commit(&log, round * 10 + 1..round * 10 + 11));
        log.wait_archived(log.durable_epoch(), None).unwrap();
        log.checkpoint(log.durable_epoch()).unwrap();
        log.close().unwrap();
        if round == 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            mid_time = pwal::archive::time::format_rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64,
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    // Close archives what it wrote last (the epoch carrying the mark).
    let listed = pwal::archive::verify(&url).unwrap();
    let last = listed.objects.last().unwrap().last_epoch;
    assert!(last >= epochs[29]);
    let status = pwal_ok(&["archive", "status", s(&db)], 0);
    assert!(
        status.contains(&format!("archived epoch:   {last}")),
        "{status}"
    );
    assert!(status.contains("lag:              0 epochs"), "{status}");
    assert!(status.contains("matches"), "{status}");
    let ls = pwal_ok(&["archive", "ls", &url], 0);
    assert_eq!(ls.lines().count(), 1 + listed.objects.len(), "{ls}");
    let verify = pwal_ok(&["archive", "verify", &url], 0);
    let n = listed.objects.len();
    assert!(verify.contains(&format!("clean: {n} objects")), "{verify}");

    let all = root.join("all.db");
    pwal_ok(&["restore", &url, s(&all)], 0);
    assert_eq!(pages(&all), (1..31).collect::<Vec<_>>());
    // Refused over an existing log, replaced with --force.
    pwal_ok(&["restore", &url, s(&all)], 2);
    pwal_ok(&["restore", &url, s(&all), "--force"], 0);

    let to_epoch = root.join("to-epoch.db");
    let e = epochs[14].to_string();
    pwal_ok(&["restore", &url, s(&to_epoch), "--to-epoch", &e], 0);
    assert_eq!(pages(&to_epoch), (1..16).collect::<Vec<_>>());

    let to_time = root.join("to-time.db");
    pwal_ok(&["restore", &url, s(&to_time), "--to-time", &mid_time], 0);
    assert_eq!(pages(&to_time), (1..11).collect::<Vec<_>>());
    pwal_ok(
        &[
            "restore",
            &url,
            s(&root.join("x.db")),
            "--to-time",
            "yesterday",
        ],
        2,
    );

    // A damaged object: verify exits 1, restore refuses (exit 1) and
    // writes nothing.
    let mut objects: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    objects.sort();
    let mut b = std::fs::read(&objects[1]).unwrap();
    b[60] ^= 0xff;
    std::fs::write(&objects[1], &b).unwrap();
    let verify = pwal_ok(&["archive", "verify", &url], 1);
    assert!(verify.contains("checksum"), "{verify}");
    let none = root.join("none.db");
    pwal_ok(&["restore", &url, s(&none)], 1);
    assert!(!pwal::log_dir(&none).exists());
    pwal_ok(&["archive", "verify", "ftp://x"], 2);
}
