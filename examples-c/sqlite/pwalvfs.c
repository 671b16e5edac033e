/*
 * pwalvfs.c: a SQLite VFS, "pwal", that commits transactions through a pwal
 * log instead of a rollback journal. Build: `make -C examples-c sqlite`;
 * manual: docs/SQLITE.md.
 *
 * A loadable extension (entry point sqlite3_pwalvfs_init) for a SQLite built
 * with SQLITE_ENABLE_BATCH_ATOMIC_WRITE. It wraps the unix VFS in its
 * "unix-excl" form and registers a VFS named "pwal" (not as the default).
 * Its handles lock each other in memory, and one open file description
 * lock per database, from the first lock to the last close, keeps other
 * processes and this process's connections through other VFSes out (see
 * "locks"): pwal allows one process per log anyway.
 * For a main database file opened through it:
 *
 *  - xDeviceCharacteristics adds SQLITE_IOCAP_BATCH_ATOMIC, so SQLite commits
 *    a transaction that fits in its page cache with no rollback journal:
 *    SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, the dirty pages through xWrite (kept in
 *    memory here), SQLITE_FCNTL_COMMIT_ATOMIC_WRITE. COMMIT makes the pages
 *    one pwal transaction (pwal_commit_file: durable on return); ROLLBACK
 *    drops them. A page 1 that changed only in its change counter is not
 *    logged (page1_counter_only).
 *  - Committed pages go home at the next checkpoint, not at commit: until
 *    then they wait in memory (a pagemap per database file) and reads and
 *    the file size see them there. A commit then touches the database file
 *    not at all, as in SQLite's own WAL mode: no write, no read of page 1,
 *    and no new modification time, which on Linux would make the log's
 *    fdatasync write an inode too (see docs/SQLITE.md).
 *  - The databases of one directory share one log, in
 *    "<dir>/.pwal-shared-pwal/" (pwal's log of the path "<dir>/.pwal-shared"),
 *    so commits of different databases group into one fdatasync. Each frame
 *    names its database by a file id; "<dir>/.pwal-shared-files" maps ids to
 *    file names, one line "<id> <name>" per database, appended and fdatasynced
 *    before the first commit that uses the id.
 *  - The first open of a database in a directory opens the log, replays
 *    every frame it recovers into the files it names, fsyncs them and
 *    checkpoints the log, before SQLite reads anything. The last close in
 *    the process checkpoints and closes the log (another process may then
 *    open the databases).
 *  - Now and then (every PWALVFS_CHECKPOINT_MIB MiB of frames, default 16) a
 *    committer checkpoints: it waits until no commit is between its
 *    pwal_commit_file and the end of its handover to the pagemap, reads the
 *    durable epoch, writes the waiting pages home, fdatasyncs the database
 *    files written since the last checkpoint, then calls pwal_checkpoint.
 *  - Any write or truncate of a database file outside a batch (a first
 *    transaction into an empty database, a transaction larger than the page
 *    cache, a commit that fell back to the rollback journal, a hot journal's
 *    rollback, a WAL checkpoint) first checkpoints the log if it holds
 *    frames of that file, so an older frame can never be replayed over it.
 *    Such writes are synced by xSync as usual; xSync after a batch commit
 *    (which the log made durable) is a no-op.
 *  - A batch over PWAL_MAX_TXN_BYTES or PWAL_MAX_TXN_FRAMES is dropped
 *    as it arrives and its COMMIT fails without breaking the log: SQLite
 *    commits it through its rollback journal (writes outside a batch,
 *    above), which the VFS syncs before the first of them (journal_first).
 *  - xAccess remembers that "<db>-journal" and "<db>-wal" do not exist
 *    (see "what xAccess knows without asking").
 *  - No shared memory (io methods of version 1): SQLite refuses
 *    journal_mode=WAL, except under locking_mode=EXCLUSIVE, where its WAL
 *    needs no shared memory and its checkpoints are writes outside a batch
 *    (see above). The version 2 and 3 slots hold stubs that fail, for
 *    shims stacked on top that call them regardless.
 */
#define _GNU_SOURCE /* realpath, pread, pwrite, fdatasync */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

#include "pwal.h"

#define VFS_NAME "pwal"
#define LOG_NAME ".pwal-shared"            /* the log is LOG_NAME "-pwal/" */
#define MANIFEST_NAME ".pwal-shared-files" /* "<id> <name>\n" per database */
#define MAX_NAME 512

/* ---- the shared log of a directory ---- */

/* Committed pages of one database file not yet written home: page number
 * to a malloc'd page, open addressing with linear probing, no deletion
 * (cleared whole once written home). */
typedef struct {
    uint32_t *keys;        /* page numbers; 0: empty slot */
    unsigned char **pages; /* page_size bytes each, owned */
    uint32_t cap, n;       /* cap: 0 or a power of two, at least twice n */
    uint32_t max_pgno;     /* the highest key */
} pagemap;

typedef struct dbent dbent;
struct dbent {
    dbent *next;
    char *name;          /* file name inside the directory */
    uint32_t file_id;    /* 0 until the manifest names it */
    int fd;              /* own descriptor, for the checkpoint's writes and fdatasync; -1: none */
    dev_t dev;           /* the file fd opened (is the file at the name still it?) */
    ino_t ino;
    int opens;           /* main database handles open on it (under shared.mu) */
    /* A handle of a writable file has locked it: the guard (below) then
     * holds an exclusive lock on it for this process until its last
     * handle closes, and no other process can change it. Only then may
     * the caches of its size and of its journal's absence be trusted.
     * Atomic; cleared at the last close. */
    int process_locked;
    int needs_sync;      /* written home since the last checkpoint */
    uint64_t last_epoch; /* epoch of this file's latest commit */
    /* Committed pages not yet home. Lock order: shared.mu before ov_mu. */
    pthread_mutex_t ov_mu;
    pagemap live;        /* filled by commits */
    pagemap going;       /* taken by the running checkpoint, being written home */
    uint32_t ov_page_size; /* the size of every page in live and going */
    /* The file's own size, as its last fstat gave it, while size_gen has
     * not moved since: every change to the file's size (a checkpoint's
     * writes, a direct write or truncation, a file control) bumps it. */
    sqlite3_int64 real_size;
    uint64_t real_size_gen, size_gen; /* real_size holds when they are equal and nonzero */
    /* Locking (see "locks" below). The handles of the process lock each
     * other here, in memory, with SQLite's lock levels; the file itself is
     * locked by the guard, an open file description lock on fd, taken at
     * the first lock and kept until the last close. Lock order: shared.mu
     * before lk_mu before g_guard_mu. */
    pthread_mutex_t lk_mu;
    int lk_level;          /* the highest level a handle holds (SQLITE_LOCK_*) */
    int lk_shared;         /* handles at SHARED or above */
    int guard_locked;      /* fd holds the guard */
};

typedef struct {
    uint64_t commits, frames, frame_bytes, commit_failures, rollbacks;
    uint64_t direct_writes, direct_truncates, syncs, syncs_skipped;
    uint64_t checkpoints, replayed_frames, pages_home;
    uint64_t oversized; /* batches too large for one pwal transaction: journaled instead */
    uint64_t journal_syncs; /* journals synced before a failed batch's direct writes */
} vstats;

typedef struct shared shared;
struct shared {
    shared *next;      /* in g_logs */
    char *dir;         /* realpath of the directory */
    int dir_fd;        /* the directory (O_PATH): is the one at `dir` still it? Held
                        * open so that its inode cannot be reused; -1: none */
    pwal *log;
    int refs;          /* main database handles open (under g_mu) */
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    dbent *files;
    uint32_t next_id;
    int manifest_fd;
    int in_flight;     /* commits between pwal_commit_file and their pages' handover */
    int ckpt_waiting;  /* a checkpoint waits for in_flight to drain: new commits wait */
    uint64_t ckpt_epoch;       /* epochs at or below are checkpointed */
    uint64_t mark_durable;     /* ... and the log says so durably (never replayed) */
    uint64_t bytes_since_ckpt; /* frame bytes committed since the last checkpoint */
    uint64_t ckpt_every;       /* ... that trigger one */
    uint64_t next_seq;
    int broken;        /* the files may lag the log: no checkpoint, no write, until reopened */
    int ckpt_off;      /* test hook: no checkpoint runs (PRAGMA pwal_checkpoints) */
    int fail_commits;  /* test hook: so many next commits fail (PRAGMA pwal_fail_commits) */
    /* The most page bytes one batch may log: PWAL_MAX_TXN_BYTES, or less
     * for the tests (PWALVFS_TEST_MAX_TXN_BYTES). Set at the log's open. */
    uint64_t max_txn_bytes;
    char why[256];     /* what broke it */
    pthread_mutex_t ckpt_mu; /* one checkpoint at a time */
    pthread_mutex_t open_mu; /* one open past acquire() at a time (v_open) */
    vstats st;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* g_logs and every refs */
static shared *g_logs;
static sqlite3_vfs *g_orig;

#define STAT_ADD(s, field, n) __atomic_add_fetch(&(s)->st.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- the file handle ---- */

typedef struct {
    sqlite3_file base;
    shared *s;
    dbent *e;
    int in_batch;
    /* A write the log cannot take (not a page of the batch's size, or one
     * page more than one pwal transaction may hold): the batch's pages are
     * dropped, later writes of the batch too, and COMMIT fails, so SQLite
     * falls back to its rollback journal. */
    int batch_bad;
    int batch_oversized; /* ... because of the batch's size */
    /* COMMIT_ATOMIC_WRITE failed: SQLite commits through its journal,
     * which it wrote from memory and does not sync (see journal_first). */
    int fell_back;
    int direct_dirty; /* written outside a batch since the last real xSync */
    uint32_t page_size;
    uint32_t n, cap;  /* pages in the batch */
    uint32_t *pgno;
    unsigned char **pages; /* page_size bytes each, owned until handed to the pagemap */
    pwal_frame *frames;
    char *db_path;      /* the name it was opened by (sidecars); NULL for a read-only file */
    int readonly;       /* the real file is read-only: its locks are ordinary shared ones */
    int lock;           /* the SQLITE_LOCK_* level it holds (not for a read-only file) */
    sqlite3_file *real; /* the default VFS's file, right after this struct */
} pfile;

/* Writes iov[0..cnt) at off, all of it; -1 with errno on failure. */
static int writev_all(int fd, struct iovec *iov, int cnt, off_t off) {
    while (cnt > 0) {
        ssize_t w = pwritev(fd, iov, cnt, off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        off += w;
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len, off_t off) {
    struct iovec v = {(void *)buf, len};
    return writev_all(fd, &v, 1, off);
}

/* ---- pagemap: committed pages waiting to go home ---- */

static uint32_t pm_slot(const pagemap *m, uint32_t pgno) {
    return (pgno * 2654435761u) & (m->cap - 1);
}

/* The page stored for pgno, or NULL. */
static unsigned char *pm_get(const pagemap *m, uint32_t pgno) {
    if (!m->n) return NULL;
    for (uint32_t i = pm_slot(m, pgno);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == pgno) return m->pages[i];
        if (!m->keys[i]) return NULL;
    }
}

/* Stores `page` (taking it) for pgno, freeing the page it replaces. Needs
 * a free slot (pm_reserve). */
static void pm_put(pagemap *m, uint32_t pgno, unsigned char *page) {
    uint32_t i = pm_slot(m, pgno);
    while (m->keys[i] && m->keys[i] != pgno) i = (i + 1) & (m->cap - 1);
    if (m->keys[i]) {
        free(m->pages[i]);
    } else {
        m->keys[i] = pgno;
        m->n++;
    }
    m->pages[i] = page;
    if (pgno > m->max_pgno) m->max_pgno = pgno;
}

/* Room for `more` new keys without failing; -1 when out of memory. */
static int pm_reserve(pagemap *m, uint32_t more) {
    uint64_t want = (uint64_t)m->n + more;
    if (want * 2 <= m->cap) return 0;
    uint64_t cap = m->cap ? m->cap : 64;
    while (cap < want * 2) cap *= 2;
    if (cap > (1u << 31)) return -1;
    uint32_t *keys = calloc((size_t)cap, sizeof *keys);
    unsigned char **pages = calloc((size_t)cap, sizeof *pages);
    if (!keys || !pages) {
        free(keys);
        free(pages);
        return -1;
    }
    pagemap grown = {keys, pages, (uint32_t)cap, 0, 0};
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->keys[i]) pm_put(&grown, m->keys[i], m->pages[i]);
    free(m->keys);
    free(m->pages);
    *m = grown;
    return 0;
}

static void pm_clear(pagemap *m) {
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->keys[i]) free(m->pages[i]);
    free(m->keys);
    free(m->pages);
    memset(m, 0, sizeof *m);
}

