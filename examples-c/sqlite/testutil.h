/*
 * testutil.h: what the C programs beside it share (vfs_test.c, crash_test.c,
 * bench.c): loading the pwal VFS, running SQL, failing loudly.
 */
#ifndef PWALVFS_TESTUTIL_H
#define PWALVFS_TESTUTIL_H

#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlite3.h"

static const char *g_prog = "test";

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Loads build/libpwalvfs.so (beside this program) once: it registers the
 * VFS "pwal" for the whole process. */
static inline void load_pwal_vfs(void) {
    if (sqlite3_vfs_find("pwal")) return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) die("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) die("odd executable path %s", exe);
    snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "libpwalvfs.so");
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) die("open :memory:");
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, (int *)0);
    char *err = NULL;
    if (sqlite3_load_extension(db, exe, "sqlite3_pwalvfs_init", &err) != SQLITE_OK)
        die("loading %s: %s", exe, err ? err : "?");
    sqlite3_close(db);
    if (!sqlite3_vfs_find("pwal")) die("%s registered no VFS named pwal", exe);
}

static inline sqlite3 *open_db(const char *path, const char *vfs) {
    sqlite3 *db;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    if (rc != SQLITE_OK)
        die("open %s (vfs %s): %s", path, vfs ? vfs : "default",
            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(db, 60000);
    sqlite3_extended_result_codes(db, 1);
    return db;
}

static inline void exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        die("%s: %s", sql, err ? err : sqlite3_errmsg(db));
}

static inline void execf(sqlite3 *db, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    exec(db, sql);
    sqlite3_free(sql);
}

/* The first column of the first row of `sql`, as text (malloc'd; "" if none). */
static inline char *query(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die("prepare %s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    char *out;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        out = strdup(t ? (const char *)t : "");
    } else if (rc == SQLITE_DONE) {
        out = strdup("");
    } else {
        die("%s: %s", sql, sqlite3_errmsg(db));
        return NULL;
    }
    sqlite3_finalize(st);
    if (!out) die("out of memory");
    return out;
}

static inline long long query_int(sqlite3 *db, const char *sql) {
    char *t = query(db, sql);
    long long v = atoll(t);
    free(t);
    return v;
}

/* One counter of PRAGMA pwal_stats ("name=value ..."). */
static inline long long stat_of(sqlite3 *db, const char *name) {
    char *t = query(db, "PRAGMA pwal_stats");
    size_t n = strlen(name);
    for (char *p = t; (p = strstr(p, name)) != NULL; p++)
        if ((p == t || p[-1] == ' ') && p[n] == '=') {
            long long v = atoll(p + n + 1);
            free(t);
            return v;
        }
    die("PRAGMA pwal_stats has no %s: %s", name, t);
    return 0;
}

static inline void check_integrity(sqlite3 *db, const char *what) {
    char *t = query(db, "PRAGMA integrity_check");
    if (strcmp(t, "ok") != 0) die("%s: integrity_check: %s", what, t);
    free(t);
}

#endif
