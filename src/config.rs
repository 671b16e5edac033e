//! Options, their defaults, their limits, and the environment variables that
//! fill them.
//!
//! The rule: the `PWAL_*` environment variables fill the options the way the
//! defaults do, when the options are made ([`Options::from_env`], and
//! `pwal_options_init` in C); what the program sets afterwards wins. So an
//! operator can choose (say) `PWAL_MODE=conservative` for an engine that
//! leaves the mode alone, but `PWAL_SYNC=off` can never weaken a `full` the
//! program asked for. `env_fields` says which fields the environment filled,
//! and the log's stats say which of the values in effect came from it. A
//! variable that does not parse, or is out of range, fails the open (unless
//! the options ignore the environment), never silently ignored.

use std::time::Duration;

use crate::error::{Error, Result};

/// Largest page (frame payload) accepted, in bytes.
pub const MAX_PAGE_BYTES: usize = 65536;
/// Most frames in one transaction: a transaction of `MAX_TXN_BYTES` of
/// 512-byte pages (SQLite's smallest page size).
pub const MAX_TXN_FRAMES: usize = 1 << 21;
/// Most page bytes (the sum of the frames' lengths) in one transaction.
pub const MAX_TXN_BYTES: usize = 1 << 30;
/// Largest encoded transaction record, in bytes. A transaction that encodes
/// to more is written as several records (parts) in consecutive epochs
/// (`epoch.rs`); a record must fit in one epoch, and an epoch in recovery's
/// bounded buffer.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Hard bound on the body of one epoch frame: writers wait for a seal rather
/// than grow an epoch past it, and recovery refuses to allocate more for one.
pub const MAX_EPOCH_BODY_BYTES: usize = 32 << 20;
/// Most lanes a log can have (and so most per-lane counts in a certificate).
pub const MAX_LANES: usize = 256;
/// The filling epoch takes records up to twice `max_batch_bytes`, but never
/// less than this (nor more than [`MAX_EPOCH_BODY_BYTES`]) before writers
/// wait for the next epoch: a small `max_batch_bytes` asks for early seals,
/// and must not also cap how many commits one epoch groups.
pub const MIN_EPOCH_CAP_BYTES: usize = 8 << 20;

pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 << 20;
pub const MIN_BATCH_BYTES: usize = 4096;
pub const DEFAULT_MAX_FLUSH_DELAY: Duration = Duration::from_millis(2);
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The first segment of a log, and the first after an idle spell, is this
/// large (or `segment_bytes` if that is smaller); each next one doubles, up
/// to `segment_bytes`: a small or idle log stays small, a busy one reaches
/// full-size segments after a few.
pub const FIRST_SEGMENT_BYTES: u64 = 4 << 20;
pub const MIN_SEGMENT_BYTES: u64 = 64 << 10;
pub const MAX_SEGMENT_BYTES: u64 = 1 << 40;
pub const MAX_FLUSH_DELAY: Duration = Duration::from_secs(10);
/// Under `normal`, written epochs are synced at most this long after the
/// first unsynced write (and at segment switch, flush, checkpoint and close).
pub const DEFAULT_NORMAL_SYNC_INTERVAL: Duration = Duration::from_millis(50);
pub const MAX_NORMAL_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// When the log tells the engine a batch is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fdatasync` before acknowledging: survives power loss.
    Full,
    /// Acknowledged once written to the OS; synced in the background and at
    /// segment switch and close: survives a process crash, not a power loss.
    Normal,
    /// Acknowledged once written to the OS, never synced: nothing is promised.
    Off,
}

/// How writers are mapped to lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One lane per writer thread (up to the lane count): parallel append.
    Auto,
    /// One ordered lane for every thread: the compatibility path.
    Conservative,
    /// Lanes, and for a sample of batches the conservative encoding is
    /// computed beside the lane encoding and compared; on divergence the log
    /// falls back to conservative and records why.
    ShadowCompare,
}

/// Why a log left its configured mode for the conservative path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// `PWAL_MODE=conservative` in the environment.
    OperatorForced = 1,
    /// Shadow-compare mode found that the lane encoder's bytes differ from
    /// the reference encoder's (a bug in the encoder, not damage on disk).
    EncoderDivergence = 9,
}

impl FallbackReason {
    pub fn name(self) -> &'static str {
        match self {
            FallbackReason::OperatorForced => "operator forced",
            FallbackReason::EncoderDivergence => "encoder divergence",
        }
    }
}