typedef struct {
    uint32_t pgno;
    unsigned char *page;
} pm_entry;

static int entry_cmp(const void *a, const void *b) {
    uint32_t x = ((const pm_entry *)a)->pgno, y = ((const pm_entry *)b)->pgno;
    return x < y ? -1 : x > y;
}

/* Writes every page of m into fd, in page order, runs of consecutive pages
 * in one pwritev each. No sync. -1 with errno and *at (the offset of the
 * run that failed) on failure. */
static int pm_write_home(const pagemap *m, uint32_t page_size, int fd, off_t *at) {
    if (!m->n) return 0;
    pm_entry *order = malloc(sizeof *order * m->n);
    struct iovec *iov = malloc(sizeof *iov * (m->n < IOV_MAX ? m->n : IOV_MAX));
    if (!order || !iov) {
        free(order);
        free(iov);
        errno = ENOMEM;
        *at = 0;
        return -1;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->keys[i]) order[k++] = (pm_entry){m->keys[i], m->pages[i]};
    qsort(order, k, sizeof *order, entry_cmp);
    int rc = 0;
    for (uint32_t i = 0; i < k && rc == 0;) {
        int cnt = 0;
        uint32_t first = order[i].pgno;
        while (i < k && cnt < IOV_MAX && order[i].pgno == first + (uint32_t)cnt) {
            iov[cnt].iov_base = order[i].page;
            iov[cnt].iov_len = page_size;
            cnt++;
            i++;
        }
        *at = (off_t)(first - 1) * page_size;
        rc = writev_all(fd, iov, cnt, *at);
    }
    free(order);
    free(iov);
    return rc;
}

