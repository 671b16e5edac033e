//! The epoch frame: the unit the flusher writes and recovery validates.
//! The byte layout is specified in `docs/FORMAT.md`; keep the two in step.
//!
//! An epoch frame is a header (the *commit certificate*) followed by the body:
//! one section per lane, each a sequence of transaction records. Every record
//! carries its own length and a CRC32C computed on the writer's thread when it
//! was encoded; the certificate's CRC32C covers the header and the sequence of
//! record CRCs, so every body byte is covered without the flusher making a
//! second pass over the data.

use crate::config::{
    MAX_EPOCH_BODY_BYTES, MAX_LANES, MAX_PAGE_BYTES, MAX_RECORD_BYTES, MAX_TXN_BYTES,
    MAX_TXN_FRAMES,
};
use crate::error::{Error, Result};
use crate::Txn;

/// "PWEP" read as a little-endian u32.
pub const EPOCH_MAGIC: u32 = u32::from_le_bytes(*b"PWEP");
/// Version 4 added the file id to the transaction record; version 3 the
/// part index and flags (transactions larger than one record); version 2 added `synced_through`
/// and `checkpoint_epoch` to the certificate and `log_start_epoch` to the
/// segment header. Logs of another version are refused, with an error naming
/// both versions.
pub const FORMAT_VERSION: u16 = 4;
/// Bytes of the fixed part of the certificate, before the per-lane counts.
pub const EPOCH_FIXED_LEN: usize = 80;
/// The highest epoch number a valid frame or segment header may carry. At a
/// million epochs a second it lasts about 146 000 years, so a larger value
/// can only be damage (or a forged header); refusing it keeps `epoch + 1`
/// and `first_epoch - 1` on values read from disk far from wrapping.
pub const MAX_EPOCH: u64 = 1 << 62;
pub const TXN_HEADER_LEN: usize = 44;
pub const FRAME_HEADER_LEN: usize = 12;
/// Record flag: more parts of the same transaction follow in later records.
pub const RECORD_MORE: u32 = 1;

pub const fn header_len(lanes: usize) -> usize {
    EPOCH_FIXED_LEN + 4 * lanes + 4
}

/// What a record says of the transaction it belongs to. A transaction that
/// encodes to at most `MAX_RECORD_BYTES` is one record (part 0, no more);
/// a larger one is parts 0, 1, ... of consecutive frames, every one but the
/// last flagged `more`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHead {
    pub txn_id: u64,
    pub commit_seq: u64,
    pub txn_epoch: u32,
    pub part: u32,
    pub more: bool,
    /// The engine's number for the file the transaction belongs to (0 for
    /// an engine with one file).
    pub file_id: u32,
}

impl RecordHead {
    /// The head of part `part` of `txn`, of file `file_id`.
    pub fn of(txn: &Txn<'_>, file_id: u32, part: u32, more: bool) -> RecordHead {
        RecordHead {
            txn_id: txn.txn_id,
            commit_seq: txn.commit_seq,
            txn_epoch: txn.txn_epoch,
            part,
            more,
            file_id,
        }
    }
}

/// Checks a transaction against every limit before anything is buffered, and
/// returns the length of its encoding as one record (more than
/// `MAX_RECORD_BYTES`: it is written in parts, [`parts`]).
pub fn validate_txn(txn: &Txn<'_>) -> Result<usize> {
    if txn.frames.is_empty() {
        return Err(Error::invalid(format!(
            "transaction {} has no frames (frame_count must be at least 1)",
            txn.txn_id
        )));
    }
    if txn.frames.len() > MAX_TXN_FRAMES {
        return Err(Error::invalid(format!(
            "transaction {} has {} frames; at most {MAX_TXN_FRAMES} are allowed",
            txn.txn_id,
            txn.frames.len()
        )));
    }
    let mut page_bytes = 0usize;
    for (i, f) in txn.frames.iter().enumerate() {
        if f.page_number == 0 {
            return Err(Error::invalid(format!(
                "transaction {}: frame {i} has page number 0 (pages are numbered from 1)",
                txn.txn_id
            )));
        }
        if f.data.is_empty() || f.data.len() > MAX_PAGE_BYTES {
            return Err(Error::invalid(format!(
                "transaction {}: frame {i} (page {}) is {} bytes; a page must be 1 to {MAX_PAGE_BYTES} bytes",
                txn.txn_id,
                f.page_number,
                f.data.len()
            )));
        }
        page_bytes += f.data.len();
    }
    if page_bytes > MAX_TXN_BYTES {
        return Err(Error::invalid(format!(
            "transaction {} holds {page_bytes} bytes of pages; at most {MAX_TXN_BYTES} are allowed",
            txn.txn_id
        )));
    }
    Ok(TXN_HEADER_LEN + FRAME_HEADER_LEN * txn.frames.len() + page_bytes)
}

/// Splits a validated transaction into parts of at most `MAX_RECORD_BYTES`
/// encoded bytes each, whole frames only, in order: each item is the range of
/// frames of one part and the length of its record.
pub fn parts<'a>(
    frames: &'a [crate::Frame<'a>],
) -> impl Iterator<Item = (std::ops::Range<usize>, usize)> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at == frames.len() {
            return None;
        }
        let start = at;
        let mut len = TXN_HEADER_LEN;
        while at < frames.len() {
            let add = FRAME_HEADER_LEN + frames[at].data.len();
            if at > start && len + add > MAX_RECORD_BYTES {
                break;
            }
            len += add;
            at += 1;
        }
        Some((start..at, len))
    })
}

