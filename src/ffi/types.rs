//! The `#[repr(C)]` types of the ABI, the constants C sees, and their
//! conversions to and from the core's types.
//!
//! Structs that C fills in or reads back (`pwal_options`, `pwal_stats`,
//! `pwal_recovery_report`) start with a `uint32_t struct_size`, so that fields
//! can be added at the end without breaking programs built against an older
//! header: pwal reads or writes only the first `struct_size` bytes.

use std::os::raw::{c_char, c_void};
use std::time::Duration;

use super::boundary::Failure;
use crate::{FallbackReason, LatencySummary, Mode, Options, Stats, SyncPolicy};

/// Major version of the header (and of the library it came with).
pub const PWAL_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const PWAL_VERSION_MINOR: u32 = 2;
/// Patch version.
pub const PWAL_VERSION_PATCH: u32 = 0;

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}
// The macros are literals (cbindgen cannot evaluate `env!`); these keep them
// equal to Cargo.toml's version.
const _: () = assert!(parse_u32(env!("CARGO_PKG_VERSION_MAJOR")) == PWAL_VERSION_MAJOR);
const _: () = assert!(parse_u32(env!("CARGO_PKG_VERSION_MINOR")) == PWAL_VERSION_MINOR);
const _: () = assert!(parse_u32(env!("CARGO_PKG_VERSION_PATCH")) == PWAL_VERSION_PATCH);

/// `timeout_ms` value meaning "wait until durable, however long it takes".
pub const PWAL_WAIT_FOREVER: u32 = u32::MAX;

/// A wait with a timeout below this many milliseconds never writes or syncs
/// on the calling thread: it hands the flush to the log's flusher thread
/// (see `pwal_wait_durable`).
pub const PWAL_LEAD_MIN_TIMEOUT_MS: u32 = 100;
const _: () =
    assert!(crate::coordinator::LEAD_MIN_BUDGET.as_millis() == PWAL_LEAD_MIN_TIMEOUT_MS as u128);

/// `pwal_recover` flag: on damage before valid later data, stop at the first
/// damage and return `PWAL_OK` with the records before it (the damage is
/// described in `report->damage`), instead of `PWAL_ERR_CORRUPT`.
pub const PWAL_RECOVER_DURABLE_PREFIX: u32 = 1;

/// `pwal_recover` / `pwal_recover_and_open` flag: fail with
/// `PWAL_ERR_CORRUPT` at the first commit-sequence inversion (a transaction
/// whose `commit_seq` is below that of a transaction already replayed, which
/// can only happen across epochs), before any frame of it is given to the
/// callback; the message names both sequences and both epochs. Without it
/// the inversions are replayed and counted in `report->seq_inversions`. It
/// fails with this flag even under `PWAL_RECOVER_DURABLE_PREFIX`: the bytes
/// are not damaged, the engine submitted out of order.
pub const PWAL_RECOVER_REFUSE_SEQ_INVERSIONS: u32 = 2;

/// `pwal_recover` / `pwal_recover_and_open` flag: validate the whole log
/// before the callback is called at all. On damage the callback is never
/// called and the call fails as it would without the flag
/// (`PWAL_ERR_CORRUPT`, `report` saying where); with
/// `PWAL_RECOVER_DURABLE_PREFIX` too, the validated prefix is delivered.
/// Without it a strict recovery of a damaged log gives the callback every
/// record before the damage and only then fails. Cost: the log is read
/// twice (once to validate, once to deliver); the second read usually comes
/// from the page cache. Since 0.2.0.
pub const PWAL_RECOVER_VALIDATE_FIRST: u32 = 4;

/// Largest page accepted in a frame, in bytes (`pwal_frame.len`).
pub const PWAL_MAX_PAGE_BYTES: u32 = 65536;
/// Most frames in one transaction (`pwal_txn.frame_count`): enough for a
/// transaction of `PWAL_MAX_TXN_BYTES` in 512-byte pages. An array of this
/// many `pwal_frame`s is 48 MiB: allocate large frame arrays on the heap.
pub const PWAL_MAX_TXN_FRAMES: u32 = 2097152;
/// Most page bytes in one transaction: the sum of its frames' `len`, 1 GiB.
/// A transaction of any size up to it commits atomically (all of it or none
/// after any crash); see `pwal_submit` for how a large one is written.
pub const PWAL_MAX_TXN_BYTES: u32 = 1073741824;
/// Smallest `pwal_options.max_batch_bytes`.
pub const PWAL_MIN_BATCH_BYTES: u64 = 4096;
/// Largest epoch body, in bytes, and so the largest
/// `pwal_options.max_batch_bytes` (32 MiB). Writers whose records would grow
/// the filling epoch past twice `max_batch_bytes` (but at least
/// `PWAL_MIN_EPOCH_CAP_BYTES`, at most this) wait for the next epoch; a
/// record alone in an epoch may be larger, up to `PWAL_MAX_RECORD_BYTES`.
pub const PWAL_MAX_EPOCH_BYTES: u64 = 33554432;
/// The least the filling epoch takes before writers wait for the next one
/// (8 MiB), whatever `pwal_options.max_batch_bytes`: a small
/// `max_batch_bytes` seals early, it does not limit how many commits an
/// epoch groups.
pub const PWAL_MIN_EPOCH_CAP_BYTES: u64 = 8388608;
/// Largest `pwal_options.max_flush_delay_us` (10 s).
pub const PWAL_MAX_FLUSH_DELAY_US: u64 = 10000000;
/// The size of a log's first segment, and of the first after an idle spell
/// (4 MiB, or `pwal_options.segment_bytes` if smaller).
pub const PWAL_FIRST_SEGMENT_BYTES: u64 = 4194304;
/// Smallest and largest `pwal_options.segment_bytes` (64 KiB, 1 TiB).
pub const PWAL_MIN_SEGMENT_BYTES: u64 = 65536;
pub const PWAL_MAX_SEGMENT_BYTES: u64 = 1099511627776;
/// Most lanes a log can have (`pwal_options.lanes`).
pub const PWAL_MAX_LANES: u32 = 256;
/// Entries of `pwal_stats.lane_backlog_bytes`; lanes past this many are
/// summed into the last entry.
pub const PWAL_STATS_LANES: usize = 64;
/// Size of the fixed text buffers in `pwal_stats` and
/// `pwal_recovery_report`, NUL included; longer text is truncated.
pub const PWAL_TEXT_BYTES: usize = 256;

