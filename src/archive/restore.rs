//! Reading an archive: verify its chain, list it, and restore a log from
//! it that `recover` replays as usual.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::epoch::{validate_frame, Certificate, SegmentIdent, CERT_MAX_LEN};
use crate::error::{Error, Result};
use crate::segment::{new_salt, segment_name, SegmentHeader, DATA_OFFSET};

use super::backend::{self, Backend};
use super::object::{self, ArchivedEpoch, PrevLink};
use super::state;

/// Which state to restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Every archived epoch.
    Latest,
    /// Every archived epoch up to this one.
    Epoch(u64),
    /// Every archived epoch that became durable at or before this time
    /// (nanoseconds since the Unix epoch): the prefix of epochs whose
    /// recorded durable time is not after it.
    Time(u64),
}

/// One object of an archive, as listed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub name: String,
    pub first_epoch: u64,
    pub last_epoch: u64,
    pub bytes: u64,
    pub crc: u32,
    /// When its first and last epochs became durable (ns since the Unix
    /// epoch).
    pub first_time_ns: u64,
    pub last_time_ns: u64,
    pub prev: Option<PrevLink>,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Every object that decodes, in epoch order.
    pub objects: Vec<ListedObject>,
    /// Each problem found: a checksum, a gap, a fork, a broken link. Empty
    /// when the archive is clean.
    pub problems: Vec<String>,
    /// Names in the store that are not objects (ignored).
    pub other_names: Vec<String>,
    /// Each epoch's durable time, in epoch order from the first object's
    /// first epoch (for a time target).
    pub(crate) times: Vec<(u64, u64)>,
}

/// The record CRCs of a frame body, in body order (each record starts with
/// its CRC, then its length).
fn record_crcs(body: &[u8]) -> std::result::Result<Vec<u32>, String> {
    let mut crcs = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let mut r = crate::varint::Reader::new(&body[at..]);
        let crc = r.fixed32().map_err(|_| "record cut short".to_string())?;
        let len = r
            .var("record length", u64::MAX)
            .map_err(|_| "record length unreadable".to_string())?;
        let total = r.pos() as u64 + len;
        if total > (body.len() - at) as u64 {
            return Err("record runs past the body".into());
        }
        crcs.push(crc);
        at += total as usize;
    }
    Ok(crcs)
}

/// Encodes epoch `e` as a frame of the segment `ident`, and checks it the
/// way recovery will (every record's CRC, counts, bounds). `mark`: the
/// checkpoint mark the frame carries.
fn frame_of(
    e: &ArchivedEpoch,
    ident: &SegmentIdent,
    mark: u64,
) -> std::result::Result<Vec<u8>, String> {
    let crcs = record_crcs(&e.body)?;
    let cert = Certificate {
        segment: *ident,
        epoch: e.epoch,
        first_commit_seq: e.first_commit_seq,
        last_commit_seq: e.last_commit_seq,
        body_len: e.body.len() as u32,
        txn_count: e.txn_count,
        db_size_pages: e.db_size_pages,
        page_set_size: e.page_set_size,
        synced_through: e.epoch - 1,
        checkpoint_epoch: mark,
    };
    let header = cert.encode(&[&crcs]);
    validate_frame(&header, &e.body, ident)?;
    let mut f = header;
    f.extend_from_slice(&e.body);
    Ok(f)
}

fn store_error(msg: String) -> Error {
    Error::io("archive", std::io::Error::other(msg))
}

/// Lists and checks every object of the archive at `url`: each checksum,
/// each frame, and the chain (each object starts right after the one
/// before and names it and its checksum). An unreachable store is an
/// error; damage is in the report's `problems`.
pub fn verify(url: &str) -> Result<VerifyReport> {
    let store = backend::open(url).map_err(Error::Invalid)?;
    scan(&*store)
}

/// [`verify`]'s listing.
pub fn list(url: &str) -> Result<VerifyReport> {
    verify(url)
}

