//! Transactions written in parts, as recovery reads them.
//!
//! A transaction larger than one record is written as parts 0, 1, ..., n in
//! order (`epoch.rs`), in one epoch or several; every part but the last says
//! more follow, and only the last commits the transaction. Recovery remembers
//! where each part lies (not its bytes: memory stays bounded whatever the
//! transaction's size) until it reads the last part, then delivers the
//! transaction, in the last part's epoch and at its place in that epoch's
//! order, by reading the earlier parts again. Parts whose last part is never
//! read were never acknowledged, and are dropped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::epoch::TxnRef;

/// Where a part's record lies, and its CRC as first read.
#[derive(Clone, Debug)]
pub(crate) struct PartLoc {
    pub path: Arc<Path>,
    pub offset: u64,
    pub len: usize,
    pub crc: u32,
}

/// The parts read so far of a transaction whose last part is not read yet.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The epoch of part 0.
    pub first_epoch: u64,
    /// The part expected next.
    next: u32,
    /// Frames in the parts read.
    pub frames: u64,
    pub locs: Vec<PartLoc>,
}

/// What a committing record completes.
pub(crate) enum Completes {
    /// A whole transaction in one record.
    Whole,
    /// The last part of a transaction: its earlier parts.
    Parts(Pending),
    /// A last part whose earlier parts were not read: possible only below
    /// the checkpoint mark (their segments were removed), where nothing is
    /// delivered.
    Orphan,
}

type Key = (u32, u64, u64);

fn key(t: &TxnRef) -> Key {
    (t.file_id, t.txn_id, t.commit_seq)
}

/// The transactions in parts being read.
#[derive(Debug, Default)]
pub(crate) struct Parted {
    open: HashMap<Key, Pending>,
}

impl Parted {
    /// The first record of an epoch's `txns` (in replay order) that commits
    /// a transaction whose preceding part was not read: its earlier parts
    /// are lost, which is damage unless the epoch is at or below the
    /// checkpoint mark. A part with more to follow whose predecessor is
    /// missing is not damage by itself: it is what an attempt that never
    /// committed leaves once a checkpoint removed its first parts (nothing
    /// pins those), and it is dropped; if its transaction did commit, its
    /// last part is reported here.
    pub fn first_orphan(&self, txns: &[TxnRef]) -> Option<String> {
        let mut next: HashMap<Key, u32> = HashMap::new();
        for t in txns {
            // A whole record is part 0 of its key too: it ends what was read
            // of the key before it (`commit` drops those parts), so a part
            // after it continues nothing. It matters only while parts are
            // being read.
            if t.part == 0 && !t.more && self.open.is_empty() && next.is_empty() {
                continue;
            }
            let k = key(t);
            let expect = next
                .get(&k)
                .copied()
                .or_else(|| self.open.get(&k).map(|p| p.next));
            let follows = t.part == 0 || expect == Some(t.part);
            if !follows && !t.more {
                return Some(match expect {
                    Some(e) if e > 0 => format!(
                        "transaction {} (commit sequence {}): its last part {} found where part {e} was expected",
                        t.txn_id, t.commit_seq, t.part
                    ),
                    _ => format!(
                        "transaction {} (commit sequence {}): its last part {} found, but its earlier parts are missing",
                        t.txn_id, t.commit_seq, t.part
                    ),
                });
            }
            // After a last part, a whole record, or a part that does not
            // follow, nothing continues the transaction (0 never matches a
            // part > 0).
            next.insert(k, if t.more && follows { t.part + 1 } else { 0 });
        }
        None
    }

    /// Takes a part with more to follow, read from `loc` in `epoch`. Part 0
    /// starts the transaction afresh (a resubmission after a crash); a part
    /// that does not continue it drops it (an orphan below the mark).
    pub fn add(&mut self, t: &TxnRef, epoch: u64, frames: u64, loc: PartLoc) {
        debug_assert!(t.more);
        let k = key(t);
        if t.part == 0 {
            self.open.insert(
                k,
                Pending {
                    first_epoch: epoch,
                    next: 1,
                    frames,
                    locs: vec![loc],
                },
            );
            return;
        }
        match self.open.get_mut(&k) {
            Some(p) if p.next == t.part => {
                p.next += 1;
                p.frames += frames;
                p.locs.push(loc);
            }
            _ => {
                self.open.remove(&k);
            }
        }
    }

