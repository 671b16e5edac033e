/*
 * vfs_test.c: what SQLite does through the pwal VFS, one case per run.
 *
 *     vfs_test CASE DIR        (DIR: an empty scratch directory)
 *
 * Each case drives unmodified SQLite through a path where the VFS answers a
 * file control or a call its own way, and checks both SQLite's behaviour
 * (results, PRAGMA integrity_check) and the VFS's counters (PRAGMA
 * pwal_stats). Exits 0 and prints "ok CASE" on success, 1 with a message
 * otherwise. tests/sqlite_vfs.rs runs every case.
 */
#include "testutil.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_dir[PATH_MAX];

static char *path_of(const char *name) {
    static char buf[4][PATH_MAX + 64];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, PATH_MAX + 64, "%s/%s", g_dir, name);
    return p;
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static long long file_size(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) die("stat %s: %s", path, strerror(errno));
    return (long long)sb.st_size;
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) die("copy %s to %s: %s", from, to, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) die("write %s: %s", to, strerror(errno));
    fclose(in);
    if (fclose(out) != 0) die("close %s: %s", to, strerror(errno));
}

/* Keeps a copy of database `name` as the disk would hold it if the writes
 * home after this point were lost (they were never synced), ... */
static void save(const char *name) {
    char saved[PATH_MAX + 64];
    snprintf(saved, sizeof saved, "%s.saved", path_of(name));
    copy_file(path_of(name), saved);
}

/* ... and puts it back: only the log's replay can bring those commits back. */
static void lose_unsynced_writes(const char *name) {
    char saved[PATH_MAX + 64];
    snprintf(saved, sizeof saved, "%s.saved", path_of(name));
    copy_file(saved, path_of(name));
}

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) die(__VA_ARGS__);                                                             \
    } while (0)

/* Dies unless the integer `sql` gives is `want`, saying what it gave. */
static void expect_int(sqlite3 *db, const char *sql, long long want, const char *what) {
    long long got = query_int(db, sql);
    EXPECT(got == want, "%s: %s gave %lld, not %lld", what, sql, got, want);
}

static sqlite3 *open_pwal(const char *name) {
    sqlite3 *db = open_db(path_of(name), "pwal");
    exec(db, "PRAGMA synchronous=FULL");
    return db;
}

static void create_table(sqlite3 *db) {
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
}

/* A committed small transaction on a non-empty database goes through the
 * batch: BEGIN/COMMIT_ATOMIC_WRITE, one pwal commit, no journal file, no
 * real sync of the database; the first transaction of an empty database
 * has no page to protect, so SQLite journals it and writes directly. */
static void case_batch(void) {
    sqlite3 *db = open_pwal("a.db");
    create_table(db); /* empty database: rollback journal, direct writes */
    EXPECT(stat_of(db, "commits") == 0, "the first transaction of an empty database was a batch");
    EXPECT(stat_of(db, "direct_writes") > 0, "the first transaction wrote no page directly");
    long long direct = stat_of(db, "direct_writes"), skipped = stat_of(db, "syncs_skipped");
    for (int i = 0; i < 10; i++) execf(db, "INSERT INTO t(v) VALUES('row %d')", i);
    EXPECT(stat_of(db, "commits") == 10, "10 inserts made %lld pwal commits", stat_of(db, "commits"));
    /* Each changed one leaf page, and page 1 only in its change counter,
     * which is not logged: one frame per commit (page 1 is compared with
     * the committed one waiting in memory from the second commit on). */
    EXPECT(stat_of(db, "frames") == 10, "10 one-row inserts logged %lld frames, not 10",
           stat_of(db, "frames"));
    EXPECT(stat_of(db, "direct_writes") == direct, "a batch commit wrote a page directly");
    EXPECT(stat_of(db, "syncs_skipped") >= skipped + 10, "SQLite's xSync after a batch was not skipped");
    EXPECT(stat_of(db, "file_id") == 1, "the first database is not file id 1");
    EXPECT(!exists(path_of("a.db-journal")), "a journal file was left behind");
    expect_int(db, "SELECT count(*) FROM t", 10, "rows missing");
    /* A rollback never reaches the VFS's batch. */
    exec(db, "BEGIN; INSERT INTO t(v) VALUES('gone'); ROLLBACK");
    expect_int(db, "SELECT count(*) FROM t", 10, "a rolled-back row is there");
    EXPECT(stat_of(db, "commits") == 10, "a rollback made a pwal commit");
    check_integrity(db, "batch");
    sqlite3_close(db);
    /* The manifest names the database; the log directory exists. */
    FILE *f = fopen(path_of(".pwal-shared-files"), "r");
    EXPECT(f, "no manifest %s", path_of(".pwal-shared-files"));
    char line[256] = "";
    EXPECT(fgets(line, sizeof line, f) && strcmp(line, "1 a.db\n") == 0, "manifest line: %s", line);
    fclose(f);
    EXPECT(exists(path_of(".pwal-shared-pwal")), "no log directory");
}

static int same_bytes(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    if (!x || !y) die("compare %s with %s: %s", a, b, strerror(errno));
    int same = 1, c;
    do {
        c = fgetc(x);
        if (c != fgetc(y)) same = 0;
    } while (same && c != EOF);
    fclose(x);
    fclose(y);
    return same;
}

