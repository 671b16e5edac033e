//! The real file system: `std::fs` plus `pwritev` and `fdatasync`.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{Vfs, VfsFile};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealVfs;

struct RealFile {
    file: Tracked,
}

/// Every descriptor pwal has open on a log file (segments, spares and
/// `LOCK`), so that a `fork()`ed child can detach from them: a child that
/// kept the parent's open file descriptions would keep the parent's `flock`
/// alive after the parent closed the log. A `std` mutex, not a
/// `parking_lot` one, because the child releases it from its `pthread_atfork`
/// handler, where only the plain futex unlock of `std` is safe (no parking
/// table that another, now vanished, thread may have held).
static OWNED_FDS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn owned_fds() -> MutexGuard<'static, Vec<RawFd>> {
    // The table holds plain integers, consistent whatever panicked.
    OWNED_FDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file whose descriptor is in [`OWNED_FDS`] for as long as it is open.
/// The table lock is held across the `open` and the `close`, so that a
/// `fork()` (whose prepare handler takes it) never sees a pwal descriptor
/// missing from the table, nor a closed number that another part of the
/// process may already have reused.
struct Tracked(Option<File>);

impl Tracked {
    fn open(options: &OpenOptions, path: &Path) -> io::Result<Tracked> {
        let mut fds = owned_fds();
        let file = options.open(path)?;
        fds.push(file.as_raw_fd());
        Ok(Tracked(Some(file)))
    }

    fn file(&self) -> &File {
        // Only `drop` takes the file out.
        self.0
            .as_ref()
            .expect("a tracked file is open until dropped")
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut fds = owned_fds();
        if let Some(file) = self.0.take() {
            let fd = file.as_raw_fd();
            if let Some(i) = fds.iter().position(|&f| f == fd) {
                fds.swap_remove(i);
            }
            drop(file);
        }
    }
}

/// The guard of a `LOCK` file from [`RealVfs::lock`]: the `flock` lasts
/// until it is dropped.
pub(crate) struct LockGuard(Tracked);

impl LockGuard {
    /// The descriptor the lock is held on (to ask which file system it is on).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.0.file().as_raw_fd()
    }
}

/// `/dev/null`, opened once before the first fork handler can run: the child
/// handler `dup`s it over pwal's descriptors, and opening it there could fail.
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);

/// Opens `/dev/null` for [`fork_child`]. Called once, before the fork
/// handlers are registered.
pub(crate) fn prepare_fork_handling() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")?;
    DEV_NULL.store(null.into_raw_fd(), Ordering::Release);
    Ok(())
}

thread_local! {
    /// The table lock, held by the forking thread from the prepare handler
    /// to the parent or child handler.
    static HELD: std::cell::RefCell<Option<MutexGuard<'static, Vec<RawFd>>>> =
        const { std::cell::RefCell::new(None) };
}

/// The pipe of the fork handshake, from the prepare handler to the parent
/// and child handlers (guarded by the table lock the forking thread holds):
/// read end, write end; -1 when there is none.
static HANDSHAKE: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// `pthread_atfork` prepare: no pwal descriptor is opened or closed in
/// another thread while the process forks. When pwal has descriptors open,
/// also makes the pipe on which the child tells the parent it has let go of
/// them: the child handler runs in the child, concurrently with the parent,
/// so without the handshake a parent that closes and reopens its log right
/// after `fork()` could still find its `flock` held through the child's
/// not-yet-replaced copy.
pub(crate) fn fork_prepare() {
    let guard = owned_fds();
    if !guard.is_empty() {
        let mut p = [-1; 2];
        // SAFETY: `p` is a writable array of two descriptors, as pipe2 needs.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
            HANDSHAKE[0].store(p[0], Ordering::Relaxed);
            HANDSHAKE[1].store(p[1], Ordering::Relaxed);
        }
    }
    let _ = HELD.try_with(|h| *h.borrow_mut() = Some(guard));
}

/// `pthread_atfork` parent: waits until the child has replaced its copies of
/// pwal's descriptors (or has died, or the fork failed: either way the write
/// end closes), then releases the table.
pub(crate) fn fork_parent() {
    let (r, w) = (
        HANDSHAKE[0].swap(-1, Ordering::Relaxed),
        HANDSHAKE[1].swap(-1, Ordering::Relaxed),
    );
    if r >= 0 {
        // SAFETY: `r` and `w` are the pipe this handler's prepare made and
        // nothing else uses; `byte` is a writable byte.
        unsafe {
            libc::close(w);
            let mut byte = 0u8;
            while libc::read(r, &mut byte as *mut u8 as *mut libc::c_void, 1) < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
            libc::close(r);
        }
    }
    let _ = HELD.try_with(|h| h.borrow_mut().take());
}

/// `pthread_atfork` child: points every pwal descriptor at `/dev/null`, so
/// the child no longer shares the parent's open file descriptions (nor its
/// `flock`), and the numbers stay taken: the parent's `File`s the child
/// inherited are leaked, never closed, and nothing else can get the number.
/// Then tells the parent. Async-signal-safe: `dup3`, `write`, `close`, and a
/// futex unlock.
pub(crate) fn fork_child() {
    let _ = HELD.try_with(|h| {
        if let Some(fds) = h.borrow_mut().take() {
            let null = DEV_NULL.load(Ordering::Acquire);
            for &fd in fds.iter() {
                // SAFETY: `null` and `fd` are descriptors of this process
                // (the child's copies of the parent's); `dup3` replaces `fd`
                // atomically and touches no memory.
                unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
            }
        }
    });
    let (r, w) = (
        HANDSHAKE[0].swap(-1, Ordering::Relaxed),
        HANDSHAKE[1].swap(-1, Ordering::Relaxed),
    );
    if w >= 0 {
        // SAFETY: the child's copies of the handshake pipe, used by nothing
        // else; the byte is read from a live local.
        unsafe {
            let byte = 1u8;
            libc::write(w, &byte as *const u8 as *const libc::c_void, 1);
            libc::close(w);
            libc::close(r);
        }
    }
}