/// Options for [`crate::Log::open`]. Zero means "the default" for every
/// numeric field.
#[derive(Clone, Debug)]
pub struct Options {
    pub sync: SyncPolicy,
    pub mode: Mode,
    /// Lane count; 0 means the number of CPUs.
    pub lanes: usize,
    /// Seal an epoch once this many bytes are buffered; 0 means 4 MiB.
    /// Writers wait once the filling epoch holds twice this (at least
    /// [`MIN_EPOCH_CAP_BYTES`], at most [`MAX_EPOCH_BODY_BYTES`]).
    pub max_batch_bytes: usize,
    /// Seal an epoch at the latest this long after its first record;
    /// zero means 2 ms.
    pub max_flush_delay: Duration,
    /// Share of batches compared in shadow-compare mode, per mille (0..=1000);
    /// 0 in shadow-compare mode means every batch.
    pub shadow_compare_per_mille: u32,
    /// Size each segment file is preallocated to; 0 means 64 MiB.
    pub segment_bytes: u64,
    /// Check the `PWAL_*` environment variables at open (default true): one
    /// that does not parse fails the open. When false, the fields the
    /// environment filled ([`Options::from_env`]) and the program left as
    /// they were go back to their defaults.
    pub use_env: bool,
    /// Which fields [`Options::from_env`] filled from the environment
    /// (`ENV_*` bits).
    pub env_fields: u32,
    /// Called for each event of the log ([`crate::TraceEvent`]); `None`
    /// (default): no tracing. A second open of a log already open keeps
    /// the first open's tracer.
    pub trace: Option<crate::Tracer>,
    /// Under `normal`: the longest a written epoch stays unsynced; zero means
    /// 50 ms. Not in the C ABI (tests set it to avoid depending on timing).
    pub normal_sync_interval: Duration,
    /// Under `full` and `normal`, a clean close whose last epoch holding a
    /// record is not yet vouched for by a later frame writes and syncs one
    /// more (empty) frame that is, so that damage to that epoch reads as
    /// corruption, not as a torn tail (default `true`). Not in the C ABI:
    /// tests turn it off to leave a log as a process that died right after
    /// its last sync leaves it.
    pub close_proof: bool,
    /// archive: where durable epochs are archived, `s3://bucket/prefix` or
    /// `file:///absolute/dir`; empty (default): no archive
    /// (`docs/ARCHIVE.md`). Filled from `PWAL_ARCHIVE_URL`.
    pub archive_url: String,
    /// archive: commits are refused with [`Error::ArchiveBehind`] while
    /// more than this many bytes of durable epochs are not archived; 0
    /// means [`crate::archive::settings::DEFAULT_MAX_LAG_BYTES`].
    pub archive_max_lag_bytes: u64,
    /// archive: `commit` and `wait_durable` succeed only once the epoch is
    /// archived too. Filled from `PWAL_ARCHIVE_DURABLE` (0 or 1).
    pub archive_durable: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncPolicy::Full,
            mode: Mode::Auto,
            lanes: 0,
            max_batch_bytes: 0,
            max_flush_delay: Duration::ZERO,
            shadow_compare_per_mille: 0,
            segment_bytes: 0,
            use_env: true,
            env_fields: 0,
            trace: None,
            normal_sync_interval: Duration::ZERO,
            close_proof: true,
            archive_url: String::new(),
            archive_max_lag_bytes: 0,
            archive_durable: false,
        }
    }
}

/// Bits of [`Options::env_fields`] and `Stats::env_fields`: the options the
/// `PWAL_*` variables filled.
pub const ENV_SYNC: u32 = 1;
pub const ENV_MODE: u32 = 2;
pub const ENV_LANES: u32 = 4;
pub const ENV_MAX_BATCH_BYTES: u32 = 8;
pub const ENV_MAX_FLUSH_DELAY: u32 = 16;
pub const ENV_SHADOW_COMPARE_PER_MILLE: u32 = 32;
/// archive: `PWAL_ARCHIVE_URL` and `PWAL_ARCHIVE_DURABLE`.
pub const ENV_ARCHIVE_URL: u32 = 64;
pub const ENV_ARCHIVE_DURABLE: u32 = 128;

