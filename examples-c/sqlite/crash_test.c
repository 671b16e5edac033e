/*
 * crash_test.c: the writer and the checker of the SIGKILL loop
 * (tests/sqlite_vfs.rs).
 *
 *     crash_test write DIR ACKS RUN     commit until killed
 *     crash_test check DIR ACKS         what every kill must leave
 *
 * The writer opens a.db and b.db in DIR through the pwal VFS, with a page
 * cache of 40 pages, and runs three threads: two on a.db (two connections
 * to one database), one on b.db (auto_vacuum=FULL, so deletes truncate the
 * file). Each thread commits small transactions (1 to 3 rows), now and then
 * one larger than the page cache (100 rows of 3000 bytes, which spills to
 * SQLite's rollback journal), and now and then deletes the rows of its
 * previous large transaction. After COMMIT returns it appends what it did
 * to ACKS (O_APPEND, one write per line):
 *
 *     I <db> <first id> <count>   rows first..first+count-1 committed
 *     d <db> <first id> <count>   about to delete them (before BEGIN)
 *     D <db> <first id> <count>   their delete committed
 *
 * Row ids are RUN << 40 | thread << 32 | n, unique across runs.
 * The checker opens both databases through pwal (which replays the log),
 * requires PRAGMA integrity_check to say ok, every acknowledged row to be
 * there unless a delete of it was begun, and every acknowledged delete to
 * have removed its rows. It prints "acked rows N, large N, deletes N".
 */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>

static char g_dir[PATH_MAX];
static int g_acks = -1;
static long long g_run;

static void ack(const char *fmt, ...) {
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof line || write(g_acks, line, (size_t)n) != n)
        die("writing the ack file: %s", strerror(errno));
}

static sqlite3 *open_named(const char *name) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    sqlite3 *db = open_db(path, "pwal");
    exec(db, "PRAGMA synchronous=FULL");
    exec(db, "PRAGMA cache_size=40");
    return db;
}

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct {
    int thread;
    const char *db;
} wargs;

static void *writer(void *p) {
    wargs *a = p;
    sqlite3 *db = open_named(a->db);
    long long base = (g_run << 40) | ((long long)a->thread << 32);
    long long next = 0, big_first = -1;
    int big_count = 0;
    for (uint64_t k = 0;; k++) {
        uint64_t r = mix(base + (long long)k);
        if (r % 25 == 0) { /* larger than the page cache: spills */
            long long first = base + next;
            exec(db, "BEGIN IMMEDIATE");
            for (int i = 0; i < 100; i++)
                execf(db, "INSERT INTO t VALUES(%lld, %d, randomblob(3000))", base + next++, a->thread);
            exec(db, "COMMIT");
            ack("I %s %lld %d\n", a->db, first, 100);
            big_first = first;
            big_count = 100;
        } else if (r % 25 == 1 && big_first >= 0) {
            ack("d %s %lld %d\n", a->db, big_first, big_count);
            exec(db, "BEGIN IMMEDIATE");
            execf(db, "DELETE FROM t WHERE id BETWEEN %lld AND %lld", big_first,
                  big_first + big_count - 1);
            exec(db, "COMMIT");
            ack("D %s %lld %d\n", a->db, big_first, big_count);
            big_first = -1;
        } else {
            int n = 1 + (int)((r >> 8) % 3);
            long long first = base + next;
            exec(db, "BEGIN IMMEDIATE");
            for (int i = 0; i < n; i++)
                execf(db, "INSERT INTO t VALUES(%lld, %d, randomblob(%d))", base + next++, a->thread,
                      50 + (int)((r >> 16) % 250));
            exec(db, "COMMIT");
            ack("I %s %lld %d\n", a->db, first, n);
        }
    }
    return NULL;
}

static void run_writer(void) {
    /* The schema, from one connection that stays open (the log with it). */
    sqlite3 *a = open_named("a.db"), *b = open_named("b.db");
    if (query_int(b, "SELECT count(*) FROM sqlite_schema") == 0) exec(b, "PRAGMA auto_vacuum=FULL");
    exec(a, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, th INT, payload BLOB)");
    exec(b, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, th INT, payload BLOB)");
    ack("R\n");
    pthread_t t[3];
    wargs w[3] = {{0, "a.db"}, {1, "a.db"}, {2, "b.db"}};
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, writer, &w[i]);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
}

typedef struct {
    char kind;
    char db[8];
    long long first;
    int count;
} entry;

static int covered(const entry *e, size_t n, char kind, const entry *row) {
    for (size_t i = 0; i < n; i++)
        if (e[i].kind == kind && strcmp(e[i].db, row->db) == 0 && e[i].first <= row->first &&
            row->first + row->count <= e[i].first + e[i].count)
            return 1;
    return 0;
}

static void run_checker(const char *acks) {
    FILE *f = fopen(acks, "r");
    if (!f) die("%s: %s", acks, strerror(errno));
    size_t n = 0, cap = 1024;
    entry *e = malloc(cap * sizeof *e);
    char line[256];
    while (e && fgets(line, sizeof line, f)) {
        if (line[0] == 'R') continue;
        if (!strchr(line, '\n')) break; /* a torn last line: not acknowledged */
        if (n == cap) e = realloc(e, (cap *= 2) * sizeof *e);
        if (!e) break;
        if (sscanf(line, "%c %7s %lld %d", &e[n].kind, e[n].db, &e[n].first, &e[n].count) != 4)
            die("bad ack line: %s", line);
        n++;
    }
    if (!e) die("out of memory");
    fclose(f);
    const char *names[2] = {"a.db", "b.db"};
    sqlite3 *db[2];
    for (int i = 0; i < 2; i++) {
        db[i] = open_named(names[i]);
        check_integrity(db[i], names[i]);
    }
    long long rows = 0, large = 0, deletes = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3 *d = strcmp(e[i].db, "a.db") == 0 ? db[0] : db[1];
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE id BETWEEN %lld AND %lld", e[i].first,
                 e[i].first + e[i].count - 1);
        long long have = query_int(d, sql);
        if (e[i].kind == 'I') {
            rows += e[i].count;
            large += e[i].count >= 100;
            if (have != e[i].count && !covered(e, n, 'd', &e[i]))
                die("%s: acknowledged rows %lld..%lld: %lld of %d there", e[i].db, e[i].first,
                    e[i].first + e[i].count - 1, have, e[i].count);
        } else if (e[i].kind == 'D') {
            deletes++;
            if (have != 0)
                die("%s: acknowledged delete of %lld..%lld: %lld rows still there", e[i].db,
                    e[i].first, e[i].first + e[i].count - 1, have);
        }
    }
    for (int i = 0; i < 2; i++) sqlite3_close(db[i]);
    free(e);
    printf("acked rows %lld, large %lld, deletes %lld\n", rows, large, deletes);
}

int main(int argc, char **argv) {
    g_prog = "crash_test";
    if (argc < 4) die("usage: crash_test write DIR ACKS RUN | check DIR ACKS");
    if (!realpath(argv[2], g_dir)) die("%s: %s", argv[2], strerror(errno));
    load_pwal_vfs();
    if (strcmp(argv[1], "write") == 0 && argc == 5) {
        g_run = atoll(argv[4]);
        g_acks = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (g_acks < 0) die("%s: %s", argv[3], strerror(errno));
        run_writer();
    } else if (strcmp(argv[1], "check") == 0) {
        run_checker(argv[3]);
    } else {
        die("unknown mode %s", argv[1]);
    }
    return 0;
}