const _: () = assert!(PWAL_MAX_PAGE_BYTES as usize == crate::MAX_PAGE_BYTES);
const _: () = assert!(PWAL_MIN_EPOCH_CAP_BYTES as usize == crate::MIN_EPOCH_CAP_BYTES);
const _: () = assert!(PWAL_MAX_TXN_FRAMES as usize == crate::MAX_TXN_FRAMES);
const _: () = assert!(PWAL_MAX_TXN_BYTES as usize == crate::MAX_TXN_BYTES);
const _: () = assert!(PWAL_MIN_BATCH_BYTES as usize == crate::config::MIN_BATCH_BYTES);
const _: () = assert!(PWAL_MAX_EPOCH_BYTES as usize == crate::MAX_EPOCH_BODY_BYTES);
const _: () = assert!(PWAL_MAX_FLUSH_DELAY_US == crate::config::MAX_FLUSH_DELAY.as_micros() as u64);
const _: () = assert!(PWAL_MIN_SEGMENT_BYTES == crate::config::MIN_SEGMENT_BYTES);
const _: () = assert!(PWAL_FIRST_SEGMENT_BYTES == crate::config::FIRST_SEGMENT_BYTES);
const _: () = assert!(PWAL_MAX_SEGMENT_BYTES == crate::config::MAX_SEGMENT_BYTES);
const _: () = assert!(PWAL_MAX_LANES as usize == crate::MAX_LANES);

/// When a batch is acknowledged durable (`pwal_options.sync`, a `uint32_t`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pwal_sync {
    /// Default. `fdatasync` before acknowledging: survives power loss.
    PWAL_SYNC_FULL = 0,
    /// Acknowledged once written to the OS, synced in the background: survives
    /// a process crash, not a power loss.
    PWAL_SYNC_NORMAL = 1,
    /// Acknowledged once written to the OS, never synced: nothing promised.
    PWAL_SYNC_OFF = 2,
}

/// How writer threads map to lanes (`pwal_options.mode`, a `uint32_t`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pwal_mode {
    /// Default. One lane per writer thread: parallel append.
    PWAL_MODE_AUTO = 0,
    /// One ordered lane for every thread: the compatibility path.
    PWAL_MODE_CONSERVATIVE = 1,
    /// Lanes, with a sample of batches also encoded the conservative way and
    /// compared; on a mismatch the log falls back to conservative.
    PWAL_MODE_SHADOW_COMPARE = 2,
}

/// Why a log left its configured mode for the conservative path
/// (`pwal_stats.fallback_reason`); see `pwal_fallback_reason_name`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pwal_fallback_reason {
    /// No fallback.
    PWAL_FALLBACK_NONE = 0,
    /// `PWAL_MODE=conservative` in the environment forced the conservative
    /// path at open.
    PWAL_FALLBACK_OPERATOR_FORCED = 1,
    /// Not raised since 0.2.0, which raises `PWAL_FALLBACK_ENCODER_DIVERGENCE`
    /// for what 0.1.0 reported under this name (kept so that programs naming
    /// it still build). Values 2, 3 and 5 to 8 are reserved: no condition
    /// raises them.
    PWAL_FALLBACK_CERTIFICATE_CHECKSUM_MISMATCH = 4,
    /// Shadow-compare mode found that the lane encoder's bytes for a
    /// transaction differ from the reference encoder's: a bug in pwal's
    /// encoder, not damage on the disk. The reference bytes were logged, and
    /// the log stays conservative (`fallback_detail` names the transaction
    /// and the byte). Since 0.2.0.
    PWAL_FALLBACK_ENCODER_DIVERGENCE = 9,
}

/// Options for `pwal_open`. Initialise with `pwal_options_init`, then change
/// what you need. Every numeric field: 0 means the default.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_options {
    /// `sizeof(pwal_options)`, set by `pwal_options_init`.
    pub struct_size: u32,
    /// A `pwal_sync` value; default `PWAL_SYNC_FULL`.
    pub sync: u32,
    /// A `pwal_mode` value; default `PWAL_MODE_AUTO`.
    pub mode: u32,
    /// Number of lanes, 1 to `PWAL_MAX_LANES`; 0 means the number of CPUs.
    pub lanes: u32,
    /// Seal an epoch once this many bytes are buffered
    /// (`PWAL_MIN_BATCH_BYTES` to `PWAL_MAX_EPOCH_BYTES`); 0 means 4 MiB.
    /// Writers that outrun the disk wait once the filling epoch holds twice
    /// this (at least `PWAL_MIN_EPOCH_CAP_BYTES`, at most
    /// `PWAL_MAX_EPOCH_BYTES`): a busy lane holds up to about twice that
    /// (the epoch filling and the one being written, whose buffers are
    /// reused).
    pub max_batch_bytes: u64,
    /// Seal an epoch at the latest this long after its first record, in
    /// microseconds (at most `PWAL_MAX_FLUSH_DELAY_US`); 0 means 2 ms.
    pub max_flush_delay_us: u64,
    /// In `PWAL_MODE_SHADOW_COMPARE`, share of batches compared, per mille
    /// (0 to 1000); 0 means every batch.
    pub shadow_compare_per_mille: u32,
    /// 0 (default): `pwal_open` checks the `PWAL_*` environment variables
    /// and fails with `PWAL_ERR_INVALID` naming one that does not parse.
    /// Non-zero: it does not look at them, and the fields
    /// `pwal_options_init` filled from them (`env_fields`) and the program
    /// left as filled go back to their defaults.
    pub ignore_env: u32,
    /// The largest size a segment file is preallocated to, in bytes
    /// (`PWAL_MIN_SEGMENT_BYTES` to `PWAL_MAX_SEGMENT_BYTES`); 0 means 64 MiB.
    /// Segments start at `PWAL_FIRST_SEGMENT_BYTES` (or this, if smaller) and
    /// each next one doubles, up to this; after an idle second the next one
    /// starts small again. A segment started for a frame of 1 MiB or more
    /// is not zero-filled: it grows as it is written.
    pub segment_bytes: u64,
    /// Set by `pwal_options_init`: the `PWAL_ENV_*` bits of the fields it
    /// filled from `PWAL_*` environment variables. The environment fills
    /// the options the way the defaults do; a field the program sets
    /// afterwards wins (a value it changed no longer counts as the
    /// environment's). Leave it as `pwal_options_init` set it. Since 0.2.0:
    /// a program built with the 0.1.0 header (`struct_size` 48) gets
    /// every field it left at its default filled from the environment.
    pub env_fields: u32,
    /// Called for each event of the log (see `pwal_trace_event`); NULL
    /// (default): no tracing, and no cost. It runs on the thread that caused
    /// the event (pwal's flusher thread, a thread inside `pwal_commit` or
    /// `pwal_wait_durable` that leads a flush, the thread in
    /// `pwal_checkpoint`, or the log's archiver thread for archive events
    /// and for segments the archive held back), with locks of the log held:
    /// it must return quickly, must not block, and must not call any pwal
    /// function on this log. The event and its `detail` are valid during the call only.
    /// A second `pwal_open` of a log already open keeps the first open's
    /// callback. Since 0.2.0.
    pub trace: pwal_trace_fn,
    /// Passed to `trace` unchanged; pwal never dereferences it. It must stay
    /// valid until `pwal_close` of the last handle returns.
    pub trace_user_data: *mut c_void,
    /// Where to archive the log (docs/ARCHIVE.md): `"s3://bucket/prefix"`
    /// or `"file:///absolute/dir"`; NULL or `""` (default): no archive.
    /// For S3 the endpoint, region and credentials come from the standard
    /// variables `AWS_ENDPOINT_URL` (an `http://` endpoint is accepted and
    /// addressed path-style), `AWS_REGION` or `AWS_DEFAULT_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// read at `pwal_open`. The string is the caller's and is copied by
    /// `pwal_open` (not kept). `pwal_options_init` fills it from
    /// `PWAL_ARCHIVE_URL` with a string the library owns until the process
    /// exits. A URL that does not parse makes `pwal_open` return
    /// `PWAL_ERR_INVALID`. With an archive, a segment is removed only once
    /// every epoch in it is archived, and one archiver thread per open log
    /// uploads durable epochs. Added after 0.1.0.
    pub archive_url: *const c_char,
    /// While more than this many bytes of durable epochs are not archived,
    /// `pwal_submit` and `pwal_commit` fail at once with
    /// `PWAL_ERR_ARCHIVE_BEHIND` and write nothing; 0 means
    /// `PWAL_ARCHIVE_DEFAULT_MAX_LAG_BYTES`. Bounds the local disk the log
    /// takes while the store is unreachable. Added after 0.1.0.
    pub archive_max_lag_bytes: u64,
    /// 1: `pwal_commit` and `pwal_wait_durable` return `PWAL_OK` only once
    /// the epoch is locally durable *and* archived (on timeout,
    /// `PWAL_ERR_TIMEOUT`: it stays locally durable and is archived later);
    /// a lost machine then loses nothing acknowledged. 0 (default):
    /// acknowledged when locally durable; a lost machine loses at most the
    /// lag. Needs `archive_url`. Filled from `PWAL_ARCHIVE_DURABLE` (0 or
    /// 1). Added after 0.1.0.
    pub archive_durable: u32,
}