/* Runs `vfs_test CASE DIR` in a child process; its exit status. */
static int child_case(const char *name) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) die("readlink");
    exe[n] = 0;
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        execl(exe, exe, name, g_dir, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A commit leaves the database file alone: its pages wait in memory (and
 * in the log) until a checkpoint writes them home. Meanwhile every
 * connection reads them and the file's size counts them; a checkpoint
 * writes each page once, however many commits rewrote it. */
static void case_home(void) {
    sqlite3 *db = open_pwal("h.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('seed')");
    exec(db, "PRAGMA pwal_checkpoint");
    EXPECT(stat_of(db, "pages_waiting") == 0, "pages wait after a checkpoint");
    long long home = stat_of(db, "pages_home"), pages0 = query_int(db, "PRAGMA page_count");
    EXPECT(file_size(path_of("h.db")) == pages0 * 4096, "the file is not its pages after a checkpoint");
    save("h.db");
    enum { ROWS = 200 };
    for (int i = 0; i < ROWS; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0500d', %d))", i);
    EXPECT(stat_of(db, "commits") == ROWS + 1, "the inserts were not batches");
    char saved[PATH_MAX + 64];
    snprintf(saved, sizeof saved, "%s.saved", path_of("h.db"));
    EXPECT(same_bytes(path_of("h.db"), saved), "a commit wrote the database file");
    long long waiting = stat_of(db, "pages_waiting"), pages = query_int(db, "PRAGMA page_count");
    EXPECT(pages > pages0 + 10, "%lld pages after %d rows of 500 bytes", pages, ROWS);
    EXPECT(waiting >= pages - pages0, "%lld pages waiting, the database grew by %lld", waiting,
           pages - pages0);

    sqlite3 *other = open_pwal("h.db"); /* a second connection sees every commit */
    expect_int(other, "SELECT count(*) FROM t", ROWS + 1, "the other connection sees rows");
    expect_int(other, "PRAGMA page_count", pages, "the other connection counts pages");
    check_integrity(other, "home, before the checkpoint");
    exec(other, "UPDATE t SET v='other' WHERE id=1"); /* a commit from it, read back by the first */
    char *v = query(db, "SELECT v FROM t WHERE id=1");
    EXPECT(strcmp(v, "other") == 0, "the first connection reads %s", v);
    free(v);

    exec(db, "PRAGMA pwal_checkpoint");
    EXPECT(stat_of(db, "pages_waiting") == 0, "%lld pages wait after a checkpoint",
           stat_of(db, "pages_waiting"));
    long long written = stat_of(db, "pages_home") - home;
    EXPECT(written == waiting || written == waiting + 1,
           "the checkpoint wrote %lld pages home, %lld were waiting", written, waiting);
    EXPECT(written < ROWS, "%lld pages written home for %d commits: not once each", written, ROWS);
    EXPECT(file_size(path_of("h.db")) == pages * 4096, "the file holds %lld bytes, not %lld pages",
           file_size(path_of("h.db")), pages);
    /* Read through the VFS again: the file's size it reports now comes
     * from the file, which the checkpoint grew. */
    expect_int(other, "SELECT count(*) FROM t", ROWS + 1, "rows after the checkpoint");
    check_integrity(other, "home, after the checkpoint");
    sqlite3_close(other);
    sqlite3_close(db);
    db = open_db(path_of("h.db"), NULL); /* the plain file, without the log */
    expect_int(db, "SELECT count(*) FROM t", ROWS + 1, "the file holds rows");
    check_integrity(db, "home, the plain file");
    sqlite3_close(db);
}

/* A database closed while another of its directory keeps the log open is
 * whole in its file (its waiting pages went home at its last close), and
 * may be read with another VFS. Deleted and made anew under its name, it
 * gets its own pages, never the old file's: neither waiting pages, nor
 * writes home to the old file, nor frames replayed at the next open. */
static void case_replaced(void) {
    sqlite3 *keep = open_pwal("k.db"); /* holds the log open throughout */
    create_table(keep);
    exec(keep, "INSERT INTO t(v) VALUES('keep')");
    sqlite3 *db = open_pwal("x.db");
    create_table(db);
    for (int i = 0; i < 50; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0500d', %d))", i);
    EXPECT(stat_of(db, "pages_waiting") > 0, "no page waits to go home");
    sqlite3_close(db);
    db = open_db(path_of("x.db"), NULL); /* the plain file, the log still open */
    expect_int(db, "SELECT count(*) FROM t", 50, "the closed file holds rows");
    check_integrity(db, "replaced, the closed file");
    sqlite3_close(db);

    /* Replaced while a handle to the old file is open: refused. */
    sqlite3 *old = open_pwal("x.db");
    expect_int(old, "SELECT count(*) FROM t", 50, "the old file reopened holds other rows");
    if (unlink(path_of("x.db")) != 0) die("unlink: %s", strerror(errno));
    sqlite3 *other = open_db(path_of("x.db"), NULL); /* made anew, another VFS */
    exec(other, "CREATE TABLE other(x)");
    sqlite3_close(other);
    sqlite3 *refused = NULL;
    int rc = sqlite3_open_v2(path_of("x.db"), &refused, SQLITE_OPEN_READWRITE, "pwal");
    EXPECT(rc == SQLITE_CANTOPEN, "opening a file that replaced an open one gave %d, not SQLITE_CANTOPEN",
           rc);
    sqlite3_close(refused);
    sqlite3_close(old);

    if (unlink(path_of("x.db")) != 0) die("unlink: %s", strerror(errno));
    db = open_pwal("x.db");
    create_table(db);
    for (int i = 0; i < 3; i++) execf(db, "INSERT INTO t(v) VALUES('new %d')", i);
    exec(db, "PRAGMA pwal_checkpoint");
    expect_int(db, "SELECT count(*) FROM t", 3, "the new database holds rows");
    check_integrity(db, "replaced, the new database");
    sqlite3_close(db);
    sqlite3_close(keep);
    db = open_db(path_of("x.db"), NULL);
    expect_int(db, "SELECT count(*) FROM t", 3, "the new file holds rows");
    check_integrity(db, "replaced, the new file");
    sqlite3_close(db);
    db = open_pwal("x.db"); /* replays nothing of the old file */
    expect_int(db, "SELECT count(*) FROM t", 3, "rows after a reopen");
    check_integrity(db, "replaced, reopened");
    sqlite3_close(db);
}

/* The holder of close_durable: keeps k.db (so the log) open, commits 200
 * rows into c.db and closes it, lets another process change c.db with the
 * default VFS (plain_writer), then dies without closing the log. */
static void case_close_holder(void) {
    sqlite3 *keep = open_pwal("k.db");
    create_table(keep);
    exec(keep, "INSERT INTO t(v) VALUES('keep')");
    sqlite3 *db = open_pwal("c.db");
    create_table(db);
    for (int i = 0; i < 200; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0500d', %d))", i);
    sqlite3_close(db);
    int rc = child_case("plain_writer");
    if (rc != 0) die("plain_writer exited %d", rc);
    _exit(0); /* a crash: the log is not closed */
}

static void case_plain_writer(void) {
    sqlite3 *db = open_db(path_of("c.db"), NULL);
    exec(db, "DELETE FROM t WHERE id % 2 = 0; INSERT INTO t(v) VALUES('plain'); VACUUM");
    sqlite3_close(db);
}

/* A database's last close, while another keeps the log open, writes its
 * pages home and makes the checkpoint durable before its lock goes:
 * another process may then change the file with another VFS, and a crash
 * of this one must not replay the older frames over that change. */
static void case_close_durable(void) {
    int rc = child_case("close_holder");
    EXPECT(rc == 0, "close_holder exited %d", rc);
    sqlite3 *db = open_pwal("c.db");
    EXPECT(query_int(db, "SELECT count(*) FROM t WHERE v='plain'") == 1,
           "the other process's commit is gone (%lld frames replayed over it)",
           stat_of(db, "replayed_frames"));
    expect_int(db, "SELECT count(*) FROM t", 101, "rows");
    check_integrity(db, "close_durable");
    sqlite3_close(db);
}

/* A read-only connection through pwal locks like a read-write one: the
 * VFS opens the file read-write underneath (SQLite is told it is
 * read-only), so the unix-excl lock keeps other processes out. With the
 * unix VFS's ordinary read-only locks, its first unlock dropped the
 * process's exclusive lock while pages waited in memory: another process
 * then committed, and the checkpoint wrote the waiting pages over it. */
static void case_readonly(void) {
    sqlite3 *keep = open_pwal("k.db"); /* keeps the log open throughout */
    create_table(keep);
    sqlite3 *db = open_pwal("ro.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('first')");
    exec(db, "INSERT INTO t(v) VALUES('second')");
    EXPECT(stat_of(db, "pages_waiting") > 0, "no page waits to go home");
    sqlite3 *ro;
    if (sqlite3_open_v2(path_of("ro.db"), &ro, SQLITE_OPEN_READONLY, "pwal") != SQLITE_OK)
        die("read-only open: %s", sqlite3_errmsg(ro));
    EXPECT(sqlite3_db_readonly(ro, "main") == 1, "SQLite does not see the connection as read-only");
    expect_int(ro, "SELECT count(*) FROM t", 2, "the read-only handle sees other rows");
    int rc = child_case("plain_grower"); /* after the read-only handle's unlock */
    EXPECT(rc == 2, "another process wrote beside a read-write and a read-only handle (%d)", rc);
    EXPECT(sqlite3_exec(ro, "INSERT INTO t(v) VALUES('no')", NULL, NULL, NULL) == SQLITE_READONLY,
           "the read-only connection could write");
    sqlite3_close(db); /* not the last handle: the read-only one stays */
    rc = child_case("plain_grower");
    EXPECT(rc == 2, "another process wrote beside a read-only handle (%d)", rc);
    expect_int(ro, "SELECT count(*) FROM t", 2, "the read-only handle sees rows");
    sqlite3_close(ro);
    rc = child_case("plain_grower"); /* the last handle closed: now it may */
    EXPECT(rc == 0, "another process could not write after the last close (%d)", rc);
    db = open_pwal("ro.db");
    expect_int(db, "SELECT count(*) FROM t", 2002, "rows");
    check_integrity(db, "readonly");
    sqlite3_close(db);
    sqlite3_close(keep);
}

/* Another process's writer, with the default VFS: exits 2 if the database
 * is locked (SQLITE_BUSY), 0 once it added 2000 rows. */
static void case_plain_grower(void) {
    sqlite3 *db = open_db(path_of("ro.db"), NULL);
    sqlite3_busy_timeout(db, 0); /* locked means locked: no waiting */
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_BUSY) exit(2);
    for (int i = 0; i < 2000; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0300d', %d))", i);
    exec(db, "COMMIT");
    sqlite3_close(db);
}

/* The directory renamed while a database in it is open, and a new one
 * made at its path: its log, open here, moved with the old one, so an
 * open of a database at the path is refused instead of reading the old
 * file's pages. */
static void case_renamed_dir(void) {
    char d[PATH_MAX + 64], d2[PATH_MAX + 64], a[PATH_MAX + 64];
    snprintf(d, sizeof d, "%s/d", g_dir);
    snprintf(d2, sizeof d2, "%s/d2", g_dir);
    snprintf(a, sizeof a, "%s/d/a.db", g_dir);
    if (mkdir(d, 0755) != 0) die("mkdir: %s", strerror(errno));
    sqlite3 *h1 = open_db(a, "pwal");
    create_table(h1);
    for (int i = 0; i < 20; i++) exec(h1, "INSERT INTO t(v) VALUES('old')");
    if (rename(d, d2) != 0 || mkdir(d, 0755) != 0) die("rename, mkdir: %s", strerror(errno));
    sqlite3 *p = open_db(a, NULL);
    exec(p, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES('new')");
    sqlite3_close(p);
    sqlite3 *h2 = NULL;
    int rc = sqlite3_open_v2(a, &h2, SQLITE_OPEN_READWRITE, "pwal");
    EXPECT(rc == SQLITE_CANTOPEN, "a database in a new directory at the renamed one's path opened (%d)",
           rc);
    sqlite3_close(h2);
    expect_int(h1, "SELECT count(*) FROM t", 20, "the open handle lost rows");
    sqlite3_close(h1);
}

/* SQLITE_FCNTL_HAS_MOVED, which the VFS leaves to the unix VFS: a database
 * renamed while open refuses writes (SQLITE_READONLY_DBMOVED), which pwal
 * needs, since its frames would be logged under a name that no longer
 * names it. */
static void case_moved(void) {
    sqlite3 *db = open_pwal("mv.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('before')");
    if (rename(path_of("mv.db"), path_of("mv2.db")) != 0) die("rename: %s", strerror(errno));
    int rc = sqlite3_exec(db, "INSERT INTO t(v) VALUES('after')", NULL, NULL, NULL);
    EXPECT(sqlite3_extended_errcode(db) == SQLITE_READONLY_DBMOVED,
           "a write after the rename gave %d (%s), not SQLITE_READONLY_DBMOVED", rc,
           sqlite3_errmsg(db));
    if (rename(path_of("mv2.db"), path_of("mv.db")) != 0) die("rename back: %s", strerror(errno));
    exec(db, "INSERT INTO t(v) VALUES('back')");
    expect_int(db, "SELECT count(*) FROM t", 2, "rows");
    sqlite3_close(db);
}

/* Commits whose writes home were lost (the file is put back as it was
 * before them, as after a power loss) come back from the log at the next
 * open, before SQLite reads: the default VFS does not see them, pwal does.
 * PRAGMA pwal_checkpoints=off keeps the log whole across the close. */
static void case_replay(void) {
    sqlite3 *db = open_pwal("r.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('before')");
    exec(db, "PRAGMA pwal_checkpoint"); /* committed pages go home at a checkpoint */
    save("r.db");
    exec(db, "PRAGMA pwal_checkpoints=off");
    for (int i = 0; i < 50; i++) execf(db, "INSERT INTO t(v) VALUES('logged %d')", i);
    exec(db, "UPDATE t SET v='changed' WHERE id=1");
    expect_int(db, "SELECT count(*) FROM t", 51, "rows missing before the close");
    sqlite3_close(db);
    lose_unsynced_writes("r.db");

    db = open_db(path_of("r.db"), NULL); /* the plain file */
    expect_int(db, "SELECT count(*) FROM t", 1, "the file holds rows");
    sqlite3_close(db);

    db = open_pwal("r.db");
    EXPECT(stat_of(db, "replayed_frames") > 0, "nothing replayed");
    expect_int(db, "SELECT count(*) FROM t", 51, "rows after replay");
    char *v = query(db, "SELECT v FROM t WHERE id=1");
    EXPECT(strcmp(v, "changed") == 0, "replayed update lost: %s", v);
    free(v);
    check_integrity(db, "replay");
    sqlite3_close(db);
    /* The replay was checkpointed durably: a second open replays nothing. */
    db = open_pwal("r.db");
    EXPECT(stat_of(db, "replayed_frames") == 0, "replayed twice");
    expect_int(db, "SELECT count(*) FROM t", 51, "rows lost by the second open");
    sqlite3_close(db);
}

/* A transaction larger than the page cache spills: SQLite creates the
 * rollback journal and writes pages directly. The VFS checkpoints first, so
 * the older logged frames of those pages can never be replayed over them. */
static void case_spill(void) {
    sqlite3 *db = open_pwal("s.db");
    exec(db, "PRAGMA cache_size=20");
    create_table(db);
    for (int i = 0; i < 200; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0500d', %d))", i);
    long long ck = stat_of(db, "checkpoints"), direct = stat_of(db, "direct_writes");
    EXPECT(stat_of(db, "commits") == 200, "small inserts were not batches");
    /* Rewrites every page the batches wrote, in one transaction. */
    exec(db, "UPDATE t SET v=printf('%0600d', id + 1000000)");
    EXPECT(stat_of(db, "direct_writes") > direct, "the spilled transaction wrote no page directly");
    EXPECT(stat_of(db, "checkpoints") == ck + 1,
           "no checkpoint before the spilled transaction's direct writes");
    EXPECT(stat_of(db, "commits") == 200, "the spilled transaction was a batch");
    /* Keep the rest in the log and reopen: a replay of the 200 old commits
     * would bring the old values back. */
    exec(db, "PRAGMA pwal_checkpoints=off");
    exec(db, "INSERT INTO t(v) VALUES('after')");
    sqlite3_close(db);
    db = open_pwal("s.db");
    expect_int(db, "SELECT count(*) FROM t WHERE v LIKE '0000%'", 200, "old values came back over the spilled transaction (rows with the new values)");
    expect_int(db, "SELECT count(*) FROM t WHERE v='after'", 1, "lost the last commit");
    check_integrity(db, "spill");
    sqlite3_close(db);
}

/* COMMIT_ATOMIC_WRITE fails (PRAGMA pwal_fail_commits): SQLite sends
 * ROLLBACK_ATOMIC_WRITE, writes its rollback journal, and commits through
 * it, which checkpoints first. The commit succeeds all the same. */
static void case_fallback(void) {
    sqlite3 *db = open_pwal("f.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('one')");
    long long direct = stat_of(db, "direct_writes"), ck = stat_of(db, "checkpoints");
    exec(db, "PRAGMA pwal_fail_commits=1");
    exec(db, "INSERT INTO t(v) VALUES('two')");
    EXPECT(stat_of(db, "commit_failures") == 1, "the injected failure did not happen");
    EXPECT(stat_of(db, "rollbacks") == 1, "SQLite sent no ROLLBACK_ATOMIC_WRITE");
    EXPECT(stat_of(db, "direct_writes") > direct, "SQLite did not fall back to direct writes");
    EXPECT(stat_of(db, "checkpoints") == ck + 1, "no checkpoint before the fallback's writes");
    EXPECT(stat_of(db, "journal_syncs") == 1, "the journal was not synced before the fallback's writes");
    EXPECT(stat_of(db, "commits") == 1, "the failed batch counted as a commit");
    exec(db, "INSERT INTO t(v) VALUES('three')"); /* batches again */
    EXPECT(stat_of(db, "commits") == 2, "the next transaction was no batch");
    expect_int(db, "SELECT count(*) FROM t", 3, "rows missing after the fallback");
    check_integrity(db, "fallback");
    sqlite3_close(db);
    db = open_pwal("f.db");
    expect_int(db, "SELECT count(*) FROM t", 3, "rows missing after reopen");
    sqlite3_close(db);
}

/* A transaction that fits in SQLite's page cache but holds more page bytes
 * than one pwal transaction may (PWAL_MAX_TXN_BYTES; here a test limit of
 * 1 MiB, PWALVFS_TEST_MAX_TXN_BYTES) reaches the VFS as a batch. The VFS
 * stops keeping its pages once over, COMMIT_ATOMIC_WRITE fails, and SQLite
 * commits it through its rollback journal, whose direct writes checkpoint
 * first: the pages of earlier commits still waiting in memory (the UPDATE
 * rewrites them) go home before, and their frames can never be replayed
 * over the direct writes. The log is not broken: later commits go through
 * it. */
#define BIG_LIMIT "1048576"

static void big_batch_txn(sqlite3 *db, const char *tag) {
    execf(db,
          "BEGIN; UPDATE t SET v='%s '||id WHERE length(v) < 100; "
          "WITH d(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM d WHERE x<30) "
          "INSERT INTO t(v) SELECT zeroblob(100000) FROM d; COMMIT",
          tag);
}

static void case_big_batch(void) {
    setenv("PWALVFS_TEST_MAX_TXN_BYTES", BIG_LIMIT, 1);
    sqlite3 *db = open_pwal("big.db");
    exec(db, "PRAGMA cache_size=-65536"); /* 64 MiB: the transaction fits, no spill */
    create_table(db);
    for (int i = 0; i < 20; i++) execf(db, "INSERT INTO t(v) VALUES('small %d')", i);
    long long commits = stat_of(db, "commits"), ck = stat_of(db, "checkpoints");
    long long direct = stat_of(db, "direct_writes"), rollbacks = stat_of(db, "rollbacks");
    EXPECT(commits == 20, "small inserts were not batches");
    EXPECT(stat_of(db, "pages_waiting") > 0, "no committed page waits in memory");
    big_batch_txn(db, "big"); /* about 3 MiB of pages */
    EXPECT(stat_of(db, "broken") == 0, "the oversized batch broke the log");
    EXPECT(stat_of(db, "oversized") == 1, "the batch was not found too large");
    EXPECT(stat_of(db, "rollbacks") == rollbacks + 1, "SQLite sent no ROLLBACK_ATOMIC_WRITE");
    EXPECT(stat_of(db, "commits") == commits, "the oversized batch went to the log");
    EXPECT(stat_of(db, "direct_writes") > direct, "SQLite did not commit through its journal");
    EXPECT(stat_of(db, "checkpoints") == ck + 1, "no checkpoint before the journal's direct writes");
    EXPECT(stat_of(db, "pages_waiting") == 0, "pages still wait in memory after the direct writes");
    EXPECT(stat_of(db, "journal_syncs") == 1, "the journal was not synced before the direct writes");
    EXPECT(!exists(path_of("big.db-journal")), "the journal was left behind");
    expect_int(db, "SELECT count(*) FROM t", 50, "rows after the oversized transaction");
    expect_int(db, "SELECT count(*) FROM t WHERE v LIKE 'big %'", 20, "updated rows");
    expect_int(db, "SELECT sum(length(v)) FROM t WHERE length(v) = 100000", 3000000, "blob bytes");
    /* The log goes on. */
    for (int i = 0; i < 10; i++) execf(db, "INSERT INTO t(v) VALUES('after %d')", i);
    EXPECT(stat_of(db, "commits") == commits + 10, "commits after the oversized one missed the log");
    check_integrity(db, "big_batch");
    sqlite3_close(db);

    db = open_pwal("big.db");
    expect_int(db, "SELECT count(*) FROM t", 60, "rows after reopen");
    expect_int(db, "SELECT count(*) FROM t WHERE v LIKE 'big %'", 20, "updated rows after reopen");
    check_integrity(db, "big_batch after reopen");
    sqlite3_close(db);

    /* A process that dies without closing: commits in the log before and
     * after another oversized transaction. The replay brings the later ones
     * back and none of the earlier ones over the direct writes. */
    EXPECT(child_case("big_batch_child") == 0, "big_batch_child failed");
    db = open_pwal("big.db");
    EXPECT(stat_of(db, "replayed_frames") > 0, "nothing replayed after the child died");
    expect_int(db, "SELECT count(*) FROM t", 100, "rows after the child died");
    expect_int(db, "SELECT count(*) FROM t WHERE v LIKE 'child %'", 35, "rows the child updated");
    expect_int(db, "SELECT count(*) FROM t WHERE v LIKE 'last %'", 5, "the child's last commits");
    check_integrity(db, "big_batch after the child died");
    sqlite3_close(db);
}

static void case_big_batch_child(void) {
    sqlite3 *db = open_pwal("big.db");
    exec(db, "PRAGMA cache_size=-65536");
    for (int i = 0; i < 5; i++) execf(db, "INSERT INTO t(v) VALUES('before %d')", i);
    long long oversized = stat_of(db, "oversized");
    big_batch_txn(db, "child");
    EXPECT(stat_of(db, "oversized") == oversized + 1, "the child's batch was not found too large");
    for (int i = 0; i < 5; i++) execf(db, "INSERT INTO t(v) VALUES('last %d')", i);
    EXPECT(stat_of(db, "pages_waiting") > 0, "the last commits wait nowhere");
    _exit(0); /* no close, no checkpoint: the last commits are only in the log */
}

/* The power cut under an oversized transaction (tests/sqlite_vfs.rs,
 * big_batch_power_loss, runs it under libpowercut.so): 20 small commits
 * through the log, then big_batch_txn, which SQLite commits through its
 * rollback journal. Prints what was acknowledged, flushed at once. */
static void case_big_cut_write(void) {
    setenv("PWALVFS_TEST_MAX_TXN_BYTES", BIG_LIMIT, 1);
    sqlite3 *db = open_pwal("big.db");
    exec(db, "PRAGMA cache_size=-65536");
    create_table(db);
    for (int i = 0; i < 20; i++) {
        execf(db, "INSERT INTO t(v) VALUES('small %d')", i);
        printf("small %d\n", i + 1);
        fflush(stdout);
    }
    big_batch_txn(db, "big");
    printf("big\n");
    fflush(stdout);
    sqlite3_close(db);
}

/* After the cut: integrity ok, every acknowledged small commit there (the
 * writer's acknowledgements come in BIG_ACKED_SMALL and BIG_ACKED_BIG),
 * and the oversized transaction whole or absent. */
static void case_big_cut_check(void) {
    const char *small_env = getenv("BIG_ACKED_SMALL"), *big_env = getenv("BIG_ACKED_BIG");
    long long acked = small_env ? atoll(small_env) : 0;
    int big_acked = big_env && atoi(big_env);
    if (!exists(path_of("big.db"))) {
        EXPECT(acked == 0, "big.db is gone after %lld acknowledged commits", acked);
        return;
    }
    sqlite3 *db = open_pwal("big.db");
    if (query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name='t'") == 0) {
        EXPECT(acked == 0, "table t is gone after %lld acknowledged commits", acked);
        sqlite3_close(db);
        return;
    }
    check_integrity(db, "big_cut_check");
    long long small = query_int(db, "SELECT count(*) FROM t WHERE length(v) < 100");
    long long blobs = query_int(db, "SELECT count(*) FROM t WHERE length(v) = 100000");
    long long updated = query_int(db, "SELECT count(*) FROM t WHERE v LIKE 'big %'");
    EXPECT(small >= acked && small <= 20, "%lld small rows, %lld acknowledged", small, acked);
    if (blobs) {
        EXPECT(blobs == 30 && updated == 20 && small == 20,
               "the oversized transaction is torn: %lld blobs, %lld updated, %lld small rows", blobs,
               updated, small);
    } else {
        EXPECT(!big_acked, "the acknowledged oversized transaction is gone");
        EXPECT(updated == 0, "%lld rows updated without the transaction's blobs", updated);
        expect_int(db, "SELECT count(*) FROM t WHERE v LIKE 'small %'", small, "small rows");
    }
    sqlite3_close(db);
    printf("small %lld big %d\n", small, blobs != 0);
}

/* The real limit (an ignored test, big_batch_real_size): SQLite's
 * bigsort-1.1 shape, 1100 rows of 1 MB in 64 KiB pages, about 1.1 GB in
 * one transaction, and a cache large enough to hold it. */
static void case_big_batch_1gib(void) {
    sqlite3 *db = open_pwal("g.db");
    exec(db, "PRAGMA page_size=65536; CREATE TABLE t1(a, b); PRAGMA cache_size=-3000000");
    exec(db, "INSERT INTO t1 VALUES(0, 'seed')"); /* a batch, waiting in memory */
    exec(db, "BEGIN; WITH d(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM d WHERE x<1100) "
             "INSERT INTO t1 SELECT x, zeroblob(1000000) FROM d; COMMIT");
    EXPECT(stat_of(db, "broken") == 0, "the oversized batch broke the log");
    EXPECT(stat_of(db, "oversized") == 1, "the batch was not found too large");
    long long commits = stat_of(db, "commits");
    exec(db, "INSERT INTO t1 VALUES(2000, 'after')");
    EXPECT(stat_of(db, "commits") == commits + 1, "the commit after missed the log");
    expect_int(db, "SELECT count(*) FROM t1", 1102, "rows");
    sqlite3_close(db);
    db = open_pwal("g.db");
    expect_int(db, "SELECT count(*) FROM t1", 1102, "rows after reopen");
    expect_int(db, "SELECT sum(length(b)) FROM t1 WHERE a BETWEEN 1 AND 1100", 1100000000LL,
               "blob bytes after reopen");
    check_integrity(db, "big_batch_1gib");
    sqlite3_close(db);
}

/* xTruncate: a VACUUM after a big delete shrinks the file. The truncation
 * checkpoints first; data and integrity survive, with and without replay. */
static void case_truncate(void) {
    sqlite3 *db = open_pwal("v.db");
    create_table(db);
    exec(db, "BEGIN");
    for (int i = 0; i < 2000; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0300d', %d))", i);
    exec(db, "COMMIT");
    exec(db, "DELETE FROM t WHERE id > 100");
    exec(db, "PRAGMA pwal_checkpoint"); /* the file's size: its pages home */
    long long before = file_size(path_of("v.db"));
    exec(db, "VACUUM");
    long long after = file_size(path_of("v.db"));
    EXPECT(after < before, "VACUUM did not shrink the file (%lld -> %lld)", before, after);
    EXPECT(stat_of(db, "direct_truncates") > 0, "no xTruncate reached the VFS");
    expect_int(db, "SELECT count(*) FROM t", 100, "rows lost by VACUUM");
    check_integrity(db, "truncate");
    save("v.db");
    exec(db, "PRAGMA pwal_checkpoints=off");
    exec(db, "DELETE FROM t WHERE id > 50");
    sqlite3_close(db);
    lose_unsynced_writes("v.db");
    db = open_pwal("v.db");
    expect_int(db, "SELECT count(*) FROM t", 50, "rows after replay");
    check_integrity(db, "truncate after replay");
    sqlite3_close(db);
}

/* PRAGMA page_size on a database with data takes effect at VACUUM; later
 * batches log pages of the new size, and replay puts them where they go. */
static void case_page_size(void) {
    sqlite3 *db = open_pwal("p.db");
    create_table(db);
    for (int i = 0; i < 30; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0700d', %d))", i);
    expect_int(db, "PRAGMA page_size", 4096, "the default page size");
    exec(db, "PRAGMA page_size=8192");
    exec(db, "VACUUM");
    expect_int(db, "PRAGMA page_size", 8192, "the page size after VACUUM");
    check_integrity(db, "page size after VACUUM");
    long long frames = stat_of(db, "frame_bytes");
    exec(db, "INSERT INTO t(v) VALUES('eight k')");
    long long grown = stat_of(db, "frame_bytes") - frames;
    EXPECT(grown > 0 && grown % 8192 == 0, "a commit after the change logged %lld bytes", grown);
    save("p.db");
    exec(db, "PRAGMA pwal_checkpoints=off");
    for (int i = 0; i < 30; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0900d', %d))", i);
    sqlite3_close(db);
    lose_unsynced_writes("p.db");
    db = open_pwal("p.db");
    EXPECT(stat_of(db, "replayed_frames") > 0, "nothing replayed");
    expect_int(db, "PRAGMA page_size", 8192, "page size lost");
    expect_int(db, "SELECT count(*) FROM t", 61, "rows");
    check_integrity(db, "page size after replay");
    sqlite3_close(db);
}

/* journal_mode=WAL needs shared memory, which the VFS does not offer: SQLite
 * keeps the rollback mode. Under locking_mode=EXCLUSIVE SQLite's WAL needs
 * none: it works, its checkpoints are direct writes (the log checkpoints
 * first). */
static void case_wal(void) {
    sqlite3 *db = open_pwal("w.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('x')");
    char *mode = query(db, "PRAGMA journal_mode=WAL");
    EXPECT(strcmp(mode, "delete") == 0, "journal_mode=WAL gave %s, not delete", mode);
    free(mode);
    exec(db, "INSERT INTO t(v) VALUES('y')");
    exec(db, "PRAGMA locking_mode=EXCLUSIVE");
    mode = query(db, "PRAGMA journal_mode=WAL");
    EXPECT(strcmp(mode, "wal") == 0, "exclusive journal_mode=WAL gave %s", mode);
    free(mode);
    for (int i = 0; i < 20; i++) execf(db, "INSERT INTO t(v) VALUES('wal %d')", i);
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    mode = query(db, "PRAGMA journal_mode=DELETE");
    EXPECT(strcmp(mode, "delete") == 0, "back to delete gave %s", mode);
    free(mode);
    check_integrity(db, "wal");
    sqlite3_close(db);
    db = open_pwal("w.db");
    expect_int(db, "SELECT count(*) FROM t", 22, "rows lost through exclusive WAL");
    exec(db, "INSERT INTO t(v) VALUES('z')");
    EXPECT(stat_of(db, "commits") >= 1, "no batch after leaving WAL");
    check_integrity(db, "after wal");
    sqlite3_close(db);
}

/* Two connections to one database, each in its own thread, plus a reader:
 * SQLite's locks serialise the writers; every row commits. */
typedef struct {
    const char *name;
    int who, rows;
} tharg;

static void *writer_thread(void *p) {
    tharg *a = p;
    sqlite3 *db = open_pwal(a->name);
    for (int i = 0; i < a->rows; i++) {
        execf(db, "INSERT INTO t(v) VALUES('w%d %d')", a->who, i);
        if (i % 10 == 0) {
            long long n = query_int(db, "SELECT count(*) FROM t");
            if (n < i + 1) die("thread %d sees %lld rows after committing %d", a->who, n, i + 1);
        }
    }
    sqlite3_close(db);
    return NULL;
}

static void case_threads(void) {
    sqlite3 *db = open_pwal("th.db");
    create_table(db);
    enum { ROWS = 300 };
    pthread_t t[2];
    tharg a[2] = {{"th.db", 0, ROWS}, {"th.db", 1, ROWS}};
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, writer_thread, &a[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    expect_int(db, "SELECT count(*) FROM t", 2 * ROWS, "rows lost between threads");
    EXPECT(stat_of(db, "commits") == 2 * ROWS, "%lld commits, not %d", stat_of(db, "commits"),
           2 * ROWS);
    check_integrity(db, "threads");
    sqlite3_close(db);
}

/* Several databases of one directory share one log (one manifest, ids 1..n),
 * each from its own thread; a checkpoint every 1 MiB syncs them all. */
static void case_shared(void) {
    enum { N = 4, ROWS = 200 };
    char names[N][16];
    pthread_t t[N];
    tharg a[N];
    setenv("PWALVFS_CHECKPOINT_MIB", "1", 1);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "m%d.db", i);
        sqlite3 *db = open_pwal(names[i]);
        create_table(db);
        exec(db, "INSERT INTO t(v) VALUES('first')");
        EXPECT(stat_of(db, "file_id") == i + 1, "database %d got file id %lld", i,
               stat_of(db, "file_id"));
        sqlite3_close(db);
    }
    sqlite3 *keep = open_pwal(names[0]); /* holds the log open throughout */
    for (int i = 0; i < N; i++) {
        a[i] = (tharg){names[i], i, ROWS};
        pthread_create(&t[i], NULL, writer_thread, &a[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    EXPECT(stat_of(keep, "commits") == N * ROWS, "%lld commits in the shared log, not %d",
           stat_of(keep, "commits"), N * ROWS);
    EXPECT(stat_of(keep, "checkpoints") > 0, "no checkpoint after %d commits", N * ROWS);
    sqlite3_close(keep);
    for (int i = 0; i < N; i++) {
        sqlite3 *db = open_pwal(names[i]);
        EXPECT(query_int(db, "SELECT count(*) FROM t") == ROWS + 1, "rows lost in %s", names[i]);
        check_integrity(db, names[i]);
        sqlite3_close(db);
    }
}

/* The child of hot_journal: rewrites every row of j.db in one transaction
 * larger than the page cache (it spills: journal written, pages written
 * directly), then dies before COMMIT. */
static void case_die_mid_spill(void) {
    sqlite3 *db = open_pwal("j.db");
    exec(db, "PRAGMA cache_size=20");
    exec(db, "BEGIN");
    exec(db, "UPDATE t SET v=printf('%0600d', id)");
    _exit(0);
}

/* A process that dies inside a spilled transaction leaves a hot journal.
 * The VFS answers "no journal" from memory once the file system said so
 * (access_known counts those answers); the next process's open must still
 * find this journal, and SQLite must roll the transaction back. */
static void case_hot_journal(void) {
    sqlite3 *db = open_pwal("j.db");
    create_table(db);
    for (int i = 0; i < 100; i++) execf(db, "INSERT INTO t(v) VALUES(printf('%%0500d', %d))", i);
    EXPECT(stat_of(db, "access_known") > 0,
           "every xAccess of the journal and WAL names asked the file system");
    sqlite3_close(db);
    int rc = child_case("die_mid_spill");
    EXPECT(rc == 0, "die_mid_spill exited %d", rc);
    EXPECT(exists(path_of("j.db-journal")) && file_size(path_of("j.db-journal")) > 0,
           "the dead transaction left no journal");
    db = open_pwal("j.db");
    expect_int(db, "SELECT count(*) FROM t", 100, "rows lost");
    expect_int(db, "SELECT count(*) FROM t WHERE length(v) = 600", 0, "rows of the uncommitted transaction are there");
    check_integrity(db, "hot journal");
    EXPECT(!exists(path_of("j.db-journal")) || file_size(path_of("j.db-journal")) == 0,
           "the hot journal was not rolled back");
    sqlite3_close(db);
}

/* The child of process (run by child_case): exits 0 once it opened and
 * wrote a database of the directory through pwal, 3 if it could not open. */
static void case_open_once(void) {
    sqlite3 *db;
    int rc = sqlite3_open_v2(path_of("o.db"), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "pwal");
    if (rc != SQLITE_OK) {
        fprintf(stderr, "open_once: %s\n", sqlite3_errstr(rc));
        exit(3);
    }
    exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)");
    exec(db, "INSERT INTO t(v) VALUES('other process')");
    sqlite3_close(db);
}

/* One process per log: while a database of the directory is open here,
 * another process cannot open one; once the last is closed, it can. */
static void case_process(void) {
    sqlite3 *db = open_pwal("o.db");
    create_table(db);
    exec(db, "INSERT INTO t(v) VALUES('here')");
    int rc = child_case("open_once");
    EXPECT(rc == 3, "another process opened the directory's log while it was open here (%d)", rc);
    sqlite3_close(db);
    rc = child_case("open_once");
    EXPECT(rc == 0, "another process could not open the database after the last close (%d)", rc);
    db = open_pwal("o.db");
    expect_int(db, "SELECT count(*) FROM t", 2, "the other process's row is missing");
    sqlite3_close(db);
}

/* A connection of this process through another VFS ("unix", the default,
 * or "unix-excl") to a database pwal has open, whose committed pages wait
 * in pwal's memory and are not in the file yet: it must be refused, not
 * read the stale file, nor write a change that pwal's next checkpoint
 * writes over. While pwal has it open the other connection gets
 * SQLITE_BUSY, for reads and writes; after pwal's last close it reads
 * every row and writes; and a pwal connection that finds the other
 * connection inside a transaction waits (SQLITE_BUSY) until it ends. */
static int busy_or_cantopen(int rc) {
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_CANTOPEN;
}

static sqlite3 *open_other(const char *name, const char *vfs) {
    sqlite3 *db = open_db(path_of(name), vfs);
    sqlite3_busy_timeout(db, 0);
    return db;
}

static void expect_refused(sqlite3 *db, const char *sql, const char *who) {
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    EXPECT(busy_or_cantopen(rc), "%s: %s gave %d (%s), not SQLITE_BUSY or SQLITE_CANTOPEN", who, sql,
           rc, sqlite3_errmsg(db));
}

/* The child of foreign: exits 0 if its write through the default VFS is
 * refused (SQLITE_BUSY), 1 if it commits. */
static void case_foreign_writer(void) {
    sqlite3 *db = open_other("fo.db", NULL);
    int rc = sqlite3_exec(db, "INSERT INTO t(v) VALUES('other process')", NULL, NULL, NULL);
    sqlite3_close(db);
    if ((rc & 0xff) == SQLITE_BUSY) return;
    fprintf(stderr, "foreign_writer: the insert gave %d\n", rc);
    exit(1);
}

static void case_foreign(void) {
    sqlite3 *db = open_pwal("fo.db");
    create_table(db);
    for (int i = 0; i < 20; i++) execf(db, "INSERT INTO t(v) VALUES('pwal %d')", i);
    EXPECT(stat_of(db, "pages_waiting") > 0, "no committed page waits in memory");
    const char *vfs[2] = {NULL, "unix-excl"};
    sqlite3 *other[2];
    for (int k = 0; k < 2; k++) {
        const char *who = vfs[k] ? vfs[k] : "the default VFS";
        other[k] = open_other("fo.db", vfs[k]);
        expect_refused(other[k], "SELECT count(*) FROM t", who);
        expect_refused(other[k], "INSERT INTO t(v) VALUES('other')", who);
        expect_refused(other[k], "BEGIN IMMEDIATE", who);
        sqlite3_exec(other[k], "ROLLBACK", NULL, NULL, NULL);
    }
    /* pwal goes on, checkpoints (the file current until the next commit)
     * and commits again: still refused. */
    exec(db, "PRAGMA pwal_checkpoint");
    exec(db, "INSERT INTO t(v) VALUES('after the checkpoint')");
    expect_refused(other[0], "SELECT count(*) FROM t", "the default VFS after a checkpoint");
    sqlite3 *db2 = open_pwal("fo.db"); /* a second pwal connection is no stranger */
    expect_int(db2, "SELECT count(*) FROM t", 21, "rows through a second pwal connection");
    exec(db2, "INSERT INTO t(v) VALUES('second pwal connection')");
    sqlite3_close(db2);
    expect_refused(other[1], "INSERT INTO t(v) VALUES('other')", "unix-excl with two pwal handles");
    sqlite3_close(db);

    /* pwal's last close: the file is whole, the others read and write. */
    for (int k = 0; k < 2; k++) {
        expect_int(other[k], "SELECT count(*) FROM t", 22 + k, "rows the other VFS reads after the close");
        execf(other[k], "INSERT INTO t(v) VALUES('other %d')", k);
    }
    /* unix-excl keeps its exclusive lock until the process has no
     * connection of the unix VFS to the file left: all of them go. */
    sqlite3_close(other[1]);
    sqlite3_close(other[0]);

    /* The other connection inside a read transaction: pwal may not lock
     * the file until it ends, and then has it again. */
    other[0] = open_other("fo.db", NULL);
    exec(other[0], "BEGIN");
    expect_int(other[0], "SELECT count(*) FROM t", 24, "rows in the other's transaction");
    db = open_other("fo.db", "pwal");
    expect_refused(db, "INSERT INTO t(v) VALUES('pwal while the other reads')", "pwal");
    exec(other[0], "COMMIT");
    expect_int(db, "SELECT count(*) FROM t", 24, "rows through pwal after the other VFS wrote");
    exec(db, "INSERT INTO t(v) VALUES('pwal again')");
    expect_refused(other[0], "SELECT count(*) FROM t", "the default VFS, pwal open again");
    /* The other connection's locks came and went beside pwal's first lock:
     * the process's lock on the file must still keep other processes out. */
    int rc = child_case("foreign_writer");
    EXPECT(rc == 0, "another process wrote the database beside pages waiting in pwal's memory (%d)", rc);
    check_integrity(db, "foreign");
    sqlite3_close(db);
    expect_int(other[0], "SELECT count(*) FROM t", 25, "rows after pwal's second close");
    check_integrity(other[0], "foreign, the default VFS");
    sqlite3_close(other[0]);
}

/* The child of fork: exits 0 once its insert into fk.db through the
 * default VFS committed, 1 if it was refused. */
static void case_plain_insert(void) {
    sqlite3 *db = open_other("fk.db", NULL);
    int rc = sqlite3_exec(db, "INSERT INTO t(v) VALUES('other process')", NULL, NULL, NULL);
    sqlite3_close(db);
    if (rc == SQLITE_OK) return;
    fprintf(stderr, "plain_insert: the insert gave %d\n", rc);
    exit(1);
}

/* The middle process of fork: opens fk.db through pwal, commits (the
 * lock is taken), forks a child that waits for the end of the pipe in
 * PWAL_TEST_HOLD_FD, and dies without closing anything. */
static void case_fork_holder(void) {
    const char *v = getenv("PWAL_TEST_HOLD_FD");
    if (!v) die("fork_holder: no PWAL_TEST_HOLD_FD");
    int hold = atoi(v), writer = atoi(strchr(v, ',') + 1);
    close(writer);
    sqlite3 *db = open_pwal("fk.db");
    exec(db, "INSERT INTO t(v) VALUES('before the fork')");
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) { /* touches nothing, lives until the test is done */
        char c;
        while (read(hold, &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    _exit(0); /* a crash, the forked child alive */
}

/* A child forked (without exec) while pwal holds a database's lock does
 * not inherit the lock: once the process that forked it died, another
 * process writes the database while the forked child still runs. */
static void case_fork(void) {
    sqlite3 *db = open_pwal("fk.db");
    create_table(db);
    sqlite3_close(db);
    int hold[2];
    if (pipe(hold) != 0) die("pipe: %s", strerror(errno));
    char fds[32];
    snprintf(fds, sizeof fds, "%d,%d", hold[0], hold[1]);
    setenv("PWAL_TEST_HOLD_FD", fds, 1);
    int rc = child_case("fork_holder");
    EXPECT(rc == 0, "fork_holder exited %d", rc);
    close(hold[0]);
    /* Through pwal first (the dead process's commit is in the log only). */
    db = open_other("fk.db", "pwal");
    rc = sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL);
    EXPECT(rc == SQLITE_OK, "pwal could not read after the crash: the forked child kept the lock (%d, %s)",
           rc, sqlite3_errmsg(db));
    expect_int(db, "SELECT count(*) FROM t", 1, "rows after the crash");
    sqlite3_close(db);
    rc = child_case("plain_insert");
    close(hold[1]); /* the forked child ends */
    EXPECT(rc == 0, "another process could not write: the forked child kept the lock (%d)", rc);
    db = open_pwal("fk.db");
    expect_int(db, "SELECT count(*) FROM t", 2, "rows after the fork");
    check_integrity(db, "fork");
    sqlite3_close(db);
}

/* ---- shim: a pass-through VFS stacked on pwal ----
 *
 * Like SQLite's cksumvfs (ext/misc/cksumvfs.c) it declares io methods of
 * version 3 and forwards every call to the file underneath as it is,
 * xShmMap and the other version 2 and 3 methods included, without
 * looking at the version the file underneath declares. */
typedef struct {
    sqlite3_file base;
    sqlite3_file *sub; /* the pwal file, right after this struct */
} shim_file;

static sqlite3_vfs *g_shim_under;
#define SUB(f) (((shim_file *)(f))->sub)

static int sh_close(sqlite3_file *f) { return SUB(f)->pMethods->xClose(SUB(f)); }
static int sh_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
    return SUB(f)->pMethods->xRead(SUB(f), b, n, o);
}
static int sh_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
    return SUB(f)->pMethods->xWrite(SUB(f), b, n, o);
}
static int sh_truncate(sqlite3_file *f, sqlite3_int64 n) {
    return SUB(f)->pMethods->xTruncate(SUB(f), n);
}
static int sh_sync(sqlite3_file *f, int fl) { return SUB(f)->pMethods->xSync(SUB(f), fl); }
static int sh_file_size(sqlite3_file *f, sqlite3_int64 *n) {
    return SUB(f)->pMethods->xFileSize(SUB(f), n);
}
static int sh_lock(sqlite3_file *f, int l) { return SUB(f)->pMethods->xLock(SUB(f), l); }
static int sh_unlock(sqlite3_file *f, int l) { return SUB(f)->pMethods->xUnlock(SUB(f), l); }
static int sh_check_reserved(sqlite3_file *f, int *o) {
    return SUB(f)->pMethods->xCheckReservedLock(SUB(f), o);
}
static int sh_file_control(sqlite3_file *f, int op, void *a) {
    return SUB(f)->pMethods->xFileControl(SUB(f), op, a);
}
static int sh_sector_size(sqlite3_file *f) { return SUB(f)->pMethods->xSectorSize(SUB(f)); }
static int sh_device(sqlite3_file *f) { return SUB(f)->pMethods->xDeviceCharacteristics(SUB(f)); }
static int sh_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp) {
    return SUB(f)->pMethods->xShmMap(SUB(f), pg, sz, ext, pp);
}
static int sh_shm_lock(sqlite3_file *f, int off, int n, int fl) {
    return SUB(f)->pMethods->xShmLock(SUB(f), off, n, fl);
}
static void sh_shm_barrier(sqlite3_file *f) { SUB(f)->pMethods->xShmBarrier(SUB(f)); }
static int sh_shm_unmap(sqlite3_file *f, int del) {
    return SUB(f)->pMethods->xShmUnmap(SUB(f), del);
}
static int sh_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp) {
    return SUB(f)->pMethods->xFetch(SUB(f), o, n, pp);
}
static int sh_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
    return SUB(f)->pMethods->xUnfetch(SUB(f), o, p);
}

static const sqlite3_io_methods shim_io = {
    3, sh_close, sh_read, sh_write, sh_truncate, sh_sync, sh_file_size, sh_lock, sh_unlock,
    sh_check_reserved, sh_file_control, sh_sector_size, sh_device, sh_shm_map, sh_shm_lock,
    sh_shm_barrier, sh_shm_unmap, sh_fetch, sh_unfetch,
};

static int shv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)v;
    shim_file *p = (shim_file *)f;
    p->sub = (sqlite3_file *)&p[1];
    int rc = g_shim_under->xOpen(g_shim_under, name, p->sub, flags, out);
    f->pMethods = rc == SQLITE_OK && p->sub->pMethods ? &shim_io : NULL;
    return rc;
}
static int shv_delete(sqlite3_vfs *v, const char *n, int d) {
    (void)v;
    return g_shim_under->xDelete(g_shim_under, n, d);
}
static int shv_access(sqlite3_vfs *v, const char *n, int fl, int *o) {
    (void)v;
    return g_shim_under->xAccess(g_shim_under, n, fl, o);
}
static int shv_full(sqlite3_vfs *v, const char *n, int k, char *o) {
    (void)v;
    return g_shim_under->xFullPathname(g_shim_under, n, k, o);
}
static void *shv_dlopen(sqlite3_vfs *v, const char *n) {
    (void)v;
    return g_shim_under->xDlOpen(g_shim_under, n);
}
static void shv_dlerror(sqlite3_vfs *v, int n, char *o) {
    (void)v;
    g_shim_under->xDlError(g_shim_under, n, o);
}
static void (*shv_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) {
    (void)v;
    return g_shim_under->xDlSym(g_shim_under, h, s);
}
static void shv_dlclose(sqlite3_vfs *v, void *h) {
    (void)v;
    g_shim_under->xDlClose(g_shim_under, h);
}
static int shv_random(sqlite3_vfs *v, int n, char *o) {
    (void)v;
    return g_shim_under->xRandomness(g_shim_under, n, o);
}
static int shv_sleep(sqlite3_vfs *v, int us) {
    (void)v;
    return g_shim_under->xSleep(g_shim_under, us);
}
static int shv_time(sqlite3_vfs *v, double *o) {
    (void)v;
    return g_shim_under->xCurrentTime(g_shim_under, o);
}
static int shv_last_error(sqlite3_vfs *v, int n, char *o) {
    (void)v;
    return g_shim_under->xGetLastError(g_shim_under, n, o);
}
static int shv_time64(sqlite3_vfs *v, sqlite3_int64 *o) {
    (void)v;
    return g_shim_under->xCurrentTimeInt64(g_shim_under, o);
}

static sqlite3_vfs shim_vfs = {
    2, 0, 0, NULL, "shim", NULL, shv_open, shv_delete, shv_access, shv_full, shv_dlopen,
    shv_dlerror, shv_dlsym, shv_dlclose, shv_random, shv_sleep, shv_time, shv_last_error,
    shv_time64, NULL, NULL, NULL,
};

/* A shim stacked on pwal that forwards every io method regardless of the
 * version pwal declares (as cksumvfs does) calls pwal's shared memory
 * methods: they must fail, not crash. Through the shim SQLite believes
 * WAL is possible (the shim has xShmMap), so journal_mode=WAL switches the
 * file to WAL and the next statement fails with SQLITE_IOERR_SHMMAP. The
 * data stays whole: under locking_mode=EXCLUSIVE (WAL without shared
 * memory) pwal opens it, reads every row and switches it back, after
 * which it commits through the log again. */
static void case_shim(void) {
    g_shim_under = sqlite3_vfs_find("pwal");
    shim_vfs.szOsFile = (int)sizeof(shim_file) + g_shim_under->szOsFile;
    shim_vfs.mxPathname = g_shim_under->mxPathname;
    if (sqlite3_vfs_register(&shim_vfs, 0) != SQLITE_OK) die("register the shim");
    sqlite3 *db = open_db(path_of("sh.db"), "shim");
    exec(db, "PRAGMA synchronous=FULL");
    create_table(db);
    for (int i = 0; i < 10; i++) execf(db, "INSERT INTO t(v) VALUES('row %d')", i);
    EXPECT(stat_of(db, "commits") == 10, "10 inserts through the shim made %lld pwal commits",
           stat_of(db, "commits"));
    char *mode = query(db, "PRAGMA journal_mode=WAL");
    EXPECT(strcmp(mode, "wal") == 0, "journal_mode=WAL through the shim gave %s", mode);
    free(mode);
    int rc = sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL);
    EXPECT(sqlite3_extended_errcode(db) == SQLITE_IOERR_SHMMAP,
           "a read in WAL mode through the shim gave %d (%s), not SQLITE_IOERR_SHMMAP", rc,
           sqlite3_errmsg(db));
    sqlite3_close(db);

    /* In its ordinary locking mode pwal cannot open a WAL database. */
    db = open_db(path_of("sh.db"), "pwal");
    rc = sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL);
    EXPECT(rc == SQLITE_CANTOPEN, "a read of the WAL database through pwal gave %d (%s)", rc,
           sqlite3_errmsg(db));
    exec(db, "PRAGMA locking_mode=EXCLUSIVE");
    expect_int(db, "SELECT count(*) FROM t", 10, "rows read in exclusive WAL mode");
    mode = query(db, "PRAGMA journal_mode=DELETE");
    EXPECT(strcmp(mode, "delete") == 0, "journal_mode=DELETE gave %s", mode);
    free(mode);
    sqlite3_close(db);

    db = open_pwal("sh.db");
    long long commits = stat_of(db, "commits");
    exec(db, "INSERT INTO t(v) VALUES('after')");
    EXPECT(stat_of(db, "commits") == commits + 1, "the insert after leaving WAL was no pwal commit");
    expect_int(db, "SELECT count(*) FROM t", 11, "rows after the shim");
    check_integrity(db, "after the shim");
    sqlite3_close(db);
}

int main(int argc, char **argv) {
    g_prog = "vfs_test";
    if (argc != 3) die("usage: vfs_test CASE DIR");
    if (!realpath(argv[2], g_dir)) die("%s: %s", argv[2], strerror(errno));
    load_pwal_vfs();
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
        {"batch", case_batch},         {"home", case_home},       {"replay", case_replay},   {"spill", case_spill},
        {"fallback", case_fallback},   {"truncate", case_truncate}, {"page_size", case_page_size},
        {"wal", case_wal},             {"threads", case_threads}, {"shared", case_shared},
        {"process", case_process},     {"open_once", case_open_once},
        {"hot_journal", case_hot_journal}, {"replaced", case_replaced},
        {"moved", case_moved},
        {"close_durable", case_close_durable}, {"close_holder", case_close_holder},
        {"plain_writer", case_plain_writer}, {"readonly", case_readonly},
        {"plain_grower", case_plain_grower}, {"renamed_dir", case_renamed_dir}, {"die_mid_spill", case_die_mid_spill},
        {"shim", case_shim},           {"foreign", case_foreign},
        {"foreign_writer", case_foreign_writer}, {"fork", case_fork},
        {"fork_holder", case_fork_holder},
        {"plain_insert", case_plain_insert},
        {"big_batch", case_big_batch}, {"big_batch_child", case_big_batch_child},
        {"big_batch_1gib", case_big_batch_1gib},
        {"big_cut_write", case_big_cut_write}, {"big_cut_check", case_big_cut_check},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].run();
            printf("ok %s\n", argv[1]);
            return 0;
        }
    die("unknown case %s", argv[1]);
    return 1;
}
