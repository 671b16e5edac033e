//! The epoch frame: the unit the flusher writes and recovery validates.
//! The byte layout is specified in `docs/FORMAT.md`; keep the two in step.
//!
//! An epoch frame is a header (the *commit certificate*) followed by the body:
//! the lanes' transaction records back to back. Every record carries its own
//! length and a CRC32C computed on the writer's thread when it was encoded;
//! the certificate's CRC32C covers the header and the sequence of record
//! CRCs, so every body byte is covered without the flusher making a second
//! pass over the data.
//!
//! Counts, lengths, sequences and epochs are variable-length integers
//! ([`crate::varint`]), and the segment's identity is not repeated in every
//! frame: a 4-byte tag names it, and its id and salt seed the certificate
//! CRC. A one-page commit alone in its epoch costs a few dozen bytes beyond
//! the page.

use crate::config::{
    MAX_EPOCH_BODY_BYTES, MAX_PAGE_BYTES, MAX_RECORD_BYTES, MAX_TXN_BYTES, MAX_TXN_FRAMES,
};
use crate::error::{Error, Result};
use crate::varint::{self, ReadError, Reader};
use crate::Txn;

/// "PWEP" read as a little-endian u32.
pub const EPOCH_MAGIC: u32 = u32::from_le_bytes(*b"PWEP");
/// Version 5 made the frame's fields variable-length and moved the segment
/// identity into a tag and the certificate CRC's seed; version 4 added the
/// file id to the transaction record; version 3 the part index and flags
/// (transactions larger than one record); version 2 added `synced_through`
/// and `checkpoint_epoch` to the certificate and `log_start_epoch` to the
/// segment header. Logs of another version are refused, with an error naming
/// both versions.
pub const FORMAT_VERSION: u16 = 5;
/// What recovery reads (or to the end of the file) to parse a header: at
/// least the longest certificate a reader parses up to its CRC (105 bytes:
/// the identity block and every variable-length field at the longest its
/// bound allows).
pub const CERT_MAX_LEN: usize = 4 + 1 + 4 + IDENTITY_LEN + 9 * varint::MAX_LEN + 4;
/// The shortest certificate: every variable-length field one byte.
pub const CERT_MIN_LEN: usize = 4 + 1 + 4 + 9 + 4;
/// A header position whose first `END_MARK_LEN` bytes are zero (or that the
/// end of the file cuts shorter, all zero) was never written. No header
/// starts with a zero byte (the magic), and a recycled segment writes this
/// many zeros after each frame (`segment.rs`).
pub const END_MARK_LEN: usize = CERT_MIN_LEN;
/// The segment id, salt and first epoch that the first frame of a segment
/// carries ([`CERT_IDENTITY`]).
pub const IDENTITY_LEN: usize = 24;
/// Certificate flag: the identity block follows the tag.
pub const CERT_IDENTITY: u8 = 1;
/// The highest epoch number a valid frame or segment header may carry. At a
/// million epochs a second it lasts about 146 000 years, so a larger value
/// can only be damage (or a forged header); refusing it keeps `epoch + 1`
/// and `first_epoch - 1` on values read from disk far from wrapping.
pub const MAX_EPOCH: u64 = 1 << 62;
/// Record flag (bit 0 of the part field): more parts of the same transaction
/// follow in later records.
pub const RECORD_MORE: u32 = 1;
/// The shortest record: CRC, a one-byte length, six one-byte fields, and
/// one frame of a one-byte page with one-byte fields.
pub const RECORD_MIN_LEN: usize = 4 + 1 + 6 + 3 + 1;

/// The segment a frame belongs to, as its header names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentIdent {
    pub id: u64,
    pub salt: u64,
    pub first_epoch: u64,
}

impl SegmentIdent {
    fn id_salt(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..].copy_from_slice(&self.salt.to_le_bytes());
        b
    }

    /// The tag every frame of the segment carries: CRC32C of the id and
    /// salt (little-endian, id first).
    pub fn tag(&self) -> u32 {
        crc32c::crc32c(&self.id_salt())
    }

    /// The seed of the certificate CRC: CRC32C of the salt and the id
    /// (little-endian, salt first). A stale frame of another incarnation of
    /// the file validates only if both its tag and its seed agree.
    pub fn seed(&self) -> u32 {
        let b = self.id_salt();
        crc32c::crc32c_append(crc32c::crc32c(&b[8..]), &b[..8])
    }
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

    fn part_field(&self) -> u64 {
        (u64::from(self.part) << 1) | u64::from(self.more)
    }

    /// Bytes of the fields after the record length, before the frames.
    fn fields_len(&self, frame_count: usize) -> usize {
        varint::len(self.txn_id)
            + varint::len(self.commit_seq)
            + varint::len(self.txn_epoch.into())
            + varint::len(self.file_id.into())
            + varint::len(self.part_field())
            + varint::len(frame_count as u64)
    }

    /// The fields after the record length, into `out`; returns their length.
    fn put_fields(&self, frame_count: usize, out: &mut [u8]) -> usize {
        let mut n = varint::put(out, self.txn_id);
        n += varint::put(&mut out[n..], self.commit_seq);
        n += varint::put(&mut out[n..], self.txn_epoch.into());
        n += varint::put(&mut out[n..], self.file_id.into());
        n += varint::put(&mut out[n..], self.part_field());
        n + varint::put(&mut out[n..], frame_count as u64)
    }
}

/// Bytes a frame takes in a record: its header and its page.
fn frame_len(f: &crate::Frame<'_>) -> usize {
    varint::len(f.page_number.into())
        + varint::len(f.db_size_if_commit.into())
        + varint::len(f.data.len() as u64)
        + f.data.len()
}

/// A record's length from the length of what follows its length field.
fn record_len(rest: usize) -> usize {
    4 + varint::len(rest as u64) + rest
}

/// Checks a transaction against every limit before anything is buffered, and
/// returns the length of its encoding as one record (more than
/// `MAX_RECORD_BYTES`: it is written in parts, [`parts`]).
pub fn validate_txn(txn: &Txn<'_>, file_id: u32) -> Result<usize> {
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
    let mut frames_len = 0usize;
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
        frames_len += frame_len(f);
    }
    if page_bytes > MAX_TXN_BYTES {
        return Err(Error::invalid(format!(
            "transaction {} holds {page_bytes} bytes of pages; at most {MAX_TXN_BYTES} are allowed",
            txn.txn_id
        )));
    }
    let head = RecordHead::of(txn, file_id, 0, false);
    Ok(record_len(head.fields_len(txn.frames.len()) + frames_len))
}

