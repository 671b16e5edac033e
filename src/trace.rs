//! The trace callback: an event-level view of what the log does (each
//! durable epoch, segments created, recycled and deleted, checkpoints,
//! fallback, poisoning), for an engine's own logging or metrics.
//!
//! When no tracer is set, the cost is one branch on an `Option` per event
//! site, none of which is on a writer's path (epochs, segments and
//! checkpoints are the flusher's and the checkpointer's work).

use std::sync::Arc;
use std::time::Duration;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TraceKind {
    /// An epoch became durable (acknowledged under the sync policy):
    /// exactly once per epoch, in epoch order, before `close` returns.
    /// `transactions` and `bytes` are the epoch's, `duration` the time from
    /// its seal to this instant.
    EpochDurable = 1,
    /// A new segment file started (`epoch`: its first epoch; `detail`: its
    /// path).
    SegmentCreated = 2,
    /// A recycled file started a segment (`epoch`: its first epoch).
    SegmentReused = 3,
    /// A checkpoint moved a segment aside as a spare (`detail`: its path).
    SegmentRecycled = 4,
    /// A checkpoint deleted a segment (`detail`: its path).
    SegmentDeleted = 5,
    /// A checkpoint finished (`epoch`: the mark; `duration`: its time).
    Checkpoint = 6,
    /// The log fell back to the conservative mode (`detail`: why).
    Fallback = 7,
    /// A write, sync or file operation failed: the log is poisoned
    /// (`epoch`: the first epoch not acknowledged; `detail`: the error).
    Poisoned = 8,
    /// (archive) An archive object was created (`epoch`: its last epoch;
    /// `bytes`: its size; `duration`: the upload's time; `detail`: its URL).
    /// Runs on the archiver thread.
    ArchiveObject = 9,
    /// (archive) An archive upload or check failed; it is retried with
    /// backoff (`epoch`: the first epoch not archived; `detail`: why).
    /// Runs on the archiver thread.
    ArchiveFailed = 10,
}

/// One event, as given to the tracer.
#[derive(Clone, Copy, Debug)]
pub struct TraceEvent<'a> {
    pub kind: TraceKind,
    pub epoch: u64,
    pub transactions: u64,
    pub bytes: u64,
    pub duration: Duration,
    pub detail: &'a str,
    /// For a durable epoch: the lowest and highest commit sequence of its
    /// transactions (0 and 0 for an epoch without one), and how many lanes
    /// held a record in it.
    pub first_commit_seq: u64,
    pub last_commit_seq: u64,
    pub lanes: u32,
}

/// A trace callback. It runs on the thread that caused the event (the
/// flusher, a committing thread leading a flush, the checkpointing
/// thread, or the archiver), with locks of the log held: it must be quick, must not block,
/// and must not call back into the log.
#[derive(Clone)]
pub struct Tracer(pub Arc<dyn Fn(&TraceEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer(..)")
    }
}

impl Tracer {
    pub fn new(f: impl Fn(&TraceEvent<'_>) + Send + Sync + 'static) -> Tracer {
        Tracer(Arc::new(f))
    }
}

impl<'a> TraceEvent<'a> {
    /// An event with no counts and no duration.
    pub(crate) fn new(kind: TraceKind, epoch: u64, detail: &'a str) -> TraceEvent<'a> {
        TraceEvent {
            kind,
            epoch,
            transactions: 0,
            bytes: 0,
            duration: Duration::ZERO,
            detail,
            first_commit_seq: 0,
            last_commit_seq: 0,
            lanes: 0,
        }
    }
}

impl Tracer {
    /// Gives `event` to the callback.
    pub(crate) fn emit(&self, event: &TraceEvent<'_>) {
        (self.0)(event)
    }
}