fn head_bytes(head: &RecordHead, len: usize, frame_count: usize) -> [u8; TXN_HEADER_LEN] {
    let mut h = [0u8; TXN_HEADER_LEN];
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..16].copy_from_slice(&head.txn_id.to_le_bytes());
    h[16..24].copy_from_slice(&head.commit_seq.to_le_bytes());
    h[24..28].copy_from_slice(&head.txn_epoch.to_le_bytes());
    h[28..32].copy_from_slice(&(frame_count as u32).to_le_bytes());
    h[32..36].copy_from_slice(&head.part.to_le_bytes());
    let flags = if head.more { RECORD_MORE } else { 0 };
    h[36..40].copy_from_slice(&flags.to_le_bytes());
    h[40..44].copy_from_slice(&head.file_id.to_le_bytes());
    h
}

/// Appends the record of `frames` (a validated transaction, or one part of
/// it, of `encoded_len` bytes) to `buf` (the lane path: the CRC is computed
/// piecewise while the pages are copied) and returns the record's CRC.
pub fn encode_record(
    buf: &mut Vec<u8>,
    head: &RecordHead,
    frames: &[crate::Frame<'_>],
    encoded_len: usize,
) -> u32 {
    let start = buf.len();
    buf.reserve(encoded_len);
    let h = head_bytes(head, encoded_len, frames.len());
    let mut crc = crc32c::crc32c(&h[4..]);
    buf.extend_from_slice(&h);
    for f in frames {
        let mut fh = [0u8; FRAME_HEADER_LEN];
        fh[0..4].copy_from_slice(&f.page_number.to_le_bytes());
        fh[4..8].copy_from_slice(&f.db_size_if_commit.to_le_bytes());
        fh[8..12].copy_from_slice(&(f.data.len() as u32).to_le_bytes());
        crc = crc32c::crc32c_append(crc, &fh);
        crc = crc32c::crc32c_append(crc, f.data);
        buf.extend_from_slice(&fh);
        buf.extend_from_slice(f.data);
    }
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(buf.len() - start, encoded_len);
    crc
}

/// [`encode_record`] of a whole transaction as one record.
#[cfg(test)]
pub fn encode_txn(buf: &mut Vec<u8>, txn: &Txn<'_>, encoded_len: usize) -> u32 {
    encode_record(
        buf,
        &RecordHead::of(txn, 0, 0, false),
        txn.frames,
        encoded_len,
    )
}

/// The conservative encoding of a record, written independently of
/// [`encode_record`]: fields first, then one CRC over the finished bytes.
/// Shadow-compare mode checks the lane encoding against it.
pub fn encode_record_reference(head: &RecordHead, frames: &[crate::Frame<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    let push32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    let total: usize = TXN_HEADER_LEN
        + frames
            .iter()
            .map(|f| FRAME_HEADER_LEN + f.data.len())
            .sum::<usize>();
    push32(&mut out, total as u32);
    out.extend_from_slice(&head.txn_id.to_le_bytes());
    out.extend_from_slice(&head.commit_seq.to_le_bytes());
    push32(&mut out, head.txn_epoch);
    push32(&mut out, frames.len() as u32);
    push32(&mut out, head.part);
    push32(&mut out, u32::from(head.more));
    push32(&mut out, head.file_id);
    for f in frames {
        push32(&mut out, f.page_number);
        push32(&mut out, f.db_size_if_commit);
        push32(&mut out, f.data.len() as u32);
        out.extend_from_slice(f.data);
    }
    let crc = crc32c::crc32c(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// [`encode_record_reference`] of a whole transaction as one record.
#[cfg(test)]
pub fn encode_txn_reference(txn: &Txn<'_>) -> Vec<u8> {
    encode_record_reference(&RecordHead::of(txn, 0, 0, false), txn.frames)
}

/// The fields of a commit certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Certificate {
    pub segment_id: u64,
    pub segment_salt: u64,
    pub epoch: u64,
    pub first_commit_seq: u64,
    pub last_commit_seq: u64,
    pub body_len: u32,
    pub txn_count: u32,
    pub db_size_pages: u32,
    pub page_set_size: u32,
    /// Every epoch up to this one had been made durable by an `fdatasync`
    /// that returned before this frame was written (0: none known). Always
    /// below `epoch`.
    pub synced_through: u64,
    /// The engine's checkpoint mark when the frame was written: epochs up to
    /// it may have been removed from the log (0: none). Always below `epoch`.
    pub checkpoint_epoch: u64,
    pub lane_counts: Vec<u32>,
}

fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn rd64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl Certificate {
    /// Encodes the header; `record_crcs` are the CRCs of the body's records in
    /// body order.
    pub fn encode(&self, record_crcs: &[&[u32]]) -> Vec<u8> {
        let lanes = self.lane_counts.len();
        let mut h = Vec::with_capacity(header_len(lanes));
        h.extend_from_slice(&EPOCH_MAGIC.to_le_bytes());
        h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        h.extend_from_slice(&(lanes as u16).to_le_bytes());
        h.extend_from_slice(&self.segment_id.to_le_bytes());
        h.extend_from_slice(&self.segment_salt.to_le_bytes());
        h.extend_from_slice(&self.epoch.to_le_bytes());
        h.extend_from_slice(&self.first_commit_seq.to_le_bytes());
        h.extend_from_slice(&self.last_commit_seq.to_le_bytes());
        h.extend_from_slice(&self.body_len.to_le_bytes());
        h.extend_from_slice(&self.txn_count.to_le_bytes());
        h.extend_from_slice(&self.db_size_pages.to_le_bytes());
        h.extend_from_slice(&self.page_set_size.to_le_bytes());
        h.extend_from_slice(&self.synced_through.to_le_bytes());
        h.extend_from_slice(&self.checkpoint_epoch.to_le_bytes());
        debug_assert_eq!(h.len(), EPOCH_FIXED_LEN);
        for c in &self.lane_counts {
            h.extend_from_slice(&c.to_le_bytes());
        }
        let mut crc = crc32c::crc32c(&h);
        for lane in record_crcs {
            for c in lane.iter() {
                crc = crc32c::crc32c_append(crc, &c.to_le_bytes());
            }
        }
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }
}

/// What reading the fixed part of a header found.
pub enum FixedHeader {
    /// All zero: no frame was ever written here (preallocated space).
    Zero,
    /// The magic and version are right but the frame belongs to another
    /// incarnation of the file (stale bytes of a recycled segment).
    Stale,
    /// A plausible header: the remaining header and body lengths to read.
    Plausible { lane_count: usize, body_len: usize },
    /// Not a header: why.
    Bad(String),
}

/// Parses the fixed part of a header found in segment `(id, salt)`.
pub fn parse_fixed(b: &[u8; EPOCH_FIXED_LEN], id: u64, salt: u64) -> FixedHeader {
    if b.iter().all(|&x| x == 0) {
        return FixedHeader::Zero;
    }
    let magic = rd32(b, 0);
    if magic != EPOCH_MAGIC {
        return FixedHeader::Bad(format!(
            "bad epoch magic 0x{magic:08x} (expected 0x{EPOCH_MAGIC:08x})"
        ));
    }
    let version = u16::from_le_bytes([b[4], b[5]]);
    if version != FORMAT_VERSION {
        return FixedHeader::Bad(format!(
            "unsupported format version {version} (this library reads {FORMAT_VERSION})"
        ));
    }
    if rd64(b, 8) != id || rd64(b, 16) != salt {
        return FixedHeader::Stale;
    }
    let lane_count = u16::from_le_bytes([b[6], b[7]]) as usize;
    if lane_count == 0 || lane_count > MAX_LANES {
        return FixedHeader::Bad(format!(
            "lane count {lane_count} out of range 1..={MAX_LANES}"
        ));
    }
    let body_len = rd32(b, 48) as usize;
    if body_len > MAX_EPOCH_BODY_BYTES {
        return FixedHeader::Bad(format!(
            "body length {body_len} exceeds the limit of {MAX_EPOCH_BODY_BYTES}"
        ));
    }
    FixedHeader::Plausible {
        lane_count,
        body_len,
    }
}

/// One transaction of a validated frame: where its record lies in the body.
#[derive(Clone, Copy, Debug)]
pub struct TxnRef {
    pub offset: usize,
    pub len: usize,
    pub txn_id: u64,
    pub commit_seq: u64,
    /// Which part of its transaction the record is (0 for a whole one).
    pub part: u32,
    /// More parts of the transaction follow in later records: the record
    /// does not commit it.
    pub more: bool,
    /// Frames in the record.
    pub frames: u32,
    /// The engine's number for the file the transaction belongs to.
    pub file_id: u32,
}

/// Validates a whole frame (`header` is the full header including its CRC,
/// `body` the body) and returns its certificate and the transactions in
/// replay order (commit sequence, then transaction id, then body order).
pub fn validate_frame(
    header: &[u8],
    body: &[u8],
) -> std::result::Result<(Certificate, Vec<TxnRef>), String> {
    let lanes = u16::from_le_bytes([header[6], header[7]]) as usize;
    debug_assert_eq!(header.len(), header_len(lanes));
    let cert = Certificate {
        segment_id: rd64(header, 8),
        segment_salt: rd64(header, 16),
        epoch: rd64(header, 24),
        first_commit_seq: rd64(header, 32),
        last_commit_seq: rd64(header, 40),
        body_len: rd32(header, 48),
        txn_count: rd32(header, 52),
        db_size_pages: rd32(header, 56),
        page_set_size: rd32(header, 60),
        synced_through: rd64(header, 64),
        checkpoint_epoch: rd64(header, 72),
        lane_counts: (0..lanes)
            .map(|i| rd32(header, EPOCH_FIXED_LEN + 4 * i))
            .collect(),
    };
    if cert.body_len as usize != body.len() {
        return Err("body length does not match the frame".into());
    }
    let counted: u64 = cert.lane_counts.iter().map(|&c| c as u64).sum();
    if counted != cert.txn_count as u64 {
        return Err(format!(
            "per-lane record counts add up to {counted}, certificate says {}",
            cert.txn_count
        ));
    }
    // Every record needs at least a header, so a count the body cannot hold
    // is rejected before anything is allocated for it.
    if cert.txn_count as usize > body.len() / TXN_HEADER_LEN {
        return Err(format!(
            "{} records cannot fit in a body of {} bytes",
            cert.txn_count,
            body.len()
        ));
    }
    let mut crc = crc32c::crc32c(&header[..header.len() - 4]);
    let mut txns = Vec::with_capacity(cert.txn_count as usize);
    let mut at = 0usize;
    let mut frames_total: u64 = 0;
    let (mut min_seq, mut max_seq) = (u64::MAX, 0u64);
    let mut commits = 0u32;
    for (lane, &count) in cert.lane_counts.iter().enumerate() {
        for r in 0..count {
            let where_ = || format!("lane {lane} record {r} at body offset {at}");
            if body.len() - at < TXN_HEADER_LEN {
                return Err(format!("{}: record header runs past the body", where_()));
            }
            let rec_crc = rd32(body, at);
            let len = rd32(body, at + 4) as usize;
            if len < TXN_HEADER_LEN + FRAME_HEADER_LEN + 1
                || len > body.len() - at
                || len > MAX_RECORD_BYTES
            {
                return Err(format!("{}: impossible record length {len}", where_()));
            }
            let rec = &body[at..at + len];
            let actual = crc32c::crc32c(&rec[4..]);
            if actual != rec_crc {
                return Err(format!(
                    "{}: record checksum mismatch (stored 0x{rec_crc:08x}, computed 0x{actual:08x})",
                    where_()
                ));
            }
            crc = crc32c::crc32c_append(crc, &rec_crc.to_le_bytes());
            let frame_count = rd32(rec, 28) as usize;
            if frame_count == 0 || frame_count > MAX_TXN_FRAMES {
                return Err(format!(
                    "{}: impossible frame count {frame_count}",
                    where_()
                ));
            }
            let part = rd32(rec, 32);
            let flags = rd32(rec, 36);
            if flags & !RECORD_MORE != 0 || part as usize >= MAX_TXN_FRAMES {
                return Err(format!(
                    "{}: impossible part {part} or flags 0x{flags:x}",
                    where_()
                ));
            }
            let more = flags & RECORD_MORE != 0;
            let mut p = TXN_HEADER_LEN;
            for i in 0..frame_count {
                if len - p < FRAME_HEADER_LEN {
                    return Err(format!(
                        "{}: frame {i} header runs past the record",
                        where_()
                    ));
                }
                let page = rd32(rec, p);
                let dlen = rd32(rec, p + 8) as usize;
                if page == 0
                    || dlen == 0
                    || dlen > MAX_PAGE_BYTES
                    || dlen > len - p - FRAME_HEADER_LEN
                {
                    return Err(format!(
                        "{}: frame {i} has page {page} and length {dlen}",
                        where_()
                    ));
                }
                p += FRAME_HEADER_LEN + dlen;
            }
            if p != len {
                return Err(format!(
                    "{}: frames cover {p} bytes of a {len}-byte record",
                    where_()
                ));
            }
            frames_total += frame_count as u64;
            let seq = rd64(rec, 16);
            if !more {
                min_seq = min_seq.min(seq);
                max_seq = max_seq.max(seq);
                commits += 1;
            }
            txns.push(TxnRef {
                offset: at,
                len,
                txn_id: rd64(rec, 8),
                commit_seq: seq,
                part,
                more,
                frames: frame_count as u32,
                file_id: rd32(rec, 40),
            });
            at += len;
        }
    }
    if at != body.len() {
        return Err(format!(
            "records end at body offset {at}, body is {} bytes",
            body.len()
        ));
    }
    let stored = rd32(header, header.len() - 4);
    if crc != stored {
        return Err(format!(
            "certificate checksum mismatch (stored 0x{stored:08x}, computed 0x{crc:08x})"
        ));
    }
    if frames_total != cert.page_set_size as u64 {
        return Err(format!(
            "certificate counts {} frames, records hold {frames_total}",
            cert.page_set_size
        ));
    }
    if cert.epoch == 0 || cert.epoch > MAX_EPOCH {
        return Err(format!("epoch {} is outside 1..={MAX_EPOCH}", cert.epoch));
    }
    // Both marks describe epochs before this one: the sync they name
    // returned, and the checkpoint they name covered durable epochs, before
    // this frame was written.
    if cert.synced_through >= cert.epoch || cert.checkpoint_epoch >= cert.epoch {
        return Err(format!(
            "synced-through epoch {} or checkpoint epoch {} is not below the frame's epoch {}",
            cert.synced_through, cert.checkpoint_epoch, cert.epoch
        ));
    }
    // The commit range covers the records that commit a transaction (not
    // the parts with more to follow); none: 0..=0.
    if commits == 0 {
        (min_seq, max_seq) = (0, 0);
    }
    if min_seq != cert.first_commit_seq || max_seq != cert.last_commit_seq {
        return Err(format!(
            "certificate commit range {}..={} does not match the committing records' {min_seq}..={max_seq}",
            cert.first_commit_seq, cert.last_commit_seq
        ));
    }
    // Replay order: commit sequence, then transaction id, then file; the
    // sort is stable, so equal keys keep body order: the order one thread
    // appended them in (an attempt's last part before the next attempt's
    // part 0 under the same key; an epoch holds at most one part of an
    // attempt).
    txns.sort_by_key(|t| (t.commit_seq, t.txn_id, t.file_id));
    Ok((cert, txns))
}

/// One frame of a transaction record, as recovery reads it back.
pub struct DecodedFrame<'a> {
    pub page_number: u32,
    pub db_size_if_commit: u32,
    pub data: &'a [u8],
}

/// Iterates the frames of a record already checked by [`validate_frame`].
pub fn record_frames(rec: &[u8]) -> (u32, impl Iterator<Item = DecodedFrame<'_>>) {
    let txn_epoch = rd32(rec, 24);
    let count = rd32(rec, 28) as usize;
    let mut p = TXN_HEADER_LEN;
    let iter = (0..count).map(move |_| {
        let dlen = rd32(rec, p + 8) as usize;
        let f = DecodedFrame {
            page_number: rd32(rec, p),
            db_size_if_commit: rd32(rec, p + 4),
            data: &rec[p + FRAME_HEADER_LEN..p + FRAME_HEADER_LEN + dlen],
        };
        p += FRAME_HEADER_LEN + dlen;
        f
    });
    (txn_epoch, iter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;

    fn txn<'a>(frames: &'a [Frame<'a>]) -> Txn<'a> {
        Txn {
            txn_id: 7,
            commit_seq: 9,
            txn_epoch: 3,
            frames,
        }
    }

    #[test]
    fn lane_encoding_equals_the_reference_encoding() {
        let a = vec![1u8; 4096];
        let b = vec![2u8; 100];
        let frames = [
            Frame {
                page_number: 1,
                db_size_if_commit: 0,
                data: &a,
            },
            Frame {
                page_number: 5,
                db_size_if_commit: 5,
                data: &b,
            },
        ];
        let t = txn(&frames);
        let len = validate_txn(&t).unwrap();
        let mut buf = vec![0xEE; 3];
        let crc = encode_txn(&mut buf, &t, len);
        assert_eq!(&buf[3..], &encode_txn_reference(&t)[..]);
        assert_eq!(crc, crc32c::crc32c(&buf[3 + 4..]));
    }

    #[test]
    fn frame_round_trips_and_orders_by_commit_sequence() {
        let p = vec![9u8; 64];
        let mk = |seq| Txn {
            txn_id: seq * 10,
            commit_seq: seq,
            txn_epoch: 0,
            frames: std::slice::from_ref(Box::leak(Box::new(Frame {
                page_number: seq as u32,
                db_size_if_commit: 1,
                data: &p,
            }))),
        };
        // Lane 0 holds seq 3, lane 1 holds seqs 1 and 2.
        let (t3, t1, t2) = (mk(3), mk(1), mk(2));
        let mut l0 = Vec::new();
        let mut l1 = Vec::new();
        let c3 = encode_txn(&mut l0, &t3, validate_txn(&t3).unwrap());
        let c1 = encode_txn(&mut l1, &t1, validate_txn(&t1).unwrap());
        let c2 = encode_txn(&mut l1, &t2, validate_txn(&t2).unwrap());
        let cert = Certificate {
            segment_id: 1,
            segment_salt: 2,
            epoch: 4,
            first_commit_seq: 1,
            last_commit_seq: 3,
            body_len: (l0.len() + l1.len()) as u32,
            txn_count: 3,
            db_size_pages: 1,
            page_set_size: 3,
            synced_through: 3,
            checkpoint_epoch: 2,
            lane_counts: vec![1, 2],
        };
        let header = cert.encode(&[&[c3], &[c1, c2]]);
        let body = [l0, l1].concat();
        let (back, txns) = validate_frame(&header, &body).unwrap();
        assert_eq!(back, cert);
        let seqs: Vec<u64> = txns.iter().map(|t| t.commit_seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);

        let mut flipped = body.clone();
        flipped[40] ^= 1;
        let err = validate_frame(&header, &flipped).unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn a_transaction_of_exactly_the_byte_limit_is_admitted_and_one_more_byte_is_not() {
        let page = vec![3u8; MAX_PAGE_BYTES];
        let one = [1u8];
        let mut f: Vec<Frame<'_>> = (0..MAX_TXN_BYTES / MAX_PAGE_BYTES)
            .map(|i| Frame {
                page_number: i as u32 + 1,
                db_size_if_commit: 0,
                data: &page,
            })
            .collect();
        let len = validate_txn(&txn(&f)).unwrap();
        assert_eq!(
            len,
            TXN_HEADER_LEN + f.len() * (FRAME_HEADER_LEN + MAX_PAGE_BYTES)
        );
        let n = f.len();
        f[n - 1].data = &page[1..];
        f.push(Frame {
            page_number: 1,
            db_size_if_commit: 0,
            data: &one,
        });
        validate_txn(&txn(&f)).expect("still exactly the limit");
        f[n].data = &page[..2];
        let err = validate_txn(&txn(&f)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} bytes of pages", MAX_TXN_BYTES + 1)),
            "{err}"
        );
    }

    #[test]
    fn parts_hold_whole_frames_in_order_and_never_exceed_a_record() {
        let page = vec![5u8; 60_000];
        let f: Vec<Frame<'_>> = (0..800)
            .map(|i| Frame {
                page_number: i + 1,
                db_size_if_commit: 0,
                data: &page,
            })
            .collect();
        let total = validate_txn(&txn(&f)).unwrap();
        let p: Vec<_> = parts(&f).collect();
        assert!(p.len() >= 3, "{} parts", p.len());
        let mut next = 0;
        let mut sum = 0;
        for (range, len) in &p {
            assert_eq!(range.start, next, "parts are consecutive");
            assert!(*len <= MAX_RECORD_BYTES, "a part of {len} bytes");
            let want = TXN_HEADER_LEN + range.len() * (FRAME_HEADER_LEN + page.len());
            assert_eq!(*len, want);
            // Full: the next frame would not have fit.
            if range.end < f.len() {
                assert!(len + FRAME_HEADER_LEN + page.len() > MAX_RECORD_BYTES);
            }
            next = range.end;
            sum += len - TXN_HEADER_LEN;
        }
        assert_eq!(next, f.len());
        assert_eq!(sum + TXN_HEADER_LEN, total);
        // A transaction that fits is one part.
        assert_eq!(parts(&f[..10]).count(), 1);
    }

    #[test]
    fn oversized_page_and_page_zero_are_rejected() {
        let big = vec![0u8; MAX_PAGE_BYTES + 1];
        let f = [Frame {
            page_number: 1,
            db_size_if_commit: 0,
            data: &big,
        }];
        assert!(validate_txn(&txn(&f))
            .unwrap_err()
            .to_string()
            .contains("65536"));
        let small = [0u8; 8];
        let f = [Frame {
            page_number: 0,
            db_size_if_commit: 0,
            data: &small,
        }];
        assert!(validate_txn(&txn(&f))
            .unwrap_err()
            .to_string()
            .contains("page number 0"));
        assert!(validate_txn(&txn(&[])).is_err());
    }

    /// Raw record bytes: the header fields as given, frames `(page, bytes)`
    /// (db size 0), then the length and CRC filled in unless `len` forces a
    /// length (the CRC always covers the bytes as they are).
    fn raw_record(
        seq: u64,
        frame_count: u32,
        part: u32,
        flags: u32,
        frames: &[(u32, &[u8])],
        len: Option<u32>,
    ) -> Vec<u8> {
        let mut r = vec![0u8; TXN_HEADER_LEN];
        r[8..16].copy_from_slice(&(seq * 10).to_le_bytes());
        r[16..24].copy_from_slice(&seq.to_le_bytes());
        r[28..32].copy_from_slice(&frame_count.to_le_bytes());
        r[32..36].copy_from_slice(&part.to_le_bytes());
        r[36..40].copy_from_slice(&flags.to_le_bytes());
        for (page, data) in frames {
            r.extend_from_slice(&page.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&(data.len() as u32).to_le_bytes());
            r.extend_from_slice(data);
        }
        let l = len.unwrap_or(r.len() as u32);
        r[4..8].copy_from_slice(&l.to_le_bytes());
        let crc = crc32c::crc32c(&r[4..]);
        r[..4].copy_from_slice(&crc.to_le_bytes());
        r
    }

    /// A frame of epoch 5 holding `records` in one lane, its certificate
    /// filled in from them (commit range over the records without `more`)
    /// and then changed by `edit`.
    fn frame_with(records: &[Vec<u8>], edit: impl FnOnce(&mut Certificate)) -> (Vec<u8>, Vec<u8>) {
        let body = records.concat();
        let crcs: Vec<u32> = records.iter().map(|r| rd32(r, 0)).collect();
        let committing = || {
            records
                .iter()
                .filter(|r| r.len() >= 40 && rd32(r, 36) & RECORD_MORE == 0)
                .map(|r| rd64(r, 16))
        };
        let mut cert = Certificate {
            segment_id: 1,
            segment_salt: 2,
            epoch: 5,
            first_commit_seq: committing().min().unwrap_or(0),
            last_commit_seq: committing().max().unwrap_or(0),
            body_len: body.len() as u32,
            txn_count: records.len() as u32,
            db_size_pages: 0,
            page_set_size: records.iter().map(|r| rd32(r, 28)).sum(),
            synced_through: 4,
            checkpoint_epoch: 3,
            lane_counts: vec![records.len() as u32],
        };
        edit(&mut cert);
        (cert.encode(&[&crcs]), body)
    }

    fn check(
        records: &[Vec<u8>],
        edit: impl FnOnce(&mut Certificate),
    ) -> std::result::Result<Vec<TxnRef>, String> {
        let (h, b) = frame_with(records, edit);
        validate_frame(&h, &b).map(|(_, t)| t)
    }

    fn refused(r: std::result::Result<Vec<TxnRef>, String>, needle: &str) {
        match r {
            Err(e) => assert!(e.contains(needle), "{e:?} lacks {needle:?}"),
            Ok(t) => panic!("accepted ({} records), expected {needle:?}", t.len()),
        }
    }

    #[test]
    fn a_part_of_exactly_a_record_is_one_part_and_one_byte_more_is_two() {
        // 255 pages of 65,536 bytes and one of 62,420: exactly
        // MAX_RECORD_BYTES encoded.
        let page = vec![7u8; MAX_PAGE_BYTES];
        let mut f: Vec<Frame<'_>> = (0..256)
            .map(|i| Frame {
                page_number: i + 1,
                db_size_if_commit: 0,
                data: &page,
            })
            .collect();
        f[255].data = &page[..62_420];
        let len = validate_txn(&txn(&f)).unwrap();
        assert_eq!(len, MAX_RECORD_BYTES);
        let p: Vec<_> = parts(&f).collect();
        assert_eq!(p, vec![(0..256, MAX_RECORD_BYTES)]);
        // Such a record is valid in a frame.
        let mut rec = Vec::new();
        encode_record(&mut rec, &RecordHead::of(&txn(&f), 0, 0, false), &f, len);
        let t = check(&[rec], |_| ()).expect("a record of exactly MAX_RECORD_BYTES");
        assert_eq!(t[0].len, MAX_RECORD_BYTES);
        // One byte more: two parts, the first of 255 frames; as one record
        // it is refused, though it lies whole in its body.
        f[255].data = &page[..62_421];
        let mut rec = Vec::new();
        let over = MAX_RECORD_BYTES + 1;
        encode_record(&mut rec, &RecordHead::of(&txn(&f), 0, 0, false), &f, over);
        refused(check(&[rec], |_| ()), "impossible record length 16777217");
        let p: Vec<_> = parts(&f).collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].0, 0..255);
        assert_eq!(p[1], (255..256, TXN_HEADER_LEN + FRAME_HEADER_LEN + 62_421));
    }

    #[test]
    fn part_index_and_flags_are_checked() {
        let d = [1u8; 10];
        let rec = |part, flags| raw_record(1, 1, part, flags, &[(1, &d)], None);
        let t = check(&[rec(0, RECORD_MORE)], |_| ()).unwrap();
        assert!(t[0].more && t[0].part == 0);
        let last = MAX_TXN_FRAMES as u32 - 1;
        let t = check(&[rec(last, 0)], |_| ()).unwrap();
        assert!(!t[0].more && t[0].part == last);
        refused(check(&[rec(last + 1, 0)], |_| ()), "impossible part");
        refused(
            check(&[rec(0, 2)], |_| ()),
            "impossible part 0 or flags 0x2",
        );
        refused(check(&[rec(1, 3)], |_| ()), "flags 0x3");
    }

    #[test]
    fn the_commit_range_covers_the_committing_records_only() {
        let d = [1u8; 10];
        let rec = |seq, flags| raw_record(seq, 1, 0, flags, &[(1, &d)], None);
        let recs = [
            rec(1, RECORD_MORE),
            rec(5, 0),
            rec(3, 0),
            rec(9, RECORD_MORE),
        ];
        let t = check(&recs, |c| {
            assert_eq!((c.first_commit_seq, c.last_commit_seq), (3, 5))
        })
        .unwrap();
        let seqs: Vec<u64> = t.iter().map(|t| t.commit_seq).collect();
        assert_eq!(seqs, vec![1, 3, 5, 9], "replay order");
        refused(
            check(&recs, |c| c.first_commit_seq = 1),
            "commit range 1..=5",
        );
        refused(
            check(&recs, |c| c.last_commit_seq = 9),
            "commit range 3..=9",
        );
        // Parts with more only: no commit range.
        let parts = [rec(4, RECORD_MORE), rec(6, RECORD_MORE)];
        check(&parts, |c| {
            assert_eq!((c.first_commit_seq, c.last_commit_seq), (0, 0))
        })
        .unwrap();
        refused(
            check(&parts, |c| (c.first_commit_seq, c.last_commit_seq) = (4, 4)),
            "commit range 4..=4",
        );
        refused(
            check(&parts, |c| c.last_commit_seq = 6),
            "commit range 0..=6",
        );
    }

    #[test]
    fn impossible_records_are_refused_without_reading_past_them() {
        let d = [1u8; 10];
        let one = [9u8];
        // The smallest record: one frame of one byte.
        let t = check(&[raw_record(1, 1, 0, 0, &[(1, &one)], None)], |_| ()).unwrap();
        assert_eq!(t[0].len, TXN_HEADER_LEN + FRAME_HEADER_LEN + 1);
        // A length below the smallest record (its CRC right), in a body
        // long enough for a record header.
        let mut short = raw_record(1, 1, 0, 0, &[], Some(40));
        short.resize(60, 0);
        let crc = crc32c::crc32c(&short[4..40]);
        short[..4].copy_from_slice(&crc.to_le_bytes());
        refused(check(&[short], |_| ()), "impossible record length 40");
        // Page 0; a page of 0 bytes (before a good frame); a page longer
        // than a page may be; a page running past its record.
        refused(
            check(&[raw_record(1, 1, 0, 0, &[(0, &d)], None)], |_| ()),
            "page 0",
        );
        let empty: &[u8] = &[];
        refused(
            check(
                &[raw_record(1, 2, 0, 0, &[(1, empty), (2, &d)], None)],
                |_| (),
            ),
            "frame 0 has page 1 and length 0",
        );
        let big = vec![1u8; MAX_PAGE_BYTES + 1];
        refused(
            check(&[raw_record(1, 1, 0, 0, &[(1, &big)], None)], |_| ()),
            "length 65537",
        );
        let mut over = raw_record(1, 1, 0, 0, &[(1, &d)], None);
        over[TXN_HEADER_LEN + 8..TXN_HEADER_LEN + 12].copy_from_slice(&11u32.to_le_bytes());
        over.extend_from_slice(&[0; 40]);
        over.truncate(TXN_HEADER_LEN + FRAME_HEADER_LEN + 10);
        let crc = crc32c::crc32c(&over[4..]);
        over[..4].copy_from_slice(&crc.to_le_bytes());
        refused(check(&[over], |_| ()), "frame 0 has page 1 and length 11");
        // Two frames counted, one frame and 1..=11 bytes present: the second
        // frame's header runs past the record.
        for extra in [1usize, 5, 11] {
            let mut r = raw_record(1, 2, 0, 0, &[(1, &d)], None);
            r.extend(std::iter::repeat_n(3u8, extra));
            let l = r.len() as u32;
            r[4..8].copy_from_slice(&l.to_le_bytes());
            let crc = crc32c::crc32c(&r[4..]);
            r[..4].copy_from_slice(&crc.to_le_bytes());
            refused(check(&[r], |_| ()), "frame 1 header runs past the record");
        }
        // One more record counted than the body holds, with 1..=43 bytes
        // after the last record.
        for extra in [1usize, 7, 43] {
            let r = raw_record(1, 1, 0, 0, &[(1, &[5u8; 200])], None);
            let (mut h, mut b) = frame_with(std::slice::from_ref(&r), |c| {
                c.txn_count = 2;
                c.lane_counts = vec![2];
            });
            b.extend(std::iter::repeat_n(0u8, extra));
            let blen = (b.len() as u32).to_le_bytes();
            h[48..52].copy_from_slice(&blen);
            let err = validate_frame(&h, &b).unwrap_err();
            assert!(
                err.contains("record 1") && err.contains("runs past the body"),
                "{err}"
            );
        }
        // A second record whose length runs past the body by one byte.
        let first = raw_record(1, 1, 0, 0, &[(1, &d)], None);
        let mut second = raw_record(2, 1, 0, 0, &[(2, &d)], None);
        let l = second.len() as u32 + 1;
        second[4..8].copy_from_slice(&l.to_le_bytes());
        refused(
            check(&[first, second], |_| ()),
            "record 1 at body offset 66: impossible record length 67",
        );
        // More records counted than any body of this size could hold: refused
        // before anything is allocated for them.
        for (count, pad) in [(u32::MAX, 0), (1 << 24, 1 << 20)] {
            let r = raw_record(1, 1, 0, 0, &[(1, &d)], None);
            let (mut h, mut b) = frame_with(&[r], |c| {
                c.txn_count = count;
                c.lane_counts = vec![count];
            });
            b.resize(b.len() + pad, 0);
            let blen = (b.len() as u32).to_le_bytes();
            h[48..52].copy_from_slice(&blen);
            let err = validate_frame(&h, &b).unwrap_err();
            assert!(
                err.contains(&format!("{count} records cannot fit")),
                "{err}"
            );
        }
    }

    #[test]
    fn epochs_and_marks_out_of_range_are_refused() {
        let d = [1u8; 10];
        let recs = [raw_record(1, 1, 0, 0, &[(1, &d)], None)];
        check(&recs, |c| {
            c.epoch = MAX_EPOCH;
            c.synced_through = MAX_EPOCH - 1;
        })
        .expect("the largest epoch");
        refused(check(&recs, |c| c.epoch = MAX_EPOCH + 1), "outside");
        refused(
            check(&recs, |c| {
                c.epoch = 0;
                (c.synced_through, c.checkpoint_epoch) = (0, 0);
            }),
            "",
        );
        refused(
            check(&recs, |c| c.synced_through = 5),
            "synced-through epoch 5",
        );
        refused(
            check(&recs, |c| c.checkpoint_epoch = 5),
            "checkpoint epoch 5",
        );
        check(&recs, |c| (c.synced_through, c.checkpoint_epoch) = (4, 4)).unwrap();
    }

    #[test]
    fn fixed_headers_are_classified() {
        let d = [1u8; 10];
        let (h, _) = frame_with(&[raw_record(1, 1, 0, 0, &[(1, &d)], None)], |_| ());
        let fixed = |edit: &dyn Fn(&mut [u8; EPOCH_FIXED_LEN])| {
            let mut b: [u8; EPOCH_FIXED_LEN] = h[..EPOCH_FIXED_LEN].try_into().unwrap();
            edit(&mut b);
            parse_fixed(&b, 1, 2)
        };
        assert!(matches!(
            fixed(&|_| ()),
            FixedHeader::Plausible { lane_count: 1, .. }
        ));
        assert!(matches!(fixed(&|b| b.fill(0)), FixedHeader::Zero));
        assert!(
            matches!(fixed(&|b| b[8] ^= 1), FixedHeader::Stale),
            "another id"
        );
        assert!(
            matches!(fixed(&|b| b[16] ^= 1), FixedHeader::Stale),
            "another salt"
        );
        let bad = |f: FixedHeader, needle: &str| match f {
            FixedHeader::Bad(why) => assert!(why.contains(needle), "{why}"),
            _ => panic!("expected Bad({needle})"),
        };
        bad(fixed(&|b| b[0] ^= 1), "bad epoch magic");
        bad(fixed(&|b| b[4] ^= 1), "unsupported format version");
        let lanes =
            |n: u16| move |b: &mut [u8; EPOCH_FIXED_LEN]| b[6..8].copy_from_slice(&n.to_le_bytes());
        bad(fixed(&lanes(0)), "lane count 0");
        let max = MAX_LANES as u16;
        assert!(matches!(
            fixed(&lanes(max)),
            FixedHeader::Plausible { lane_count, .. } if lane_count == MAX_LANES
        ));
        bad(fixed(&lanes(max + 1)), "lane count 257");
        let body = |n: u32| {
            move |b: &mut [u8; EPOCH_FIXED_LEN]| b[48..52].copy_from_slice(&n.to_le_bytes())
        };
        let most = MAX_EPOCH_BODY_BYTES as u32;
        assert!(matches!(
            fixed(&body(most)),
            FixedHeader::Plausible { body_len, .. } if body_len == MAX_EPOCH_BODY_BYTES
        ));
        bad(fixed(&body(most + 1)), "body length");
    }
}
