//! Recovery: streams every durable record of a log, in replay order, to a
//! callback, holding at most one epoch frame in memory.
//!
//! Replay order is epoch ascending, then commit sequence, then transaction id,
//! then frame order. The scanner names every way a frame can be bad and
//! decides between the two cases the contract distinguishes (the rules are
//! in `docs/FORMAT.md`, "Reading a log"):
//!
//! * **corruption**: an epoch is missing (damaged bytes, a stale frame, an
//!   all-zero header, a gap) although a later valid frame of the same writer
//!   says it had been synced (`synced_through`), or a valid frame carries an
//!   unexpected epoch, or the log lost its beginning. Recovery fails closed
//!   with the file, the offset and what was wrong, or, when the caller asked
//!   for the durable prefix, stops there and reports the rest as skipped (a
//!   lost beginning fails in both modes: there is no prefix);
//! * a **torn tail**: an epoch is missing and nothing says it was ever
//!   synced: its write was lost with the process or the power. Recovery
//!   stops there (or, when a reopen started a segment at that epoch, goes on
//!   with it), discards the rest and reports its size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::MAX_EPOCH_BODY_BYTES;
use crate::epoch::{
    self, Header, SegmentIdent, TxnRef, CERT_MAX_LEN, CERT_MIN_LEN, EPOCH_MAGIC, FORMAT_VERSION,
};
use crate::error::{Error, Result};
use crate::io::{RealVfs, Vfs, VfsFile};
use crate::parted::{Completes, PartLoc, Parted};
use crate::segment::{list_segments, parse_segment_name, FoundSegment, DATA_OFFSET, END_MARK_LEN};
use crate::{Log, Options, Record};

/// How to recover.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecoverOptions {
    /// On corruption, return the durable prefix before it (and report the
    /// rest as skipped) instead of failing with [`Error::Corrupt`].
    pub durable_prefix: bool,
}

/// Every recovery option: [`RecoverOptions`] and those added since (a struct
/// of its own so that `RecoverOptions { durable_prefix }` literals keep
/// compiling). Start from `ReplayOptions::default()` or
/// `ReplayOptions::from(recover_options)` and set fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayOptions {
    /// As [`RecoverOptions::durable_prefix`].
    pub durable_prefix: bool,
    /// Fail with [`Error::Corrupt`] at the first transaction whose commit
    /// sequence is below that of a transaction replayed before it (possible
    /// only across epochs), before it is delivered; in durable-prefix mode
    /// too: it is not damage to the bytes, the engine broke its promise.
    pub refuse_seq_inversions: bool,
    /// Validate the whole log before the callback sees any record: on
    /// damage the callback is never called (with `durable_prefix`, it is
    /// given the validated prefix). Costs a second read of the log.
    pub validate_first: bool,
    /// The last epoch the scan reads: epochs after it are treated as not
    /// written yet (a recovery beside this process's own writer reads up
    /// to the epoch that was durable when it started).
    pub(crate) until_epoch: Option<u64>,
}

impl From<RecoverOptions> for ReplayOptions {
    fn from(o: RecoverOptions) -> ReplayOptions {
        ReplayOptions {
            durable_prefix: o.durable_prefix,
            ..ReplayOptions::default()
        }
    }
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files with an activated header that were read.
    pub segments: u64,
    /// Epoch frames read and validated, those at or below
    /// `checkpoint_epoch` (never replayed) included.
    pub epochs: u64,
    /// First and last epoch read and validated (0 when none).
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// Transactions handed to the callback.
    pub transactions: u64,
    /// Page frames handed to the callback.
    pub records: u64,
    /// Bytes of valid epoch frames read.
    pub bytes: u64,
    /// Bytes of torn tail discarded.
    pub torn_tail_bytes: u64,
    /// Segments not read (or read only in part) because of corruption, in
    /// durable-prefix mode.
    pub skipped_segments: u64,
    pub skipped_bytes: u64,
    /// What was wrong, when something was: the torn tail or the corruption,
    /// with file and offset.
    pub damage: Option<String>,
    /// The durable checkpoint mark: the highest `checkpoint_epoch` of any
    /// valid frame. Epochs at or below it are validated but not replayed.
    /// It can be above the last epoch [`crate::Log::checkpoint`] was given:
    /// an idle log that leaves a large segment for a small one moves it over
    /// epochs holding no transaction.
    pub checkpoint_epoch: u64,
    /// Transactions replayed after one with a higher commit sequence.
    pub seq_inversions: u64,
    /// Where the first damage lies (a torn tail or corruption): the file,
    /// the offset in it, and the epoch that was expected there (0 when no
    /// epoch applies, as for a segment of another format version).
    pub damage_file: Option<PathBuf>,
    pub damage_offset: u64,
    pub damage_epoch: u64,
}

