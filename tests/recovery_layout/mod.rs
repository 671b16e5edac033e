//! The version-5 byte layout, written out independently of the library so
//! that tests can find, damage and forge frames and headers.

use std::path::{Path, PathBuf};

use pwal::io::SimVfs;

/// The on-disk format version these tests write and expect.
pub const FORMAT_VERSION: u16 = 5;
pub const DATA_OFFSET: usize = 4096;
/// The bound on epoch numbers (`epoch::MAX_EPOCH`).
pub const MAX_EPOCH: u64 = 1 << 62;
/// The shortest certificate, and the zeros that mark a header position
/// never written.
pub const CERT_MIN_LEN: usize = 22;
/// The longest certificate: what recovery reads to parse one.
pub const CERT_MAX_LEN: usize = 4 + 1 + 4 + 24 + 9 * 10 + 4;
/// The identity block of a segment's first frame.
pub const IDENTITY_LEN: usize = 24;

/// The segment a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ident {
    pub id: u64,
    pub salt: u64,
    pub first_epoch: u64,
}

impl Ident {
    /// The identity in a segment file's header.
    pub fn of_segment(data: &[u8]) -> Ident {
        Ident {
            id: rd64(data, 8),
            salt: rd64(data, 16),
            first_epoch: rd64(data, 24),
        }
    }

    fn id_salt(&self) -> Vec<u8> {
        [self.id.to_le_bytes(), self.salt.to_le_bytes()].concat()
    }

    pub fn tag(&self) -> u32 {
        crc32c::crc32c(&self.id_salt())
    }

    pub fn seed(&self) -> u32 {
        let b = self.id_salt();
        crc32c::crc32c_append(crc32c::crc32c(&b[8..]), &b[..8])
    }
}

/// The fields of a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert {
    pub identity: bool,
    pub epoch: u64,
    pub body_len: u64,
    pub txn_count: u64,
    pub page_set: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub db_size: u64,
    pub synced_through: u64,
    pub checkpoint: u64,
}

pub fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a variable-length integer at `*at`, moving past it.
pub fn get_var(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

impl Cert {
    /// Decodes the certificate at the start of `frame` (of segment
    /// `ident`); returns it and the header's length.
    pub fn decode(frame: &[u8], ident: &Ident) -> (Cert, usize) {
        assert_eq!(&frame[..4], b"PWEP");
        let identity = frame[4] & 1 != 0;
        let mut at = 9 + if identity { IDENTITY_LEN } else { 0 };
        let mut v = || get_var(frame, &mut at);
        let epoch = ident.first_epoch + v();
        let body_len = v();
        let txn_count = v();
        let page_set = v();
        let first_seq = v();
        let last_seq = first_seq + v();
        let db_size = v();
        let synced_through = epoch - v();
        let checkpoint = epoch - v();
        let c = Cert {
            identity,
            epoch,
            body_len,
            txn_count,
            page_set,
            first_seq,
            last_seq,
            db_size,
            synced_through,
            checkpoint,
        };
        (c, at + 4)
    }

    /// The header of this certificate in segment `ident` (with its CRC
    /// over the record CRCs `record_crcs`).
    pub fn encode(&self, ident: &Ident, record_crcs: &[u32]) -> Vec<u8> {
        let mut h = b"PWEP".to_vec();
        h.push(u8::from(self.identity));
        h.extend_from_slice(&ident.tag().to_le_bytes());
        if self.identity {
            for v in [ident.id, ident.salt, ident.first_epoch] {
                h.extend_from_slice(&v.to_le_bytes());
            }
        }
        let e = self.epoch;
        for v in [
            e.wrapping_sub(ident.first_epoch),
            self.body_len,
            self.txn_count,
            self.page_set,
            self.first_seq,
            self.last_seq.wrapping_sub(self.first_seq),
            self.db_size,
            e.wrapping_sub(self.synced_through),
            e.wrapping_sub(self.checkpoint),
        ] {
            put_var(&mut h, v);
        }
        let mut crc = crc32c::crc32c_append(ident.seed(), &h);
        for c in record_crcs {
            crc = crc32c::crc32c_append(crc, &c.to_le_bytes());
        }
        h.extend_from_slice(&crc.to_le_bytes());
        h
    }
}

/// The fields of the certificate at the start of `frame`, as they lie:
/// name, offset and length.
pub fn cert_fields(frame: &[u8]) -> Vec<(&'static str, usize, usize)> {
    let mut out = vec![("magic", 0, 4), ("flags", 4, 1), ("tag", 5, 4)];
    let mut at = 9;
    if frame[4] & 1 != 0 {
        out.push(("identity", 9, IDENTITY_LEN));
        at += IDENTITY_LEN;
    }
    for name in [
        "epoch",
        "body length",
        "transaction count",
        "page-set size",
        "first commit sequence",
        "commit range",
        "database size",
        "synced through",
        "checkpoint epoch",
    ] {
        let from = at;
        get_var(frame, &mut at);
        out.push((name, from, at - from));
    }
    out.push(("certificate checksum", at, 4));
    out
}

/// One record of a body: where it lies and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub start: usize,
    pub len: usize,
    pub txn_id: u64,
    pub seq: u64,
    pub txn_epoch: u64,
    pub file_id: u64,
    pub part: u64,
    pub more: bool,
    /// Frames: page, database size, page bytes.
    pub frames: Vec<(u64, u64, Vec<u8>)>,
}

