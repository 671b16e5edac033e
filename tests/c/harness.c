/*
 * C harness for libpwal: drives the library through pwal.h only, exactly as
 * an engine would. Built and run by tests/c_abi.rs, one case per process:
 *
 *     harness CASE DIR
 *
 * Every case prints what it checked and exits 0, or prints the first failed
 * check (with pwal_last_error()) and exits 1. DIR is an empty scratch
 * directory the case may fill.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pwal.h"

/* Small segments: preallocating a 64 MiB default per test is wasted time. */
#define TEST_SEGMENT_BYTES (1u << 20)
#define TEST_TIMEOUT_MS 60000u

static const char *g_case = "?";

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "[%s] %s:%d: check failed: %s\n  last error: %s\n",      \
                    g_case, __FILE__, __LINE__, #cond, pwal_last_error());           \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

/* Checks that `call` returns `want` and, for an error, leaves a message that
 * mentions `needle` (a word naming the bad argument). */
#define EXPECT_STATUS(call, want, needle)                                            \
    do {                                                                             \
        pwal_status got_ = (call);                                                   \
        if (got_ != (want)) {                                                        \
            fprintf(stderr, "[%s] %s:%d: %s\n  returned %s, expected %s\n"           \
                    "  last error: %s\n", g_case, __FILE__, __LINE__, #call,         \
                    pwal_status_name(got_), pwal_status_name(want),                  \
                    pwal_last_error());                                              \
            exit(1);                                                                 \
        }                                                                            \
        if ((want) != PWAL_OK && strstr(pwal_last_error(), (needle)) == NULL) {      \
            fprintf(stderr, "[%s] %s:%d: %s\n  message does not mention \"%s\": %s\n", \
                    g_case, __FILE__, __LINE__, #call, (needle), pwal_last_error()); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#define OK(call) EXPECT_STATUS(call, PWAL_OK, "")

static char g_db[4096];

static pwal_options test_options(void) {
    pwal_options o;
    pwal_options_init(&o);
    o.segment_bytes = TEST_SEGMENT_BYTES;
    o.ignore_env = 1;
    return o;
}

static pwal *open_log(void) {
    pwal_options o = test_options();
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    CHECK(log != NULL);
    return log;
}

/* ---- deterministic transactions: the oracle for every byte ---- */

#define MAX_FRAMES 4
#define MAX_LEN 9000

/* A transaction is named by its id; everything else follows from it. */
static uint32_t frames_of(uint64_t id) { return 1 + (uint32_t)(id % MAX_FRAMES); }
static uint32_t page_of(uint64_t id, uint32_t j) { return 1 + (uint32_t)((id * 7 + j * 13) % 5000); }
static uint32_t len_of(uint64_t id, uint32_t j) {
    uint32_t sizes[] = {1, 512, 4096, 8192, MAX_LEN - 1, 100};
    return sizes[(id + j) % 6];
}
static unsigned char byte_of(uint64_t id, uint32_t j, uint32_t i) {
    return (unsigned char)((id * 131u + j * 31u + i * 7u + (i >> 8)) & 0xff);
}
static uint32_t txn_epoch_of(uint64_t id) { return (uint32_t)(id ^ 0x5a5a5a5au); }

typedef struct {
    pwal_frame frames[MAX_FRAMES];
    unsigned char data[MAX_FRAMES][MAX_LEN];
    pwal_txn txn;
} txn_buf;

static void make_txn(txn_buf *b, uint64_t id, uint64_t commit_seq) {
    uint32_t n = frames_of(id);
    for (uint32_t j = 0; j < n; j++) {
        uint32_t len = len_of(id, j);
        for (uint32_t i = 0; i < len; i++) b->data[j][i] = byte_of(id, j, i);
        b->frames[j].page_number = page_of(id, j);
        b->frames[j].db_size_if_commit = (j + 1 == n) ? 5000u : 0u;
        b->frames[j].data = b->data[j];
        b->frames[j].len = len;
    }
    b->txn.txn_id = id;
    b->txn.commit_seq = commit_seq;
    b->txn.frames = b->frames;
    b->txn.frame_count = n;
    b->txn.txn_epoch = txn_epoch_of(id);
}

/* ---- the recovery oracle ---- */

typedef struct {
    uint64_t max_id;        /* ids 1..max_id may appear */
    unsigned char *seen;    /* per id: 1 once complete */
    uint64_t cur_id;        /* transaction being received, 0 if none */
    uint32_t cur_frame;     /* frames of it received so far */
    uint64_t last_epoch, last_seq;
    uint64_t records;
    uint64_t stop_after;    /* return non-zero after this many records, 0 never */
    const char *error;      /* first problem found */
} oracle;

static void oracle_init(oracle *o, uint64_t max_id) {
    memset(o, 0, sizeof *o);
    o->max_id = max_id;
    o->seen = calloc(max_id + 1, 1);
    CHECK(o->seen != NULL);
}

static void finish_txn(oracle *o) {
    if (o->cur_id != 0) {
        if (o->cur_frame != frames_of(o->cur_id) && !o->error) o->error = "torn transaction";
        o->seen[o->cur_id] = 1;
        o->cur_id = 0;
    }
}

static int32_t oracle_cb(void *user, const pwal_record *r) {
    oracle *o = (oracle *)user;
    o->records++;
    if (r->txn_id == 0 || r->txn_id > o->max_id) {
        o->error = "unknown txn_id";
        return 1;
    }
    if (r->epoch < o->last_epoch) o->error = o->error ? o->error : "epochs out of order";
    if (r->txn_id != o->cur_id) {
        finish_txn(o);
        if (o->seen[r->txn_id]) o->error = o->error ? o->error : "transaction replayed twice";
        if (r->epoch == o->last_epoch && r->commit_seq < o->last_seq)
            o->error = o->error ? o->error : "commit_seq out of order in an epoch";
        o->cur_id = r->txn_id;
        o->cur_frame = 0;
        o->last_epoch = r->epoch;
        o->last_seq = r->commit_seq;
    }
    uint32_t j = o->cur_frame++;
    uint64_t id = r->txn_id;
    if (j >= frames_of(id) || r->page_number != page_of(id, j) || r->len != len_of(id, j) ||
        r->txn_epoch != txn_epoch_of(id) ||
        r->db_size_if_commit != ((j + 1 == frames_of(id)) ? 5000u : 0u) || r->data == NULL) {
        o->error = o->error ? o->error : "frame header differs from what was committed";
        return 1;
    }
    const unsigned char *d = (const unsigned char *)r->data;
    for (uint32_t i = 0; i < r->len; i++) {
        if (d[i] != byte_of(id, j, i)) {
            o->error = o->error ? o->error : "frame bytes differ from what was committed";
            return 1;
        }
    }
    if (o->stop_after != 0 && o->records >= o->stop_after) return 1;
    return 0;
}

static pwal_recovery_report recover_all(oracle *o, pwal_status want) {
    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    EXPECT_STATUS(pwal_recover(g_db, 0, oracle_cb, o, &rep), want, "");
    finish_txn(o);
    if (o->error) {
        fprintf(stderr, "[%s] recovery oracle: %s\n", g_case, o->error);
        exit(1);
    }
    CHECK(rep.struct_size == sizeof rep);
    CHECK(rep.records == o->records);
    return rep;
}

/* ---- cases ---- */

#define RT_THREADS 8
#define RT_TXNS_PER_THREAD 40

typedef struct {
    pwal *log;
    int thread;
    uint64_t max_epoch;
} writer_arg;

static uint64_t g_commit_seq; /* handed out in commit order */

static void *writer(void *p) {
    writer_arg *a = (writer_arg *)p;
    txn_buf *b = malloc(sizeof *b);
    CHECK(b != NULL);
    for (int k = 0; k < RT_TXNS_PER_THREAD; k++) {
        uint64_t id = (uint64_t)a->thread * RT_TXNS_PER_THREAD + (uint64_t)k + 1;
        make_txn(b, id, __atomic_add_fetch(&g_commit_seq, 1, __ATOMIC_SEQ_CST));
        uint64_t epoch = 0;
        OK(pwal_commit(a->log, &b->txn, TEST_TIMEOUT_MS, &epoch));
        CHECK(epoch >= 1);
        if (epoch > a->max_epoch) a->max_epoch = epoch;
    }
    free(b);
    return NULL;
}

static void case_round_trip(void) {
    pwal *log = open_log();
    pthread_t t[RT_THREADS];
    writer_arg args[RT_THREADS];
    for (int i = 0; i < RT_THREADS; i++) {
        args[i].log = log;
        args[i].thread = i;
        args[i].max_epoch = 0;
        CHECK(pthread_create(&t[i], NULL, writer, &args[i]) == 0);
    }
    uint64_t max_epoch = 0;
    for (int i = 0; i < RT_THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        if (args[i].max_epoch > max_epoch) max_epoch = args[i].max_epoch;
    }
    const uint64_t n = RT_THREADS * RT_TXNS_PER_THREAD;
    uint64_t frames = 0;
    for (uint64_t id = 1; id <= n; id++) frames += frames_of(id);

    pwal_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    OK(pwal_get_stats(log, &s));
    CHECK(s.struct_size == sizeof s);
    CHECK(s.durable_epoch >= max_epoch);
    CHECK(s.transactions == n);
    CHECK(s.records == frames);
    CHECK(s.syncs >= 1);
    CHECK(s.sync == PWAL_SYNC_FULL);
    CHECK(s.mode == PWAL_MODE_AUTO);
    CHECK(s.fallback_reason == PWAL_FALLBACK_NONE);
    CHECK(s.commit_wait_latency.count == n);
    CHECK(s.sync_latency.count >= 1);
    CHECK(s.lane_backlog_count >= 1 && s.lane_backlog_count <= PWAL_STATS_LANES);
    CHECK(strcmp(pwal_fallback_reason_name(s.fallback_reason), "none") == 0);
    uint64_t durable_epoch = 0, durable_seq = 0;
    OK(pwal_durable(log, &durable_epoch, &durable_seq));
    CHECK(durable_epoch >= max_epoch);
    CHECK(durable_seq == n); /* every commit_seq 1..n was acknowledged */
    OK(pwal_durable(log, NULL, NULL));
    EXPECT_STATUS(pwal_durable(NULL, &durable_epoch, NULL), PWAL_ERR_INVALID, "log");
    OK(pwal_close(log));

    oracle o;
    oracle_init(&o, n);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    for (uint64_t id = 1; id <= n; id++) {
        if (!o.seen[id]) {
            fprintf(stderr, "[%s] acknowledged transaction %llu not recovered\n", g_case,
                    (unsigned long long)id);
            exit(1);
        }
    }
    CHECK(rep.transactions == n);
    CHECK(rep.records == frames);
    CHECK(rep.first_epoch == 1);
    CHECK(rep.last_epoch >= max_epoch);
    CHECK(rep.torn_tail_bytes == 0);
    CHECK(rep.has_damage == 0 && rep.damage[0] == '\0');
    free(o.seen);
    printf("round_trip: %llu transactions from %d threads, %llu frames, epochs %llu..%llu\n",
           (unsigned long long)n, RT_THREADS, (unsigned long long)frames,
           (unsigned long long)rep.first_epoch, (unsigned long long)rep.last_epoch);
}

static int32_t never_called(void *user, const pwal_record *r) {
    (void)user;
    (void)r;
    return 0;
}

static void case_misuse(void) {
    pwal *log = NULL;
    pwal_options o = test_options();
    uint64_t epoch = 0;

    /* pwal_open */
    EXPECT_STATUS(pwal_open(NULL, &o, &log), PWAL_ERR_INVALID, "path");
    EXPECT_STATUS(pwal_open("", &o, &log), PWAL_ERR_INVALID, "path");
    EXPECT_STATUS(pwal_open(g_db, &o, NULL), PWAL_ERR_INVALID, "out_log");
    o.struct_size = 0;
    log = (pwal *)&o; /* must come back NULL on failure */
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "struct_size");
    CHECK(log == NULL);
    o.struct_size = PWAL_OPTIONS_MIN_SIZE - 1;
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "struct_size");
    o = test_options();
    o.sync = 3;
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "sync");
    o = test_options();
    o.mode = 0xffffffffu;
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "mode");
    o = test_options();
    o.lanes = PWAL_MAX_LANES + 1;
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "lanes");
    o = test_options();
    o.segment_bytes = 100; /* below the minimum */
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "segment_bytes");

    /* A bad environment variable fails the open, unless ignored. */
    o = test_options();
    o.ignore_env = 0;
    CHECK(setenv("PWAL_MODE", "sideways", 1) == 0);
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "PWAL_MODE");
    CHECK(unsetenv("PWAL_MODE") == 0);
    CHECK(setenv("PWAL_LANES", "many", 1) == 0);
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "PWAL_LANES");
    o.ignore_env = 1;
    OK(pwal_open(g_db, &o, &log));
    CHECK(unsetenv("PWAL_LANES") == 0);

    /* pwal_submit / pwal_commit */
    unsigned char page[4096];
    memset(page, 0xab, sizeof page);
    pwal_frame f[2];
    f[0].page_number = 1;
    f[0].db_size_if_commit = 0;
    f[0].data = page;
    f[0].len = sizeof page;
    f[1] = f[0];
    f[1].page_number = 2;
    f[1].db_size_if_commit = 2;
    pwal_txn t;
    t.txn_id = 1;
    t.commit_seq = 1;
    t.frames = f;
    t.frame_count = 2;
    t.txn_epoch = 0;

    EXPECT_STATUS(pwal_submit(NULL, &t, &epoch), PWAL_ERR_INVALID, "log");
    EXPECT_STATUS(pwal_submit(log, NULL, &epoch), PWAL_ERR_INVALID, "txn");
    EXPECT_STATUS(pwal_submit(log, &t, NULL), PWAL_ERR_INVALID, "out_epoch");
    EXPECT_STATUS(pwal_commit(NULL, &t, 0, &epoch), PWAL_ERR_INVALID, "log");
    EXPECT_STATUS(pwal_commit(log, NULL, 0, &epoch), PWAL_ERR_INVALID, "txn");
    t.frame_count = 0;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frame_count");
    EXPECT_STATUS(pwal_commit(log, &t, TEST_TIMEOUT_MS, NULL), PWAL_ERR_INVALID, "frame_count");
    t.frame_count = PWAL_MAX_TXN_FRAMES + 1;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frame_count");
    t.frame_count = 2;
    t.frames = NULL;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frames");
    t.frames = f;
    f[1].page_number = 0;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frames[1].page_number");
    f[1].page_number = 2;
    f[0].len = 0;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frames[0].len");
    f[0].len = PWAL_MAX_PAGE_BYTES + 1;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frames[0].len");
    f[0].len = sizeof page;
    f[0].data = NULL;
    EXPECT_STATUS(pwal_submit(log, &t, &epoch), PWAL_ERR_INVALID, "frames[0].data");
    f[0].data = page;

    /* Nothing above was written: the first good commit is the only one. */
    OK(pwal_commit(log, &t, TEST_TIMEOUT_MS, &epoch));
    CHECK(epoch >= 1);
    OK(pwal_wait_durable(log, epoch, 0));
    EXPECT_STATUS(pwal_wait_durable(NULL, epoch, 0), PWAL_ERR_INVALID, "log");
    EXPECT_STATUS(pwal_wait_durable(log, UINT64_MAX, 0), PWAL_ERR_INVALID, "epoch");
    EXPECT_STATUS(pwal_checkpoint(log, UINT64_MAX), PWAL_ERR_INVALID, "epoch");
    EXPECT_STATUS(pwal_checkpoint(NULL, epoch), PWAL_ERR_INVALID, "log");

    /* pwal_get_stats */
    pwal_stats s;
    memset(&s, 0, sizeof s);
    EXPECT_STATUS(pwal_get_stats(log, &s), PWAL_ERR_INVALID, "struct_size");
    s.struct_size = sizeof s;
    EXPECT_STATUS(pwal_get_stats(NULL, &s), PWAL_ERR_INVALID, "log");
    EXPECT_STATUS(pwal_get_stats(log, NULL), PWAL_ERR_INVALID, "out");
    OK(pwal_get_stats(log, &s));
    CHECK(s.transactions == 1 && s.records == 2);

    /* pwal_close */
    EXPECT_STATUS(pwal_close(NULL), PWAL_ERR_INVALID, "log");
    OK(pwal_close(log));

    /* pwal_recover */
    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    EXPECT_STATUS(pwal_recover(NULL, 0, never_called, NULL, &rep), PWAL_ERR_INVALID, "path");
    EXPECT_STATUS(pwal_recover(g_db, 0, NULL, NULL, &rep), PWAL_ERR_INVALID, "callback");
    EXPECT_STATUS(pwal_recover(g_db, 0x80, never_called, NULL, &rep), PWAL_ERR_INVALID, "flags");
    rep.struct_size = 8;
    EXPECT_STATUS(pwal_recover(g_db, 0, never_called, NULL, &rep), PWAL_ERR_INVALID, "struct_size");
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX, never_called, NULL, NULL));

    /* The message is per thread and survives successful calls. */
    EXPECT_STATUS(pwal_close(NULL), PWAL_ERR_INVALID, "log");
    OK(pwal_recover(g_db, 0, never_called, NULL, NULL));
    CHECK(strstr(pwal_last_error(), "pwal_close") != NULL);

    /* Names. */
    CHECK(strcmp(pwal_status_name(PWAL_ERR_LOCKED), "PWAL_ERR_LOCKED") == 0);
    CHECK(strcmp(pwal_status_name(-1), "PWAL_ERR_UNKNOWN") == 0);
    CHECK(strcmp(pwal_fallback_reason_name(99), "unknown") == 0);
    printf("misuse: every bad argument refused with a status and a message\n");
}

