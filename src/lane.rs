//! Lanes: per-thread append buffers.
//!
//! A lane's buffer is touched only by the threads bound to it and by the
//! sealer, under the lane's mutex. The epoch a batch belongs to is the
//! `epoch` field of the buffer it is appended to, read under that same mutex,
//! and the sealer swaps the whole buffer out under it: so a batch can never
//! land in an epoch that is already sealed, and never spans two epochs (the
//! classic trap of reading the epoch before taking the lane lock).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

/// The records of one epoch appended to one lane.
#[derive(Debug, Default)]
pub(crate) struct LaneBuf {
    /// The epoch every record of this buffer belongs to.
    pub epoch: u64,
    /// Encoded transaction records, back to back.
    pub bytes: Vec<u8>,
    /// The CRC of each record, in order (the certificate covers them).
    pub crcs: Vec<u32>,
    /// Records (transactions, and parts of transactions larger than one
    /// record).
    pub txns: u32,
    /// Records that commit a transaction (all but the parts with more to
    /// follow): the commit range and database size cover these only.
    pub commits: u32,
    pub frames: u32,
    /// Lowest and highest commit sequence of the committing records.
    pub min_seq: u64,
    pub max_seq: u64,
    /// Database size on the commit frame of the batch with `max_seq`.
    pub db_size_at_max: u32,
}

impl LaneBuf {
    pub fn new(epoch: u64) -> LaneBuf {
        LaneBuf {
            epoch,
            min_seq: u64::MAX,
            ..LaneBuf::default()
        }
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity() + self.crcs.capacity() * 4
    }

    /// Releases the memory of an empty buffer.
    pub fn release(&mut self) {
        debug_assert_eq!(self.txns, 0, "releasing a buffer that holds records");
        self.bytes = Vec::new();
        self.crcs = Vec::new();
    }

    /// Empties the buffer for reuse in `epoch`, keeping its allocation.
    pub fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.bytes.clear();
        self.crcs.clear();
        self.txns = 0;
        self.commits = 0;
        self.frames = 0;
        self.min_seq = u64::MAX;
        self.max_seq = 0;
        self.db_size_at_max = 0;
    }
}

pub(crate) struct Lane {
    pub buf: Mutex<LaneBuf>,
    /// Signalled when the sealer swaps this lane's buffer (or the log is
    /// poisoned): writers waiting for room wait here.
    pub swapped: Condvar,
    /// Threads bound to this lane.
    bound: AtomicUsize,
    /// What this lane did since open (`Stats::lanes_detail`).
    pub counters: LaneCounters,
}

/// Per-lane counters, relaxed: each is a count, read for stats only.
#[derive(Debug, Default)]
pub(crate) struct LaneCounters {
    /// Transactions committed through the lane (records that commit one).
    pub commits: AtomicU64,
    /// Bytes of records the lane handed to epochs.
    pub bytes: AtomicU64,
    /// Times a writer on the lane waited for room (its epoch was full).
    pub room_waits: AtomicU64,
    /// Epochs sealed with a record of this lane in them.
    pub seals: AtomicU64,
}

pub(crate) struct Lanes {
    pub lanes: Vec<Lane>,
    id: u64,
}

static NEXT_LANES_ID: AtomicU64 = AtomicU64::new(1);

impl Lanes {
    pub fn new(count: usize, epoch: u64) -> Arc<Lanes> {
        Arc::new(Lanes {
            lanes: (0..count)
                .map(|_| Lane {
                    buf: Mutex::new(LaneBuf::new(epoch)),
                    swapped: Condvar::new(),
                    bound: AtomicUsize::new(0),
                    counters: LaneCounters::default(),
                })
                .collect(),
            id: NEXT_LANES_ID.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// A thread's binding to a lane of one log; released when the thread exits.
struct Binding {
    lanes_id: u64,
    lanes: Weak<Lanes>,
    index: usize,
}

impl Drop for Binding {
    fn drop(&mut self) {
        if let Some(lanes) = self.lanes.upgrade() {
            lanes.lanes[self.index]
                .bound
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

thread_local! {
    static BINDINGS: RefCell<Vec<Binding>> = const { RefCell::new(Vec::new()) };
}

/// The lane of the calling thread: bound on first use to the lane with the
/// fewest bound threads, kept until the thread exits.
pub(crate) fn lane_of_current_thread(lanes: &Arc<Lanes>) -> usize {
    BINDINGS
        .try_with(|b| {
            let mut b = b.borrow_mut();
            if let Some(x) = b.iter().find(|x| x.lanes_id == lanes.id) {
                return x.index;
            }
            // Forget bindings of logs that are gone.
            b.retain(|x| x.lanes.strong_count() > 0);
            let index = lanes
                .lanes
                .iter()
                .enumerate()
                .min_by_key(|(_, l)| l.bound.load(Ordering::Relaxed))
                .map(|(i, _)| i)
                .unwrap_or(0);
            lanes.lanes[index].bound.fetch_add(1, Ordering::Relaxed);
            b.push(Binding {
                lanes_id: lanes.id,
                lanes: Arc::downgrade(lanes),
                index,
            });
            index
        })
        // During thread teardown the thread-local is gone: any lane is
        // correct, lane 0 is as good as another.
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_spread_over_lanes_and_release_them_on_exit() {
        let lanes = Lanes::new(2, 1);
        let a = lane_of_current_thread(&lanes);
        assert_eq!(lane_of_current_thread(&lanes), a, "binding is sticky");
        let l2 = lanes.clone();
        let b = std::thread::spawn(move || lane_of_current_thread(&l2))
            .join()
            .unwrap();
        assert_ne!(a, b, "second thread takes the free lane");
        assert_eq!(
            lanes.lanes[b].bound.load(Ordering::Relaxed),
            0,
            "released at exit"
        );
    }
}
