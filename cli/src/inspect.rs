//! `info`, `verify`, `dump` and `repair`: what `pwal::inspect` reads of a
//! log, put for a person (or, with `--json`, for a program).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pwal::inspect::{
    inspect as inspect_log, list_log, InspectOptions, Inspection, LogListing, PrefixEnd,
    SegmentHeaderState,
};
use pwal::{Error, Record, RecoveryReport};
use serde_json::{json, Value};

use crate::holder::{lock_holder, Holder};
use crate::out::{out, outln, Out};
use crate::{Outcome, CLEAN, DAMAGED};

/// How many times a command reads a log its writer holds before it
/// reports what the reads found (damage, or an I/O error) as it is.
const READS: usize = 8;

/// The log's files and who holds the log, or an error naming the directory
/// when there is none. While a writer holds the log, a listing that fails
/// (a segment a checkpoint removed between the directory's listing and the
/// read of its header) is made again, up to [`READS`] times.
fn existing_log(db: &Path) -> Result<(LogListing, Holder), String> {
    let holder = lock_holder(&pwal::log_dir(db));
    let mut listed = list_log(db);
    for _ in 1..READS {
        if listed.is_ok() || !holder.is_held() {
            break;
        }
        listed = list_log(db);
    }
    let listing = listed.map_err(|e| e.to_string())?;
    if !listing.exists {
        return Err(format!(
            "no log at {} (PATH is the database path; its log is the directory PATH-pwal)",
            listing.dir.display()
        ));
    }
    Ok((listing, holder))
}