/// What a `pwal_trace_event` reports (`pwal_trace_event.kind`).
///
/// Since 0.2.0.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pwal_trace_kind {
    /// An epoch became durable (acknowledged under the sync policy): exactly
    /// once per durable epoch, in epoch order, before `pwal_close` returns.
    /// `transactions` and `bytes` are the epoch's (its frame, headers
    /// included), `duration_us` the time from its seal to now.
    PWAL_TRACE_EPOCH_DURABLE = 1,
    /// A new segment file started; `epoch` is its first epoch, `detail` its
    /// path.
    PWAL_TRACE_SEGMENT_CREATED = 2,
    /// A recycled file started a segment; `epoch` is its first epoch.
    PWAL_TRACE_SEGMENT_REUSED = 3,
    /// A checkpoint kept a segment as a spare to reuse; `epoch` is its
    /// first epoch, `detail` says from which path to which.
    PWAL_TRACE_SEGMENT_RECYCLED = 4,
    /// A checkpoint deleted a segment; `epoch` is its first epoch.
    PWAL_TRACE_SEGMENT_DELETED = 5,
    /// `pwal_checkpoint` succeeded; `epoch` is the mark, `duration_us` its
    /// time.
    PWAL_TRACE_CHECKPOINT = 6,
    /// The log fell back to the conservative mode; `detail` says why.
    PWAL_TRACE_FALLBACK = 7,
    /// A write, sync or file operation failed and the log is poisoned;
    /// `epoch` is the first epoch not acknowledged, `detail` the error.
    PWAL_TRACE_POISONED = 8,
    /// An archive object was created (`pwal_options.archive_url`): `epoch`
    /// is its last epoch, `bytes` its size, `duration_us` the upload's time,
    /// `detail` its URL. Runs on the log's archiver thread.
    PWAL_TRACE_ARCHIVE_OBJECT = 9,
    /// An archive upload or check failed and will be retried with backoff
    /// (`pwal_get_archive_status` has the count): `epoch` is the first epoch
    /// not archived, `detail` the error. Runs on the archiver thread.
    PWAL_TRACE_ARCHIVE_FAILED = 10,
}

/// One event of a log, given to `pwal_options.trace`. Owned by pwal, valid
/// during the call only.
///
/// Since 0.2.0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_trace_event {
    /// `sizeof(pwal_trace_event)` of the library: fields may be appended
    /// later; read only those your header has.
    pub struct_size: u32,
    /// A `pwal_trace_kind`.
    pub kind: u32,
    pub epoch: u64,
    pub transactions: u64,
    pub bytes: u64,
    pub duration_us: u64,
    /// Words about the event ("" when none); NUL-terminated, truncated to
    /// `PWAL_TEXT_BYTES - 1` bytes.
    pub detail: [c_char; PWAL_TEXT_BYTES],
    /// `PWAL_TRACE_EPOCH_DURABLE`: the lowest and highest `commit_seq` of
    /// the epoch's transactions (both 0 when it holds none); 0 for other
    /// events.
    pub first_commit_seq: u64,
    pub last_commit_seq: u64,
    /// `PWAL_TRACE_EPOCH_DURABLE`: how many lanes held a record in the
    /// epoch; 0 for other events.
    pub lanes: u32,
}

const _: () = {
    use crate::TraceKind as K;
    use pwal_trace_kind as C;
    assert!(K::EpochDurable as u32 == C::PWAL_TRACE_EPOCH_DURABLE as u32);
    assert!(K::SegmentCreated as u32 == C::PWAL_TRACE_SEGMENT_CREATED as u32);
    assert!(K::SegmentReused as u32 == C::PWAL_TRACE_SEGMENT_REUSED as u32);
    assert!(K::SegmentRecycled as u32 == C::PWAL_TRACE_SEGMENT_RECYCLED as u32);
    assert!(K::SegmentDeleted as u32 == C::PWAL_TRACE_SEGMENT_DELETED as u32);
    assert!(K::Checkpoint as u32 == C::PWAL_TRACE_CHECKPOINT as u32);
    assert!(K::Fallback as u32 == C::PWAL_TRACE_FALLBACK as u32);
    assert!(K::Poisoned as u32 == C::PWAL_TRACE_POISONED as u32);
    assert!(K::ArchiveObject as u32 == C::PWAL_TRACE_ARCHIVE_OBJECT as u32);
    assert!(K::ArchiveFailed as u32 == C::PWAL_TRACE_ARCHIVE_FAILED as u32);
};

/// The trace callback (`pwal_options.trace`); see there for its rules.
///
/// Since 0.2.0.
pub type pwal_trace_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const pwal_trace_event)>;

/// The C callback and its argument, as the core's tracer.
fn tracer_from_c(f: pwal_trace_fn, user_data: *mut c_void) -> Option<crate::Tracer> {
    let f = f?;
    // The pointer is the caller's, passed back unchanged on whatever thread
    // the event happens on: carried as an integer.
    let user = user_data as usize;
    Some(crate::Tracer::new(move |e: &crate::TraceEvent<'_>| {
        let mut ev = pwal_trace_event {
            struct_size: std::mem::size_of::<pwal_trace_event>() as u32,
            kind: e.kind as u32,
            epoch: e.epoch,
            transactions: e.transactions,
            bytes: e.bytes,
            duration_us: e.duration.as_micros().min(u64::MAX as u128) as u64,
            detail: [0; PWAL_TEXT_BYTES],
            first_commit_seq: e.first_commit_seq,
            last_commit_seq: e.last_commit_seq,
            lanes: e.lanes,
        };
        copy_text(&mut ev.detail, e.detail);
        // SAFETY: `f` is a C function of this type (the caller's promise in
        // `pwal_options`); `ev` lives for the call; `user` is the pointer the
        // caller gave, which it keeps valid until the log is closed.
        unsafe { f(user as *mut c_void, &ev) };
    }))
}