static void commit_range(pwal *log, uint64_t first, uint64_t last, uint64_t *max_epoch) {
    txn_buf *b = malloc(sizeof *b);
    CHECK(b != NULL);
    for (uint64_t id = first; id <= last; id++) {
        uint64_t epoch = 0;
        make_txn(b, id, id);
        OK(pwal_commit(log, &b->txn, TEST_TIMEOUT_MS, &epoch));
        if (epoch > *max_epoch) *max_epoch = epoch;
    }
    free(b);
}

static void case_abort(void) {
    pwal *log = open_log();
    uint64_t e = 0;
    commit_range(log, 1, 10, &e);
    OK(pwal_close(log));

    oracle o;
    oracle_init(&o, 10);
    o.stop_after = 3;
    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    EXPECT_STATUS(pwal_recover(g_db, 0, oracle_cb, &o, &rep), PWAL_ERR_ABORTED, "stopped");
    CHECK(o.error == NULL);
    CHECK(o.records == 3);
    CHECK(rep.struct_size == sizeof rep); /* filled even on failure */
    free(o.seen);
    printf("abort: a callback returning non-zero stops recovery with PWAL_ERR_ABORTED\n");
}

static void case_reopen(void) {
    uint64_t first_max = 0, second_max = 0;
    pwal *log = open_log();
    commit_range(log, 1, 20, &first_max);
    OK(pwal_close(log));

    log = open_log();
    uint64_t e = 0;
    commit_range(log, 21, 21, &e);
    CHECK(e > first_max); /* epochs continue, never restart */
    commit_range(log, 22, 40, &second_max);
    OK(pwal_close(log));

    oracle o;
    oracle_init(&o, 40);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    for (uint64_t id = 1; id <= 40; id++) CHECK(o.seen[id]);
    CHECK(rep.transactions == 40);
    CHECK(rep.last_epoch >= second_max);
    free(o.seen);
    printf("reopen: second open continued at epoch %llu after %llu\n", (unsigned long long)e,
           (unsigned long long)first_max);
}

/* pwal_flush makes every submitted transaction synced whatever the policy:
 * under NORMAL, nothing waited for the 20 submits, and the flush syncs them
 * (the background sync interval is 50 ms, so the sync count shows whether
 * the flush synced them itself only when nothing else did; the oracle is
 * recovery). A NULL handle is refused. */
static void case_flush(void) {
    pwal_options o = test_options();
    o.sync = PWAL_SYNC_NORMAL;
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    txn_buf *b = malloc(sizeof *b);
    CHECK(b != NULL);
    uint64_t last = 0;
    for (uint64_t id = 1; id <= 20; id++) {
        make_txn(b, id, id);
        OK(pwal_submit(log, &b->txn, &last));
    }
    free(b);
    OK(pwal_flush(log, PWAL_WAIT_FOREVER));
    uint64_t durable = 0;
    OK(pwal_durable(log, &durable, NULL));
    CHECK(durable >= last);
    pwal_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    OK(pwal_get_stats(log, &s));
    CHECK(s.syncs >= 1);
    EXPECT_STATUS(pwal_flush(NULL, 0), PWAL_ERR_INVALID, "log");
    OK(pwal_close(log));

    oracle or;
    oracle_init(&or, 20);
    recover_all(&or, PWAL_OK);
    for (uint64_t id = 1; id <= 20; id++) CHECK(or.seen[id]);
    free(or.seen);
    printf("flush: 20 submitted transactions synced by pwal_flush under NORMAL\n");
}

