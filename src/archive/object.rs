//! The archive object: a run of consecutive epochs, verifiable on its own.
//! Layout in `docs/ARCHIVE.md`. All integers little-endian.
//!
//! ```text
//! 0   magic "PWAR"
//! 4   u16 version (1), u16 flags (0)
//! 8   u64 first epoch
//! 16  u64 last epoch
//! 24  u64 first epoch of the object before (0: none)
//! 32  u64 last epoch of the object before (0: none)
//! 40  u32 checksum of the object before (0: none)
//! 44  u32 epoch count (last - first + 1)
//! 48  epochs, each: u64 epoch, u64 durable time (ns since the Unix epoch),
//!     u64 first commit seq, u64 last commit seq, u32 database size,
//!     u32 record count, u32 page-set size, u32 body length, then the body
//!     (the epoch frame's records, byte for byte as the log wrote them)
//! end u32 checksum: CRC32C of every byte before it
//! ```

/// "PWAR" as a little-endian u32.
pub const OBJECT_MAGIC: u32 = u32::from_le_bytes(*b"PWAR");
pub const OBJECT_VERSION: u16 = 1;
/// Bytes before the first epoch.
pub const OBJECT_HEADER_LEN: usize = 48;
/// Bytes of an epoch's fixed fields.
pub const EPOCH_HEAD_LEN: usize = 48;
/// The suffix of an object's name.
pub const OBJECT_SUFFIX: &str = ".pwarc";

/// One archived epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedEpoch {
    pub epoch: u64,
    /// When the epoch became durable on the archiving machine, in
    /// nanoseconds since the Unix epoch (wall clock).
    pub durable_unix_ns: u64,
    pub first_commit_seq: u64,
    pub last_commit_seq: u64,
    pub db_size_pages: u32,
    pub txn_count: u32,
    pub page_set_size: u32,
    /// The frame's body: its records as written to the log.
    pub body: Vec<u8>,
}

/// The object before this one: its first and last epochs and its checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrevLink {
    pub first_epoch: u64,
    pub last_epoch: u64,
    pub crc: u32,
}

/// A decoded object.
#[derive(Clone, Debug)]
pub struct Object {
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// `None` for the first object of an archive.
    pub prev: Option<PrevLink>,
    pub epochs: Vec<ArchivedEpoch>,
    /// The checksum in its trailer.
    pub crc: u32,
}

/// The name of the object whose first epoch is `first` (20 digits, so
/// that names sort in epoch order).
pub fn object_name(first: u64) -> String {
    format!("{first:020}{OBJECT_SUFFIX}")
}