/// Bits of `pwal_options.env_fields` and `pwal_stats.env_fields`: the
/// option that a `PWAL_*` environment variable filled (`PWAL_SYNC`,
/// `PWAL_MODE`, `PWAL_LANES`, `PWAL_MAX_BATCH_BYTES`,
/// `PWAL_MAX_FLUSH_DELAY_MS`, `PWAL_SHADOW_COMPARE_PER_MILLE`,
/// `PWAL_ARCHIVE_URL`, `PWAL_ARCHIVE_DURABLE`).
pub const PWAL_ENV_SYNC: u32 = 1;
pub const PWAL_ENV_MODE: u32 = 2;
pub const PWAL_ENV_LANES: u32 = 4;
pub const PWAL_ENV_MAX_BATCH_BYTES: u32 = 8;
pub const PWAL_ENV_MAX_FLUSH_DELAY: u32 = 16;
pub const PWAL_ENV_SHADOW_COMPARE_PER_MILLE: u32 = 32;
pub const PWAL_ENV_ARCHIVE_URL: u32 = 64;
pub const PWAL_ENV_ARCHIVE_DURABLE: u32 = 128;

const _: () = assert!(PWAL_ENV_SYNC == crate::config::ENV_SYNC);
const _: () = assert!(PWAL_ENV_MODE == crate::config::ENV_MODE);
const _: () = assert!(PWAL_ENV_LANES == crate::config::ENV_LANES);
const _: () = assert!(PWAL_ENV_MAX_BATCH_BYTES == crate::config::ENV_MAX_BATCH_BYTES);
const _: () = assert!(PWAL_ENV_MAX_FLUSH_DELAY == crate::config::ENV_MAX_FLUSH_DELAY);
const _: () =
    assert!(PWAL_ENV_SHADOW_COMPARE_PER_MILLE == crate::config::ENV_SHADOW_COMPARE_PER_MILLE);
const _: () = assert!(PWAL_ENV_ARCHIVE_URL == crate::config::ENV_ARCHIVE_URL);
const _: () = assert!(PWAL_ENV_ARCHIVE_DURABLE == crate::config::ENV_ARCHIVE_DURABLE);

/// The default of `pwal_options.archive_max_lag_bytes`: 256 MiB.
pub const PWAL_ARCHIVE_DEFAULT_MAX_LAG_BYTES: u64 = 268435456;
const _: () = assert!(PWAL_ARCHIVE_DEFAULT_MAX_LAG_BYTES == crate::archive::DEFAULT_MAX_LAG_BYTES);
/// An archive object holds the epochs durable and not yet archived up to
/// about this many bytes (one epoch alone may be larger): 16 MiB.
pub const PWAL_ARCHIVE_OBJECT_MAX_BYTES: u64 = 16777216;
const _: () = assert!(PWAL_ARCHIVE_OBJECT_MAX_BYTES == crate::archive::OBJECT_MAX_BYTES);

/// C strings of `PWAL_ARCHIVE_URL` handed out by `pwal_options_init`:
/// owned by the library until the process exits.
static ENV_STRINGS: std::sync::Mutex<Vec<std::ffi::CString>> = std::sync::Mutex::new(Vec::new());

/// A pointer to a NUL-terminated copy of `s` that stays valid until exit.
fn library_owned_c_string(s: &str) -> *const c_char {
    let Ok(c) = std::ffi::CString::new(s) else {
        return std::ptr::null();
    };
    let mut v = ENV_STRINGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = v.iter().find(|x| **x == c) {
        return found.as_ptr();
    }
    v.push(c);
    v.last().expect("pushed").as_ptr()
}

/// The smallest `pwal_options.struct_size` accepted: `sizeof(pwal_options)`
/// in 0.1.0. Never changes, however many fields later versions append: a
/// program built against any header of this major version passes at least
/// this, and a smaller `struct_size` makes `pwal_open` return
/// `PWAL_ERR_INVALID`.
pub const PWAL_OPTIONS_MIN_SIZE: u32 = 48;

impl Default for pwal_options {
    fn default() -> pwal_options {
        pwal_options {
            struct_size: std::mem::size_of::<pwal_options>() as u32,
            sync: pwal_sync::PWAL_SYNC_FULL as u32,
            mode: pwal_mode::PWAL_MODE_AUTO as u32,
            lanes: 0,
            max_batch_bytes: 0,
            max_flush_delay_us: 0,
            shadow_compare_per_mille: 0,
            ignore_env: 0,
            segment_bytes: 0,
            env_fields: 0,
            trace: None,
            trace_user_data: std::ptr::null_mut(),
            archive_url: std::ptr::null(),
            archive_max_lag_bytes: 0,
            archive_durable: 0,
        }
    }
}

impl From<&Options> for pwal_options {
    fn from(o: &Options) -> pwal_options {
        pwal_options {
            sync: sync_to_c(o.sync),
            mode: mode_to_c(o.mode),
            lanes: o.lanes.min(u32::MAX as usize) as u32,
            max_batch_bytes: o.max_batch_bytes as u64,
            max_flush_delay_us: o.max_flush_delay.as_micros().min(u64::MAX as u128) as u64,
            shadow_compare_per_mille: o.shadow_compare_per_mille,
            ignore_env: u32::from(!o.use_env),
            segment_bytes: o.segment_bytes,
            env_fields: o.env_fields,
            archive_url: if o.archive_url.is_empty() {
                std::ptr::null()
            } else {
                library_owned_c_string(&o.archive_url)
            },
            archive_max_lag_bytes: o.archive_max_lag_bytes,
            archive_durable: u32::from(o.archive_durable),
            ..pwal_options::default()
        }
    }
}

pub(crate) fn sync_from_c(v: u32) -> Result<SyncPolicy, Failure> {
    match v {
        0 => Ok(SyncPolicy::Full),
        1 => Ok(SyncPolicy::Normal),
        2 => Ok(SyncPolicy::Off),
        _ => Err(Failure::invalid(format!(
            "options->sync = {v}: expected PWAL_SYNC_FULL (0), PWAL_SYNC_NORMAL (1) or PWAL_SYNC_OFF (2)"
        ))),
    }
}

pub(crate) fn mode_from_c(v: u32) -> Result<Mode, Failure> {
    match v {
        0 => Ok(Mode::Auto),
        1 => Ok(Mode::Conservative),
        2 => Ok(Mode::ShadowCompare),
        _ => Err(Failure::invalid(format!(
            "options->mode = {v}: expected PWAL_MODE_AUTO (0), PWAL_MODE_CONSERVATIVE (1) or \
             PWAL_MODE_SHADOW_COMPARE (2)"
        ))),
    }
}