/// The `PWAL_*` variables that are set, parsed.
#[derive(Clone, Debug, Default)]
pub(crate) struct EnvValues {
    sync: Option<SyncPolicy>,
    mode: Option<Mode>,
    lanes: Option<usize>,
    max_batch_bytes: Option<usize>,
    max_flush_delay: Option<Duration>,
    shadow_compare_per_mille: Option<u32>,
    archive_url: Option<String>,
    archive_durable: Option<bool>,
}

/// Calls `$m!(bit, field)` for each option a `PWAL_*` variable can fill:
/// the one list of them that filling, matching and resetting share.
macro_rules! for_each_env_field {
    ($m:ident) => {
        $m!(ENV_SYNC, sync);
        $m!(ENV_MODE, mode);
        $m!(ENV_LANES, lanes);
        $m!(ENV_MAX_BATCH_BYTES, max_batch_bytes);
        $m!(ENV_MAX_FLUSH_DELAY, max_flush_delay);
        $m!(ENV_SHADOW_COMPARE_PER_MILLE, shadow_compare_per_mille);
        $m!(ENV_ARCHIVE_URL, archive_url);
        $m!(ENV_ARCHIVE_DURABLE, archive_durable);
    };
}

impl EnvValues {
    /// Reads and parses every variable; the first that does not parse is an
    /// error naming it.
    pub(crate) fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Result<EnvValues> {
        let mut e = EnvValues::default();
        if let Some(v) = lookup("PWAL_MODE") {
            e.mode = Some(parse_mode(&v).ok_or_else(|| {
                Error::invalid(format!(
                    "PWAL_MODE={v:?}: expected auto, conservative or shadow_compare"
                ))
            })?);
        }
        if let Some(v) = lookup("PWAL_SYNC") {
            e.sync = Some(parse_sync(&v).ok_or_else(|| {
                Error::invalid(format!("PWAL_SYNC={v:?}: expected full, normal or off"))
            })?);
        }
        if let Some(n) = env_u64("PWAL_LANES", lookup)? {
            if n == 0 {
                return Err(Error::invalid("PWAL_LANES=0: expected 1 to 256"));
            }
            e.lanes = Some(n.min(usize::MAX as u64) as usize);
        }
        if let Some(n) = env_u64("PWAL_MAX_BATCH_BYTES", lookup)? {
            if n == 0 {
                return Err(Error::invalid(
                    "PWAL_MAX_BATCH_BYTES=0: expected at least 4096",
                ));
            }
            e.max_batch_bytes = Some(n.min(usize::MAX as u64) as usize);
        }
        if let Some(n) = env_u64("PWAL_MAX_FLUSH_DELAY_MS", lookup)? {
            if n == 0 {
                return Err(Error::invalid(
                    "PWAL_MAX_FLUSH_DELAY_MS=0: expected 1 to 10000",
                ));
            }
            e.max_flush_delay = Some(Duration::from_millis(n));
        }
        if let Some(n) = env_u64("PWAL_SHADOW_COMPARE_PER_MILLE", lookup)? {
            e.shadow_compare_per_mille = Some(n.min(u32::MAX as u64) as u32);
        }
        if let Some(v) = lookup("PWAL_ARCHIVE_URL") {
            if !v.is_empty() {
                crate::archive::settings::ArchiveUrl::parse(&v)
                    .map_err(|why| Error::invalid(format!("PWAL_ARCHIVE_URL: {why}")))?;
            }
            e.archive_url = Some(v);
        }
        if let Some(v) = lookup("PWAL_ARCHIVE_DURABLE") {
            e.archive_durable = Some(match v.trim() {
                "0" => false,
                "1" => true,
                _ => {
                    return Err(Error::invalid(format!(
                        "PWAL_ARCHIVE_DURABLE={v:?}: expected 0 or 1"
                    )))
                }
            });
        }
        Ok(e)
    }

    /// Every variable that parses, each on its own: one bad variable does
    /// not hide the others (`read` reports it).
    pub(crate) fn read_each(lookup: &dyn Fn(&str) -> Option<String>) -> EnvValues {
        let mut e = EnvValues::default();
        for name in [
            "PWAL_SYNC",
            "PWAL_MODE",
            "PWAL_LANES",
            "PWAL_MAX_BATCH_BYTES",
            "PWAL_MAX_FLUSH_DELAY_MS",
            "PWAL_SHADOW_COMPARE_PER_MILLE",
            "PWAL_ARCHIVE_URL",
            "PWAL_ARCHIVE_DURABLE",
        ] {
            let only = |n: &str| if n == name { lookup(n) } else { None };
            if let Ok(one) = EnvValues::read(&only) {
                e.sync = e.sync.or(one.sync);
                e.mode = e.mode.or(one.mode);
                e.lanes = e.lanes.or(one.lanes);
                e.max_batch_bytes = e.max_batch_bytes.or(one.max_batch_bytes);
                e.max_flush_delay = e.max_flush_delay.or(one.max_flush_delay);
                e.shadow_compare_per_mille =
                    e.shadow_compare_per_mille.or(one.shadow_compare_per_mille);
                e.archive_url = e.archive_url.or(one.archive_url);
                e.archive_durable = e.archive_durable.or(one.archive_durable);
            }
        }
        e
    }

