//! A loom model of the append / seal / durable handshake (src/log.rs
//! `submit` and `wait_durable`, src/flusher.rs `seal` and `write_epoch`).
//!
//! This is a model, not the engine: the engine uses parking_lot, which loom
//! cannot instrument, so the protocol is restated here with loom's
//! primitives, step for step: the lane mutex holds the epoch a batch joins;
//! the sealer, under the seal lock, issues epoch e+1 and then swaps every
//! lane's buffer under that lane's lock; appended bytes are counted per
//! epoch parity and a writer that would overflow the epoch waits for its
//! lane to be swapped; the durable watermark moves only after the epoch is
//! written, and waiters are woken once per epoch. Loom runs every
//! interleaving (up to a preemption bound) and the model asserts:
//!
//! * no batch joins an epoch whose seal has completed;
//! * every batch is written in the epoch its ticket names (never spans or
//!   slips into another epoch);
//! * the per-parity byte counter of a sealed epoch equals the bytes sealed;
//! * durable is never ahead of written: an acknowledged batch is on "disk";
//! * nothing deadlocks, including a writer waiting for room while its lane
//!   is being sealed.
//!
//! A last test runs the classic trap (reading the epoch before taking
//! the lane lock) and checks that the model catches it.
//!
//! Not modelled (covered only by the engine's own tests, which run real
//! schedules, not every interleaving): the leader / hand-off path of group
//! commit (a committer leading its own flush, pending requests handed to the
//! background flusher), the wake-ups by epoch parity, poisoning, timeouts
//! (the zero timeout and the lead budget included), checkpoints and segment
//! switches.

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::{Arc, Condvar, Mutex};

/// Bytes an epoch may hold before writers wait for the next one.
const MAX_EPOCH_BYTES: u64 = 10;

struct LaneBuf {
    epoch: u64,
    /// (batch id, ticket epoch, bytes)
    batches: Vec<(u64, u64, u64)>,
}

struct Lane {
    buf: Mutex<LaneBuf>,
    swapped: Condvar,
}

struct EpochState {
    filling: u64,
    seal_requested: u64,
    durable: u64,
    closing: bool,
}

struct Model {
    lanes: Vec<Lane>,
    epoch_bytes: [AtomicU64; 2],
    state: Mutex<EpochState>,
    flusher_cv: Condvar,
    durable_cv: Condvar,
    seal_lock: Mutex<()>,
    /// Model only: the highest epoch whose seal completed.
    sealed: AtomicU64,
    /// Model only: what the flusher wrote, (batch id, epoch of its frame).
    disk: Mutex<Vec<(u64, u64)>>,
    /// Model only: the trap of reading the epoch before taking the lane lock.
    read_epoch_before_lock: bool,
}

impl Model {
    fn new(lanes: usize, buggy: bool) -> Arc<Model> {
        Arc::new(Model {
            lanes: (0..lanes)
                .map(|_| Lane {
                    buf: Mutex::new(LaneBuf {
                        epoch: 1,
                        batches: Vec::new(),
                    }),
                    swapped: Condvar::new(),
                })
                .collect(),
            epoch_bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            state: Mutex::new(EpochState {
                filling: 1,
                seal_requested: 0,
                durable: 0,
                closing: false,
            }),
            flusher_cv: Condvar::new(),
            durable_cv: Condvar::new(),
            seal_lock: Mutex::new(()),
            sealed: AtomicU64::new(0),
            disk: Mutex::new(Vec::new()),
            read_epoch_before_lock: buggy,
        })
    }

    fn request_seal(&self, epoch: u64) {
        let mut st = self.state.lock().unwrap();
        if st.seal_requested < epoch {
            st.seal_requested = epoch;
            self.flusher_cv.notify_one();
        }
    }

    /// `Shared::submit`: returns the ticket.
    fn submit(&self, lane: usize, id: u64, len: u64) -> u64 {
        let early = self
            .read_epoch_before_lock
            .then(|| self.state.lock().unwrap().filling);
        let lane = &self.lanes[lane];
        let mut g = lane.buf.lock().unwrap();
        loop {
            // The epoch is read under the lane lock the sealer takes.
            let epoch = early.unwrap_or(g.epoch);
            if !self.read_epoch_before_lock {
                assert!(
                    epoch > self.sealed.load(Ordering::SeqCst),
                    "batch {id} joined epoch {epoch}, already sealed"
                );
            }
            let slot = &self.epoch_bytes[(epoch & 1) as usize];
            let prev = slot.fetch_add(len, Ordering::AcqRel);
            if prev > 0 && prev + len > MAX_EPOCH_BYTES {
                // Full: wait for the sealer to move this lane on.
                slot.fetch_sub(len, Ordering::AcqRel);
                self.request_seal(epoch);
                g = lane.swapped.wait(g).unwrap();
                continue;
            }
            g.batches.push((id, epoch, len));
            drop(g);
            self.flusher_cv.notify_one();
            return epoch;
        }
    }