fn sync_to_c(s: SyncPolicy) -> u32 {
    (match s {
        SyncPolicy::Full => pwal_sync::PWAL_SYNC_FULL,
        SyncPolicy::Normal => pwal_sync::PWAL_SYNC_NORMAL,
        SyncPolicy::Off => pwal_sync::PWAL_SYNC_OFF,
    }) as u32
}

fn mode_to_c(m: Mode) -> u32 {
    (match m {
        Mode::Auto => pwal_mode::PWAL_MODE_AUTO,
        Mode::Conservative => pwal_mode::PWAL_MODE_CONSERVATIVE,
        Mode::ShadowCompare => pwal_mode::PWAL_MODE_SHADOW_COMPARE,
    }) as u32
}

impl pwal_options {
    /// The core's options; the core checks ranges and the environment.
    pub(crate) fn to_core(self) -> Result<Options, Failure> {
        Ok(Options {
            sync: sync_from_c(self.sync)?,
            mode: mode_from_c(self.mode)?,
            lanes: self.lanes as usize,
            max_batch_bytes: usize::try_from(self.max_batch_bytes).unwrap_or(usize::MAX),
            max_flush_delay: Duration::from_micros(self.max_flush_delay_us),
            shadow_compare_per_mille: self.shadow_compare_per_mille,
            segment_bytes: self.segment_bytes,
            use_env: self.ignore_env == 0,
            env_fields: self.env_fields,
            trace: tracer_from_c(self.trace, self.trace_user_data),
            archive_url: if self.archive_url.is_null() {
                String::new()
            } else {
                // SAFETY: a non-NULL `archive_url` points to a NUL-terminated
                // string (the contract of `pwal_options.archive_url`), read
                // here before `pwal_open` returns and not kept.
                unsafe { std::ffi::CStr::from_ptr(self.archive_url) }
                    .to_str()
                    .map_err(|_| Failure::invalid("options->archive_url is not UTF-8"))?
                    .to_string()
            },
            archive_max_lag_bytes: self.archive_max_lag_bytes,
            archive_durable: match self.archive_durable {
                0 => false,
                1 => true,
                v => {
                    return Err(Failure::invalid(format!(
                        "options->archive_durable = {v}: expected 0 or 1"
                    )))
                }
            },
            ..Options::default()
        })
    }
}

/// One page image of a transaction, as given to `pwal_submit`/`pwal_commit`.
/// pwal copies `data` before the call returns; the caller keeps ownership.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_frame {
    /// Page number, 1-based; 0 is rejected.
    pub page_number: u32,
    /// Database size in pages after this commit on the transaction's commit
    /// frame, 0 on the others. Stored and given back; pwal does not interpret it.
    pub db_size_if_commit: u32,
    /// The page bytes; not NULL.
    pub data: *const c_void,
    /// Length of `data`: 1 to `PWAL_MAX_PAGE_BYTES`.
    pub len: u32,
}

/// One transaction (a batch): after recovery either all of its frames are
/// there or none. Every field is stored and given back by recovery.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_txn {
    pub txn_id: u64,
    /// The engine's commit sequence number; recovery replays the
    /// transactions of one epoch in ascending `commit_seq`.
    pub commit_seq: u64,
    /// `frame_count` frames; not NULL.
    pub frames: *const pwal_frame,
    /// 1 to `PWAL_MAX_TXN_FRAMES`.
    pub frame_count: u32,
    /// Opaque to pwal.
    pub txn_epoch: u32,
}

/// One recovered frame, given to the `pwal_record_fn` callback. The struct
/// and `data` belong to pwal and are valid during the callback only: copy
/// what you keep.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_record {
    /// The log epoch the transaction was durable in (1, 2, ... with no gaps).
    pub epoch: u64,
    pub txn_id: u64,
    pub commit_seq: u64,
    pub txn_epoch: u32,
    pub page_number: u32,
    pub db_size_if_commit: u32,
    pub data: *const c_void,
    pub len: u32,
    /// The file the transaction belongs to: the `file_id` given to
    /// `pwal_submit_file` / `pwal_commit_file`, 0 for `pwal_submit` /
    /// `pwal_commit`. Since 0.2.0 (appended: callbacks built against
    /// 0.1.0 never read it).
    pub file_id: u32,
}

/// Recovery callback: called once per recovered frame, in replay order, on
/// the thread that called `pwal_recover`. Return 0 to go on; any other value
/// stops recovery, which then returns `PWAL_ERR_ABORTED`. It must not call
/// `longjmp` or throw a C++ exception through pwal.
pub type pwal_record_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, record: *const pwal_record) -> i32>;

/// Percentiles of a latency histogram, in microseconds (each at most 12.5 %
/// above the true value). For `pwal_stats.txns_per_epoch` the values are
/// transaction counts, not microseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct pwal_latency {
    /// Number of samples.
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl From<LatencySummary> for pwal_latency {
    fn from(s: LatencySummary) -> pwal_latency {
        pwal_latency {
            count: s.count,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
            max_us: s.max_us,
        }
    }
}

/// A snapshot of a log's counters, filled by `pwal_get_stats`. Set
/// `struct_size = sizeof(pwal_stats)` before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_stats {
    /// Set by the caller to `sizeof(pwal_stats)`; on return, the number of
    /// bytes pwal filled.
    pub struct_size: u32,
    /// The `pwal_mode` in force now (the configured one unless it fell back).
    pub mode: u32,
    /// The `pwal_mode` the log was opened with.
    pub configured_mode: u32,
    /// The `pwal_sync` policy in force.
    pub sync: u32,
    /// A `pwal_fallback_reason`; `PWAL_FALLBACK_NONE` (0) if none.
    pub fallback_reason: u32,
    /// Number of lanes.
    pub lanes: u32,
    /// Non-zero once an I/O failure poisoned the log.
    pub poisoned: u32,
    /// Entries of `lane_backlog_bytes` that are filled: min(lanes, PWAL_STATS_LANES).
    pub lane_backlog_count: u32,
    /// The epoch new batches go into now.
    pub current_epoch: u64,
    /// Every epoch up to and including this one is durable.
    pub durable_epoch: u64,
    /// Every batch submitted so far with a commit_seq up to this one is durable.
    pub durable_commit_seq: u64,
    /// Epoch frames written by this process.
    pub epochs: u64,
    /// Transactions written.
    pub transactions: u64,
    /// Page frames written.
    pub records: u64,
    /// Bytes of epoch frames written (not counting preallocation).
    pub bytes_written: u64,
    /// `fdatasync` calls on segment files.
    pub syncs: u64,
    pub segments_created: u64,
    pub segments_recycled: u64,
    pub segments_deleted: u64,
    /// Batches compared in shadow-compare mode.
    pub shadow_compares: u64,
    /// Time of each segment `fdatasync`.
    pub sync_latency: pwal_latency,
    /// Time `pwal_wait_durable` / `pwal_commit` callers waited.
    pub commit_wait_latency: pwal_latency,
    /// Transactions per written epoch (counts, not microseconds).
    pub txns_per_epoch: pwal_latency,
    /// Bytes buffered in each lane and not yet sealed.
    pub lane_backlog_bytes: [u64; PWAL_STATS_LANES],
    /// Why the log fell back, in words; "" if it did not. NUL-terminated.
    pub fallback_detail: [c_char; PWAL_TEXT_BYTES],
    /// The `PWAL_ENV_*` bits of the options in effect that came from the
    /// environment (filled by `pwal_options_init` and kept by the program).
    /// Since 0.2.0 (filled when `struct_size` covers it).
    pub env_fields: u32,
    /// Per lane, since open (entries as `lane_backlog_bytes`: the first
    /// `lane_backlog_count` are filled, lanes past `PWAL_STATS_LANES` summed
    /// into the last): transactions committed through the lane, bytes of
    /// records it handed to epochs, times a writer on it waited for room in
    /// a full epoch, and epochs sealed with a record of it. Since 0.2.0
    /// (filled when `struct_size` covers them).
    pub lane_commits: [u64; PWAL_STATS_LANES],
    pub lane_bytes: [u64; PWAL_STATS_LANES],
    pub lane_room_waits: [u64; PWAL_STATS_LANES],
    pub lane_seals: [u64; PWAL_STATS_LANES],
}