impl Rec {
    /// The records of `body`, in body order.
    pub fn all(body: &[u8]) -> Vec<Rec> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let mut p = at + 4;
            let rest = get_var(body, &mut p) as usize;
            let end = p + rest;
            let mut v = || get_var(body, &mut p);
            let (txn_id, seq, txn_epoch, file_id, pf, n) = (v(), v(), v(), v(), v(), v());
            let mut frames = Vec::new();
            for _ in 0..n {
                let mut v = || get_var(body, &mut p);
                let (page, db, len) = (v(), v(), v() as usize);
                frames.push((page, db, body[p..p + len].to_vec()));
                p += len;
            }
            assert_eq!(p, end, "a record decodes to its length");
            out.push(Rec {
                start: at,
                len: end - at,
                txn_id,
                seq,
                txn_epoch,
                file_id,
                part: pf >> 1,
                more: pf & 1 != 0,
                frames,
            });
            at = end;
        }
        out
    }

    /// The record's bytes, its length and CRC computed.
    pub fn encode(&self) -> Vec<u8> {
        let mut rest = Vec::new();
        for v in [
            self.txn_id,
            self.seq,
            self.txn_epoch,
            self.file_id,
            (self.part << 1) | u64::from(self.more),
            self.frames.len() as u64,
        ] {
            put_var(&mut rest, v);
        }
        for (page, db, data) in &self.frames {
            put_var(&mut rest, *page);
            put_var(&mut rest, *db);
            put_var(&mut rest, data.len() as u64);
            rest.extend_from_slice(data);
        }
        let mut r = vec![0u8; 4];
        put_var(&mut r, rest.len() as u64);
        r.extend_from_slice(&rest);
        let crc = crc32c::crc32c(&r[4..]);
        r[..4].copy_from_slice(&crc.to_le_bytes());
        r
    }

    /// Offset of the first page byte in the record.
    pub fn first_page_byte(&self) -> usize {
        let hdr = |(p, d, x): &(u64, u64, Vec<u8>)| {
            let mut h = Vec::new();
            put_var(&mut h, *p);
            put_var(&mut h, *d);
            put_var(&mut h, x.len() as u64);
            h.len()
        };
        let frames: usize = self.frames.iter().map(|f| hdr(f) + f.2.len()).sum();
        self.len - frames + hdr(&self.frames[0])
    }
}

/// Splices `new` over the frame `f` of the segment bytes `data`: the frames
/// after it move with it, and the file keeps its length (zeros added at its
/// end, or cut from it), unless what it holds no longer fits.
pub fn replace_frame(data: &mut Vec<u8>, f: &FrameLoc, new: &[u8]) {
    let len = data.len();
    data.splice(f.start as usize..f.end as usize, new.iter().copied());
    while data.len() > len && data.last() == Some(&0) {
        data.pop();
    }
    if data.len() < len {
        data.resize(len, 0);
    }
}

