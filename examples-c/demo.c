/*
 * demo.c: a miniature page-store engine on top of libpwal.
 *
 *     ./demo [THREADS [SECONDS [DIR]]]       (defaults: 4 threads, 2 seconds)
 *
 * 1. Throughput: THREADS writer threads each commit transactions of 1 to 4
 *    random 4 KiB pages through pwal_commit for SECONDS seconds; prints
 *    commits/s, p50/p99 commit latency, and the log's own counters.
 * 2. Crash: a child process (this program, re-executed) runs the same writers
 *    and, after each pwal_commit that returns PWAL_OK, tells the parent the
 *    transaction id through a pipe. The parent SIGKILLs it mid-flight, then
 *    recovers the log and checks that every transaction the child reported
 *    durable is there, whole and byte for byte, and that no transaction is
 *    torn. Exits 1 if not.
 *
 * The page contents follow from (transaction id, frame index), so recovery
 * can check every byte without keeping a copy. PWAL_* environment variables
 * apply (try PWAL_SYNC=normal or PWAL_MODE=conservative).
 */
#define _GNU_SOURCE /* nftw flags, mkdtemp */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pwal.h"

#define PAGE_BYTES 4096
#define MAX_PAGES_PER_TXN 4
#define DB_PAGES 100000u
#define MAX_THREADS 256

