/*
 * powercut.c: a power loss, simulated in-process for the data of regular
 * files. An LD_PRELOAD library (build/libpowercut.so) for the power-loss
 * test (tests/sqlite_vfs.rs, power_loss; docs/TESTING.md).
 *
 *     PWAL_POWERCUT_AT=N     cut the power at the Nth intercepted call
 *                            (0 or unset: never)
 *     PWAL_POWERCUT_SEED=S   what the disk kept of the unsynced writes:
 *                            0 or unset, nothing; else a random subset of
 *                            them, some torn at 512-byte sectors (seeded)
 *     PWAL_POWERCUT_REPORT=1 print "powercut: calls N" to stderr at exit
 *
 * It intercepts every call that changes a regular file's data or size or
 * makes it durable: write, writev, pwrite, pwritev (and their 64 and v2
 * forms), ftruncate, fsync, fdatasync, syncfs, sync. A change records the
 * file's bytes in its range and its size from before it (its pre-image),
 * in memory, per inode; fsync or fdatasync of the file forgets them (the
 * file is durable as it is; the call itself does nothing more, since no
 * real power goes out); syncfs and sync forget every file's. Writes to a
 * file opened O_SYNC or O_DSYNC, or with RWF_DSYNC, are durable at once.
 *
 * At the Nth intercepted call (counted over every call on a regular file,
 * the syncs included), before it happens, the world stops: every call
 * goes through one mutex, which the cut keeps. It undoes every unsynced
 * change in reverse order, so each file holds what its last sync made
 * durable, then (with a seed) writes back the chosen subset of the undone
 * writes in their order, and _exits with status 86.
 *
 * The model's limits: directory operations (create, rename, unlink, mkdir)
 * are durable at once; the file's size moves with its data (no torn size
 * metadata); open with O_TRUNC is not intercepted (neither SQLite nor
 * libpwal uses it); writes through a shared writable mapping and calls that
 * change a file another way (fallocate, copy_file_range, sendfile,
 * truncate by path) are not modelled: they abort the process, so a test
 * cannot pass by going around the model.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define CUT_STATUS 86
#define SECTOR 512

/* ---- the real calls ---- */

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off_t, int);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static void (*real_sync)(void);

static void say(const char *msg) {
    size_t n = strlen(msg);
    if (real_write) real_write(2, msg, n);
}

static void *must_sym(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "powercut: no %s\n", name);
        abort();
    }
    return p;
}

/* ---- state (under g_mu) ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long g_at, g_calls, g_seed;
static int g_report;

typedef struct {
    dev_t dev;
    ino_t ino;
    int fd; /* our own descriptor (O_RDWR), open until exit: it keeps the inode */
} inode_t;

static inode_t *g_inodes;
static size_t g_ninodes, g_capinodes;

/* One unsynced change: before it, the file was old_size long and held
 * pre[0..pre_len) at off. Writes keep what they wrote (post) too, for a
 * seeded cut that writes some of them back. */
typedef struct change change;
struct change {
    change *prev; /* the one before, newest first */
    size_t ino;   /* index in g_inodes */
    off_t off;
    off_t old_size;
    size_t pre_len;
    unsigned char *pre;
    int is_write;      /* else a truncation to new_size */
    off_t new_size;    /* truncation */
    size_t post_len;   /* write */
    unsigned char *post;
};

static change *g_newest;

static void load(void) {
    real_write = must_sym("write");
    real_pwrite64 = must_sym("pwrite64");
    real_writev = must_sym("writev");
    real_pwritev64 = must_sym("pwritev64");
    real_pwritev64v2 = must_sym("pwritev64v2");
    real_ftruncate64 = must_sym("ftruncate64");
    real_fsync = must_sym("fsync");
    real_fdatasync = must_sym("fdatasync");
    real_syncfs = must_sym("syncfs");
    real_sync = must_sym("sync");
    const char *v = getenv("PWAL_POWERCUT_AT");
    g_at = v ? strtoull(v, NULL, 10) : 0;
    v = getenv("PWAL_POWERCUT_SEED");
    g_seed = v ? strtoull(v, NULL, 0) : 0;
    v = getenv("PWAL_POWERCUT_REPORT");
    g_report = v && *v && strcmp(v, "0") != 0;
}

