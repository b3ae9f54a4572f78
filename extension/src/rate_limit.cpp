#include "rate_limit.hpp"

#include "boundary.hpp"
#include "shared_memory.hpp"

extern "C" {
#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
}

namespace pg_mcp {

namespace {

int max_entries = 1024;

struct CounterKey {
    Oid dbid;
    int32 limit_id;
};

struct Counter {
    CounterKey key;
    TimestampTz window_start;
    int32 calls;
    int32 concurrent;
};

HTAB *counters = NULL;
LWLock *counters_lock = NULL;

// Limits this backend holds a concurrency slot of, until the call ends, with the transaction
// nesting level that took each.
constexpr int kMaxHeld = 64;
CounterKey held[kMaxHeld];
int held_level[kMaxHeld];
int nheld = 0;
bool callbacks_registered = false;

// Gives back the slots taken at nesting level min_level or deeper.
void release_from(int min_level) {
    if (nheld == 0 || counters == NULL) return;
    LWLockAcquire(counters_lock, LW_EXCLUSIVE);
    int kept = 0;
    for (int i = 0; i < nheld; i++) {
        if (held_level[i] < min_level) {
            held[kept] = held[i];
            held_level[kept++] = held_level[i];
            continue;
        }
        Counter *c = (Counter *)hash_search(counters, &held[i], HASH_FIND, NULL);
        if (c != NULL && c->concurrent > 0) c->concurrent--;
    }
    LWLockRelease(counters_lock);
    nheld = kept;
}

void release_all(void) {
    release_from(0);
}

void on_xact(XactEvent event, void *) {
    if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) release_all();
}

// A slot taken inside a subtransaction that aborts is given back then (the call it counted
// will not finish normally), not only when the whole transaction ends.
void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB) release_from(GetCurrentTransactionNestLevel());
}

void on_exit(int, Datum) {
    release_all();
}

}  // namespace

void define_rate_limit_settings(void) {
    DefineCustomIntVariable("pg_mcp.rate_limit_entries",
                            "Rate limits that can be counted at once (across databases).", NULL,
                            &max_entries, 1024, 16, 1000000, PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

Size rate_limit_shmem_size(void) {
    return hash_estimate_size(max_entries, sizeof(Counter));
}

void rate_limit_shmem_init(LWLock *lock) {
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(CounterKey);
    ctl.entrysize = sizeof(Counter);
    counters =
        ShmemInitHash("pg_mcp rate limits", max_entries, max_entries, &ctl, HASH_ELEM | HASH_BLOBS);
    counters_lock = lock;
}

RateDecision acquire_rate_limits(const RateLimit *limits, int nlimits) {
    RateDecision decision = {true, 0, NULL};
    if (nlimits == 0) return decision;
    if (counters == NULL)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("rate limits need pg_mcp in shared_preload_libraries")));
    if (!callbacks_registered) {
        RegisterXactCallback(on_xact, NULL);
        RegisterSubXactCallback(on_subxact, NULL);
        before_shmem_exit(on_exit, 0);
        callbacks_registered = true;
    }
    if (nlimits + nheld > kMaxHeld) {  // never count a call against only some of its limits
        decision.allowed = false;
        decision.retry_after_ms = 1000;
        decision.reason = psprintf(
            "%d rate limits apply, more than the %d a call can be counted "
            "against",
            nlimits, kMaxHeld - nheld);
        return decision;
    }
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(counters_lock, LW_EXCLUSIVE);
    Counter *found[kMaxHeld];
    int n = nlimits;
    for (int i = 0; i < n && decision.allowed; i++) {
        CounterKey key = {MyDatabaseId, limits[i].id};
        bool exists;
        Counter *c = (Counter *)hash_search(counters, &key, HASH_ENTER_NULL, &exists);
        if (c == NULL) {
            LWLockRelease(counters_lock);
            ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                            errmsg("too many rate limits in use"),
                            errhint("Raise pg_mcp.rate_limit_entries.")));
        }
        if (!exists) {
            c->window_start = now;
            c->calls = 0;
            c->concurrent = 0;
        }
        if (limits[i].window_ms > 0 &&
            TimestampDifferenceExceeds(c->window_start, now,
                                       (int)Min(limits[i].window_ms, (int64)PG_INT32_MAX))) {
            c->window_start = now;
            c->calls = 0;
        }
        found[i] = c;
        if (limits[i].max_calls > 0 && c->calls >= limits[i].max_calls) {
            decision.allowed = false;
            TimestampTz reopens = TimestampTzPlusMilliseconds(c->window_start, limits[i].window_ms);
            decision.retry_after_ms = Max(TimestampDifferenceMilliseconds(now, reopens), 1);
            decision.reason = psprintf("at most %d calls per %s for %s", limits[i].max_calls,
                                       limits[i].window_ms % 1000 == 0
                                           ? psprintf(INT64_FORMAT " s", limits[i].window_ms / 1000)
                                           : psprintf(INT64_FORMAT " ms", limits[i].window_ms),
                                       limits[i].describe);
        } else if (limits[i].max_concurrent > 0 && c->concurrent >= limits[i].max_concurrent) {
            decision.allowed = false;
            decision.retry_after_ms = 100;
            decision.reason = psprintf("at most %d concurrent calls for %s",
                                       limits[i].max_concurrent, limits[i].describe);
        }
    }
    if (decision.allowed) {
        for (int i = 0; i < n; i++) {
            found[i]->calls++;
            found[i]->concurrent++;
            held_level[nheld] = GetCurrentTransactionNestLevel();
            held[nheld++] = found[i]->key;
        }
    }
    LWLockRelease(counters_lock);
    return decision;
}

void release_rate_limits(void) {
    release_all();
}

}  // namespace pg_mcp

// mcp._rate_limit_counters(): the counters of the current database (for mcp.rate_limit_usage).
PG_MCP_FUNCTION(pg_mcp_rate_limit_counters) {
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);
    if (pg_mcp::counters == NULL) return (Datum)0;
    LWLockAcquire(pg_mcp::counters_lock, LW_SHARED);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, pg_mcp::counters);
    pg_mcp::Counter *c;
    while ((c = (pg_mcp::Counter *)hash_seq_search(&status)) != NULL) {
        if (c->key.dbid != MyDatabaseId) continue;
        Datum values[4] = {Int32GetDatum(c->key.limit_id), TimestampTzGetDatum(c->window_start),
                           Int32GetDatum(c->calls), Int32GetDatum(c->concurrent)};
        bool nulls[4] = {false, false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    LWLockRelease(pg_mcp::counters_lock);
    return (Datum)0;
}