static void die(const char *what, pwal_status st) {
    fprintf(stderr, "demo: %s: %s: %s\n", what, pwal_status_name(st), pwal_last_error());
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- transactions whose every byte follows from their id ---- */

static uint64_t mix(uint64_t x) { /* splitmix64 */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t pages_of(uint64_t id) { return 1 + (uint32_t)(mix(id) % MAX_PAGES_PER_TXN); }
static uint32_t page_number_of(uint64_t id, uint32_t j) {
    return 1 + (uint32_t)(mix(id * 16 + j) % DB_PAGES);
}
static void fill_page(unsigned char *p, uint64_t id, uint32_t j) {
    uint64_t x = mix(id * 16 + j + 1);
    for (size_t i = 0; i < PAGE_BYTES; i += 8) {
        x = mix(x);
        memcpy(p + i, &x, 8);
    }
}

typedef struct {
    pwal_frame frames[MAX_PAGES_PER_TXN];
    unsigned char pages[MAX_PAGES_PER_TXN][PAGE_BYTES];
    pwal_txn txn;
} txn_buf;

static uint64_t g_commit_seq;

static void build_txn(txn_buf *b, uint64_t id) {
    uint32_t n = pages_of(id);
    for (uint32_t j = 0; j < n; j++) {
        fill_page(b->pages[j], id, j);
        b->frames[j].page_number = page_number_of(id, j);
        b->frames[j].db_size_if_commit = (j + 1 == n) ? DB_PAGES : 0;
        b->frames[j].data = b->pages[j];
        b->frames[j].len = PAGE_BYTES;
    }
    b->txn.txn_id = id;
    /* The engine's commit order; a real engine takes it under its own lock. */
    b->txn.commit_seq = __atomic_add_fetch(&g_commit_seq, 1, __ATOMIC_SEQ_CST);
    b->txn.frames = b->frames;
    b->txn.frame_count = n;
    b->txn.txn_epoch = 0;
}

/* ---- writers ---- */

typedef struct {
    pwal *log;
    int thread, threads;
    uint64_t deadline_ns; /* 0: until killed */
    int report_fd;        /* -1: no reporting */
    uint64_t commits;
    uint32_t *lat_us; /* one entry per commit */
    size_t lat_cap;
} writer;

static void *writer_main(void *p) {
    writer *w = (writer *)p;
    txn_buf *b = malloc(sizeof *b);
    if (!b) abort();
    for (uint64_t k = 0;; k++) {
        uint64_t t0 = now_ns();
        if (w->deadline_ns && t0 >= w->deadline_ns) break;
        /* Ids interleave across threads, so each is unique. */
        uint64_t id = k * (uint64_t)w->threads + (uint64_t)w->thread + 1;
        build_txn(b, id);
        pwal_status st = pwal_commit(w->log, &b->txn, PWAL_WAIT_FOREVER, NULL);
        if (st != PWAL_OK) die("pwal_commit", st);
        uint64_t t1 = now_ns();
        if (w->report_fd >= 0) {
            /* Reported only after PWAL_OK: the parent's oracle. 8 bytes is
             * below PIPE_BUF, so the write is atomic. */
            if (write(w->report_fd, &id, sizeof id) != (ssize_t)sizeof id) _exit(3);
        }
        if (w->lat_us) {
            if (w->commits == w->lat_cap) {
                w->lat_cap = w->lat_cap ? w->lat_cap * 2 : 4096;
                w->lat_us = realloc(w->lat_us, w->lat_cap * sizeof *w->lat_us);
                if (!w->lat_us) abort();
            }
            w->lat_us[w->commits] = (uint32_t)((t1 - t0) / 1000);
        }
        w->commits++;
    }
    free(b);
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static pwal_options demo_options(void) {
    pwal_options o;
    pwal_options_init(&o);
    o.segment_bytes = 16u << 20; /* small, so preallocation stays cheap */
    return o;
}

/* ---- phase 1: throughput ---- */

/* What the trace callback saw. It runs on pwal's threads with the log's
 * locks held: it only adds to counters (written by one thread at a time:
 * durable epochs are traced under pwal's flush lock). */
typedef struct {
    uint64_t epochs, transactions, bytes, max_us, segments;
} trace_summary;

static void on_trace(void *user, const pwal_trace_event *e) {
    trace_summary *t = (trace_summary *)user;
    if (e->kind == PWAL_TRACE_EPOCH_DURABLE) {
        t->epochs++;
        t->transactions += e->transactions;
        t->bytes += e->bytes;
        if (e->duration_us > t->max_us) t->max_us = e->duration_us;
    } else if (e->kind == PWAL_TRACE_SEGMENT_CREATED || e->kind == PWAL_TRACE_SEGMENT_REUSED) {
        t->segments++;
    }
}

static void throughput(const char *db, int threads, double seconds) {
    pwal_options o = demo_options();
    trace_summary trace;
    memset(&trace, 0, sizeof trace);
    o.trace = on_trace;
    o.trace_user_data = &trace;
    pwal *log = NULL;
    pwal_status st = pwal_open(db, &o, &log);
    if (st != PWAL_OK) die("pwal_open", st);

    writer w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    uint64_t start = now_ns();
    for (int i = 0; i < threads; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].log = log;
        w[i].thread = i;
        w[i].threads = threads;
        w[i].deadline_ns = start + (uint64_t)(seconds * 1e9);
        w[i].report_fd = -1;
        w[i].lat_us = malloc(4096 * sizeof *w[i].lat_us);
        w[i].lat_cap = w[i].lat_us ? 4096 : 0;
        if (pthread_create(&tid[i], NULL, writer_main, &w[i]) != 0) abort();
    }
    uint64_t total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += w[i].commits;
    }
    double elapsed = (double)(now_ns() - start) / 1e9;

    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    if (!all) abort();
    size_t n = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + n, w[i].lat_us, w[i].commits * sizeof *all);
        n += w[i].commits;
        free(w[i].lat_us);
    }
    qsort(all, n, sizeof *all, cmp_u32);

    pwal_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    st = pwal_get_stats(log, &s);
    if (st != PWAL_OK) die("pwal_get_stats", st);

    printf("throughput: %d threads, %.1f s: %llu commits, %.0f commits/s\n", threads, elapsed,
           (unsigned long long)total, (double)total / elapsed);
    if (n > 0)
        printf("  commit latency: p50 %u us, p99 %u us, max %u us\n", all[n / 2],
               all[(size_t)((double)(n - 1) * 0.99)], all[n - 1]);
    printf("  log: sync=%s mode=%s lanes=%u, %llu epochs, %llu syncs (p50 %llu us), "
           "%llu txns/epoch p50, %.1f MB written\n",
           s.sync == PWAL_SYNC_FULL ? "full" : s.sync == PWAL_SYNC_NORMAL ? "normal" : "off",
           s.mode == PWAL_MODE_AUTO ? "auto"
           : s.mode == PWAL_MODE_CONSERVATIVE ? "conservative" : "shadow_compare",
           s.lanes, (unsigned long long)s.epochs, (unsigned long long)s.syncs,
           (unsigned long long)s.sync_latency.p50_us,
           (unsigned long long)s.txns_per_epoch.p50_us, (double)s.bytes_written / 1e6);
    if (s.fallback_reason != PWAL_FALLBACK_NONE)
        printf("  fell back to conservative: %s (%s)\n",
               pwal_fallback_reason_name(s.fallback_reason), s.fallback_detail);
    free(all);
    st = pwal_close(log);
    if (st != PWAL_OK) die("pwal_close", st);
    /* Complete now: every durable epoch is traced before pwal_close returns. */
    printf("  trace: %llu durable epochs, %llu transactions, %.1f MB, %llu segments started, "
           "slowest epoch %llu us from seal to durable\n",
           (unsigned long long)trace.epochs, (unsigned long long)trace.transactions,
           (double)trace.bytes / 1e6, (unsigned long long)trace.segments,
           (unsigned long long)trace.max_us);
    if (trace.transactions != total) {
        fprintf(stderr, "demo: the trace counted %llu transactions, the writers %llu\n",
                (unsigned long long)trace.transactions, (unsigned long long)total);
        exit(1);
    }
}

