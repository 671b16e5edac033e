/*
 * bench.c: one-row autocommit inserts, one writer thread per database,
 * synchronous=FULL, through the pwal VFS or SQLite's own WAL.
 *
 *     bench pwal|wal DATABASES SECONDS WARMUP_SECONDS DIR
 *
 * Creates DATABASES fresh databases in DIR (which it empties of them first),
 * runs WARMUP_SECONDS unmeasured, then SECONDS measured, and prints one line:
 *
 *     mode=pwal dbs=16 commits=N seconds=S commits_per_sec=R
 *
 * "pwal": the VFS "pwal" in its rollback mode (batch atomic commits into
 * one shared log). "wal": the default VFS, journal_mode=WAL (its automatic
 * checkpoints included), the same SQLite build. benches/sqlite_vfs.rs runs
 * both in alternation and prints the ratios.
 */
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>

enum { MAX_DBS = 256 };

static int g_wal;
static volatile int g_phase; /* 0 warm-up, 1 measuring, 2 stop */
static pthread_barrier_t g_ready;

typedef struct {
    sqlite3 *db;
    uint64_t measured;
} worker;

static void *run(void *p) {
    worker *w = p;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(w->db, "INSERT INTO t(v) VALUES(?1)", -1, &st, NULL) != SQLITE_OK)
        die("prepare: %s", sqlite3_errmsg(w->db));
    pthread_barrier_wait(&g_ready);
    uint64_t i = 0;
    for (;;) {
        int phase = __atomic_load_n(&g_phase, __ATOMIC_RELAXED);
        if (phase == 2) break;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)i++);
        if (sqlite3_step(st) != SQLITE_DONE) die("insert: %s", sqlite3_errmsg(w->db));
        sqlite3_reset(st);
        if (phase == 1) w->measured++;
    }
    sqlite3_finalize(st);
    return NULL;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* pwal zero-fills its next segment in the background after the log opens,
 * and under load it doubles its segments (from a few MiB up to its segment
 * size), zero-filling each new one: one-off costs of a new log. Before it
 * measures, bench waits for those, as in a log that has run for a while:
 * with no writers, until the spares stop growing (wait_for_spare); then
 * with the writers running, until no new segment is created
 * (warm_until_steady). */
static long long spare_bytes(const char *logdir) {
    DIR *d = opendir(logdir);
    long long total = 0;
    struct dirent *ent;
    while (d && (ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, "spare-", 6) != 0) continue;
        char p[PATH_MAX + 320];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", logdir, ent->d_name);
        if (stat(p, &sb) == 0) total += (long long)sb.st_size;
    }
    if (d) closedir(d);
    return total;
}

static void wait_for_spare(const char *dir) {
    char logdir[PATH_MAX + 32];
    snprintf(logdir, sizeof logdir, "%s/.pwal-shared-pwal", dir);
    long long last = -1;
    int steady = 0;
    for (int tries = 0; tries < 600 && steady < 6; tries++) {
        long long now = spare_bytes(logdir);
        steady = now == last ? steady + 1 : 0;
        last = now;
        sleep_s(0.05);
    }
}

/* With the writers running: until the log has created no segment for 3 s
 * (its segments have reached their full size and are recycled), at most
 * 30 s; `stats` is a connection of the log, kept for this. Returns the
 * seconds it waited. */
static double warm_until_steady(sqlite3 *stats) {
    long long last = -1;
    int steady = 0, tries = 0;
    for (; tries < 300 && steady < 30; tries++) {
        long long now = stat_of(stats, "log_segments_created");
        steady = now == last ? steady + 1 : 0;
        last = now;
        sleep_s(0.1);
    }
    return tries * 0.1;
}

int main(int argc, char **argv) {
    g_prog = "bench";
    if (argc != 6) die("usage: bench pwal|wal DATABASES SECONDS WARMUP_SECONDS DIR");
    g_wal = strcmp(argv[1], "wal") == 0;
    if (!g_wal && strcmp(argv[1], "pwal") != 0) die("mode is pwal or wal, not %s", argv[1]);
    int n = atoi(argv[2]);
    double secs = atof(argv[3]), warm = atof(argv[4]);
    if (n < 1 || n > MAX_DBS || secs <= 0 || warm < 0) die("bad arguments");
    const char *dir = argv[5];
    if (!g_wal) load_pwal_vfs();
    static worker w[MAX_DBS];
    pthread_t t[MAX_DBS];
    pthread_barrier_init(&g_ready, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/bench%d.db", dir, i);
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        for (int s = 0; s < 4; s++) {
            char p[PATH_MAX + 48];
            snprintf(p, sizeof p, "%s%s", path, suffix[s]);
            unlink(p);
        }
        w[i].db = open_db(path, g_wal ? NULL : "pwal");
        exec(w[i].db, "PRAGMA synchronous=FULL");
        if (g_wal) {
            char *mode = query(w[i].db, "PRAGMA journal_mode=WAL");
            if (strcmp(mode, "wal") != 0) die("journal_mode=WAL gave %s", mode);
            free(mode);
        }
        exec(w[i].db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)");
    }
    if (!g_wal) wait_for_spare(dir);
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, run, &w[i]);
    pthread_barrier_wait(&g_ready);
    sleep_s(warm);
    double grown = 0;
    if (!g_wal) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/bench0.db", dir);
        sqlite3 *stats = open_db(path, "pwal");
        grown = warm_until_steady(stats);
        if (getenv("PWALVFS_BENCH_STATS")) {
            char *st = query(stats, "PRAGMA pwal_stats");
            fprintf(stderr, "before measuring: %s\n", st);
            free(st);
        }
        sqlite3_close(stats);
    }
    uint64_t t0 = now_ns();
    __atomic_store_n(&g_phase, 1, __ATOMIC_RELAXED);
    sleep_s(secs);
    __atomic_store_n(&g_phase, 2, __ATOMIC_RELAXED);
    uint64_t t1 = now_ns();
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        total += w[i].measured;
    }
    if (!g_wal && getenv("PWALVFS_BENCH_STATS")) {
        char *st = query(w[0].db, "PRAGMA pwal_stats");
        fprintf(stderr, "%s\n", st);
        free(st);
    }
    for (int i = 0; i < n; i++) sqlite3_close(w[i].db);
    double s = (double)(t1 - t0) / 1e9;
    printf("mode=%s dbs=%d commits=%llu seconds=%.3f commits_per_sec=%.1f log_warmup_seconds=%.1f\n",
           argv[1], n, (unsigned long long)total, s, (double)total / s, grown);
    return 0;
}