static void case_two_opens(void) {
    pwal *a = open_log();
    pwal *b = open_log();
    uint64_t e = 0;
    commit_range(a, 1, 5, &e);
    commit_range(b, 6, 10, &e);
    OK(pwal_close(a));
    commit_range(b, 11, 15, &e); /* b still works after a is closed */
    OK(pwal_close(b));

    oracle o;
    oracle_init(&o, 15);
    recover_all(&o, PWAL_OK);
    for (uint64_t id = 1; id <= 15; id++) CHECK(o.seen[id]);
    free(o.seen);
    printf("two_opens: two handles on one path share the log\n");
}

/* A second open of an open log shares it, so it must not ask for options the
 * open log does not have: refused with PWAL_ERR_INVALID naming the field and
 * both values; the same options share. */
static void case_second_open_options(void) {
    pwal *a = open_log();
    pwal_options o = test_options();
    o.sync = PWAL_SYNC_NORMAL;
    pwal *b = (pwal *)&o; /* must be reset to NULL on failure */
    EXPECT_STATUS(pwal_open(g_db, &o, &b), PWAL_ERR_INVALID,
                  "sync: asked normal, the open log has full");
    CHECK(b == NULL);
    o = test_options();
    o.segment_bytes = 2 * TEST_SEGMENT_BYTES;
    EXPECT_STATUS(pwal_open(g_db, &o, &b), PWAL_ERR_INVALID, "segment_bytes: asked 2097152");
    o = test_options();
    o.max_flush_delay_us = 500;
    EXPECT_STATUS(pwal_open(g_db, &o, &b), PWAL_ERR_INVALID, "max_flush_delay_us: asked 500");

    b = open_log(); /* identical options: shared */
    uint64_t e = 0;
    commit_range(a, 1, 3, &e);
    commit_range(b, 4, 6, &e);
    OK(pwal_close(a));
    OK(pwal_close(b));
    oracle or;
    oracle_init(&or, 6);
    recover_all(&or, PWAL_OK);
    for (uint64_t id = 1; id <= 6; id++) CHECK(or.seen[id]);
    free(or.seen);
    printf("second_open_options: other options refused, the same ones shared\n");
}

/* A program built against the 0.1.0 header passes exactly the frozen
 * minimum sizes: they work; one byte less is refused. */
static void case_min_sizes(void) {
    /* The 0.1.0 sizes; they never change. */
    CHECK(PWAL_OPTIONS_MIN_SIZE == 48);
    CHECK(PWAL_STATS_MIN_SIZE == 1016);
    CHECK(PWAL_RECOVERY_REPORT_MIN_SIZE == 344);
    CHECK(sizeof(pwal_options) >= PWAL_OPTIONS_MIN_SIZE);
    CHECK(sizeof(pwal_stats) >= PWAL_STATS_MIN_SIZE);
    CHECK(sizeof(pwal_recovery_report) >= PWAL_RECOVERY_REPORT_MIN_SIZE);

    /* A program built against 0.1.0 calls the function pwal_options_init
     * (the parentheses bypass this header's macro) on its 48-byte struct:
     * nothing past those bytes is written, and the size says 48. Then the
     * sized init writes only the size it is given. */
    unsigned char *ob = malloc(sizeof(pwal_options) + 64);
    CHECK(ob != NULL);
    memset(ob, 0xa5, sizeof(pwal_options) + 64);
    (pwal_options_init)((pwal_options *)ob);
    CHECK(((pwal_options *)ob)->struct_size == PWAL_OPTIONS_MIN_SIZE);
    for (size_t i = PWAL_OPTIONS_MIN_SIZE; i < sizeof(pwal_options) + 64; i++) CHECK(ob[i] == 0xa5);
    memset(ob, 0xa5, sizeof(pwal_options) + 64);
    pwal_options_init_sized((pwal_options *)ob, PWAL_OPTIONS_MIN_SIZE + 4);
    CHECK(((pwal_options *)ob)->struct_size == PWAL_OPTIONS_MIN_SIZE + 4);
    for (size_t i = PWAL_OPTIONS_MIN_SIZE + 4; i < sizeof(pwal_options) + 64; i++) CHECK(ob[i] == 0xa5);
    pwal_options_init((pwal_options *)ob);
    CHECK(((pwal_options *)ob)->struct_size == sizeof(pwal_options));
    CHECK(((pwal_options *)ob)->trace == NULL && ((pwal_options *)ob)->trace_user_data == NULL);
    free(ob);

    pwal_options o = test_options();
    pwal *log = NULL;
    o.struct_size = PWAL_OPTIONS_MIN_SIZE - 1;
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "struct_size");
    CHECK(log == NULL);
    o.struct_size = PWAL_OPTIONS_MIN_SIZE;
    OK(pwal_open(g_db, &o, &log));
    uint64_t e = 0;
    commit_range(log, 1, 3, &e);

    /* The stats buffer is exactly the minimum, in a larger zeroed block so
     * that a write past it would show. */
    unsigned char *buf = calloc(1, sizeof(pwal_stats) + 64);
    CHECK(buf != NULL);
    pwal_stats *s = (pwal_stats *)buf;
    s->struct_size = PWAL_STATS_MIN_SIZE - 1;
    EXPECT_STATUS(pwal_get_stats(log, s), PWAL_ERR_INVALID, "struct_size");
    s->struct_size = PWAL_STATS_MIN_SIZE;
    OK(pwal_get_stats(log, s));
    CHECK(s->struct_size == PWAL_STATS_MIN_SIZE);
    CHECK(s->durable_epoch >= e);
    for (size_t i = PWAL_STATS_MIN_SIZE; i < sizeof(pwal_stats) + 64; i++) CHECK(buf[i] == 0);
    free(buf);
    OK(pwal_close(log));

    oracle or;
    oracle_init(&or, 3);
    buf = calloc(1, sizeof(pwal_recovery_report) + 64);
    CHECK(buf != NULL);
    pwal_recovery_report *rep = (pwal_recovery_report *)buf;
    rep->struct_size = PWAL_RECOVERY_REPORT_MIN_SIZE - 1;
    EXPECT_STATUS(pwal_recover(g_db, 0, oracle_cb, &or, rep), PWAL_ERR_INVALID, "struct_size");
    CHECK(or.records == 0);
    rep->struct_size = PWAL_RECOVERY_REPORT_MIN_SIZE;
    OK(pwal_recover(g_db, 0, oracle_cb, &or, rep));
    CHECK(rep->struct_size == PWAL_RECOVERY_REPORT_MIN_SIZE);
    CHECK(rep->transactions == 3);
    for (size_t i = PWAL_RECOVERY_REPORT_MIN_SIZE; i < sizeof(pwal_recovery_report) + 64; i++)
        CHECK(buf[i] == 0);
    free(buf);
    free(or.seen);
    printf("min_sizes: the 0.1.0 sizes work, one byte less is refused\n");
}

/* Fail-stop through the ABI: a real kernel write error (EFBIG from
 * RLIMIT_FSIZE once the log passes 32 KiB) is reported as PWAL_ERR_IO, every
 * later call as PWAL_ERR_POISONED, and nothing acknowledged before is lost. */