/// Splits a validated transaction (whose records have the head `head` but
/// for the part index and flag) into parts of at most `MAX_RECORD_BYTES`
/// encoded bytes each, whole frames only, in order: each item is the range
/// of frames of one part and the length of its record.
pub fn parts<'a>(
    head: &RecordHead,
    frames: &'a [crate::Frame<'a>],
) -> impl Iterator<Item = (std::ops::Range<usize>, usize)> + 'a {
    let head = *head;
    let mut at = 0;
    let mut part = 0u32;
    std::iter::from_fn(move || {
        if at == frames.len() {
            return None;
        }
        // The part field's length does not depend on the flag (2p and 2p + 1
        // have the same bit length), so a part's length is known before it
        // is known to be the last.
        let h = RecordHead {
            part,
            more: false,
            ..head
        };
        let start = at;
        let mut body = 0usize;
        let mut len = 0usize;
        while at < frames.len() {
            let add = frame_len(&frames[at]);
            let with = record_len(h.fields_len(at + 1 - start) + body + add);
            if at > start && with > MAX_RECORD_BYTES {
                break;
            }
            body += add;
            len = with;
            at += 1;
        }
        part += 1;
        Some((start..at, len))
    })
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
    // CRC placeholder, length, fields: at most 4 + 10 + 6 * 10 bytes.
    let mut h = [0u8; 4 + 7 * varint::MAX_LEN];
    // `encoded_len` is 4 + len(rest) + rest, and rest + len(rest) grows
    // with rest: one length class fits.
    let rest = (1..=varint::MAX_LEN)
        .map(|k| encoded_len - 4 - k)
        .find(|&r| varint::len(r as u64) + r + 4 == encoded_len)
        .expect("encoded_len comes from validate_txn or parts");
    let mut n = 4 + varint::put(&mut h[4..], rest as u64);
    n += head.put_fields(frames.len(), &mut h[n..]);
    let mut crc = crc32c::crc32c(&h[4..n]);
    buf.extend_from_slice(&h[..n]);
    for f in frames {
        let mut fh = [0u8; 3 * varint::MAX_LEN];
        let mut k = varint::put(&mut fh, f.page_number.into());
        k += varint::put(&mut fh[k..], f.db_size_if_commit.into());
        k += varint::put(&mut fh[k..], f.data.len() as u64);
        crc = crc32c::crc32c_append(crc, &fh[..k]);
        crc = crc32c::crc32c_append(crc, f.data);
        buf.extend_from_slice(&fh[..k]);
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
/// [`encode_record`]: the fields after the length first, then the length in
/// front of them, then one CRC over the finished bytes. Shadow-compare mode
/// checks the lane encoding against it.
pub fn encode_record_reference(head: &RecordHead, frames: &[crate::Frame<'_>]) -> Vec<u8> {
    let mut rest = Vec::new();
    varint::push(&mut rest, head.txn_id);
    varint::push(&mut rest, head.commit_seq);
    varint::push(&mut rest, head.txn_epoch.into());
    varint::push(&mut rest, head.file_id.into());
    varint::push(&mut rest, head.part_field());
    varint::push(&mut rest, frames.len() as u64);
    for f in frames {
        varint::push(&mut rest, f.page_number.into());
        varint::push(&mut rest, f.db_size_if_commit.into());
        varint::push(&mut rest, f.data.len() as u64);
        rest.extend_from_slice(f.data);
    }
    let mut out = vec![0u8; 4];
    varint::push(&mut out, rest.len() as u64);
    out.extend_from_slice(&rest);
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
    /// The segment the frame was written to.
    pub segment: SegmentIdent,
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
}

impl Certificate {
    /// Encodes the header; `record_crcs` are the CRCs of the body's records
    /// in body order. The first frame of a segment (its epoch is the
    /// segment's first) carries the identity block. Fields are written as
    /// they are, so tests can forge values no writer produces (an epoch
    /// before the segment's first, marks not below the epoch): each
    /// difference is taken modulo 2^64.
    pub fn encode(&self, record_crcs: &[&[u32]]) -> Vec<u8> {
        let s = &self.segment;
        let mut h = Vec::with_capacity(CERT_MAX_LEN);
        h.extend_from_slice(&EPOCH_MAGIC.to_le_bytes());
        let identity = self.epoch == s.first_epoch;
        h.push(if identity { CERT_IDENTITY } else { 0 });
        h.extend_from_slice(&s.tag().to_le_bytes());
        if identity {
            h.extend_from_slice(&s.id.to_le_bytes());
            h.extend_from_slice(&s.salt.to_le_bytes());
            h.extend_from_slice(&s.first_epoch.to_le_bytes());
        }
        varint::push(&mut h, self.epoch.wrapping_sub(s.first_epoch));
        varint::push(&mut h, self.body_len.into());
        varint::push(&mut h, self.txn_count.into());
        varint::push(&mut h, self.page_set_size.into());
        varint::push(&mut h, self.first_commit_seq);
        varint::push(
            &mut h,
            self.last_commit_seq.wrapping_sub(self.first_commit_seq),
        );
        varint::push(&mut h, self.db_size_pages.into());
        varint::push(&mut h, self.epoch.wrapping_sub(self.synced_through));
        varint::push(&mut h, self.epoch.wrapping_sub(self.checkpoint_epoch));
        let mut crc = crc32c::crc32c_append(s.seed(), &h);
        for lane in record_crcs {
            for c in lane.iter() {
                crc = crc32c::crc32c_append(crc, &c.to_le_bytes());
            }
        }
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }
}

/// What reading a header position found.
#[derive(Debug)]
pub enum Header {
    /// Zeros (or the end of the file): no frame was ever written here.
    Zero,
    /// A frame of another incarnation of the file (stale bytes of a
    /// recycled segment): its tag or identity names another segment.
    Stale,
    /// A plausible header of this segment: its length and the body length
    /// it claims.
    Plausible { header_len: usize, body_len: usize },
    /// Not a header: why.
    Bad(String),
}

/// The certificate's fields as they lie, decoded but not checked against
/// the body, with its length and what makes its values impossible (checked
/// once the CRC has said the bytes are as written); `Stale` and `Bad` as
/// [`Header`] says.
enum Decoded {
    Fields(Certificate, usize, Option<String>),
    Stale,
    Bad(String),
}

fn decode_cert(b: &[u8], seg: &SegmentIdent, at_eof: bool) -> Decoded {
    let short = || {
        if at_eof {
            Decoded::Bad(format!(
                "frame header cut short by the end of the file ({} bytes)",
                b.len()
            ))
        } else {
            Decoded::Bad("frame header longer than any header".into())
        }
    };
    let mut r = Reader::new(b);
    macro_rules! field {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(ReadError::Short) => return short(),
                Err(ReadError::Bad(why)) => return Decoded::Bad(why),
            }
        };
    }
    let magic = field!(r.fixed32());
    if magic != EPOCH_MAGIC {
        return Decoded::Bad(format!(
            "bad epoch magic 0x{magic:08x} (expected 0x{EPOCH_MAGIC:08x})"
        ));
    }
    let flags = field!(r.u8());
    if flags & !CERT_IDENTITY != 0 {
        return Decoded::Bad(format!("unknown certificate flags 0x{flags:02x}"));
    }
    if field!(r.fixed32()) != seg.tag() {
        return Decoded::Stale;
    }
    let identity = flags & CERT_IDENTITY != 0;
    if identity {
        let carried = SegmentIdent {
            id: field!(r.fixed64()),
            salt: field!(r.fixed64()),
            first_epoch: field!(r.fixed64()),
        };
        if carried != *seg {
            return Decoded::Stale;
        }
    }
    let delta = field!(r.var("epoch offset", MAX_EPOCH));
    let epoch = seg.first_epoch.saturating_add(delta);
    let body_len = field!(r.var32("body length", MAX_EPOCH_BODY_BYTES as u32));
    let txn_count = field!(r.var32("record count", u32::MAX));
    let page_set_size = field!(r.var32("page-set size", u32::MAX));
    let first_commit_seq = field!(r.var("first commit sequence", u64::MAX));
    let span = field!(r.var("commit range", u64::MAX));
    let db_size_pages = field!(r.var32("database size", u32::MAX));
    let synced_back = field!(r.var("synced-through distance", u64::MAX));
    let mark_back = field!(r.var("checkpoint distance", u64::MAX));
    field!(r.fixed32());
    // Values no writer produces are refused by `validate_frame`, once the
    // CRC has said the bytes are as written; here they only must not wrap.
    let impossible = if first_commit_seq.checked_add(span).is_none() {
        Some(format!(
            "commit range {first_commit_seq} + {span} is above 2^64"
        ))
    } else if synced_back == 0 || synced_back > epoch || mark_back == 0 || mark_back > epoch {
        Some(format!(
            "synced-through epoch {} or checkpoint epoch {} is not below the frame's epoch {epoch}",
            epoch.wrapping_sub(synced_back) as i64,
            epoch.wrapping_sub(mark_back) as i64
        ))
    } else if epoch > MAX_EPOCH {
        Some(format!("epoch {epoch} is outside 1..={MAX_EPOCH}"))
    } else if identity != (delta == 0) {
        // The first frame of a segment, and only it, carries the identity.
        Some(format!(
            "identity block {} on the frame of epoch {epoch} of a segment starting at epoch {}",
            if identity { "present" } else { "missing" },
            seg.first_epoch
        ))
    } else {
        None
    };
    let cert = Certificate {
        segment: *seg,
        epoch,
        first_commit_seq,
        last_commit_seq: first_commit_seq.saturating_add(span),
        body_len,
        txn_count,
        db_size_pages,
        page_set_size,
        synced_through: epoch.wrapping_sub(synced_back),
        checkpoint_epoch: epoch.wrapping_sub(mark_back),
    };
    Decoded::Fields(cert, r.pos(), impossible)
}