fn scan(store: &dyn Backend) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let mut named: Vec<(u64, String)> = Vec::new();
    for n in store.list().map_err(store_error)? {
        match object::parse_object_name(&n) {
            Some(first) => named.push((first, n)),
            None => rep.other_names.push(n),
        }
    }
    named.sort();
    let mut prev: Option<ListedObject> = None;
    for (first, name) in named {
        let Some(bytes) = store.get(&name).map_err(store_error)? else {
            rep.problems.push(format!("{name}: listed but missing"));
            continue;
        };
        let o = match object::decode(&bytes, first) {
            Ok(o) => o,
            Err(why) => {
                rep.problems.push(format!("{name}: {why}"));
                continue;
            }
        };
        for e in &o.epochs {
            // Each epoch checked as the first frame of a segment of its own.
            let ident = SegmentIdent {
                id: 1,
                salt: 1,
                first_epoch: e.epoch,
            };
            if let Err(why) = frame_of(e, &ident, 0) {
                rep.problems.push(format!(
                    "{name}: epoch {} is not a valid frame: {why}",
                    e.epoch
                ));
            }
        }
        let listed = ListedObject {
            name: name.clone(),
            first_epoch: o.first_epoch,
            last_epoch: o.last_epoch,
            bytes: bytes.len() as u64,
            crc: o.crc,
            first_time_ns: o.epochs.first().map_or(0, |e| e.durable_unix_ns),
            last_time_ns: o.epochs.last().map_or(0, |e| e.durable_unix_ns),
            prev: o.prev,
        };
        match &prev {
            None => {
                if let Some(p) = o.prev {
                    rep.problems.push(format!(
                        "{name}: follows an object holding epochs {}..={} that is not in the archive",
                        p.first_epoch, p.last_epoch
                    ));
                }
            }
            Some(p) => {
                let want = PrevLink {
                    first_epoch: p.first_epoch,
                    last_epoch: p.last_epoch,
                    crc: p.crc,
                };
                if o.first_epoch <= p.last_epoch {
                    rep.problems.push(format!(
                        "fork: {name} holds epochs {}..={}, which {} holds already (..={})",
                        o.first_epoch, o.last_epoch, p.name, p.last_epoch
                    ));
                } else if o.first_epoch > p.last_epoch + 1 {
                    rep.problems.push(format!(
                        "gap: epochs {}..={} are missing between {} and {name}",
                        p.last_epoch + 1,
                        o.first_epoch - 1,
                        p.name
                    ));
                } else if o.prev != Some(want) {
                    rep.problems.push(format!(
                        "{name} does not follow {} (it names {:?}; {} is {:?})",
                        p.name, o.prev, p.name, want
                    ));
                }
            }
        }
        if prev
            .as_ref()
            .is_none_or(|p| o.first_epoch == p.last_epoch + 1)
        {
            rep.times
                .extend(o.epochs.iter().map(|e| (e.epoch, e.durable_unix_ns)));
        }
        rep.objects.push(listed.clone());
        prev = Some(listed);
    }
    Ok(rep)
}

/// What [`restore`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The log directory written (`<db_path>-pwal`).
    pub dir: PathBuf,
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// When the last restored epoch became durable (ns since the Unix epoch).
    pub last_time_ns: u64,
    pub objects: u64,
    pub segments: u64,
    pub bytes: u64,
    /// The restore reached the archive's end: the state file was written,
    /// so a log opened there with the same archive URL continues the chain.
    pub continues_archive: bool,
}

/// The largest a restored segment grows before the next one starts.
const RESTORED_SEGMENT_BYTES: u64 = crate::config::DEFAULT_SEGMENT_BYTES;

struct SegWriter {
    dir: PathBuf,
    file: Option<(std::fs::File, PathBuf)>,
    ident: SegmentIdent,
    off: u64,
    next_id: u64,
    segments: u64,
}