    /// `Shared::wait_durable`.
    fn wait_durable(&self, epoch: u64) {
        let mut st = self.state.lock().unwrap();
        while st.durable < epoch {
            if st.seal_requested < epoch {
                st.seal_requested = epoch;
                self.flusher_cv.notify_one();
            }
            st = self.durable_cv.wait(st).unwrap();
        }
    }

    /// `Flusher::seal` then `write_epoch`.
    fn seal_and_write(&self, epoch: u64) {
        let seal = self.seal_lock.lock().unwrap();
        self.state.lock().unwrap().filling = epoch + 1;
        let mut sealed = Vec::new();
        for lane in &self.lanes {
            let mut g = lane.buf.lock().unwrap();
            assert_eq!(g.epoch, epoch, "a lane was not in the epoch being sealed");
            let fresh = LaneBuf {
                epoch: epoch + 1,
                batches: Vec::new(),
            };
            sealed.push(std::mem::replace(&mut *g, fresh));
            drop(g);
            lane.swapped.notify_all();
        }
        self.sealed.store(epoch, Ordering::SeqCst);
        // Every lane has moved on: nobody adds to this parity until the
        // next seal issues epoch + 2.
        let counted = self.epoch_bytes[(epoch & 1) as usize].swap(0, Ordering::AcqRel);
        let bytes: u64 = sealed
            .iter()
            .flat_map(|b| b.batches.iter().map(|x| x.2))
            .sum();
        assert_eq!(counted, bytes, "epoch {epoch}: byte counter out of step");
        drop(seal);
        // Write: every batch of this frame must carry this epoch's ticket.
        let mut disk = self.disk.lock().unwrap();
        for b in &sealed {
            for &(id, ticket, _) in &b.batches {
                assert_eq!(
                    ticket, epoch,
                    "batch {id} with ticket {ticket} written in epoch {epoch}"
                );
                disk.push((id, epoch));
            }
        }
        drop(disk);
        let mut st = self.state.lock().unwrap();
        assert_eq!(st.durable + 1, epoch, "epochs become durable in order");
        st.durable = epoch;
        drop(st);
        self.durable_cv.notify_all();
    }

    /// `flusher::run`: seals when asked, and what is pending at close.
    fn flusher(&self) {
        loop {
            let e = {
                let mut st = self.state.lock().unwrap();
                loop {
                    let e = st.filling;
                    let pending = self.epoch_bytes[(e & 1) as usize].load(Ordering::Acquire);
                    if st.seal_requested >= e || (st.closing && pending > 0) {
                        break e;
                    }
                    if st.closing {
                        return;
                    }
                    st = self.flusher_cv.wait(st).unwrap();
                }
            };
            self.seal_and_write(e);
        }
    }

    fn close(&self) {
        self.state.lock().unwrap().closing = true;
        self.flusher_cv.notify_one();
    }

    /// A writer: submits, waits, and checks its batch is on disk.
    fn commit(&self, lane: usize, id: u64, len: u64) {
        let ticket = self.submit(lane, id, len);
        self.wait_durable(ticket);
        assert!(
            self.disk.lock().unwrap().contains(&(id, ticket)),
            "batch {id} acknowledged in epoch {ticket} but not written in it"
        );
    }
}

/// The preemption bound: 2 by default (every interleaving with at most two
/// forced context switches; seconds), PWAL_LOOM_BOUND=3 in the soak.
fn env_bound() -> usize {
    std::env::var("PWAL_LOOM_BOUND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn check(lanes: usize, writers: &'static [(usize, u64, u64)], buggy: bool) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(env_bound());
    b.check(move || {
        let m = Model::new(lanes, buggy);
        let f = {
            let m = m.clone();
            loom::thread::spawn(move || m.flusher())
        };
        let ws: Vec<_> = writers[1..]
            .iter()
            .map(|&(lane, id, len)| {
                let m = m.clone();
                loom::thread::spawn(move || m.commit(lane, id, len))
            })
            .collect();
        let (lane, id, len) = writers[0];
        m.commit(lane, id, len);
        for w in ws {
            w.join().unwrap();
        }
        m.close();
        f.join().unwrap();
        let disk = m.disk.lock().unwrap();
        for &(_, id, _) in writers {
            assert_eq!(
                disk.iter().filter(|x| x.0 == id).count(),
                1,
                "batch {id} written once"
            );
        }
    });
}

#[test]
fn writers_on_two_lanes_race_the_sealer() {
    check(2, &[(0, 1, 3), (1, 2, 3)], false);
}

#[test]
fn a_writer_submits_while_its_lane_is_sealed_and_waits_for_room() {
    // Both on lane 0: the second overflows the epoch and must wait for the
    // seal of the first's epoch, which a waiter may be requesting meanwhile.
    check(1, &[(0, 1, 6), (0, 2, 6)], false);
}

#[test]
#[should_panic(expected = "epoch")]
fn reading_the_epoch_before_the_lane_lock_is_caught() {
    check(1, &[(0, 1, 3), (0, 2, 3)], true);
}