/// The smallest `pwal_stats.struct_size` accepted: `sizeof(pwal_stats)` in
/// 0.1.0. Never changes when fields are appended; a smaller `struct_size`
/// makes `pwal_get_stats` return `PWAL_ERR_INVALID`.
pub const PWAL_STATS_MIN_SIZE: u32 = 1016;

fn fallback_to_c(r: Option<FallbackReason>) -> u32 {
    // The core's discriminants are the ABI values (1 and 9), 0 is "none".
    r.map_or(pwal_fallback_reason::PWAL_FALLBACK_NONE as u32, |r| {
        r as u32
    })
}

/// Copies `s` into a fixed C buffer, always NUL-terminated. Text too long
/// for it is cut at the last space that leaves room for "..." (never in
/// the middle of a word, a path or a number), and "..." says it was cut.
pub(crate) fn copy_text(dst: &mut [c_char; PWAL_TEXT_BYTES], s: &str) {
    const MORE: &str = "...";
    let fitted: std::borrow::Cow<'_, str> = if s.len() < PWAL_TEXT_BYTES {
        s.into()
    } else {
        let room = PWAL_TEXT_BYTES - 1 - MORE.len();
        let mut n = room;
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        let cut = s[..n].rfind(' ').map_or(n, |sp| sp + 1);
        format!("{}{MORE}", &s[..cut]).into()
    };
    let n = fitted.len().min(PWAL_TEXT_BYTES - 1);
    for (d, &b) in dst.iter_mut().zip(&fitted.as_bytes()[..n]) {
        *d = if b == 0 { b'?' } else { b } as c_char;
    }
    dst[n] = 0;
}

/// One counter of every lane, lanes past `PWAL_STATS_LANES` summed into the
/// last entry.
fn per_lane(s: &Stats, f: impl Fn(&crate::stats::LaneStats) -> u64) -> [u64; PWAL_STATS_LANES] {
    let mut out = [0u64; PWAL_STATS_LANES];
    for (i, l) in s.lane_counters.iter().enumerate() {
        let slot = i.min(PWAL_STATS_LANES - 1);
        out[slot] = out[slot].saturating_add(f(l));
    }
    out
}

impl From<&Stats> for pwal_stats {
    fn from(s: &Stats) -> pwal_stats {
        let mut backlog = [0u64; PWAL_STATS_LANES];
        for (i, &b) in s.lane_backlog_bytes.iter().enumerate() {
            let slot = i.min(PWAL_STATS_LANES - 1);
            backlog[slot] = backlog[slot].saturating_add(b);
        }
        let mut out = pwal_stats {
            struct_size: std::mem::size_of::<pwal_stats>() as u32,
            mode: mode_to_c(s.mode),
            configured_mode: mode_to_c(s.configured_mode),
            sync: sync_to_c(s.sync),
            fallback_reason: fallback_to_c(s.fallback),
            lanes: s.lanes as u32,
            poisoned: s.poisoned as u32,
            lane_backlog_count: s.lane_backlog_bytes.len().min(PWAL_STATS_LANES) as u32,
            current_epoch: s.current_epoch,
            durable_epoch: s.durable_epoch,
            durable_commit_seq: s.durable_commit_seq,
            epochs: s.epochs,
            transactions: s.transactions,
            records: s.records,
            bytes_written: s.bytes_written,
            syncs: s.syncs,
            segments_created: s.segments_created,
            segments_recycled: s.segments_recycled,
            segments_deleted: s.segments_deleted,
            shadow_compares: s.shadow_compares,
            sync_latency: s.sync_latency.into(),
            commit_wait_latency: s.commit_wait_latency.into(),
            txns_per_epoch: s.txns_per_epoch.into(),
            lane_backlog_bytes: backlog,
            fallback_detail: [0; PWAL_TEXT_BYTES],
            env_fields: s.env_fields,
            lane_commits: per_lane(s, |l| l.commits),
            lane_bytes: per_lane(s, |l| l.bytes),
            lane_room_waits: per_lane(s, |l| l.room_waits),
            lane_seals: per_lane(s, |l| l.seals),
        };
        copy_text(&mut out.fallback_detail, &s.fallback_detail);
        out
    }
}

/// What `pwal_recover`, `pwal_recover_and_open` or `pwal_repair` found. Set
/// `struct_size = sizeof(pwal_recovery_report)` before the call; it is
/// filled on every return, success or failure (as far as the call got: on a
/// failure before the log was read, such as `PWAL_ERR_LOCKED`, every field
/// is zero and the text empty). A program built against the 0.1.0 header
/// (`struct_size` = `PWAL_RECOVERY_REPORT_MIN_SIZE`) gets the fields up to
/// `damage` only; on return `struct_size` says how many bytes were filled.
/// Owned by the caller; pwal keeps no pointer to it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pwal_recovery_report {
    /// Set by the caller to `sizeof(pwal_recovery_report)`; on return, the
    /// number of bytes pwal filled.
    pub struct_size: u32,
    /// Non-zero if something was wrong: a torn tail or corruption
    /// (described in `damage`).
    pub has_damage: u32,
    /// Segment files read.
    pub segments: u64,
    /// Epochs read and validated, including those at or below
    /// `checkpoint_epoch`, which are not given to the callback.
    pub epochs: u64,
    /// First and last epoch read and validated (0 if none); the callback
    /// gets the epochs from `max(first_epoch, checkpoint_epoch + 1)` to
    /// `last_epoch`.
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// Transactions given to the callback.
    pub transactions: u64,
    /// Records (frames) given to the callback.
    pub records: u64,
    /// Bytes of valid epoch frames read.
    pub bytes: u64,
    /// Bytes of a torn, unacknowledged tail that were discarded.
    pub torn_tail_bytes: u64,
    /// Segment files and bytes skipped (after damage, under
    /// `PWAL_RECOVER_DURABLE_PREFIX`).
    pub skipped_segments: u64,
    pub skipped_bytes: u64,
    /// What was wrong, with file and offset; "" if nothing. NUL-terminated.
    /// On `PWAL_ERR_CORRUPT` it describes the corruption that stopped the
    /// call.
    pub damage: [c_char; PWAL_TEXT_BYTES],
    /// The durable checkpoint mark: the highest `checkpoint_epoch` of any
    /// valid frame (0: the log was never checkpointed). Epochs at or below it
    /// are in the database already: they are validated (damage there still
    /// fails the call) but never given to the callback. It can be above the
    /// last epoch `pwal_checkpoint` was given: an idle log that leaves a
    /// large segment for a small one moves it over epochs holding no
    /// transaction.
    pub checkpoint_epoch: u64,
    /// Transactions replayed after one with a higher `commit_seq` (possible
    /// only across epochs: see `pwal_recover` for the order); 0 when the
    /// engine kept its promise. Counted only without
    /// `PWAL_RECOVER_REFUSE_SEQ_INVERSIONS` (with it the first one fails).
    pub seq_inversions: u64,
    /// The path of the file where the first damage lies (a torn tail or
    /// corruption); "" if none. NUL-terminated, truncated to
    /// `PWAL_TEXT_BYTES - 1` bytes.
    pub damage_file: [c_char; PWAL_TEXT_BYTES],
    /// The byte offset of that damage in `damage_file` (0 if none).
    pub damage_offset: u64,
    /// The epoch that was expected where the damage lies: the first epoch
    /// not replayed because of it (0 if none, or when no epoch applies, as
    /// for a log of another format version).
    pub damage_epoch: u64,
}