/* Also from the first intercepted call, should one come before the
 * constructor (another library's constructor writing). */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void ensure(void) { pthread_once(&g_once, load); }

__attribute__((constructor)) static void init(void) { ensure(); }

__attribute__((destructor)) static void fini(void) {
    if (!g_report) return;
    char line[64];
    snprintf(line, sizeof line, "powercut: calls %llu\n", g_calls);
    say(line);
}

static void fatal(const char *what) {
    char line[256];
    snprintf(line, sizeof line, "powercut: %s: %s\n", what, strerror(errno));
    say(line);
    abort();
}

/* Whether the power-loss model covers fd: a regular file whose writes are
 * not synchronous. */
static int regular(int fd, struct stat *sb) {
    return fd >= 0 && fstat(fd, sb) == 0 && S_ISREG(sb->st_mode);
}

static int sync_writes(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DSYNC);
}

static size_t inode_of(int fd, const struct stat *sb) {
    for (size_t i = 0; i < g_ninodes; i++)
        if (g_inodes[i].dev == sb->st_dev && g_inodes[i].ino == sb->st_ino) return i;
    if (g_ninodes == g_capinodes) {
        g_capinodes = g_capinodes ? g_capinodes * 2 : 64;
        g_inodes = realloc(g_inodes, g_capinodes * sizeof *g_inodes);
        if (!g_inodes) fatal("out of memory");
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int own = open(path, O_RDWR | O_CLOEXEC);
    if (own < 0) fatal("reopening a written file");
    g_inodes[g_ninodes] = (inode_t){sb->st_dev, sb->st_ino, own};
    return g_ninodes++;
}

static uint64_t rng_next(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void write_fully(int fd, const unsigned char *b, size_t n, off_t off) {
    while (n > 0) {
        ssize_t w = real_pwrite64(fd, b, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fatal("undoing a write");
        b += w;
        n -= (size_t)w;
        off += w;
    }
}

/* The cut, under g_mu (kept): every unsynced change undone, newest first;
 * then, with a seed, some of the writes written back, oldest first. */
static void cut(void) {
    size_t n = 0;
    for (change *c = g_newest; c; c = c->prev) {
        int fd = g_inodes[c->ino].fd;
        if (real_ftruncate64(fd, c->old_size) != 0) fatal("undoing a size change");
        if (c->pre_len) write_fully(fd, c->pre, c->pre_len, c->off);
        n++;
    }
    size_t kept = 0, torn = 0;
    if (g_seed && n) {
        change **order = malloc(n * sizeof *order);
        if (!order) fatal("out of memory");
        size_t k = n;
        for (change *c = g_newest; c; c = c->prev) order[--k] = c;
        uint64_t s = g_seed ^ g_at;
        for (size_t i = 0; i < n; i++) {
            change *c = order[i];
            if (rng_next(&s) % 2) continue; /* lost */
            int fd = g_inodes[c->ino].fd;
            if (!c->is_write) {
                if (real_ftruncate64(fd, c->new_size) != 0) fatal("redoing a truncation");
                kept++;
                continue;
            }
            size_t len = c->post_len;
            if (len > SECTOR && rng_next(&s) % 4 == 0) {
                /* Torn: the first sectors reached the disk, the rest not. */
                size_t sectors = (len + SECTOR - 1) / SECTOR;
                len = (size_t)(rng_next(&s) % sectors) * SECTOR;
                torn++;
            }
            if (len) write_fully(fd, c->post, len, c->off);
            kept++;
        }
        free(order);
    }
    char line[160];
    snprintf(line, sizeof line,
             "powercut: power cut at call %llu: %zu unsynced changes undone, %zu written back (%zu torn)\n",
             g_at, n, kept, torn);
    say(line);
    _exit(CUT_STATUS);
}

/* Counts an intercepted call; cuts the power at the chosen one. Under g_mu. */
static void count_call(void) {
    g_calls++;
    if (g_at && g_calls == g_at) cut();
}

/* Records the pre-image of [off, off+len) of fd before it changes. */
static change *record(int fd, const struct stat *sb, off_t off, size_t len) {
    size_t ino = inode_of(fd, sb);
    change *c = calloc(1, sizeof *c);
    if (!c) fatal("out of memory");
    c->ino = ino;
    c->off = off;
    c->old_size = sb->st_size;
    if (off < sb->st_size) {
        off_t avail = sb->st_size - off;
        c->pre_len = (size_t)avail < len ? (size_t)avail : len;
        c->pre = malloc(c->pre_len ? c->pre_len : 1);
        if (!c->pre) fatal("out of memory");
        size_t got = 0;
        while (got < c->pre_len) {
            ssize_t r = pread(g_inodes[ino].fd, c->pre + got, c->pre_len - got, off + (off_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) fatal("reading a pre-image");
            got += (size_t)r;
        }
    }
    return c;
}

static void push(change *c) {
    c->prev = g_newest;
    g_newest = c;
}

static void drop(change *c) {
    free(c->pre);
    free(c->post);
    free(c);
}

/* fsync or fdatasync of fd: its changes are durable. */
static void forget(const struct stat *sb) {
    for (change **pp = &g_newest; *pp;) {
        change *c = *pp;
        inode_t *in = &g_inodes[c->ino];
        if (in->dev == sb->st_dev && in->ino == sb->st_ino) {
            *pp = c->prev;
            drop(c);
        } else {
            pp = &c->prev;
        }
    }
}

static void forget_all(void) {
    while (g_newest) {
        change *c = g_newest;
        g_newest = c->prev;
        drop(c);
    }
}

static size_t iov_len(const struct iovec *iov, int cnt) {
    size_t n = 0;
    for (int i = 0; i < cnt; i++) n += iov[i].iov_len;
    return n;
}

/* One write of cnt buffers at off (-1: the file position, or its end
 * under O_APPEND); flags as pwritev2's. */
static ssize_t do_write(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
    struct stat sb;
    if (!regular(fd, &sb))
        return off < 0 && !flags ? real_writev(fd, iov, cnt) : real_pwritev64v2(fd, iov, cnt, off, flags);
    pthread_mutex_lock(&g_mu);
    count_call();
    int durable = sync_writes(fd) || (flags & (RWF_DSYNC | RWF_SYNC));
    off_t at = off;
    if (at < 0 || (flags & RWF_APPEND)) {
        int fl = fcntl(fd, F_GETFL);
        at = (fl >= 0 && (fl & O_APPEND)) || (flags & RWF_APPEND) ? sb.st_size : lseek(fd, 0, SEEK_CUR);
    }
    size_t len = iov_len(iov, cnt);
    change *c = durable || at < 0 ? NULL : record(fd, &sb, at, len);
    ssize_t w = off < 0 && !flags ? real_writev(fd, iov, cnt) : real_pwritev64v2(fd, iov, cnt, off, flags);
    int saved = errno;
    if (c && w > 0 && !g_seed) {
        c->is_write = 1;
        push(c);
    } else if (c && w > 0) {
        c->is_write = 1;
        c->post_len = (size_t)w;
        c->post = malloc((size_t)w);
        if (!c->post) fatal("out of memory");
        size_t k = 0;
        for (int i = 0; i < cnt && k < (size_t)w; i++) {
            size_t part = iov[i].iov_len < (size_t)w - k ? iov[i].iov_len : (size_t)w - k;
            memcpy(c->post + k, iov[i].iov_base, part);
            k += part;
        }
        push(c);
    } else if (c) {
        drop(c);
    }
    pthread_mutex_unlock(&g_mu);
    errno = saved;
    return w;
}

ssize_t write(int fd, const void *buf, size_t n) {
    ensure();
    struct iovec v = {(void *)buf, n};
    return do_write(fd, &v, 1, -1, 0);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    ensure();
    return do_write(fd, iov, cnt, -1, 0);
}

static ssize_t at_offset(int fd, const struct iovec *iov, int cnt, off_t off) {
    if (off < 0) {
        errno = EINVAL;
        return -1;
    }
    return do_write(fd, iov, cnt, off, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    ensure();
    struct iovec v = {(void *)buf, n};
    return at_offset(fd, &v, 1, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    ensure();
    struct iovec v = {(void *)buf, n};
    return at_offset(fd, &v, 1, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    ensure();
    return at_offset(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) {
    ensure();
    return at_offset(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
    ensure();
    return do_write(fd, iov, cnt, off, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
    ensure();
    return do_write(fd, iov, cnt, off, flags);
}

static int do_truncate(int fd, off_t len) {
    struct stat sb;
    if (!regular(fd, &sb)) return real_ftruncate64(fd, len);
    pthread_mutex_lock(&g_mu);
    count_call();
    /* The bytes it cuts off (none when it grows the file). */
    change *c = len < sb.st_size ? record(fd, &sb, len, (size_t)(sb.st_size - len))
                                 : record(fd, &sb, sb.st_size, 0);
    c->new_size = len;
    int rc = real_ftruncate64(fd, len);
    int saved = errno;
    if (rc == 0 && !sync_writes(fd))
        push(c);
    else
        drop(c);
    pthread_mutex_unlock(&g_mu);
    errno = saved;
    return rc;
}

int ftruncate(int fd, off_t len) {
    ensure();
    return do_truncate(fd, len);
}

int ftruncate64(int fd, off_t len) {
    ensure();
    return do_truncate(fd, len);
}

static int do_sync(int fd, int (*real)(int)) {
    struct stat sb;
    if (!regular(fd, &sb)) return real(fd); /* a directory: durable anyway, in this model */
    pthread_mutex_lock(&g_mu);
    count_call();
    forget(&sb);
    pthread_mutex_unlock(&g_mu);
    return 0;
}

int fsync(int fd) {
    ensure();
    return do_sync(fd, real_fsync);
}

int fdatasync(int fd) {
    ensure();
    return do_sync(fd, real_fdatasync);
}

int syncfs(int fd) {
    ensure();
    pthread_mutex_lock(&g_mu);
    count_call();
    forget_all();
    pthread_mutex_unlock(&g_mu);
    (void)fd;
    return 0;
}

void sync(void) {
    ensure();
    pthread_mutex_lock(&g_mu);
    count_call();
    forget_all();
    pthread_mutex_unlock(&g_mu);
}

/* ---- what the model does not cover: refused loudly ---- */

static void unmodelled(const char *call) {
    char line[128];
    snprintf(line, sizeof line, "powercut: %s is not modelled (see powercut.c)\n", call);
    say(line);
    abort();
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    (void)fd, (void)mode, (void)off, (void)len;
    unmodelled("fallocate");
    return -1;
}
int fallocate64(int fd, int mode, off_t off, off_t len) {
    (void)fd, (void)mode, (void)off, (void)len;
    unmodelled("fallocate64");
    return -1;
}
int posix_fallocate(int fd, off_t off, off_t len) {
    (void)fd, (void)off, (void)len;
    unmodelled("posix_fallocate");
    return -1;
}
int posix_fallocate64(int fd, off_t off, off_t len) {
    (void)fd, (void)off, (void)len;
    unmodelled("posix_fallocate64");
    return -1;
}
ssize_t copy_file_range(int a, off_t *b, int c, off_t *d, size_t e, unsigned f) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f;
    unmodelled("copy_file_range");
    return -1;
}
ssize_t sendfile(int a, int b, off_t *c, size_t d) {
    (void)a, (void)b, (void)c, (void)d;
    unmodelled("sendfile");
    return -1;
}
ssize_t sendfile64(int a, int b, off_t *c, size_t d) {
    (void)a, (void)b, (void)c, (void)d;
    unmodelled("sendfile64");
    return -1;
}
int truncate(const char *p, off_t len) {
    (void)p, (void)len;
    unmodelled("truncate");
    return -1;
}
int truncate64(const char *p, off_t len) {
    (void)p, (void)len;
    unmodelled("truncate64");
    return -1;
}

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    struct stat sb;
    if (fd >= 0 && (prot & PROT_WRITE) && (flags & MAP_SHARED) && regular(fd, &sb))
        unmodelled("a shared writable mapping of a regular file");
    /* Straight to the kernel: mmap may be called while the real calls are
     * being looked up (dlsym), before anything here is set up. */
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return do_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return do_mmap(addr, len, prot, flags, fd, off);
}
