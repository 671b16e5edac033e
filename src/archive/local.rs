//! Reads durable epochs back from the log's own segment files for the
//! archiver: the segment that holds an epoch is the last one of the catalog
//! starting at or before it, and its frames are walked from a cursor that
//! stays where the last read ended (one `pread` per frame in order).

use std::path::PathBuf;

use crate::coordinator::Shared;
use crate::epoch::{parse_header, validate_frame, Header, SegmentIdent, CERT_MAX_LEN};
use crate::io::VfsFile;
use crate::segment::{HeaderRead, SegmentHeader, DATA_OFFSET, SEGMENT_HEADER_LEN};

use super::object::ArchivedEpoch;

/// Where the next frame of a segment lies.
pub(crate) struct Cursor {
    path: PathBuf,
    file: Box<dyn VfsFile>,
    ident: SegmentIdent,
    off: u64,
    /// The epoch of the frame at `off`.
    next: u64,
}

/// One local epoch: its fields and, if asked for, its body; and the
/// frame's length on disk.
pub(crate) struct LocalEpoch {
    pub epoch: ArchivedEpoch,
    pub frame_len: u64,
}

fn read_exact_at(f: &dyn VfsFile, buf: &mut [u8], off: u64) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        let k = f
            .read_at(&mut buf[n..], off + n as u64)
            .map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Reads epoch `e` (durable, still in the log) through `cursor`.
/// `with_body`: validate the frame and return its body; otherwise only its
/// length and header fields are read.
pub(crate) fn read_epoch(
    sh: &Shared,
    cursor: &mut Option<Cursor>,
    e: u64,
    with_body: bool,
) -> Result<LocalEpoch, String> {
    let (path, first) = {
        let cat = sh.catalog.lock();
        let seg = cat
            .segments
            .iter()
            .rev()
            .find(|s| s.first_epoch <= e)
            .ok_or_else(|| format!("epoch {e} is no longer in the log"))?;
        (seg.path.clone(), seg.first_epoch)
    };
    let reuse = cursor
        .as_ref()
        .is_some_and(|c| c.path == path && c.ident.first_epoch == first && c.next <= e);
    if !reuse {
        let file = sh
            .vfs
            .open_read(&path)
            .map_err(|err| format!("opening {}: {err}", path.display()))?;
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        read_exact_at(&*file, &mut h, 0)
            .map_err(|err| format!("reading {}: {err}", path.display()))?;
        let header: SegmentHeader = match SegmentHeader::decode(&h) {
            HeaderRead::Valid(h) if h.first_epoch == first => h,
            other => {
                return Err(format!(
                    "{}: segment header unreadable for the archiver ({other:?})",
                    path.display()
                ))
            }
        };
        *cursor = Some(Cursor {
            path: path.clone(),
            file,
            ident: header.ident(),
            off: DATA_OFFSET,
            next: first,
        });
    }
    let c = cursor.as_mut().expect("set above");
    loop {
        let mut win = vec![0u8; CERT_MAX_LEN];
        let n = read_exact_at(&*c.file, &mut win, c.off)?;
        win.truncate(n);
        let at_eof = n < CERT_MAX_LEN;
        let (hlen, blen) = match parse_header(&win, at_eof || n == 0, &c.ident) {
            Header::Plausible {
                header_len,
                body_len,
            } => (header_len, body_len),
            other => {
                return Err(format!(
                    "{} at offset {}: no frame of epoch {} ({other:?})",
                    c.path.display(),
                    c.off,
                    c.next
                ))
            }
        };
        let frame_len = (hlen + blen) as u64;
        if c.next < e {
            c.off += frame_len;
            c.next += 1;
            continue;
        }
        let mut frame = vec![0u8; if with_body { hlen + blen } else { hlen }];
        let got = read_exact_at(&*c.file, &mut frame, c.off)?;
        if got < frame.len() {
            return Err(format!(
                "{} at offset {}: the frame of epoch {e} is cut short",
                c.path.display(),
                c.off
            ));
        }
        let cert = if with_body {
            let (cert, _) = validate_frame(&frame[..hlen], &frame[hlen..], &c.ident)
                .map_err(|why| format!("{} at offset {}: {why}", c.path.display(), c.off))?;
            cert
        } else {
            match crate::epoch::decode_certificate(&frame, &c.ident) {
                Some(cert) => cert,
                None => {
                    return Err(format!(
                        "{} at offset {}: unreadable certificate",
                        c.path.display(),
                        c.off
                    ))
                }
            }
        };
        if cert.epoch != e {
            return Err(format!(
                "{} at offset {}: epoch {} where {e} was expected",
                c.path.display(),
                c.off,
                cert.epoch
            ));
        }
        c.off += frame_len;
        c.next = e + 1;
        let body = if with_body {
            frame.split_off(hlen)
        } else {
            Vec::new()
        };
        return Ok(LocalEpoch {
            epoch: ArchivedEpoch {
                epoch: e,
                durable_unix_ns: 0,
                first_commit_seq: cert.first_commit_seq,
                last_commit_seq: cert.last_commit_seq,
                db_size_pages: cert.db_size_pages,
                txn_count: cert.txn_count,
                page_set_size: cert.page_set_size,
                body,
            },
            frame_len,
        });
    }
}
