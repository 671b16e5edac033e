//! The process-wide registry of open logs, and what keeps it honest across
//! `fork()`.
//!
//! A second open of a log in this process shares the first one's
//! coordinator, because two coordinators would each take the file lock and
//! write their own segments; it must ask for the same options (see
//! [`differing_option`]).
//!
//! A child created by `fork()` (without exec) inherits the registry, every
//! coordinator, and pwal's descriptors, but none of the threads. Nothing
//! inherited is usable there: the parent goes on writing the same files. So
//! the child handler of `pthread_atfork` bumps [`FORK_GENERATION`] (every
//! coordinator records the generation it was opened in, and a handle whose
//! coordinator is of an older generation refuses every call), and points
//! pwal's descriptors at `/dev/null` (so an idle child does not keep the
//! parent's `flock` alive; the parent handler waits for the child to have
//! done so, see `io::real::fork_prepare`). Registry entries of an older generation are
//! never shared or trusted: an open in the child takes the file lock like any
//! other process, and gets `Locked` while the parent holds the log.
//! Inherited coordinators are never dropped in the child (their threads, and
//! the memory those own, do not exist there): they are leaked.

use std::any::Any;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::config::{Mode, Resolved, SyncPolicy};
use crate::coordinator::Shared;
use crate::error::{Error, Result};
use crate::io::real::{self, LockGuard};
use crate::io::Vfs;
use crate::segment::LOCK_FILE;

struct OpenLog {
    vfs_id: usize,
    dir: PathBuf,
    shared: Arc<Shared>,
    handles: usize,
}

/// The logs open in this process. A `std` mutex, not a `parking_lot` one:
/// the fork child handler releases it, and only the plain futex unlock of
/// `std` is safe there.
static REGISTRY: Mutex<Vec<OpenLog>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<OpenLog>> {
    // A panic while holding it (a failed allocation) leaves the entries
    // consistent: each is pushed or removed whole.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many `fork()`s separate this process from the first process that
/// used pwal: bumped in the child. Read on every call on a handle (one
/// relaxed load; the child's bump happens-before every later call in the
/// child, since it runs before `fork` returns there and before any thread of
/// the child exists).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The generation a coordinator opened now records.
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// True when `shared` was opened by an ancestor of this process (before a
/// `fork()`): its threads, its lock and its files belong to that process.
#[inline]
pub(crate) fn inherited(shared: &Shared) -> bool {
    shared.fork_generation != fork_generation()
}

/// The error of every call on a handle inherited across `fork()`.
pub(crate) fn forked_error() -> Error {
    Error::Forked(
        "this handle was opened before fork() and is inherited from the parent process, which \
         still owns the log: nothing was written or flushed; close the handle (that frees only \
         this process's copy) and open the log again in this process if needed"
            .into(),
    )
}

thread_local! {
    /// The registry lock, held by the forking thread from the prepare handler
    /// to the parent or child handler.
    static HELD: RefCell<Option<MutexGuard<'static, Vec<OpenLog>>>> = const { RefCell::new(None) };
}

extern "C" fn fork_prepare() {
    // Registry first, then the descriptor table: the order `open` takes them.
    let guard = registry();
    let _ = HELD.try_with(|h| *h.borrow_mut() = Some(guard));
    real::fork_prepare();
}

extern "C" fn fork_parent() {
    real::fork_parent();
    let _ = HELD.try_with(|h| h.borrow_mut().take());
}

/// Async-signal-safe: an atomic add, `dup3`s and futex unlocks.
extern "C" fn fork_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    real::fork_child();
    let _ = HELD.try_with(|h| h.borrow_mut().take());
}

/// Registers the fork handlers, once per process, before the first log or
/// lock is taken.
fn install_fork_handlers() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            real::prepare_fork_handling().map_err(|e| {
                format!("opening /dev/null (to detach pwal's files in a fork()ed child): {e}")
            })?;
            // SAFETY: the three handlers are `extern "C"` functions with no
            // arguments that never unwind (nothing in them panics) and live
            // for the whole process.
            let r = unsafe {
                libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child))
            };
            if r != 0 {
                return Err(format!(
                    "pthread_atfork: {}",
                    std::io::Error::from_raw_os_error(r)
                ));
            }
            Ok(())
        })
        .clone()
        .map_err(|m| Error::io(m, std::io::Error::other("fork handlers not installed")))
}