/// A progress bar on stderr for a scan of `total` bytes, when `show`; the
/// scan adds the bytes it reads to `counter`.
struct Progress {
    counter: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(what: &str, total: u64, show: bool) -> Progress {
        let counter = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = show.then(|| {
            let bar = ProgressBar::new(total.max(1));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            let (counter, done) = (counter.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    bar.set_position(counter.load(Ordering::Relaxed).min(total));
                    std::thread::park_timeout(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        Progress {
            counter,
            done,
            ticker,
        }
    }

    fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.ticker.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One read of the log: what `pwal::inspect` returned, and its report.
struct Seen {
    result: Result<Inspection, Error>,
    report: RecoveryReport,
    /// A writer held the log and two reads in a row did not agree on the
    /// damage (the writer changed the log under them).
    unstable: bool,
}

/// Where a read found damage (or failed), to compare two reads; `None` for
/// a clean read.
fn damage_signature(result: &Result<Inspection, Error>, report: &RecoveryReport) -> Option<String> {
    match result {
        Err(e) => Some(e.to_string()),
        Ok(i) if is_damaged(i, report) => Some(format!("{:?}", i.prefix_end)),
        Ok(_) => None,
    }
}

/// Corruption (the durable prefix ends early and skips segments), or a
/// torn tail followed by later segment files (which `open` refuses).
fn is_damaged(i: &Inspection, report: &RecoveryReport) -> bool {
    report.skipped_segments > 0 || i.discarded_later > 0
}

/// Reads the log (durable-prefix mode, replay counted but not delivered
/// anywhere). While a writer holds the log, damage or an I/O error (a
/// segment a checkpoint removed) is read again, and reported only when two
/// reads in a row agree: what a writer has finished writing stays as it
/// is, so real damage is seen at the same place again.
fn read_log(db: &Path, listing: &LogListing, holder: &Holder) -> Seen {
    let mut previous: Option<String> = None;
    let mut seen = None;
    for _ in 0..READS {
        let progress = Progress::start(
            "reading",
            listing.segment_bytes(),
            std::io::stderr().is_terminal(),
        );
        let opts = InspectOptions {
            durable_prefix: true,
            bytes_read: Some(progress.counter.clone()),
        };
        let mut report = RecoveryReport::default();
        let mut count = |_: &Record<'_>| true;
        let result = inspect_log(db, &opts, Some(&mut count), &mut report);
        progress.finish();
        let s = Seen {
            result,
            report,
            unstable: false,
        };
        if !holder.is_held() {
            return s;
        }
        let sig = damage_signature(&s.result, &s.report);
        if sig.is_none() || sig == previous {
            return s;
        }
        previous = sig;
        seen = Some(s);
    }
    let mut s = seen.expect("read at least once");
    s.unstable = true;
    s
}

fn epochs_text(first: u64, last: u64) -> String {
    if first == 0 {
        "none".into()
    } else if first == last {
        format!("{first}")
    } else {
        format!("{first} to {last}")
    }
}

fn at_text(p: &PrefixEnd) -> String {
    format!(
        "{} offset {}, epoch {}",
        p.file.display(),
        p.offset,
        p.epoch
    )
}

/// The first damage the report names (a torn tail or corruption).
fn first_damage(report: &RecoveryReport) -> Option<PrefixEnd> {
    report.damage_file.as_ref().map(|file| PrefixEnd {
        file: file.clone(),
        offset: report.damage_offset,
        epoch: report.damage_epoch,
    })
}

/// Where a segment stands relative to the end of the durable prefix.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Before,
    /// The prefix ends in this segment.
    At,
    /// Past the end of the prefix: not read.
    After,
}

fn header_text(h: &SegmentHeaderState, epochs: Option<(u64, u64)>, place: Place) -> String {
    match (h, epochs) {
        (_, Some((a, b))) if place == Place::At => {
            format!(
                "epochs {}, then the end of the durable prefix",
                epochs_text(a, b)
            )
        }
        (_, Some((a, b))) => format!("epochs {}", epochs_text(a, b)),
        (SegmentHeaderState::Valid { first_epoch, .. }, None) => match place {
            Place::Before => format!("no epoch (header: first epoch {first_epoch})"),
            Place::At => {
                format!("the durable prefix ends here (header: first epoch {first_epoch})")
            }
            Place::After => {
                format!("past the end of the durable prefix (header: first epoch {first_epoch})")
            }
        },
        (SegmentHeaderState::Absent, None) => "no valid header (not activated, or damaged)".into(),
        (SegmentHeaderState::Rejected(why), None) => format!("header rejected: {why}"),
        (SegmentHeaderState::OtherVersion(v), None) => format!("format version {v}"),
    }
}

fn holder_json(h: &Holder) -> Value {
    match h {
        Holder::Free => json!({"held": false, "pid": null}),
        Holder::Held { pid } => json!({"held": true, "pid": pid}),
        Holder::Unknown(why) => json!({"held": null, "pid": null, "unknown": why}),
    }
}

/// What a directory takes on disk, counted as `du` counts: the directory
/// and everything under it, each inode once.
#[derive(Debug, Default, PartialEq, Eq)]
struct DiskUse {
    /// Allocated blocks, `st_blocks` × 512 (`du -sB1`).
    allocated: u64,
    /// Sizes, `st_size` (`du -sb`).
    apparent: u64,
    /// Files (not directories) counted.
    files: u64,
}

/// The disk use of `dir` (followed if it is a symbolic link) and everything
/// under it (links not followed). An entry gone between the listing of its
/// directory and its `lstat` (a spare the writer renamed, a segment a
/// checkpoint removed) is not counted.
fn disk_use(dir: &Path) -> Result<DiskUse, String> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = DiskUse::default();
    let mut todo = vec![dir.to_path_buf()];
    let err = |p: &Path, e: std::io::Error| format!("measuring {}: {e}", p.display());
    while let Some(path) = todo.pop() {
        let stat = if path == dir {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        };
        let meta = match stat {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path != dir => continue,
            Err(e) => return Err(err(&path, e)),
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total.allocated += meta.blocks() * 512;
        total.apparent += meta.size();
        if !meta.is_dir() {
            total.files += 1;
            continue;
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path != dir => continue,
            Err(e) => return Err(err(&path, e)),
        };
        for entry in entries {
            todo.push(entry.map_err(|e| err(&path, e))?.path());
        }
    }
    Ok(total)
}

fn place_json(p: &Option<PrefixEnd>) -> Value {
    match p {
        Some(p) => json!({"file": p.file, "offset": p.offset, "epoch": p.epoch}),
        None => Value::Null,
    }
}

/// `pwal info`.
pub fn info(db: &Path, as_json: bool) -> Outcome {
    let (listing, holder) = existing_log(db)?;
    let seen = read_log(db, &listing, &holder);
    let r = &seen.report;
    let (insp, error) = match &seen.result {
        Ok(i) => (Some(i), None),
        Err(e @ Error::Corrupt { .. }) => (None, Some(e.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    // Without a scan (it failed), the files as listed.
    let files = insp.map_or(&listing, |i| &i.listing);
    let disk = disk_use(&files.dir)?;
    let prefix_end = insp.and_then(|i| i.prefix_end.clone());
    let damaged = error.is_some() || insp.is_some_and(|i| is_damaged(i, r));
    if as_json {
        let segments: Vec<Value> = files
            .segments
            .iter()
            .map(|s| {
                let (header, first) = match &s.header {
                    SegmentHeaderState::Valid { first_epoch, .. } => ("valid", Some(*first_epoch)),
                    SegmentHeaderState::Absent => ("absent", None),
                    SegmentHeaderState::Rejected(_) => ("rejected", None),
                    SegmentHeaderState::OtherVersion(_) => ("other_version", None),
                };
                json!({
                    "name": s.name,
                    "bytes": s.bytes,
                    "header": header,
                    "header_first_epoch": first,
                    "first_epoch": s.epochs.map(|e| e.0),
                    "last_epoch": s.epochs.map(|e| e.1),
                })
            })
            .collect();
        let other = |v: &Vec<pwal::inspect::OtherFile>| -> Vec<Value> {
            v.iter()
                .map(|f| json!({"name": f.name, "bytes": f.bytes}))
                .collect()
        };
        let out = json!({
            "log": files.dir,
            "writer": holder_json(&holder),
            "segments": segments,
            "spares": other(&files.spares),
            "damaged_dir": other(&files.damaged),
            "disk": {
                "allocated_bytes": disk.allocated,
                "apparent_bytes": disk.apparent,
                "files": disk.files,
            },
            "epochs": r.epochs,
            "first_epoch": r.first_epoch,
            "last_epoch": r.last_epoch,
            "checkpoint_epoch": r.checkpoint_epoch,
            "transactions": r.transactions,
            "records": r.records,
            "bytes": r.bytes,
            "torn_tail_bytes": r.torn_tail_bytes,
            "seq_inversions": r.seq_inversions,
            "damaged": damaged,
            "first_damage": place_json(&first_damage(r)),
            "prefix_end": place_json(&prefix_end),
            "discarded_later": insp.map_or(0, |i| i.discarded_later),
            "skipped_segments": r.skipped_segments,
            "damage": r.damage,
            "error": error,
            "unstable": seen.unstable,
        });
        outln!("{out}");
        return Ok(ExitCode::from(CLEAN));
    }
    let mut o = String::new();
    let mut line = |k: &str, v: String| o.push_str(&format!("{k:<12} {v}\n"));
    line("log", files.dir.display().to_string());
    line("writer", holder.describe());
    line(
        "segments",
        format!(
            "{} file{}, {} bytes",
            files.segments.len(),
            if files.segments.len() == 1 { "" } else { "s" },
            files.segment_bytes()
        ),
    );
    let stop = prefix_end
        .as_ref()
        .and_then(|p| files.segments.iter().position(|s| s.path == p.file));
    for (k, s) in files.segments.iter().enumerate() {
        let place = match stop {
            Some(i) if k == i => Place::At,
            Some(i) if k > i => Place::After,
            _ => Place::Before,
        };
        o.push_str(&format!(
            "  {}  {:>12} bytes  {}\n",
            s.name,
            s.bytes,
            header_text(&s.header, s.epochs, place)
        ));
    }
    let mut line = |k: &str, v: String| o.push_str(&format!("{k:<12} {v}\n"));
    if !files.spares.is_empty() {
        let names: Vec<String> = files
            .spares
            .iter()
            .map(|f| format!("{} ({} bytes)", f.name, f.bytes))
            .collect();
        line("spares", names.join(", "));
    }
    if !files.damaged.is_empty() {
        let names: Vec<&str> = files.damaged.iter().map(|f| f.name.as_str()).collect();
        line("damaged/", names.join(", "));
    }
    line(
        "disk",
        format!(
            "{} bytes on disk (allocated), {} bytes apparent, in {} file{}",
            disk.allocated,
            disk.apparent,
            disk.files,
            if disk.files == 1 { "" } else { "s" }
        ),
    );
    line(
        "epochs",
        format!(
            "{} ({} valid)",
            epochs_text(r.first_epoch, r.last_epoch),
            r.epochs
        ),
    );
    line(
        "checkpoint",
        format!(
            "mark {} (epochs up to it are in the database and not replayed)",
            r.checkpoint_epoch
        ),
    );
    line(
        "replay",
        format!(
            "{} transactions, {} frames{}",
            r.transactions,
            r.records,
            if r.seq_inversions > 0 {
                format!(", {} commit-sequence inversions", r.seq_inversions)
            } else {
                String::new()
            }
        ),
    );
    line("bytes", format!("{} in valid frames", r.bytes));
    let torn = if r.torn_tail_bytes == 0 {
        "none".to_string()
    } else {
        let mut t = format!("{} bytes", r.torn_tail_bytes);
        if let Some(p) = first_damage(r).filter(|_| !damaged) {
            t.push_str(&format!(" at {}", at_text(&p)));
        }
        if holder.is_held() {
            t.push_str(" (a writer holds the log: an epoch it is writing reads as torn)");
        }
        t
    };
    line("torn tail", torn);
    let damage = if let Some(e) = &error {
        e.clone()
    } else if damaged {
        let at = prefix_end.as_ref().map(at_text).unwrap_or_default();
        format!("at {at}; run `pwal verify` for details")
    } else {
        "none".into()
    };
    line("damage", damage);
    if seen.unstable {
        line(
            "note",
            "the writer changed the log while it was read; the reads did not agree".into(),
        );
    }
    out!("{o}");
    Ok(ExitCode::from(CLEAN))
}

/// `pwal verify`.
pub fn verify(db: &Path) -> Outcome {
    let (listing, holder) = existing_log(db)?;
    let seen = read_log(db, &listing, &holder);
    let r = &seen.report;
    let mut o = String::new();
    let code = match &seen.result {
        Err(Error::Corrupt { file, offset, what }) => {
            o.push_str(&format!("DAMAGED: {}\n", listing.dir.display()));
            o.push_str(&format!(
                "  damage at {} offset {offset}, epoch {}\n",
                file.display(),
                r.damage_epoch
            ));
            o.push_str(&format!("  what: {what}\n"));
            o.push_str("  no durable prefix can be recovered: the log cannot be cut back\n");
            DAMAGED
        }
        Err(e) => return Err(e.to_string()),
        Ok(i) if is_damaged(i, r) => {
            o.push_str(&format!("DAMAGED: {}\n", listing.dir.display()));
            let at = i.prefix_end.clone().or_else(|| first_damage(r));
            if let Some(p) = &at {
                o.push_str(&format!(
                    "  damage at {} offset {}, epoch {}\n",
                    p.file.display(),
                    p.offset,
                    p.epoch
                ));
            }
            if let Some(d) = &r.damage {
                o.push_str(&format!("  what: {d}\n"));
            }
            if i.discarded_later > 0 && r.skipped_segments == 0 {
                o.push_str(&format!(
                    "  a torn tail followed by {} later segment files: recovery drops them, and \
                     open refuses the log until repair moves them aside\n",
                    i.discarded_later
                ));
            }
            o.push_str(&format!(
                "  a durable-prefix recovery keeps epochs {} ({} epochs; {} transactions, {} \
                 frames after checkpoint mark {}) and skips {} segment files ({} bytes)\n",
                epochs_text(r.first_epoch, r.last_epoch),
                r.epochs,
                r.transactions,
                r.records,
                r.checkpoint_epoch,
                r.skipped_segments.max(i.discarded_later),
                r.skipped_bytes
            ));
            o.push_str(&format!(
                "  `pwal repair {}` cuts the log back to that prefix, moving what it removes \
                 into {}/damaged/\n",
                db.display(),
                listing.dir.display()
            ));
            DAMAGED
        }
        Ok(_) => {
            o.push_str(&format!(
                "ok: {}: epochs {} valid ({} epochs, {} bytes), checkpoint mark {}, {} \
                 transactions and {} frames to replay\n",
                listing.dir.display(),
                epochs_text(r.first_epoch, r.last_epoch),
                r.epochs,
                r.bytes,
                r.checkpoint_epoch,
                r.transactions,
                r.records
            ));
            if r.torn_tail_bytes > 0 {
                let at = first_damage(r).map(|p| at_text(&p)).unwrap_or_default();
                o.push_str(&format!(
                    "torn tail: {} bytes at {at}: not proven durable by a later frame, dropped \
                     by recovery; not damage\n",
                    r.torn_tail_bytes
                ));
            }
            if r.seq_inversions > 0 {
                o.push_str(&format!(
                    "note: {} transactions come after one with a higher commit sequence\n",
                    r.seq_inversions
                ));
            }
            CLEAN
        }
    };
    if holder.is_held() {
        o.push_str(&format!(
            "writer: {}; read without its lock (what it had not finished writing reads as a \
             torn tail)\n",
            holder.describe()
        ));
    }
    if seen.unstable {
        o.push_str("note: the writer changed the log while it was read; the reads did not agree\n");
    }
    out!("{o}");
    Ok(ExitCode::from(code))
}

/// What `dump` prints.
pub struct DumpFilter {
    pub from_epoch: Option<u64>,
    pub to_epoch: Option<u64>,
    pub page: Option<u32>,
    pub txn: Option<u64>,
}

fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Writes one frame as `dump` prints it.
fn write_frame(
    out: &mut impl Write,
    r: &Record<'_>,
    as_json: bool,
    with_data: bool,
) -> std::io::Result<()> {
    let crc = crc32c::crc32c(r.data);
    if as_json {
        let mut v = json!({
            "epoch": r.epoch,
            "txn_id": r.txn_id,
            "commit_seq": r.commit_seq,
            "txn_epoch": r.txn_epoch,
            "file_id": r.file_id,
            "page_number": r.page_number,
            "db_size_if_commit": r.db_size_if_commit,
            "len": r.data.len(),
            "crc32c": crc,
        });
        if with_data {
            v["data"] = Value::String(hex(r.data));
        }
        writeln!(out, "{v}")
    } else {
        let data = if with_data {
            format!(" data={}", hex(r.data))
        } else {
            String::new()
        };
        writeln!(
            out,
            "epoch={} txn={} seq={} txn_epoch={} file={} page={} db_size={} len={} crc32c={crc:08x}{data}",
            r.epoch,
            r.txn_id,
            r.commit_seq,
            r.txn_epoch,
            r.file_id,
            r.page_number,
            r.db_size_if_commit,
            r.data.len()
        )
    }
}

/// Where a read of the log is in its stream of frames: the epoch of the
/// last frame given, and how many frames of that epoch it has given. A
/// read gives the frames of each epoch it validated in one order, the same
/// for every read (an epoch's frame does not change once written), epochs
/// ascending: of two reads, the frames at or before a position are the
/// same.
type Position = (u64, u64);

fn next_position(at: Option<Position>, epoch: u64) -> Position {
    match at {
        Some((e, n)) if e == epoch => (e, n + 1),
        _ => (epoch, 1),
    }
}

/// What `dump` prints of each frame, and which frames.
struct FrameOutput<'a> {
    filter: &'a DumpFilter,
    as_json: bool,
    with_data: bool,
}

/// A read of the log for `dump`: [`inspect_log`] with this callback.
type DumpRead<'a> = dyn FnMut(&mut dyn FnMut(&Record<'_>) -> bool, &mut RecoveryReport) -> Result<Inspection, Error>
    + 'a;

/// What `dump`'s reads of the log ended with.
struct DumpReads {
    /// The last read's result and report.
    result: Result<Inspection, Error>,
    report: RecoveryReport,
    /// Frames written, over all the reads.
    printed: u64,
    /// The epochs (first, last) that a checkpoint took out of the log
    /// between two reads, past the last frame the earlier read gave: not in
    /// the dump.
    not_dumped: Vec<(u64, u64)>,
    /// Every read found damage or failed, no two in a row alike.
    unstable: bool,
    /// The error that stopped the output.
    write_error: Option<std::io::Error>,
}

/// Reads the log with `read`, writing the frames it gives to `out`; when
/// `retry` (a writer holds the log), a read that finds damage or fails is
/// followed by another, up to [`READS`] in all, until two in a row agree or
/// one is clean (as `read_log`). A read after the first writes only the
/// frames past the last [`Position`] an earlier read gave. The first error
/// writing `out` stops it.
fn dump_reads(
    read: &mut DumpRead<'_>,
    retry: bool,
    frames: &FrameOutput<'_>,
    out: &mut impl Write,
) -> DumpReads {
    let filter = frames.filter;
    let mut write_error: Option<std::io::Error> = None;
    let mut printed = 0u64;
    // The last frame any read so far gave (printed or filtered out).
    let mut given: Option<Position> = None;
    let mut not_dumped: Vec<(u64, u64)> = Vec::new();
    let mut previous: Option<String> = None;
    let mut reads = 0;
    loop {
        reads += 1;
        let before = given;
        let mut at: Option<Position> = None;
        let mut cb = |r: &Record<'_>| -> bool {
            if filter.to_epoch.is_some_and(|to| r.epoch > to) {
                return false;
            }
            let pos = next_position(at, r.epoch);
            at = Some(pos);
            if before.is_some_and(|b| pos <= b) {
                // Given (and written, if selected) by an earlier read.
                return true;
            }
            given = Some(pos);
            if filter.from_epoch.is_some_and(|from| r.epoch < from)
                || filter.page.is_some_and(|p| r.page_number != p)
                || filter.txn.is_some_and(|t| r.txn_id != t)
            {
                return true;
            }
            match write_frame(out, r, frames.as_json, frames.with_data) {
                Ok(()) => {
                    printed += 1;
                    true
                }
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            }
        };
        let mut report = RecoveryReport::default();
        let result = read(&mut cb, &mut report);
        // This read delivered nothing at or below its mark.
        if let Some((e, _)) = before.filter(|&(e, _)| report.checkpoint_epoch > e) {
            not_dumped.push((e + 1, report.checkpoint_epoch));
        }
        let sig = match &result {
            // Stopped after --to-epoch.
            Err(Error::Aborted { .. }) => None,
            r => damage_signature(r, &report),
        };
        let done = write_error.is_some() || !retry || sig.is_none() || sig == previous;
        if done || reads == READS {
            return DumpReads {
                result,
                report,
                printed,
                not_dumped,
                unstable: !done,
                write_error,
            };
        }
        previous = sig;
    }
}

/// `pwal dump`: the frames of the durable prefix after the checkpoint mark,
/// in recovery order, to stdout; what was wrong, if anything, to stderr.
///
/// Frames are printed as the scan gives them. While a writer holds the log,
/// damage or an I/O error (a segment a checkpoint removed or recycled under
/// the scan) is read again, as `read_log` does, and reported only when two
/// reads in a row agree; a read after the first prints only the frames past
/// the last one an earlier read gave (its [`Position`]), so no frame is
/// printed twice. When a checkpoint moved the mark past that position in
/// between, the epochs from there to the new mark, now in the database, are
/// not in the dump, and stderr says so.
pub fn dump(db: &Path, filter: &DumpFilter, as_json: bool, with_data: bool) -> Outcome {
    let (listing, holder) = existing_log(db)?;
    let show = std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
    let mut out = BufWriter::with_capacity(1 << 16, Out);
    let mut read = |cb: &mut dyn FnMut(&Record<'_>) -> bool, report: &mut RecoveryReport| {
        let progress = Progress::start("dumping", listing.segment_bytes(), show);
        let opts = InspectOptions {
            durable_prefix: true,
            bytes_read: Some(progress.counter.clone()),
        };
        let result = inspect_log(db, &opts, Some(cb), report);
        progress.finish();
        result
    };
    let frames = FrameOutput {
        filter,
        as_json,
        with_data,
    };
    let DumpReads {
        result,
        report,
        printed,
        not_dumped,
        unstable,
        write_error,
    } = dump_reads(&mut read, holder.is_held(), &frames, &mut out);
    let flushed = out.flush();
    drop(out);
    let cut_short = write_error.is_some();
    match write_error.or(flushed.err()) {
        // A reader that went away (`pwal dump ... | head`) ends the output,
        // and is not an error: a scan it cut short exits 0; one that had
        // ended has its verdict.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe && cut_short => {
            return Ok(ExitCode::from(CLEAN));
        }
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Some(e) => return Err(format!("writing the dump: {e}")),
        None => {}
    }
    let mut err = std::io::stderr().lock();
    for (from, to) in not_dumped {
        let _ = writeln!(
            err,
            "pwal: a checkpoint moved the mark to epoch {to} while the log was read: epochs {} \
             (now in the database) are not dumped",
            epochs_text(from, to)
        );
    }
    if unstable {
        let _ = writeln!(
            err,
            "pwal: the writer changed the log while it was read; the reads did not agree"
        );
    }
    let insp = match result {
        Ok(i) => i,
        // Stopped after --to-epoch.
        Err(Error::Aborted { .. }) => return Ok(ExitCode::from(CLEAN)),
        Err(e @ Error::Corrupt { .. }) => {
            let _ = if printed == 0 {
                writeln!(err, "pwal: {e}: nothing dumped")
            } else {
                writeln!(err, "pwal: {e}: {printed} frames dumped before the damage")
            };
            return Ok(ExitCode::from(DAMAGED));
        }
        Err(e) => return Err(e.to_string()),
    };
    if is_damaged(&insp, &report) {
        let at = insp
            .prefix_end
            .as_ref()
            .map(at_text)
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            err,
            "pwal: the log is damaged at {at}: dumped the durable prefix only ({printed} frames); \
             see `pwal verify`"
        );
        return Ok(ExitCode::from(DAMAGED));
    }
    if report.torn_tail_bytes > 0 {
        let at = first_damage(&report)
            .map(|p| at_text(&p))
            .unwrap_or_default();
        let _ = writeln!(
            err,
            "pwal: torn tail of {} bytes at {at} not dumped (not damage: not proven durable by a later frame)",
            report.torn_tail_bytes
        );
    }
    if holder.is_held() {
        let _ = writeln!(
            err,
            "pwal: writer {}; dumped without its lock",
            holder.describe()
        );
    }
    Ok(ExitCode::from(CLEAN))
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pwal repair`: `pwal::repair`, or with `dry_run` a read-only scan that
/// says what it would do.
pub fn repair(db: &Path, dry_run: bool) -> Outcome {
    let (listing, holder) = existing_log(db)?;
    let seen = read_log(db, &listing, &holder);
    let r = &seen.report;
    let insp = match &seen.result {
        Ok(i) => i,
        Err(e @ Error::Corrupt { .. }) => {
            outln!("cannot repair: {e}");
            outln!(
                "(a lost beginning or another format version: repair refuses the log, unchanged)"
            );
            return Ok(ExitCode::from(DAMAGED));
        }
        Err(e) => return Err(e.to_string()),
    };
    let plan = insp.repair_plan();
    if dry_run {
        if holder.is_held() {
            outln!(
                "writer: {}: repair refuses a log that is open; this is what it would do once \
                 the writer closes it, if nothing changes",
                holder.describe()
            );
        }
        outln!(
            "would keep epochs {} ({} epochs, {} transactions and {} frames after checkpoint \
             mark {})",
            epochs_text(r.first_epoch, r.last_epoch),
            r.epochs,
            r.transactions,
            r.records,
            r.checkpoint_epoch
        );
        match &plan {
            None => outln!("nothing to cut: the log is its durable prefix"),
            Some(p) => {
                if let Some((file, off)) = &p.cut {
                    outln!(
                        "would copy {} whole into {}/damaged/, then write zeros over it from \
                         offset {off} to its end",
                        file.display(),
                        listing.dir.display()
                    );
                }
                if !p.moved.is_empty() {
                    outln!(
                        "would move into {}/damaged/: {}",
                        listing.dir.display(),
                        names(&p.moved)
                    );
                }
            }
        }
        if let Some(d) = &r.damage {
            outln!("because: {d}");
        }
        return Ok(ExitCode::from(CLEAN));
    }
    let before: Vec<String> = listing.damaged.iter().map(|f| f.name.clone()).collect();
    let mut report = RecoveryReport::default();
    match pwal::repair(db, &mut report) {
        Ok(()) => {}
        Err(e @ Error::Corrupt { .. }) => {
            outln!("cannot repair: {e}");
            return Ok(ExitCode::from(DAMAGED));
        }
        Err(e) => return Err(e.to_string()),
    }
    let after = list_log(db).map_err(|e| e.to_string())?;
    let added: Vec<&str> = after
        .damaged
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !before.iter().any(|b| b == n))
        .collect();
    outln!(
        "kept epochs {} ({} epochs)",
        epochs_text(report.first_epoch, report.last_epoch),
        report.epochs
    );
    if added.is_empty() {
        outln!("nothing to cut: the log is its durable prefix");
        return Ok(ExitCode::from(CLEAN));
    }
    if let Some(p) = &plan {
        if let Some((file, off)) = &p.cut {
            outln!(
                "cut {} at offset {off}: zeros from there to its end",
                file.display()
            );
        }
    }
    // A name in damaged/ whose segment is still in the log (`NAME` or
    // `NAME.N`) is the copy of the cut segment; the others were moved.
    let live = |n: &str| {
        let base = match n.rsplit_once('.') {
            Some((b, k)) if b.ends_with(".pwseg") && k.bytes().all(|c| c.is_ascii_digit()) => b,
            _ => n,
        };
        after.segments.iter().any(|s| s.name == base)
    };
    let (copied, moved): (Vec<&str>, Vec<&str>) = added.iter().partition(|n| live(n));
    if !copied.is_empty() {
        outln!(
            "copied into {}/damaged/: {}",
            after.dir.display(),
            copied.join(", ")
        );
    }
    if !moved.is_empty() {
        outln!(
            "moved into {}/damaged/: {}",
            after.dir.display(),
            moved.join(", ")
        );
    }
    if let Some(d) = &report.damage {
        outln!("because: {d}");
    }
    Ok(ExitCode::from(CLEAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log whose epoch `e` holds two frames (transaction `e`, pages 1 and
    /// 2), read by scripted reads: each gives the frames of epochs
    /// `mark + 1 ..= last` (and, when `part`, the first frame of epoch
    /// `last + 1`), then ends with `end`.
    struct Script {
        reads: Vec<(u64, u64, bool, Result<(), Error>)>,
        made: usize,
    }

    impl Script {
        fn read(
            &mut self,
            cb: &mut dyn FnMut(&Record<'_>) -> bool,
            report: &mut RecoveryReport,
        ) -> Result<Inspection, Error> {
            let (mark, last, part, end) = self.reads.remove(0);
            self.made += 1;
            report.checkpoint_epoch = mark;
            let frame = |epoch: u64, page: u32| Record {
                epoch,
                txn_id: epoch,
                commit_seq: epoch,
                txn_epoch: 0,
                page_number: page,
                db_size_if_commit: 0,
                data: b"page",
                file_id: 0,
            };
            let mut frames: Vec<Record<'_>> = (mark + 1..=last)
                .flat_map(|e| [frame(e, 1), frame(e, 2)])
                .collect();
            if part {
                frames.push(frame(last + 1, 1));
            }
            for f in &frames {
                if !cb(f) {
                    return Err(Error::Aborted { epoch: f.epoch });
                }
            }
            end.map(|()| Inspection::default())
        }
    }

    fn gone() -> Error {
        Error::Io {
            context: "opening 00000000000000000003.pwseg".into(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }

    fn stale(offset: u64) -> Error {
        Error::Corrupt {
            file: "00000000000000000004.pwseg".into(),
            offset,
            what: "frame of another incarnation of this file".into(),
        }
    }

    const ALL: DumpFilter = DumpFilter {
        from_epoch: None,
        to_epoch: None,
        page: None,
        txn: None,
    };

    /// Runs `dump_reads` over the script; the (epoch, page) of each line
    /// written, and what it returned.
    fn run(
        retry: bool,
        reads: Vec<(u64, u64, bool, Result<(), Error>)>,
    ) -> (Vec<(u64, u64)>, DumpReads, usize) {
        let mut script = Script { reads, made: 0 };
        let mut out = Vec::new();
        let frames = FrameOutput {
            filter: &ALL,
            as_json: false,
            with_data: false,
        };
        let got = dump_reads(
            &mut |cb, report| script.read(cb, report),
            retry,
            &frames,
            &mut out,
        );
        let field = |l: &str, k: &str| -> u64 {
            l.split(' ')
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {l:?}"))
        };
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| (field(l, "epoch="), field(l, "page=")))
            .collect();
        (lines, got, script.made)
    }

    fn frames(epochs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
        epochs.into_iter().flat_map(|e| [(e, 1), (e, 2)]).collect()
    }

    /// Reads that fail after writing frames (a segment removed, a recycled
    /// one read stale) are followed by reads that write only what comes
    /// after: every frame once, in order, the epoch cut in the middle too.
    #[test]
    fn a_read_again_writes_only_the_frames_past_the_last_one_given() {
        let (lines, got, made) = run(
            true,
            vec![
                (2, 6, true, Err(gone())),
                (2, 8, false, Err(stale(4096))),
                (2, 10, false, Ok(())),
            ],
        );
        assert_eq!(lines, frames(3..=10));
        assert_eq!(made, 3);
        assert!(got.result.is_ok() && !got.unstable && got.not_dumped.is_empty());
        assert_eq!(got.printed, 16);
    }

    /// A checkpoint past the last frame given, between two reads: the
    /// epochs from there to the new mark are named, not made up.
    #[test]
    fn epochs_checkpointed_between_two_reads_are_named() {
        let (lines, got, _) = run(
            true,
            vec![(2, 4, false, Err(gone())), (6, 10, false, Ok(()))],
        );
        assert_eq!(lines, [frames(3..=4), frames(7..=10)].concat());
        assert_eq!(got.not_dumped, [(5, 6)]);
        // A mark that did not pass it: nothing is missing.
        let (lines, got, _) = run(
            true,
            vec![(2, 4, false, Err(gone())), (4, 10, false, Ok(()))],
        );
        assert_eq!(lines, frames(3..=10));
        assert!(got.not_dumped.is_empty());
    }

    /// Damage found twice at one place is reported (written once); reads
    /// that never agree stop at four; without a writer there is one read.
    #[test]
    fn damage_is_reported_when_two_reads_agree_and_reads_are_bounded() {
        let (lines, got, made) = run(
            true,
            vec![
                (2, 5, false, Err(stale(4096))),
                (2, 5, false, Err(stale(4096))),
            ],
        );
        assert_eq!((lines, made), (frames(3..=5), 2));
        assert!(matches!(got.result, Err(Error::Corrupt { .. })) && !got.unstable);

        let reads = (0..READS as u64)
            .map(|k| (2, 5 + k, false, Err(stale(4096 + k))))
            .collect();
        let (lines, got, made) = run(true, reads);
        assert_eq!((lines, made), (frames(3..=5 + READS as u64 - 1), READS));
        assert!(got.unstable);

        let (lines, got, made) = run(false, vec![(2, 5, false, Err(gone()))]);
        assert_eq!((lines, made), (frames(3..=5), 1));
        assert!(matches!(got.result, Err(Error::Io { .. })));
    }
}