/// The first epoch in an object's name, if it is one.
pub fn parse_object_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(OBJECT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes epochs (consecutive, non-empty) into an object; returns its
/// bytes and its checksum.
pub fn encode(prev: Option<PrevLink>, epochs: &[ArchivedEpoch]) -> (Vec<u8>, u32) {
    let first = epochs.first().expect("an object holds an epoch").epoch;
    let last = epochs.last().expect("an object holds an epoch").epoch;
    let body: usize = epochs.iter().map(|e| EPOCH_HEAD_LEN + e.body.len()).sum();
    let mut b = Vec::with_capacity(OBJECT_HEADER_LEN + body + 4);
    let p = prev.unwrap_or_default();
    b.extend_from_slice(&OBJECT_MAGIC.to_le_bytes());
    b.extend_from_slice(&OBJECT_VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&first.to_le_bytes());
    b.extend_from_slice(&last.to_le_bytes());
    b.extend_from_slice(&p.first_epoch.to_le_bytes());
    b.extend_from_slice(&p.last_epoch.to_le_bytes());
    b.extend_from_slice(&p.crc.to_le_bytes());
    b.extend_from_slice(&(epochs.len() as u32).to_le_bytes());
    for e in epochs {
        b.extend_from_slice(&e.epoch.to_le_bytes());
        b.extend_from_slice(&e.durable_unix_ns.to_le_bytes());
        b.extend_from_slice(&e.first_commit_seq.to_le_bytes());
        b.extend_from_slice(&e.last_commit_seq.to_le_bytes());
        b.extend_from_slice(&e.db_size_pages.to_le_bytes());
        b.extend_from_slice(&e.txn_count.to_le_bytes());
        b.extend_from_slice(&e.page_set_size.to_le_bytes());
        b.extend_from_slice(&(e.body.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.body);
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    (b, crc)
}

/// The checksum an object's trailer holds, without decoding it (`None`
/// when it is too short to have one).
pub fn trailer_crc(b: &[u8]) -> Option<u32> {
    let n = b.len().checked_sub(4)?;
    Some(u32::from_le_bytes(b[n..].try_into().unwrap()))
}

/// Decodes and checks an object: magic, version, checksum, and epochs
/// consecutive from its first to its last. `name_first`: the first epoch
/// its name gives, which must match. Epoch bodies are not parsed here
/// (restore validates each as a frame).
pub fn decode(b: &[u8], name_first: u64) -> Result<Object, String> {
    if b.len() < OBJECT_HEADER_LEN + 4 {
        return Err(format!("{} bytes: shorter than an object", b.len()));
    }
    let crc = trailer_crc(b).expect("long enough");
    let content = &b[..b.len() - 4];
    if crc32c::crc32c(content) != crc {
        return Err(format!(
            "checksum mismatch: the trailer says {crc:08x}, the content has {:08x}",
            crc32c::crc32c(content)
        ));
    }
    let u64_at = |o: usize| u64::from_le_bytes(content[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(content[o..o + 4].try_into().unwrap());
    if u32_at(0) != OBJECT_MAGIC {
        return Err("not an archive object (bad magic)".into());
    }
    let version = u16::from_le_bytes([content[4], content[5]]);
    if version != OBJECT_VERSION {
        return Err(format!(
            "object format version {version}; this library reads {OBJECT_VERSION}"
        ));
    }
    let first = u64_at(8);
    let last = u64_at(16);
    if first != name_first {
        return Err(format!(
            "holds epochs from {first}, but its name says {name_first}"
        ));
    }
    if first == 0 || last < first || last > crate::epoch::MAX_EPOCH {
        return Err(format!("impossible epoch range {first}..={last}"));
    }
    let prev = PrevLink {
        first_epoch: u64_at(24),
        last_epoch: u64_at(32),
        crc: u32_at(40),
    };
    let prev = (prev != PrevLink::default()).then_some(prev);
    let count = u32_at(44) as u64;
    if count != last - first + 1 {
        return Err(format!("{count} epochs for the range {first}..={last}"));
    }
    let mut at = OBJECT_HEADER_LEN;
    let mut epochs = Vec::with_capacity(count.min(1 << 20) as usize);
    for want in first..=last {
        if content.len() < at + EPOCH_HEAD_LEN {
            return Err(format!("epoch {want} runs past the object"));
        }
        let epoch = u64_at(at);
        if epoch != want {
            return Err(format!("epoch {epoch} where {want} was expected"));
        }
        let len = u32_at(at + 44) as usize;
        let start = at + EPOCH_HEAD_LEN;
        let body = content
            .get(start..start + len)
            .ok_or_else(|| format!("the body of epoch {epoch} runs past the object"))?;
        epochs.push(ArchivedEpoch {
            epoch,
            durable_unix_ns: u64_at(at + 8),
            first_commit_seq: u64_at(at + 16),
            last_commit_seq: u64_at(at + 24),
            db_size_pages: u32_at(at + 32),
            txn_count: u32_at(at + 36),
            page_set_size: u32_at(at + 40),
            body: body.to_vec(),
        });
        at = start + len;
    }
    if at != content.len() {
        return Err(format!("{} bytes after the last epoch", content.len() - at));
    }
    Ok(Object {
        first_epoch: first,
        last_epoch: last,
        prev,
        epochs,
        crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(e: u64) -> ArchivedEpoch {
        ArchivedEpoch {
            epoch: e,
            durable_unix_ns: 1_000 * e,
            first_commit_seq: e,
            last_commit_seq: e + 1,
            db_size_pages: 3,
            txn_count: 0,
            page_set_size: 0,
            body: vec![e as u8; e as usize],
        }
    }

    #[test]
    fn an_object_round_trips_and_any_flipped_byte_is_refused() {
        let prev = PrevLink {
            first_epoch: 1,
            last_epoch: 4,
            crc: 0xdead_beef,
        };
        let epochs: Vec<_> = (5..=7).map(epoch).collect();
        let (bytes, crc) = encode(Some(prev), &epochs);
        let o = decode(&bytes, 5).unwrap();
        assert_eq!((o.first_epoch, o.last_epoch, o.crc), (5, 7, crc));
        assert_eq!(o.prev, Some(prev));
        assert_eq!(o.epochs, epochs);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b, 5).is_err(), "flipped byte {i} accepted");
        }
        assert!(decode(&bytes, 6).unwrap_err().contains("name says 6"));
        assert!(decode(&bytes[..bytes.len() - 1], 5).is_err());
    }

    #[test]
    fn names_sort_in_epoch_order() {
        assert_eq!(parse_object_name(&object_name(42)), Some(42));
        assert!(object_name(9) < object_name(10));
        assert_eq!(parse_object_name("42.pwarc"), None);
        assert_eq!(parse_object_name("00000000000000000042.tmp"), None);
    }
}