/* ---- phase 2: SIGKILL a writer, recover, check ---- */

static int child_main(const char *db, int fd, int threads) {
    pwal_options o = demo_options();
    pwal *log = NULL;
    pwal_status st = pwal_open(db, &o, &log);
    if (st != PWAL_OK) die("child: pwal_open", st);
    writer w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].log = log;
        w[i].thread = i;
        w[i].threads = threads;
        w[i].report_fd = fd;
        if (pthread_create(&tid[i], NULL, writer_main, &w[i]) != 0) abort();
    }
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL); /* never: killed */
    return 0;
}

typedef struct {
    unsigned char *state; /* per id: 0 absent, 1 complete */
    size_t cap;
    uint64_t cur_id;
    uint32_t cur_frames;
    uint64_t txns, records, bad;
    unsigned char page[PAGE_BYTES];
} checker;

static void checker_finish(checker *c) {
    if (c->cur_id == 0) return;
    if (c->cur_frames != pages_of(c->cur_id)) {
        fprintf(stderr, "demo: transaction %llu recovered torn: %u of %u frames\n",
                (unsigned long long)c->cur_id, c->cur_frames, pages_of(c->cur_id));
        c->bad++;
    }
    if (c->cur_id >= c->cap) {
        size_t cap = c->cap ? c->cap : 1 << 16;
        while (cap <= c->cur_id) cap *= 2;
        c->state = realloc(c->state, cap);
        if (!c->state) abort();
        memset(c->state + c->cap, 0, cap - c->cap);
        c->cap = cap;
    }
    c->state[c->cur_id] = 1;
    c->txns++;
    c->cur_id = 0;
}