/// Most iovecs handed to one `pwritev` (Linux's IOV_MAX is 1024).
const MAX_IOV: usize = 1024;

impl VfsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self
                .file
                .file()
                .read_at(&mut buf[done..], offset + done as u64)
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_all_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        // One gathering write for the header and every lane buffer of an
        // epoch: the flusher never copies lane data (DESIGN.md, section 3).
        let mut slices: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
        let mut offset = offset;
        while !slices.is_empty() {
            let n = slices.len().min(MAX_IOV);
            let iov: Vec<libc::iovec> = slices[..n]
                .iter()
                .map(|s| libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                })
                .collect();
            // SAFETY: `iov` holds `n` iovecs, each pointing into a live
            // borrowed slice of the stated length that outlives the call; the
            // kernel only reads from them. The fd is owned by `self.file`.
            let r = unsafe {
                libc::pwritev(
                    self.file.file().as_raw_fd(),
                    iov.as_ptr(),
                    n as libc::c_int,
                    offset as libc::off_t,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwritev wrote nothing",
                ));
            }
            let mut written = r as usize;
            offset += written as u64;
            // Drop fully written slices, trim a partly written one.
            while written > 0 {
                if written >= slices[0].len() {
                    written -= slices[0].len();
                    slices.remove(0);
                } else {
                    slices[0] = &slices[0][written..];
                    written = 0;
                }
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.file().sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.file().sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.file().metadata()?.len())
    }
}

impl Vfs for RealVfs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        let file = Tracked::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .custom_flags(libc::O_CLOEXEC),
            path,
        )?;
        Ok(Box::new(RealFile { file }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = Tracked::open(
            OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC),
            path,
        )?;
        Ok(Box::new(RealFile { file }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn drop_cache(&self, path: &Path) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        // POSIX_FADV_DONTNEED skips dirty pages, so write them first. A page
        // whose writeback failed is marked clean by Linux although the disk
        // never got it: the sync does not bring it back, and DONTNEED evicts
        // it like any clean page, so the next read shows what the disk holds.
        let synced = file.sync_data();
        // SAFETY: a plain advice call on a descriptor `file` owns; offset 0
        // and length 0 mean the whole file.
        let r = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        synced?;
        // posix_fadvise returns the error number instead of setting errno.
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(())
    }

    fn evict_cache(&self, path: &Path) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        // SAFETY: a plain advice call on a descriptor `file` owns; offset 0
        // and length 0 mean the whole file.
        let r = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        // posix_fadvise returns the error number instead of setting errno.
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(())
    }

    fn canonical(&self, path: &Path) -> std::path::PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let file = Tracked::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_CLOEXEC),
            path,
        )?;
        // flock(2) locks belong to the open file description: a second open
        // in this process would conflict with the first, which is why the
        // engine shares one coordinator per log within a process.
        match file.file().try_lock() {
            Ok(()) => Ok(Box::new(LockGuard(file))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another process", path.display()),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many pages of the file's first `len` bytes are in the page cache.
    fn resident_pages(file: &File, len: usize) -> usize {
        let page = 4096;
        // SAFETY: a read-only shared mapping of `len` bytes of a file at
        // least that long, unmapped before returning; `mincore` writes one
        // byte per page into `vec`, which has room for every page.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED, "{}", io::Error::last_os_error());
            let mut vec = vec![0u8; len.div_ceil(page)];
            let r = libc::mincore(addr, len, vec.as_mut_ptr());
            let e = io::Error::last_os_error();
            libc::munmap(addr, len);
            assert_eq!(r, 0, "mincore: {e}");
            vec.iter().filter(|b| **b & 1 != 0).count()
        }
    }

    #[test]
    fn drop_cache_keeps_the_bytes_and_evicts_the_pages() {
        let dir = std::env::temp_dir().join(format!("pwal-drop-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let bytes: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7) as u8).collect();
        let vfs = RealVfs;
        let f = vfs.open(&path, true).unwrap();
        f.write_all_at(&[&bytes], 0).unwrap();
        let file = File::open(&path).unwrap();
        let before = resident_pages(&file, bytes.len());
        vfs.drop_cache(&path).unwrap();
        let after = resident_pages(&file, bytes.len());
        let mut back = vec![0u8; bytes.len()];
        assert_eq!(f.read_at(&mut back, 0).unwrap(), bytes.len());
        assert!(back == bytes, "drop_cache changed the file's bytes");
        let missing = vfs.drop_cache(&dir.join("none")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
        // SAFETY: `statfs` fills the zeroed struct for a valid C path.
        let tmpfs = unsafe {
            let c = std::ffi::CString::new(std::env::temp_dir().as_os_str().as_encoded_bytes())
                .unwrap();
            let mut st: libc::statfs = std::mem::zeroed();
            libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
        };
        if before == 0 || tmpfs {
            // A tmpfs's pages are its storage (nothing to evict); some FUSE
            // mounts never cache.
            let msg = format!(
                "drop_cache_keeps_the_bytes_and_evicts_the_pages: {} is on a tmpfs ({tmpfs}) or kept no page in the cache ({before} pages), so eviction cannot be seen",
                dir.display()
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            println!("SKIPPED the eviction check: {msg}");
            return;
        }
        assert_eq!(after, 0, "{after} of {before} pages still cached");
    }
}