impl RecoveryReport {
    /// Records damage: appends `msg` to `damage`, and keeps the location of
    /// the first damage.
    fn note_damage(&mut self, file: &Path, offset: u64, epoch: u64, msg: String) {
        if self.damage_file.is_none() {
            self.damage_file = Some(file.to_path_buf());
            self.damage_offset = offset;
            self.damage_epoch = epoch;
        }
        self.damage = Some(match self.damage.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
    }

    /// Fills the damage fields from a corruption error that stopped a scan
    /// before it described it (a lost beginning, another format version).
    pub(crate) fn note_error(&mut self, e: &Error, epoch: u64) {
        if let Error::Corrupt { file, offset, .. } = e {
            if self.damage_file.is_none() {
                self.note_damage(file, *offset, epoch, e.to_string());
            }
        }
    }
}

/// Recovers the log of the database at `db_path` (its `<db_path>-pwal`
/// directory). A missing directory is an empty log. See [`recover_into`].
pub fn recover(
    db_path: impl AsRef<Path>,
    opts: &RecoverOptions,
    mut callback: impl FnMut(&Record<'_>) -> bool,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    recover_into(db_path.as_ref(), opts, &mut callback, &mut report)?;
    Ok(report)
}

/// Like [`recover`], filling `report` even when it fails: after
/// [`Error::Aborted`] (the callback returned `false`) or [`Error::Corrupt`] it
/// describes what was replayed before.
pub fn recover_into(
    db_path: &Path,
    opts: &RecoverOptions,
    callback: &mut dyn FnMut(&Record<'_>) -> bool,
    report: &mut RecoveryReport,
) -> Result<()> {
    recover_with_vfs(&RealVfs, db_path, opts, callback, report)
}

/// [`recover_into`] over any file system.
pub fn recover_with_vfs(
    vfs: &dyn Vfs,
    db_path: &Path,
    opts: &RecoverOptions,
    callback: &mut dyn FnMut(&Record<'_>) -> bool,
    report: &mut RecoveryReport,
) -> Result<()> {
    replay_with_vfs(vfs, db_path, &(*opts).into(), callback, report)
}

/// [`recover_with_vfs`] with every option ([`ReplayOptions`]).
pub fn replay_with_vfs(
    vfs: &dyn Vfs,
    db_path: &Path,
    opts: &ReplayOptions,
    callback: &mut dyn FnMut(&Record<'_>) -> bool,
    report: &mut RecoveryReport,
) -> Result<()> {
    *report = RecoveryReport::default();
    let dir = crate::log_dir(db_path);
    if !vfs.exists(&dir) {
        return Ok(());
    }
    // Hold the log's lock while reading, unless this process has the log
    // open. Beside this process's own writer the reading is a consistent
    // prefix of the log: every epoch that was durable when it began (later
    // ones, being written, are not looked at), with no segment removed or
    // recycled under it (checkpoints leave the segments they could free to
    // the next one until the reading ends).
    let mut opts = *opts;
    let _hold;
    match crate::registry::lock_for_reading(vfs, &dir)? {
        crate::registry::Reading::Locked(guard) => {
            _hold = Hold::Lock(guard);
            // No writer: read what the disk holds. After a failed writeback
            // Linux keeps the unwritten pages cached and marked clean;
            // replaying them would hand the engine records that are not on
            // the disk (and that the next open, which reads past the cache,
            // no longer has). Evicting clean pages writes nothing.
            let names = vfs.list_dir(&dir).map_err(|e| io_err(&dir, "listing", e))?;
            for name in names.iter().filter(|n| parse_segment_name(n).is_some()) {
                let path = dir.join(name);
                vfs.evict_cache(&path)
                    .map_err(|e| io_err(&path, "evicting the cached pages of", e))?;
            }
        }
        crate::registry::Reading::Beside(shared) => {
            let hold = crate::store::RemovalHold::new(shared);
            opts.until_epoch = Some(hold.shared().state.lock().durable);
            _hold = Hold::Removal(hold);
        }
    }
    if opts.validate_first {
        // The second scan reads the same files (under the lock, or up to the
        // same durable epoch beside this process's writer) and stops where
        // this one did.
        validate(vfs, &dir, &opts, Ok, report)?;
    }
    scan(vfs, &dir, &opts, Some(callback), report).map(|_| ())
}

/// Validates the whole log before any callback sees a record
/// (`validate_first`): the same scan with a callback that takes nothing, so
/// that it reads the mark and checks the order as the delivering scan does,
/// and `judge` applied to its end. On damage `report` says what was found,
/// with nothing counted as given to a callback; on success it is untouched.
fn validate(
    vfs: &dyn Vfs,
    dir: &Path,
    opts: &ReplayOptions,
    judge: fn(ScanEnd) -> Result<ScanEnd>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let mut check = RecoveryReport::default();
    let mut take_nothing = |_: &Record<'_>| true;
    match scan(vfs, dir, opts, Some(&mut take_nothing), &mut check).and_then(judge) {
        Ok(_) => Ok(()),
        Err(e) => {
            check.transactions = 0;
            check.records = 0;
            *report = check;
            Err(e)
        }
    }
}

/// What a reader holds while it reads.
enum Hold {
    Lock(#[allow(dead_code)] Box<dyn std::any::Any + Send + Sync>),
    Removal(#[allow(dead_code)] crate::store::RemovalHold),
}

/// A replay asked for by [`recover_and_open_with_vfs`] for the open it
/// makes on this thread: the open's one scan ([`scan_for_open`]) runs it.
struct OpenReplay {
    opts: ReplayOptions,
    callback: Box<dyn FnMut(&Record<'_>) -> bool>,
    report: RecoveryReport,
    ran: bool,
}

thread_local! {
    /// Set by [`recover_and_open_with_vfs`] around its call of
    /// [`Log::open_with_vfs`] only; the open's start-up scan takes it. A
    /// thread-local rather than an argument because the replay must run inside
    /// the registry's open (under its lock, with its one scan), and the open
    /// path's signature is shared with every other way of opening.
    static OPEN_REPLAY: std::cell::RefCell<Option<OpenReplay>> =
        const { std::cell::RefCell::new(None) };
}

/// Replays the log of the database at `db_path` like [`recover`] and opens
/// it like [`Log::open`], under one lock and with one scan: the records are
/// given to `callback` during the open, before any new epoch is written, and
/// the log is opened only when recovery succeeded. `opts.durable_prefix` is
/// refused ([`Error::Invalid`]): a log with damage cannot be appended to;
/// repair it first ([`repair`](crate::repair)). Fails with
/// [`Error::Invalid`] when this process already has the log open (recovery
/// runs before the first open only). `report` is filled on every return.
pub fn recover_and_open(
    db_path: impl AsRef<Path>,
    options: &Options,
    opts: &ReplayOptions,
    callback: impl FnMut(&Record<'_>) -> bool + 'static,
    report: &mut RecoveryReport,
) -> Result<Log> {
    recover_and_open_with_vfs(
        Arc::new(RealVfs),
        db_path.as_ref(),
        options,
        opts,
        Box::new(callback),
        report,
    )
}

/// [`recover_and_open`] over any file system.
pub fn recover_and_open_with_vfs(
    vfs: Arc<dyn Vfs>,
    db_path: &Path,
    options: &Options,
    opts: &ReplayOptions,
    callback: Box<dyn FnMut(&Record<'_>) -> bool>,
    report: &mut RecoveryReport,
) -> Result<Log> {
    *report = RecoveryReport::default();
    if opts.durable_prefix {
        return Err(Error::invalid(
            "the durable-prefix flag cannot be used when opening: a log with damage is not \
             appended to; repair it first (pwal_repair), or recover the prefix without opening",
        ));
    }
    let previous = OPEN_REPLAY.with(|h| {
        h.borrow_mut().replace(OpenReplay {
            opts: *opts,
            callback,
            report: RecoveryReport::default(),
            ran: false,
        })
    });
    if previous.is_some() {
        // Only a callback calling back into pwal can get here, and the open
        // below would wait for the registry it is holding.
        OPEN_REPLAY.with(|h| *h.borrow_mut() = previous);
        return Err(Error::invalid(
            "recover_and_open called from a recovery callback",
        ));
    }
    let opened = Log::open_with_vfs(db_path, options, vfs);
    let hook = OPEN_REPLAY.with(|h| h.borrow_mut().take());
    let ran = hook.as_ref().is_some_and(|h| h.ran);
    if let Some(h) = hook {
        *report = h.report;
    }
    match opened {
        Ok(log) if !ran => {
            // The log was already open in this process: the open shared it,
            // and nothing was replayed.
            let _ = log.close();
            Err(Error::invalid(format!(
                "{} is already open in this process: recovery runs before the first open; \
                 open further handles with pwal_open",
                crate::log_dir(db_path).display()
            )))
        }
        other => other,
    }
}

/// The scan of an open (`coordinator::start`): every segment is read and
/// every epoch validated, so that the log is never appended to behind
/// damage, and the records are replayed when [`recover_and_open_with_vfs`]
/// asked for it on this thread. Fails with [`Error::Corrupt`] on
/// corruption, and on a torn tail followed by later segment files (a new
/// segment could not supersede them: recovery would discard what is
/// appended; `repair` moves them aside).
pub(crate) fn scan_for_open(vfs: &dyn Vfs, dir: &Path) -> Result<ScanEnd> {
    let hook = OPEN_REPLAY.with(|h| h.borrow_mut().take());
    let (result, hook) = match hook {
        Some(mut h) => {
            let check = if h.opts.validate_first {
                // Validated whole, as the open will judge it.
                validate(vfs, dir, &h.opts, continuable, &mut h.report)
            } else {
                Ok(())
            };
            let r =
                check.and_then(|()| scan(vfs, dir, &h.opts, Some(&mut *h.callback), &mut h.report));
            h.ran = true;
            (r, Some(h))
        }
        None => {
            let mut report = RecoveryReport::default();
            let r = scan(vfs, dir, &ReplayOptions::default(), None, &mut report);
            (r, None)
        }
    };
    let result = result.and_then(continuable);
    if let Some(mut h) = hook {
        if let Err(e) = &result {
            h.report.note_error(e, 0);
        }
        OPEN_REPLAY.with(|c| *c.borrow_mut() = Some(h));
    }
    result
}

/// Refuses a log that an open cannot continue: a torn tail followed by later
/// segment files (a new segment could not supersede them).
fn continuable(end: ScanEnd) -> Result<ScanEnd> {
    match (&end.stop, end.discarded_later) {
        (Some((file, offset, epoch)), n) if n > 0 => Err(Error::corrupt(
            file,
            *offset,
            format!(
                "epoch {epoch} is missing here (a torn tail) and {n} later segment files follow it, which recovery discards: the log cannot be continued behind them; run pwal_repair to move them aside"
            ),
        )),
        _ => Ok(end),
    }
}

/// The replay state carried across epochs: the highest commit sequence
/// delivered so far, with its epoch.
#[derive(Default)]
struct SeqOrder {
    highest: Option<(u64, u64)>,
    refuse: bool,
}

/// Where a scan ended.
#[derive(Debug, Default)]
pub(crate) struct ScanEnd {
    /// The last epoch replayed (or, for an empty log, one before the first
    /// segment's first epoch).
    pub last_epoch: u64,
    /// The highest checkpoint mark in a valid frame read: the engine's mark
    /// starts there, so marks in frames never go down.
    pub checkpoint_epoch: u64,
    /// The highest `synced_through` of a valid frame: every epoch up to it is
    /// durable.
    pub synced_through: u64,
    /// Every segment file of the directory, as listed for the scan (open
    /// builds its catalog from them instead of listing again).
    pub segments: Vec<FoundSegment>,
    /// Where the durable prefix ends early (not at the ordinary end of the
    /// log): the file and the offset of the first byte past the prefix, and
    /// the epoch expected there. Every segment with a higher id lies past
    /// the prefix too. Set on corruption (durable-prefix mode) and on a torn
    /// tail that is not superseded by a later segment.
    pub stop: Option<(PathBuf, u64, u64)>,
    /// Segment files after `stop` holding epochs that recovery discards
    /// as torn (an open could not continue the log behind them).
    pub discarded_later: u64,
    /// Transactions in parts that recovery replays (committed above the
    /// checkpoint mark) and that span epochs: the epochs of their first and
    /// last parts.
    pub parted: Vec<(u64, u64)>,
    /// Segments with damage at or below the checkpoint mark, read past
    /// (never recycled: a checkpoint deletes them).
    pub damaged: Vec<PathBuf>,
    /// The last valid epoch read whose frame holds a record (0: none).
    pub last_record_epoch: u64,
    /// Where the last valid frame read ends: the file, the offset just
    /// after the frame, and the identity of its segment.
    pub prefix_end: Option<(PathBuf, u64, SegmentIdent)>,
}

enum FrameRead {
    /// Never written (zeros) or the end of the file.
    End,
    /// A header of an earlier incarnation of a recycled file.
    Stale,
    /// A valid frame of `len` bytes, now in the buffer.
    Valid {
        len: u64,
        header_len: usize,
        cert: epoch::Certificate,
        txns: Vec<TxnRef>,
    },
    Damaged(String),
    /// A header of this segment whose frame does not validate: the frame's
    /// claimed length is known (what a torn write of it can have covered).
    DamagedFrame(String, u64),
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), e)
}

/// Bytes read from a file ahead of the frame being parsed: a log of small
/// epochs is read in 1 MiB requests rather than two small reads per frame.
const READ_AHEAD: usize = 1 << 20;

/// The largest frame the certificate's limits allow.
const MAX_FRAME_BYTES: usize = CERT_MAX_LEN + MAX_EPOCH_BODY_BYTES;

/// A zeroed buffer of `len` bytes for frames larger than the read-ahead
/// window, backed by transparent huge pages where the system offers them
/// (`madvise(MADV_HUGEPAGE)`). Filling 32 MiB of fresh 4 KiB pages costs
/// thousands of page faults, each allocating, zeroing and charging one page;
/// on a virtual machine that took about as long as reading the bytes from
/// the disk. A large zeroed allocation comes from the system untouched, so
/// only the pages a frame fills become resident.
fn frame_buffer(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_mut_ptr() as usize;
        let from = start.next_multiple_of(HUGE);
        let to = (start + v.len()) / HUGE * HUGE;
        if to > from {
            // SAFETY: `[from, to)` lies inside the allocation `v` owns and
            // starts on a page boundary; the advice changes no byte of it
            // (the pages read as zeros either way) and touches no memory of
            // anyone else. Its result is ignored: without huge pages the
            // buffer works the same, only slower to fill.
            let _ =
                unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
        }
    }
    v
}

/// The frame being validated, and a read-ahead window of the file it is in.
/// Memory: one frame (bounded by the certificate's limits) plus the window.
pub(crate) struct FrameReader {
    /// A frame too large for the window is read here.
    frame: Vec<u8>,
    ahead: Vec<u8>,
    ahead_path: PathBuf,
    ahead_start: u64,
    /// Where the last frame read lies: in the window (validated in place,
    /// never copied) or in `frame`.
    held: Held,
}

#[derive(Clone, Copy)]
enum Held {
    Window { from: usize, len: usize },
    Own { len: usize },
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader {
            frame: Vec::new(),
            ahead: Vec::new(),
            ahead_path: PathBuf::new(),
            ahead_start: 0,
            held: Held::Own { len: 0 },
        }
    }

    /// The bytes of the last frame read (header then body).
    pub fn frame(&self) -> &[u8] {
        match self.held {
            Held::Window { from, len } => &self.ahead[from..from + len],
            Held::Own { len } => &self.frame[..len],
        }
    }

    /// Brings `[off, off + want)` (`want` at most `READ_AHEAD`) into the
    /// window, refilling it from `off` if needed, and returns where the range
    /// starts in the window and how many of its bytes exist before the end
    /// of the file.
    fn window(
        &mut self,
        file: &dyn VfsFile,
        path: &Path,
        file_len: u64,
        off: u64,
        want: usize,
    ) -> Result<(usize, usize)> {
        debug_assert!(want <= READ_AHEAD);
        let want = (want as u64).min(file_len.saturating_sub(off)) as usize;
        let covered = self.ahead_path == path
            && off >= self.ahead_start
            && off + want as u64 <= self.ahead_start + self.ahead.len() as u64;
        if !covered {
            let len = (READ_AHEAD as u64).min(file_len - off) as usize;
            self.ahead.resize(len, 0);
            let n = file
                .read_at(&mut self.ahead, off)
                .map_err(|e| io_err(path, "reading", e))?;
            self.ahead.truncate(n);
            self.ahead_start = off;
            self.ahead_path = path.to_path_buf();
        }
        let from = (off - self.ahead_start) as usize;
        Ok((from, want.min(self.ahead.len().saturating_sub(from))))
    }
}

/// Reads and validates the frame at `off`; on success its bytes are
/// [`FrameReader::frame`].
fn read_frame(
    file: &dyn VfsFile,
    path: &Path,
    file_len: u64,
    off: u64,
    ident: &SegmentIdent,
    rd: &mut FrameReader,
) -> Result<FrameRead> {
    if off >= file_len {
        return Ok(FrameRead::End);
    }
    let (from, n) = rd.window(file, path, file_len, off, CERT_MAX_LEN)?;
    let at_eof = n < CERT_MAX_LEN;
    let (header_len, body_len) = match epoch::parse_header(&rd.ahead[from..from + n], at_eof, ident)
    {
        Header::Zero => return Ok(FrameRead::End),
        Header::Stale => return Ok(FrameRead::Stale),
        Header::Bad(why) => return Ok(FrameRead::Damaged(why)),
        Header::Plausible {
            header_len,
            body_len,
        } => (header_len, body_len),
    };
    let total = header_len + body_len;
    if total as u64 > file_len - off {
        return Ok(FrameRead::Damaged(format!(
            "frame of {total} bytes runs past the end of the file ({} bytes left)",
            file_len - off
        )));
    }
    debug_assert!(body_len <= MAX_EPOCH_BODY_BYTES);
    let n = if total <= READ_AHEAD {
        // Validated where it lies in the window: no copy.
        let (from, n) = rd.window(file, path, file_len, off, total)?;
        rd.held = Held::Window { from, len: n };
        n
    } else {
        // Allocated for the largest frame this file can hold (no larger
        // than the file: a length read from the disk never sizes an
        // allocation past what is there): re-zeroing the buffer for every
        // frame would be one more pass over up to 32 MiB (the read
        // overwrites what is kept), and growing it in place would copy.
        if rd.frame.len() < total {
            rd.frame = Vec::new();
            let most =
                usize::try_from(file_len).map_or(MAX_FRAME_BYTES, |l| l.min(MAX_FRAME_BYTES));
            rd.frame = frame_buffer(most.max(total));
        }
        // The frame's first bytes are in the window (read for its fixed
        // header above): copied from there, not read again.
        let k = rd.ahead.len().saturating_sub(from).min(total);
        rd.frame[..k].copy_from_slice(&rd.ahead[from..from + k]);
        let n = k + file
            .read_at(&mut rd.frame[k..total], off + k as u64)
            .map_err(|e| io_err(path, "reading", e))?;
        rd.held = Held::Own { len: n };
        n
    };
    if n < total {
        return Ok(FrameRead::Damaged(
            "frame cut short by the end of the file".into(),
        ));
    }
    let frame = rd.frame();
    match epoch::validate_frame(&frame[..header_len], &frame[header_len..], ident) {
        Ok((cert, txns)) => Ok(FrameRead::Valid {
            len: total as u64,
            header_len,
            cert,
            txns,
        }),
        Err(why) => Ok(FrameRead::DamagedFrame(why, total as u64)),
    }
}

/// What lies at and after a spot of a segment.
#[derive(Default)]
struct After {
    /// Epoch of the first valid frame found, if any.
    first_valid: Option<u64>,
    /// Where that frame starts.
    first_valid_at: Option<u64>,
    /// A valid frame whose `synced_through` covers the epoch asked about:
    /// its epoch, offset and `synced_through`. The walk stops there.
    proof: Option<(u64, u64, u64)>,
    /// Highest synced-through epoch and checkpoint mark of the valid frames
    /// walked.
    max_synced: u64,
    max_checkpoint: u64,
    /// One past the last non-zero byte at or after the spot.
    end_of_data: u64,
    /// Where the first frame header of another incarnation of the file
    /// (stale bytes of a recycled segment's earlier life) starts: what a
    /// torn write left ends there at the latest.
    first_foreign: Option<u64>,
}

/// Walks the rest of a segment from `from`, visiting every valid frame of
/// this segment (found by their magic; a valid frame is then stepped over
/// whole, and its successors read in place), and finds the end of its
/// non-zero bytes. With `proves = Some(e)`, stops at the first frame whose
/// `synced_through >= e`. Reads in bounded chunks.
fn search_after(
    file: &dyn VfsFile,
    path: &Path,
    file_len: u64,
    from: u64,
    ident: &SegmentIdent,
    rd: &mut FrameReader,
    proves: Option<u64>,
) -> Result<After> {
    const CHUNK: usize = 1 << 20;
    let magic = EPOCH_MAGIC.to_le_bytes();
    let mut chunk = vec![0u8; CHUNK + 3];
    let mut after = After {
        end_of_data: from,
        ..After::default()
    };
    let mut pos = from;
    'chunks: while pos < file_len {
        let want = ((file_len - pos) as usize).min(chunk.len());
        let n = file
            .read_at(&mut chunk[..want], pos)
            .map_err(|e| io_err(path, "reading", e))?;
        if n == 0 {
            break;
        }
        let data = &chunk[..n];
        let at_end = pos + n as u64 >= file_len;
        // Positions whose 4 bytes lie in this chunk; the last 3 are looked
        // at again at the start of the next one.
        let limit = if at_end { n } else { n - 3 };
        for i in 0..limit.min(n.saturating_sub(3)) {
            if data[i..i + 4] != magic {
                continue;
            }
            let at = pos + i as u64;
            let read = read_frame(file, path, file_len, at, ident, rd)?;
            if matches!(read, FrameRead::Stale) && after.first_foreign.is_none() {
                after.first_foreign = Some(at);
            }
            if let FrameRead::Valid { len, cert, .. } = read {
                if let Some(last) = data[..i].iter().rposition(|&b| b != 0) {
                    after.end_of_data = after.end_of_data.max(pos + last as u64 + 1);
                }
                after.end_of_data = after.end_of_data.max(at + len);
                after.first_valid.get_or_insert(cert.epoch);
                after.first_valid_at.get_or_insert(at);
                after.max_synced = after.max_synced.max(cert.synced_through);
                after.max_checkpoint = after.max_checkpoint.max(cert.checkpoint_epoch);
                if proves.is_some_and(|e| cert.synced_through >= e) {
                    after.proof = Some((cert.epoch, at, cert.synced_through));
                    return Ok(after);
                }
                pos = at + len;
                continue 'chunks;
            }
        }
        if let Some(last) = data.iter().rposition(|&b| b != 0) {
            after.end_of_data = after.end_of_data.max(pos + last as u64 + 1);
        }
        if at_end || limit == 0 {
            break;
        }
        pos += limit as u64;
    }
    Ok(after)
}

/// Looks through whole segments for a valid frame that proves epoch `e` was
/// synced; returns the file, the frame's epoch and its `synced_through`.
fn proof_in(
    vfs: &dyn Vfs,
    segs: &[&FoundSegment],
    e: u64,
    rd: &mut FrameReader,
) -> Result<Option<(PathBuf, u64, u64)>> {
    for seg in segs {
        let h = seg.header.expect("only activated segments are scanned");
        let file = vfs
            .open_read(&seg.path)
            .map_err(|e| io_err(&seg.path, "opening", e))?;
        let after = search_after(
            &*file,
            &seg.path,
            seg.len,
            DATA_OFFSET,
            &h.ident(),
            rd,
            Some(e),
        )?;
        if let Some((pe, _, synced)) = after.proof {
            return Ok(Some((seg.path.clone(), pe, synced)));
        }
    }
    Ok(None)
}

/// The highest checkpoint mark and synced-through epoch in the log. Both
/// only grow, so they are in the newest segment holding a valid frame:
/// segments are read from the last one back until one has a valid frame.
fn newest_marks(vfs: &dyn Vfs, segs: &[&FoundSegment], rd: &mut FrameReader) -> Result<(u64, u64)> {
    for seg in segs.iter().rev() {
        let h = seg.header.expect("only activated segments are scanned");
        let file = vfs
            .open_read(&seg.path)
            .map_err(|e| io_err(&seg.path, "opening", e))?;
        let after = search_after(
            &*file,
            &seg.path,
            seg.len,
            DATA_OFFSET,
            &h.ident(),
            rd,
            None,
        )?;
        if after.first_valid.is_some() {
            return Ok((after.max_checkpoint, after.max_synced));
        }
    }
    Ok((0, 0))
}

/// The durable checkpoint mark, read before replay: the mark of the last
/// frame of the newest segment. Marks never go down, so that is the highest
/// mark of the log. The newest segment's frames are walked by their fixed
/// headers only (no checksums: the next frame starts where the header says
/// this one ends) up to the first all-zero header or the end of the file,
/// and only the last frame of that run is validated whole (or the one before
/// it, and so on). When the run ends in anything else (a damaged or stale
/// header, a frame cut short), or none of its frames validates, or the
/// segment has no frame, the newest segments are searched whole
/// ([`newest_marks`]). Cost on an undamaged log: one read of the fixed
/// header of each frame of the last segment and one frame's checksums,
/// instead of a second validation of the whole segment.
/// Frames below this size are walked through the read-ahead window.
const SMALL_FRAME: u64 = 64 << 10;

fn durable_mark(vfs: &dyn Vfs, segs: &[&FoundSegment], rd: &mut FrameReader) -> Result<u64> {
    let Some(seg) = segs.last() else {
        return Ok(0);
    };
    let h = seg.header.expect("only activated segments are scanned");
    let ident = &h.ident();
    let file = vfs
        .open_read(&seg.path)
        .map_err(|e| io_err(&seg.path, "opening", e))?;
    let mut run = Vec::new();
    let mut off = DATA_OFFSET;
    // Small frames are read through the read-ahead window (most of their
    // bytes would be read anyway); the header of a frame that follows a
    // large one is read alone, so the bodies are not read twice.
    let mut prev_len = 0u64;
    let mut fixed = [0u8; CERT_MAX_LEN];
    let clean = loop {
        let n = if prev_len < SMALL_FRAME {
            let (from, n) = rd.window(&*file, &seg.path, seg.len, off, CERT_MAX_LEN)?;
            fixed[..n].copy_from_slice(&rd.ahead[from..from + n]);
            n
        } else {
            let want = (CERT_MAX_LEN as u64).min(seg.len.saturating_sub(off)) as usize;
            file.read_at(&mut fixed[..want], off)
                .map_err(|e| io_err(&seg.path, "reading", e))?
        };
        match epoch::parse_header(&fixed[..n], n < CERT_MAX_LEN, ident) {
            Header::Zero => break true,
            Header::Plausible {
                header_len,
                body_len,
            } => {
                let total = (header_len + body_len) as u64;
                if total > seg.len - off {
                    break false;
                }
                run.push(off);
                off += total;
                prev_len = total;
            }
            Header::Stale | Header::Bad(_) => break false,
        }
    };
    if clean {
        for &at in run.iter().rev() {
            if let FrameRead::Valid { cert, .. } =
                read_frame(&*file, &seg.path, seg.len, at, ident, rd)?
            {
                return Ok(cert.checkpoint_epoch);
            }
        }
    }
    Ok(newest_marks(vfs, segs, rd)?.0)
}

/// The highest checkpoint mark of a valid frame of the segment files in
/// `dir` (0 when none): for repair, which reads it from `damaged/` too.
pub(crate) fn mark_in_dir(vfs: &dyn Vfs, dir: &Path) -> Result<u64> {
    if !vfs.exists(dir) {
        return Ok(0);
    }
    let found = list_segments(vfs, dir)?;
    let with_header: Vec<&FoundSegment> = found.iter().filter(|s| s.header.is_some()).collect();
    durable_mark(vfs, &with_header, &mut FrameReader::new())
}

/// Scans the whole log in `dir`, validating every epoch, and replays it to
/// `callback` when there is one.
pub(crate) fn scan(
    vfs: &dyn Vfs,
    dir: &Path,
    opts: &ReplayOptions,
    mut callback: Option<&mut dyn FnMut(&Record<'_>) -> bool>,
    report: &mut RecoveryReport,
) -> Result<ScanEnd> {
    let found = list_segments(vfs, dir)?;
    let mut rd = FrameReader::new();
    // A log written by another format version is not damaged: it is refused
    // whole, in every mode, naming both versions.
    if let Some(s) = found.iter().find(|s| s.other_version.is_some()) {
        let v = s.other_version.unwrap_or_default();
        let e = Error::corrupt(
            &s.path,
            4,
            format!(
                "segment written in pwal format version {v}; this library reads format version {FORMAT_VERSION} only"
            ),
        );
        report.note_error(&e, 0);
        return Err(e);
    }
    // The first segment whose header cannot be used although the file holds
    // log data: a checksum-valid header with impossible values, or a header
    // that does not validate in front of a valid first frame (the header
    // was synced before any frame was written, flusher.rs `rollover`, so it
    // was damaged afterwards, and the epochs in the file were acknowledged).
    // Only the segments before it are a trustworthy prefix.
    //
    // A damaged header in front of epochs that all lie at or below the
    // durable checkpoint mark costs nothing: those pages are in the
    // database. Such a segment is reported and passed over (the next
    // segment with a valid header starts at most one epoch after the mark,
    // proven by a valid frame); a checkpoint removes it in its turn.
    // Marks are read from every segment with a valid header, those after a
    // damaged one included: a valid frame anywhere proves its mark.
    let with_header: Vec<&FoundSegment> = found.iter().filter(|s| s.header.is_some()).collect();
    let mut bad_header: Option<(&FoundSegment, String)> = None;
    let mut below_mark_headers: Vec<(&FoundSegment, String, u64, u64)> = Vec::new();
    let mut header_mark: Option<u64> = None;
    for s in found.iter().filter(|s| s.header.is_none()) {
        let why = if let Some(why) = &s.rejected {
            why.clone()
        } else if let Some(epoch) = own_first_frame(vfs, s, &mut rd)? {
            format!(
                "segment header does not validate, yet the segment holds a valid frame of epoch {epoch} at offset {DATA_OFFSET}: the header was damaged after epochs were written to it"
            )
        } else {
            continue;
        };
        let next = found
            .iter()
            .filter(|n| n.id > s.id)
            .find_map(|n| n.header.map(|h| h.first_epoch));
        if let Some(n) = next {
            let m = match header_mark {
                Some(m) => m,
                None => *header_mark.insert(durable_mark(vfs, &with_header, &mut rd)?),
            };
            if n.saturating_sub(1) <= m {
                below_mark_headers.push((s, why, n, m));
                continue;
            }
        }
        bad_header = Some((s, why));
        break;
    }
    let active: Vec<&FoundSegment> = found
        .iter()
        .filter(|s| s.header.is_some() && bad_header.as_ref().is_none_or(|(b, _)| s.id < b.id))
        .collect();
    let mut end = ScanEnd::default();
    for (s, why, n, m) in &below_mark_headers {
        end.damaged.push(s.path.clone());
        report.note_damage(
            &s.path,
            0,
            0,
            format!(
                "a segment holding only epochs before {n}, at or below the checkpoint mark {m}, is damaged; nothing is lost (their pages are in the database already; a checkpoint removes the file): {}: offset 0: {why}",
                s.path.display()
            ),
        );
    }
    let unreadable_before = |id: u64| -> String {
        let names: Vec<String> = found
            .iter()
            .filter(|s| s.header.is_none() && s.id < id)
            .map(|s| s.path.display().to_string())
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("; segment files with no valid header: {}", names.join(", "))
        }
    };

    // The durable checkpoint mark, read before anything is replayed: epochs
    // at or below it were checkpointed and are not delivered again. Marks
    // never go down, so it is in the newest segment holding a valid frame.
    // A scan that replays nothing (open, repair) learns it as it reads.
    let mut mark: Option<u64> = None;
    if callback.is_some() {
        let m = match header_mark {
            Some(m) => m,
            None => durable_mark(vfs, &with_header, &mut rd)?,
        };
        mark = Some(m);
        report.checkpoint_epoch = m;
        end.checkpoint_epoch = m;
    }

    // Where the log must begin: no later than the highest log start any
    // segment header names, or the epoch after the highest checkpoint mark
    // (read only when the headers do not already account for the oldest
    // segment). A later start is a lost beginning; there is no prefix to
    // return then, so this fails in durable-prefix mode too.
    if let Some(oldest) = active.first() {
        let first = oldest.header.expect("filtered above").first_epoch;
        let h = found
            .iter()
            .filter_map(|s| s.header.map(|h| h.log_start_epoch))
            .max()
            .unwrap_or(first);
        if first > h {
            let m = match mark {
                Some(m) => m,
                None => newest_marks(vfs, &active, &mut rd)?.0,
            };
            end.checkpoint_epoch = m;
            let must = h.max(m.saturating_add(1));
            if first > must {
                let e = Error::corrupt(
                    &oldest.path,
                    0,
                    format!(
                        "the log must hold every epoch from {must} on (log start named by the segment headers: {h}; highest checkpoint mark in a frame: {m}), but its oldest segment starts at epoch {first}: epochs {must}..={} are missing{}",
                        first.saturating_sub(1),
                        unreadable_before(oldest.id)
                    ),
                );
                report.note_error(&e, must);
                return Err(e);
            }
        }
    }

    let mut expected: Option<u64> = None;

    // Stops the scan at damage: an error, or in durable-prefix mode the
    // prefix with the rest reported as skipped.
    let fail = |report: &mut RecoveryReport,
                end: &mut ScanEnd,
                file: &Path,
                offset: u64,
                epoch: u64,
                what: String,
                rest: &[&FoundSegment],
                bytes_left_here: u64|
     -> Result<()> {
        let msg = format!("{}: offset {offset}: {what}", file.display());
        report.note_damage(file, offset, epoch, msg);
        if end.stop.is_none() {
            end.stop = Some((file.to_path_buf(), offset, epoch));
        }
        if opts.durable_prefix {
            report.skipped_segments += rest.len() as u64;
            report.skipped_bytes += bytes_left_here
                + rest
                    .iter()
                    .skip(1)
                    .map(|s| s.len.saturating_sub(DATA_OFFSET))
                    .sum::<u64>();
            Ok(())
        } else {
            Err(Error::corrupt(file, offset, what))
        }
    };
    // Discards a torn tail and says so.
    let torn = |report: &mut RecoveryReport,
                file: &Path,
                offset: u64,
                epoch: u64,
                bytes: u64,
                what: String| {
        report.torn_tail_bytes += bytes;
        let msg = format!(
            "{}: offset {offset}: torn tail of {bytes} bytes discarded, not proven durable by a later frame ({what})",
            file.display()
        );
        report.note_damage(file, offset, epoch, msg);
    };
    let mut rs = ReplayState {
        order: SeqOrder {
            highest: None,
            refuse: opts.refuse_seq_inversions,
        },
        ..ReplayState::default()
    };
    // The mark, when a scan that did not read it first needs it.
    let mut late_mark: Option<u64> = header_mark;
    // The segment (its index in `active`) and the offset where the last
    // valid frame read ends.
    let mut last_valid: Option<(usize, u64)> = None;

    let mut i = 0;
    'segments: while i < active.len() {
        let seg = active[i];
        let h = seg.header.expect("filtered above");
        let ident = &h.ident();
        match expected {
            // The scan moves on to a segment only when it starts at the
            // epoch expected (a gap or an overlap stops it inside the loop
            // below).
            Some(exp) => debug_assert_eq!(h.first_epoch, exp),
            None => {
                expected = Some(h.first_epoch);
                // first_epoch >= 1: a header with 0 is never activated.
                end.last_epoch = h.first_epoch.saturating_sub(1);
            }
        }
        report.segments += 1;
        let file = vfs
            .open_read(&seg.path)
            .map_err(|e| io_err(&seg.path, "opening", e))?;
        let seg_path: Arc<Path> = Arc::from(seg.path.as_path());
        let file_len = seg.len;
        // Damage at `off` of this segment, where epoch `exp` was expected: an
        // error, or the durable prefix with the rest skipped.
        macro_rules! fail_here {
            ($off:expr, $exp:expr, $what:expr) => {
                fail(
                    report,
                    &mut end,
                    &seg.path,
                    $off,
                    $exp,
                    $what,
                    &active[i..],
                    file_len.saturating_sub($off),
                )
            };
        }
        let mut off = DATA_OFFSET;
        loop {
            let exp = expected.expect("set above");
            if opts.until_epoch.is_some_and(|last| exp > last) {
                // Beside this process's writer: what it has made durable
                // since the scan began is not part of this reading.
                break 'segments;
            }
            let (what, zero, claimed) =
                match read_frame(&*file, &seg.path, file_len, off, ident, &mut rd)? {
                    FrameRead::End => (
                        "no frame (zeros or the end of the file)".to_string(),
                        true,
                        None,
                    ),
                    FrameRead::Valid {
                        len,
                        header_len,
                        cert,
                        txns,
                    } => {
                        if cert.epoch != exp {
                            let what = format!(
                                "epoch {} found where epoch {exp} was expected",
                                cert.epoch
                            );
                            fail_here!(off, exp, what)?;
                            break 'segments;
                        }
                        // A part that does not continue what was read
                        // before it: its earlier parts are lost, which is
                        // damage unless the checkpoint covers the epoch
                        // (its transaction is in the database, and the
                        // segments of the earlier parts may be gone).
                        if let Some(why) = rs.parted.first_orphan(&txns) {
                            let m = match mark.or(late_mark) {
                                Some(m) => m,
                                None => {
                                    let m =
                                        durable_mark(vfs, &with_header, &mut FrameReader::new())?;
                                    late_mark = Some(m);
                                    m
                                }
                            };
                            if cert.epoch > m {
                                fail_here!(off, exp, format!("epoch {}: {why}", cert.epoch))?;
                                break 'segments;
                            }
                        }
                        // Epochs at or below the checkpoint mark are
                        // validated (above) and counted as read, but not
                        // delivered: they are in the database.
                        let body = &rd.frame()[header_len..len as usize];
                        let at = At {
                            path: &seg_path,
                            frame: off,
                            body: off + header_len as u64,
                        };
                        let deliver = cert.epoch > mark.unwrap_or(0);
                        replay(
                            vfs,
                            match callback {
                                Some(ref mut cb) if deliver => Some(&mut **cb),
                                _ => None,
                            },
                            deliver,
                            cert.epoch,
                            body,
                            &txns,
                            &mut rs,
                            report,
                            &at,
                        )?;
                        report.epochs += 1;
                        if report.first_epoch == 0 {
                            report.first_epoch = cert.epoch;
                        }
                        report.last_epoch = cert.epoch;
                        report.bytes += len;
                        end.checkpoint_epoch = end.checkpoint_epoch.max(cert.checkpoint_epoch);
                        end.synced_through = end.synced_through.max(cert.synced_through);
                        end.last_epoch = cert.epoch;
                        if !txns.is_empty() {
                            end.last_record_epoch = cert.epoch;
                        }
                        // Bounded by MAX_EPOCH (validate_frame).
                        expected = Some(exp + 1);
                        off += len;
                        last_valid = Some((i, off));
                        continue;
                    }
                    FrameRead::Stale => (
                        "frame of another incarnation of this file".to_string(),
                        false,
                        None,
                    ),
                    FrameRead::Damaged(why) => (why, false, None),
                    FrameRead::DamagedFrame(why, len) => (why, false, Some(len)),
                };
            let next = active.get(i + 1).map(|n| n.header.expect("filtered above"));
            // A later segment starting at exactly the epoch missing here was
            // started by an open that found this segment's tail torn and
            // continued from it: it supersedes the rest of this segment, and
            // its own frames speak of its own epochs, not of these.
            let superseded = next.is_some_and(|n| n.first_epoch == exp);
            if zero && superseded {
                // The ordinary end of a segment's frames.
                break;
            }
            // Damage at or below the durable checkpoint mark costs nothing:
            // those pages are in the database. The scan goes on at the next
            // valid frame of this segment, or at the next segment, when every
            // epoch missing in between is at or below the mark (the mark
            // itself comes from a valid frame: `durable_mark`).
            let m = match mark.or(late_mark) {
                Some(m) => m,
                None => {
                    let m = durable_mark(vfs, &with_header, &mut FrameReader::new())?;
                    late_mark = Some(m);
                    m
                }
            };
            // A next segment that starts at `exp` supersedes the rest of this
            // one (the rules below), and frames of this segment from the next
            // segment's first epoch on are superseded too: never read past to.
            if exp <= m && !superseded {
                let next_first = next.map(|n| n.first_epoch);
                let after =
                    search_after(&*file, &seg.path, file_len, off + 1, ident, &mut rd, None)?;
                let here = match (after.first_valid, after.first_valid_at) {
                    (Some(e2), Some(at2))
                        if e2 > exp && e2 - 1 <= m && next_first.is_none_or(|n| e2 < n) =>
                    {
                        Some((e2, Some(at2)))
                    }
                    _ => None,
                };
                let resume = here.or_else(|| {
                    next_first
                        .filter(|&n| n > exp && n - 1 <= m)
                        .map(|n| (n, None))
                });
                if let Some((resume_epoch, resume_at)) = resume {
                    let msg = format!(
                        "epochs {exp}..={}, at or below the checkpoint mark {m}, are damaged; nothing is lost (their pages are in the database already; a checkpoint removes the segment): {}: offset {off}: epoch {exp}: {what}",
                        resume_epoch - 1,
                        seg.path.display(),
                    );
                    report.note_damage(&seg.path, off, exp, msg);
                    end.checkpoint_epoch = end.checkpoint_epoch.max(m);
                    end.damaged.push(seg.path.clone());
                    expected = Some(resume_epoch);
                    match resume_at {
                        Some(at) => {
                            off = at;
                            continue;
                        }
                        None => break,
                    }
                }
            }
            // Epoch `exp` is missing here: a torn tail, unless a later valid
            // frame of the same writer proves it had been synced.
            let after = search_after(
                &*file,
                &seg.path,
                file_len,
                off + 1,
                ident,
                &mut rd,
                Some(exp),
            )?;
            end.checkpoint_epoch = end.checkpoint_epoch.max(after.max_checkpoint);
            end.synced_through = end.synced_through.max(after.max_synced);
            if let Some((pe, poff, synced)) = after.proof {
                let what = format!(
                    "epoch {exp}: {what}, yet the frame of epoch {pe} at offset {poff} records every epoch through {synced} as synced"
                );
                fail_here!(off, exp, what)?;
                break 'segments;
            }
            // What this incarnation wrote at `off` and was torn, not the
            // stale rest of a recycled file's earlier life: the frame its
            // header claims (with the end mark a recycled segment puts after
            // it), up to the first stale frame after `off`, or the last
            // non-zero byte, whichever comes first.
            let mut torn_end = after
                .first_foreign
                .map_or(after.end_of_data, |f| f.min(after.end_of_data));
            if let Some(len) = claimed {
                torn_end =
                    torn_end.min(off.saturating_add(len).saturating_add(END_MARK_LEN as u64));
            }
            let here = torn_end.max(off + 1) - off;
            if superseded {
                torn(
                    report,
                    &seg.path,
                    off,
                    exp,
                    here,
                    format!("epoch {exp}: {what}; a later segment starts again at epoch {exp}"),
                );
                break;
            }
            let later = &active[i + 1..];
            if zero && after.first_valid.is_none() && later.is_empty() {
                // The end of the log.
                break 'segments;
            }
            if let Some(n) = next {
                if n.first_epoch < exp {
                    let what = format!(
                        "the next segment starts at epoch {} but this one holds epochs up to {} (epochs overlap)",
                        n.first_epoch,
                        exp - 1
                    );
                    fail_here!(off, exp, what)?;
                    break 'segments;
                }
                if let Some((p, pe, synced)) = proof_in(vfs, later, exp, &mut rd)? {
                    let what = format!(
                        "epoch {exp}: {what}; the next segment starts at epoch {} (an epoch gap), and the frame of epoch {pe} in {} records every epoch through {synced} as synced{}",
                        n.first_epoch,
                        p.display(),
                        unreadable_before(active[i + 1].id)
                    );
                    fail_here!(off, exp, what)?;
                    break 'segments;
                }
            }
            // Nothing later says epoch `exp` was ever synced: it and
            // everything after it are a torn tail.
            let rest: u64 = later
                .iter()
                .map(|s| s.len.saturating_sub(DATA_OFFSET))
                .sum();
            let what = if later.is_empty() {
                format!("epoch {exp}: {what}")
            } else {
                format!(
                    "epoch {exp}: {what}; with the {} later segment files, which no frame shows synced",
                    later.len()
                )
            };
            torn(report, &seg.path, off, exp, here.saturating_add(rest), what);
            end.stop = Some((seg.path.clone(), off, exp));
            end.discarded_later = later.len() as u64;
            break 'segments;
        }
        i += 1;
    }
    // In durable-prefix mode an earlier failure already skipped the rest.
    if let (Some((seg, what)), 0) = (bad_header, report.skipped_segments) {
        let rest: Vec<&FoundSegment> = found.iter().filter(|s| s.id >= seg.id).collect();
        let exp = end.last_epoch.saturating_add(1);
        fail(report, &mut end, &seg.path, 0, exp, what, &rest, seg.len)?;
    }
    if let Some((i, off)) = last_valid {
        let seg = active[i];
        let h = seg.header.expect("filtered above");
        end.prefix_end = Some((seg.path.clone(), off, h.ident()));
    }
    if end.stop.is_some() {
        // Where the prefix ends early, the frames past it may have been the
        // only ones carrying the durable mark: it is read (from every
        // segment with a valid header, the newest first) so that a cut can
        // keep it.
        let m = match mark.or(late_mark) {
            Some(m) => m,
            None => durable_mark(vfs, &with_header, &mut rd)?,
        };
        end.checkpoint_epoch = end.checkpoint_epoch.max(m);
    }
    if mark.is_none() {
        report.checkpoint_epoch = end.checkpoint_epoch;
    }
    // Transactions in parts the log replays keep their first parts (open
    // pins them); those at or below the mark are in the database.
    let m = end.checkpoint_epoch;
    end.parted = rs.parted_done;
    end.parted.retain(|&(_, last)| last > m);
    end.segments = found;
    Ok(end)
}

/// The epoch of the first frame of a segment whose header does not validate,
/// if that frame validates with the segment's id (from its name) and the
/// salt and first epoch the frame carries (the first frame of a segment
/// carries its identity).
fn own_first_frame(vfs: &dyn Vfs, seg: &FoundSegment, rd: &mut FrameReader) -> Result<Option<u64>> {
    if seg.len < DATA_OFFSET + CERT_MIN_LEN as u64 {
        return Ok(None);
    }
    let file = vfs
        .open_read(&seg.path)
        .map_err(|e| io_err(&seg.path, "opening", e))?;
    let mut fixed = [0u8; CERT_MAX_LEN];
    let n = file
        .read_at(&mut fixed, DATA_OFFSET)
        .map_err(|e| io_err(&seg.path, "reading", e))?;
    let Some(ident) = epoch::carried_identity(&fixed[..n]).filter(|c| c.id == seg.id) else {
        return Ok(None);
    };
    match read_frame(&*file, &seg.path, seg.len, DATA_OFFSET, &ident, rd)? {
        FrameRead::Valid { cert, .. } => Ok(Some(cert.epoch)),
        _ => Ok(None),
    }
}

/// Where the frame being replayed lies.
struct At<'a> {
    path: &'a Arc<Path>,
    /// Offsets of the frame and of its body in the file.
    frame: u64,
    body: u64,
}

/// What replay carries from epoch to epoch.
#[derive(Default)]
struct ReplayState {
    order: SeqOrder,
    parted: Parted,
    /// Transactions in parts completed: the epochs of first and last part.
    parted_done: Vec<(u64, u64)>,
    /// The record of an earlier part, read again to deliver it.
    part_buf: Vec<u8>,
}

/// Takes the records of one epoch, in replay order: parts with more to
/// follow are remembered, and each committing record is counted and, when
/// `deliver`, given to `cb` (after the earlier parts of its transaction).
#[allow(clippy::too_many_arguments)]
fn replay(
    vfs: &dyn Vfs,
    mut cb: Option<&mut dyn FnMut(&Record<'_>) -> bool>,
    deliver: bool,
    epoch: u64,
    body: &[u8],
    txns: &[TxnRef],
    rs: &mut ReplayState,
    report: &mut RecoveryReport,
    at: &At<'_>,
) -> Result<()> {
    for t in txns {
        if t.more {
            let crc = u32::from_le_bytes(body[t.offset..t.offset + 4].try_into().unwrap());
            let loc = PartLoc {
                path: at.path.clone(),
                offset: at.body + t.offset as u64,
                len: t.len,
                crc,
            };
            rs.parted.add(t, epoch, t.frames as u64, loc);
            continue;
        }
        let earlier = match rs.parted.commit(t) {
            // Below the mark only (checked before replay): not delivered.
            Completes::Orphan => continue,
            Completes::Whole => None,
            Completes::Parts(p) => {
                if p.first_epoch < epoch {
                    rs.parted_done.push((p.first_epoch, epoch));
                }
                Some(p)
            }
        };
        if !deliver {
            continue;
        }
        report.transactions += 1;
        report.records += t.frames as u64 + earlier.as_ref().map_or(0, |p| p.frames);
        let Some(cb) = cb.as_deref_mut() else {
            continue;
        };
        let order = &mut rs.order;
        match order.highest {
            Some((seq, in_epoch)) if t.commit_seq < seq => {
                if order.refuse {
                    let e = Error::corrupt(
                        &**at.path,
                        at.frame,
                        format!(
                            "commit sequence inversion: transaction {} with commit sequence {} in epoch {epoch} comes after commit sequence {seq} in epoch {in_epoch} (refused: a lower sequence reached the log later, submitted after the higher one or written in parts that committed after it)",
                            t.txn_id, t.commit_seq
                        ),
                    );
                    report.note_error(&e, epoch);
                    return Err(e);
                }
                report.seq_inversions += 1;
            }
            _ => order.highest = Some((t.commit_seq, epoch)),
        }
        for loc in earlier.iter().flat_map(|p| &p.locs) {
            let rec = read_part(vfs, loc, t, &mut rs.part_buf)?;
            deliver_record(cb, epoch, t, rec, (&loc.path, loc.offset))?;
        }
        if earlier.is_some() {
            // A part's buffer is up to a record's size: not kept for the rest
            // of the scan.
            rs.part_buf = Vec::new();
        }
        let here = (&**at.path, at.body + t.offset as u64);
        deliver_record(cb, epoch, t, &body[t.offset..t.offset + t.len], here)?;
    }
    Ok(())
}

/// Reads an earlier part of `t` again, checking that it is the record first
/// read there.
fn read_part<'b>(
    vfs: &dyn Vfs,
    loc: &PartLoc,
    t: &TxnRef,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8]> {
    let file = vfs
        .open_read(&loc.path)
        .map_err(|e| io_err(&loc.path, "opening", e))?;
    // Parts differ in length by a few bytes (their fields are
    // variable-length): a buffer grown by doubling for a slightly longer
    // one would hold twice a record.
    if buf.capacity() < loc.len {
        *buf = Vec::new();
        buf.reserve_exact(loc.len);
    }
    buf.resize(loc.len, 0);
    let n = file
        .read_at(buf, loc.offset)
        .map_err(|e| io_err(&loc.path, "reading", e))?;
    let rec = &buf[..n];
    let whole = n == loc.len
        && u32::from_le_bytes(rec[..4].try_into().unwrap()) == loc.crc
        && crc32c::crc32c(&rec[4..]) == loc.crc;
    if !whole {
        return Err(Error::corrupt(
            &*loc.path,
            loc.offset,
            format!(
                "a part of transaction {} (commit sequence {}) changed on disk while the log was being read",
                t.txn_id, t.commit_seq
            ),
        ));
    }
    Ok(rec)
}

/// Gives the frames of one record of `t` to the callback.
fn deliver_record(
    cb: &mut dyn FnMut(&Record<'_>) -> bool,
    epoch: u64,
    t: &TxnRef,
    rec: &[u8],
    (path, offset): (&Path, u64),
) -> Result<()> {
    let bad = |why: String| {
        Error::corrupt(
            path,
            offset,
            format!(
                "epoch {epoch}, transaction {} (commit sequence {}): {why}",
                t.txn_id, t.commit_seq
            ),
        )
    };
    let (txn_epoch, frames) = epoch::record_frames(rec).map_err(bad)?;
    for f in frames {
        let f = f.map_err(bad)?;
        let r = Record {
            epoch,
            txn_id: t.txn_id,
            commit_seq: t.commit_seq,
            txn_epoch,
            page_number: f.page_number,
            db_size_if_commit: f.db_size_if_commit,
            data: f.data,
            file_id: t.file_id,
        };
        if !cb(&r) {
            return Err(Error::Aborted { epoch });
        }
    }
    Ok(())
}