    /// Sets the fields the environment gives (among `which`) and returns
    /// their bits.
    fn fill(&self, o: &mut Options, which: u32) -> u32 {
        let mut bits = 0;
        macro_rules! fill {
            ($bit:expr, $field:ident) => {
                if let Some(v) = &self.$field {
                    if which & $bit != 0 {
                        o.$field = v.to_owned();
                        bits |= $bit;
                    }
                }
            };
        }
        for_each_env_field!(fill);
        bits
    }

    /// The bits of the fields of `o` that hold what the environment gives.
    fn matching(&self, o: &Options) -> u32 {
        let mut bits = 0;
        macro_rules! m {
            ($bit:expr, $field:ident) => {
                if self.$field.as_ref() == Some(&o.$field) {
                    bits |= $bit;
                }
            };
        }
        for_each_env_field!(m);
        bits
    }
}

/// Options with every default applied and every value checked.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub sync: SyncPolicy,
    pub mode: Mode,
    pub lanes: usize,
    pub max_batch_bytes: usize,
    pub max_flush_delay: Duration,
    pub shadow_compare_per_mille: u32,
    pub segment_bytes: u64,
    pub normal_sync_interval: Duration,
    /// Set when the environment chose the conservative mode.
    pub forced_by_operator: bool,
    /// The `ENV_*` bits of the values that came from the environment.
    pub env_fields: u32,
    pub trace: Option<crate::Tracer>,
    pub close_proof: bool,
    /// archive: `None` without an archive URL.
    pub archive: Option<crate::archive::settings::ArchiveConfig>,
}

impl Resolved {
    /// The most bytes of records the filling epoch takes before a writer
    /// waits for the next one: twice `max_batch_bytes`, at least
    /// [`MIN_EPOCH_CAP_BYTES`] and at most [`MAX_EPOCH_BODY_BYTES`] (a
    /// record alone in an epoch may exceed it, up to [`MAX_RECORD_BYTES`]).
    /// The epoch is asked to seal at `max_batch_bytes`; the rest is room for
    /// the writers that arrive while the epoch before it is still being
    /// written (with a cap of twice a 4 KiB `max_batch_bytes`, every epoch
    /// held one 4 KiB commit: no group commit at all). Without a cap,
    /// writers that outrun the disk grew each epoch to 32 MiB: lane buffers
    /// too large to reuse (every epoch faulted in fresh memory), commits
    /// waiting behind a 32 MiB write and sync, and recovery reading the
    /// last such frame twice (once for the checkpoint mark).
    pub fn epoch_body_cap(&self) -> usize {
        self.max_batch_bytes
            .saturating_mul(2)
            .clamp(MIN_EPOCH_CAP_BYTES, MAX_EPOCH_BODY_BYTES)
    }
}

pub fn parse_sync(s: &str) -> Option<SyncPolicy> {
    match s.trim().to_ascii_lowercase().as_str() {
        "full" => Some(SyncPolicy::Full),
        "normal" => Some(SyncPolicy::Normal),
        "off" => Some(SyncPolicy::Off),
        _ => None,
    }
}

pub fn parse_mode(s: &str) -> Option<Mode> {
    match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "auto" => Some(Mode::Auto),
        "conservative" => Some(Mode::Conservative),
        "shadow_compare" | "shadow" => Some(Mode::ShadowCompare),
        _ => None,
    }
}

fn env_u64(name: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<u64>> {
    match lookup(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            Error::invalid(format!(
                "environment variable {name}={v:?} is not a non-negative integer"
            ))
        }),
    }
}

