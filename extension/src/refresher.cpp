// The refresher: a background worker per database that refreshes scheduled materialized views
// when due (mcp.schedule_refresh). Each refresh is one call of mcp._refresh_due() in its own
// transaction, so one view's failure or length never holds the others back for long.
#include "boundary.hpp"
#include "shared_memory.hpp"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace {

// Refreshes at most one due view; returns how many it refreshed (0 or 1), or -1 when nothing
// is scheduled (or pg_mcp is gone from this database): the refresher then exits, and
// mcp.schedule_refresh starts it again.
int refresh_one() {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "refreshing materialized views");
    int result = -1;
    int rc = SPI_execute(
        "SELECT CASE WHEN to_regproc('mcp._refresh_due') IS NULL THEN -1"
        " WHEN NOT EXISTS (SELECT FROM mcp.refresh_schedule) THEN -1"
        " ELSE mcp._refresh_due() END",
        false, 1);
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool isnull;
        result =
            DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, NULL);
    return result;
}

// The registry of running refreshers, in shared memory (shared_memory.hpp): one per database,
// claimed by the first refresher to start and released as it exits. Unlike an advisory lock,
// nothing a database user does can take a database's entry.
struct RefresherEntry {
    Oid dbid;  // InvalidOid: free
    pid_t pid;
};
struct RefresherRegistry {
    LWLock *lock;
    int nentries;
    RefresherEntry entries[FLEXIBLE_ARRAY_MEMBER];
};
RefresherRegistry *registry = NULL;

void release_entry(int, Datum) {
    if (registry == NULL) return;
    LWLockAcquire(registry->lock, LW_EXCLUSIVE);
    for (int i = 0; i < registry->nentries; i++)
        if (registry->entries[i].pid == MyProcPid)
            registry->entries[i] = RefresherEntry{InvalidOid, 0};
    LWLockRelease(registry->lock);
}

// Claims this database's entry; false when another refresher holds it (or none is free).
bool only_refresher() {
    if (registry == NULL) return false;
    bool claimed = false;
    LWLockAcquire(registry->lock, LW_EXCLUSIVE);
    int free_entry = -1;
    bool taken = false;
    for (int i = 0; i < registry->nentries; i++) {
        if (registry->entries[i].dbid == MyDatabaseId) taken = true;
        if (registry->entries[i].dbid == InvalidOid && free_entry < 0) free_entry = i;
    }
    if (!taken && free_entry >= 0) {
        registry->entries[free_entry] = RefresherEntry{MyDatabaseId, MyProcPid};
        claimed = true;
    }
    LWLockRelease(registry->lock);
    static bool release_registered = false;
    if (claimed && !release_registered) {
        before_shmem_exit(release_entry, 0);
        release_registered = true;
    }
    return claimed;
}

}  // namespace

extern "C" {
PGDLLEXPORT void pg_mcp_refresher_main(Datum main_arg);
}

extern "C" void pg_mcp_refresher_main(Datum main_arg) {
    Oid dbid = DatumGetObjectId(main_arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    // The transaction that scheduled a view started this worker before it committed: until it
    // ends, its schedule is invisible here, and the worker would find nothing to do and exit.
    TransactionId scheduler = InvalidTransactionId;
    memcpy(&scheduler, MyBgworkerEntry->bgw_extra, sizeof scheduler);
    while (TransactionIdIsValid(scheduler) && TransactionIdIsInProgress(scheduler)) {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    if (!only_refresher()) proc_exit(0);
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        int refreshed;
        do {
            refreshed = refresh_one();
        } while (refreshed > 0);
        if (refreshed < 0) {
            // Nothing to refresh: no connection kept open. The entry goes first and the schedule
            // is read once more, so that a refresher started meanwhile (which gave way to this
            // one) is not lost: either it holds the entry now, or this one carries on.
            release_entry(0, 0);
            if (refresh_one() < 0 || !only_refresher()) proc_exit(0);
            continue;
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

// mcp._start_refresher(): registers this database's refresher (the caller checks it is not
// running already).
PG_MCP_FUNCTION(pg_mcp_start_refresher) {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 10;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_mcp");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "pg_mcp_refresher_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "pg_mcp refresher for database %u", MyDatabaseId);
    snprintf(worker.bgw_type, BGW_MAXLEN, "pg_mcp refresher");
    worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
    worker.bgw_notify_pid = 0;
    // The scheduling transaction, which the worker waits for (see pg_mcp_refresher_main).
    TransactionId scheduler = GetTopTransactionIdIfAny();
    static_assert(sizeof scheduler <= BGW_EXTRALEN);
    memcpy(worker.bgw_extra, &scheduler, sizeof scheduler);
    if (!RegisterDynamicBackgroundWorker(&worker, NULL))
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("cannot start the pg_mcp refresher: no background worker slot is "
                               "free"),
                        errhint("Raise max_worker_processes.")));
    PG_RETURN_BOOL(true);
}

namespace pg_mcp {

// One entry per possible background worker: a refresher is one.
Size refresher_shmem_size(void) {
    return add_size(offsetof(RefresherRegistry, entries),
                    mul_size(sizeof(RefresherEntry), max_worker_processes));
}

void refresher_shmem_init(LWLock *lock) {
    bool found;
    registry =
        (RefresherRegistry *)ShmemInitStruct("pg_mcp refreshers", refresher_shmem_size(), &found);
    if (found) return;
    registry->lock = lock;
    registry->nentries = max_worker_processes;
    for (int i = 0; i < registry->nentries; i++)
        registry->entries[i] = RefresherEntry{InvalidOid, 0};
}

// From the audit writer as it starts (the first tool call after a server restart starts it):
// brings this database's refresher back if views are scheduled. Never raises: a failure is
// logged and the writer goes on.
void start_refresher_if_scheduled() {
    MemoryContext context = CurrentMemoryContext;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PG_TRY();
    {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        PushActiveSnapshot(GetTransactionSnapshot());
        int rc = SPI_execute("SELECT pg_catalog.to_regclass('mcp.refresh_schedule') IS NOT NULL",
                             true, 1);
        bool installed = false;
        if (rc == SPI_OK_SELECT && SPI_processed == 1) {
            bool isnull;
            installed = DatumGetBool(
                SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        }
        if (installed)
            (void)SPI_execute(
                "SELECT mcp.start_refresher() WHERE EXISTS (SELECT FROM mcp.refresh_schedule)",
                false, 1);
        SPI_finish();
        PopActiveSnapshot();
        CommitTransactionCommand();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        AbortCurrentTransaction();
        ereport(WARNING, (errmsg("pg_mcp could not start the refresher: %s", error->message)));
        FreeErrorData(error);
    }
    PG_END_TRY();
}

}  // namespace pg_mcp
