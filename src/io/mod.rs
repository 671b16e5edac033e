//! All file I/O of pwal goes through the [`Vfs`] trait, so that tests can run
//! the engine over [`sim::SimVfs`], a simulated file system that remembers
//! what was synced, crashes on demand and injects I/O errors, without any
//! change to the engine.

use std::any::Any;
use std::io;
use std::path::Path;

pub mod real;
pub mod sim;

pub use real::RealVfs;
pub use sim::SimVfs;

/// An open file. Positional I/O only: the engine tracks offsets itself.
pub trait VfsFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns the count read
    /// (short only at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes every byte of `bufs`, in order, starting at `offset`; an error
    /// means an unknown prefix may have been written.
    fn write_all_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()>;
    /// `fdatasync`: file data and the metadata needed to read it back.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A file system.
pub trait Vfs: Send + Sync {
    /// Opens `path` for reading and writing, creating it when `create` is set.
    /// Never truncates.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>>;
    /// Opens `path` read-only.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (files only, no `.`/`..`).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of a directory (creations, renames, removals)
    /// durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// Makes the file's dirty pages durable (`fdatasync`), then evicts the
    /// file from the page cache, so that the next read of it comes from the
    /// disk. For a file whose durability is in doubt (its last sync failed,
    /// or the process that wrote it died before syncing) before scanning it:
    /// after a failed writeback Linux leaves the unwritten pages cached and
    /// marked clean, so a read shows bytes that are not on the disk and that
    /// no later sync will write. The eviction happens even when the sync
    /// fails, whose error is then returned.
    fn drop_cache(&self, path: &Path) -> io::Result<()>;
    /// Evicts the file's clean pages from the page cache without syncing or
    /// writing anything, so that the next read of them comes from the disk:
    /// a page whose writeback failed is marked clean although the disk never
    /// got it, and is evicted with the others. Dirty pages stay (they are
    /// still on their way to the disk). For readers that must write nothing
    /// (recovery) yet must not report bytes that are not on the disk.
    fn evict_cache(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive, process-wide lock on `path` (creating the file);
    /// the lock lasts as long as the returned guard. Fails with
    /// `ErrorKind::WouldBlock` when another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
    /// Distinguishes file systems in the registry of open logs: paths of two
    /// simulated file systems never name the same log.
    fn instance_id(&self) -> usize {
        0
    }
    /// The path that names `path` in the registry of open logs.
    fn canonical(&self, path: &Path) -> std::path::PathBuf {
        path.to_path_buf()
    }
}