/// The bits of the fields of `o` that hold their default values.
fn at_defaults(o: &Options) -> u32 {
    let d = Options::default();
    let mut bits = 0;
    macro_rules! m {
        ($bit:expr, $field:ident) => {
            if o.$field == d.$field {
                bits |= $bit;
            }
        };
    }
    for_each_env_field!(m);
    bits
}

/// Puts the fields of `which` back to their defaults.
fn reset(o: &mut Options, which: u32) {
    let d = Options::default();
    macro_rules! r {
        ($bit:expr, $field:ident) => {
            if which & $bit != 0 {
                o.$field = d.$field;
            }
        };
    }
    for_each_env_field!(r);
}

impl Options {
    /// The defaults, with every `PWAL_*` variable that is set filling its
    /// field, and `env_fields` saying which: the operator's choices, which
    /// the program may still override by setting fields afterwards. A
    /// variable that does not parse is left out here; the open fails naming
    /// it (unless `use_env` is false).
    pub fn from_env() -> Options {
        Options::from_env_with(&|name| std::env::var(name).ok())
    }

    /// Fills from the `PWAL_*` variables every field still at its default,
    /// and records those in `env_fields`: what an options struct made by
    /// 0.1.0's init gets (it did not read the environment; open did).
    pub(crate) fn fill_defaults_from_env(&mut self) {
        let env = EnvValues::read_each(&|name| std::env::var(name).ok());
        let which = at_defaults(self);
        self.env_fields |= env.fill(self, which);
    }

    pub(crate) fn from_env_with(lookup: &dyn Fn(&str) -> Option<String>) -> Options {
        let mut o = Options::default();
        o.env_fields = EnvValues::read_each(lookup).fill(&mut o, u32::MAX);
        o
    }