/// The smallest `pwal_recovery_report.struct_size` accepted:
/// `sizeof(pwal_recovery_report)` in 0.1.0. Never changes when fields are
/// appended; a smaller `struct_size` makes `pwal_recover` return
/// `PWAL_ERR_INVALID` (before reading anything).
pub const PWAL_RECOVERY_REPORT_MIN_SIZE: u32 = 344;

// Appending fields may only grow the structs past their frozen minimums.
const _: () = assert!(std::mem::size_of::<pwal_options>() >= PWAL_OPTIONS_MIN_SIZE as usize);
const _: () = assert!(std::mem::size_of::<pwal_stats>() >= PWAL_STATS_MIN_SIZE as usize);
const _: () =
    assert!(std::mem::size_of::<pwal_recovery_report>() >= PWAL_RECOVERY_REPORT_MIN_SIZE as usize);

impl From<&crate::RecoveryReport> for pwal_recovery_report {
    fn from(r: &crate::RecoveryReport) -> pwal_recovery_report {
        let mut out = pwal_recovery_report {
            struct_size: std::mem::size_of::<pwal_recovery_report>() as u32,
            has_damage: r.damage.is_some() as u32,
            segments: r.segments,
            epochs: r.epochs,
            first_epoch: r.first_epoch,
            last_epoch: r.last_epoch,
            transactions: r.transactions,
            records: r.records,
            bytes: r.bytes,
            torn_tail_bytes: r.torn_tail_bytes,
            skipped_segments: r.skipped_segments,
            skipped_bytes: r.skipped_bytes,
            damage: [0; PWAL_TEXT_BYTES],
            checkpoint_epoch: r.checkpoint_epoch,
            seq_inversions: r.seq_inversions,
            damage_file: [0; PWAL_TEXT_BYTES],
            damage_offset: r.damage_offset,
            damage_epoch: r.damage_epoch,
        };
        copy_text(&mut out.damage, r.damage.as_deref().unwrap_or(""));
        let file = r
            .damage_file
            .as_deref()
            .map(|p| p.to_string_lossy())
            .unwrap_or_default();
        copy_text(&mut out.damage_file, &file);
        out
    }
}

/// Fills the 0.1.0 part of `options` (`PWAL_OPTIONS_MIN_SIZE` bytes) with
/// the defaults and sets `options->struct_size` to that size; nothing
/// beyond it is written. Does nothing if `options` is NULL.
///
/// Programs compiled with this header never call this function directly:
/// `pwal_options_init` is a macro for `pwal_options_init_sized(options,
/// sizeof(*(options)))`, which fills the whole struct the program knows and
/// takes the environment. This symbol stays for programs built against the
/// 0.1.0 header, whose `pwal_options` is 48 bytes: `pwal_open` then fills
/// from the `PWAL_*` environment variables each field they left at its
/// default, as 0.1.0 did.
///
/// Thread safety: safe from any thread.
///
/// # Safety
///
/// `options` is NULL or points to writable memory of at least
/// `PWAL_OPTIONS_MIN_SIZE` bytes.
#[no_mangle]
pub unsafe extern "C" fn pwal_options_init(options: *mut pwal_options) {
    // SAFETY: the caller's promise, passed on.
    unsafe { init_options(options, PWAL_OPTIONS_MIN_SIZE as usize, false) }
}

/// Fills `options`, a struct of `size` bytes (pass `sizeof(*options)`; the
/// `pwal_options_init` macro does), with the defaults, sets
/// `options->struct_size`, then fills each field whose `PWAL_*` environment
/// variable is set (`PWAL_SYNC`, `PWAL_MODE`, `PWAL_LANES`,
/// `PWAL_MAX_BATCH_BYTES`, `PWAL_MAX_FLUSH_DELAY_MS`,
/// `PWAL_SHADOW_COMPARE_PER_MILLE`) from it, and says which in
/// `env_fields`. What the program sets afterwards wins: set
/// `sync = PWAL_SYNC_FULL` after this call and `PWAL_SYNC=off` cannot weaken
/// it. A variable that does not parse is left out here; `pwal_open` then
/// fails naming it (unless `ignore_env`). Writes at most `size` bytes (a
/// program built against an older header passes its smaller size); does
/// nothing if `options` is NULL or `size` is below `PWAL_OPTIONS_MIN_SIZE`.
///
/// Thread safety: safe from any thread.
///
/// Since 0.2.0.
///
/// # Safety
///
/// `options` is NULL or points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn pwal_options_init_sized(options: *mut pwal_options, size: usize) {
    // SAFETY: the caller's promise, passed on.
    unsafe { init_options(options, size, true) }
}

/// Writes the first `min(size, sizeof(pwal_options))` bytes of the
/// defaults (filled from the environment when `env`), with `struct_size`
/// set to that many.
///
/// # Safety
///
/// `options` is NULL or points to `size` writable bytes.
unsafe fn init_options(options: *mut pwal_options, size: usize, env: bool) {
    if options.is_null() || size < PWAL_OPTIONS_MIN_SIZE as usize {
        return;
    }
    let mut filled = if env {
        pwal_options::from(&Options::from_env())
    } else {
        pwal_options::default()
    };
    let n = size.min(std::mem::size_of::<pwal_options>());
    filled.struct_size = n as u32;
    // SAFETY: `options` is valid for `size >= n` writable bytes (the caller's
    // promise), `filled` is a whole `pwal_options` on the stack, and the two
    // do not overlap; bytes are copied, so the caller's memory needs no
    // alignment or initialisation.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&filled as *const pwal_options).cast::<u8>(),
            options.cast::<u8>(),
            n,
        )
    };
}

