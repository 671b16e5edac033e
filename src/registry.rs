//! The process-wide registry of open logs: a second open of a log in this
//! process shares the first one's coordinator, because two coordinators would
//! each take the file lock and write their own segments.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{Resolved, SyncPolicy};
use crate::error::{Error, Result};
use crate::io::Vfs;
use crate::log::Shared;
use crate::segment::LOCK_FILE;

struct OpenLog {
    vfs_id: usize,
    dir: PathBuf,
    shared: Arc<Shared>,
    handles: usize,
}

/// The logs open in this process.
static REGISTRY: Mutex<Vec<OpenLog>> = Mutex::new(Vec::new());

fn registry_key(vfs: &dyn Vfs, dir: &Path) -> (usize, PathBuf) {
    (vfs.instance_id(), vfs.canonical(dir))
}

/// Takes the log's lock for a reader, unless this process has the log open.
pub(crate) fn lock_for_reading(
    vfs: &dyn Vfs,
    dir: &Path,
) -> Result<Option<Box<dyn Any + Send + Sync>>> {
    let (id, key) = registry_key(vfs, dir);
    let reg = REGISTRY.lock();
    if reg.iter().any(|o| o.vfs_id == id && o.dir == key) {
        return Ok(None);
    }
    take_lock(vfs, dir).map(Some)
}

fn take_lock(vfs: &dyn Vfs, dir: &Path) -> Result<Box<dyn Any + Send + Sync>> {
    let path = dir.join(LOCK_FILE);
    vfs.lock(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::Locked(format!(
                "{} is held by another process (one writer process per log)",
                path.display()
            ))
        } else {
            Error::io(format!("locking {}", path.display()), e)
        }
    })
}

/// Opens the log in directory `dir`: shares the coordinator of this process's
/// open log there, or takes the file lock and starts one with `start`.
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
    let mut reg = REGISTRY.lock();
    vfs.create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let (vfs_id, key) = registry_key(&*vfs, &dir);
    if let Some(o) = reg.iter_mut().find(|o| o.vfs_id == vfs_id && o.dir == key) {
        if o.shared.poisoned.load(Ordering::Acquire) {
            return Err(o.shared.poisoned_error());
        }
        o.handles += 1;
        return Ok(o.shared.clone());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        if cfg.sync != SyncPolicy::Off {
            vfs.sync_dir(parent)
                .map_err(|e| Error::io(format!("syncing directory {}", parent.display()), e))?;
        }
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

/// Gives back one handle of `shared`; the last one shuts the log down.
pub(crate) fn close(shared: &Arc<Shared>) -> Result<()> {
    let mut reg = REGISTRY.lock();
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
