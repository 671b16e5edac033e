/* The README's quick start, compiled by .ci/run against an installed pwal:
 *     cc quickstart.c $(pkg-config --cflags --libs pwal) -o quickstart
 * and through CMake's find_package(pwal) with examples-c/cmake/. */
#include <pwal.h>
#include <stdio.h>
#include <string.h>

static int32_t replay(void *user_data, const pwal_record *r) {
    (void)user_data; /* a real engine writes r->data to page r->page_number */
    printf("epoch %llu txn %llu page %u (%u bytes)\n", (unsigned long long)r->epoch,
           (unsigned long long)r->txn_id, r->page_number, r->len);
    return 0; /* 0: go on */
}

int main(void) {
    /* 1. Replay what was durable (a missing log is empty) and open the log
     *    (the directory app.db-pwal/), under one lock. The log is validated
     *    whole before replay() sees a page: on damage it sees none. */
    pwal_options opts;
    pwal_options_init(&opts); /* defaults: PWAL_SYNC_FULL, PWAL_MODE_AUTO */
    pwal_recovery_report report;
    memset(&report, 0, sizeof report);
    report.struct_size = sizeof report;
    pwal *log = NULL;
    pwal_status rs = pwal_recover_and_open("app.db", &opts, PWAL_RECOVER_VALIDATE_FIRST, replay,
                                           NULL, &report, &log);
    if (rs == PWAL_ERR_CORRUPT) {
        /* Nothing was replayed. To go on with what lies before the damage:
         * pwal_recover with PWAL_RECOVER_DURABLE_PREFIX, then pwal_repair. */
        fprintf(stderr, "damaged log: %s\n", report.damage);
        return 1;
    }
    if (rs != PWAL_OK) {
        fprintf(stderr, "recover and open: %s: %s\n", pwal_status_name(rs), pwal_last_error());
        return 1;
    }
    if (report.has_damage) /* a torn tail, or damage the checkpoint covers */
        printf("recovered past: %s\n", report.damage);

    /* 3. Commit a transaction of one page; from any number of threads. */
    unsigned char page[4096];
    memset(page, 'x', sizeof page);
    pwal_frame frame = {.page_number = 1, .db_size_if_commit = 1, .data = page, .len = sizeof page};
    pwal_txn txn = {.txn_id = 1, .commit_seq = 1, .frames = &frame, .frame_count = 1};
    uint64_t epoch = 0;
    pwal_status st = pwal_commit(log, &txn, PWAL_WAIT_FOREVER, &epoch);
    if (st != PWAL_OK) {
        fprintf(stderr, "commit: %s: %s\n", pwal_status_name(st), pwal_last_error());
        pwal_close(log);
        return 1;
    }
    printf("durable in epoch %llu\n", (unsigned long long)epoch);

    /* 4. Once the page is in the database file and synced: */
    pwal_checkpoint(log, epoch);
    return pwal_close(log) == PWAL_OK ? 0 : 1;
}