/// The name of a `pwal_mode` as the `PWAL_MODE` environment variable spells
/// it ("auto", "conservative", "shadow_compare"), or "unknown" for a value
/// this version does not know. Never NULL; static: do not free.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn pwal_mode_name(mode: u32) -> *const c_char {
    match mode {
        0 => cstr!("auto"),
        1 => cstr!("conservative"),
        2 => cstr!("shadow_compare"),
        _ => cstr!("unknown"),
    }
}

/// The name of a `pwal_sync` as the `PWAL_SYNC` environment variable spells
/// it ("full", "normal", "off"), or "unknown" for a value this version does
/// not know. Never NULL; static: do not free.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn pwal_sync_name(sync: u32) -> *const c_char {
    match sync {
        0 => cstr!("full"),
        1 => cstr!("normal"),
        2 => cstr!("off"),
        _ => cstr!("unknown"),
    }
}

/// The name of a `pwal_fallback_reason` ("none", "operator forced",
/// "encoder divergence", and "certificate checksum mismatch" for the value
/// 0.1.0 raised), or "unknown" for a value this version does not know.
/// Never NULL; static: do not free.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn pwal_fallback_reason_name(reason: u32) -> *const c_char {
    match reason {
        0 => cstr!("none"),
        1 => cstr!("operator forced"),
        4 => cstr!("certificate checksum mismatch"),
        9 => cstr!("encoder divergence"),
        _ => cstr!("unknown"),
    }
}

/// The library's version as a static string, e.g. "0.2.0". Compare with the
/// `PWAL_VERSION_*` macros to detect a header/library mismatch.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn pwal_version() -> *const c_char {
    cstr!(env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::mem::{size_of, MaybeUninit};

    /// Byte offset of a field (`offset_of!` needs a newer Rust than our MSRV).
    macro_rules! offset {
        ($t:ty, $f:ident) => {{
            let v = MaybeUninit::<$t>::uninit();
            let base = v.as_ptr();
            // SAFETY: addr_of! computes the field's address without reading
            // or creating a reference to the uninitialised value.
            let field = unsafe { std::ptr::addr_of!((*base).$f) };
            field as usize - base as usize
        }};
    }

    fn text_of(buf: &[c_char; PWAL_TEXT_BYTES]) -> String {
        // SAFETY: copy_text always writes a NUL inside the buffer.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn long_text_is_cut_between_words_and_says_so() {
        let mut buf = [0 as c_char; PWAL_TEXT_BYTES];
        copy_text(&mut buf, "short text");
        assert_eq!(text_of(&buf), "short text");
        let words = "epoch 12345 at offset 67890 of /a/rather/long/path.pwseg ".repeat(8);
        copy_text(&mut buf, &words);
        let t = text_of(&buf);
        assert!(t.len() < PWAL_TEXT_BYTES && t.ends_with(" ..."), "{t}");
        let kept = t.trim_end_matches("...");
        assert!(words.starts_with(kept), "a prefix of whole words: {t}");
        // One long word: cut at a character boundary, still marked.
        let word = "\u{e9}".repeat(400);
        copy_text(&mut buf, &word);
        let t = text_of(&buf);
        assert!(t.ends_with("...") && t.len() < PWAL_TEXT_BYTES, "{t}");
    }

    #[test]
    fn sized_structs_begin_with_their_size() {
        assert_eq!(offset!(pwal_options, struct_size), 0);
        assert_eq!(offset!(pwal_stats, struct_size), 0);
        assert_eq!(offset!(pwal_recovery_report, struct_size), 0);
    }

    #[test]
    fn abi_layouts_are_the_documented_ones() {
        // These sizes are part of the ABI; a change here breaks
        // compiled callers unless it only appends fields.
        assert_eq!(size_of::<pwal_options>(), 96);
        // The archive fields were appended after the trace pointers.
        assert_eq!(offset!(pwal_options, archive_url), 72);
        // The 0.1.0 sizes, frozen as the minimums: every field since is
        // appended after them.
        assert_eq!(
            offset!(pwal_options, env_fields),
            PWAL_OPTIONS_MIN_SIZE as usize
        );
        assert_eq!(
            offset!(pwal_stats, env_fields),
            PWAL_STATS_MIN_SIZE as usize
        );
        // 0.2.0 appended the per-lane counters after env_fields.
        assert_eq!(offset!(pwal_stats, lane_commits), 1024);
        assert_eq!(size_of::<pwal_stats>(), 1024 + 4 * 8 * PWAL_STATS_LANES);
        // Grown at the end only: the 0.1.0 fields keep their offsets.
        assert_eq!(offset!(pwal_recovery_report, damage), 88);
        assert_eq!(
            offset!(pwal_recovery_report, checkpoint_epoch),
            PWAL_RECOVERY_REPORT_MIN_SIZE as usize
        );
        assert_eq!(size_of::<pwal_recovery_report>(), 632);
        assert_eq!(size_of::<pwal_frame>(), 24);
        assert_eq!(size_of::<pwal_txn>(), 32);
        assert_eq!(offset!(pwal_record, data), 40);
    }

    #[test]
    fn mode_and_sync_names_are_what_the_environment_accepts() {
        for m in 0..3u32 {
            // SAFETY: the function returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(pwal_mode_name(m)) }
                .to_str()
                .unwrap();
            assert_eq!(crate::config::parse_mode(name).map(mode_to_c), Some(m));
        }
        for v in 0..3u32 {
            // SAFETY: as above.
            let name = unsafe { CStr::from_ptr(pwal_sync_name(v)) }
                .to_str()
                .unwrap();
            assert_eq!(crate::config::parse_sync(name).map(sync_to_c), Some(v));
        }
        // SAFETY: as above.
        assert_eq!(
            unsafe { CStr::from_ptr(pwal_sync_name(9)) }
                .to_str()
                .unwrap(),
            "unknown"
        );
    }

    #[test]
    fn fallback_names_match_the_core() {
        for r in [
            FallbackReason::OperatorForced,
            FallbackReason::EncoderDivergence,
        ] {
            // SAFETY: the function returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(pwal_fallback_reason_name(fallback_to_c(Some(r)))) };
            assert_eq!(name.to_str().unwrap(), r.name());
        }
    }

    #[test]
    fn text_is_truncated_and_terminated() {
        let mut buf = [1 as c_char; PWAL_TEXT_BYTES];
        copy_text(&mut buf, &"é".repeat(400));
        // SAFETY: copy_text always writes a NUL inside the buffer.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert!(s.to_bytes().len() < PWAL_TEXT_BYTES);
        assert!(s.to_str().is_ok(), "cut inside a character");
    }

    #[test]
    fn version_string_matches_the_macros() {
        // SAFETY: static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(pwal_version()) };
        assert_eq!(
            v.to_str().unwrap(),
            format!("{PWAL_VERSION_MAJOR}.{PWAL_VERSION_MINOR}.{PWAL_VERSION_PATCH}")
        );
    }
}
