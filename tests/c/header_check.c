/*
 * Compiled (not run) by tests/header_compiles.rs as C99, C11, C++11 and C++17
 * with -Wall -Wextra -Wpedantic -Werror: the header must be clean in all of
 * them, and the promises below hold at compile time.
 */
#include "pwal.h"
#include "pwal.h" /* the include guard works */

#include <stdint.h>

#define PWAL_STATIC_ASSERT(cond, name) typedef char name[(cond) ? 1 : -1]

PWAL_STATIC_ASSERT(PWAL_OK == 0, ok_is_zero);
PWAL_STATIC_ASSERT(PWAL_WAIT_FOREVER == UINT32_MAX, wait_forever_is_uint32_max);
PWAL_STATIC_ASSERT(PWAL_MAX_PAGE_BYTES == 65536, max_page_bytes);
PWAL_STATIC_ASSERT(PWAL_SYNC_FULL == 0 && PWAL_MODE_AUTO == 0, defaults_are_zero);
PWAL_STATIC_ASSERT(sizeof(pwal_status) == 4, status_is_32_bits);
PWAL_STATIC_ASSERT(sizeof(pwal_frame) == 24 && sizeof(pwal_txn) == 32, frame_and_txn_layout);
PWAL_STATIC_ASSERT(sizeof(pwal_options) == 96, options_layout);
PWAL_STATIC_ASSERT(sizeof(pwal_archive_status) == 304, archive_status_layout);
PWAL_STATIC_ASSERT(sizeof(pwal_stats) == 1024 + 4 * 8 * PWAL_STATS_LANES, stats_layout);
PWAL_STATIC_ASSERT(PWAL_VERSION_MAJOR >= 0 && PWAL_VERSION_MINOR >= 0 && PWAL_VERSION_PATCH >= 0,
                   version_macros);

static int32_t on_record(void *user_data, const pwal_record *record) {
    (void)user_data;
    return record->len == 0;
}

int pwal_header_check(void);
int pwal_header_check(void) {
    pwal_options options;
    pwal *log = 0;
    pwal_stats stats;
    pwal_recovery_report report;
    pwal_frame frame;
    pwal_txn txn;
    uint64_t epoch = 0;
    static const unsigned char page[512] = {0};
    pwal_status st;

    pwal_options_init(&options);
    options.sync = PWAL_SYNC_NORMAL;
    options.mode = PWAL_MODE_CONSERVATIVE;
    st = pwal_open("x.db", &options, &log);
    frame.page_number = 1;
    frame.db_size_if_commit = 1;
    frame.data = page;
    frame.len = sizeof page;
    txn.txn_id = 1;
    txn.commit_seq = 1;
    txn.frames = &frame;
    txn.frame_count = 1;
    txn.txn_epoch = 0;
    if (st == PWAL_OK) st = pwal_submit(log, &txn, &epoch);
    if (st == PWAL_OK) st = pwal_wait_durable(log, epoch, PWAL_WAIT_FOREVER);
    if (st == PWAL_OK) st = pwal_commit(log, &txn, 1000, &epoch);
    if (st == PWAL_OK) st = pwal_checkpoint(log, epoch);
    stats.struct_size = sizeof stats;
    if (st == PWAL_OK) st = pwal_get_stats(log, &stats);
    if (st == PWAL_OK) st = pwal_close(log);
    report.struct_size = sizeof report;
    if (st == PWAL_OK)
        st = pwal_recover("x.db", PWAL_RECOVER_DURABLE_PREFIX, on_record, 0, &report);
    return st == PWAL_OK && pwal_status_name(st)[0] == 'P' && pwal_last_error() != 0 &&
           pwal_version() != 0 &&
           pwal_fallback_reason_name(PWAL_FALLBACK_CERTIFICATE_CHECKSUM_MISMATCH) != 0 &&
           pwal_mode_name(PWAL_MODE_AUTO)[0] == 'a' && pwal_sync_name(PWAL_SYNC_OFF)[0] == 'o' &&
           stats.lane_backlog_bytes[PWAL_STATS_LANES - 1] == 0;
}