static void case_fail_stop(void) {
    pwal_options o = test_options();
    o.segment_bytes = 64u << 10; /* the minimum: preallocated before the limit */
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    uint64_t before = 0;
    commit_range(log, 1, 5, &before); /* acknowledged before any failure */

    struct rlimit old_limit, limit;
    CHECK(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    limit = old_limit;
    limit.rlim_cur = 32u << 10;
    CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR); /* get EFBIG, not a signal */
    CHECK(setrlimit(RLIMIT_FSIZE, &limit) == 0);

    txn_buf *b = malloc(sizeof *b);
    CHECK(b != NULL);
    uint64_t acked = 5, id;
    pwal_status st = PWAL_OK;
    for (id = 6; id <= 1000; id++) {
        make_txn(b, id, id);
        st = pwal_commit(log, &b->txn, TEST_TIMEOUT_MS, NULL);
        if (st != PWAL_OK) break;
        acked = id;
    }
    /* The first failure is the write error itself, naming the kernel's
     * cause (strerror(EFBIG)); only later calls see the poisoned log. */
    if (st != PWAL_ERR_IO) {
        fprintf(stderr, "[%s] the first failing commit (id %llu) returned %s, expected "
                "PWAL_ERR_IO\n  last error: %s\n", g_case, (unsigned long long)id,
                pwal_status_name(st), pwal_last_error());
        exit(1);
    }
    if (strstr(pwal_last_error(), "File too large") == NULL) {
        fprintf(stderr, "[%s] the first failure does not name EFBIG (\"File too large\"): %s\n",
                g_case, pwal_last_error());
        exit(1);
    }
    CHECK(acked < 1000);
    char first_error[512];
    snprintf(first_error, sizeof first_error, "%s", pwal_last_error());

    /* From now on nothing is acknowledged. */
    make_txn(b, id + 1, id + 1);
    uint64_t epoch = 0;
    EXPECT_STATUS(pwal_submit(log, &b->txn, &epoch), PWAL_ERR_POISONED, "");
    EXPECT_STATUS(pwal_commit(log, &b->txn, TEST_TIMEOUT_MS, NULL), PWAL_ERR_POISONED, "");
    pwal_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    OK(pwal_get_stats(log, &s)); /* stats still work on a poisoned log */
    CHECK(s.poisoned != 0);
    EXPECT_STATUS(pwal_close(log), PWAL_ERR_POISONED, "");
    free(b);

    CHECK(setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    oracle or;
    oracle_init(&or, 1001);
    recover_all(&or, PWAL_OK);
    for (uint64_t i = 1; i <= acked; i++) CHECK(or.seen[i]);
    free(or.seen);
    printf("fail_stop: %llu commits acknowledged, then \"%s\"; all of them recovered\n",
           (unsigned long long)acked, first_error);
}

static const char *g_self;

static void case_locked(void) {
    pwal *log = open_log();
    uint64_t e = 0;
    commit_range(log, 1, 3, &e);

    /* The child re-executes this harness, so it opens the log in a clean
     * process (nothing inherited from our threads but the fd table). */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl(g_self, g_self, "child_open_expect_locked", g_db, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);

    commit_range(log, 4, 6, &e); /* the failed open did not disturb us */
    OK(pwal_close(log));
    printf("locked: another process got PWAL_ERR_LOCKED\n");
}

static void child_open_expect_locked(void) {
    pwal_options o = test_options();
    pwal *log = NULL;
    pwal_status st = pwal_open(g_db, &o, &log);
    if (st != PWAL_ERR_LOCKED || log != NULL) {
        fprintf(stderr, "child: pwal_open returned %s (%s), expected PWAL_ERR_LOCKED\n",
                pwal_status_name(st), pwal_last_error());
        if (log) pwal_close(log);
        _exit(1);
    }
    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    st = pwal_recover(g_db, 0, never_called, NULL, &rep);
    if (st != PWAL_ERR_LOCKED) {
        fprintf(stderr, "child: pwal_recover returned %s (%s), expected PWAL_ERR_LOCKED\n",
                pwal_status_name(st), pwal_last_error());
        _exit(1);
    }
    _exit(0);
}

/* fork() without exec: the child's inherited handle refuses every call with
 * PWAL_ERR_FORKED and writes nothing; its pwal_close frees the child's copy
 * without touching the parent's log; the parent's log holds exactly the
 * parent's commits. */
static void case_forked_handle(void) {
    pwal *log = open_log();
    uint64_t e = 0;
    commit_range(log, 1, 3, &e);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(60); /* a hang (joining the parent's threads) fails the case */
        txn_buf *b = malloc(sizeof *b);
        if (b == NULL) _exit(3);
        make_txn(b, 100, 100);
        uint64_t epoch = 0;
        int bad = 0;
        bad |= pwal_commit(log, &b->txn, TEST_TIMEOUT_MS, NULL) != PWAL_ERR_FORKED;
        bad |= strstr(pwal_last_error(), "fork") == NULL;
        bad |= pwal_submit(log, &b->txn, &epoch) != PWAL_ERR_FORKED;
        bad |= pwal_wait_durable(log, 1, 0) != PWAL_ERR_FORKED;
        bad |= pwal_checkpoint(log, 1) != PWAL_ERR_FORKED;
        bad |= pwal_durable(log, &epoch, NULL) != PWAL_ERR_FORKED;
        pwal_stats s;
        memset(&s, 0, sizeof s);
        s.struct_size = sizeof s;
        bad |= pwal_get_stats(log, &s) != PWAL_ERR_FORKED;
        bad |= pwal_close(log) != PWAL_ERR_FORKED;
        if (bad) fprintf(stderr, "child: last error: %s\n", pwal_last_error());
        free(b);
        if (bad) _exit(1);
        /* pwal leaks in the child, by design, what the parent's threads own
         * (they do not exist here): end by exec rather than exit, so that
         * valgrind does not count that as this case's leak. */
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);

    commit_range(log, 4, 6, &e);
    OK(pwal_close(log));
    oracle o;
    oracle_init(&o, 100);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    for (uint64_t id = 1; id <= 6; id++) CHECK(o.seen[id]);
    CHECK(!o.seen[100]);
    CHECK(rep.transactions == 6);
    free(o.seen);
    printf("forked_handle: the child's inherited handle refused every call\n");
}

static void case_version(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", PWAL_VERSION_MAJOR, PWAL_VERSION_MINOR,
             PWAL_VERSION_PATCH);
    CHECK(strcmp(pwal_version(), want) == 0);
    CHECK(PWAL_WAIT_FOREVER == UINT32_MAX);
    printf("version: %s\n", pwal_version());
}

static void case_empty(void) {
    /* A database that never had a log: recovery is empty, not an error. */
    oracle o;
    oracle_init(&o, 1);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    CHECK(rep.records == 0 && rep.epochs == 0 && rep.segments == 0);
    free(o.seen);
    printf("empty: no log directory means nothing to replay\n");
}


/* ---- the recovery contract: checkpoint mark, report, order, open, repair ---- */

#define SMALL_SEGMENT_BYTES 65536u

static pwal *open_small(void) {
    pwal_options o = test_options();
    o.segment_bytes = SMALL_SEGMENT_BYTES;
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    return log;
}

/* The segment files of the log, ascending (names are fixed-width ids). */
#define MAX_SEGS 64
typedef struct {
    char path[MAX_SEGS][4200];
    size_t n;
} seg_list;

static int cmp_str(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static void list_segments(const char *dirpath, seg_list *l) {
    l->n = 0;
    DIR *d = opendir(dirpath);
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 6 && strcmp(e->d_name + len - 6, ".pwseg") == 0) {
            CHECK(l->n < MAX_SEGS);
            snprintf(l->path[l->n++], sizeof l->path[0], "%s/%s", dirpath, e->d_name);
        }
    }
    closedir(d);
    qsort(l->path, l->n, sizeof l->path[0], cmp_str);
}

static void log_dir_of(char *out, size_t n) { snprintf(out, n, "%s-pwal", g_db); }

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    CHECK(fseek(f, offset, SEEK_SET) == 0);
    int c = fgetc(f);
    CHECK(c != EOF);
    CHECK(fseek(f, offset, SEEK_SET) == 0);
    CHECK(fputc(c ^ 0x40, f) != EOF);
    CHECK(fclose(f) == 0);
}

static pwal_recovery_report new_report(void) {
    pwal_recovery_report rep;
    memset(&rep, 0xee, sizeof rep); /* filled by pwal, whatever the status */
    rep.struct_size = sizeof rep;
    return rep;
}

/* Checkpointed epochs are kept out of replay, and the mark is reported. */
static void case_checkpoint_mark(void) {
    pwal *log = open_log();
    uint64_t e = 0, mark = 0;
    commit_range(log, 1, 10, &mark);
    OK(pwal_checkpoint(log, mark));
    commit_range(log, 11, 15, &e);
    OK(pwal_close(log));
    oracle o;
    oracle_init(&o, 15);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    CHECK(rep.checkpoint_epoch == mark);
    for (uint64_t id = 1; id <= 10; id++) CHECK(!o.seen[id]);
    for (uint64_t id = 11; id <= 15; id++) CHECK(o.seen[id]);
    CHECK(rep.transactions == 5);
    CHECK(rep.first_epoch >= 1 && rep.first_epoch <= mark); /* still read, validated */
    free(o.seen);
    printf("checkpoint_mark: nothing at or below epoch %llu replayed\n", (unsigned long long)mark);
}

/* A log of several small segments, damaged in the first frame of the
 * second: later frames prove that epoch durable. Returns that epoch's
 * segment path in `seg` and the number of segments. */
static size_t damaged_log(uint64_t ids, char *seg, size_t seg_size) {
    pwal *log = open_small();
    uint64_t e = 0;
    commit_range(log, 1, ids, &e);
    OK(pwal_close(log));
    char dir[4200];
    log_dir_of(dir, sizeof dir);
    seg_list *l = malloc(sizeof *l);
    CHECK(l != NULL);
    list_segments(dir, l);
    CHECK(l->n >= 3);
    size_t n = l->n;
    flip_byte(l->path[1], 4096 + 200);
    snprintf(seg, seg_size, "%s", l->path[1]);
    free(l);
    return n;
}

/* The report describes corruption on PWAL_ERR_CORRUPT: text, file, offset
 * and the expected epoch; open refuses the same log naming them. */
static void case_corrupt_report(void) {
    char seg[4200];
    damaged_log(40, seg, sizeof seg);
    oracle o;
    oracle_init(&o, 40);
    pwal_recovery_report rep = new_report();
    EXPECT_STATUS(pwal_recover(g_db, 0, oracle_cb, &o, &rep), PWAL_ERR_CORRUPT, "offset 4096");
    CHECK(rep.struct_size == sizeof rep);
    CHECK(rep.has_damage == 1);
    CHECK(strstr(rep.damage, "offset 4096") != NULL);
    CHECK(strcmp(rep.damage_file, seg) == 0);
    CHECK(rep.damage_offset == 4096);
    CHECK(rep.damage_epoch == rep.last_epoch + 1);
    CHECK(rep.seq_inversions == 0 && rep.checkpoint_epoch == 0);
    CHECK(rep.records == o.records);

    pwal_options opts = test_options();
    opts.segment_bytes = SMALL_SEGMENT_BYTES;
    pwal *log = (pwal *)&opts; /* must be overwritten with NULL */
    EXPECT_STATUS(pwal_open(g_db, &opts, &log), PWAL_ERR_CORRUPT, seg);
    CHECK(log == NULL);
    char want[64];
    snprintf(want, sizeof want, "epoch %llu", (unsigned long long)rep.damage_epoch);
    CHECK(strstr(pwal_last_error(), want) != NULL);
    CHECK(strstr(pwal_last_error(), "offset 4096") != NULL);

    /* A 0.1.0-sized report is filled up to `damage` only. */
    unsigned char *buf = calloc(1, sizeof(pwal_recovery_report));
    CHECK(buf != NULL);
    pwal_recovery_report *old = (pwal_recovery_report *)buf;
    old->struct_size = PWAL_RECOVERY_REPORT_MIN_SIZE;
    EXPECT_STATUS(pwal_recover(g_db, 0, oracle_cb, &o, old), PWAL_ERR_CORRUPT, "offset");
    CHECK(old->struct_size == PWAL_RECOVERY_REPORT_MIN_SIZE);
    CHECK(old->has_damage == 1 && old->damage_file[0] == 0 && old->damage_offset == 0);
    free(buf);
    free(o.seen);
    printf("corrupt_report: damage at %s offset 4096, epoch %llu; open refused\n", seg,
           (unsigned long long)rep.damage_epoch);
}

typedef struct {
    uint64_t ids[16];
    size_t n;
} id_log;

static int32_t collect_ids(void *user, const pwal_record *r) {
    id_log *l = (id_log *)user;
    if (l->n == 0 || l->ids[l->n - 1] != r->txn_id) {
        if (l->n == 16) return 1;
        l->ids[l->n++] = r->txn_id;
    }
    return 0;
}

/* Sequences 10, 5, 20 in three epochs: one inversion, counted; refused with
 * the flag before the inverted transaction is given. */
