//! Memory bounds of a large transaction, measured by counting every heap
//! allocation of this test process (one test in this binary, so nothing
//! else allocates meanwhile): committing a transaction of 256 MiB holds at
//! most a bounded amount beside the caller's pages, and recovering it peaks
//! under 64 MiB.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use pwal::{Frame, Log, Options, RecoverOptions, SyncPolicy, Txn};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` and returns its result with the peak of live heap bytes above
/// what was live when it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed) - base)
}

const MIB: usize = 1 << 20;

#[test]
fn a_256_mib_transaction_commits_and_recovers_in_bounded_memory() {
    let dir = common::scratch("large-memory");
    let db = dir.join("db");
    let total = 256 * MIB;
    let page = 4096;
    let data: Vec<u8> = (0..total)
        .map(|i| (i / page * 31 + i % 251) as u8)
        .collect();
    let frames: Vec<Frame<'_>> = data
        .chunks(page)
        .enumerate()
        .map(|(i, d)| Frame {
            page_number: i as u32 + 1,
            db_size_if_commit: 0,
            data: d,
        })
        .collect();
    let opts = Options {
        sync: SyncPolicy::Full,
        lanes: 2,
        use_env: false,
        ..Options::default()
    };
    let log = Log::open(&db, &opts).unwrap();
    let (epoch, commit_peak) = peak_during(|| {
        log.commit(
            &Txn {
                txn_id: 1,
                commit_seq: 1,
                txn_epoch: 0,
                frames: &frames,
            },
            None,
        )
        .unwrap()
    });
    log.close().unwrap();
    println!(
        "commit of {} MiB: peak {:.1} MiB of heap beside the caller's pages",
        total / MIB,
        commit_peak as f64 / MIB as f64
    );
    // A lane buffer holds a part (8 MiB) at a time, the epoch in flight
    // another, with their reserve; nothing near the transaction's size.
    assert!(
        commit_peak < 48 * MIB,
        "commit held {commit_peak} bytes of heap"
    );
    drop(frames);

    let mut frames_seen = 0usize;
    let mut mismatches = 0usize;
    let (report, recover_peak) = peak_during(|| {
        pwal::recover(&db, &RecoverOptions::default(), |r| {
            assert_eq!(r.epoch, epoch);
            let at = (r.page_number as usize - 1) * page;
            if r.data != &data[at..at + page] {
                mismatches += 1;
            }
            frames_seen += 1;
            true
        })
        .unwrap()
    });
    println!(
        "recovery of {} MiB: peak {:.1} MiB of heap",
        total / MIB,
        recover_peak as f64 / MIB as f64
    );
    assert_eq!(frames_seen, total / page);
    assert_eq!(mismatches, 0);
    assert_eq!(report.transactions, 1);
    assert!(
        recover_peak < 64 * MIB,
        "recovery held {recover_peak} bytes of heap"
    );
}