fn registry_key(vfs: &dyn Vfs, dir: &Path) -> (usize, PathBuf) {
    (vfs.instance_id(), vfs.canonical(dir))
}

/// The entry of this process (not one inherited across `fork()`) for `key`.
fn find(reg: &mut [OpenLog], vfs_id: usize, key: &Path) -> Option<usize> {
    reg.iter()
        .position(|o| o.vfs_id == vfs_id && o.dir == key && !inherited(&o.shared))
}

/// Takes the log's lock for a reader, unless this process has the log open.
pub(crate) fn lock_for_reading(vfs: &dyn Vfs, dir: &Path) -> Result<Reading> {
    install_fork_handlers()?;
    let (id, key) = registry_key(vfs, dir);
    let mut reg = registry();
    if let Some(i) = find(&mut reg, id, &key) {
        return Ok(Reading::Beside(reg[i].shared.clone()));
    }
    take_lock(vfs, dir).map(Reading::Locked)
}

/// How a reader of a log holds it: with the log's lock (no writer), or
/// beside this process's own open log, whose coordinator it gets.
pub(crate) enum Reading {
    Locked(#[allow(dead_code)] Box<dyn Any + Send + Sync>),
    Beside(Arc<Shared>),
}

fn take_lock(vfs: &dyn Vfs, dir: &Path) -> Result<Box<dyn Any + Send + Sync>> {
    let path = dir.join(LOCK_FILE);
    let guard = vfs.lock(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::Locked(format!(
                "{} is held by another process (one writer process per log)",
                path.display()
            ))
        } else {
            Error::io(format!("locking {}", path.display()), e)
        }
    })?;
    if let Some(lock) = guard.downcast_ref::<LockGuard>() {
        check_local_file_system(lock, &path)?;
    }
    Ok(guard)
}

thread_local! {
    /// Test hook: the file system type the next real lock on this thread is
    /// taken to be on.
    static INJECTED_FS_TYPE: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Test hook: makes the `statfs` file system type of every real log lock
/// taken on this thread `f_type` (until called with `None`), to test the
/// refusal of network file systems without mounting one.
#[doc(hidden)]
pub fn debug_inject_fs_type(f_type: Option<u32>) {
    INJECTED_FS_TYPE.with(|t| t.set(f_type));
}

/// File systems whose `flock` does not exclude a process on another host
/// (NFS, SMB/CIFS and the like emulate it, or keep it local to one client):
/// two writers could append to the same log. `statfs` `f_type` values from
/// Linux's `magic.h`.
const NETWORK_FILE_SYSTEMS: &[(u32, &str)] = &[
    (0x6969, "NFS"),
    (0x517b, "SMB"),
    (0xff53_4d42, "CIFS"),
    (0xfe53_4d42, "SMB2"),
    (0x5346_414f, "AFS"),
    (0x6b41_4653, "AFS (kAFS)"),
    (0x7375_7245, "Coda"),
    (0x0102_1997, "9P"),
    (0x564c, "NCP"),
    (0x0bd0_0bd0, "Lustre"),
];

/// `None` for a local file system, or the name of a network one.
pub(crate) fn network_file_system(f_type: u32) -> Option<&'static str> {
    NETWORK_FILE_SYSTEMS
        .iter()
        .find(|(t, _)| *t == f_type)
        .map(|(_, name)| *name)
}

