//! Epochs a checkpoint must keep although they are at or below its mark:
//! the first parts of a transaction written in parts (`epoch.rs`) whose last
//! part, which commits it, lies above the mark. Recovery replays such a
//! transaction, so it needs every part; checkpoint removes a segment only
//! below the oldest pinned epoch.

/// The pins of one log.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    /// `(id, first, last)`: the transaction's parts lie in epochs
    /// `first..=last`; `last` is `u64::MAX` while parts are still being
    /// appended.
    open: Vec<(u64, u64, u64)>,
    next_id: u64,
}

impl Pins {
    /// Pins every epoch from `first` on, for a transaction whose parts start
    /// being appended; returns its id.
    pub fn add(&mut self, first: u64) -> u64 {
        self.next_id += 1;
        self.open.push((self.next_id, first, u64::MAX));
        self.next_id
    }

    /// Records the epoch of the transaction's last part.
    pub fn commit(&mut self, id: u64, last: u64) {
        if let Some(p) = self.open.iter_mut().find(|p| p.0 == id) {
            p.2 = last;
        }
    }

    /// Drops a pin (the transaction failed before its last part).
    pub fn remove(&mut self, id: u64) {
        self.open.retain(|p| p.0 != id);
    }

    /// Pins a transaction found complete in the log at open.
    pub fn add_committed(&mut self, first: u64, last: u64) {
        let id = self.add(first);
        self.commit(id, last);
    }

    /// Forgets the transactions a checkpoint through `mark` covers (never
    /// replayed again), and returns the highest epoch that may be removed:
    /// `mark`, or one below the oldest epoch still pinned.
    pub fn removable_through(&mut self, mark: u64) -> u64 {
        self.open.retain(|&(_, _, last)| last > mark);
        self.open
            .iter()
            .map(|&(_, first, _)| first.saturating_sub(1))
            .fold(mark, u64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_holds_until_a_checkpoint_covers_its_last_part() {
        let mut p = Pins::default();
        assert_eq!(p.removable_through(9), 9, "nothing pinned");
        let a = p.add(5);
        assert_eq!(p.removable_through(9), 4, "in flight: pinned from 5");
        p.commit(a, 12);
        assert_eq!(p.removable_through(11), 4, "last part above the mark");
        assert_eq!(p.removable_through(12), 12, "covered: released");
        assert_eq!(p.removable_through(3), 3, "and forgotten");
        let b = p.add(20);
        p.add_committed(15, 18);
        assert_eq!(p.removable_through(19), 19, "a committed pin covered");
        assert_eq!(p.removable_through(17), 17, "forgotten at 19");
        p.remove(b);
        assert_eq!(p.removable_through(25), 25);
    }

    #[test]
    fn a_transaction_found_committed_at_open_is_pinned_from_its_first_part() {
        let mut p = Pins::default();
        p.add_committed(15, 18);
        assert_eq!(p.removable_through(16), 14, "last part above the mark");
        assert_eq!(p.removable_through(17), 14);
        assert_eq!(p.removable_through(18), 18, "covered: released");
    }

    #[test]
    fn each_pin_is_committed_and_removed_on_its_own() {
        let mut p = Pins::default();
        let a = p.add(3);
        let b = p.add(7);
        assert_ne!(a, b);
        p.commit(b, 9);
        // `a` is still in flight.
        assert_eq!(p.removable_through(9), 2);
        p.remove(a);
        assert_eq!(p.removable_through(20), 20);
        let c = p.add(30);
        let d = p.add(31);
        p.remove(c);
        assert_eq!(p.removable_through(40), 30, "d still pinned");
        p.commit(d, 35);
        assert_eq!(p.removable_through(35), 35);
    }
}
