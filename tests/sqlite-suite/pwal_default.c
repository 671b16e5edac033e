/*
 * Makes the pwal VFS (examples-c/sqlite/pwalvfs.c, compiled into the same
 * program with -DSQLITE_CORE) SQLite's default VFS, for SQLite's own TCL test
 * suite (scripts/sqlite-suite.sh).
 *
 * The testfixture's sqlite3.c is compiled with
 * -DSQLITE_EXTRA_INIT=pwal_suite_init, so sqlite3_initialize() calls this at
 * its end, every time it runs: also after a test's sqlite3_shutdown(), which
 * lets the unix VFS become the default again when SQLite re-initializes. The
 * pwal VFS itself is registered once (a second sqlite3_pwalvfs_init() finds
 * it) and made the default again here each time.
 *
 * Built with -DPWAL_SUITE_PLAIN, this is the other testfixture's version:
 * it does nothing, so the two testfixtures share every object but this one.
 */
#include <stddef.h>

#include "sqlite3ext.h"

int pwal_suite_init(const char *unused);

#ifdef PWAL_SUITE_PLAIN

int pwal_suite_init(const char *unused) {
    (void)unused;
    return SQLITE_OK;
}

#else

int sqlite3_pwalvfs_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);

int pwal_suite_init(const char *unused) {
    (void)unused;
    int rc = sqlite3_pwalvfs_init(NULL, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_OK_LOAD_PERMANENTLY) return rc;
    sqlite3_vfs *vfs = sqlite3_vfs_find("pwal");
    if (!vfs) return SQLITE_ERROR;
    return sqlite3_vfs_register(vfs, 1);
}

#endif