static void mark_broken(shared *s, const char *what) {
    pthread_mutex_lock(&s->mu);
    if (!s->broken) {
        s->broken = 1;
        snprintf(s->why, sizeof s->why, "%s", what);
        sqlite3_log(SQLITE_IOERR, "pwal vfs: %s: %s", s->dir, what);
    }
    pthread_mutex_unlock(&s->mu);
}

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static dbent *find_name(shared *s, const char *name) {
    for (dbent *e = s->files; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

static dbent *find_id(shared *s, uint32_t id) {
    for (dbent *e = s->files; e; e = e->next)
        if (e->file_id == id) return e;
    return NULL;
}

static dbent *add_ent(shared *s, const char *name, uint32_t id) {
    dbent *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->name = strdup(name);
    if (!e->name) {
        free(e);
        return NULL;
    }
    e->file_id = id;
    e->fd = -1;
    e->size_gen = 1;
    pthread_mutex_init(&e->ov_mu, NULL);
    pthread_mutex_init(&e->lk_mu, NULL);
    e->next = s->files;
    s->files = e;
    return e;
}

static int sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Reads the manifest: every whole, well-formed line. A torn last line (a
 * crash while it was appended, before any frame used its id) is cut off. */
static int load_manifest(shared *s) {
    char *path = path_in(s->dir, MANIFEST_NAME);
    if (!path) return -1;
    int existed = access(path, F_OK) == 0;
    s->manifest_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(path);
    if (s->manifest_fd < 0) return -1;
    if (!existed && (fsync(s->manifest_fd) != 0 || sync_dir(s->dir) != 0)) return -1;
    struct stat sb;
    if (fstat(s->manifest_fd, &sb) != 0) return -1;
    size_t len = (size_t)sb.st_size;
    char *buf = malloc(len + 1);
    if (!buf) return -1;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(s->manifest_fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return -1;
        }
        got += (size_t)r;
    }
    buf[len] = 0;
    size_t good = 0;
    s->next_id = 1;
    while (good < len) {
        char *nl = memchr(buf + good, '\n', len - good);
        if (!nl) break;
        *nl = 0;
        char *line = buf + good, *end;
        errno = 0;
        unsigned long id = strtoul(line, &end, 10);
        if (errno || end == line || *end != ' ' || id == 0 || id > UINT32_MAX || !end[1] ||
            find_id(s, (uint32_t)id) || find_name(s, end + 1))
            break;
        if (!add_ent(s, end + 1, (uint32_t)id)) {
            free(buf);
            return -1;
        }
        if (id >= s->next_id) s->next_id = (uint32_t)id + 1;
        good = (size_t)(nl - buf) + 1;
    }
    free(buf);
    if (good < len) {
        sqlite3_log(SQLITE_NOTICE, "pwal vfs: %s/%s: cutting %zu bytes of a torn last line",
                    s->dir, MANIFEST_NAME, len - good);
        if (ftruncate(s->manifest_fd, (off_t)good) != 0 || fdatasync(s->manifest_fd) != 0)
            return -1;
    }
    return 0;
}

/* Gives `e` a file id, durably, before its first commit. Under s->mu. */
static int assign_id(shared *s, dbent *e) {
    if (e->file_id) return 0;
    char line[MAX_NAME + 32];
    int n = snprintf(line, sizeof line, "%u %s\n", s->next_id, e->name);
    if (n <= 0 || (size_t)n >= sizeof line) return -1;
    if (write_all(s->manifest_fd, line, (size_t)n, 0) != 0 || fdatasync(s->manifest_fd) != 0)
        return -1;
    e->file_id = s->next_id++;
    return 0;
}

static int open_ent_fd(shared *s, dbent *e) {
    if (e->fd >= 0) return 0;
    char *path = path_in(s->dir, e->name);
    if (!path) return -1;
    e->fd = open(path, O_RDWR | O_CLOEXEC);
    if (e->fd < 0 && errno == EACCES) e->fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (e->fd < 0) return -1;
    struct stat sb;
    if (fstat(e->fd, &sb) == 0) {
        e->dev = sb.st_dev;
        e->ino = sb.st_ino;
    }
    return 0;
}

typedef struct {
    shared *s;
    char msg[300];
} replay_ctx;

static int32_t replay_one(void *user, const pwal_record *r) {
    replay_ctx *c = user;
    if (r->file_id == 0) return 0; /* a mark frame (make_mark_durable) */
    dbent *e = find_id(c->s, r->file_id);
    if (!e) {
        snprintf(c->msg, sizeof c->msg, "the log has frames of file id %u, which %s does not name",
                 r->file_id, MANIFEST_NAME);
        return 1;
    }
    if (open_ent_fd(c->s, e) != 0) {
        if (errno == ENOENT) {
            /* Deleted after the crash: its frames have nowhere to go. */
            sqlite3_log(SQLITE_WARNING, "pwal vfs: %s/%s is gone: its logged pages are dropped",
                        c->s->dir, e->name);
            return 0;
        }
        snprintf(c->msg, sizeof c->msg, "cannot open %s: %s", e->name, strerror(errno));
        return 1;
    }
    if (write_all(e->fd, r->data, r->len, (off_t)(r->page_number - 1) * r->len) != 0) {
        snprintf(c->msg, sizeof c->msg, "replay into %s: %s", e->name, strerror(errno));
        return 1;
    }
    e->needs_sync = 1;
    c->s->st.replayed_frames++;
    return 0;
}

static void free_shared(shared *s) {
    while (s->files) {
        dbent *e = s->files;
        s->files = e->next;
        if (e->fd >= 0) close(e->fd);
        /* Pages still here are durable in the log (the close could not
         * checkpoint): the next open replays them. */
        pm_clear(&e->live);
        pm_clear(&e->going);
        pthread_mutex_destroy(&e->ov_mu);
        pthread_mutex_destroy(&e->lk_mu);
        free(e->name);
        free(e);
    }
    if (s->manifest_fd >= 0) close(s->manifest_fd);
    if (s->dir_fd >= 0) close(s->dir_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_mutex_destroy(&s->open_mu);
    pthread_cond_destroy(&s->cv);
    free(s->dir);
    free(s);
}

/* fdatasyncs the files written home since the last checkpoint: NULL, or
 * the one whose fdatasync failed (errno says why). */
static dbent *sync_files(dbent **list, int n) {
    for (int i = 0; i < n; i++)
        if (list[i]->fd >= 0 && fdatasync(list[i]->fd) != 0) return list[i];
    return NULL;
}

/* The checkpoint: every commit that pwal acknowledged is written home (none
 * is between pwal_commit_file and the end of its handover to the pagemap),
 * the files are synced, then the log may drop what they hold.
 *
 * Each file's waiting pages move from live to going under the lock that
 * holds commits back, so that commits go on into a fresh live while they
 * are written; reads find them in going until they are home. */
static int checkpoint(shared *s) {
    pthread_mutex_lock(&s->ckpt_mu);
    pthread_mutex_lock(&s->mu);
    if (s->broken || s->ckpt_off) {
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(&s->ckpt_mu);
        return SQLITE_IOERR;
    }
    s->ckpt_waiting = 1;
    while (s->in_flight > 0) pthread_cond_wait(&s->cv, &s->mu);
    uint64_t through = 0;
    pwal_status st = pwal_durable(s->log, &through, NULL);
    int n = 0;
    for (dbent *e = s->files; e; e = e->next) {
        pthread_mutex_lock(&e->ov_mu);
        /* going is empty here: the checkpoint that filled it emptied it,
         * or failed and broke the log. */
        if (e->live.n && !e->going.n) {
            e->going = e->live;
            memset(&e->live, 0, sizeof e->live);
            e->needs_sync = 1;
        }
        pthread_mutex_unlock(&e->ov_mu);
        n += e->needs_sync;
    }
    dbent **list = malloc(sizeof *list * (size_t)(n ? n : 1));
    int k = 0;
    if (list)
        for (dbent *e = s->files; e; e = e->next)
            if (e->needs_sync) {
                list[k++] = e;
                e->needs_sync = 0;
            }
    s->bytes_since_ckpt = 0;
    s->ckpt_waiting = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);

    int rc = SQLITE_OK;
    if (!list || st != PWAL_OK) {
        mark_broken(s, st != PWAL_OK ? pwal_last_error() : "out of memory");
        rc = SQLITE_IOERR;
    }
    /* Only this checkpoint (under ckpt_mu) changes going: it is read here
     * without ov_mu, and freed under it once home. */
    for (int i = 0; i < k && rc == SQLITE_OK; i++) {
        dbent *e = list[i];
        uint32_t pages = e->going.n;
        if (!pages) continue;
        off_t at = 0;
        if (e->fd < 0 || pm_write_home(&e->going, e->ov_page_size, e->fd, &at) != 0) {
            /* Durable in the log, not home: they stay in going, so reads
             * still see them, and the next open replays them. */
            char why[MAX_NAME + 128];
            snprintf(why, sizeof why, "writing committed pages into %s at offset %lld: %s",
                     e->name, (long long)at, e->fd < 0 ? "no descriptor" : strerror(errno));
            mark_broken(s, why);
            rc = SQLITE_IOERR_WRITE;
            break;
        }
        pthread_mutex_lock(&e->ov_mu);
        pm_clear(&e->going);
        e->size_gen++;
        pthread_mutex_unlock(&e->ov_mu);
        STAT_ADD(s, pages_home, pages);
    }
    dbent *unsynced = rc == SQLITE_OK ? sync_files(list, k) : NULL;
    if (rc != SQLITE_OK) {
        /* reported above */
    } else if (unsynced) {
        char why[MAX_NAME + 64];
        snprintf(why, sizeof why, "fdatasync of %s: %s", unsynced->name, strerror(errno));
        mark_broken(s, why);
        rc = SQLITE_IOERR_FSYNC;
    } else if (through > s->ckpt_epoch) {
        st = pwal_checkpoint(s->log, through);
        if (st != PWAL_OK) {
            mark_broken(s, pwal_last_error());
            rc = SQLITE_IOERR;
        } else {
            pthread_mutex_lock(&s->mu);
            s->ckpt_epoch = through;
            pthread_mutex_unlock(&s->mu);
            STAT_ADD(s, checkpoints, 1);
        }
    }
    free(list);
    pthread_mutex_unlock(&s->ckpt_mu);
    return rc;
}

/* pwal_checkpoint records its mark in the frames written after it: until
 * one is synced, a crash would replay the checkpointed epochs again. That is
 * harmless while the files change only through the log (the replay rewrites
 * what they hold), not before a change by another path. This writes and
 * syncs one frame of file id 0 (which replay skips) carrying the mark. */
static int make_mark_durable(shared *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t mark = s->ckpt_epoch;
    if (s->mark_durable >= mark) {
        pthread_mutex_unlock(&s->mu);
        return SQLITE_OK;
    }
    static const unsigned char zero = 0;
    pwal_frame fr = {.page_number = 1, .db_size_if_commit = 0, .data = &zero, .len = 1};
    pwal_txn txn = {.txn_id = ++s->next_seq, .frames = &fr, .frame_count = 1, .txn_epoch = 0};
    txn.commit_seq = txn.txn_id;
    pthread_mutex_unlock(&s->mu);
    pwal_status st = pwal_commit_file(s->log, 0, &txn, PWAL_WAIT_FOREVER, NULL);
    if (st != PWAL_OK) {
        mark_broken(s, pwal_last_error());
        return SQLITE_IOERR;
    }
    pthread_mutex_lock(&s->mu);
    if (mark > s->mark_durable) s->mark_durable = mark;
    pthread_mutex_unlock(&s->mu);
    return SQLITE_OK;
}

static int checkpoint_durably(shared *s) {
    int rc = checkpoint(s);
    return rc == SQLITE_OK ? make_mark_durable(s) : rc;
}

/* Opens the log of `dir` (replaying it) or takes another reference to it.
 * Under g_mu. */
static shared *acquire(const char *dir, char *err, size_t errlen) {
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    for (shared *s = g_logs; s; s = s->next)
        if (strcmp(s->dir, real) == 0) {
            /* The same directory, not another one made at its path after
             * it was renamed (its log, open here, moved with it). */
            struct stat now, open_dir;
            if (s->dir_fd >= 0 && stat(real, &now) == 0 && fstat(s->dir_fd, &open_dir) == 0 &&
                (now.st_dev != open_dir.st_dev || now.st_ino != open_dir.st_ino)) {
                snprintf(err, errlen,
                         "%s is not the directory whose log is open in this process (renamed "
                         "while open?)",
                         real);
                return NULL;
            }
            s->refs++;
            return s;
        }
    shared *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(real))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->manifest_fd = -1;
    s->dir_fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_mutex_init(&s->open_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    const char *every = getenv("PWALVFS_CHECKPOINT_MIB");
    s->ckpt_every = (every && atoll(every) > 0 ? (uint64_t)atoll(every) : 16) << 20;
    /* Test hook: a smaller limit on a batch's bytes, so that a test need
     * not build a transaction of more than 1 GiB. Never a larger one. */
    const char *max_txn = getenv("PWALVFS_TEST_MAX_TXN_BYTES");
    s->max_txn_bytes = PWAL_MAX_TXN_BYTES;
    if (max_txn && atoll(max_txn) > 0 && (uint64_t)atoll(max_txn) < PWAL_MAX_TXN_BYTES)
        s->max_txn_bytes = (uint64_t)atoll(max_txn);
    if (load_manifest(s) != 0) {
        snprintf(err, errlen, "%s/%s: %s", real, MANIFEST_NAME, strerror(errno));
        free_shared(s);
        return NULL;
    }
    char *log_path = path_in(real, LOG_NAME);
    replay_ctx ctx = {.s = s, .msg = ""};
    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    pwal_status st = log_path ? pwal_recover_and_open(log_path, NULL, 0, replay_one, &ctx, &rep, &s->log)
                              : PWAL_ERR_INVALID;
    free(log_path);
    if (st != PWAL_OK) {
        snprintf(err, errlen, "pwal_recover_and_open(%s/%s): %s: %s", real, LOG_NAME,
                 pwal_status_name(st), ctx.msg[0] ? ctx.msg : pwal_last_error());
        free_shared(s);
        return NULL;
    }
    s->ckpt_epoch = s->mark_durable = rep.checkpoint_epoch;
    if (rep.last_epoch > s->ckpt_epoch) {
        /* The replayed pages are home: sync them, then drop them from the log. */
        dbent *failed = NULL;
        int sync_errno = 0;
        for (dbent *e = s->files; e; e = e->next) {
            if (!failed && e->needs_sync && e->fd >= 0 && fdatasync(e->fd) != 0) {
                failed = e;
                sync_errno = errno;
            }
            e->needs_sync = 0;
        }
        st = failed ? PWAL_ERR_IO : pwal_checkpoint(s->log, rep.last_epoch);
        if (st != PWAL_OK) {
            char why[MAX_NAME + 64];
            if (failed) snprintf(why, sizeof why, "fdatasync of %s: %s", failed->name, strerror(sync_errno));
            snprintf(err, errlen, "after replaying %s/%s: %s", real, LOG_NAME,
                     failed ? why : pwal_last_error());
            pwal_close(s->log);
            free_shared(s);
            return NULL;
        }
        s->ckpt_epoch = rep.last_epoch;
        if (make_mark_durable(s) != SQLITE_OK) {
            snprintf(err, errlen, "after replaying %s/%s: %s", real, LOG_NAME, s->why);
            pwal_close(s->log);
            free_shared(s);
            return NULL;
        }
    }
    if (s->st.replayed_frames)
        sqlite3_log(SQLITE_NOTICE, "pwal vfs: %s: replayed %llu frames through epoch %llu", real,
                    (unsigned long long)s->st.replayed_frames, (unsigned long long)rep.last_epoch);
    s->refs = 1;
    s->next = g_logs;
    g_logs = s;
    return s;
}

static void release(shared *s) {
    pthread_mutex_lock(&g_mu);
    if (--s->refs > 0) {
        pthread_mutex_unlock(&g_mu);
        return;
    }
    for (shared **pp = &g_logs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    /* Still under g_mu, so that an open of the same directory waits until
     * the log is closed (pwal would refuse to recover a log open here). A
     * broken log, or one kept whole on purpose (PRAGMA pwal_checkpoints), is
     * left for the next open to replay. */
    if (!s->broken && !s->ckpt_off) checkpoint_durably(s);
    pwal_status st = pwal_close(s->log);
    if (st != PWAL_OK)
        sqlite3_log(SQLITE_IOERR, "pwal vfs: closing the log of %s: %s", s->dir, pwal_last_error());
    free_shared(s);
    pthread_mutex_unlock(&g_mu);
}

/* ---- what xAccess knows without asking ---- */

/* In rollback mode SQLite asks, before every transaction, whether
 * "<db>-journal" (a hot journal to roll back) and "<db>-wal" exist: two
 * failing stat()s per commit, which WAL mode answers from shared memory.
 * Here a "no" is remembered for the journal and WAL names of every main
 * database open through this VFS, and forgotten when this VFS opens or
 * deletes that name, and when the database's last handle closes.
 *
 * Answered from memory only while a read-write handle has locked the
 * database (dbent.process_locked): the guard (see "locks") then holds an
 * exclusive lock until the last handle in this process closes, so no
 * other process can make a journal meanwhile, and every one
 * made here is opened through this VFS. Read-only handles take ordinary
 * shared locks and register nothing here. */
typedef struct sidecar sidecar;
struct sidecar {
    sidecar *next;
    char *path; /* "<db>-journal" or "<db>-wal" */
    int refs;   /* read-write main database handles open by the db's name */
    int absent; /* xAccess(EXISTS) said no, and nothing since could change it */
    dbent *e;   /* the database's entry (alive while refs > 0) */
    uint64_t gen; /* bumped by every open or delete of the name */
};

static pthread_mutex_t g_side_mu = PTHREAD_MUTEX_INITIALIZER;
static sidecar *g_sides;
static uint64_t g_access_known; /* xAccess calls answered from memory (PRAGMA pwal_stats) */
static uint64_t g_side_gen;     /* the last generation given to a sidecar (under g_side_mu) */
#define SIDE_NO_GEN UINT64_MAX  /* sidecar_absent: do not remember the answer */
static const char *const SIDE_SUFFIX[2] = {"-journal", "-wal"};

static sidecar *side_find(const char *path) {
    for (sidecar *c = g_sides; c; c = c->next)
        if (strcmp(c->path, path) == 0) return c;
    return NULL;
}

/* Adds (or removes, with delta -1) a reference to the sidecars of db_path. */
static void sidecar_ref(const char *db_path, dbent *e, int delta) {
    size_t n = strlen(db_path);
    pthread_mutex_lock(&g_side_mu);
    for (int k = 0; k < 2; k++) {
        char *path = malloc(n + strlen(SIDE_SUFFIX[k]) + 1);
        if (!path) continue; /* not remembered: xAccess asks the file system */
        memcpy(path, db_path, n);
        strcpy(path + n, SIDE_SUFFIX[k]);
        sidecar *c = side_find(path);
        if (delta > 0 && !c && (c = calloc(1, sizeof *c))) {
            c->path = path;
            c->e = e;
            c->gen = ++g_side_gen;
            path = NULL;
            c->next = g_sides;
            g_sides = c;
        }
        free(path);
        if (!c) continue;
        c->refs += delta;
        if (c->refs <= 0) {
            for (sidecar **pp = &g_sides; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                    *pp = c->next;
                    break;
                }
            free(c->path);
            free(c);
        }
    }
    pthread_mutex_unlock(&g_side_mu);
}

/* Whether its database's lock keeps other processes out (see dbent). */
static int side_trusted(const sidecar *c) {
    return c && __atomic_load_n(&c->e->process_locked, __ATOMIC_ACQUIRE);
}

/* 1: known absent; 0: ask, and *gen is the generation to hand to
 * sidecar_note with the answer. */
static int sidecar_absent(const char *path, uint64_t *gen) {
    pthread_mutex_lock(&g_side_mu);
    sidecar *c = side_find(path);
    int trusted = side_trusted(c);
    int absent = trusted && c->absent;
    /* Remembered later only if the lock was held when the file system was
     * asked, and nothing opened or deleted the name meanwhile. */
    *gen = trusted ? c->gen : SIDE_NO_GEN;
    pthread_mutex_unlock(&g_side_mu);
    return absent;
}

/* The name was opened or deleted: ask the file system next time. */
static void sidecar_forget(const char *path) {
    pthread_mutex_lock(&g_side_mu);
    sidecar *c = side_find(path);
    if (c) {
        c->absent = 0;
        c->gen = ++g_side_gen;
    }
    pthread_mutex_unlock(&g_side_mu);
}

/* The file system said the name does not exist, when the name's
 * generation was gen: remembered unless it was opened or deleted since
 * (an answer from before a journal was created must not stick). */
static void sidecar_note_absent(const char *path, uint64_t gen) {
    pthread_mutex_lock(&g_side_mu);
    sidecar *c = side_find(path);
    if (c && gen != SIDE_NO_GEN && c->gen == gen && side_trusted(c)) c->absent = 1;
    pthread_mutex_unlock(&g_side_mu);
}

/* ---- locks ----
 *
 * The handles of a database in this process lock each other in memory
 * (dbent.lk_*), with the rules of SQLite's unix VFS between the
 * connections of one process; their files of the unix VFS underneath are
 * never locked. The file is locked once for all of them, by the guard: at
 * the first lock of any handle, an open file description lock
 * (F_OFD_SETLK) for writing on the bytes SQLite locks (its pending,
 * reserved and shared bytes), on the VFS's own descriptor of the file
 * (dbent.fd), held until the database's last handle closes.
 *
 * Unlike fcntl()'s process-wide locks, such a lock conflicts with every
 * fcntl() lock on the file, this process's included, and no close() of
 * another descriptor of the file drops it. So a connection of this
 * process through another VFS ("unix", "unix-excl") gets SQLITE_BUSY when
 * its own fcntl() lock fails, instead of reading a database file that
 * lacks the pages waiting in memory and writing a change that the next
 * checkpoint would write over; so does any other process. A lock of the
 * unix VFS itself could not do this: inside a process the unix VFS keeps
 * one lock state per file for all its connections, and one connection's
 * unlock drops fcntl() locks that another took.
 *
 * A file this process can only read (pfile.readonly) takes the unix VFS's
 * ordinary locks instead, through its own file: no page of it ever waits
 * in memory.
 *
 * A child forked while the guard is held would share the open file
 * description, and the lock with it, for as long as it lives: the child
 * handler of pthread_atfork() puts /dev/null in place of every descriptor
 * that holds a guard (the child cannot use the parent's connections
 * anyway, as SQLite says of any connection across a fork). */

/* SQLite's lock bytes (os.h): PENDING_BYTE, RESERVED_BYTE, then the
 * shared range of 510 bytes. */
#define LOCK_FIRST 0x40000000
#define LOCK_LEN (2 + 510)

static pthread_mutex_t g_guard_mu = PTHREAD_MUTEX_INITIALIZER; /* g_guard_fds */
static int *g_guard_fds;
static size_t g_nguard, g_capguard;
static int g_devnull = -1;

static void guard_note(int fd, int held) {
    pthread_mutex_lock(&g_guard_mu);
    if (held) {
        if (g_nguard == g_capguard) {
            size_t cap = g_capguard ? g_capguard * 2 : 16;
            int *grown = realloc(g_guard_fds, cap * sizeof *grown);
            if (grown) {
                g_guard_fds = grown;
                g_capguard = cap;
            }
        }
        if (g_nguard < g_capguard) g_guard_fds[g_nguard++] = fd;
    } else {
        for (size_t i = 0; i < g_nguard; i++)
            if (g_guard_fds[i] == fd) {
                g_guard_fds[i] = g_guard_fds[--g_nguard];
                break;
            }
    }
    pthread_mutex_unlock(&g_guard_mu);
}

static void fork_prepare(void) { pthread_mutex_lock(&g_guard_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&g_guard_mu); }
static void fork_child(void) {
    for (size_t i = 0; i < g_nguard; i++)
        if (g_devnull >= 0) dup3(g_devnull, g_guard_fds[i], O_CLOEXEC);
    g_nguard = 0;
    pthread_mutex_unlock(&g_guard_mu);
}

static int guard_fcntl(int fd, short type) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = LOCK_FIRST;
    fl.l_len = LOCK_LEN;
    int rc;
    do rc = fcntl(fd, F_OFD_SETLK, &fl);
    while (rc != 0 && errno == EINTR);
    return rc;
}

/* Takes the guard unless it holds it. Under e->lk_mu. */
static int guard_take(dbent *e) {
    if (e->guard_locked) return SQLITE_OK;
    if (e->fd < 0) return SQLITE_IOERR_LOCK;
    /* Registered first, so that a fork in between finds it. */
    guard_note(e->fd, 1);
    if (guard_fcntl(e->fd, F_WRLCK) != 0) {
        int err = errno;
        guard_note(e->fd, 0);
        /* Held elsewhere: a connection of this process through another
         * VFS, or another process. Try again. */
        if (err == EAGAIN || err == EACCES) return SQLITE_BUSY;
        sqlite3_log(SQLITE_IOERR_LOCK, "pwal vfs: %s: locking: %s", e->name, strerror(err));
        return SQLITE_IOERR_LOCK;
    }
    e->guard_locked = 1;
    return SQLITE_OK;
}

static int lock_up(pfile *p, int want) {
    dbent *e = p->e;
    if (p->lock >= want) return SQLITE_OK;
    pthread_mutex_lock(&e->lk_mu);
    int rc = SQLITE_OK;
    if (p->lock != e->lk_level && (e->lk_level >= SQLITE_LOCK_PENDING || want > SQLITE_LOCK_SHARED)) {
        rc = SQLITE_BUSY; /* another handle holds what precludes it */
    } else if (want == SQLITE_LOCK_SHARED &&
               (e->lk_level == SQLITE_LOCK_SHARED || e->lk_level == SQLITE_LOCK_RESERVED)) {
        p->lock = SQLITE_LOCK_SHARED;
        e->lk_shared++;
    } else if (want == SQLITE_LOCK_SHARED) { /* no handle holds a lock */
        rc = guard_take(e);
        if (rc == SQLITE_OK) {
            p->lock = e->lk_level = SQLITE_LOCK_SHARED;
            e->lk_shared = 1;
        }
    } else if (want == SQLITE_LOCK_EXCLUSIVE && e->lk_shared > 1) {
        /* Readers remain: PENDING keeps new ones out until they leave. */
        p->lock = e->lk_level = SQLITE_LOCK_PENDING;
        rc = SQLITE_BUSY;
    } else {
        p->lock = e->lk_level = want;
    }
    pthread_mutex_unlock(&e->lk_mu);
    return rc;
}

static void lock_down(pfile *p, int to) {
    dbent *e = p->e;
    if (p->lock <= to) return;
    pthread_mutex_lock(&e->lk_mu);
    if (p->lock > SQLITE_LOCK_SHARED) e->lk_level = SQLITE_LOCK_SHARED; /* it held the top */
    if (to == SQLITE_LOCK_NONE && --e->lk_shared == 0) e->lk_level = SQLITE_LOCK_NONE;
    p->lock = to;
    pthread_mutex_unlock(&e->lk_mu);
}

/* Releases the guard of e if e has no handle open. The descriptor stays
 * open (closing it would drop every fcntl() lock this process holds on
 * the file, other VFSes' too). */
static void guard_release_if_unused(shared *s, dbent *e) {
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&e->lk_mu);
    if (e->opens == 0 && e->guard_locked) {
        if (guard_fcntl(e->fd, F_UNLCK) != 0)
            sqlite3_log(SQLITE_IOERR_UNLOCK, "pwal vfs: %s: unlocking: %s", e->name, strerror(errno));
        guard_note(e->fd, 0);
        e->guard_locked = 0;
    }
    pthread_mutex_unlock(&e->lk_mu);
    pthread_mutex_unlock(&s->mu);
}

