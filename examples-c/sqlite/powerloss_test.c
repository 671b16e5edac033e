/*
 * powerloss_test.c: the writer and the checker of the power-loss test
 * (tests/sqlite_vfs.rs, power_loss), run under libpowercut.so (powercut.c).
 *
 *     powerloss_test write DIR TXNS     commit, print each acknowledged one
 *     powerloss_test check DIR ACKS     what a power cut must leave
 *
 * The writer opens a.db and b.db in DIR through the pwal VFS
 * (synchronous=FULL, a page cache of 40 pages; b.db with auto_vacuum=FULL)
 * and runs one thread per database, each committing TXNS transactions of
 * its own: mostly 1 to 3 rows, every 20th 60 rows of 3000 bytes (larger
 * than the page cache: it spills to SQLite's rollback journal and writes
 * the database directly), and on b.db now and then an update that shrinks
 * the rows of its last large transaction (auto_vacuum then truncates the
 * file). Rows are (id, txn, n, payload): ids count from 1 in each database,
 * txn is the transaction's first id, n its number of rows. After COMMIT
 * returns, one write(2) to stdout says so:
 *
 *     R                       both schemas committed
 *     I <db> <txn> <n>        rows txn..txn+n-1 committed
 *     U <db> <txn>            the rows of txn shrunk to 10 bytes
 *
 * Then it closes both databases and exits 0, unless the power went first.
 *
 * The checker reads ACKS (the writer's stdout; a torn last line is not an
 * acknowledgement), opens both databases through pwal (which replays the
 * log), and requires: PRAGMA integrity_check ok; the tables there if R was
 * acknowledged; every acknowledged transaction there whole and every
 * acknowledged update applied; no torn transaction (each txn has all its n
 * rows, a large one's rows all of one size); no hole (the ids of a
 * database are 1..count, since each transaction began after the one before
 * it returned). Then it commits once more in each. It prints "acked txns
 * N, rows N, large N, updates N, present txns N".
 */
#include "testutil.h"

#include <pthread.h>

static char g_dir[PATH_MAX];
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static void ack(const char *fmt, ...) {
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_out);
    if (n <= 0 || (size_t)n >= sizeof line || write(1, line, (size_t)n) != n)
        die("writing an acknowledgement: %s", strerror(errno));
    pthread_mutex_unlock(&g_out);
}

static sqlite3 *open_named(const char *name) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    sqlite3 *db = open_db(path, "pwal");
    exec(db, "PRAGMA synchronous=FULL");
    exec(db, "PRAGMA cache_size=40");
    return db;
}

typedef struct {
    const char *db;
    int txns;
} wargs;

static void *writer(void *p) {
    wargs *a = p;
    sqlite3 *db = open_named(a->db);
    long long next = 1, big = -1;
    int shrink = strcmp(a->db, "b.db") == 0;
    for (int k = 0; k < a->txns; k++) {
        long long first = next;
        if (shrink && big > 0 && k % 20 == 10) {
            execf(db, "UPDATE t SET payload=zeroblob(10) WHERE txn=%lld", big);
            ack("U %s %lld\n", a->db, big);
            big = -1;
            continue;
        }
        int n = k % 20 == 5 ? 60 : 1 + k % 3;
        exec(db, "BEGIN IMMEDIATE");
        for (int i = 0; i < n; i++)
            execf(db, "INSERT INTO t VALUES(%lld, %lld, %d, randomblob(%d))", next++, first, n,
                  n == 60 ? 3000 : 50 + (k * 37) % 250);
        exec(db, "COMMIT");
        ack("I %s %lld %d\n", a->db, first, n);
        if (n == 60) big = first;
    }
    sqlite3_close(db);
    return NULL;
}

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, txn INT, n INT, payload BLOB)";

