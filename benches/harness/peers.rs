//! The peer engines, reached through their C APIs: SQLite 3 (WAL mode) and
//! RocksDB. Only the handful of functions the benchmark calls are declared,
//! by hand, from `sqlite3.h` and `rocksdb/c.h`; the libraries are opened with
//! `dlopen` on first use (Debian's `libsqlite3-0` / `librocksdb7.8`, installed
//! by `scripts/bench.sh`). Building RocksDB from source through the `rocksdb`
//! crate would take longer than the whole benchmark.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use super::sys::Library;

/// Declares a table of C functions resolved from a [`Library`] by name.
macro_rules! c_api {
    ($api:ident { $( fn $f:ident ( $($a:ty),* ) $(-> $r:ty)? ; )* }) => {
        #[allow(non_snake_case)]
        pub struct $api {
            _lib: $crate::harness::sys::Library,
            $( pub $f: unsafe extern "C" fn($($a),*) $(-> $r)?, )*
        }
        impl $api {
            pub fn load(lib: $crate::harness::sys::Library) -> Result<$api, String> {
                $(
                    let p = lib.symbol(stringify!($f))?;
                    // SAFETY: the declaration above matches the library's
                    // header for this symbol.
                    let $f = unsafe {
                        std::mem::transmute::<*mut std::ffi::c_void, unsafe extern "C" fn($($a),*) $(-> $r)?>(p)
                    };
                )*
                Ok($api { _lib: lib, $( $f, )* })
            }
        }
    };
}

c_api!(SqliteApi {
    fn sqlite3_libversion() -> *const c_char;
    fn sqlite3_open_v2(*const c_char, *mut *mut c_void, c_int, *const c_char) -> c_int;
    fn sqlite3_close_v2(*mut c_void) -> c_int;
    fn sqlite3_exec(*mut c_void, *const c_char, *mut c_void, *mut c_void, *mut *mut c_char) -> c_int;
    fn sqlite3_prepare_v2(*mut c_void, *const c_char, c_int, *mut *mut c_void, *mut *const c_char) -> c_int;
    fn sqlite3_bind_blob(*mut c_void, c_int, *const c_void, c_int, *mut c_void) -> c_int;
    fn sqlite3_step(*mut c_void) -> c_int;
    fn sqlite3_reset(*mut c_void) -> c_int;
    fn sqlite3_finalize(*mut c_void) -> c_int;
    fn sqlite3_errmsg(*mut c_void) -> *const c_char;
    fn sqlite3_busy_timeout(*mut c_void, c_int) -> c_int;
});

c_api!(RocksApi {
    fn rocksdb_options_create() -> *mut c_void;
    fn rocksdb_options_destroy(*mut c_void);
    fn rocksdb_options_set_create_if_missing(*mut c_void, u8);
    fn rocksdb_open(*const c_void, *const c_char, *mut *mut c_char) -> *mut c_void;
    fn rocksdb_close(*mut c_void);
    fn rocksdb_writeoptions_create() -> *mut c_void;
    fn rocksdb_writeoptions_destroy(*mut c_void);
    fn rocksdb_writeoptions_set_sync(*mut c_void, u8);
    fn rocksdb_writebatch_create() -> *mut c_void;
    fn rocksdb_writebatch_destroy(*mut c_void);
    fn rocksdb_writebatch_put(*mut c_void, *const c_char, usize, *const c_char, usize);
    fn rocksdb_write(*mut c_void, *const c_void, *mut c_void, *mut *mut c_char);
    fn rocksdb_free(*mut c_void);
});

const SQLITE_OK: c_int = 0;
const SQLITE_BUSY: c_int = 5;
const SQLITE_LOCKED: c_int = 6;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;
const SQLITE_OPEN_READWRITE: c_int = 0x2;
const SQLITE_OPEN_CREATE: c_int = 0x4;
/// Multi-thread mode: each connection is used by one thread at a time (ours
/// are per thread), so SQLite's own connection mutex is not needed.
const SQLITE_OPEN_NOMUTEX: c_int = 0x8000;
/// How long SQLite's busy handler waits for the write lock before SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT_MS: c_int = 10_000;
/// How often a statement is retried after SQLITE_BUSY (each retry first waits
/// up to the busy timeout) before the run is failed.
const SQLITE_MAX_BUSY_RETRIES: usize = 100;
static SQLITE: OnceLock<Result<SqliteApi, String>> = OnceLock::new();
static ROCKS: OnceLock<Result<RocksApi, String>> = OnceLock::new();

pub fn sqlite_api() -> Result<&'static SqliteApi, String> {
    SQLITE
        .get_or_init(|| SqliteApi::load(Library::open(&["libsqlite3.so.0", "libsqlite3.so"])?))
        .as_ref()
        .map_err(|e| format!("SQLite unavailable: {e}"))
}

