/*
 * system_load.c: loads the pwal VFS into a SQLite built without
 * SQLITE_ENABLE_BATCH_ATOMIC_WRITE (the system's: Debian's libsqlite3),
 * where the VFS would see no batch and SQLite would commit every
 * transaction through its rollback journal, none through the log. The load
 * must fail, saying which compile option is missing, and register nothing.
 *
 *     system_load             (libpwalvfs.so beside this program)
 *
 * Built against the system's sqlite3.h and libsqlite3.so (make
 * sqlite-system, which needs libsqlite3-dev). Prints "ok system_load".
 */
#include "testutil.h"

#include <dlfcn.h>

int main(void) {
    g_prog = "system_load";
    Dl_info info;
    if (!dladdr((void *)sqlite3_libversion, &info) || !info.dli_fname)
        die("dladdr: where is sqlite3_libversion?");
    printf("SQLite %s from %s\n", sqlite3_libversion(), info.dli_fname);
    if (strstr(info.dli_fname, "examples-c/sqlite/build"))
        die("linked against the build's SQLite, not the system's");
    if (sqlite3_compileoption_used("ENABLE_BATCH_ATOMIC_WRITE"))
        die("this SQLite has SQLITE_ENABLE_BATCH_ATOMIC_WRITE: nothing to refuse");

    char ext[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", ext, sizeof ext - 1);
    if (n <= 0) die("readlink /proc/self/exe: %s", strerror(errno));
    ext[n] = 0;
    char *slash = strrchr(ext, '/');
    if (!slash) die("odd executable path %s", ext);
    snprintf(slash + 1, sizeof ext - (size_t)(slash + 1 - ext), "libpwalvfs.so");

    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) die("open :memory:");
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, (int *)0);
    char *err = NULL;
    int rc = sqlite3_load_extension(db, ext, "sqlite3_pwalvfs_init", &err);
    printf("load: %d (%s)\n", rc, err ? err : "no message");
    if (rc == SQLITE_OK) die("the VFS loaded into a SQLite without batch atomic write");
    if (!err || !strstr(err, "SQLITE_ENABLE_BATCH_ATOMIC_WRITE"))
        die("the refusal does not name SQLITE_ENABLE_BATCH_ATOMIC_WRITE: %s", err ? err : "(none)");
    if (sqlite3_vfs_find("pwal")) die("the refused load registered the VFS pwal");
    sqlite3_free(err);
    sqlite3_close(db);
    printf("ok system_load\n");
    return 0;
}