static int32_t on_record(void *user, const pwal_record *r) {
    checker *c = (checker *)user;
    c->records++;
    if (r->txn_id != c->cur_id) {
        checker_finish(c);
        if (r->txn_id == 0 || r->txn_id > (1ull << 40)) {
            fprintf(stderr, "demo: recovered an impossible txn_id %llu\n",
                    (unsigned long long)r->txn_id);
            c->bad++;
            return 1;
        }
        c->cur_id = r->txn_id;
        c->cur_frames = 0;
    }
    uint32_t j = c->cur_frames++;
    fill_page(c->page, r->txn_id, j);
    if (j >= pages_of(r->txn_id) || r->page_number != page_number_of(r->txn_id, j) ||
        r->len != PAGE_BYTES || memcmp(r->data, c->page, PAGE_BYTES) != 0) {
        fprintf(stderr, "demo: transaction %llu frame %u differs from what was committed\n",
                (unsigned long long)r->txn_id, j);
        c->bad++;
    }
    return 0;
}

static int crash(const char *self, const char *db, int threads, double seconds) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        char fd[16], nthreads[16];
        close(fds[0]);
        snprintf(fd, sizeof fd, "%d", fds[1]);
        snprintf(nthreads, sizeof nthreads, "%d", threads);
        execl(self, self, "--child", db, fd, nthreads, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);

    /* Collect what the child reports as durable until the deadline, then
     * kill it wherever it is, and drain what it wrote before dying. */
    uint64_t *acked = NULL;
    size_t n = 0, cap = 0;
    uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
    int killed = 0;
    for (;;) {
        if (!killed && now_ns() >= deadline) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        if (!killed && poll(&p, 1, 10) == 0) continue;
        uint64_t buf[512];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* EOF: the child is gone */
        for (size_t i = 0; i < (size_t)got / sizeof buf[0]; i++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4096;
                acked = realloc(acked, cap * sizeof *acked);
                if (!acked) abort();
            }
            acked[n++] = buf[i];
        }
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
        fprintf(stderr, "demo: the child writer did not die of SIGKILL (status %d)\n", status);
        free(acked);
        return 1;
    }

    checker c;
    memset(&c, 0, sizeof c);
    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    pwal_status st = pwal_recover(db, 0, on_record, &c, &rep);
    if (st != PWAL_OK) die("pwal_recover", st);
    checker_finish(&c);

    uint64_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (acked[i] >= c.cap || !c.state[acked[i]]) {
            if (missing++ < 10)
                fprintf(stderr, "demo: transaction %llu was acknowledged durable but is lost\n",
                        (unsigned long long)acked[i]);
        }
    }
    printf("crash: child killed with SIGKILL after reporting %zu durable commits\n", n);
    printf("  recovered %llu transactions (%llu frames) in epochs %llu..%llu; "
           "torn tail discarded: %llu bytes\n",
           (unsigned long long)c.txns, (unsigned long long)c.records,
           (unsigned long long)rep.first_epoch, (unsigned long long)rep.last_epoch,
           (unsigned long long)rep.torn_tail_bytes);
    free(acked);
    free(c.state);
    if (missing || c.bad) {
        printf("  FAILED: %llu acknowledged transactions lost, %llu bad\n",
               (unsigned long long)missing, (unsigned long long)c.bad);
        return 1;
    }
    printf("  every acknowledged transaction is there, whole and byte for byte\n");
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], atoi(argv[3]), atoi(argv[4]));

    int threads = argc > 1 ? atoi(argv[1]) : 4;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    if (threads < 1 || threads > MAX_THREADS || !(seconds > 0) || argc > 4) {
        fprintf(stderr, "usage: %s [THREADS (1-%d) [SECONDS [DIR]]]\n", argv[0], MAX_THREADS);
        return 2;
    }
    char tmp[] = "/tmp/pwal-demo-XXXXXX";
    const char *dir = argc > 3 ? argv[3] : mkdtemp(tmp);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    printf("pwal %s, scratch directory %s\n", pwal_version(), dir);

    char db[4096];
    snprintf(db, sizeof db, "%s/bench.db", dir);
    throughput(db, threads, seconds);

    snprintf(db, sizeof db, "%s/crash.db", dir);
    int rc = crash("/proc/self/exe", db, threads, seconds / 2 > 0.5 ? seconds / 2 : 0.5);

    if (argc <= 3) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
