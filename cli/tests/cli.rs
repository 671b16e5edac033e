//! The `pwal` command against logs written through the C ABI by the C
//! harness (`tests/c/harness.c`, case `write_log`): a clean log, a torn
//! tail, a damaged log and repair, a log whose writer is running, and the
//! benchmark's output. The oracle for what a log holds is `pwal::recover`
//! (run when no writer holds the log).

#[path = "../../tests/c/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

fn harness() -> &'static PathBuf {
    static HARNESS: OnceLock<PathBuf> = OnceLock::new();
    HARNESS.get_or_init(|| support::build_harness(&support::scratch("cli-harness-build")))
}

/// What the harness says it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    txns: u64,
    frames: u64,
    last_epoch: u64,
}

/// Parses "...: txns N frames F last_epoch E [pid P]".
fn parse_written(line: &str) -> (Written, Option<u32>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    let w = Written {
        txns: num("txns").unwrap_or_else(|| panic!("no txns in {line:?}")),
        frames: num("frames").unwrap_or_else(|| panic!("no frames in {line:?}")),
        last_epoch: num("last_epoch").unwrap_or_else(|| panic!("no last_epoch in {line:?}")),
    };
    (w, num("pid").map(|p| p as u32))
}

fn harness_cmd(dir: &Path, txns: u64, end: &str, segment_bytes: Option<u64>) -> Command {
    let mut cmd = Command::new(harness());
    cmd.arg("write_log").arg(dir).arg(txns.to_string()).arg(end);
    if let Some(b) = segment_bytes {
        cmd.arg(b.to_string());
    }
    cmd
}

/// Writes a log of `txns` transactions in `dir` (the database is
/// `dir/test.db`) and lets the harness close it or exit without closing.
fn write_log(dir: &Path, txns: u64, end: &str, segment_bytes: Option<u64>) -> Written {
    let out = support::run(
        harness_cmd(dir, txns, end, segment_bytes),
        "harness write_log",
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("write_log:"))
        .unwrap_or_else(|| panic!("no write_log line in {out:?}"));
    let (w, _) = parse_written(line);
    assert_eq!(w.txns, txns);
    w
}

/// A harness process holding the log open.
struct Writer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    written: Written,
}

impl Writer {
    fn start(dir: &Path, txns: u64, end: &str) -> Writer {
        let mut child = harness_cmd(dir, txns, end, None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the harness");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let (written, pid) = parse_written(&line);
        let pid = pid.expect("the harness prints its pid");
        assert_eq!(pid, child.id());
        Writer {
            child,
            stdin,
            stdout,
            pid,
            written,
        }
    }

    /// Sends a line and reads the answer.
    fn say(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer
    }

    /// Ends stdin (the harness closes the log) and returns what it printed.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "harness: {status}: {rest}");
        rest
    }
}

fn pwal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pwal"))
        .args(args)
        .output()
        .expect("run pwal")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs pwal and checks its exit status; returns stdout.
fn pwal_ok(args: &[&str], code: i32) -> String {
    let out = pwal(args);
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

/// Every file under `dir`, by relative path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A frame as dump and the oracle describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    epoch: u64,
    txn_id: u64,
    commit_seq: u64,
    txn_epoch: u64,
    file_id: u64,
    page_number: u64,
    db_size_if_commit: u64,
    len: u64,
    crc32c: u64,
}

/// What recovery returns, as rows, with its report.
fn recovered(db: &Path, durable_prefix: bool) -> (Vec<Row>, pwal::RecoveryReport) {
    let mut rows = Vec::new();
    let report = pwal::recover(db, &pwal::RecoverOptions { durable_prefix }, |r| {
        rows.push(Row {
            epoch: r.epoch,
            txn_id: r.txn_id,
            commit_seq: r.commit_seq,
            txn_epoch: r.txn_epoch as u64,
            file_id: r.file_id as u64,
            page_number: r.page_number as u64,
            db_size_if_commit: r.db_size_if_commit as u64,
            len: r.data.len() as u64,
            crc32c: crc32c::crc32c(r.data) as u64,
        });
        true
    })
    .expect("recover");
    (rows, report)
}