/* ---- io methods of a main database file ---- */

static void batch_reset(pfile *p);

static int x_close(sqlite3_file *f) {
    pfile *p = (pfile *)f;
    shared *s = p->s;
    if (!p->readonly) lock_down(p, SQLITE_LOCK_NONE); /* SQLite unlocks first; in case not */
    pthread_mutex_lock(&s->mu);
    int last = --p->e->opens == 0, quiet = s->broken || s->ckpt_off;
    if (last) __atomic_store_n(&p->e->process_locked, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->mu);
    /* The database's last handle: its waiting pages go home now, while its
     * lock still keeps other processes out, and the checkpoint's mark is
     * made durable, so that the file is whole once closed and no replay
     * can ever write an older page over what another process (with
     * another VFS, while this one keeps the log open for other databases)
     * commits to it later. */
    if (last && !quiet && checkpoint_durably(s) != SQLITE_OK)
        sqlite3_log(SQLITE_IOERR, "pwal vfs: closing %s: its checkpoint failed: %s", p->e->name,
                    s->why);
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    /* The last handle's checkpoint is done: the lock may go. */
    guard_release_if_unused(s, p->e);
    batch_reset(p);
    free(p->pgno);
    free(p->pages);
    free(p->frames);
    if (p->db_path) sidecar_ref(p->db_path, p->e, -1);
    free(p->db_path);
    release(p->s);
    return rc;
}

