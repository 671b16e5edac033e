//! Options, their defaults, their limits, and the environment variables that
//! override them.
//!
//! Precedence: an environment variable, when set, overrides the options
//! struct, so that an operator can force (say) `PWAL_MODE=conservative` on a
//! deployed engine without rebuilding it. A value that does not parse or is out
//! of range is an error at open, never silently ignored.

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

pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 << 20;
pub const MIN_BATCH_BYTES: usize = 4096;
pub const DEFAULT_MAX_FLUSH_DELAY: Duration = Duration::from_millis(2);
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
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
    /// Shadow-compare mode found a lane encoding that differs from the
    /// reference encoding.
    CertificateChecksumMismatch = 4,
}

impl FallbackReason {
    pub fn name(self) -> &'static str {
        match self {
            FallbackReason::OperatorForced => "operator forced",
            FallbackReason::CertificateChecksumMismatch => "certificate checksum mismatch",
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
    pub max_batch_bytes: usize,
    /// Seal an epoch at the latest this long after its first record;
    /// zero means 2 ms.
    pub max_flush_delay: Duration,
    /// Share of batches compared in shadow-compare mode, per mille (0..=1000);
    /// 0 in shadow-compare mode means every batch.
    pub shadow_compare_per_mille: u32,
    /// Size each segment file is preallocated to; 0 means 64 MiB.
    pub segment_bytes: u64,
    /// Read the `PWAL_*` environment variables (default true).
    pub use_env: bool,
    /// Under `normal`: the longest a written epoch stays unsynced; zero means
    /// 50 ms. Not in the C ABI (tests set it to avoid depending on timing).
    pub normal_sync_interval: Duration,
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
            normal_sync_interval: Duration::ZERO,
        }
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
    /// Set when the environment forced the mode.
    pub forced_by_operator: bool,
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

impl Options {
    pub(crate) fn resolve(&self) -> Result<Resolved> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// Applies defaults, the environment (through `lookup`) and the limits.
    pub(crate) fn resolve_with(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
        let mut o = self.clone();
        let mut forced_by_operator = false;
        if o.use_env {
            if let Some(v) = lookup("PWAL_MODE") {
                o.mode = parse_mode(&v).ok_or_else(|| {
                    Error::invalid(format!(
                        "PWAL_MODE={v:?}: expected auto, conservative or shadow_compare"
                    ))
                })?;
                forced_by_operator = o.mode == Mode::Conservative;
            }
            if let Some(v) = lookup("PWAL_SYNC") {
                o.sync = parse_sync(&v).ok_or_else(|| {
                    Error::invalid(format!("PWAL_SYNC={v:?}: expected full, normal or off"))
                })?;
            }
            if let Some(n) = env_u64("PWAL_LANES", lookup)? {
                if n == 0 {
                    return Err(Error::invalid("PWAL_LANES=0: expected 1 to 256"));
                }
                o.lanes = n as usize;
            }
            if let Some(n) = env_u64("PWAL_MAX_BATCH_BYTES", lookup)? {
                if n == 0 {
                    return Err(Error::invalid(
                        "PWAL_MAX_BATCH_BYTES=0: expected at least 4096",
                    ));
                }
                o.max_batch_bytes = n.min(usize::MAX as u64) as usize;
            }
            if let Some(n) = env_u64("PWAL_MAX_FLUSH_DELAY_MS", lookup)? {
                if n == 0 {
                    return Err(Error::invalid(
                        "PWAL_MAX_FLUSH_DELAY_MS=0: expected 1 to 10000",
                    ));
                }
                o.max_flush_delay = Duration::from_millis(n);
            }
            if let Some(n) = env_u64("PWAL_SHADOW_COMPARE_PER_MILLE", lookup)? {
                o.shadow_compare_per_mille = n.min(u32::MAX as u64) as u32;
            }
        }

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
    fn environment_overrides_the_options() {
        let r = Options::default()
            .resolve_with(&env(&[
                ("PWAL_MODE", "conservative"),
                ("PWAL_SYNC", "normal"),
                ("PWAL_MAX_BATCH_BYTES", "65536"),
                ("PWAL_MAX_FLUSH_DELAY_MS", "7"),
            ]))
            .unwrap();
        assert_eq!(r.mode, Mode::Conservative);
        assert!(r.forced_by_operator);
        assert_eq!(r.sync, SyncPolicy::Normal);
        assert_eq!(r.max_batch_bytes, 65536);
        assert_eq!(r.max_flush_delay, Duration::from_millis(7));
        assert_eq!(r.lanes, 1, "conservative is one lane");
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
            let err = Options::default().resolve_with(&lookup).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Invalid(_)), "{k}={v}: {msg}");
            let names_it = msg.contains(k) || msg.contains(&k[5..].to_ascii_lowercase());
            assert!(names_it, "{k}={v}: message does not name it: {msg}");
        }
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
}