static void case_seq_inversions(void) {
    pwal *log = open_log();
    txn_buf *b = malloc(sizeof *b);
    CHECK(b != NULL);
    uint64_t seqs[3] = {10, 5, 20}, epochs[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        make_txn(b, (uint64_t)i + 1, seqs[i]);
        OK(pwal_commit(log, &b->txn, TEST_TIMEOUT_MS, &epochs[i]));
    }
    free(b);
    CHECK(epochs[0] < epochs[1] && epochs[1] < epochs[2]);
    OK(pwal_close(log));

    id_log got = {{0}, 0};
    pwal_recovery_report rep = new_report();
    OK(pwal_recover(g_db, 0, collect_ids, &got, &rep));
    CHECK(rep.seq_inversions == 1);
    CHECK(got.n == 3 && got.ids[0] == 1 && got.ids[1] == 2 && got.ids[2] == 3);

    id_log got2 = {{0}, 0};
    rep = new_report();
    EXPECT_STATUS(pwal_recover(g_db, PWAL_RECOVER_REFUSE_SEQ_INVERSIONS, collect_ids, &got2, &rep),
                  PWAL_ERR_CORRUPT, "commit sequence 5");
    CHECK(strstr(pwal_last_error(), "sequence 10") != NULL);
    char want[64];
    snprintf(want, sizeof want, "epoch %llu", (unsigned long long)epochs[0]);
    CHECK(strstr(pwal_last_error(), want) != NULL);
    CHECK(got2.n == 1 && got2.ids[0] == 1);
    CHECK(rep.has_damage == 1 && rep.damage_epoch == epochs[1]);
    printf("seq_inversions: counted 1; refused before delivering it\n");
}

/* pwal_recover_and_open: every record once, then the log is open. */
static void case_recover_and_open(void) {
    pwal *log = open_small();
    uint64_t e = 0;
    commit_range(log, 1, 30, &e);
    OK(pwal_close(log));

    oracle o;
    oracle_init(&o, 40);
    pwal_recovery_report rep = new_report();
    pwal_options opts = test_options();
    opts.segment_bytes = SMALL_SEGMENT_BYTES;
    log = NULL;
    OK(pwal_recover_and_open(g_db, &opts, 0, oracle_cb, &o, &rep, &log));
    CHECK(log != NULL);
    finish_txn(&o);
    CHECK(o.error == NULL);
    for (uint64_t id = 1; id <= 30; id++) CHECK(o.seen[id]);
    CHECK(rep.transactions == 30 && rep.records == o.records && rep.has_damage == 0);
    /* A second recover_and_open while it is open is refused. */
    pwal *again = NULL;
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, 0, oracle_cb, &o, NULL, &again),
                  PWAL_ERR_INVALID, "already open");
    CHECK(again == NULL);
    uint64_t e2 = 0;
    commit_range(log, 31, 40, &e2);
    CHECK(e2 > e);
    OK(pwal_close(log));
    free(o.seen);

    oracle_init(&o, 40);
    rep = recover_all(&o, PWAL_OK);
    for (uint64_t id = 1; id <= 40; id++) CHECK(o.seen[id]);
    free(o.seen);

    /* Misuse: the durable-prefix flag, unknown flags, NULL callback/out. */
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, PWAL_RECOVER_DURABLE_PREFIX, oracle_cb, &o,
                                        NULL, &log),
                  PWAL_ERR_INVALID, "durable-prefix");
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, 0x80, oracle_cb, &o, NULL, &log),
                  PWAL_ERR_INVALID, "flags");
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, 0, NULL, &o, NULL, &log), PWAL_ERR_INVALID,
                  "callback");
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, 0, oracle_cb, &o, NULL, NULL),
                  PWAL_ERR_INVALID, "out_log");
    EXPECT_STATUS(pwal_repair(NULL, NULL), PWAL_ERR_INVALID, "path");
    printf("recover_and_open: 30 replayed once, then 10 more committed\n");
}

/* recover_and_open on a damaged log: the prefix is replayed, nothing is
 * opened, and the report says where. */
static void case_recover_and_open_damaged(void) {
    char seg[4200];
    damaged_log(40, seg, sizeof seg);
    oracle o;
    oracle_init(&o, 40);
    pwal_recovery_report rep = new_report();
    pwal_options opts = test_options();
    opts.segment_bytes = SMALL_SEGMENT_BYTES;
    pwal *log = NULL;
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, 0, oracle_cb, &o, &rep, &log),
                  PWAL_ERR_CORRUPT, seg);
    CHECK(log == NULL);
    CHECK(strcmp(rep.damage_file, seg) == 0 && rep.damage_offset == 4096);
    free(o.seen);
    printf("recover_and_open_damaged: refused at %s\n", seg);
}

/* Is `data` (len bytes) the whole content of some file whose name starts
 * with `name` in `dir`? */
static int kept_in(const char *dir, const char *name, const unsigned char *data, size_t len) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, name, strlen(name)) != 0) continue;
        char p[8400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t n = 0;
        unsigned char *c = read_file(p, &n);
        found = n == len && memcmp(c, data, len) == 0;
        free(c);
    }
    closedir(d);
    return found;
}

/* pwal_repair: cut to the durable prefix, nothing deleted, then the log
 * recovers to exactly that prefix, opens and continues. */
static void case_repair(void) {
    char seg[4200], dir[4200], damaged[4300];
    damaged_log(40, seg, sizeof seg);
    log_dir_of(dir, sizeof dir);
    snprintf(damaged, sizeof damaged, "%s/damaged", dir);
    seg_list *l = malloc(sizeof *l);
    CHECK(l != NULL);
    list_segments(dir, l);
    unsigned char *orig[MAX_SEGS];
    size_t orig_len[MAX_SEGS];
    for (size_t i = 0; i < l->n; i++) orig[i] = read_file(l->path[i], &orig_len[i]);

    oracle prefix;
    oracle_init(&prefix, 50);
    pwal_recovery_report want = new_report();
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX, oracle_cb, &prefix, &want));
    finish_txn(&prefix);
    CHECK(want.has_damage && want.skipped_segments >= 1);

    pwal *log = NULL;
    pwal_recovery_report rep = new_report();
    OK(pwal_repair(g_db, &rep));
    CHECK(rep.last_epoch == want.last_epoch && rep.damage_offset == 4096);
    CHECK(strcmp(rep.damage_file, seg) == 0);
    for (size_t i = 0; i < l->n; i++) {
        const char *name = strrchr(l->path[i], '/') + 1;
        size_t n = 0;
        int live = 0;
        FILE *f = fopen(l->path[i], "rb");
        if (f != NULL) {
            fclose(f);
            unsigned char *c = read_file(l->path[i], &n);
            live = n == orig_len[i] && memcmp(c, orig[i], n) == 0;
            free(c);
        }
        CHECK(live || kept_in(damaged, name, orig[i], orig_len[i]));
    }

    oracle o;
    oracle_init(&o, 50);
    pwal_recovery_report after = recover_all(&o, PWAL_OK);
    CHECK(after.has_damage == 0);
    CHECK(after.last_epoch == want.last_epoch && after.records == prefix.records);
    CHECK(memcmp(o.seen, prefix.seen, 51) == 0);
    free(o.seen);

    log = open_small();
    uint64_t e = 0;
    commit_range(log, 41, 41, &e);
    CHECK(e == want.last_epoch + 1);
    /* Repair while this process has the log open: LOCKED. */
    EXPECT_STATUS(pwal_repair(g_db, NULL), PWAL_ERR_LOCKED, "open");
    OK(pwal_close(log));

    oracle_init(&o, 50);
    after = recover_all(&o, PWAL_OK);
    CHECK(o.seen[41]);
    o.seen[41] = 0;
    CHECK(memcmp(o.seen, prefix.seen, 51) == 0);
    for (size_t i = 0; i < l->n; i++) {
        const char *name = strrchr(l->path[i], '/') + 1;
        size_t n = 0;
        int live = 0;
        FILE *f = fopen(l->path[i], "rb");
        if (f != NULL) {
            fclose(f);
            unsigned char *c = read_file(l->path[i], &n);
            live = n == orig_len[i] && memcmp(c, orig[i], n) == 0;
            free(c);
        }
        CHECK(live || kept_in(damaged, name, orig[i], orig_len[i]));
        free(orig[i]);
    }
    free(o.seen);
    free(prefix.seen);
    free(l);
    printf("repair: cut at epoch %llu, reopened and continued at %llu\n",
           (unsigned long long)want.last_epoch + 1, (unsigned long long)e);
}

/* A transaction of 40 MiB (two and a half times the largest record) commits through
 * pwal_commit, is replayed whole in the epoch pwal_commit returned, byte for
 * byte, and a transaction over PWAL_MAX_TXN_BYTES is refused. */
typedef struct {
    uint64_t epoch, frames, bad, other;
} large_seen;

static unsigned char large_byte(uint32_t page, uint32_t i) { return (unsigned char)(page * 31u + i * 7u + (i >> 8)); }

static int32_t large_cb(void *user, const pwal_record *r) {
    large_seen *s = (large_seen *)user;
    if (r->txn_id != 77) {
        s->other++;
        return 0;
    }
    if (s->frames == 0) s->epoch = r->epoch;
    const unsigned char *d = (const unsigned char *)r->data;
    if (r->epoch != s->epoch || r->page_number != s->frames + 1 || r->len != 4096) s->bad++;
    for (uint32_t i = 0; i < r->len; i += 509)
        if (d[i] != large_byte(r->page_number, i)) s->bad++;
    s->frames++;
    return 0;
}

static void case_large_txn(void) {
    enum { PAGES = 10240, PAGE = 4096 };
    unsigned char *data = malloc((size_t)PAGES * PAGE);
    pwal_frame *f = calloc(PAGES, sizeof *f);
    CHECK(data && f);
    for (uint32_t p = 0; p < PAGES; p++) {
        for (uint32_t i = 0; i < PAGE; i++) data[(size_t)p * PAGE + i] = large_byte(p + 1, i);
        f[p].page_number = p + 1;
        f[p].db_size_if_commit = p + 1 == PAGES ? PAGES : 0;
        f[p].data = data + (size_t)p * PAGE;
        f[p].len = PAGE;
    }
    pwal *log = open_log();
    pwal_txn t = {77, 77, f, PAGES, 0};
    uint64_t epoch = 0, e = 0;
    OK(pwal_commit(log, &t, TEST_TIMEOUT_MS, &epoch));
    commit_range(log, 1, 3, &e);
    CHECK(e >= epoch);

    /* One byte over the limit: PWAL_MAX_TXN_BYTES / 65536 full pages and one
     * more byte, all pointing at the same buffer. */
    uint32_t n = PWAL_MAX_TXN_BYTES / PWAL_MAX_PAGE_BYTES + 1;
    unsigned char *page = calloc(1, PWAL_MAX_PAGE_BYTES);
    pwal_frame *g = calloc(n, sizeof *g);
    CHECK(page && g);
    for (uint32_t i = 0; i < n; i++) {
        g[i].page_number = i + 1;
        g[i].data = page;
        g[i].len = i + 1 == n ? 1 : PWAL_MAX_PAGE_BYTES;
    }
    pwal_txn over = {78, 78, g, n, 0};
    EXPECT_STATUS(pwal_submit(log, &over, &e), PWAL_ERR_INVALID, "bytes of pages");
    OK(pwal_close(log));

    large_seen s = {0, 0, 0, 0};
    pwal_recovery_report rep = new_report();
    OK(pwal_recover(g_db, 0, large_cb, &s, &rep));
    CHECK(s.frames == PAGES);
    CHECK(s.bad == 0);
    CHECK(s.epoch == epoch);
    CHECK(s.other > 0);
    CHECK(rep.transactions == 4);
    free(page);
    free(g);
    free(f);
    free(data);
    printf("large_txn: %u pages of %u bytes replayed whole in epoch %llu\n", (unsigned)PAGES,
           (unsigned)PAGE, (unsigned long long)epoch);
}