    /// Takes a committing record.
    pub fn commit(&mut self, t: &TxnRef) -> Completes {
        debug_assert!(!t.more);
        let earlier = self.open.remove(&key(t));
        if t.part == 0 {
            // Parts left by an earlier attempt of the same transaction
            // were never committed.
            return Completes::Whole;
        }
        match earlier {
            Some(p) if p.next == t.part => Completes::Parts(p),
            _ => Completes::Orphan,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(txn_id: u64, part: u32, more: bool) -> TxnRef {
        TxnRef {
            offset: 0,
            len: 0,
            txn_id,
            commit_seq: txn_id,
            part,
            more,
            frames: 1,
            file_id: 0,
        }
    }

    fn loc(offset: u64) -> PartLoc {
        PartLoc {
            path: Arc::from(Path::new("s")),
            offset,
            len: 1,
            crc: 0,
        }
    }

    #[test]
    fn parts_in_order_complete_a_transaction() {
        let mut p = Parted::default();
        assert!(p.first_orphan(&[r(1, 0, true), r(1, 1, true)]).is_none());
        p.add(&r(1, 0, true), 5, 2, loc(10));
        p.add(&r(1, 1, true), 5, 3, loc(20));
        assert!(p.first_orphan(&[r(1, 2, false)]).is_none());
        match p.commit(&r(1, 2, false)) {
            Completes::Parts(x) => {
                assert_eq!(x.first_epoch, 5);
                assert_eq!(x.frames, 5);
                let offs: Vec<u64> = x.locs.iter().map(|l| l.offset).collect();
                assert_eq!(offs, vec![10, 20]);
            }
            _ => panic!("expected the earlier parts"),
        }
        assert!(matches!(p.commit(&r(1, 2, false)), Completes::Orphan));
    }

    #[test]
    fn a_last_part_after_a_gap_or_a_missing_start_is_an_orphan() {
        let mut p = Parted::default();
        let why = p.first_orphan(&[r(1, 1, false)]).unwrap();
        assert!(why.contains("earlier parts are missing"), "{why}");
        // A part with more to follow and no predecessor is a leftover of an
        // attempt that never committed: dropped, not reported...
        assert!(p.first_orphan(&[r(1, 1, true)]).is_none());
        // ...unless its transaction's last part follows.
        let why = p.first_orphan(&[r(1, 1, true), r(1, 2, false)]).unwrap();
        assert!(why.contains("last part 2"), "{why}");
        p.add(&r(1, 0, true), 1, 1, loc(0));
        let why = p.first_orphan(&[r(1, 2, false)]).unwrap();
        assert!(why.contains("part 2 found where part 1"), "{why}");
        // Within one epoch: a part after the last part is an orphan too
        // (nothing is expected once the transaction committed).
        let why = p.first_orphan(&[r(1, 1, false), r(1, 2, false)]).unwrap();
        assert!(
            why.contains("part 2 found, but its earlier parts are missing"),
            "{why}"
        );
        p.add(&r(1, 2, true), 2, 1, loc(0));
        assert!(matches!(p.commit(&r(1, 3, false)), Completes::Orphan));
    }

    #[test]
    fn part_zero_starts_again_and_a_whole_record_drops_old_parts() {
        let mut p = Parted::default();
        p.add(&r(1, 0, true), 1, 1, loc(0));
        p.add(&r(1, 1, true), 1, 1, loc(1));
        p.add(&r(1, 0, true), 4, 1, loc(2));
        match p.commit(&r(1, 1, false)) {
            Completes::Parts(x) => assert_eq!(x.first_epoch, 4),
            _ => panic!("restarted at part 0"),
        }
        p.add(&r(2, 0, true), 1, 1, loc(0));
        assert!(matches!(p.commit(&r(2, 0, false)), Completes::Whole));
        assert!(matches!(p.commit(&r(2, 1, false)), Completes::Orphan));
    }

    #[test]
    fn a_part_that_does_not_continue_its_transaction_drops_it() {
        // Parts 0 and 1 read; part 3 is not the part expected (2): the
        // transaction cannot complete, not even with the part that was
        // expected, read afterwards.
        let mut p = Parted::default();
        p.add(&r(1, 0, true), 1, 1, loc(0));
        p.add(&r(1, 1, true), 2, 1, loc(1));
        assert!(matches!(p.commit(&r(1, 3, false)), Completes::Orphan));
        // Whatever part comes after the one that did not continue.
        for last in [1, 2, 6] {
            p.add(&r(1, 0, true), 1, 1, loc(0));
            p.add(&r(1, 5, true), 2, 1, loc(1));
            assert!(
                matches!(p.commit(&r(1, last, false)), Completes::Orphan),
                "{last}"
            );
        }
    }

    #[test]
    fn transactions_are_told_apart_by_file_transaction_and_commit_sequence() {
        // Four transactions in parts, read interleaved: the same id in two
        // files, and the same id and file with another commit sequence.
        let t = |file_id: u32, txn_id: u64, commit_seq: u64, part: u32, more: bool| TxnRef {
            file_id,
            commit_seq,
            ..r(txn_id, part, more)
        };
        let keys = [(0, 1, 1), (1, 1, 1), (0, 2, 2), (0, 1, 3)];
        let mut p = Parted::default();
        for (n, &(f, id, seq)) in keys.iter().enumerate() {
            p.add(&t(f, id, seq, 0, true), 1, n as u64 + 1, loc(n as u64));
        }
        let ones: Vec<TxnRef> = keys
            .iter()
            .map(|&(f, id, seq)| t(f, id, seq, 1, true))
            .collect();
        assert!(p.first_orphan(&ones).is_none());
        for (n, one) in ones.iter().enumerate() {
            p.add(one, 2, 10, loc(10 + n as u64));
        }
        for (n, &(f, id, seq)) in keys.iter().enumerate().rev() {
            let last = [t(f, id, seq, 2, false)];
            assert!(p.first_orphan(&last).is_none(), "{n}");
            match p.commit(&last[0]) {
                Completes::Parts(x) => {
                    assert_eq!(x.frames, n as u64 + 11, "{n}");
                    let offs: Vec<u64> = x.locs.iter().map(|l| l.offset).collect();
                    assert_eq!(offs, vec![n as u64, 10 + n as u64], "{n}");
                }
                _ => panic!("transaction {n} lost its parts"),
            }
        }
    }

    #[test]
    fn a_part_after_a_whole_record_of_its_key_is_an_orphan_within_an_epoch_too() {
        // Part 0 of (file 0, transaction 1, sequence 1) read in an earlier
        // epoch; this epoch holds a whole record of the same key (a part 0
        // without more: it commits, and replay drops the earlier part), then
        // a last part 1. Part 1 continues nothing, as it would in a later
        // epoch.
        let mut p = Parted::default();
        p.add(&r(1, 0, true), 1, 1, loc(0));
        let epoch = [r(1, 0, false), r(1, 1, false)];
        let why = p.first_orphan(&epoch).expect("part 1 after a whole record");
        assert!(
            why.contains("part 1 found, but its earlier parts are missing"),
            "{why}"
        );
        assert!(matches!(p.commit(&epoch[0]), Completes::Whole));
        let why = p
            .first_orphan(&epoch[1..])
            .expect("the same in the next epoch");
        assert!(why.contains("earlier parts are missing"), "{why}");
        // A part 1 with more to follow there is a leftover, dropped; its
        // last part, if it comes, is the orphan.
        let mut p = Parted::default();
        p.add(&r(1, 0, true), 1, 1, loc(0));
        assert!(p.first_orphan(&[r(1, 0, false), r(1, 1, true)]).is_none());
        assert!(p
            .first_orphan(&[r(1, 0, false), r(1, 1, true), r(1, 2, false)])
            .is_some());
        // Nothing read before: part 0 with more, the whole record, part 1.
        let p = Parted::default();
        let epoch = [r(1, 0, true), r(1, 0, false), r(1, 1, false)];
        assert!(p.first_orphan(&epoch).is_some());
        // Whole records of other keys change nothing.
        let mut p = Parted::default();
        p.add(&r(1, 0, true), 1, 1, loc(0));
        assert!(p.first_orphan(&[r(2, 0, false), r(1, 1, false)]).is_none());
    }
}