static void run_writer(int txns) {
    sqlite3 *a = open_named("a.db"), *b = open_named("b.db");
    if (query_int(b, "SELECT count(*) FROM sqlite_schema") == 0) exec(b, "PRAGMA auto_vacuum=FULL");
    exec(a, SCHEMA);
    exec(b, SCHEMA);
    ack("R\n");
    pthread_t t[2];
    wargs w[2] = {{"a.db", txns}, {"b.db", txns}};
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, writer, &w[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    sqlite3_close(a);
    sqlite3_close(b);
}

typedef struct {
    char kind;
    char db[8];
    long long txn;
    int n;
} entry;

static void run_checker(const char *acks) {
    FILE *f = fopen(acks, "r");
    if (!f) die("%s: %s", acks, strerror(errno));
    size_t n = 0, cap = 256;
    entry *e = malloc(cap * sizeof *e);
    int ready = 0;
    char line[256];
    while (e && fgets(line, sizeof line, f)) {
        if (!strchr(line, '\n')) break; /* a torn last line: not acknowledged */
        if (line[0] == 'R') {
            ready = 1;
            continue;
        }
        if (n == cap) e = realloc(e, (cap *= 2) * sizeof *e);
        if (!e) break;
        e[n].n = 0;
        int got = sscanf(line, "%c %7s %lld %d", &e[n].kind, e[n].db, &e[n].txn, &e[n].n);
        if (got < 3 || (e[n].kind == 'I' && got != 4) || (e[n].kind != 'I' && e[n].kind != 'U'))
            die("bad acknowledgement: %s", line);
        n++;
    }
    if (!e) die("out of memory");
    fclose(f);
    if (n && !ready) die("acknowledged transactions before the schema");

    const char *names[2] = {"a.db", "b.db"};
    sqlite3 *db[2];
    long long present = 0;
    for (int i = 0; i < 2; i++) {
        db[i] = open_named(names[i]);
        check_integrity(db[i], names[i]);
        int has = query_int(db[i], "SELECT count(*) FROM sqlite_schema WHERE name='t'") == 1;
        if (ready && !has) die("%s: the acknowledged schema is gone", names[i]);
        if (!has) continue;
        long long rows = query_int(db[i], "SELECT count(*) FROM t");
        long long top = query_int(db[i], "SELECT coalesce(max(id), 0) FROM t");
        if (rows != top) die("%s: a hole: %lld rows, the highest id %lld", names[i], rows, top);
        char *torn = query(db[i], "SELECT txn FROM t GROUP BY txn HAVING count(*) != max(n) OR "
                                  "min(n) != max(n) OR min(id) != txn LIMIT 1");
        if (*torn) die("%s: transaction %s is torn", names[i], torn);
        free(torn);
        torn = query(db[i], "SELECT txn FROM t GROUP BY txn HAVING count(DISTINCT length(payload)) > 1 "
                            "AND max(n) = 60 LIMIT 1");
        if (*torn) die("%s: the update of transaction %s is torn", names[i], torn);
        free(torn);
        present += query_int(db[i], "SELECT count(DISTINCT txn) FROM t");
    }
    long long txns = 0, rows = 0, large = 0, updates = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3 *d = strcmp(e[i].db, "a.db") == 0 ? db[0] : db[1];
        char sql[200];
        if (e[i].kind == 'I') {
            snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE id BETWEEN %lld AND %lld AND txn = %lld",
                     e[i].txn, e[i].txn + e[i].n - 1, e[i].txn);
            long long have = query_int(d, sql);
            if (have != e[i].n)
                die("%s: acknowledged transaction %lld: %lld of its %d rows there", e[i].db, e[i].txn,
                    have, e[i].n);
            txns++;
            rows += e[i].n;
            large += e[i].n == 60;
        } else {
            snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE txn = %lld AND length(payload) != 10",
                     e[i].txn);
            long long have = query_int(d, sql);
            if (have != 0)
                die("%s: acknowledged update of transaction %lld: %lld rows not shrunk", e[i].db,
                    e[i].txn, have);
            updates++;
        }
    }
    /* The recovered databases take commits. */
    for (int i = 0; i < 2; i++) {
        exec(db[i], "CREATE TABLE IF NOT EXISTS after_cut(x)");
        exec(db[i], "INSERT INTO after_cut VALUES(1)");
        check_integrity(db[i], names[i]);
        sqlite3_close(db[i]);
    }
    free(e);
    printf("acked txns %lld, rows %lld, large %lld, updates %lld, present txns %lld\n", txns, rows,
           large, updates, present);
}

int main(int argc, char **argv) {
    g_prog = "powerloss_test";
    if (argc != 4) die("usage: powerloss_test write DIR TXNS | check DIR ACKS");
    if (!realpath(argv[2], g_dir)) die("%s: %s", argv[2], strerror(errno));
    load_pwal_vfs();
    if (strcmp(argv[1], "write") == 0) {
        int txns = atoi(argv[3]);
        if (txns <= 0) die("TXNS must be positive: %s", argv[3]);
        run_writer(txns);
    } else if (strcmp(argv[1], "check") == 0) {
        run_checker(argv[3]);
    } else {
        die("unknown mode %s", argv[1]);
    }
    return 0;
}