/* ---- write_log: a log for the pwal command's tests (cli/tests/) ----
 *
 *     harness write_log DIR [TXNS [END [SEGMENT_BYTES]]]
 *
 * Commits transactions 1..TXNS (default 40; commit_seq = id, one epoch
 * each) to DIR/test.db, prints "write_log: txns N frames F last_epoch E pid
 * P", then, by END:
 *   close  closes the log and exits (the default);
 *   exit   exits without closing it (as a crash would, after every commit
 *          was acknowledged);
 *   hold   keeps it open, idle, reading commands from stdin: "more K"
 *          commits K more transactions and prints "ok: txns N frames F
 *          last_epoch E"; at the end of stdin it closes the log and exits;
 *   busy   keeps committing from a second thread until the end of stdin,
 *          then closes the log and prints "done: txns N frames F
 *          last_epoch E".
 * SEGMENT_BYTES defaults to TEST_SEGMENT_BYTES. */

static int g_argc;
static char **g_argv;

typedef struct {
    pwal *log;
    uint64_t txns, frames, last_epoch;
    volatile int stop;
} write_log_state;

static void write_log_commit(write_log_state *w, uint64_t k) {
    uint64_t e = 0;
    commit_range(w->log, w->txns + 1, w->txns + k, &e);
    for (uint64_t id = w->txns + 1; id <= w->txns + k; id++) w->frames += frames_of(id);
    w->txns += k;
    if (e > w->last_epoch) w->last_epoch = e;
}

static void *write_log_busy(void *p) {
    write_log_state *w = (write_log_state *)p;
    while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) write_log_commit(w, 1);
    return NULL;
}

static void case_write_log(void) {
    uint64_t txns = g_argc > 3 ? strtoull(g_argv[3], NULL, 10) : 40;
    const char *end = g_argc > 4 ? g_argv[4] : "close";
    pwal_options o = test_options();
    if (g_argc > 5) o.segment_bytes = strtoull(g_argv[5], NULL, 10);
    write_log_state w;
    memset(&w, 0, sizeof w);
    OK(pwal_open(g_db, &o, &w.log));
    write_log_commit(&w, txns);
    printf("write_log: txns %llu frames %llu last_epoch %llu pid %ld\n",
           (unsigned long long)w.txns, (unsigned long long)w.frames,
           (unsigned long long)w.last_epoch, (long)getpid());
    CHECK(fflush(stdout) == 0);
    if (strcmp(end, "exit") == 0) _exit(0);
    if (strcmp(end, "hold") == 0) {
        char line[128];
        while (fgets(line, sizeof line, stdin) != NULL) {
            unsigned long long k = 0;
            CHECK(sscanf(line, "more %llu", &k) == 1);
            write_log_commit(&w, k);
            printf("ok: txns %llu frames %llu last_epoch %llu\n", (unsigned long long)w.txns,
                   (unsigned long long)w.frames, (unsigned long long)w.last_epoch);
            CHECK(fflush(stdout) == 0);
        }
    } else if (strcmp(end, "busy") == 0) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, write_log_busy, &w) == 0);
        char line[128];
        while (fgets(line, sizeof line, stdin) != NULL) {
        }
        __atomic_store_n(&w.stop, 1, __ATOMIC_SEQ_CST);
        CHECK(pthread_join(t, NULL) == 0);
        printf("done: txns %llu frames %llu last_epoch %llu\n", (unsigned long long)w.txns,
               (unsigned long long)w.frames, (unsigned long long)w.last_epoch);
    } else {
        CHECK(strcmp(end, "close") == 0);
    }
    OK(pwal_close(w.log));
}

/* The environment fills what pwal_options_init returns; what the program
 * sets afterwards wins, and the stats say which values came from the
 * environment. A 0.1.0-sized options struct gets its defaults filled; a bad
 * variable fails the open naming it. */
static pwal_stats stats_of(pwal *log) {
    pwal_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    OK(pwal_get_stats(log, &s));
    return s;
}

static void case_env_rule(void) {
    CHECK(setenv("PWAL_SYNC", "off", 1) == 0);
    CHECK(setenv("PWAL_MODE", "conservative", 1) == 0);
    pwal_options o;
    pwal_options_init(&o);
    CHECK(o.sync == PWAL_SYNC_OFF && o.mode == PWAL_MODE_CONSERVATIVE);
    CHECK(o.env_fields == (PWAL_ENV_SYNC | PWAL_ENV_MODE));

    /* The program asks for full: PWAL_SYNC=off cannot weaken it. */
    o.sync = PWAL_SYNC_FULL;
    o.segment_bytes = TEST_SEGMENT_BYTES;
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    pwal_stats s = stats_of(log);
    CHECK(s.sync == PWAL_SYNC_FULL);
    CHECK(s.mode == PWAL_MODE_CONSERVATIVE);
    CHECK(s.fallback_reason == PWAL_FALLBACK_OPERATOR_FORCED);
    CHECK(s.env_fields == PWAL_ENV_MODE);
    OK(pwal_close(log));

    /* ignore_env undoes what the environment filled. */
    pwal_options_init(&o);
    o.ignore_env = 1;
    o.segment_bytes = TEST_SEGMENT_BYTES;
    OK(pwal_open(g_db, &o, &log));
    s = stats_of(log);
    CHECK(s.sync == PWAL_SYNC_FULL && s.mode == PWAL_MODE_AUTO && s.env_fields == 0);
    OK(pwal_close(log));

    /* A program built against 0.1.0 (48-byte options, no env_fields): the
     * fields it left at their defaults are filled. */
    memset(&o, 0, sizeof o);
    o.struct_size = PWAL_OPTIONS_MIN_SIZE;
    o.segment_bytes = TEST_SEGMENT_BYTES;
    OK(pwal_open(g_db, &o, &log));
    s = stats_of(log);
    CHECK(s.sync == PWAL_SYNC_OFF && s.env_fields == (PWAL_ENV_SYNC | PWAL_ENV_MODE));
    OK(pwal_close(log));

    /* A variable that does not parse fails the open, naming it. */
    CHECK(setenv("PWAL_SYNC", "sometimes", 1) == 0);
    pwal_options_init(&o);
    CHECK(o.sync == PWAL_SYNC_FULL && (o.env_fields & PWAL_ENV_SYNC) == 0);
    EXPECT_STATUS(pwal_open(g_db, &o, &log), PWAL_ERR_INVALID, "PWAL_SYNC");
    CHECK(log == NULL);
    CHECK(unsetenv("PWAL_SYNC") == 0 && unsetenv("PWAL_MODE") == 0);
    printf("env_rule: the environment fills, the program wins\n");
}

/* Transactions of several files share one log: each comes back with the
 * file_id it was committed under, and equal txn ids and commit sequences
 * in different files are different transactions (a large one in parts
 * included). */
typedef struct {
    uint64_t n;
    uint32_t file[64];
    uint64_t txn[64];
    uint64_t big_frames;
} file_seen;

static int32_t file_cb(void *user, const pwal_record *r) {
    file_seen *s = (file_seen *)user;
    if (r->file_id == 9) {
        s->big_frames++;
        return 0;
    }
    if (s->n < 64 && (s->n == 0 || s->txn[s->n - 1] != r->txn_id || s->file[s->n - 1] != r->file_id)) {
        s->file[s->n] = r->file_id;
        s->txn[s->n] = r->txn_id;
        s->n++;
    }
    return 0;
}

static void case_file_ids(void) {
    pwal *log = open_log();
    unsigned char page[512];
    memset(page, 7, sizeof page);
    pwal_frame f = {1, 1, page, sizeof page};
    pwal_txn t = {5, 5, &f, 1, 0};
    uint64_t e = 0;
    OK(pwal_commit_file(log, 1, &t, TEST_TIMEOUT_MS, &e));
    OK(pwal_commit_file(log, 2, &t, TEST_TIMEOUT_MS, &e));
    OK(pwal_commit(log, &t, TEST_TIMEOUT_MS, &e));
    OK(pwal_submit_file(log, 3, &t, &e));
    OK(pwal_wait_durable(log, e, TEST_TIMEOUT_MS));
    EXPECT_STATUS(pwal_commit_file(NULL, 1, &t, 0, &e), PWAL_ERR_INVALID, "log");
    EXPECT_STATUS(pwal_submit_file(log, 1, NULL, &e), PWAL_ERR_INVALID, "txn");

    /* A transaction in parts in file 9, with the txn id and sequence of the
     * others, committed while file 8 commits the same ids. */
    enum { PAGES = 6000, PAGE = 4096 };
    unsigned char *data = calloc(PAGES, PAGE);
    pwal_frame *g = calloc(PAGES, sizeof *g);
    CHECK(data && g);
    for (uint32_t i = 0; i < PAGES; i++) {
        g[i].page_number = i + 1;
        g[i].data = data + (size_t)i * PAGE;
        g[i].len = PAGE;
    }
    pwal_txn big = {5, 5, g, PAGES, 0};
    OK(pwal_commit_file(log, 9, &big, TEST_TIMEOUT_MS, &e));
    OK(pwal_commit_file(log, 8, &t, TEST_TIMEOUT_MS, &e));
    OK(pwal_close(log));
    free(g);
    free(data);

    file_seen s;
    memset(&s, 0, sizeof s);
    pwal_recovery_report rep = new_report();
    OK(pwal_recover(g_db, 0, file_cb, &s, &rep));
    CHECK(rep.transactions == 6);
    CHECK(s.big_frames == PAGES);
    CHECK(s.n == 5);
    uint32_t want[5] = {1, 2, 0, 3, 8};
    for (int i = 0; i < 5; i++) CHECK(s.file[i] == want[i] && s.txn[i] == 5);
    printf("file_ids: six transactions of five files in one log\n");
}