pub fn rocks_api() -> Result<&'static RocksApi, String> {
    ROCKS
        .get_or_init(|| RocksApi::load(Library::open(&["librocksdb.so"])?))
        .as_ref()
        .map_err(|e| format!("RocksDB unavailable: {e}"))
}

pub fn sqlite_version() -> Option<String> {
    let api = sqlite_api().ok()?;
    // SAFETY: returns a static NUL-terminated string.
    Some(
        unsafe { CStr::from_ptr((api.sqlite3_libversion)()) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

/// One SQLite connection with its three prepared statements.
struct SqliteConn {
    db: *mut c_void,
    begin: *mut c_void,
    insert: *mut c_void,
    commit: *mut c_void,
}

// SAFETY: a connection opened in multi-thread mode may move between threads
// as long as one thread uses it at a time (the Mutex around it ensures that).
unsafe impl Send for SqliteConn {}

/// SQLite in WAL mode, one connection per writer thread; a commit is
/// `BEGIN IMMEDIATE`, one `INSERT` of a page-sized blob per page, `COMMIT`.
pub struct Sqlite {
    api: &'static SqliteApi,
    conns: Vec<Mutex<SqliteConn>>,
}

impl Sqlite {
    pub fn open(dir: &Path, threads: usize, synchronous_full: bool) -> Result<Sqlite, String> {
        let api = sqlite_api()?;
        let path = cpath(&dir.join("bench.sqlite"));
        let mut s = Sqlite {
            api,
            conns: Vec::new(),
        };
        for i in 0..threads {
            let mut db = std::ptr::null_mut();
            // SAFETY: valid C strings and out-pointer.
            let rc = unsafe {
                (api.sqlite3_open_v2)(
                    path.as_ptr(),
                    &mut db,
                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                    std::ptr::null(),
                )
            };
            if rc != SQLITE_OK {
                return Err(format!("sqlite3_open_v2: rc {rc}"));
            }
            let mut conn = SqliteConn {
                db,
                begin: std::ptr::null_mut(),
                insert: std::ptr::null_mut(),
                commit: std::ptr::null_mut(),
            };
            // SAFETY: db is a live connection.
            // SQLite's own sleeping busy handler: a handler polling every
            // 0-300 us was measured slower at 16 and 64 writers (more lock
            // traffic), so the default is SQLite at its best here.
            unsafe { (api.sqlite3_busy_timeout)(db, SQLITE_BUSY_TIMEOUT_MS) };
            let setup = if i == 0 {
                "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB);"
            } else {
                ""
            };
            let sync = if synchronous_full { "FULL" } else { "NORMAL" };
            let r = s.exec(db, &format!("{setup} PRAGMA synchronous={sync};"));
            conn.begin = s.prepare(db, "BEGIN IMMEDIATE")?;
            conn.insert = s.prepare(db, "INSERT INTO t(v) VALUES(?1)")?;
            conn.commit = s.prepare(db, "COMMIT")?;
            s.conns.push(Mutex::new(conn));
            r?;
        }
        Ok(s)
    }

    fn errmsg(&self, db: *mut c_void) -> String {
        // SAFETY: errmsg returns a NUL-terminated string owned by the connection.
        unsafe { CStr::from_ptr((self.api.sqlite3_errmsg)(db)) }
            .to_string_lossy()
            .into_owned()
    }

    fn exec(&self, db: *mut c_void, sql: &str) -> Result<(), String> {
        let c = CString::new(sql).unwrap();
        for _ in 0..SQLITE_MAX_BUSY_RETRIES {
            // SAFETY: live connection, valid SQL string, no callback.
            let rc = unsafe {
                (self.api.sqlite3_exec)(
                    db,
                    c.as_ptr(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            match rc {
                SQLITE_OK => return Ok(()),
                SQLITE_BUSY | SQLITE_LOCKED => continue,
                _ => return Err(format!("sqlite3_exec({sql}): {}", self.errmsg(db))),
            }
        }
        Err(format!("sqlite3_exec({sql}): still busy"))
    }

    fn prepare(&self, db: *mut c_void, sql: &str) -> Result<*mut c_void, String> {
        let c = CString::new(sql).unwrap();
        let mut st = std::ptr::null_mut();
        // SAFETY: live connection, valid SQL string and out-pointer.
        let rc = unsafe {
            (self.api.sqlite3_prepare_v2)(db, c.as_ptr(), -1, &mut st, std::ptr::null_mut())
        };
        if rc != SQLITE_OK {
            return Err(format!("sqlite3_prepare_v2({sql}): {}", self.errmsg(db)));
        }
        Ok(st)
    }

    /// Steps `st` to completion, retrying on SQLITE_BUSY (the busy handler
    /// has already waited by then), and resets it.
    fn step(&self, db: *mut c_void, st: *mut c_void) -> Result<(), String> {
        for _ in 0..SQLITE_MAX_BUSY_RETRIES {
            // SAFETY: live prepared statement of a connection this thread holds.
            let rc = unsafe { (self.api.sqlite3_step)(st) };
            // SAFETY: as above.
            unsafe { (self.api.sqlite3_reset)(st) };
            match rc {
                SQLITE_DONE | SQLITE_ROW => return Ok(()),
                SQLITE_BUSY | SQLITE_LOCKED => continue,
                _ => return Err(format!("sqlite3_step: rc {rc}: {}", self.errmsg(db))),
            }
        }
        Err("sqlite3_step: still busy".into())
    }

    pub fn commit(&self, thread: usize, pages: &[&[u8]]) -> Result<(), String> {
        let c = self.conns[thread].lock().unwrap();
        self.step(c.db, c.begin)?;
        for p in pages {
            // SAFETY: the blob outlives the step (SQLITE_STATIC, i.e. a null
            // destructor: SQLite does not copy it and we reset right after).
            let rc = unsafe {
                (self.api.sqlite3_bind_blob)(
                    c.insert,
                    1,
                    p.as_ptr() as *const c_void,
                    p.len() as c_int,
                    std::ptr::null_mut(),
                )
            };
            if rc != SQLITE_OK {
                return Err(format!("sqlite3_bind_blob: {}", self.errmsg(c.db)));
            }
            self.step(c.db, c.insert)?;
        }
        self.step(c.db, c.commit)
    }

    pub fn close(self) -> Result<(), String> {
        for c in self.conns {
            let c = c.into_inner().unwrap();
            // SAFETY: statements and connection are live and used by no one else.
            unsafe {
                for st in [c.begin, c.insert, c.commit] {
                    if !st.is_null() {
                        (self.api.sqlite3_finalize)(st);
                    }
                }
                (self.api.sqlite3_close_v2)(c.db);
            }
        }
        Ok(())
    }
}

/// RocksDB with `WriteOptions.sync = true`: a commit is one write batch with
/// one page-sized value per page.
pub struct Rocks {
    api: &'static RocksApi,
    db: *mut c_void,
    options: *mut c_void,
    write_options: *mut c_void,
}

// SAFETY: rocksdb_t and write options are thread-safe for concurrent writes.
unsafe impl Send for Rocks {}
unsafe impl Sync for Rocks {}

impl Rocks {
    pub fn open(dir: &Path) -> Result<Rocks, String> {
        let api = rocks_api()?;
        let path = cpath(&dir.join("rocksdb"));
        // SAFETY: plain C API calls on objects we create and own.
        unsafe {
            let options = (api.rocksdb_options_create)();
            (api.rocksdb_options_set_create_if_missing)(options, 1);
            let mut err: *mut c_char = std::ptr::null_mut();
            let db = (api.rocksdb_open)(options, path.as_ptr(), &mut err);
            if !err.is_null() {
                let e = CStr::from_ptr(err).to_string_lossy().into_owned();
                (api.rocksdb_free)(err as *mut c_void);
                (api.rocksdb_options_destroy)(options);
                return Err(format!("rocksdb_open: {e}"));
            }
            let write_options = (api.rocksdb_writeoptions_create)();
            (api.rocksdb_writeoptions_set_sync)(write_options, 1);
            Ok(Rocks {
                api,
                db,
                options,
                write_options,
            })
        }
    }

    pub fn commit(&self, seq: u64, pages: &[&[u8]]) -> Result<(), String> {
        // SAFETY: live handles; keys and values outlive the calls (the batch
        // copies them).
        unsafe {
            let batch = (self.api.rocksdb_writebatch_create)();
            for (i, p) in pages.iter().enumerate() {
                let mut key = [0u8; 12];
                key[..8].copy_from_slice(&seq.to_be_bytes());
                key[8..].copy_from_slice(&(i as u32).to_be_bytes());
                (self.api.rocksdb_writebatch_put)(
                    batch,
                    key.as_ptr() as *const c_char,
                    key.len(),
                    p.as_ptr() as *const c_char,
                    p.len(),
                );
            }
            let mut err: *mut c_char = std::ptr::null_mut();
            (self.api.rocksdb_write)(self.db, self.write_options, batch, &mut err);
            (self.api.rocksdb_writebatch_destroy)(batch);
            if !err.is_null() {
                let e = CStr::from_ptr(err).to_string_lossy().into_owned();
                (self.api.rocksdb_free)(err as *mut c_void);
                return Err(format!("rocksdb_write: {e}"));
            }
        }
        Ok(())
    }

    pub fn close(self) -> Result<(), String> {
        // SAFETY: no writer is running any more; each object is destroyed once.
        unsafe {
            (self.api.rocksdb_close)(self.db);
            (self.api.rocksdb_writeoptions_destroy)(self.write_options);
            (self.api.rocksdb_options_destroy)(self.options);
        }
        Ok(())
    }
}
