//! Counters and latency histograms, updated lock-free on the hot paths.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::{FallbackReason, Mode, SyncPolicy};

/// Percentiles of one latency histogram, in microseconds. Values are the upper
/// edge of the histogram bucket they fall in (buckets are 1/8 of a power of two
/// wide, so a figure is at most 12.5 % high).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// A snapshot of a log's counters (see [`crate::Log::stats`]).
/// One lane's counters since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Transactions committed through the lane.
    pub commits: u64,
    /// Bytes of records it handed to epochs.
    pub bytes: u64,
    /// Times a writer on it waited for room in a full epoch.
    pub room_waits: u64,
    /// Epochs sealed with a record of this lane in them.
    pub seals: u64,
}

#[derive(Clone, Debug)]
pub struct Stats {
    /// The mode the log runs in now (the configured one unless it fell back).
    pub mode: Mode,
    pub configured_mode: Mode,
    pub sync: SyncPolicy,
    /// Why the log fell back to the conservative path, if it did.
    pub fallback: Option<FallbackReason>,
    /// Human-readable detail of the fallback, empty if none.
    pub fallback_detail: String,
    pub lanes: usize,
    /// The epoch new batches are appended to now.
    pub current_epoch: u64,
    /// Every epoch up to and including this one is durable (under the sync
    /// policy in force).
    pub durable_epoch: u64,
    /// Every batch with a commit sequence up to and including this one that was
    /// submitted so far is durable.
    pub durable_commit_seq: u64,
    /// Epoch frames written by this process.
    pub epochs: u64,
    /// Transactions (batches) written.
    pub transactions: u64,
    /// Page frames written.
    pub records: u64,
    /// Bytes of epoch frames written (headers and records, not preallocation).
    pub bytes_written: u64,
    /// `fdatasync` calls on segment files.
    pub syncs: u64,
    pub segments_created: u64,
    pub segments_recycled: u64,
    pub segments_deleted: u64,
    /// Batches compared in shadow-compare mode.
    pub shadow_compares: u64,
    /// Bytes buffered in each lane and not yet sealed.
    pub lane_backlog_bytes: Vec<u64>,
    /// What each lane did since open, one entry per lane.
    pub lane_counters: Vec<LaneStats>,
    pub sync_latency: LatencySummary,
    pub commit_wait_latency: LatencySummary,
    /// Transactions per written epoch (count = epochs); values are counts, not
    /// microseconds.
    pub txns_per_epoch: LatencySummary,
    pub poisoned: bool,
    /// The `ENV_*` bits of the options in effect that came from the
    /// `PWAL_*` environment variables.
    pub env_fields: u32,
}

const SUB: usize = 8; // buckets per power of two
const BUCKETS: usize = 64 * SUB;

/// A log-linear histogram of u64 values with atomic buckets.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let log = 63 - v.leading_zeros() as usize; // >= 3
    let sub = ((v >> (log - 3)) & (SUB as u64 - 1)) as usize;
    ((log - 2) * SUB + sub).min(BUCKETS - 1)
}

fn bucket_upper(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let log = b / SUB + 2;
    let sub = (b % SUB) as u64;
    let base = 1u64 << log;
    base + ((sub + 1) << (log - 3)) - 1
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Relaxed);
        // Read first: the maximum rarely moves, and an unconditional
        // read-modify-write would bounce its cache line between committers.
        if v > self.max.load(Relaxed) {
            self.max.fetch_max(v, Relaxed);
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let max = self.max.load(Relaxed);
        let pct = |p: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = ((total as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_upper(i).min(max);
                }
            }
            max
        };
        LatencySummary {
            count: total,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: max,
        }
    }
}

/// The counters a log keeps.
pub(crate) struct Counters {
    pub epochs: AtomicU64,
    pub transactions: AtomicU64,
    pub records: AtomicU64,
    pub bytes_written: AtomicU64,
    pub syncs: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_recycled: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub shadow_compares: AtomicU64,
    pub sync_latency: Histogram,
    pub commit_wait: Histogram,
    pub txns_per_epoch: Histogram,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            epochs: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            records: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            segments_created: AtomicU64::new(0),
            segments_recycled: AtomicU64::new(0),
            segments_deleted: AtomicU64::new(0),
            shadow_compares: AtomicU64::new(0),
            sync_latency: Histogram::new(),
            commit_wait: Histogram::new(),
            txns_per_epoch: Histogram::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_upper_bounds_every_value_within_an_eighth() {
        for v in (0..100_000u64).chain([1 << 40, u64::MAX / 3]) {
            let b = bucket_of(v);
            let up = bucket_upper(b);
            assert!(up >= v, "value {v} above its bucket edge {up}");
            assert!(up - v <= v / 8 + 1, "bucket edge {up} too far above {v}");
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_distribution() {
        let h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((500..=563).contains(&s.p50_us), "p50 {}", s.p50_us);
        assert!((990..=1000).contains(&s.p99_us), "p99 {}", s.p99_us);
        assert_eq!(s.max_us, 1000);
    }
}