/* The trace callback: each durable epoch once, in order, before pwal_close
 * returns, with its transactions; a checkpoint event with its mark. */
typedef struct {
    uint64_t durable, last_epoch, out_of_order, transactions, checkpoints, mark, segments;
} trace_seen;

static void on_trace(void *user, const pwal_trace_event *e) {
    trace_seen *t = (trace_seen *)user;
    CHECK(e->struct_size == sizeof *e);
    switch (e->kind) {
    case PWAL_TRACE_EPOCH_DURABLE:
        if (e->epoch != t->last_epoch + 1) t->out_of_order++;
        t->last_epoch = e->epoch;
        t->durable++;
        t->transactions += e->transactions;
        /* The epoch's commit-sequence range and lanes (since 0.2.0). */
        if (e->transactions > 0)
            CHECK(e->lanes >= 1 && e->first_commit_seq >= 1 &&
                  e->first_commit_seq <= e->last_commit_seq);
        else
            CHECK(e->lanes == 0 && e->first_commit_seq == 0 && e->last_commit_seq == 0);
        break;
    case PWAL_TRACE_CHECKPOINT:
        t->checkpoints++;
        t->mark = e->epoch;
        break;
    case PWAL_TRACE_SEGMENT_CREATED:
        t->segments++;
        CHECK(strstr(e->detail, ".pwseg") != NULL);
        break;
    default:
        break;
    }
}

static void case_trace(void) {
    trace_seen t;
    memset(&t, 0, sizeof t);
    pwal_options o = test_options();
    o.trace = on_trace;
    o.trace_user_data = &t;
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    uint64_t e = 0;
    commit_range(log, 1, 20, &e);
    OK(pwal_checkpoint(log, e));
    commit_range(log, 21, 25, &e);
    OK(pwal_close(log));
    CHECK(t.out_of_order == 0);
    CHECK(t.last_epoch >= e && t.durable == t.last_epoch);
    CHECK(t.transactions == 25);
    CHECK(t.checkpoints == 1);
    CHECK(t.segments >= 1);
    printf("trace: %llu durable epochs, %llu transactions, checkpoint at %llu\n",
           (unsigned long long)t.durable, (unsigned long long)t.transactions,
           (unsigned long long)t.mark);
}

/* ---- damage that costs no more than it must ---- */

/* Commits ids first..last one by one, recording each id's epoch. */
static void commit_each(pwal *log, uint64_t first, uint64_t last, uint64_t *epoch_of) {
    txn_buf *b = malloc(sizeof *b);
    CHECK(b != NULL);
    for (uint64_t id = first; id <= last; id++) {
        make_txn(b, id, id);
        OK(pwal_commit(log, &b->txn, TEST_TIMEOUT_MS, &epoch_of[id]));
    }
    free(b);
}

/* The offset in `path` of id's first page, or -1. The whole page is
 * matched: pages of 4096 bytes or more are unique to their id (the bytes are
 * a function of id, position and position / 256). */
static long find_page(const char *path, uint64_t id) {
    uint32_t len = len_of(id, 0);
    CHECK(len >= 4096);
    unsigned char *want = malloc(len);
    CHECK(want != NULL);
    for (uint32_t i = 0; i < len; i++) want[i] = byte_of(id, 0, i);
    size_t n = 0;
    unsigned char *data = read_file(path, &n);
    long at = -1;
    for (size_t i = 0; i + len <= n && at < 0; i++)
        if (data[i] == want[0] && memcmp(data + i, want, len) == 0) at = (long)i;
    free(data);
    free(want);
    return at;
}

/* The segment holding id's first page, into `seg`; 0 if none does. */
static int segment_holding(uint64_t id, char *seg, size_t seg_size) {
    char dir[4200];
    log_dir_of(dir, sizeof dir);
    seg_list *l = malloc(sizeof *l);
    CHECK(l != NULL);
    list_segments(dir, l);
    int found = 0;
    for (size_t i = 0; i < l->n && !found; i++) {
        if (find_page(l->path[i], id) >= 0) {
            snprintf(seg, seg_size, "%s", l->path[i]);
            found = 1;
        }
    }
    free(l);
    return found;
}

/* Rots a byte of id's first page in whichever segment holds it; returns the
 * segment in `seg`. */
static void rot_page(uint64_t id, char *seg, size_t seg_size) {
    CHECK(segment_holding(id, seg, seg_size));
    flip_byte(seg, find_page(seg, id) + 100);
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    fclose(f);
    return 1;
}

/* Rot in an epoch at or below the durable checkpoint mark, in a segment
 * still on disk, costs nothing: it is reported (where, and that it lies at or
 * below the mark), recovery returns PWAL_OK with every epoch above the
 * mark, repair leaves the log alone, open succeeds, and the segment goes
 * when a checkpoint removes it. */
static void case_damage_below_mark(void) {
    uint64_t epoch_of[100] = {0};
    pwal *log = open_small();
    commit_each(log, 1, 60, epoch_of);
    uint64_t mark = epoch_of[40];
    OK(pwal_checkpoint(log, mark));
    commit_each(log, 61, 80, epoch_of);
    OK(pwal_close(log));
    /* The newest id at or below the mark still on disk, with a long page. */
    uint64_t victim = 0;
    char seg[4200];
    for (uint64_t id = 39; id >= 1 && victim == 0; id--)
        if (len_of(id, 0) >= 4096 && segment_holding(id, seg, sizeof seg)) victim = id;
    CHECK(victim != 0);
    rot_page(victim, seg, sizeof seg);

    for (int pass = 0; pass < 2; pass++) {
        oracle o;
        oracle_init(&o, 100);
        pwal_recovery_report rep = recover_all(&o, PWAL_OK);
        CHECK(rep.has_damage == 1);
        CHECK(strstr(rep.damage, "at or below the checkpoint mark") != NULL);
        CHECK(strcmp(rep.damage_file, seg) == 0);
        CHECK(rep.damage_epoch == epoch_of[victim]);
        CHECK(rep.checkpoint_epoch == mark);
        for (uint64_t id = 1; id <= 40; id++) CHECK(!o.seen[id]);
        for (uint64_t id = 41; id <= 80; id++) CHECK(o.seen[id]);
        free(o.seen);
        /* Repair has nothing to cut: the second pass reads the same log. */
        if (pass == 0) {
            pwal_recovery_report r = new_report();
            OK(pwal_repair(g_db, &r));
        }
    }
    log = open_small();
    commit_each(log, 81, 81, epoch_of);
    OK(pwal_checkpoint(log, epoch_of[81]));
    CHECK(!file_exists(seg));
    OK(pwal_close(log));
    oracle o;
    oracle_init(&o, 100);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    CHECK(rep.has_damage == 0 && rep.transactions == 0);
    free(o.seen);
    printf("damage_below_mark: epoch %llu rotted under mark %llu; 40 epochs above it kept\n",
           (unsigned long long)epoch_of[victim], (unsigned long long)mark);
}

/* A repair keeps the durable checkpoint mark, even when only the frames it
 * cuts carried it: afterwards recovery returns exactly what the durable
 * prefix returned (here nothing), not the checkpointed epochs again. */
static void case_repair_keeps_mark(void) {
    uint64_t epoch_of[100] = {0};
    pwal *log = open_log();
    commit_each(log, 1, 20, epoch_of);
    uint64_t mark = epoch_of[20];
    OK(pwal_checkpoint(log, mark));
    commit_each(log, 21, 30, epoch_of);
    OK(pwal_close(log));
    char seg[4200];
    rot_page(21, seg, sizeof seg);

    oracle prefix;
    oracle_init(&prefix, 100);
    pwal_recovery_report want = new_report();
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX, oracle_cb, &prefix, &want));
    CHECK(want.has_damage && want.checkpoint_epoch == mark && prefix.records == 0);
    CHECK(want.damage_epoch == epoch_of[21]);
    OK(pwal_repair(g_db, NULL));

    oracle o;
    oracle_init(&o, 100);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    CHECK(rep.checkpoint_epoch == mark);
    CHECK(rep.records == 0 && rep.has_damage == 0);
    free(o.seen);
    log = open_log();
    commit_each(log, 31, 31, epoch_of);
    CHECK(epoch_of[31] > epoch_of[21]);
    OK(pwal_close(log));
    oracle_init(&o, 100);
    rep = recover_all(&o, PWAL_OK);
    for (uint64_t id = 1; id <= 30; id++) CHECK(!o.seen[id]);
    CHECK(o.seen[31] && rep.checkpoint_epoch == mark);
    free(o.seen);
    free(prefix.seen);
    printf("repair_keeps_mark: cut at epoch %llu, mark %llu kept\n",
           (unsigned long long)epoch_of[21], (unsigned long long)mark);
}

/* After a checkpoint that removed segments, a repair leaves a log that
 * recovery, open and a second repair accept. */
static void case_repair_after_removal(void) {
    uint64_t epoch_of[100] = {0};
    pwal *log = open_small();
    commit_each(log, 1, 60, epoch_of);
    uint64_t mark = epoch_of[45];
    OK(pwal_checkpoint(log, mark));
    pwal_stats st = stats_of(log);
    CHECK(st.segments_deleted + st.segments_recycled > 0);
    commit_each(log, 61, 80, epoch_of);
    OK(pwal_close(log));
    /* Rot the first epoch above the mark that lies in the segment holding
     * the mark's epoch: that segment was activated before the checkpoint,
     * so its header names an older log start than the segments after it. */
    CHECK(len_of(45, 0) >= 4096);
    char at_mark[4200];
    CHECK(segment_holding(45, at_mark, sizeof at_mark));
    uint64_t victim = 0;
    for (uint64_t id = 46; id <= 60 && victim == 0; id++)
        if (len_of(id, 0) >= 4096 && find_page(at_mark, id) >= 0) victim = id;
    CHECK(victim != 0);
    char seg[4200];
    rot_page(victim, seg, sizeof seg);

    oracle prefix;
    oracle_init(&prefix, 100);
    pwal_recovery_report want = new_report();
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX, oracle_cb, &prefix, &want));
    finish_txn(&prefix);
    CHECK(want.has_damage && want.damage_epoch == epoch_of[victim]);
    OK(pwal_repair(g_db, NULL));
    oracle o;
    oracle_init(&o, 100);
    pwal_recovery_report rep = recover_all(&o, PWAL_OK);
    CHECK(memcmp(o.seen, prefix.seen, 101) == 0);
    CHECK(rep.checkpoint_epoch == mark);
    free(o.seen);
    log = open_small();
    commit_each(log, 81, 81, epoch_of);
    OK(pwal_close(log));
    OK(pwal_repair(g_db, NULL));
    oracle_init(&o, 100);
    rep = recover_all(&o, PWAL_OK);
    CHECK(o.seen[81] && rep.has_damage == 0);
    o.seen[81] = 0;
    CHECK(memcmp(o.seen, prefix.seen, 101) == 0);
    free(o.seen);
    free(prefix.seen);
    printf("repair_after_removal: cut at epoch %llu above mark %llu; reopened\n",
           (unsigned long long)epoch_of[victim], (unsigned long long)mark);
}