/* The committed page pgno waiting to go home, or NULL. Under e->ov_mu. */
static unsigned char *waiting_page(dbent *e, uint32_t pgno) {
    unsigned char *pg = pm_get(&e->live, pgno);
    return pg ? pg : pm_get(&e->going, pgno);
}

/* The end of the furthest page waiting to go home (0: none). Under e->ov_mu. */
static sqlite3_int64 waiting_end(dbent *e) {
    uint32_t top = e->live.max_pgno > e->going.max_pgno ? e->live.max_pgno : e->going.max_pgno;
    return (sqlite3_int64)top * e->ov_page_size;
}

/* The file's size changed (or may have): forget the one fstat gave. */
static void size_changed(dbent *e) {
    pthread_mutex_lock(&e->ov_mu);
    e->size_gen++;
    pthread_mutex_unlock(&e->ov_mu);
}

/* Reads what is committed: the pages waiting to go home over the file.
 *
 * A miss in the pagemaps reads the file without ov_mu: a page absent from
 * both is home already (a checkpoint frees going only once written), and no
 * commit of this file runs while SQLite reads it (its locks). A read across
 * pages holds ov_mu through the file's read, so that going cannot be freed
 * between the read and the patch. */
static int read_committed(pfile *p, void *buf, int amt, sqlite3_int64 off) {
    dbent *e = p->e;
    pthread_mutex_lock(&e->ov_mu);
    if (!e->live.n && !e->going.n) {
        pthread_mutex_unlock(&e->ov_mu);
        return p->real->pMethods->xRead(p->real, buf, amt, off);
    }
    sqlite3_int64 ps = e->ov_page_size, first = off / ps, last = (off + amt - 1) / ps;
    if (first == last) {
        unsigned char *pg = waiting_page(e, (uint32_t)(first + 1));
        if (pg) memcpy(buf, pg + (off - first * ps), (size_t)amt);
        pthread_mutex_unlock(&e->ov_mu);
        if (pg) return SQLITE_OK;
        return p->real->pMethods->xRead(p->real, buf, amt, off);
    }
    int rc = p->real->pMethods->xRead(p->real, buf, amt, off);
    if (rc == SQLITE_OK || rc == SQLITE_IOERR_SHORT_READ) {
        for (sqlite3_int64 i = first; i <= last; i++) {
            unsigned char *pg = waiting_page(e, (uint32_t)(i + 1));
            if (!pg) continue;
            sqlite3_int64 lo = i * ps > off ? i * ps : off;
            sqlite3_int64 hi = (i + 1) * ps < off + amt ? (i + 1) * ps : off + amt;
            memcpy((unsigned char *)buf + (lo - off), pg + (lo - i * ps), (size_t)(hi - lo));
        }
        /* Bytes past the file's end but before a waiting page's end are a
         * hole the write home will leave: zeros, as the short read gave. */
        if (rc == SQLITE_IOERR_SHORT_READ && off + amt <= waiting_end(e)) rc = SQLITE_OK;
    }
    pthread_mutex_unlock(&e->ov_mu);
    return rc;
}

static int x_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off) {
    pfile *p = (pfile *)f;
    if (p->in_batch && p->n && amt == (int)p->page_size && off % amt == 0) {
        uint32_t pg = (uint32_t)(off / amt) + 1;
        for (uint32_t i = p->n; i-- > 0;)
            if (p->pgno[i] == pg) {
                memcpy(buf, p->pages[i], (size_t)amt);
                return SQLITE_OK;
            }
    }
    return read_committed(p, buf, amt, off);
}

/* Before the file changes other than through a batch: no frame of it may
 * remain in the log above the checkpoint, and no page of it may wait to go
 * home (it would be written over the change). */
static int before_direct_change(pfile *p) {
    shared *s = p->s;
    pthread_mutex_lock(&s->mu);
    int broken = s->broken, need = p->e->last_epoch > s->mark_durable;
    pthread_mutex_lock(&p->e->ov_mu);
    need = need || p->e->live.n || p->e->going.n;
    pthread_mutex_unlock(&p->e->ov_mu);
    pthread_mutex_unlock(&s->mu);
    if (broken) return SQLITE_IOERR;
    if (need) return checkpoint_durably(s);
    return SQLITE_OK;
}

/* Drops the pages the batch holds (it will not be committed). */
static void batch_drop(pfile *p) {
    for (uint32_t i = 0; i < p->n; i++) free(p->pages[i]);
    p->n = 0;
}

/* A write inside a batch: the page is kept in memory for COMMIT. A write
 * the log cannot take drops the batch (batch_bad); SQLite learns it at
 * COMMIT_ATOMIC_WRITE, and no further page of the batch is kept, so a
 * batch too large for the log costs at most the limit in memory. */
static int batch_add(pfile *p, const void *buf, int amt, sqlite3_int64 off) {
    if (p->batch_bad) return SQLITE_OK; /* COMMIT fails whatever comes */
    if (amt < 512 || amt > PWAL_MAX_PAGE_BYTES || (amt & (amt - 1)) || off % amt ||
        off / amt >= UINT32_MAX || (p->n && (uint32_t)amt != p->page_size)) {
        p->batch_bad = 1; /* not a page of the batch's size: COMMIT will fail */
        batch_drop(p);
        return SQLITE_OK;
    }
    /* One pwal transaction holds at most PWAL_MAX_TXN_FRAMES frames and
     * PWAL_MAX_TXN_BYTES of pages (pwal_commit_file refuses more, and a
     * refused commit would break the log). Counted as if every page were
     * logged (page 1 may not be): a batch at the limit falls back too. */
    if ((uint64_t)p->n + 1 > PWAL_MAX_TXN_FRAMES ||
        ((uint64_t)p->n + 1) * (uint64_t)amt > p->s->max_txn_bytes) {
        p->batch_bad = 1;
        p->batch_oversized = 1;
        batch_drop(p);
        return SQLITE_OK;
    }
    p->page_size = (uint32_t)amt; /* the first page's size, or the same */
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 64;
        uint32_t *pg = realloc(p->pgno, sizeof *pg * cap);
        if (pg) p->pgno = pg;
        unsigned char **d = pg ? realloc(p->pages, sizeof *d * cap) : NULL;
        if (d) p->pages = d;
        pwal_frame *fr = d ? realloc(p->frames, sizeof *fr * cap) : NULL;
        if (!fr) return SQLITE_IOERR_NOMEM;
        p->frames = fr;
        p->cap = cap;
    }
    /* Its own buffer: a commit hands it to the pagemap without a copy. */
    unsigned char *page = malloc((size_t)amt);
    if (!page) return SQLITE_IOERR_NOMEM;
    memcpy(page, buf, (size_t)amt);
    p->pgno[p->n] = (uint32_t)(off / amt) + 1;
    p->pages[p->n] = page;
    p->n++;
    return SQLITE_OK;
}

/* After a failed COMMIT_ATOMIC_WRITE, SQLite (sqlite3PagerCommitPhaseOne)
 * writes the rollback journal it kept in memory to "<db>-journal"
 * (sqlite3JournalCreate) and then writes the database file directly,
 * without syncing the journal first: a power loss could keep some of the
 * database's writes and lose the journal that would roll them back. So
 * before the first direct write after such a failure, the journal (if
 * there is one: journal_mode MEMORY and OFF have none) and its directory
 * are synced, as SQLite's own journal path syncs them before it writes
 * the database. */
static int journal_first(pfile *p) {
    p->fell_back = 0;
    if (!p->db_path) return SQLITE_OK;
    size_t n = strlen(p->db_path) + sizeof "-journal";
    char *jpath = malloc(n);
    if (!jpath) return SQLITE_IOERR_NOMEM;
    snprintf(jpath, n, "%s-journal", p->db_path);
    int fd = open(jpath, O_RDONLY | O_CLOEXEC);
    int rc = SQLITE_OK, err = errno;
    if (fd >= 0) {
        if (fsync(fd) != 0) {
            rc = SQLITE_IOERR_FSYNC;
            err = errno;
        }
        close(fd);
        char *slash = strrchr(jpath, '/');
        if (rc == SQLITE_OK && slash) {
            *slash = 0;
            if (sync_dir(slash == jpath ? "/" : jpath) != 0) {
                rc = SQLITE_IOERR_DIR_FSYNC;
                err = errno;
            }
        }
        if (rc == SQLITE_OK) STAT_ADD(p->s, journal_syncs, 1);
    } else if (err != ENOENT) {
        rc = SQLITE_IOERR_FSYNC;
    }
    if (rc != SQLITE_OK)
        sqlite3_log(rc, "pwal vfs: syncing %s (or its directory) before the database's direct "
                        "writes: %s",
                    jpath, strerror(err));
    free(jpath);
    return rc;
}