fn row_of(v: &Value) -> Row {
    let f = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("no number {k} in {v}"))
    };
    Row {
        epoch: f("epoch"),
        txn_id: f("txn_id"),
        commit_seq: f("commit_seq"),
        txn_epoch: f("txn_epoch"),
        file_id: f("file_id"),
        page_number: f("page_number"),
        db_size_if_commit: f("db_size_if_commit"),
        len: f("len"),
        crc32c: f("crc32c"),
    }
}

/// `pwal dump --json` (plus `extra`) as rows, every line parsed.
fn dump_rows(db: &Path, extra: &[&str], code: i32) -> Vec<Row> {
    let mut args = vec!["dump", s(db), "--json"];
    args.extend_from_slice(extra);
    pwal_ok(&args, code)
        .lines()
        .map(|l| row_of(&serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))))
        .collect()
}

fn info_json(db: &Path) -> Value {
    serde_json::from_str(&pwal_ok(&["info", s(db), "--json"], 0)).unwrap()
}

/// The segment files of the log of `db`, ascending.
fn segments(db: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(pwal::log_dir(db))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pwseg"))
        .collect();
    v.sort();
    v
}

/// The first epoch a segment header names (FORMAT.md: offset 24).
fn header_first_epoch(seg: &Path) -> u64 {
    let b = std::fs::read(seg).unwrap();
    u64::from_le_bytes(b[24..32].try_into().unwrap())
}

/// Changes the bytes of `file` from `offset` on; a segment that started
/// empty (no spare was ready) ends at its last frame, so the file is first
/// extended with zeros, as a preallocated one would read, to 4 KiB past
/// `offset`.
fn patch(file: &Path, offset: u64, f: impl FnOnce(&mut [u8])) {
    let mut b = std::fs::read(file).unwrap();
    let want = offset as usize + 4096;
    if b.len() < want {
        b.resize(want, 0);
    }
    f(&mut b[offset as usize..]);
    std::fs::write(file, b).unwrap();
}

