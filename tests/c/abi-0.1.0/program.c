/* A program written and built against the 0.1.0 header (tests/c/abi-0.1.0/
 * pwal.h, the header as 0.1.0 shipped it, kept unchanged) and run against
 * today's libpwal.so: the 0.1.0 struct sizes and functions keep working.
 * Usage: program DIR; exits 0 when every check holds. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pwal.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "abi-0.1.0: %s:%d: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, pwal_last_error());                             \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static unsigned seen;

static int32_t count(void *user, const pwal_record *r) {
    (void)user;
    unsigned char want = (unsigned char)r->txn_id;
    for (uint32_t i = 0; i < r->len; i++)
        if (((const unsigned char *)r->data)[i] != want) return 1;
    seen++;
    return 0;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    char db[4096];
    snprintf(db, sizeof db, "%s/old.db", argv[1]);
    CHECK(sizeof(pwal_options) == 48 && sizeof(pwal_stats) == 1016 &&
          sizeof(pwal_recovery_report) == 344);
    /* The library is newer than this header, with the same major version. */
    CHECK(strncmp(pwal_version(), "0.", 2) == 0);

    pwal_options o;
    memset(&o, 0xab, sizeof o);
    pwal_options_init(&o);
    CHECK(o.struct_size == sizeof o);
    o.ignore_env = 1;
    pwal *log = NULL;
    CHECK(pwal_open(db, &o, &log) == PWAL_OK && log != NULL);
    unsigned char page[4096];
    uint64_t last = 0;
    for (uint64_t id = 1; id <= 20; id++) {
        memset(page, (int)id, sizeof page);
        pwal_frame f = {.page_number = (uint32_t)id, .db_size_if_commit = 20, .data = page,
                        .len = sizeof page};
        pwal_txn t = {.txn_id = id, .commit_seq = id, .frames = &f, .frame_count = 1};
        CHECK(pwal_commit(log, &t, 60000, &last) == PWAL_OK);
    }
    pwal_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK(pwal_get_stats(log, &st) == PWAL_OK);
    CHECK(st.struct_size == sizeof st && st.durable_epoch >= last && st.transactions == 20);
    CHECK(pwal_flush(log, 60000) == PWAL_OK);
    CHECK(pwal_close(log) == PWAL_OK);

    pwal_recovery_report rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    CHECK(pwal_recover(db, 0, count, NULL, &rep) == PWAL_OK);
    CHECK(seen == 20 && rep.struct_size == sizeof rep && rep.transactions == 20);
    CHECK(rep.has_damage == 0 && rep.records == 20);
    CHECK(strcmp(pwal_status_name(PWAL_ERR_CORRUPT), "PWAL_ERR_CORRUPT") == 0);
    printf("abi-0.1.0: a 0.1.0 program committed and recovered 20 transactions\n");
    return 0;
}