static int x_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off) {
    pfile *p = (pfile *)f;
    if (p->in_batch) return batch_add(p, buf, amt, off);
    if (p->fell_back) {
        int rc = journal_first(p);
        if (rc != SQLITE_OK) return rc;
    }
    int rc = before_direct_change(p);
    if (rc != SQLITE_OK) return rc == SQLITE_IOERR ? SQLITE_IOERR_WRITE : rc;
    p->direct_dirty = 1;
    STAT_ADD(p->s, direct_writes, 1);
    rc = p->real->pMethods->xWrite(p->real, buf, amt, off);
    size_changed(p->e);
    return rc;
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
    pfile *p = (pfile *)f;
    if (p->in_batch) return SQLITE_IOERR_TRUNCATE;
    if (p->fell_back) {
        int rc = journal_first(p);
        if (rc != SQLITE_OK) return rc;
    }
    int rc = before_direct_change(p);
    if (rc != SQLITE_OK) return rc == SQLITE_IOERR ? SQLITE_IOERR_TRUNCATE : rc;
    p->direct_dirty = 1;
    STAT_ADD(p->s, direct_truncates, 1);
    rc = p->real->pMethods->xTruncate(p->real, size);
    size_changed(p->e);
    return rc;
}

static int x_sync(sqlite3_file *f, int flags) {
    pfile *p = (pfile *)f;
    if (!p->direct_dirty) {
        /* Everything since the last sync came through the log, durable there. */
        STAT_ADD(p->s, syncs_skipped, 1);
        return SQLITE_OK;
    }
    int rc = p->real->pMethods->xSync(p->real, flags);
    if (rc == SQLITE_OK) p->direct_dirty = 0;
    STAT_ADD(p->s, syncs, 1);
    return rc;
}

/* The file's size once the pages waiting to go home are there. The
 * pagemaps first, the file second: a checkpoint that writes them home in
 * between leaves the file as large as they said (read the other way round,
 * both could look small). The file's own size is remembered until
 * something changes it (size_changed): SQLite asks before every
 * transaction, and only this process writes the file while it is open. */
static int x_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    pfile *p = (pfile *)f;
    dbent *e = p->e;
    pthread_mutex_lock(&e->ov_mu);
    sqlite3_int64 end = waiting_end(e);
    uint64_t gen = e->size_gen;
    int trusted = __atomic_load_n(&e->process_locked, __ATOMIC_ACQUIRE);
    int known = trusted && e->real_size_gen == gen;
    *size = e->real_size;
    pthread_mutex_unlock(&e->ov_mu);
    if (!known) {
        int rc = p->real->pMethods->xFileSize(p->real, size);
        if (rc != SQLITE_OK) return rc;
        pthread_mutex_lock(&e->ov_mu);
        if (trusted && e->size_gen == gen) { /* nothing changed it meanwhile */
            e->real_size = *size;
            e->real_size_gen = gen;
        }
        pthread_mutex_unlock(&e->ov_mu);
    }
    if (end > *size) *size = end;
    return SQLITE_OK;
}

static int x_lock(sqlite3_file *f, int lock) {
    pfile *p = (pfile *)f;
    if (p->readonly) return p->real->pMethods->xLock(p->real, lock);
    int rc = lock_up(p, lock);
    if (rc == SQLITE_OK && !__atomic_load_n(&p->e->process_locked, __ATOMIC_ACQUIRE))
        __atomic_store_n(&p->e->process_locked, 1, __ATOMIC_RELEASE);
    return rc;
}

static int x_unlock(sqlite3_file *f, int lock) {
    pfile *p = (pfile *)f;
    if (p->readonly) return p->real->pMethods->xUnlock(p->real, lock);
    lock_down(p, lock);
    return SQLITE_OK;
}

/* Whether a handle holds RESERVED or above (no other process can: the
 * guard's lock keeps them out while any handle holds a lock). */
static int x_check_reserved(sqlite3_file *f, int *out) {
    pfile *p = (pfile *)f;
    if (p->readonly) return p->real->pMethods->xCheckReservedLock(p->real, out);
    pthread_mutex_lock(&p->e->lk_mu);
    *out = p->e->lk_level > SQLITE_LOCK_SHARED;
    pthread_mutex_unlock(&p->e->lk_mu);
    return SQLITE_OK;
}

/* Ends the batch: drops its pages that no commit handed over. */
static void batch_reset(pfile *p) {
    batch_drop(p);
    p->in_batch = 0;
    p->batch_bad = 0;
    p->batch_oversized = 0;
}

/* Hands the batch's pages to the pagemap, where reads find them until a
 * checkpoint writes them home. Needs room (pm_reserve). Under ov_mu. */
static void hand_over(pfile *p) {
    for (uint32_t i = 0; i < p->n; i++) {
        pm_put(&p->e->live, p->pgno[i], p->pages[i]);
        p->pages[i] = NULL;
    }
    p->e->ov_page_size = p->page_size;
}

/* Whether the new page 1 differs from the file's only in the file change
 * counter (bytes 24..27) and the version-valid-for number (92..95), which
 * rollback mode bumps in every commit. Such a page 1 need not be logged:
 * by induction the committed page 1 (in the pagemap or the file) differs
 * from the one recovery would restore only in those bytes, which hold one counter value in both places
 * (so the in-header database size stays valid), and the counter only
 * tells connections of a running process that the file changed; after a
 * crash no connection has a cache to invalidate. It halves what a one-row
 * commit logs. */
static int counter_only(const unsigned char *old, const unsigned char *page, uint32_t size) {
    return memcmp(old, page, 24) == 0 && memcmp(old + 28, page + 28, 92 - 28) == 0 &&
           memcmp(old + 96, page + 96, size - 96) == 0 && memcmp(page + 24, page + 92, 4) == 0 &&
           memcmp(old + 24, old + 92, 4) == 0;
}

static int page1_counter_only(pfile *p, const unsigned char *page) {
    if (p->page_size < 100 || p->page_size > PWAL_MAX_PAGE_BYTES) return 0;
    /* The committed page 1 is usually waiting in memory (every commit
     * rewrites it): compared there, without a copy. */
    pthread_mutex_lock(&p->e->ov_mu);
    unsigned char *waiting = p->e->ov_page_size == p->page_size ? waiting_page(p->e, 1) : NULL;
    int same = waiting && counter_only(waiting, page, p->page_size);
    pthread_mutex_unlock(&p->e->ov_mu);
    if (waiting) return same;
    unsigned char old[PWAL_MAX_PAGE_BYTES];
    if (read_committed(p, old, (int)p->page_size, 0) != SQLITE_OK) return 0;
    return counter_only(old, page, p->page_size);
}

/* The database's size in pages after the batch, for the commit frame:
 * page 1's header says it when it is valid (its change counter matches
 * the version-valid-for number, as rollback mode keeps it), which spares
 * an fstat per commit; else the file's size. At least the highest page. */
static uint32_t batch_db_pages(pfile *p) {
    uint32_t top = 0, header = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        if (p->pgno[i] > top) top = p->pgno[i];
        const unsigned char *h = p->pages[i];
        if (p->pgno[i] == 1 && p->page_size >= 100 && memcmp(h + 24, h + 92, 4) == 0)
            header = (uint32_t)h[28] << 24 | (uint32_t)h[29] << 16 | (uint32_t)h[30] << 8 | h[31];
    }
    if (!header) {
        sqlite3_int64 fsize = 0;
        if (x_file_size(&p->base, &fsize) == SQLITE_OK) header = (uint32_t)(fsize / p->page_size);
    }
    return header > top ? header : top;
}

/* COMMIT_ATOMIC_WRITE: the batch becomes one pwal transaction, durable on
 * return, then goes home. An error makes SQLite roll the batch back and
 * commit through its rollback journal instead. */
static int commit_batch(pfile *p) {
    shared *s = p->s;
    dbent *e = p->e;
    /* A batch the log cannot take (its pages are dropped, so before the
     * check for an empty batch): SQLite rolls it back and commits the
     * transaction through its rollback journal, whose direct writes
     * checkpoint first (before_direct_change). The log stays whole. */
    if (p->batch_bad) {
        if (p->batch_oversized) {
            STAT_ADD(s, oversized, 1);
            sqlite3_log(SQLITE_WARNING,
                        "pwal vfs: %s: a transaction of more than %llu bytes of pages (or %u "
                        "frames) is too large for one pwal transaction: committed through the "
                        "rollback journal",
                        e->name, (unsigned long long)s->max_txn_bytes, (unsigned)PWAL_MAX_TXN_FRAMES);
        }
        return SQLITE_IOERR_WRITE;
    }
    if (p->n == 0) return SQLITE_OK;
    /* The pagemap holds pages of one size: pages of another (a VACUUM that
     * changed the page size) wait until the old ones are home. */
    pthread_mutex_lock(&e->ov_mu);
    int other_size = (e->live.n || e->going.n) && e->ov_page_size != p->page_size;
    pthread_mutex_unlock(&e->ov_mu);
    if (other_size && checkpoint(s) != SQLITE_OK) return SQLITE_IOERR_WRITE;
    uint32_t db_pages = batch_db_pages(p), nf = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const unsigned char *data = p->pages[i];
        if (p->pgno[i] == 1 && page1_counter_only(p, data)) continue;
        p->frames[nf].page_number = p->pgno[i];
        p->frames[nf].db_size_if_commit = 0;
        p->frames[nf].data = data;
        p->frames[nf].len = p->page_size;
        nf++;
    }
    if (nf == 0) {
        /* Nothing to log (page 1's counter only): home with the rest. */
        pthread_mutex_lock(&e->ov_mu);
        int room = pm_reserve(&e->live, p->n);
        if (room == 0) hand_over(p);
        pthread_mutex_unlock(&e->ov_mu);
        return room == 0 ? SQLITE_OK : SQLITE_IOERR_NOMEM;
    }
    p->frames[nf - 1].db_size_if_commit = db_pages;

    pthread_mutex_lock(&s->mu);
    if (s->fail_commits > 0) {
        s->fail_commits--;
        pthread_mutex_unlock(&s->mu);
        STAT_ADD(s, commit_failures, 1);
        return SQLITE_IOERR_WRITE;
    }
    if (s->broken || assign_id(s, e) != 0) {
        int was_broken = s->broken;
        pthread_mutex_unlock(&s->mu);
        if (!was_broken) mark_broken(s, "cannot append to " MANIFEST_NAME);
        STAT_ADD(s, commit_failures, 1);
        return SQLITE_IOERR_WRITE;
    }
    while (s->ckpt_waiting) pthread_cond_wait(&s->cv, &s->mu);
    /* Room in the pagemap, reserved while no checkpoint can take it away
     * (one waits for in_flight to drain before it moves live), so that
     * the handover after the commit cannot fail. */
    pthread_mutex_lock(&e->ov_mu);
    int room = pm_reserve(&e->live, p->n);
    pthread_mutex_unlock(&e->ov_mu);
    if (room != 0) {
        pthread_mutex_unlock(&s->mu);
        STAT_ADD(s, commit_failures, 1);
        return SQLITE_IOERR_NOMEM;
    }
    s->in_flight++;
    pwal_txn txn;
    txn.txn_id = ++s->next_seq;
    txn.commit_seq = txn.txn_id;
    txn.frames = p->frames;
    txn.frame_count = nf;
    txn.txn_epoch = 0;
    pthread_mutex_unlock(&s->mu);

    uint64_t epoch = 0;
    pwal_status st = pwal_commit_file(s->log, e->file_id, &txn, PWAL_WAIT_FOREVER, &epoch);
    int rc = SQLITE_OK;
    if (st != PWAL_OK) {
        /* Maybe durable, maybe not: the files are no longer known to hold
         * everything the log does. */
        mark_broken(s, pwal_last_error());
        rc = SQLITE_IOERR_WRITE;
    } else {
        /* Before in_flight drops: a checkpoint that waits for it then finds
         * these pages and writes them home before it moves the mark. */
        pthread_mutex_lock(&e->ov_mu);
        hand_over(p);
        pthread_mutex_unlock(&e->ov_mu);
    }
    pthread_mutex_lock(&s->mu);
    if (st == PWAL_OK) {
        if (epoch > e->last_epoch) e->last_epoch = epoch;
        s->bytes_since_ckpt += (uint64_t)nf * p->page_size;
    }
    int want_ckpt = s->bytes_since_ckpt >= s->ckpt_every && !s->broken && !s->ckpt_off;
    if (--s->in_flight == 0 && s->ckpt_waiting) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc != SQLITE_OK) {
        STAT_ADD(s, commit_failures, 1);
        return rc;
    }
    STAT_ADD(s, commits, 1);
    STAT_ADD(s, frames, nf);
    STAT_ADD(s, frame_bytes, (uint64_t)nf * p->page_size);
    /* The commit is durable whatever the checkpoint does; a failed one
     * breaks the log and the next write reports it. */
    if (want_ckpt && pthread_mutex_trylock(&s->ckpt_mu) == 0) {
        pthread_mutex_unlock(&s->ckpt_mu);
        checkpoint(s);
    }
    return SQLITE_OK;
}