    pub(crate) fn resolve(&self) -> Result<Resolved> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// Applies defaults, the environment (through `lookup`) and the limits.
    pub(crate) fn resolve_with(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
        let mut o = self.clone();
        // The fields the environment filled and the program left as filled.
        let env_fields = if o.use_env {
            let env = EnvValues::read(lookup)?;
            o.env_fields & env.matching(&o)
        } else {
            // What each variable filled, even when another does not parse.
            let env = EnvValues::read_each(lookup);
            let left = o.env_fields & env.matching(&o);
            reset(&mut o, left);
            0
        };
        // An operator's `PWAL_MODE=conservative` that the program kept.
        let forced_by_operator = env_fields & ENV_MODE != 0 && o.mode == Mode::Conservative;

        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let lanes = if o.lanes == 0 {
            cpus.min(MAX_LANES)
        } else {
            o.lanes
        };
        if lanes > MAX_LANES {
            return Err(Error::invalid(format!(
                "lanes = {lanes}: at most {MAX_LANES} lanes are supported"
            )));
        }
        let max_batch_bytes = if o.max_batch_bytes == 0 {
            DEFAULT_MAX_BATCH_BYTES
        } else {
            o.max_batch_bytes
        };
        if !(MIN_BATCH_BYTES..=MAX_EPOCH_BODY_BYTES).contains(&max_batch_bytes) {
            return Err(Error::invalid(format!(
                "max_batch_bytes = {max_batch_bytes}: expected {MIN_BATCH_BYTES} to {MAX_EPOCH_BODY_BYTES}"
            )));
        }
        let max_flush_delay = if o.max_flush_delay.is_zero() {
            DEFAULT_MAX_FLUSH_DELAY
        } else {
            o.max_flush_delay
        };
        if max_flush_delay > MAX_FLUSH_DELAY {
            return Err(Error::invalid(format!(
                "max_flush_delay = {max_flush_delay:?}: at most {MAX_FLUSH_DELAY:?}"
            )));
        }
        if o.shadow_compare_per_mille != 0 && o.mode != Mode::ShadowCompare {
            let from_env = if o.env_fields & ENV_SHADOW_COMPARE_PER_MILLE != 0 {
                " (from PWAL_SHADOW_COMPARE_PER_MILLE)"
            } else {
                ""
            };
            return Err(Error::invalid(format!(
                "shadow_compare_per_mille = {}{from_env}: a sampling rate applies only to mode \
                 shadow_compare, and the mode is {}",
                o.shadow_compare_per_mille,
                match o.mode {
                    Mode::Auto => "auto",
                    Mode::Conservative => "conservative",
                    Mode::ShadowCompare => "shadow_compare",
                }
            )));
        }
        if o.shadow_compare_per_mille > 1000 {
            return Err(Error::invalid(format!(
                "shadow_compare_per_mille = {}: expected 0 to 1000",
                o.shadow_compare_per_mille
            )));
        }
        let segment_bytes = if o.segment_bytes == 0 {
            DEFAULT_SEGMENT_BYTES
        } else {
            o.segment_bytes
        };
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&segment_bytes) {
            return Err(Error::invalid(format!(
                "segment_bytes = {segment_bytes}: expected {MIN_SEGMENT_BYTES} to {MAX_SEGMENT_BYTES}"
            )));
        }
        let normal_sync_interval = if o.normal_sync_interval.is_zero() {
            DEFAULT_NORMAL_SYNC_INTERVAL
        } else {
            o.normal_sync_interval
        };
        if normal_sync_interval > MAX_NORMAL_SYNC_INTERVAL {
            return Err(Error::invalid(format!(
                "normal_sync_interval = {normal_sync_interval:?}: at most {MAX_NORMAL_SYNC_INTERVAL:?}"
            )));
        }
        // archive: the URL must parse; durable archiving needs a URL.
        let archive = if o.archive_url.is_empty() {
            if o.archive_durable {
                return Err(Error::invalid(
                    "archive_durable = 1 needs an archive_url (PWAL_ARCHIVE_URL)",
                ));
            }
            None
        } else {
            crate::archive::settings::ArchiveUrl::parse(&o.archive_url).map_err(Error::invalid)?;
            Some(crate::archive::settings::ArchiveConfig {
                url: o.archive_url.clone(),
                max_lag_bytes: if o.archive_max_lag_bytes == 0 {
                    crate::archive::settings::DEFAULT_MAX_LAG_BYTES
                } else {
                    o.archive_max_lag_bytes
                },
                durable: o.archive_durable,
            })
        };
        let per_mille = if o.mode == Mode::ShadowCompare && o.shadow_compare_per_mille == 0 {
            1000
        } else {
            o.shadow_compare_per_mille
        };
        Ok(Resolved {
            sync: o.sync,
            mode: o.mode,
            lanes: if o.mode == Mode::Conservative {
                1
            } else {
                lanes
            },
            max_batch_bytes,
            max_flush_delay,
            shadow_compare_per_mille: per_mille,
            segment_bytes,
            normal_sync_interval,
            forced_by_operator,
            env_fields,
            trace: o.trace.clone(),
            close_proof: o.close_proof,
            archive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_fills_the_options_and_the_program_wins() {
        let vars = env(&[
            ("PWAL_MODE", "conservative"),
            ("PWAL_SYNC", "off"),
            ("PWAL_MAX_BATCH_BYTES", "65536"),
            ("PWAL_MAX_FLUSH_DELAY_MS", "7"),
        ]);
        let filled = Options::from_env_with(&vars);
        assert_eq!(filled.sync, SyncPolicy::Off);
        assert_eq!(
            filled.env_fields,
            ENV_MODE | ENV_SYNC | ENV_MAX_BATCH_BYTES | ENV_MAX_FLUSH_DELAY
        );
        // Left as filled: every value is the environment's.
        let r = filled.resolve_with(&vars).unwrap();
        assert_eq!(r.mode, Mode::Conservative);
        assert!(r.forced_by_operator);
        assert_eq!(r.sync, SyncPolicy::Off);
        assert_eq!(r.max_batch_bytes, 65536);
        assert_eq!(r.max_flush_delay, Duration::from_millis(7));
        assert_eq!(r.lanes, 1, "conservative is one lane");
        assert_eq!(
            r.env_fields,
            ENV_MODE | ENV_SYNC | ENV_MAX_BATCH_BYTES | ENV_MAX_FLUSH_DELAY
        );
        // The program sets full and auto afterwards: they win, and no longer
        // count as the environment's.
        let set = Options {
            sync: SyncPolicy::Full,
            mode: Mode::Auto,
            ..filled.clone()
        };
        let r = set.resolve_with(&vars).unwrap();
        assert_eq!(r.sync, SyncPolicy::Full);
        assert_eq!(r.mode, Mode::Auto);
        assert!(!r.forced_by_operator);
        assert_eq!(r.env_fields, ENV_MAX_BATCH_BYTES | ENV_MAX_FLUSH_DELAY);
        // Options made without the environment never take from it.
        let r = Options::default().resolve_with(&vars).unwrap();
        assert_eq!(r.sync, SyncPolicy::Full);
        assert_eq!(r.env_fields, 0);
        // Ignoring the environment undoes what it filled.
        let ignored = Options {
            use_env: false,
            ..filled
        };
        let r = ignored.resolve_with(&vars).unwrap();
        assert_eq!((r.sync, r.mode), (SyncPolicy::Full, Mode::Auto));
        assert_eq!(r.max_batch_bytes, DEFAULT_MAX_BATCH_BYTES);
        assert_eq!(r.env_fields, 0);
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_variable() {
        for (k, v) in [
            ("PWAL_MODE", "fast"),
            ("PWAL_SYNC", "sometimes"),
            ("PWAL_LANES", "0"),
            ("PWAL_LANES", "-3"),
            ("PWAL_LANES", "100000"),
            ("PWAL_MAX_BATCH_BYTES", "12"),
            ("PWAL_MAX_FLUSH_DELAY_MS", "abc"),
            ("PWAL_SHADOW_COMPARE_PER_MILLE", "1001"),
        ] {
            let lookup = move |name: &str| (name == k).then(|| v.to_string());
            let err = Options::from_env_with(&lookup)
                .resolve_with(&lookup)
                .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Invalid(_)), "{k}={v}: {msg}");
            let names_it = msg.contains(k) || msg.contains(&k[5..].to_ascii_lowercase());
            assert!(names_it, "{k}={v}: message does not name it: {msg}");
        }
    }

    #[test]
    fn ignoring_the_environment_undoes_what_it_filled_even_beside_a_bad_variable() {
        let vars = env(&[("PWAL_SYNC", "off"), ("PWAL_LANES", "abc")]);
        let filled = Options::from_env_with(&vars);
        assert_eq!(filled.sync, SyncPolicy::Off, "the good variable fills");
        assert!(
            filled.resolve_with(&vars).is_err(),
            "the bad one fails the open"
        );
        let ignored = Options {
            use_env: false,
            ..filled
        };
        let r = ignored.resolve_with(&vars).unwrap();
        assert_eq!(r.sync, SyncPolicy::Full);
        assert_eq!(r.env_fields, 0);
    }

    #[test]
    fn environment_is_ignored_when_asked() {
        let o = Options {
            use_env: false,
            ..Options::default()
        };
        let r = o.resolve_with(&env(&[("PWAL_MODE", "fast")])).unwrap();
        assert_eq!(r.mode, Mode::Auto);
    }

    #[test]
    fn the_archive_options_fill_from_the_environment_and_are_checked() {
        let vars = env(&[
            ("PWAL_ARCHIVE_URL", "file:///srv/archive"),
            ("PWAL_ARCHIVE_DURABLE", "1"),
        ]);
        let filled = Options::from_env_with(&vars);
        assert_eq!(filled.archive_url, "file:///srv/archive");
        assert!(filled.archive_durable);
        assert_eq!(filled.env_fields, ENV_ARCHIVE_URL | ENV_ARCHIVE_DURABLE);
        let r = filled.resolve_with(&vars).unwrap();
        let a = r.archive.unwrap();
        assert_eq!(a.url, "file:///srv/archive");
        assert!(a.durable);
        assert_eq!(
            a.max_lag_bytes,
            crate::archive::settings::DEFAULT_MAX_LAG_BYTES
        );
        // What the program sets wins.
        let set = Options {
            archive_url: String::new(),
            archive_durable: false,
            ..filled.clone()
        };
        assert_eq!(set.resolve_with(&vars).unwrap().archive, None);
        // Bad values name what is wrong.
        let bad = Options::default();
        let e = bad
            .resolve_with(&env(&[("PWAL_ARCHIVE_DURABLE", "yes")]))
            .unwrap_err();
        assert!(e.to_string().contains("PWAL_ARCHIVE_DURABLE"), "{e}");
        let e = bad
            .resolve_with(&env(&[("PWAL_ARCHIVE_URL", "ftp://x")]))
            .unwrap_err();
        assert!(e.to_string().contains("PWAL_ARCHIVE_URL"), "{e}");
        let e = Options {
            archive_durable: true,
            ..Options::default()
        }
        .resolve_with(&env(&[]))
        .unwrap_err();
        assert!(e.to_string().contains("archive_url"), "{e}");
        // Ignoring the environment undoes what it filled.
        let ignoring = Options {
            use_env: false,
            ..filled
        };
        assert_eq!(ignoring.resolve_with(&vars).unwrap().archive, None);
    }
}