impl SegWriter {
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some((f, _)) = self.file.take() {
            f.sync_all()?;
        }
        Ok(())
    }

    fn start(&mut self, first_epoch: u64, log_start: u64) -> std::io::Result<()> {
        self.finish()?;
        let id = self.next_id;
        self.next_id += 1;
        let path = self.dir.join(segment_name(id));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let h = SegmentHeader {
            id,
            salt: new_salt(),
            first_epoch,
            log_start_epoch: log_start,
        };
        f.write_all_at(&h.encode(), 0)?;
        self.ident = h.ident();
        self.off = DATA_OFFSET;
        self.file = Some((f, path));
        self.segments += 1;
        Ok(())
    }
}

/// Restores the log of the database at `db_path` (the directory
/// `<db_path>-pwal`) from the archive at `url`: every archived epoch up to
/// `target`, with its epoch number, whatever checkpoints the archived log
/// had made, so that [`recover`](crate::recover) replays them all. The
/// chain is verified first (every object, up to the archive's end): a
/// damaged, missing or forked object fails with
/// [`Error::ArchiveDamaged`] before anything is written. An existing log
/// directory is refused unless `force`, which replaces it (refused while a
/// process has that log open).
pub fn restore(
    url: &str,
    db_path: impl AsRef<Path>,
    target: RestoreTarget,
    force: bool,
) -> Result<RestoreReport> {
    let store = backend::open(url).map_err(Error::Invalid)?;
    let dir = crate::log_dir(db_path.as_ref());
    let existing = std::fs::read_dir(&dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if existing && !force {
        return Err(Error::invalid(format!(
            "{} exists and is not empty: restore replaces a log only when forced (--force)",
            dir.display()
        )));
    }
    let rep = scan(&*store)?;
    if !rep.problems.is_empty() {
        return Err(Error::ArchiveDamaged(format!(
            "{url}: {}",
            rep.problems.join("; ")
        )));
    }
    let (Some(first_obj), Some(last_obj)) = (rep.objects.first(), rep.objects.last()) else {
        return Err(Error::invalid(format!(
            "{url}: the archive holds no object"
        )));
    };
    let first = first_obj.first_epoch;
    let archive_last = last_obj.last_epoch;
    let last = match target {
        RestoreTarget::Latest => archive_last,
        RestoreTarget::Epoch(n) => {
            if n < first || n > archive_last {
                return Err(Error::invalid(format!(
                    "epoch {n} is not in the archive, which holds epochs {first}..={archive_last}"
                )));
            }
            n
        }
        RestoreTarget::Time(t) => {
            let mut last = 0;
            for &(e, ns) in &rep.times {
                if ns > t {
                    break;
                }
                last = e;
            }
            if last == 0 {
                return Err(Error::invalid(format!(
                    "no archived epoch became durable at or before {} (the first did at {})",
                    super::time::format_rfc3339(t),
                    super::time::format_rfc3339(first_obj.first_time_ns)
                )));
            }
            last
        }
    };
    // Refuse while a process has the log open; hold the lock while writing.
    let lock_path = dir.join(crate::segment::LOCK_FILE);
    if existing {
        use crate::io::Vfs;
        let guard = crate::io::RealVfs
            .lock(&lock_path)
            .map_err(|e| Error::Locked(format!("{}: {e}", lock_path.display())))?;
        drop(guard);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut w = SegWriter {
        dir: dir.clone(),
        file: None,
        ident: SegmentIdent::default(),
        off: 0,
        next_id: 1,
        segments: 0,
    };
    let mut report = RestoreReport {
        dir: dir.clone(),
        first_epoch: first,
        last_epoch: last,
        ..RestoreReport::default()
    };
    let io = |what: String| move |e: std::io::Error| Error::io(what, e);
    for listed in rep.objects.iter().take_while(|o| o.first_epoch <= last) {
        let bytes = store
            .get(&listed.name)
            .map_err(store_error)?
            .ok_or_else(|| Error::ArchiveDamaged(format!("{url}: {} vanished", listed.name)))?;
        if object::trailer_crc(&bytes) != Some(listed.crc) {
            return Err(Error::ArchiveDamaged(format!(
                "{url}: {} changed during the restore",
                listed.name
            )));
        }
        let o = object::decode(&bytes, listed.first_epoch)
            .map_err(|why| Error::ArchiveDamaged(format!("{url}: {}: {why}", listed.name)))?;
        report.objects += 1;
        for e in o.epochs.iter().filter(|e| e.epoch <= last) {
            let need = (CERT_MAX_LEN + e.body.len()) as u64;
            if w.file.is_none() || (w.off > DATA_OFFSET && w.off + need > RESTORED_SEGMENT_BYTES) {
                w.start(e.epoch, first)
                    .map_err(io(format!("starting a segment in {}", dir.display())))?;
            }
            let frame = frame_of(e, &w.ident, first - 1).map_err(|why| {
                Error::ArchiveDamaged(format!("{url}: {}: epoch {}: {why}", listed.name, e.epoch))
            })?;
            let (f, path) = w.file.as_ref().expect("started above");
            f.write_all_at(&frame, w.off)
                .map_err(io(format!("writing {}", path.display())))?;
            w.off += frame.len() as u64;
            report.bytes += frame.len() as u64;
            report.last_time_ns = e.durable_unix_ns;
        }
    }
    w.finish()
        .map_err(io(format!("syncing the segments of {}", dir.display())))?;
    report.segments = w.segments;
    if last == archive_last {
        state::write(
            &crate::io::RealVfs,
            &dir,
            &state::Persisted {
                url: url.to_string(),
                archived_epoch: last,
                last_first_epoch: last_obj.first_epoch,
                last_crc: last_obj.crc,
            },
        )
        .map_err(io(format!(
            "writing the archive state in {}",
            dir.display()
        )))?;
        report.continues_archive = true;
    }
    let d = std::fs::File::open(&dir).map_err(io(format!("opening {}", dir.display())))?;
    d.sync_all()
        .map_err(io(format!("syncing {}", dir.display())))?;
    Ok(report)
}

/// What the log directory says of its archive (`pwal archive status`).
#[derive(Clone, Debug)]
pub struct PersistedStatus {
    /// The state file exists.
    pub archiving: bool,
    pub url: String,
    pub archived_epoch: u64,
    pub last_object: String,
    pub last_object_crc: u32,
    /// The last durable epoch the log holds (0: empty).
    pub local_last_epoch: u64,
    /// What the store says of the last object: `Ok` when it is there with
    /// the recorded checksum, else why not.
    pub store_check: std::result::Result<(), String>,
}

/// Reads the archive state of the log of `db_path` and checks it against
/// the store (without the log's lock: the engine may be running).
pub fn persisted_status(db_path: impl AsRef<Path>) -> Result<PersistedStatus> {
    let db_path = db_path.as_ref();
    let dir = crate::log_dir(db_path);
    let p = state::read(&crate::io::RealVfs, &dir)?;
    let mut rr = crate::RecoveryReport::default();
    let local_last_epoch = crate::inspect::inspect(db_path, &Default::default(), None, &mut rr)
        .map(|i| {
            i.listing
                .segments
                .iter()
                .filter_map(|s| s.epochs.map(|(_, l)| l))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let Some(p) = p else {
        return Ok(PersistedStatus {
            archiving: false,
            url: String::new(),
            archived_epoch: 0,
            last_object: String::new(),
            last_object_crc: 0,
            local_last_epoch,
            store_check: Err("nothing archived yet (no state file)".into()),
        });
    };
    let name = object::object_name(p.last_first_epoch);
    let store_check = backend::open(&p.url).and_then(|s| match s.get(&name)? {
        None => Err(format!("{name} is missing from the store")),
        Some(b) => match object::decode(&b, p.last_first_epoch) {
            Ok(o) if o.crc == p.last_crc && o.last_epoch == p.archived_epoch => Ok(()),
            Ok(o) => Err(format!(
                "{name} in the store is another object (checksum {:08x}, epochs {}..={})",
                o.crc, o.first_epoch, o.last_epoch
            )),
            Err(why) => Err(format!("{name}: {why}")),
        },
    });
    Ok(PersistedStatus {
        archiving: true,
        url: p.url,
        archived_epoch: p.archived_epoch,
        last_object: name,
        last_object_crc: p.last_crc,
        local_last_epoch,
        store_check,
    })
}