static int pragma_bool(const char *v) {
    return v && (sqlite3_stricmp(v, "on") == 0 || sqlite3_stricmp(v, "1") == 0 ||
                 sqlite3_stricmp(v, "true") == 0 || sqlite3_stricmp(v, "yes") == 0);
}

/* PRAGMA pwal_stats, pwal_checkpoint, and the test hooks pwal_checkpoints and
 * pwal_fail_commits (docs/SQLITE.md). */
static int x_pragma(pfile *p, char **arg) {
    shared *s = p->s;
    const char *name = arg[1], *val = arg[2];
    if (sqlite3_stricmp(name, "pwal_stats") == 0) {
        vstats v;
        pthread_mutex_lock(&s->mu);
        v = s->st;
        unsigned long long ck = s->ckpt_epoch;
        int broken = s->broken;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&p->e->ov_mu);
        unsigned waiting = p->e->live.n + p->e->going.n;
        pthread_mutex_unlock(&p->e->ov_mu);
        pwal_stats ls;
        memset(&ls, 0, sizeof ls);
        ls.struct_size = sizeof ls;
        pwal_get_stats(s->log, &ls);
        arg[0] = sqlite3_mprintf(
            "commits=%llu frames=%llu frame_bytes=%llu commit_failures=%llu rollbacks=%llu "
            "direct_writes=%llu direct_truncates=%llu syncs=%llu syncs_skipped=%llu "
            "checkpoints=%llu checkpoint_epoch=%llu replayed_frames=%llu file_id=%u broken=%d "
            "pages_waiting=%u pages_home=%llu access_known=%llu oversized=%llu journal_syncs=%llu "
            "log_epochs=%llu log_transactions=%llu log_bytes=%llu log_syncs=%llu "
            "log_segments_created=%llu log_segments_recycled=%llu log_sync_p50_us=%llu",
            (unsigned long long)v.commits, (unsigned long long)v.frames,
            (unsigned long long)v.frame_bytes, (unsigned long long)v.commit_failures,
            (unsigned long long)v.rollbacks, (unsigned long long)v.direct_writes,
            (unsigned long long)v.direct_truncates, (unsigned long long)v.syncs,
            (unsigned long long)v.syncs_skipped, (unsigned long long)v.checkpoints, ck,
            (unsigned long long)v.replayed_frames, p->e->file_id, broken, waiting,
            (unsigned long long)v.pages_home,
            (unsigned long long)__atomic_load_n(&g_access_known, __ATOMIC_RELAXED),
            (unsigned long long)v.oversized, (unsigned long long)v.journal_syncs,
            (unsigned long long)ls.epochs, (unsigned long long)ls.transactions,
            (unsigned long long)ls.bytes_written, (unsigned long long)ls.syncs,
            (unsigned long long)ls.segments_created, (unsigned long long)ls.segments_recycled,
            (unsigned long long)ls.sync_latency.p50_us);
        return SQLITE_OK;
    }
    if (sqlite3_stricmp(name, "pwal_checkpoint") == 0) {
        int rc = checkpoint(s);
        if (rc != SQLITE_OK) {
            pthread_mutex_lock(&s->mu);
            arg[0] = sqlite3_mprintf("pwal checkpoint failed: %s",
                                     s->ckpt_off ? "pwal_checkpoints is off" : s->why);
            pthread_mutex_unlock(&s->mu);
            return SQLITE_ERROR;
        }
        pthread_mutex_lock(&s->mu);
        arg[0] = sqlite3_mprintf("%llu", (unsigned long long)s->ckpt_epoch);
        pthread_mutex_unlock(&s->mu);
        return SQLITE_OK;
    }
    if (sqlite3_stricmp(name, "pwal_checkpoints") == 0) {
        pthread_mutex_lock(&s->mu);
        if (val) s->ckpt_off = !pragma_bool(val);
        arg[0] = sqlite3_mprintf("%s", s->ckpt_off ? "off" : "on");
        pthread_mutex_unlock(&s->mu);
        return SQLITE_OK;
    }
    if (sqlite3_stricmp(name, "pwal_fail_commits") == 0) {
        pthread_mutex_lock(&s->mu);
        if (val) s->fail_commits = atoi(val);
        arg[0] = sqlite3_mprintf("%d", s->fail_commits);
        pthread_mutex_unlock(&s->mu);
        return SQLITE_OK;
    }
    return SQLITE_NOTFOUND;
}

static int x_file_control(sqlite3_file *f, int op, void *arg) {
    pfile *p = (pfile *)f;
    switch (op) {
    case SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
        batch_reset(p);
        p->in_batch = 1;
        p->fell_back = 0;
        return SQLITE_OK;
    case SQLITE_FCNTL_COMMIT_ATOMIC_WRITE: {
        int rc = p->in_batch ? commit_batch(p) : SQLITE_MISUSE;
        batch_reset(p);
        p->fell_back = rc != SQLITE_OK;
        return rc;
    }
    case SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
        STAT_ADD(p->s, rollbacks, 1);
        batch_reset(p);
        return SQLITE_OK;
    case SQLITE_FCNTL_LOCKSTATE:
        if (p->readonly) break;
        *(int *)arg = p->lock;
        return SQLITE_OK;
    case SQLITE_FCNTL_PRAGMA: {
        int rc = x_pragma(p, (char **)arg);
        if (rc != SQLITE_NOTFOUND) return rc;
        break;
    }
    case SQLITE_FCNTL_VFSNAME: {
        char *inner = NULL;
        p->real->pMethods->xFileControl(p->real, op, &inner);
        *(char **)arg = sqlite3_mprintf("%s/%s", VFS_NAME, inner ? inner : g_orig->zName);
        sqlite3_free(inner);
        return SQLITE_OK;
    }
    default:
        break;
    }
    int rc = p->real->pMethods->xFileControl(p->real, op, arg);
    switch (op) {
    /* The ones SQLite sends around every transaction, which leave the
     * file's size alone. Any other (a size hint, a chunk size, ones this
     * code does not know) may change it. */
    case SQLITE_FCNTL_COMMIT_PHASETWO:
    case SQLITE_FCNTL_HAS_MOVED:
    case SQLITE_FCNTL_PDB:
    case SQLITE_FCNTL_SYNC:
    case SQLITE_FCNTL_LOCKSTATE:
    case SQLITE_FCNTL_BUSYHANDLER:
    case SQLITE_FCNTL_DATA_VERSION:
    case SQLITE_FCNTL_LAST_ERRNO:
        break;
    default:
        size_changed(p->e);
    }
    return rc;
}

static int x_sector_size(sqlite3_file *f) {
    pfile *p = (pfile *)f;
    return p->real->pMethods->xSectorSize(p->real);
}

static int x_device_characteristics(sqlite3_file *f) {
    pfile *p = (pfile *)f;
    return p->real->pMethods->xDeviceCharacteristics(p->real) | SQLITE_IOCAP_BATCH_ATOMIC;
}

/* No memory mapping: reads go through xRead. (Version 1: SQLite does not
 * call these either; a shim that forwards them gets nothing mapped.) */
static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp) {
    (void)f;
    (void)off;
    (void)amt;
    *pp = NULL;
    return SQLITE_OK;
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *ptr) {
    (void)f;
    (void)off;
    (void)ptr;
    return SQLITE_OK;
}

/* No shared memory. SQLite itself never calls these (the methods are of
 * version 1, which has none); they are there for a shim stacked on this VFS
 * that declares a later version and forwards every call without looking at
 * the version underneath (as SQLite's cksumvfs does): it gets an error, not
 * a call through NULL. */
static int x_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **pp) {
    (void)f;
    (void)page;
    (void)size;
    (void)extend;
    *pp = NULL;
    return SQLITE_IOERR_SHMMAP;
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
    (void)f;
    (void)offset;
    (void)n;
    (void)flags;
    return SQLITE_IOERR_SHMLOCK;
}