/* After pwal_close nothing was torn: rot in the last committed epoch is
 * corruption, and the durable prefix keeps the epochs before it. */
static void case_closed_last_epoch_rot(void) {
    uint64_t epoch_of[100] = {0};
    pwal *log = open_log();
    commit_each(log, 1, 10, epoch_of);
    OK(pwal_close(log));
    char seg[4200];
    rot_page(10, seg, sizeof seg);
    oracle o;
    oracle_init(&o, 100);
    pwal_recovery_report rep = new_report();
    EXPECT_STATUS(pwal_recover(g_db, 0, oracle_cb, &o, &rep), PWAL_ERR_CORRUPT, seg);
    CHECK(rep.damage_epoch == epoch_of[10]);
    free(o.seen);
    oracle_init(&o, 100);
    rep = new_report();
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX, oracle_cb, &o, &rep));
    finish_txn(&o);
    for (uint64_t id = 1; id <= 9; id++) CHECK(o.seen[id]);
    CHECK(!o.seen[10] && rep.has_damage == 1 && rep.torn_tail_bytes == 0);
    free(o.seen);
    printf("closed_last_epoch_rot: epoch %llu is corruption after a close\n",
           (unsigned long long)epoch_of[10]);
}

/* PWAL_RECOVER_VALIDATE_FIRST: on damage the callback is never called; with
 * the durable-prefix flag the validated prefix is delivered. */
static void case_validate_first(void) {
    char seg[4200];
    damaged_log(40, seg, sizeof seg);
    oracle o;
    oracle_init(&o, 50);
    pwal_recovery_report rep = new_report();
    EXPECT_STATUS(pwal_recover(g_db, PWAL_RECOVER_VALIDATE_FIRST, oracle_cb, &o, &rep),
                  PWAL_ERR_CORRUPT, "offset 4096");
    CHECK(o.records == 0 && rep.records == 0 && rep.transactions == 0);
    CHECK(strcmp(rep.damage_file, seg) == 0 && rep.damage_offset == 4096);
    free(o.seen);

    oracle plain, first;
    oracle_init(&plain, 50);
    oracle_init(&first, 50);
    pwal_recovery_report a = new_report(), b = new_report();
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX, oracle_cb, &plain, &a));
    OK(pwal_recover(g_db, PWAL_RECOVER_DURABLE_PREFIX | PWAL_RECOVER_VALIDATE_FIRST, oracle_cb,
                    &first, &b));
    finish_txn(&plain);
    finish_txn(&first);
    CHECK(plain.records > 0 && plain.records == first.records);
    CHECK(memcmp(plain.seen, first.seen, 51) == 0);
    CHECK(a.last_epoch == b.last_epoch && a.damage_offset == b.damage_offset);
    free(plain.seen);
    free(first.seen);

    pwal_options opts = test_options();
    opts.segment_bytes = SMALL_SEGMENT_BYTES;
    pwal *log = NULL;
    oracle_init(&o, 50);
    EXPECT_STATUS(pwal_recover_and_open(g_db, &opts, PWAL_RECOVER_VALIDATE_FIRST, oracle_cb, &o,
                                        NULL, &log),
                  PWAL_ERR_CORRUPT, seg);
    CHECK(log == NULL && o.records == 0);
    free(o.seen);
    OK(pwal_repair(g_db, NULL));
    oracle_init(&o, 50);
    OK(pwal_recover_and_open(g_db, &opts, PWAL_RECOVER_VALIDATE_FIRST, oracle_cb, &o, NULL, &log));
    finish_txn(&o);
    CHECK(log != NULL && o.records == plain.records);
    OK(pwal_close(log));
    free(o.seen);
    printf("validate_first: the damaged log gave the callback nothing\n");
}

/* The archive's C API: archive-durable commits to a file:// store, the
 * status, pwal_wait_archived, misuse, and pwal_restore of what was
 * acknowledged into another path, recovered byte for byte. */
static void case_archive(void) {
    char url[4200], restored[4200];
    snprintf(url, sizeof url, "file://%s/../store", g_db);
    pwal_options o = test_options();
    o.archive_url = url;
    o.archive_durable = 1;
    pwal *log = NULL;
    OK(pwal_open(g_db, &o, &log));
    uint64_t max = 0;
    commit_range(log, 1, 30, &max);
    /* archive_durable: every commit returned once archived. */
    pwal_archive_status st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    OK(pwal_get_archive_status(log, &st));
    CHECK(st.struct_size == sizeof st);
    CHECK(st.enabled == 1 && st.archive_durable == 1);
    CHECK(st.archived_epoch >= max);
    CHECK(st.consecutive_failures == 0 && st.last_error[0] == 0);
    CHECK(st.objects_archived >= 1);
    OK(pwal_wait_archived(log, max, 0));
    EXPECT_STATUS(pwal_wait_archived(log, max + 1000, 0), PWAL_ERR_INVALID, "never");
    EXPECT_STATUS(pwal_get_archive_status(log, NULL), PWAL_ERR_INVALID, "out");
    st.struct_size = 8;
    EXPECT_STATUS(pwal_get_archive_status(log, &st), PWAL_ERR_INVALID, "struct_size");
    OK(pwal_close(log));

    /* No archive: enabled = 0, and waiting for the archive is refused. */
    snprintf(restored, sizeof restored, "%s.plain", g_db);
    pwal_options p = test_options();
    OK(pwal_open(restored, &p, &log));
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    OK(pwal_get_archive_status(log, &st));
    CHECK(st.enabled == 0);
    EXPECT_STATUS(pwal_wait_archived(log, 0, 0), PWAL_ERR_INVALID, "archive_url");
    OK(pwal_close(log));

    /* Bad options are refused, naming what is wrong. */
    pwal_options bad = test_options();
    bad.archive_url = "ftp://x";
    EXPECT_STATUS(pwal_open(restored, &bad, &log), PWAL_ERR_INVALID, "archive URL");
    bad = test_options();
    bad.archive_durable = 1;
    EXPECT_STATUS(pwal_open(restored, &bad, &log), PWAL_ERR_INVALID, "archive_url");
    bad.archive_durable = 2;
    EXPECT_STATUS(pwal_open(restored, &bad, &log), PWAL_ERR_INVALID, "archive_durable");
    CHECK(strcmp(pwal_status_name(PWAL_ERR_ARCHIVE_BEHIND), "PWAL_ERR_ARCHIVE_BEHIND") == 0);

    /* Restore into a new path; the existing one is refused without force. */
    snprintf(restored, sizeof restored, "%s.restored", g_db);
    OK(pwal_restore(url, restored, 0, 0, 0));
    EXPECT_STATUS(pwal_restore(url, restored, 0, 0, 0), PWAL_ERR_INVALID, "force");
    OK(pwal_restore(url, restored, 0, 0, PWAL_RESTORE_FORCE));
    EXPECT_STATUS(pwal_restore(url, restored, 1, 1, 0), PWAL_ERR_INVALID, "not both");
    EXPECT_STATUS(pwal_restore(NULL, restored, 0, 0, 0), PWAL_ERR_INVALID, "url");
    CHECK(strlen(restored) < sizeof g_db);
    memcpy(g_db, restored, strlen(restored) + 1);
    oracle orc;
    oracle_init(&orc, 30);
    pwal_recovery_report rep = recover_all(&orc, PWAL_OK);
    for (uint64_t id = 1; id <= 30; id++) CHECK(orc.seen[id]);
    CHECK(rep.transactions == 30);
    free(orc.seen);
    printf("archive: 30 archive-durable commits through epoch %llu restored byte for byte\n",
           (unsigned long long)max);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CASE DIR [ARG...]\n", argv[0]);
        return 2;
    }
    g_argc = argc;
    g_argv = argv;
    g_self = argv[0];
    g_case = argv[1];
    if (strcmp(g_case, "child_open_expect_locked") == 0) {
        snprintf(g_db, sizeof g_db, "%s", argv[2]);
        child_open_expect_locked();
    }
    snprintf(g_db, sizeof g_db, "%s/test.db", argv[2]);

    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
        {"round_trip", case_round_trip}, {"misuse", case_misuse},
        {"abort", case_abort},           {"reopen", case_reopen},
        {"two_opens", case_two_opens},   {"locked", case_locked},
        {"version", case_version},       {"empty", case_empty},
        {"fail_stop", case_fail_stop},   {"forked_handle", case_forked_handle},
        {"second_open_options", case_second_open_options},
        {"min_sizes", case_min_sizes},
        {"flush", case_flush},
        {"checkpoint_mark", case_checkpoint_mark},
        {"corrupt_report", case_corrupt_report},
        {"seq_inversions", case_seq_inversions},
        {"recover_and_open", case_recover_and_open},
        {"recover_and_open_damaged", case_recover_and_open_damaged},
        {"repair", case_repair},
        {"large_txn", case_large_txn},
        {"env_rule", case_env_rule},
        {"file_ids", case_file_ids},
        {"trace", case_trace},
        {"write_log", case_write_log},
        {"damage_below_mark", case_damage_below_mark},
        {"repair_keeps_mark", case_repair_keeps_mark},
        {"repair_after_removal", case_repair_after_removal},
        {"closed_last_epoch_rot", case_closed_last_epoch_rot},
        {"validate_first", case_validate_first},
        {"archive", case_archive},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(g_case, cases[i].name) == 0) {
            cases[i].run();
            return 0;
        }
    }
    fprintf(stderr, "unknown case %s\n", g_case);
    return 2;
}