fn check_local_file_system(lock: &LockGuard, path: &Path) -> Result<()> {
    let f_type = match INJECTED_FS_TYPE.with(|t| t.get()) {
        Some(t) => t,
        None => {
            // SAFETY: an all-zero `statfs` is a valid value of this plain C
            // struct of integers.
            let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
            // SAFETY: the descriptor is open (the guard owns it) and `buf` is
            // a writable `statfs`.
            if unsafe { libc::fstatfs(lock.raw_fd(), &mut buf) } != 0 {
                return Err(Error::io(
                    format!("statfs of {}", path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
            // f_type is a signed word of varying width; the magic numbers
            // are 32-bit.
            buf.f_type as u32
        }
    };
    match network_file_system(f_type) {
        None => Ok(()),
        Some(name) => Err(Error::invalid(format!(
            "{} is on a {name} file system (statfs type {f_type:#x}), where flock() does not \
             keep a second writer on another host out: pwal supports local file systems only",
            path.display()
        ))),
    }
}

fn sync_name(s: SyncPolicy) -> &'static str {
    match s {
        SyncPolicy::Full => "full",
        SyncPolicy::Normal => "normal",
        SyncPolicy::Off => "off",
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Auto => "auto",
        Mode::Conservative => "conservative",
        Mode::ShadowCompare => "shadow_compare",
    }
}

fn us(d: Duration) -> u128 {
    d.as_micros()
}

/// The first option (after defaults and the environment) in which `asked`
/// differs from the open log's `open`, as "name: asked X, the open log has
/// Y". A second open shares the open log, so an option it could not have
/// would be silently ignored. Every field counts: `sync` (durability), `mode`
/// and `lanes` (how writers map to lanes), `segment_bytes` (file layout),
/// `max_batch_bytes` and `max_flush_delay` (when epochs seal, so how long a
/// submitted batch waits and, under `normal`/`off`, stays only in memory),
/// and `shadow_compare_per_mille` when the mode is shadow-compare (it has no
/// effect otherwise).
pub(crate) fn differing_option(open: &Resolved, asked: &Resolved) -> Option<String> {
    let field =
        |name: &str, a: String, o: String| Some(format!("{name}: asked {a}, the open log has {o}"));
    if asked.sync != open.sync {
        return field(
            "sync",
            sync_name(asked.sync).into(),
            sync_name(open.sync).into(),
        );
    }
    if asked.mode != open.mode {
        return field(
            "mode",
            mode_name(asked.mode).into(),
            mode_name(open.mode).into(),
        );
    }
    if asked.lanes != open.lanes {
        return field("lanes", asked.lanes.to_string(), open.lanes.to_string());
    }
    if asked.segment_bytes != open.segment_bytes {
        return field(
            "segment_bytes",
            asked.segment_bytes.to_string(),
            open.segment_bytes.to_string(),
        );
    }
    if asked.max_batch_bytes != open.max_batch_bytes {
        return field(
            "max_batch_bytes",
            asked.max_batch_bytes.to_string(),
            open.max_batch_bytes.to_string(),
        );
    }
    if asked.max_flush_delay != open.max_flush_delay {
        return field(
            "max_flush_delay_us",
            us(asked.max_flush_delay).to_string(),
            us(open.max_flush_delay).to_string(),
        );
    }
    // archive: one log archives to one place, one way.
    if asked.archive != open.archive {
        let show = |a: &Option<crate::archive::settings::ArchiveConfig>| match a {
            None => "no archive".to_string(),
            Some(c) => format!(
                "{} (max lag {} bytes, durable {})",
                c.url, c.max_lag_bytes, c.durable as u8
            ),
        };
        return field("archive", show(&asked.archive), show(&open.archive));
    }
    if open.mode == Mode::ShadowCompare
        && asked.shadow_compare_per_mille != open.shadow_compare_per_mille
    {
        return field(
            "shadow_compare_per_mille",
            asked.shadow_compare_per_mille.to_string(),
            open.shadow_compare_per_mille.to_string(),
        );
    }
    None
}

/// Opens the log in directory `dir`: shares the coordinator of this process's
/// open log there (when `cfg` matches its options), or takes the file lock
/// and starts one with `start`.
pub(crate) fn open(
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    cfg: Resolved,
    start: impl FnOnce(
        PathBuf,
        Arc<dyn Vfs>,
        Resolved,
        Box<dyn Any + Send + Sync>,
    ) -> Result<Arc<Shared>>,
) -> Result<Arc<Shared>> {
    install_fork_handlers()?;
    let mut reg = registry();
    // The log directory is created, never the database's own directory: a
    // path under a directory that does not exist is a mistake (a typo, a
    // volume not mounted), and creating it would hide that.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !vfs.exists(parent) {
            return Err(Error::io(
                format!(
                    "the database's directory {} does not exist (pwal creates only {})",
                    parent.display(),
                    dir.display()
                ),
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
    }
    vfs.create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let (vfs_id, key) = registry_key(&*vfs, &dir);
    if let Some(i) = find(&mut reg, vfs_id, &key) {
        let o = &mut reg[i];
        if o.shared.poisoned.load(Ordering::Acquire) {
            return Err(o.shared.poisoned_error());
        }
        if let Some(diff) = differing_option(&o.shared.cfg, &cfg) {
            return Err(Error::invalid(format!(
                "{} is already open in this process with other options, and a second open \
                 shares the open log: {diff}",
                dir.display()
            )));
        }
        o.handles += 1;
        return Ok(o.shared.clone());
    }
    // The log directory's own entry is made durable whatever the policy:
    // `flush` and `checkpoint` promise durability under `off` too, and the
    // directory is created once.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        vfs.sync_dir(parent)
            .map_err(|e| Error::io(format!("syncing directory {}", parent.display()), e))?;
    }
    let lock = take_lock(&*vfs, &dir)?;
    let shared = start(dir, vfs, cfg, lock)?;
    reg.push(OpenLog {
        vfs_id,
        dir: key,
        shared: shared.clone(),
        handles: 1,
    });
    Ok(shared)
}

/// Gives back one handle of `shared`; the last one shuts the log down. A
/// handle inherited across `fork()` gives back nothing: its coordinator is
/// the parent's, whose threads do not exist here, so it is neither shut down
/// nor dropped (leaked), and the call fails with `Forked`.
pub(crate) fn close(shared: &Arc<Shared>) -> Result<()> {
    if inherited(shared) {
        std::mem::forget(shared.clone());
        return Err(forked_error());
    }
    let mut reg = registry();
    let pos = reg
        .iter()
        .position(|o| Arc::ptr_eq(&o.shared, shared))
        .ok_or_else(|| Error::Internal("open log missing from the registry".into()))?;
    reg[pos].handles -= 1;
    if reg[pos].handles > 0 {
        return Ok(());
    }
    reg.remove(pos);
    // Shut down while holding the registry, so that a concurrent reopen of
    // the same log waits for the lock to be released.
    shared.shutdown()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    #[test]
    fn network_file_systems_are_named_and_local_ones_pass() {
        assert_eq!(network_file_system(0x6969), Some("NFS"));
        assert_eq!(network_file_system(0xff53_4d42), Some("CIFS"));
        assert_eq!(network_file_system(0xef53), None, "ext4");
        assert_eq!(network_file_system(0x5846_5342), None, "xfs");
        assert_eq!(network_file_system(0x0102_1994), None, "tmpfs");
    }

    fn resolved(f: impl FnOnce(&mut Options)) -> Resolved {
        let mut o = Options {
            use_env: false,
            lanes: 4,
            ..Options::default()
        };
        f(&mut o);
        o.resolve().unwrap()
    }

    #[test]
    fn identical_options_match_and_each_field_is_named() {
        let base = resolved(|_| {});
        assert_eq!(differing_option(&base, &resolved(|_| {})), None);
        let cases: [(&str, Resolved); 6] = [
            (
                "sync: asked normal, the open log has full",
                resolved(|o| o.sync = SyncPolicy::Normal),
            ),
            (
                "mode: asked conservative",
                resolved(|o| o.mode = Mode::Conservative),
            ),
            (
                "lanes: asked 8, the open log has 4",
                resolved(|o| o.lanes = 8),
            ),
            (
                "segment_bytes: asked 1048576",
                resolved(|o| o.segment_bytes = 1 << 20),
            ),
            (
                "max_batch_bytes: asked 65536",
                resolved(|o| o.max_batch_bytes = 1 << 16),
            ),
            (
                "max_flush_delay_us: asked 500, the open log has 2000",
                resolved(|o| o.max_flush_delay = Duration::from_micros(500)),
            ),
        ];
        for (want, asked) in cases {
            let got = differing_option(&base, &asked).expect(want);
            assert!(
                got.starts_with(want),
                "{got:?} does not start with {want:?}"
            );
        }
        // The per-mille share exists only in shadow-compare mode (another
        // mode with a share is refused before any comparison).
        let s = resolved(|o| o.mode = Mode::ShadowCompare);
        let t = resolved(|o| {
            o.mode = Mode::ShadowCompare;
            o.shadow_compare_per_mille = 5
        });
        assert!(differing_option(&s, &t)
            .unwrap()
            .starts_with("shadow_compare_per_mille"));
    }
}