static void x_shm_barrier(sqlite3_file *f) {
    (void)f;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static int x_shm_unmap(sqlite3_file *f, int delete_flag) {
    (void)f;
    (void)delete_flag;
    return SQLITE_OK;
}

/* Version 1: no shared memory (so SQLite offers WAL only under
 * locking_mode=EXCLUSIVE, where it keeps the WAL index in its own heap)
 * and no memory mapping. Every slot of version 3 is filled all the same
 * (see x_shm_map). */
static const sqlite3_io_methods io_methods = {
    1,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_characteristics,
    x_shm_map, /* never called by SQLite (version 1): see x_shm_map */
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

/* ---- the VFS ---- */

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags) {
    (void)vfs;
    if (name) sidecar_forget(name); /* it may exist from now on */
    if (!name || !(flags & SQLITE_OPEN_MAIN_DB))
        return g_orig->xOpen(g_orig, name, f, flags, out_flags); /* journals, temp files */
    pfile *p = (pfile *)f;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)&p[1];
    const char *slash = strrchr(name, '/');
    char dir[PATH_MAX];
    const char *base;
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
        base = name;
    } else {
        size_t n = (size_t)(slash - name);
        if (n >= sizeof dir) return SQLITE_CANTOPEN;
        memcpy(dir, name, n ? n : 1);
        dir[n ? n : 1] = 0;
        base = slash + 1;
    }
    if (!*base || strlen(base) > MAX_NAME || strchr(base, '\n')) {
        sqlite3_log(SQLITE_CANTOPEN, "pwal vfs: %s: a name the manifest cannot hold", name);
        return SQLITE_CANTOPEN;
    }
    char err[PATH_MAX * 2 + 512];
    pthread_mutex_lock(&g_mu);
    shared *s = acquire(dir, err, sizeof err);
    pthread_mutex_unlock(&g_mu);
    if (!s) {
        sqlite3_log(SQLITE_CANTOPEN, "pwal vfs: %s", err);
        return SQLITE_CANTOPEN;
    }
    /* The file is opened read-write even for a read-only connection (SQLite
     * is told it is read-only, and never writes through it), so that it
     * locks in memory with the other handles (see "locks"): a file the
     * unix VFS opened read-only could only take the unix VFS's own locks,
     * which the guard refuses. A file this process cannot
     * write is opened read-only all the same (then every handle of it is,
     * no page of it waits in memory, and it has no guard). */
    int opened = 0, want_ro = (flags & SQLITE_OPEN_READONLY) != 0;
    int real_flags = want_ro ? (flags & ~SQLITE_OPEN_READONLY) | SQLITE_OPEN_READWRITE : flags;
    int rc = g_orig->xOpen(g_orig, name, p->real, real_flags, &opened);
    if (rc != SQLITE_OK) {
        release(s);
        return rc;
    }
    p->readonly = (opened & SQLITE_OPEN_READONLY) != 0; /* the real file's */
    if (want_ro) opened = (opened & ~SQLITE_OPEN_READWRITE) | SQLITE_OPEN_READONLY;
    if (out_flags) *out_flags = opened;
    /* One open at a time per directory past this point, so that two opens
     * of a replaced database do not both swap its descriptor. */
    pthread_mutex_lock(&s->open_mu);
    pthread_mutex_lock(&s->mu);
    dbent *e = find_name(s, base);
    if (!e) e = add_ent(s, base, 0);
    int replaced = 0, busy = 0;
    if (e && e->fd >= 0) {
        /* Known from before: is the file SQLite just opened (the one at
         * its path) still the one the log writes home to? */
        struct stat sb;
        replaced = stat(name, &sb) == 0 &&
                   (sb.st_dev != e->dev || sb.st_ino != e->ino);
        busy = replaced && e->opens > 0;
    }
    pthread_mutex_unlock(&s->mu);
    const char *refused = NULL;
    if (busy) {
        /* Its pages in memory, its handles' locks and its checks all
         * belong to the old file, still open here. */
        refused = "the file at this name was replaced while a handle to the old one is open";
    } else if (replaced && checkpoint_durably(s) != SQLITE_OK) {
        /* Deleted and made anew (or renamed over) since: nothing of the
         * old file may reach the new one, neither a waiting page nor, after
         * a crash, a replayed frame of its file id. */
        refused = "the log still holds frames of the file this one replaced, and cannot checkpoint";
    }
    if (refused) {
        pthread_mutex_unlock(&s->open_mu);
        sqlite3_log(SQLITE_CANTOPEN, "pwal vfs: %s: %s", name, refused);
        p->real->pMethods->xClose(p->real);
        release(s);
        return SQLITE_CANTOPEN;
    }
    if (replaced) {
        /* Under ckpt_mu: no checkpoint is writing through the old one. */
        pthread_mutex_lock(&s->ckpt_mu);
        pthread_mutex_lock(&s->mu);
        close(e->fd);
        e->fd = -1;
        pthread_mutex_lock(&e->ov_mu);
        e->size_gen++;
        pthread_mutex_unlock(&e->ov_mu);
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(&s->ckpt_mu);
    }
    pthread_mutex_lock(&s->mu);
    if (e) open_ent_fd(s, e);
    if (e && e->fd >= 0) e->opens++;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->open_mu);
    if (!e || e->fd < 0) {
        sqlite3_log(SQLITE_CANTOPEN, "pwal vfs: %s: %s", name, e ? strerror(errno) : "no memory");
        p->real->pMethods->xClose(p->real);
        release(s);
        return SQLITE_CANTOPEN;
    }
    p->s = s;
    p->e = e;
    /* Read-only handles lock the ordinary way: nothing is remembered for
     * them. Without a name, xAccess just asks. */
    p->db_path = p->readonly ? NULL : strdup(name);
    if (p->db_path) sidecar_ref(p->db_path, p->e, 1);
    p->base.pMethods = &io_methods;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir_flag) {
    (void)v;
    sidecar_forget(name);
    return g_orig->xDelete(g_orig, name, sync_dir_flag);
}

static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    (void)v;
    uint64_t gen = SIDE_NO_GEN;
    if (flags == SQLITE_ACCESS_EXISTS && sidecar_absent(name, &gen)) {
        __atomic_add_fetch(&g_access_known, 1, __ATOMIC_RELAXED);
        *out = 0;
        return SQLITE_OK;
    }
    int rc = g_orig->xAccess(g_orig, name, flags, out);
    if (rc == SQLITE_OK && flags == SQLITE_ACCESS_EXISTS && !*out) sidecar_note_absent(name, gen);
    return rc;
}

static int v_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
    (void)v;
    return g_orig->xFullPathname(g_orig, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *v, const char *name) {
    (void)v;
    return g_orig->xDlOpen(g_orig, name);
}

static void v_dlerror(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    g_orig->xDlError(g_orig, n, out);
}

static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) {
    (void)v;
    return g_orig->xDlSym(g_orig, h, sym);
}

static void v_dlclose(sqlite3_vfs *v, void *h) {
    (void)v;
    g_orig->xDlClose(g_orig, h);
}

static int v_randomness(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return g_orig->xRandomness(g_orig, n, out);
}

static int v_sleep(sqlite3_vfs *v, int us) {
    (void)v;
    return g_orig->xSleep(g_orig, us);
}

static int v_current_time(sqlite3_vfs *v, double *out) {
    (void)v;
    return g_orig->xCurrentTime(g_orig, out);
}

static int v_get_last_error(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return g_orig->xGetLastError ? g_orig->xGetLastError(g_orig, n, out) : 0;
}

static int v_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out) {
    (void)v;
    return g_orig->xCurrentTimeInt64(g_orig, out);
}

static sqlite3_vfs pwal_vfs = {
    2,    /* iVersion */
    0,    /* szOsFile: set at registration */
    0,    /* mxPathname: set at registration */
    NULL, /* pNext */
    VFS_NAME,
    NULL, /* pAppData */
    v_open,
    v_delete,
    v_access,
    v_full_pathname,
    v_dlopen,
    v_dlerror,
    v_dlsym,
    v_dlclose,
    v_randomness,
    v_sleep,
    v_current_time,
    v_get_last_error,
    v_current_time_int64,
    NULL, /* xSetSystemCall ... (version 3): not offered */
    NULL,
    NULL,
};

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_pwalvfs_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
    (void)db;
    SQLITE_EXTENSION_INIT2(api);
    if (sqlite3_vfs_find(VFS_NAME)) return SQLITE_OK_LOAD_PERMANENTLY; /* loaded before */
    /* Without batch atomic writes SQLite never sends BEGIN_ATOMIC_WRITE:
     * every transaction would go through its rollback journal and none
     * through the log, silently. (A SQLite built without compile option
     * diagnostics cannot say, and is refused too.) */
#ifndef SQLITE_CORE
    int diags = sqlite3_api->compileoption_used != NULL;
#else
    int diags = 1;
#endif
    if (!diags || !sqlite3_compileoption_used("ENABLE_BATCH_ATOMIC_WRITE")) {
        const char *why = diags ? "was built without SQLITE_ENABLE_BATCH_ATOMIC_WRITE"
                                : "cannot tell whether it was built with "
                                  "SQLITE_ENABLE_BATCH_ATOMIC_WRITE (built without compile "
                                  "option diagnostics)";
        sqlite3_log(SQLITE_ERROR, "pwal vfs: this SQLite (%s) %s; the VFS needs it", sqlite3_libversion(), why);
        if (err)
            *err = sqlite3_mprintf("pwal vfs: this SQLite (%s) %s, so it would commit through its "
                                   "rollback journal and never through the log; rebuild SQLite "
                                   "with -DSQLITE_ENABLE_BATCH_ATOMIC_WRITE",
                                   sqlite3_libversion(), why);
        return SQLITE_ERROR;
    }
    /* The handles' files underneath never lock (see "locks"): "unix-excl"
     * or the default, it makes no difference. */
    g_orig = sqlite3_vfs_find("unix-excl");
    if (!g_orig) g_orig = sqlite3_vfs_find(NULL);
    if (!g_orig) {
        if (err) *err = sqlite3_mprintf("pwal vfs: no default VFS to wrap");
        return SQLITE_ERROR;
    }
    if (g_orig->iVersion < 2 || !g_orig->xCurrentTimeInt64) {
        if (err) *err = sqlite3_mprintf("pwal vfs: the default VFS is too old to wrap");
        return SQLITE_ERROR;
    }
    /* See "locks": a forked child lets go of the guards. */
    g_devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (g_devnull < 0 || pthread_atfork(fork_prepare, fork_parent, fork_child) != 0) {
        if (err) *err = sqlite3_mprintf("pwal vfs: cannot set up its fork handlers: %s", strerror(errno));
        return SQLITE_ERROR;
    }
    pwal_vfs.szOsFile = (int)sizeof(pfile) + g_orig->szOsFile;
    pwal_vfs.mxPathname = g_orig->mxPathname;
    int rc = sqlite3_vfs_register(&pwal_vfs, 0);
    return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}