/// Rewrites frame `f` of `data` with its records changed by `edit` and its
/// certificate changed by `cert` after the body length, page-set size and
/// commit range were filled in from the records; returns the new frame.
pub fn rebuild_frame(
    data: &mut Vec<u8>,
    f: &FrameLoc,
    edit: impl FnOnce(&mut Vec<Rec>),
    cert: impl FnOnce(&mut Cert),
) -> Vec<u8> {
    let frame = &data[f.start as usize..f.end as usize];
    let mut recs = Rec::all(&frame[f.hlen..]);
    edit(&mut recs);
    let body: Vec<u8> = recs.iter().flat_map(|r| r.encode()).collect();
    let mut c = f.cert(data);
    c.body_len = body.len() as u64;
    c.txn_count = recs.len() as u64;
    c.page_set = recs.iter().map(|r| r.frames.len() as u64).sum();
    let committing = || recs.iter().filter(|r| !r.more).map(|r| r.seq);
    c.first_seq = committing().min().unwrap_or(0);
    c.last_seq = committing().max().unwrap_or(0);
    cert(&mut c);
    let new = [c.encode(&f.ident, &record_crcs(&body)), body].concat();
    replace_frame(data, f, &new);
    new
}

/// The CRCs of the records of a body, in order.
pub fn record_crcs(body: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= body.len() {
        out.push(rd32(body, at));
        let mut p = at + 4;
        let rest = get_var(body, &mut p) as usize;
        if rest == 0 || p + rest > body.len() {
            break;
        }
        at = p + rest;
    }
    out
}

/// One frame of a segment: where it lies, its epoch and its header length.
#[derive(Clone, Debug)]
pub struct FrameLoc {
    pub start: u64,
    pub end: u64,
    pub epoch: u64,
    pub hlen: usize,
    pub ident: Ident,
}

impl FrameLoc {
    pub fn header_len(&self) -> usize {
        self.hlen
    }

    /// The certificate of this frame in `data` (its segment's bytes).
    pub fn cert(&self, data: &[u8]) -> Cert {
        Cert::decode(&data[self.start as usize..], &self.ident).0
    }

    /// The frame with its certificate changed by `edit` and resealed: the
    /// header is encoded again, so its length may change.
    pub fn edited(&self, data: &[u8], edit: impl FnOnce(&mut Cert)) -> Vec<u8> {
        let frame = &data[self.start as usize..self.end as usize];
        let mut c = self.cert(data);
        edit(&mut c);
        let body = &frame[self.hlen..];
        [c.encode(&self.ident, &record_crcs(body)), body.to_vec()].concat()
    }
}

pub fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn rd64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The segment files of the log of `db`, ascending.
pub fn segments(vfs: &SimVfs, db: &Path) -> Vec<PathBuf> {
    let dir = pwal::log_dir(db);
    vfs.paths()
        .into_iter()
        .filter(|p| p.parent() == Some(&dir) && p.extension().is_some_and(|x| x == "pwseg"))
        .collect()
}

pub fn segment_id(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

pub fn first_epoch(segment: &[u8]) -> u64 {
    rd64(segment, 24)
}

/// The frames of a segment's contents, walked from offset 4096 while they
/// carry the segment's tag.
pub fn frames_of_segment(data: &[u8]) -> Vec<FrameLoc> {
    let ident = Ident::of_segment(data);
    let mut out = Vec::new();
    let mut off = DATA_OFFSET;
    while off + CERT_MIN_LEN <= data.len() {
        let h = &data[off..];
        if &h[0..4] != b"PWEP" || rd32(h, 5) != ident.tag() {
            break;
        }
        let (c, hlen) = Cert::decode(h, &ident);
        let len = hlen + c.body_len as usize;
        out.push(FrameLoc {
            start: off as u64,
            end: (off + len) as u64,
            epoch: c.epoch,
            hlen,
            ident,
        });
        off += len;
    }
    out
}

/// Recomputes the certificate checksum of a whole frame of segment `ident`
/// whose header is `hlen` bytes, after bytes of the header were edited in
/// place: the CRC of the header, seeded by the segment, continued over the
/// stored CRC of each record, in body order.
pub fn reseal(frame: &mut [u8], hlen: usize, ident: &Ident) {
    let mut crc = crc32c::crc32c_append(ident.seed(), &frame[..hlen - 4]);
    for c in record_crcs(&frame[hlen..]) {
        crc = crc32c::crc32c_append(crc, &c.to_le_bytes());
    }
    frame[hlen - 4..hlen].copy_from_slice(&crc.to_le_bytes());
}

/// A checksum-valid segment header.
pub fn segment_header(id: u64, salt: u64, first_epoch: u64, log_start: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(b"PWSG");
    b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&id.to_le_bytes());
    b[16..24].copy_from_slice(&salt.to_le_bytes());
    b[24..32].copy_from_slice(&first_epoch.to_le_bytes());
    b[32..40].copy_from_slice(&log_start.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}