/// Parses the header at the start of `b` (up to [`CERT_MAX_LEN`] bytes; fewer
/// when the file ends sooner, `at_eof`) found in segment `seg`.
pub fn parse_header(b: &[u8], at_eof: bool, seg: &SegmentIdent) -> Header {
    let n = b.len().min(END_MARK_LEN);
    if (at_eof || n == END_MARK_LEN) && b[..n].iter().all(|&x| x == 0) {
        return Header::Zero;
    }
    match decode_cert(b, seg, at_eof) {
        Decoded::Fields(cert, header_len, _) => Header::Plausible {
            header_len,
            body_len: cert.body_len as usize,
        },
        Decoded::Stale => Header::Stale,
        Decoded::Bad(why) => Header::Bad(why),
    }
}

/// The certificate at the start of `b` (its whole header), decoded but not
/// checked against its body: for the archiver's walk over frame sizes.
pub fn decode_certificate(b: &[u8], seg: &SegmentIdent) -> Option<Certificate> {
    match decode_cert(b, seg, true) {
        Decoded::Fields(cert, _, None) => Some(cert),
        _ => None,
    }
}

/// The identity a header carries (the first frame of a segment), if it is
/// one with a plausible magic and the identity flag.
pub fn carried_identity(b: &[u8]) -> Option<SegmentIdent> {
    let mut r = Reader::new(b);
    if r.fixed32().ok()? != EPOCH_MAGIC || r.u8().ok()? != CERT_IDENTITY {
        return None;
    }
    r.fixed32().ok()?;
    let ident = SegmentIdent {
        id: r.fixed64().ok()?,
        salt: r.fixed64().ok()?,
        first_epoch: r.fixed64().ok()?,
    };
    (1..=MAX_EPOCH)
        .contains(&ident.first_epoch)
        .then_some(ident)
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

/// A record's fields after its length, and where its frames start.
struct RecordFields {
    txn_id: u64,
    commit_seq: u64,
    txn_epoch: u32,
    file_id: u32,
    part: u32,
    more: bool,
    frame_count: usize,
    frames_at: usize,
}

/// Reads the CRC, length and fields of the record at the start of `rec`
/// (the record's bytes, `len` known); `Err` says why they are impossible.
fn record_fields(rec: &[u8]) -> std::result::Result<RecordFields, String> {
    let mut r = Reader::new(rec);
    let bad = |e: ReadError| match e {
        ReadError::Short => "record header runs past the record".to_string(),
        ReadError::Bad(why) => why,
    };
    r.fixed32().map_err(bad)?;
    r.var("record length", u64::MAX).map_err(bad)?;
    let txn_id = r.var("transaction id", u64::MAX).map_err(bad)?;
    let commit_seq = r.var("commit sequence", u64::MAX).map_err(bad)?;
    let txn_epoch = r.var32("txn_epoch", u32::MAX).map_err(bad)?;
    let file_id = r.var32("file id", u32::MAX).map_err(bad)?;
    let pf = r.var("part", u64::MAX).map_err(bad)?;
    let frame_count = r.var("frame count", u64::MAX).map_err(bad)?;
    let part = pf >> 1;
    if part >= MAX_TXN_FRAMES as u64 {
        return Err(format!("impossible part {part}"));
    }
    if frame_count == 0 || frame_count > MAX_TXN_FRAMES as u64 {
        return Err(format!("impossible frame count {frame_count}"));
    }
    Ok(RecordFields {
        txn_id,
        commit_seq,
        txn_epoch,
        file_id,
        part: part as u32,
        more: pf & u64::from(RECORD_MORE) != 0,
        frame_count: frame_count as usize,
        frames_at: r.pos(),
    })
}

/// Validates a whole frame (`header` is the full header including its CRC,
/// `body` the body) found in segment `seg`, and returns its certificate and
/// the transactions in replay order (commit sequence, then transaction id,
/// then file, then body order).
pub fn validate_frame(
    header: &[u8],
    body: &[u8],
    seg: &SegmentIdent,
) -> std::result::Result<(Certificate, Vec<TxnRef>), String> {
    let (cert, impossible) = match decode_cert(header, seg, true) {
        Decoded::Fields(cert, n, impossible) if n == header.len() => (cert, impossible),
        Decoded::Fields(_, n, _) => {
            return Err(format!(
                "header of {n} bytes where {} were given",
                header.len()
            ))
        }
        Decoded::Stale => return Err("frame of another incarnation of this file".into()),
        Decoded::Bad(why) => return Err(why),
    };
    if cert.body_len as usize != body.len() {
        return Err("body length does not match the frame".into());
    }
    // Every record takes at least `RECORD_MIN_LEN` bytes, so a count the
    // body cannot hold is rejected before anything is allocated for it.
    if cert.txn_count as usize > body.len() / RECORD_MIN_LEN {
        return Err(format!(
            "{} records cannot fit in a body of {} bytes",
            cert.txn_count,
            body.len()
        ));
    }
    let mut crc = crc32c::crc32c_append(seg.seed(), &header[..header.len() - 4]);
    // Not sized by the count: it is checked against the CRC only after the
    // records, and an index entry is larger than the smallest record.
    let mut txns = Vec::with_capacity((cert.txn_count as usize).min(1024));
    let mut at = 0usize;
    let mut frames_total: u64 = 0;
    let (mut min_seq, mut max_seq) = (u64::MAX, 0u64);
    let mut committing = false;
    for r in 0..cert.txn_count {
        let where_ = || format!("record {r} at body offset {at}");
        let mut head = Reader::new(&body[at..]);
        let (rec_crc, rest) = match (head.fixed32(), head.var("record length", u64::MAX)) {
            (Ok(c), Ok(l)) => (c, l),
            (_, Err(ReadError::Bad(why))) => return Err(format!("{}: {why}", where_())),
            _ => return Err(format!("{}: record header runs past the body", where_())),
        };
        let len = (head.pos() as u64).saturating_add(rest);
        if len < RECORD_MIN_LEN as u64
            || len > (body.len() - at) as u64
            || len > MAX_RECORD_BYTES as u64
        {
            return Err(format!("{}: impossible record length {len}", where_()));
        }
        let len = len as usize;
        let rec = &body[at..at + len];
        let actual = crc32c::crc32c(&rec[4..]);
        if actual != rec_crc {
            return Err(format!(
                "{}: record checksum mismatch (stored 0x{rec_crc:08x}, computed 0x{actual:08x})",
                where_()
            ));
        }
        crc = crc32c::crc32c_append(crc, &rec_crc.to_le_bytes());
        let f = record_fields(rec).map_err(|why| format!("{}: {why}", where_()))?;
        let mut p = Reader::new(&rec[f.frames_at..]);
        for i in 0..f.frame_count {
            let (page, _, dlen) = match frame_head(&mut p) {
                Ok(v) => v,
                Err(ReadError::Short) => {
                    return Err(format!(
                        "{}: frame {i} header runs past the record",
                        where_()
                    ))
                }
                Err(ReadError::Bad(why)) => return Err(format!("{}: frame {i}: {why}", where_())),
            };
            let left = (len - f.frames_at - p.pos()) as u64;
            if page == 0 || dlen == 0 || dlen > MAX_PAGE_BYTES as u64 || dlen > left {
                return Err(format!(
                    "{}: frame {i} has page {page} and length {dlen}",
                    where_()
                ));
            }
            p.bytes(dlen as usize).expect("checked against the record");
        }
        let end = f.frames_at + p.pos();
        if end != len {
            return Err(format!(
                "{}: frames cover {end} bytes of a {len}-byte record",
                where_()
            ));
        }
        frames_total += f.frame_count as u64;
        if !f.more {
            min_seq = min_seq.min(f.commit_seq);
            max_seq = max_seq.max(f.commit_seq);
            committing = true;
        }
        txns.push(TxnRef {
            offset: at,
            len,
            txn_id: f.txn_id,
            commit_seq: f.commit_seq,
            part: f.part,
            more: f.more,
            frames: f.frame_count as u32,
            file_id: f.file_id,
        });
        at += len;
    }
    if at != body.len() {
        return Err(format!(
            "records end at body offset {at}, body is {} bytes",
            body.len()
        ));
    }
    let stored = u32::from_le_bytes(header[header.len() - 4..].try_into().unwrap());
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
    // Both marks describe epochs before this one: the sync they name
    // returned, and the checkpoint they name covered durable epochs, before
    // this frame was written.
    if let Some(why) = impossible {
        return Err(why);
    }
    // The commit range covers the records that commit a transaction (not
    // the parts with more to follow); none: 0..=0.
    if !committing {
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

/// A frame's page number, database size and page length, read from `p`
/// (the length not yet checked against the page bound or the record).
fn frame_head(p: &mut Reader<'_>) -> std::result::Result<(u32, u32, u64), ReadError> {
    let page = p.var32("page number", u32::MAX)?;
    let db_size = p.var32("database size", u32::MAX)?;
    Ok((page, db_size, p.var("page length", u64::MAX)?))
}

/// The `txn_epoch` and frames of a record that [`validate_frame`] accepted
/// (or bytes whose CRC equals such a record's). An item is `Err` only if the
/// bytes are not such a record; nothing follows it.
pub fn record_frames(
    rec: &[u8],
) -> std::result::Result<
    (
        u32,
        impl Iterator<Item = std::result::Result<DecodedFrame<'_>, String>>,
    ),
    String,
> {
    let f = record_fields(rec)?;
    let mut p = Reader::new(&rec[f.frames_at..]);
    let mut left = f.frame_count;
    let iter = std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        left -= 1;
        let frame = frame_head(&mut p).and_then(|(page_number, db_size_if_commit, dlen)| {
            Ok(DecodedFrame {
                page_number,
                db_size_if_commit,
                data: p.bytes(dlen as usize)?,
            })
        });
        if frame.is_err() {
            left = 0;
        }
        Some(frame.map_err(|e| format!("a record's frames do not decode: {e:?}")))
    });
    Ok((f.txn_epoch, iter))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;

    const SEG: SegmentIdent = SegmentIdent {
        id: 1,
        salt: 2,
        first_epoch: 1,
    };

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
        let len = validate_txn(&t, 0).unwrap();
        let mut buf = vec![0xEE; 3];
        let crc = encode_txn(&mut buf, &t, len);
        assert_eq!(&buf[3..], &encode_txn_reference(&t)[..]);
        assert_eq!(crc, crc32c::crc32c(&buf[3 + 4..]));
        // The head's fields and the frame's at their longest (the record
        // length and frame count are not: 3 and 1 bytes here).
        let head = RecordHead {
            txn_id: u64::MAX,
            commit_seq: u64::MAX,
            txn_epoch: u32::MAX,
            part: MAX_TXN_FRAMES as u32 - 1,
            more: true,
            file_id: u32::MAX,
        };
        let big = [Frame {
            page_number: u32::MAX,
            db_size_if_commit: u32::MAX,
            data: &vec![3u8; MAX_PAGE_BYTES],
        }];
        let want = encode_record_reference(&head, &big);
        let mut buf = Vec::new();
        encode_record(&mut buf, &head, &big, want.len());
        assert_eq!(buf, want);
        assert_eq!(
            want.len() - MAX_PAGE_BYTES,
            4 + 3 + 10 + 10 + 5 + 5 + 4 + 1 + 5 + 5 + 3
        );
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
        let c3 = encode_txn(&mut l0, &t3, validate_txn(&t3, 0).unwrap());
        let c1 = encode_txn(&mut l1, &t1, validate_txn(&t1, 0).unwrap());
        let c2 = encode_txn(&mut l1, &t2, validate_txn(&t2, 0).unwrap());
        let cert = Certificate {
            segment: SEG,
            epoch: 4,
            first_commit_seq: 1,
            last_commit_seq: 3,
            body_len: (l0.len() + l1.len()) as u32,
            txn_count: 3,
            db_size_pages: 1,
            page_set_size: 3,
            synced_through: 3,
            checkpoint_epoch: 2,
        };
        let header = cert.encode(&[&[c3], &[c1, c2]]);
        let body = [l0, l1].concat();
        let (back, txns) = validate_frame(&header, &body, &SEG).unwrap();
        assert_eq!(back, cert);
        let seqs: Vec<u64> = txns.iter().map(|t| t.commit_seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);

        let mut flipped = body.clone();
        flipped[40] ^= 1;
        let err = validate_frame(&header, &flipped, &SEG).unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
        // The same bytes do not validate as a frame of another segment: the
        // tag names the segment, and the id and salt seed the CRC.
        for other in [
            SegmentIdent { id: 2, ..SEG },
            SegmentIdent { salt: 3, ..SEG },
        ] {
            let err = validate_frame(&header, &body, &other).unwrap_err();
            assert!(err.contains("another incarnation"), "{err}");
        }
        // Every field is a few bytes: three records of one 64-byte page in
        // an epoch take 23 bytes of header, and each record 14 bytes beyond
        // its page.
        assert_eq!(header.len(), 4 + 1 + 4 + 10 + 4, "a two-byte body length");
        assert_eq!(body.len(), 3 * (64 + 14));
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
        let len = validate_txn(&txn(&f), 0).unwrap();
        let frame = |page: usize| varint::len(page as u64) + 1 + 3 + MAX_PAGE_BYTES;
        let frames: usize = (1..=f.len()).map(frame).sum();
        let fields = 1 + 1 + 1 + 1 + 1 + varint::len(f.len() as u64);
        assert_eq!(len, record_len(fields + frames));
        let n = f.len();
        f[n - 1].data = &page[1..];
        f.push(Frame {
            page_number: 1,
            db_size_if_commit: 0,
            data: &one,
        });
        validate_txn(&txn(&f), 0).expect("still exactly the limit");
        f[n].data = &page[..2];
        let err = validate_txn(&txn(&f), 0).unwrap_err().to_string();
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
        let t = txn(&f);
        let head = RecordHead::of(&t, 0, 0, false);
        assert!(validate_txn(&t, 0).unwrap() > MAX_RECORD_BYTES);
        let p: Vec<_> = parts(&head, &f).collect();
        assert!(p.len() >= 3, "{} parts", p.len());
        let mut next = 0;
        for (i, (range, len)) in p.iter().enumerate() {
            assert_eq!(range.start, next, "parts are consecutive");
            assert!(*len <= MAX_RECORD_BYTES, "a part of {len} bytes");
            // The length is the encoding's.
            let more = range.end < f.len();
            let h = RecordHead {
                part: i as u32,
                more,
                ..head
            };
            let mut buf = Vec::new();
            encode_record(&mut buf, &h, &f[range.clone()], *len);
            assert_eq!(buf, encode_record_reference(&h, &f[range.clone()]));
            // Read back, the record says which part it is and whether more
            // follow.
            let t = check(&[buf], |_| ()).unwrap();
            assert_eq!((t[0].part, t[0].more), (i as u32, more));
            // Full: the next frame would not have fit.
            if more {
                let mut one_more = Vec::new();
                let r = range.start..range.end + 1;
                encode_record(&mut one_more, &h, &f[r.clone()], {
                    encode_record_reference(&h, &f[r]).len()
                });
                assert!(one_more.len() > MAX_RECORD_BYTES);
            }
            next = range.end;
        }
        assert_eq!(next, f.len());
        // A transaction that fits is one part, of its length as one record,
        // also where its frame count takes one byte more (16384 frames).
        assert_eq!(parts(&head, &f[..10]).count(), 1);
        let small = [4u8; 100];
        let many: Vec<Frame<'_>> = (1..=16384)
            .map(|n| Frame {
                page_number: n,
                db_size_if_commit: 0,
                data: &small,
            })
            .collect();
        let one = validate_txn(&txn(&many), 0).unwrap();
        assert_eq!(one, encode_record_reference(&head, &many).len());
        assert_eq!(
            parts(&head, &many).collect::<Vec<_>>(),
            vec![(0..16384, one)]
        );
        // The largest transaction: 1 GiB of pages takes 65 parts, and the
        // part field of index 64 takes two bytes; the lengths of the last
        // two parts (one- and two-byte part fields) are their encodings'.
        let big = vec![6u8; MAX_PAGE_BYTES];
        let f: Vec<Frame<'_>> = (0..(MAX_TXN_BYTES / MAX_PAGE_BYTES) as u32)
            .map(|i| Frame {
                page_number: i + 1,
                db_size_if_commit: 0,
                data: &big,
            })
            .collect();
        let p: Vec<_> = parts(&head, &f).collect();
        assert_eq!(p.len(), 65);
        for (i, (range, len)) in p.iter().enumerate().skip(63) {
            let h = RecordHead {
                part: i as u32,
                more: range.end < f.len(),
                ..head
            };
            assert_eq!(*len, encode_record_reference(&h, &f[range.clone()]).len());
        }
    }

    #[test]
    fn oversized_page_and_page_zero_are_rejected() {
        let big = vec![0u8; MAX_PAGE_BYTES + 1];
        let f = [Frame {
            page_number: 1,
            db_size_if_commit: 0,
            data: &big,
        }];
        assert!(validate_txn(&txn(&f), 0)
            .unwrap_err()
            .to_string()
            .contains("65536"));
        let small = [0u8; 8];
        let f = [Frame {
            page_number: 0,
            db_size_if_commit: 0,
            data: &small,
        }];
        assert!(validate_txn(&txn(&f), 0)
            .unwrap_err()
            .to_string()
            .contains("page number 0"));
        assert!(validate_txn(&txn(&[]), 0).is_err());
    }

    /// Raw record bytes: transaction id `seq * 10`, commit sequence `seq`,
    /// `txn_epoch` and file 0, the part field `part << 1 | flags`, the frame
    /// count as given, frames `(page, bytes)` (db size 0), then the length
    /// and CRC filled in; `len` forces the length field (the CRC always
    /// covers the bytes as they are).
    fn raw_record(
        seq: u64,
        frame_count: u32,
        part: u32,
        flags: u32,
        frames: &[(u32, &[u8])],
        len: Option<u64>,
    ) -> Vec<u8> {
        let mut rest = Vec::new();
        for v in [
            seq * 10,
            seq,
            0,
            0,
            (u64::from(part) << 1) | u64::from(flags),
        ] {
            varint::push(&mut rest, v);
        }
        varint::push(&mut rest, frame_count.into());
        for (page, data) in frames {
            varint::push(&mut rest, (*page).into());
            varint::push(&mut rest, 0);
            varint::push(&mut rest, data.len() as u64);
            rest.extend_from_slice(data);
        }
        sealed_record(len.unwrap_or(rest.len() as u64), &rest)
    }

    /// A record of `rest` (the bytes after the length) with length field
    /// `len` and its CRC.
    fn sealed_record(len: u64, rest: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 4];
        varint::push(&mut r, len);
        r.extend_from_slice(rest);
        let crc = crc32c::crc32c(&r[4..]);
        r[..4].copy_from_slice(&crc.to_le_bytes());
        r
    }

    /// A frame of epoch 5 of segment `SEG` holding `records`, its
    /// certificate filled in from them (commit range over the records
    /// without `more`) and then changed by `edit`.
    fn frame_with(records: &[Vec<u8>], edit: impl FnOnce(&mut Certificate)) -> (Vec<u8>, Vec<u8>) {
        let body = records.concat();
        let crcs: Vec<u32> = records
            .iter()
            .map(|r| u32::from_le_bytes(r[..4].try_into().unwrap()))
            .collect();
        let fields: Vec<_> = records
            .iter()
            .filter_map(|r| record_fields(r).ok())
            .collect();
        let committing = || fields.iter().filter(|f| !f.more).map(|f| f.commit_seq);
        let mut cert = Certificate {
            segment: SEG,
            epoch: 5,
            first_commit_seq: committing().min().unwrap_or(0),
            last_commit_seq: committing().max().unwrap_or(0),
            body_len: body.len() as u32,
            txn_count: records.len() as u32,
            db_size_pages: 0,
            page_set_size: fields.iter().map(|f| f.frame_count as u32).sum(),
            synced_through: 4,
            checkpoint_epoch: 3,
        };
        edit(&mut cert);
        (cert.encode(&[&crcs]), body)
    }

    fn check(
        records: &[Vec<u8>],
        edit: impl FnOnce(&mut Certificate),
    ) -> std::result::Result<Vec<TxnRef>, String> {
        let (h, b) = frame_with(records, edit);
        validate_frame(&h, &b, &SEG).map(|(_, t)| t)
    }

    fn refused(r: std::result::Result<Vec<TxnRef>, String>, needle: &str) {
        match r {
            Err(e) => assert!(e.contains(needle), "{e:?} lacks {needle:?}"),
            Ok(t) => panic!("accepted ({} records), expected {needle:?}", t.len()),
        }
    }

    #[test]
    fn a_part_of_exactly_a_record_is_one_part_and_one_byte_more_is_two() {
        // 255 pages of 65,536 bytes and one short page: exactly
        // MAX_RECORD_BYTES encoded. Each full frame takes its page, 3 bytes
        // of length, 1 of database size and 1 or 2 of page number.
        let page = vec![7u8; MAX_PAGE_BYTES];
        let mut f: Vec<Frame<'_>> = (0..256)
            .map(|i| Frame {
                page_number: i + 1,
                db_size_if_commit: 0,
                data: &page,
            })
            .collect();
        let t = txn(&f);
        let head = RecordHead::of(&t, 0, 0, false);
        // Fields: id 7, seq 9, txn_epoch 3, file 0, part 0, 256 frames (2
        // bytes); CRC and a 4-byte length.
        let fixed = 4 + 4 + 5 + 2;
        let full: usize = (1..=255u32)
            .map(|p| varint::len(p.into()) + 1 + 3 + MAX_PAGE_BYTES)
            .sum();
        // The last frame: page 256 (2 bytes), size 0, a 3-byte length.
        let last = MAX_RECORD_BYTES - fixed - full - (2 + 1 + 3);
        f[255].data = &page[..last];
        let len = validate_txn(&txn(&f), 0).unwrap();
        assert_eq!(len, MAX_RECORD_BYTES);
        let p: Vec<_> = parts(&head, &f).collect();
        assert_eq!(p, vec![(0..256, MAX_RECORD_BYTES)]);
        // Such a record is valid in a frame.
        let mut rec = Vec::new();
        encode_record(&mut rec, &head, &f, len);
        let t = check(&[rec], |_| ()).expect("a record of exactly MAX_RECORD_BYTES");
        assert_eq!(t[0].len, MAX_RECORD_BYTES);
        // One byte more: two parts, the first of 255 frames; as one record
        // it is refused, though it lies whole in its body.
        f[255].data = &page[..last + 1];
        let over = encode_record_reference(&head, &f);
        assert_eq!(over.len(), MAX_RECORD_BYTES + 1);
        refused(check(&[over], |_| ()), "impossible record length 16777217");
        let p: Vec<_> = parts(&head, &f).collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].0, 0..255);
        let second = RecordHead { part: 1, ..head };
        assert_eq!(
            p[1],
            (255..256, encode_record_reference(&second, &f[255..]).len())
        );
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
        // The part field is the part index and one flag bit: a second bit
        // is a part index out of range.
        refused(check(&[rec(1 << 21, 1)], |_| ()), "impossible part 2097152");
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
        // A range whose end is above 2^64 - 1.
        refused(
            check(&recs, |c| {
                c.first_commit_seq = 3;
                c.last_commit_seq = 2;
            }),
            "above 2^64",
        );
    }

    #[test]
    fn impossible_records_are_refused_without_reading_past_them() {
        let d = [1u8; 10];
        let one = [9u8];
        // The smallest record: one frame of one byte.
        let t = check(&[raw_record(1, 1, 0, 0, &[(1, &one)], None)], |_| ()).unwrap();
        assert_eq!(t[0].len, RECORD_MIN_LEN);
        // A length below the smallest record (its CRC right), in a body
        // long enough for a record.
        let mut short = sealed_record(5, &[10, 1, 0, 0, 0]);
        short.resize(40, 0);
        refused(check(&[short], |_| ()), "impossible record length 10");
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
        // A page length of 11 with 10 bytes in the record.
        let rest = [10, 1, 0, 0, 0, 1, 1, 0, 11];
        let over = sealed_record((rest.len() + 10) as u64, &[&rest[..], &d].concat());
        refused(check(&[over], |_| ()), "frame 0 has page 1 and length 11");
        // Two frames counted, one frame and 1 or 2 bytes present (a page
        // number, then a size): the second frame's header runs past the
        // record.
        for extra in [1usize, 2] {
            let mut r = raw_record(1, 2, 0, 0, &[(1, &d)], None);
            let mut rest = record_rest(&r);
            rest.extend(std::iter::repeat_n(3u8, extra));
            r = sealed_record(rest.len() as u64, &rest);
            refused(check(&[r], |_| ()), "frame 1 header runs past the record");
        }
        // A record length encoded longer than its value needs: the
        // encoding's own verdict, not a record cut short.
        let mut odd = sealed_record(12, &[10, 1, 0, 0, 0, 1, 1, 0, 1, 9, 9, 9]);
        odd.splice(4..5, [0x8c, 0x00]);
        refused(
            check(&[odd], |_| ()),
            "record 0 at body offset 0: record length: overlong encoding (2 bytes)",
        );
        // No frame, in a record long enough for one (a long transaction
        // id); and one frame more than a transaction may have, in a record
        // that holds them all (2^21 + 1 one-byte pages, 4 bytes each).
        let mut rest = Vec::new();
        for v in [u64::MAX, 1, 0, 0, 0, 0] {
            varint::push(&mut rest, v);
        }
        let none = sealed_record(rest.len() as u64, &rest);
        refused(check(&[none], |_| ()), "impossible frame count 0");
        for (n, ok) in [(MAX_TXN_FRAMES, true), (MAX_TXN_FRAMES + 1, false)] {
            let mut rest = vec![10, 1, 0, 0, 0];
            varint::push(&mut rest, n as u64);
            for _ in 0..n {
                rest.extend_from_slice(&[1, 0, 1, 7]);
            }
            let r = sealed_record(rest.len() as u64, &rest);
            match check(&[r], |_| ()) {
                Ok(t) => assert!(ok && t[0].frames as usize == n),
                Err(e) => assert!(
                    !ok && e.contains(&format!("impossible frame count {n}")),
                    "{n} frames: {e}"
                ),
            }
        }
        // A field encoded longer than its value needs.
        let rest = [10, 1, 0, 0, 0, 0x81, 0x00, 1, 0, 10];
        let overlong = sealed_record((rest.len() + 10) as u64, &[&rest[..], &d].concat());
        refused(check(&[overlong], |_| ()), "frame count: overlong encoding");
        // One more record counted than the body holds, with bytes after the
        // last record: zeros (a CRC and length of 0), or a CRC and nothing.
        for extra in [1usize, 4, 5, 17] {
            let r = raw_record(1, 1, 0, 0, &[(1, &[5u8; 200])], None);
            let (_, mut b) = frame_with(std::slice::from_ref(&r), |_| ());
            b.extend(std::iter::repeat_n(0u8, extra));
            let (h, _) = frame_with(&[r], |c| {
                c.txn_count = 2;
                c.body_len = b.len() as u32;
            });
            let err = validate_frame(&h, &b, &SEG).unwrap_err();
            assert!(err.contains("record 1"), "{err}");
            assert!(
                err.contains("runs past the body") || err.contains("impossible record length"),
                "{err}"
            );
        }
        // A second record whose length runs past the body by one byte.
        let first = raw_record(1, 1, 0, 0, &[(1, &d)], None);
        let second = raw_record(2, 1, 0, 0, &[(2, &d)], None);
        let l = record_rest(&second).len() as u64 + 1;
        let second = sealed_record(l, &record_rest(&second));
        refused(
            check(&[first.clone(), second], |_| ()),
            &format!(
                "record 1 at body offset {}: impossible record length {}",
                first.len(),
                first.len() + 1
            ),
        );
        // More records counted than any body of this size could hold: refused
        // before anything is allocated for them.
        let r = raw_record(1, 1, 0, 0, &[(1, &d)], None);
        let one_too_many = (r.len() / RECORD_MIN_LEN + 1) as u32;
        for (count, pad) in [(u32::MAX, 0), (1 << 24, 1 << 20), (one_too_many, 0)] {
            let r = raw_record(1, 1, 0, 0, &[(1, &d)], None);
            let (_, mut b) = frame_with(std::slice::from_ref(&r), |_| ());
            b.resize(b.len() + pad, 0);
            let (h, _) = frame_with(&[r], |c| {
                c.txn_count = count;
                c.body_len = b.len() as u32;
            });
            let err = validate_frame(&h, &b, &SEG).unwrap_err();
            assert!(
                err.contains(&format!("{count} records cannot fit")),
                "{err}"
            );
        }
    }

    /// The bytes of a record after its CRC and length.
    fn record_rest(r: &[u8]) -> Vec<u8> {
        let mut rd = Reader::new(r);
        rd.fixed32().unwrap();
        rd.var("length", u64::MAX).unwrap();
        r[rd.pos()..].to_vec()
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
            check(&recs, |c| c.synced_through = 5),
            "synced-through epoch 5",
        );
        refused(
            check(&recs, |c| c.checkpoint_epoch = 5),
            "checkpoint epoch 5",
        );
        refused(
            check(&recs, |c| c.synced_through = 6),
            "synced-through epoch 6",
        );
        check(&recs, |c| (c.synced_through, c.checkpoint_epoch) = (4, 4)).unwrap();
        check(&recs, |c| (c.synced_through, c.checkpoint_epoch) = (0, 0)).unwrap();
        // An epoch before the segment's first cannot be written: its offset
        // from the first epoch would be above 2^62.
        refused(
            check(&recs, |c| {
                c.epoch = 0;
                (c.synced_through, c.checkpoint_epoch) = (0, 0);
            }),
            "epoch offset",
        );
    }

    #[test]
    fn headers_are_classified() {
        let d = [1u8; 10];
        let (h, _) = frame_with(&[raw_record(1, 1, 0, 0, &[(1, &d)], None)], |_| ());
        let parse = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = h.clone();
            edit(&mut b);
            parse_header(&b, true, &SEG)
        };
        assert!(matches!(
            parse(&|_| ()),
            Header::Plausible { header_len, .. } if header_len == h.len()
        ));
        // The header window reaches past the header: the same.
        let mut long = h.clone();
        long.resize(CERT_MAX_LEN, 0xAB);
        assert!(matches!(
            parse_header(&long, false, &SEG),
            Header::Plausible { header_len, .. } if header_len == h.len()
        ));
        assert!(matches!(parse(&|b| b.fill(0)), Header::Zero));
        assert!(matches!(parse(&|b| b.truncate(3)), Header::Bad(_)));
        assert!(matches!(
            parse(&|b| {
                b.truncate(3);
                b.fill(0)
            }),
            Header::Zero
        ));
        assert!(
            matches!(parse(&|b| b[5] ^= 1), Header::Stale),
            "another tag"
        );
        for other in [
            SegmentIdent { id: 9, ..SEG },
            SegmentIdent { salt: 9, ..SEG },
        ] {
            assert!(matches!(parse_header(&h, true, &other), Header::Stale));
        }
        let bad = |f: Header, needle: &str| match f {
            Header::Bad(why) => assert!(why.contains(needle), "{why}"),
            other => panic!("expected Bad({needle}), got {other:?}"),
        };
        bad(parse(&|b| b[0] ^= 1), "bad epoch magic");
        bad(parse(&|b| b[4] = 2), "unknown certificate flags 0x02");
        bad(
            parse(&|b| b.truncate(20)),
            "cut short by the end of the file",
        );
        // The first frame of a segment carries its identity; another
        // segment's identity under the right tag is stale.
        let first = Certificate {
            segment: SEG,
            epoch: 1,
            ..Certificate::default()
        };
        let fh = first.encode(&[]);
        assert_eq!(fh.len(), CERT_MIN_LEN + IDENTITY_LEN);
        assert_eq!(carried_identity(&fh), Some(SEG));
        assert_eq!(carried_identity(&h), None);
        assert!(matches!(
            parse_header(&fh, true, &SEG),
            Header::Plausible { body_len: 0, .. }
        ));
        let mut other = fh.clone();
        other[9 + 16] ^= 1;
        assert!(matches!(parse_header(&other, true, &SEG), Header::Stale));
        // Body lengths up to the bound.
        let body = |n: u32| {
            let c = Certificate {
                segment: SEG,
                epoch: 3,
                body_len: n,
                synced_through: 2,
                ..Certificate::default()
            };
            parse_header(&c.encode(&[]), true, &SEG)
        };
        let most = MAX_EPOCH_BODY_BYTES as u32;
        assert!(matches!(
            body(most),
            Header::Plausible { body_len, .. } if body_len == MAX_EPOCH_BODY_BYTES
        ));
        bad(body(most + 1), "body length");
        // The longest header a writer produces: a segment's first frame (the
        // identity block, no offset) at epoch 2^62 with no marks, the
        // largest body, counts and database size, and the commit range
        // 2^63..=2^64 - 1 (the longest first sequence and range together).
        let longest = Certificate {
            segment: SegmentIdent {
                first_epoch: MAX_EPOCH,
                ..SEG
            },
            epoch: MAX_EPOCH,
            first_commit_seq: 1 << 63,
            last_commit_seq: u64::MAX,
            body_len: MAX_EPOCH_BODY_BYTES as u32,
            txn_count: u32::MAX,
            db_size_pages: u32::MAX,
            page_set_size: u32::MAX,
            synced_through: 0,
            checkpoint_epoch: 0,
        };
        let mut h = longest.encode(&[]);
        assert_eq!(h.len(), 94);
        // The longest a reader parses to its CRC: every field at the longest
        // its bound allows (the two distances and the range at 10 bytes).
        h.truncate(9);
        h[4] = CERT_IDENTITY;
        for v in [SEG.id, SEG.salt, SEG.first_epoch] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            MAX_EPOCH,
            MAX_EPOCH_BODY_BYTES as u64,
            u32::MAX.into(),
            u32::MAX.into(),
            u64::MAX,
            u64::MAX,
            u32::MAX.into(),
            u64::MAX,
            u64::MAX,
        ] {
            varint::push(&mut h, v);
        }
        h.extend_from_slice(&[0; 4]);
        assert_eq!(h.len(), 105);
        h.resize(CERT_MAX_LEN, 0xee);
        assert!(matches!(
            parse_header(&h, false, &SEG),
            Header::Plausible {
                header_len: 105,
                ..
            }
        ));
    }

    /// A certificate of segment `SEG` with the given flags, identity block
    /// and nine variable-length fields, sealed with `seed` over no records.
    fn raw_cert(flags: u8, identity: bool, fields: [u64; 9], seed: u32) -> Vec<u8> {
        let mut h = EPOCH_MAGIC.to_le_bytes().to_vec();
        h.push(flags);
        h.extend_from_slice(&SEG.tag().to_le_bytes());
        if identity {
            for v in [SEG.id, SEG.salt, SEG.first_epoch] {
                h.extend_from_slice(&v.to_le_bytes());
            }
        }
        for v in fields {
            varint::push(&mut h, v);
        }
        let crc = crc32c::crc32c_append(seed, &h);
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn the_identity_block_belongs_to_the_first_frame_and_the_seed_to_the_segment() {
        // Epoch offset, body, records, pages, first sequence, range, size,
        // synced distance, checkpoint distance: an empty epoch.
        let at = |offset: u64| [offset, 0, 0, 0, 0, 0, 0, 1 + offset, 1 + offset];
        let valid = |h: &[u8]| validate_frame(h, &[], &SEG).map(|(c, _)| c.epoch);
        assert_eq!(
            valid(&raw_cert(CERT_IDENTITY, true, at(0), SEG.seed())),
            Ok(1)
        );
        assert_eq!(valid(&raw_cert(0, false, at(4), SEG.seed())), Ok(5));
        // The identity on a later frame, or none on the first.
        let e = valid(&raw_cert(CERT_IDENTITY, true, at(4), SEG.seed())).unwrap_err();
        assert!(
            e.contains("identity block present on the frame of epoch 5"),
            "{e}"
        );
        let e = valid(&raw_cert(0, false, at(0), SEG.seed())).unwrap_err();
        assert!(
            e.contains("identity block missing on the frame of epoch 1"),
            "{e}"
        );
        // The tag is right, but the CRC was not seeded by this segment.
        for seed in [0, !0, SEG.tag(), SegmentIdent { salt: 3, ..SEG }.seed()] {
            let e = valid(&raw_cert(0, false, at(4), seed)).unwrap_err();
            assert!(e.contains("certificate checksum mismatch"), "{e}");
        }
        // A carried identity must name a first epoch a header can.
        let mut h = raw_cert(CERT_IDENTITY, true, at(0), SEG.seed());
        assert_eq!(carried_identity(&h), Some(SEG));
        h[9 + 16..9 + 24].fill(0);
        assert_eq!(carried_identity(&h), None);
    }
}