#[test]
fn a_clean_log_reads_back_whole_and_nothing_changes() {
    let dir = support::scratch("cli-clean");
    let db = dir.join("test.db");
    let w = write_log(&dir, 40, "close", None);
    let before = snapshot(&dir);
    let (rows, report) = recovered(&db, false);
    assert_eq!(rows.len() as u64, w.frames);

    let info = info_json(&db);
    assert_eq!(info["writer"]["held"], false);
    assert_eq!(info["damaged"], false);
    // The close wrote one more (empty) frame that vouches for the last
    // commit's epoch.
    assert_eq!(info["last_epoch"], w.last_epoch + 1);
    assert_eq!(info["first_epoch"], 1);
    assert_eq!(info["transactions"], 40);
    assert_eq!(info["records"], w.frames);
    assert_eq!(info["bytes"], report.bytes);
    assert_eq!(info["torn_tail_bytes"], 0);
    assert_eq!(info["checkpoint_epoch"], 0);
    let segs = info["segments"].as_array().unwrap();
    assert_eq!(segs.len(), segments(&db).len());
    assert_eq!(segs[0]["first_epoch"], 1);
    assert_eq!(segs.last().unwrap()["last_epoch"], w.last_epoch + 1);
    let text = pwal_ok(&["info", s(&db)], 0);
    assert!(text.contains("none (no process holds LOCK)"), "{text}");
    assert!(
        text.contains(&format!("epochs       1 to {}", w.last_epoch + 1)),
        "{text}"
    );

    let v = pwal_ok(&["verify", s(&db)], 0);
    assert!(
        v.starts_with(&format!("ok: {}", pwal::log_dir(&db).display())),
        "{v}"
    );
    assert!(
        v.contains(&format!("epochs 1 to {} valid", w.last_epoch + 1)),
        "{v}"
    );
    assert!(!v.contains("torn tail"), "{v}");
    // The log directory itself is accepted as PATH.
    pwal_ok(&["verify", s(&pwal::log_dir(&db))], 0);

    // Every frame, in recovery order, with its checksum.
    assert_eq!(dump_rows(&db, &[], 0), rows);
    let lines = pwal_ok(&["dump", s(&db)], 0);
    assert_eq!(lines.lines().count() as u64, w.frames);
    assert!(lines.starts_with("epoch=1 txn=1 seq=1 "), "{lines}");
    // --data hex: the bytes, whose checksum is the one printed.
    for line in pwal_ok(&["dump", s(&db), "--json", "--data", "hex"], 0).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let hex = v["data"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(bytes.len() as u64, v["len"].as_u64().unwrap());
        assert_eq!(crc32c::crc32c(&bytes) as u64, v["crc32c"].as_u64().unwrap());
    }
    // The filters select exactly what they name.
    let mid = w.last_epoch / 2;
    let want: Vec<Row> = rows
        .iter()
        .filter(|r| r.epoch >= mid && r.epoch <= mid + 3)
        .cloned()
        .collect();
    assert!(!want.is_empty());
    let (from, to) = (mid.to_string(), (mid + 3).to_string());
    assert_eq!(
        dump_rows(&db, &["--from-epoch", &from, "--to-epoch", &to], 0),
        want
    );
    let want: Vec<Row> = rows.iter().filter(|r| r.txn_id == 7).cloned().collect();
    assert!(!want.is_empty());
    assert_eq!(dump_rows(&db, &["--txn", "7"], 0), want);
    let page = rows[3].page_number;
    let want: Vec<Row> = rows
        .iter()
        .filter(|r| r.page_number == page)
        .cloned()
        .collect();
    assert_eq!(dump_rows(&db, &["--page", &page.to_string()], 0), want);

    let dry = pwal_ok(&["repair", s(&db), "--dry-run"], 0);
    assert!(dry.contains("nothing to cut"), "{dry}");
    let done = pwal_ok(&["repair", s(&db)], 0);
    assert!(done.contains("nothing to cut"), "{done}");
    assert!(snapshot(&dir) == before, "a command changed the log");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_reported_and_is_not_damage() {
    let dir = support::scratch("cli-torn");
    let db = dir.join("test.db");
    // Exits without closing the log, as a crash would.
    let w = write_log(&dir, 40, "exit", None);
    let segs = segments(&db);
    assert_eq!(segs.len(), 1, "one segment expected: {segs:?}");
    let seg = &segs[0];
    let (all, report) = recovered(&db, false);
    let end = 4096 + report.bytes;

    // Garbage after the last frame: a write torn before it was whole.
    patch(seg, end, |b| b[..100].fill(0xab));
    let v = pwal_ok(&["verify", s(&db)], 0);
    assert!(
        v.contains(&format!(
            "at {} offset {end}, epoch {}",
            seg.display(),
            w.last_epoch + 1
        )),
        "{v}"
    );
    assert!(v.contains("torn tail: "), "{v}");
    assert_eq!(dump_rows(&db, &[], 0), all);

    // The last frame garbled: it and only it is dropped.
    patch(seg, end, |b| b[..100].fill(0));
    patch(seg, end - 16, |b| b[..16].fill(0xcd));
    let (rows, report) = recovered(&db, false);
    assert!(report.torn_tail_bytes > 0);
    let last_frame = 4096 + report.bytes;
    let info = info_json(&db);
    assert_eq!(info["damaged"], false);
    assert_eq!(info["last_epoch"], w.last_epoch - 1);
    assert_eq!(info["torn_tail_bytes"], report.torn_tail_bytes);
    assert_eq!(info["first_damage"]["offset"], last_frame);
    assert_eq!(info["first_damage"]["epoch"], w.last_epoch);
    assert_eq!(info["first_damage"]["file"], s(seg));
    let v = pwal_ok(&["verify", s(&db)], 0);
    assert!(
        v.contains(&format!(
            "torn tail: {} bytes at {} offset {last_frame}, epoch {}",
            report.torn_tail_bytes,
            seg.display(),
            w.last_epoch
        )),
        "{v}"
    );
    let dumped = dump_rows(&db, &[], 0);
    assert_eq!(dumped, rows);
    assert!(dumped.iter().all(|r| r.txn_id != 40) && dumped.len() < all.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a clean close nothing was torn: rot in the last commit's epoch is
/// damage (`verify` exits 1), not a torn tail.
#[test]
fn rot_in_the_last_epoch_of_a_closed_log_is_damage() {
    let dir = support::scratch("cli-closed-rot");
    let db = dir.join("test.db");
    let w = write_log(&dir, 40, "close", None);
    let segs = segments(&db);
    assert_eq!(segs.len(), 1, "one segment expected: {segs:?}");
    let (_, report) = recovered(&db, false);
    // The close's frame (an empty epoch, a few dozen bytes) ends the log;
    // 100 bytes before its end lies inside the last commit's frame.
    let end = 4096 + report.bytes;
    patch(&segs[0], end - 100, |b| {
        b[..4].iter_mut().for_each(|x| *x ^= 0x5a)
    });
    let v = pwal_ok(&["verify", s(&db)], 1);
    assert!(v.contains(&format!("epoch {}", w.last_epoch)), "{v}");
    assert!(!v.contains("torn tail: "), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_log_is_found_then_repaired_as_the_dry_run_said() {
    let dir = support::scratch("cli-damaged");
    let db = dir.join("test.db");
    // Small segments: several, each holding a few epochs.
    write_log(&dir, 40, "close", Some(64 << 10));
    let segs = segments(&db);
    assert!(segs.len() >= 3, "{segs:?}");
    // The first frame of the second segment: later frames of that segment
    // record its epoch as synced, so this is corruption, not a torn tail.
    let damaged = segs[1].clone();
    let epoch = header_first_epoch(&damaged);
    patch(&damaged, 4096 + 200, |b| b[0] ^= 0x40);
    let (prefix, want) = recovered(&db, true);
    assert_eq!(want.last_epoch, epoch - 1);

    let out = pwal(&["verify", s(&db)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let v = text(&out.stdout);
    assert!(v.starts_with("DAMAGED: "), "{v}");
    assert!(
        v.contains(&format!(
            "damage at {} offset 4096, epoch {epoch}",
            damaged.display()
        )),
        "{v}"
    );
    assert!(
        v.contains(&format!(
            "keeps epochs 1 to {} ({} epochs; {} transactions, {} frames",
            epoch - 1,
            epoch - 1,
            want.transactions,
            want.records
        )),
        "{v}"
    );
    let info = info_json(&db);
    assert_eq!(info["damaged"], true);
    assert_eq!(info["prefix_end"]["file"], s(&damaged));
    assert_eq!(info["prefix_end"]["offset"], 4096);
    assert_eq!(info["prefix_end"]["epoch"], epoch);
    let out = pwal(&["dump", s(&db), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("damaged"),
        "{}",
        text(&out.stderr)
    );
    let rows: Vec<Row> = text(&out.stdout)
        .lines()
        .map(|l| row_of(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(rows, prefix);

    // The dry run changes nothing and names what repair then does.
    let before = snapshot(&dir);
    let dry = pwal_ok(&["repair", s(&db), "--dry-run"], 0);
    assert!(snapshot(&dir) == before, "the dry run changed the log");
    let later: Vec<String> = segs[2..]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        dry.contains(&format!(
            "would copy {} whole into {}/damaged/, then write zeros over it from offset 4096",
            damaged.display(),
            pwal::log_dir(&db).display()
        )),
        "{dry}"
    );
    assert!(dry.contains(&format!(": {}\n", later.join(", "))), "{dry}");
    let done = pwal_ok(&["repair", s(&db)], 0);
    assert!(
        done.contains(&format!("cut {} at offset 4096", damaged.display())),
        "{done}"
    );
    let log = pwal::log_dir(&db);
    let copied = damaged.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        done.contains(&format!(
            "copied into {}/damaged/: {copied}\n",
            log.display()
        )),
        "{done}"
    );
    assert!(
        done.contains(&format!(
            "moved into {}/damaged/: {}\n",
            log.display(),
            later.join(", ")
        )),
        "{done}"
    );
    assert!(log.join("damaged").join(&copied).exists());
    for name in &later {
        assert!(!pwal::log_dir(&db).join(name).exists());
        assert!(pwal::log_dir(&db).join("damaged").join(name).exists());
    }

    let v = pwal_ok(&["verify", s(&db)], 0);
    assert!(
        v.contains(&format!("epochs 1 to {} valid", epoch - 1)),
        "{v}"
    );
    let (after, _) = recovered(&db, false);
    assert_eq!(after, prefix);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_running_writer_is_named_and_left_undisturbed() {
    let dir = support::scratch("cli-live");
    let db = dir.join("test.db");
    let mut writer = Writer::start(&dir, 40, "hold");
    let lock = pwal::log_dir(&db).join("LOCK");
    // The writer's own last activity: its preallocation thread zero-fills
    // one spare segment (to the harness's 1 MiB), then waits.
    let spare_ready = || {
        std::fs::read_dir(pwal::log_dir(&db)).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with("spare-")
                && e.metadata().unwrap().len() == 1 << 20
        })
    };
    let t0 = std::time::Instant::now();
    while !spare_ready() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "no spare segment"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let before = snapshot(&dir);

    let info = info_json(&db);
    assert_eq!(info["writer"]["held"], true);
    assert_eq!(info["writer"]["pid"], writer.pid);
    assert_eq!(info["damaged"], false);
    assert_eq!(info["last_epoch"], writer.written.last_epoch);
    assert_eq!(info["records"], writer.written.frames);
    let text = pwal_ok(&["info", s(&db)], 0);
    assert!(text.contains(&format!("pid {} ", writer.pid)), "{text}");
    let v = pwal_ok(&["verify", s(&db)], 0);
    assert!(v.starts_with("ok: "), "{v}");
    assert!(v.contains(&format!("writer: pid {} ", writer.pid)), "{v}");
    let rows = dump_rows(&db, &[], 0);
    assert_eq!(rows.len() as u64, writer.written.frames);
    let dry = pwal_ok(&["repair", s(&db), "--dry-run"], 0);
    assert!(dry.contains(&format!("pid {} ", writer.pid)), "{dry}");
    // Repair itself takes the lock, and is refused.
    let out = pwal(&["repair", s(&db)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        snapshot(&dir) == before,
        "a command changed the writer's files"
    );
    // The lock is still the writer's.
    let f = std::fs::File::open(&lock).unwrap();
    assert!(matches!(
        f.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    drop(f);
    // And it goes on committing.
    let (more, _) = parse_written(&writer.say("more 5"));
    assert_eq!(more.txns, 45);
    writer.finish();

    let (rows, report) = recovered(&db, false);
    assert_eq!(report.transactions, 45);
    assert_eq!(rows.len() as u64, more.frames);
    assert_eq!(info_json(&db)["writer"]["held"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_writer_committing_while_it_is_read_never_reads_as_damage() {
    let dir = support::scratch("cli-busy");
    let db = dir.join("test.db");
    let writer = Writer::start(&dir, 10, "busy");
    for _ in 0..3 {
        let v = pwal_ok(&["verify", s(&db)], 0);
        assert!(v.starts_with("ok: "), "{v}");
        let rows = dump_rows(&db, &[], 0);
        assert!(rows.len() as u64 >= writer.written.frames);
        assert!(rows.windows(2).all(|w| w[0].epoch <= w[1].epoch));
    }
    let pid = writer.pid;
    let (done, _) = parse_written(&writer.finish());
    assert!(done.txns >= 10, "{pid}");
    assert_eq!(dump_rows(&db, &[], 0).len() as u64, done.frames);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_prints_every_measurement_and_cleans_up() {
    let dir = support::scratch("cli-bench");
    let out = pwal_ok(&["bench", s(&dir), "--seconds", "0.05"], 0);
    let rate = |prefix: &str, unit: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {out}"));
        let n = line
            .strip_suffix(unit)
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("{line:?} does not end in {unit:?}"));
        n.parse().unwrap_or_else(|e| panic!("{line:?}: {n:?}: {e}"))
    };
    assert!(rate("disk: 4 KiB overwrite + fdatasync: ", " commits/s") > 0.0);
    assert!(rate("disk: 1 MiB append + fdatasync: ", " MB/s") > 0.0);
    for w in ["1 writer: ", "4 writers: ", "16 writers: "] {
        assert!(rate(&format!("pwal: {w}"), " commits/s") > 0.0, "{out}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "bench left files behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_and_missing_logs_exit_2() {
    let dir = support::scratch("cli-usage");
    let missing = dir.join("nothing.db");
    for cmd in ["info", "verify", "dump", "repair"] {
        let out = pwal(&[cmd, s(&missing)]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            text(&out.stderr).contains("no log at"),
            "{cmd}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(pwal(&["verify"]).status.code(), Some(2));
    assert_eq!(pwal(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        pwal(&["bench", s(&dir), "--seconds", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        pwal(&["dump", s(&missing), "--data", "base64"])
            .status
            .code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs pwal with its stdout a pipe whose reader is already closed: every
/// write to it fails with EPIPE (or, were SIGPIPE not ignored, kills pwal).
fn pwal_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_pwal"))
        .args(args)
        .stdout(writer)
        .output()
        .expect("run pwal")
}

/// Runs pwal with a closed stdout and checks that it exits `code` (not
/// killed by a signal, no panic) and says nothing on stderr.
fn pwal_closed_ok(args: &[&str], code: i32) {
    let out = pwal_closed_stdout(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "pwal {args:?} with a closed stdout: {}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "pwal {args:?} with a closed stdout\nstderr:\n{}",
        text(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_ends_the_output_not_the_command() {
    let dir = support::scratch("cli-epipe");
    let db = dir.join("test.db");
    write_log(&dir, 40, "close", Some(64 << 10));
    let before = snapshot(&dir);
    for (args, code) in [
        (&["info", s(&db)][..], 0),
        (&["info", s(&db), "--json"], 0),
        (&["verify", s(&db)], 0),
        (&["dump", s(&db)], 0),
        (&["dump", s(&db), "--json", "--data", "hex"], 0),
        (&["repair", s(&db), "--dry-run"], 0),
        (&["repair", s(&db)], 0),
        (&["--help"], 0),
        (&["info", "--help"], 0),
    ] {
        pwal_closed_ok(args, code);
    }
    assert!(snapshot(&dir) == before, "a command changed the log");
    // Any other error writing stdout is an I/O error, named.
    let full = Command::new(env!("CARGO_BIN_EXE_pwal"))
        .args(["info", s(&db)])
        .stdout(std::fs::File::create("/dev/full").expect("/dev/full"))
        .output()
        .expect("run pwal");
    assert_eq!(full.status.code(), Some(2), "{}", text(&full.stderr));
    assert!(
        text(&full.stderr).contains("writing to standard output: No space left"),
        "{}",
        text(&full.stderr)
    );
    let bench = support::scratch("cli-epipe-bench");
    pwal_closed_ok(&["bench", s(&bench), "--seconds", "0.05"], 0);
    assert_eq!(
        std::fs::read_dir(&bench).unwrap().count(),
        0,
        "bench left files behind"
    );

    // A damaged log: verify's verdict is its status still, and repair does
    // all its work, its copy and moves into damaged/ included.
    let segs = segments(&db);
    assert!(segs.len() >= 3, "{segs:?}");
    let damaged = segs[1].clone();
    let epoch = header_first_epoch(&damaged);
    patch(&damaged, 4096 + 200, |b| b[0] ^= 0x40);
    let (prefix, _) = recovered(&db, true);
    let before = snapshot(&dir);
    pwal_closed_ok(&["verify", s(&db)], 1);
    pwal_closed_ok(&["repair", s(&db), "--dry-run"], 0);
    assert!(snapshot(&dir) == before, "the dry run changed the log");
    pwal_closed_ok(&["repair", s(&db)], 0);
    let v = pwal_ok(&["verify", s(&db)], 0);
    assert!(
        v.contains(&format!("epochs 1 to {} valid", epoch - 1)),
        "{v}"
    );
    let (after, _) = recovered(&db, false);
    assert_eq!(after, prefix);
    let log = pwal::log_dir(&db);
    let rel = |p: &Path| p.strip_prefix(&dir).unwrap().to_path_buf();
    for seg in &segs[1..] {
        let kept = log.join("damaged").join(seg.file_name().unwrap());
        assert!(
            std::fs::read(&kept).ok().as_ref() == before.get(&rel(seg)),
            "damaged/ does not hold {} as it was",
            seg.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bench);
}

/// The frames of transaction `id` in
/// `dump_beside_a_writer_that_checkpoints_reads_a_healthy_log_every_time`.
fn frames_of(id: u64) -> u64 {
    1 + id % 3
}

/// `pwal dump` (and `verify`, `info`) in a loop beside a writer that
/// commits and checkpoints (removing and recycling segments under their
/// scans): every one reads a healthy log, and every dump exits 0 and prints each transaction of the log after the mark once,
/// whole, in order, without a gap unless stderr names the epochs a
/// checkpoint took out between two reads.
#[test]
fn dump_beside_a_writer_that_checkpoints_reads_a_healthy_log_every_time() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = support::scratch("cli-dump-live");
    let db = dir.join("test.db");
    let opts = pwal::Options {
        // Small segments: checkpoints remove and recycle them all the time.
        segment_bytes: 64 << 10,
        lanes: 1,
        sync: pwal::SyncPolicy::Off,
        // Short epochs: many segments a second.
        max_flush_delay: std::time::Duration::from_micros(200),
        use_env: false,
        ..pwal::Options::default()
    };
    let log = pwal::Log::open(&db, &opts).expect("open");
    let page = vec![0x5au8; 4096];
    let stop = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    let checkpoints = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut id = 0u64;
            let mut epochs = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let frames: Vec<pwal::Frame<'_>> = (0..frames_of(id))
                    .map(|k| pwal::Frame {
                        page_number: 1 + k as u32,
                        db_size_if_commit: 0,
                        data: &page,
                    })
                    .collect();
                let txn = pwal::Txn {
                    txn_id: id,
                    commit_seq: id,
                    txn_epoch: 0,
                    frames: &frames,
                };
                epochs.push(log.commit(&txn, None).expect("commit"));
                committed.store(id, Ordering::Relaxed);
                // The last 200 transactions or more stay after the mark:
                // several segments.
                if id.is_multiple_of(8) && id > 200 {
                    let through = epochs[(id - 200) as usize - 1];
                    if log.durable_epoch() >= through {
                        log.checkpoint(through).expect("checkpoint");
                        checkpoints.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        // Stops the writer when the dumps end, by a failed assertion too
        // (the scope joins it before the panic goes on).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stopping = StopOnDrop(&stop);
        while committed.load(Ordering::Relaxed) < 300 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for run in 0..100 {
            // info and verify, which read as dump does, too.
            let v = pwal_ok(&["verify", s(&db)], 0);
            assert!(v.starts_with("ok: "), "verify {run}: {v}");
            let info: Value =
                serde_json::from_str(&pwal_ok(&["info", s(&db), "--json"], 0)).unwrap();
            assert!(
                info["damaged"] == false && info["error"].is_null(),
                "info {run}: {info}"
            );
            let out = pwal(&["dump", s(&db), "--json", "--data", "hex"]);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(
                out.status.code(),
                Some(0),
                "dump {run}\nstderr:\n{stderr}\nstdout:\n{stdout}"
            );
            assert!(
                stderr.lines().all(|l| [
                    "pwal: torn tail of ",
                    "pwal: writer pid ",
                    "pwal: a checkpoint moved the mark "
                ]
                .iter()
                .any(|p| l.starts_with(p))),
                "dump {run}: {stderr}"
            );
            let gap_named = stderr.contains("pwal: a checkpoint moved the mark ");
            let rows: Vec<Row> = stdout
                .lines()
                .map(|l| row_of(&serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))))
                .collect();
            assert!(!rows.is_empty(), "dump {run}: {stderr}");
            // Each transaction once, whole, in order.
            let mut k = 0;
            while k < rows.len() {
                let id = rows[k].txn_id;
                let n = frames_of(id) as usize;
                let txn = &rows[k..(k + n).min(rows.len())];
                assert!(
                    txn.len() == n
                        && txn.iter().enumerate().all(|(i, r)| {
                            r.txn_id == id
                                && r.page_number == 1 + i as u64
                                && r.epoch == txn[0].epoch
                        }),
                    "dump {run}: transaction {id} is not whole at row {k}: {txn:?}"
                );
                assert!(
                    txn.iter()
                        .all(|r| r.len == 4096 && r.crc32c == crc32c::crc32c(&page) as u64),
                    "dump {run}: {txn:?}"
                );
                if k > 0 {
                    let before = rows[k - 1].txn_id;
                    assert!(
                        before + 1 == id || (gap_named && before < id),
                        "dump {run}: transaction {id} after {before}\nstderr:\n{stderr}"
                    );
                }
                k += n;
            }
        }
        drop(stopping);
        writer.join().expect("writer");
    });
    assert!(checkpoints.load(Ordering::Relaxed) > 0);
    log.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `du -s` says `dir` takes, in bytes: allocated (`-B1`) or apparent
/// (`-b`).
fn du(dir: &Path, flag: &str) -> u64 {
    let out = support::run(
        {
            let mut c = Command::new("du");
            c.arg("-s").arg(flag).arg(dir);
            c
        },
        "du",
    );
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du {flag} {}: {out:?}", dir.display()))
}

#[test]
fn info_shows_what_the_log_directory_takes_on_disk() {
    let dir = support::scratch("cli-disk");
    let db = dir.join("test.db");
    write_log(&dir, 40, "close", Some(64 << 10));
    // A repaired log: segments, a spare, LOCK, and damaged/ with copies.
    let segs = segments(&db);
    assert!(segs.len() >= 3, "{segs:?}");
    patch(&segs[1], 4096 + 200, |b| b[0] ^= 0x40);
    pwal_ok(&["repair", s(&db)], 0);
    let log = pwal::log_dir(&db);
    let damaged = log.join("damaged");
    assert!(du(&damaged, "-B1") > 0);

    let (allocated, apparent) = (du(&log, "-B1"), du(&log, "-b"));
    let files = snapshot(&log).len() as u64;
    let info = info_json(&db);
    assert_eq!(info["disk"]["allocated_bytes"], allocated, "{info}");
    assert_eq!(info["disk"]["apparent_bytes"], apparent, "{info}");
    assert_eq!(info["disk"]["files"], files, "{info}");
    // Everything in the directory: more than the segments and spares alone.
    let listed: u64 = ["segments", "spares", "damaged_dir"]
        .iter()
        .flat_map(|k| info[k].as_array().unwrap())
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    assert!(apparent > listed, "{apparent} {listed}");
    let text = pwal_ok(&["info", s(&db)], 0);
    assert!(
        text.contains(&format!(
            "\ndisk         {allocated} bytes on disk (allocated), {apparent} bytes apparent, in \
             {files} files\n"
        )),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
