#include "audit_queue.hpp"

#include "rate_limit.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "fmgr.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace pg_mcp {

namespace {

// Settings.
int audit_mode_setting = 0;  // AuditMode
int queue_size_kb = 1024;
int database_slots = 4;
int wait_timeout_ms = 10000;
bool writer_paused = false;
int writer_idle_ms = 2000;

const struct config_enum_entry kAuditModes[] = {{"durable", (int)AuditMode::Durable, false},
                                                {"fast", (int)AuditMode::Fast, false},
                                                {NULL, 0, false}};

// One database's queue: a ring of length-prefixed JSON records.
struct AuditSlot {
    Oid dbid;  // InvalidOid: free
    bool writer_registered;
    pid_t writer_pid;
    Latch *writer_latch;
    uint64 next_seq;           // sequence of the next record (records are numbered from 1)
    uint64 committed_seq;      // last record committed (visible; durable once WAL is flushed to
                               // committed_lsn)
    int64 committed_id;        // its mcp.audit_log id
    XLogRecPtr committed_lsn;  // end of that batch's commit record
    uint64 head;               // bytes ever written
    uint64 tail;               // bytes ever committed (consumed)
    ConditionVariable committed_cv;
    ConditionVariable space_cv;
};

struct AuditShared {
    LWLock *lock;  // allocation of slots and every slot's fields
    int nslots;
    Size ring_size;
    AuditSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

AuditShared *shared = NULL;
shmem_request_hook_type previous_request_hook = NULL;
shmem_startup_hook_type previous_startup_hook = NULL;

Size ring_size() {
    return (Size)queue_size_kb * 1024;
}

Size shared_size() {
    return add_size(offsetof(AuditShared, slots),
                    add_size(mul_size(sizeof(AuditSlot), database_slots),
                             mul_size(ring_size(), database_slots)));
}

char *ring_of(int slot) {
    char *rings = (char *)&shared->slots[shared->nslots];
    return rings + (Size)slot * shared->ring_size;
}

void ring_copy_in(int slot, uint64 at, const char *data, Size len) {
    char *ring = ring_of(slot);
    for (Size i = 0; i < len; i++) ring[(at + i) % shared->ring_size] = data[i];
}

void ring_copy_out(int slot, uint64 at, char *data, Size len) {
    char *ring = ring_of(slot);
    for (Size i = 0; i < len; i++) data[i] = ring[(at + i) % shared->ring_size];
}

void request_shmem(void) {
    if (previous_request_hook) previous_request_hook();
    RequestAddinShmemSpace(add_size(shared_size(), rate_limit_shmem_size()));
    RequestNamedLWLockTranche("pg_mcp", 2);  // the audit queues; the rate-limit counters
}

void startup_shmem(void) {
    if (previous_startup_hook) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = (AuditShared *)ShmemInitStruct("pg_mcp audit queue", shared_size(), &found);
    if (!found) {
        shared->lock = &(GetNamedLWLockTranche("pg_mcp"))->lock;
        shared->nslots = database_slots;
        shared->ring_size = ring_size();
        for (int i = 0; i < shared->nslots; i++) {
            AuditSlot *s = &shared->slots[i];
            memset(s, 0, sizeof *s);
            s->next_seq = 1;
            ConditionVariableInit(&s->committed_cv);
            ConditionVariableInit(&s->space_cv);
        }
    }
    rate_limit_shmem_init();
    LWLockRelease(AddinShmemInitLock);
}

// The slot of a database (allocating one), under the lock. -1 when all are taken.
int slot_for(Oid dbid) {
    int free_slot = -1;
    for (int i = 0; i < shared->nslots; i++) {
        if (shared->slots[i].dbid == dbid) return i;
        // A slot whose queue is empty and has no writer can serve another database.
        AuditSlot *s = &shared->slots[i];
        if (free_slot < 0 &&
            (s->dbid == InvalidOid || (s->head == s->tail && !s->writer_registered)))
            free_slot = i;
    }
    if (free_slot >= 0) {
        AuditSlot *s = &shared->slots[free_slot];
        uint64 seq = s->next_seq;
        s->dbid = dbid;
        s->head = s->tail = 0;
        s->next_seq = seq;  // sequences stay increasing across reuse
        s->committed_seq = seq - 1;
        s->committed_id = 0;
        s->committed_lsn = InvalidXLogRecPtr;
    }
    return free_slot;
}

void start_writer(Oid dbid) {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 1;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_mcp");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "pg_mcp_audit_writer_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "pg_mcp audit writer for database %u", dbid);
    snprintf(worker.bgw_type, BGW_MAXLEN, "pg_mcp audit writer");
    worker.bgw_main_arg = ObjectIdGetDatum(dbid);
    worker.bgw_notify_pid = 0;
    if (!RegisterDynamicBackgroundWorker(&worker, NULL)) {
        LWLockAcquire(shared->lock, LW_EXCLUSIVE);
        int slot = slot_for(dbid);
        if (slot >= 0) shared->slots[slot].writer_registered = false;
        LWLockRelease(shared->lock);
        ereport(ERROR,
                (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                 errmsg("cannot start the pg_mcp audit writer: no background worker slot is free"),
                 errhint("Raise max_worker_processes; the call was not made.")));
    }
}

}  // namespace

void define_audit_settings(void) {
    DefineCustomEnumVariable(
        "pg_mcp.audit_mode", "When call_tool returns relative to its audit row: durable or fast.",
        "durable: after the row is committed and flushed (default). fast: once the record is "
        "queued in shared memory; a server crash before the writer commits loses it.",
        &audit_mode_setting, (int)AuditMode::Durable, kAuditModes, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomIntVariable(
        "pg_mcp.audit_wait_timeout",
        "Longest wait for room in the audit queue, or for a durable row's commit.",
        "After it the call fails: no result is returned without its audit record.",
        &wait_timeout_ms, 10000, 10, 3600000, PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
    DefineCustomBoolVariable("pg_mcp.audit_writer_paused",
                             "Stops the audit writer from taking records (maintenance and tests).",
                             "Records wait in the queue; durable calls wait and then fail.",
                             &writer_paused, false, PGC_SIGHUP, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("pg_mcp.audit_writer_idle_timeout",
                            "How long an audit writer with nothing to write stays connected.", NULL,
                            &writer_idle_ms, 2000, 100, 3600000, PGC_SIGHUP, GUC_UNIT_MS, NULL,
                            NULL, NULL);
    DefineCustomIntVariable(
        "pg_mcp.audit_queue_size", "Size of each database's audit queue in shared memory.", NULL,
        &queue_size_kb, 1024, 64, 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
    DefineCustomIntVariable("pg_mcp.audit_databases",
                            "Databases that can queue audit records at the same time.", NULL,
                            &database_slots, 4, 1, 1000, PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

void install_audit_hooks(void) {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shmem;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = startup_shmem;
}

bool audit_queue_available(void) {
    return shared != NULL;
}

int64 queue_audit_record(const char *record_json) {
    if (shared == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("pg_mcp is not loaded through shared_preload_libraries"),
                 errhint("Add pg_mcp to shared_preload_libraries in postgresql.conf and restart "
                         "PostgreSQL: tool calls are audited through shared memory.")));
    if (RecoveryInProgress()) {
        // No writer on a hot standby: the record goes to the server log, as pgaudit's would.
        ereport(LOG, (errmsg("pg_mcp audit (standby): %s", record_json)));
        return 0;
    }
    Size len = strlen(record_json);
    Size need = len + sizeof(uint32);
    if (need > shared->ring_size / 2)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("audit record of %zu bytes exceeds half the audit queue", len),
                        errhint("Raise pg_mcp.audit_queue_size.")));

    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
    bool start = false;
    uint64 seq = 0;
    int slot;
    for (;;) {
        LWLockAcquire(shared->lock, LW_EXCLUSIVE);
        slot = slot_for(MyDatabaseId);
        if (slot >= 0) {
            AuditSlot *s = &shared->slots[slot];
            if (shared->ring_size - (s->head - s->tail) >= need) {
                uint32 header = (uint32)len;
                ring_copy_in(slot, s->head, (const char *)&header, sizeof header);
                ring_copy_in(slot, s->head + sizeof header, record_json, len);
                s->head += need;
                seq = s->next_seq++;
                if (!s->writer_registered) {
                    s->writer_registered = true;
                    start = true;
                }
                Latch *latch = s->writer_latch;
                LWLockRelease(shared->lock);
                if (latch != NULL) SetLatch(latch);
                break;
            }
        }
        LWLockRelease(shared->lock);
        // A full queue (or no free slot): wait for the writer, bounded, then refuse the call.
        long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (remaining <= 0) {
            ConditionVariableCancelSleep();
            ereport(
                ERROR,
                (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                 errmsg(slot < 0 ? "no audit queue is free for this database"
                                 : "the audit queue is full"),
                 errdetail("Waited %d ms; the call's result is withheld because its audit record "
                           "could not be queued.",
                           wait_timeout_ms),
                 errhint("Retry shortly. If this persists, check that the pg_mcp audit writer is "
                         "running, or raise pg_mcp.audit_queue_size.")));
        }
        if (slot >= 0)
            ConditionVariableTimedSleep(&shared->slots[slot].space_cv, Min(remaining, 100),
                                        PG_WAIT_EXTENSION);
        else
            pg_usleep(10000L);
        CHECK_FOR_INTERRUPTS();
    }
    ConditionVariableCancelSleep();
    if (start) start_writer(MyDatabaseId);
    if ((AuditMode)audit_mode_setting == AuditMode::Fast) return 0;

    // Durable: wait until the writer has committed this record, then flush the WAL up to that
    // commit here, in the caller. The writer commits without waiting for the flush, so it goes
    // on to the next batch at once, and concurrent callers share flushes (XLogFlush writes
    // everything inserted so far, and a caller finding its LSN already flushed returns at once).
    AuditSlot *s = &shared->slots[slot];
    for (;;) {
        LWLockAcquire(shared->lock, LW_SHARED);
        bool done = s->dbid == MyDatabaseId && s->committed_seq >= seq;
        int64 id = done ? s->committed_id - (int64)(s->committed_seq - seq) : 0;
        XLogRecPtr lsn = s->committed_lsn;
        LWLockRelease(shared->lock);
        if (done) {
            ConditionVariableCancelSleep();
            XLogFlush(lsn);
            SyncRepWaitForLSN(lsn, true);  // synchronous standbys, as the caller's commit would
            return id;
        }
        long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (remaining <= 0) {
            ConditionVariableCancelSleep();
            ereport(
                ERROR,
                (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                 errmsg("the audit record was not confirmed within %d ms", wait_timeout_ms),
                 errdetail("The record is queued and will be written when the audit writer catches "
                           "up; the call's result is withheld until then."),
                 errhint("Check that the pg_mcp audit writer is running (pg_stat_activity, "
                         "backend_type 'pg_mcp audit writer').")));
        }
        ConditionVariableTimedSleep(&s->committed_cv, Min(remaining, 100), PG_WAIT_EXTENSION);
        CHECK_FOR_INTERRUPTS();
    }
}

namespace {

int writer_slot = -1;

void writer_detach(int, Datum) {
    if (shared == NULL || writer_slot < 0) return;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    AuditSlot *s = &shared->slots[writer_slot];
    if (s->writer_pid == MyProcPid) {
        s->writer_pid = 0;
        s->writer_latch = NULL;
    }
    LWLockRelease(shared->lock);
}

// The chain's end, known to this writer (the only writer): read once, then carried along.
bool chain_loaded = false;
int64 chain_next_id;
bytea *chain_prev = NULL;  // in TopMemoryContext; NULL before the first row

void load_chain_end(void) {
    int rc =
        SPI_execute("SELECT id + 1, row_hash FROM mcp.audit_log ORDER BY id DESC LIMIT 1", true, 1);
    if (rc == SPI_OK_SELECT && SPI_processed == 0)
        rc = SPI_execute(
            "SELECT last_purged_id + 1, anchor_hash FROM mcp.audit_anchors"
            " ORDER BY last_purged_id DESC LIMIT 1",
            true, 1);
    if (rc != SPI_OK_SELECT) elog(ERROR, "reading the audit chain's end failed");
    chain_next_id = 1;
    chain_prev = NULL;
    if (SPI_processed == 1) {
        bool isnull;
        chain_next_id =
            DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        Datum hash = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        if (!isnull) {
            MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
            chain_prev = DatumGetByteaPCopy(hash);
            MemoryContextSwitchTo(old);
        }
    }
    chain_loaded = true;
}

// Appends a batch (a JSON array of records) as rows with consecutive ids, chained: each
// row_hash = sha256(prev_hash || canonical content), the content being the row's jsonb text
// without the two hashes, in UTC (what mcp._audit_row_hash computes when verifying). Three
// statements per batch, whatever its size. Returns the last id.
// The writer's two statements, prepared once per writer process (the plan cache revalidates
// them if mcp.audit_log changes).
SPIPlanPtr content_plan = NULL;
SPIPlanPtr insert_plan = NULL;

SPIPlanPtr prepare_kept(const char *sql, int nargs, Oid *types) {
    // Generic: a custom plan would fold $1::jsonb at planning time, parsing the batch twice.
    SPIPlanPtr plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);
    if (plan == NULL)
        elog(ERROR, "preparing an audit writer statement failed: %s",
             SPI_result_code_string(SPI_result));
    if (SPI_keepplan(plan) != 0) elog(ERROR, "keeping an audit writer plan failed");
    return plan;
}

int64 append_records(const char *records_json, int count) {
    if (!chain_loaded) load_chain_end();
    Oid types[4] = {TEXTOID, INT8OID, BYTEAARRAYOID, BYTEAARRAYOID};
    Datum values[4] = {CStringGetTextDatum(records_json), Int64GetDatum(chain_next_id), 0, 0};
    if (content_plan == NULL)
        content_plan = prepare_kept(
            "SELECT (to_jsonb(r) - 'row_hash' - 'prev_hash')::text"
            "  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e,"
            "       LATERAL jsonb_populate_record(NULL::mcp.audit_log,"
            "                                     e.value || jsonb_build_object('id', $2 + "
            "e.ordinality - 1)) AS r"
            " ORDER BY e.ordinality",
            2, types);
    int rc = SPI_execute_plan(content_plan, values, NULL, true, 0);
    if (rc != SPI_OK_SELECT || (int)SPI_processed != count)
        elog(ERROR, "preparing audit rows failed");
    Datum *prev = (Datum *)palloc(sizeof(Datum) * count);
    Datum *hashes = (Datum *)palloc(sizeof(Datum) * count);
    bool *prev_null = (bool *)palloc0(sizeof(bool) * count);
    bytea *last = chain_prev;
    for (int i = 0; i < count; i++) {
        char *content = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
        pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
        uint8 digest[PG_SHA256_DIGEST_LENGTH];
        if (pg_cryptohash_init(ctx) < 0 ||
            (last != NULL &&
             pg_cryptohash_update(ctx, (uint8 *)VARDATA_ANY(last), VARSIZE_ANY_EXHDR(last)) < 0) ||
            pg_cryptohash_update(ctx, (uint8 *)content, strlen(content)) < 0 ||
            pg_cryptohash_final(ctx, digest, sizeof digest) < 0)
            elog(ERROR, "sha256 failed: %s", pg_cryptohash_error(ctx));
        pg_cryptohash_free(ctx);
        bytea *hash = (bytea *)palloc(VARHDRSZ + sizeof digest);
        SET_VARSIZE(hash, VARHDRSZ + sizeof digest);
        memcpy(VARDATA(hash), digest, sizeof digest);
        prev_null[i] = last == NULL;
        prev[i] = last == NULL ? (Datum)0 : PointerGetDatum(last);
        hashes[i] = PointerGetDatum(hash);
        last = hash;
    }
    int dims[1] = {count};
    int lbs[1] = {1};
    values[2] = PointerGetDatum(
        construct_md_array(prev, prev_null, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
    values[3] = PointerGetDatum(construct_array(hashes, count, BYTEAOID, -1, false, TYPALIGN_INT));
    if (insert_plan == NULL)
        insert_plan = prepare_kept(
            "INSERT INTO mcp.audit_log"
            " SELECT r.* FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e,"
            "      LATERAL jsonb_populate_record(NULL::mcp.audit_log,"
            "              e.value || jsonb_build_object('id', $2 + e.ordinality - 1,"
            "                                            'prev_hash', ($3)[e.ordinality],"
            "                                            'row_hash', ($4)[e.ordinality])) AS r",
            4, types);
    rc = SPI_execute_plan(insert_plan, values, NULL, false, 0);
    if (rc != SPI_OK_INSERT || (int)SPI_processed != count)
        elog(ERROR, "inserting audit rows failed");
    // Carried to the next batch only now that the rows exist (the transaction may still fail,
    // but then this process exits and a new writer reads the chain's end again).
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    chain_prev = (bytea *)pg_detoast_datum_copy((struct varlena *)last);
    MemoryContextSwitchTo(old);
    chain_next_id += count;
    return chain_next_id - 1;
}

// Writes one batch: the records between tail and head (up to a limit) in one transaction.
// Returns false when there was nothing to write.
bool write_batch(Oid dbid) {
    StringInfoData batch;
    uint64 end, last_seq;
    int count = 0;
    LWLockAcquire(shared->lock, LW_SHARED);
    AuditSlot *s = &shared->slots[writer_slot];
    uint64 at = s->tail, head = s->head;
    uint64 first_seq = s->committed_seq + 1;
    LWLockRelease(shared->lock);
    if (at == head) return false;

    initStringInfo(&batch);
    appendStringInfoChar(&batch, '[');
    while (at < head && batch.len < 4 * 1024 * 1024 && count < 10000) {
        uint32 len;
        ring_copy_out(writer_slot, at, (char *)&len, sizeof len);
        enlargeStringInfo(&batch, (int)len + 2);
        if (count > 0) appendStringInfoChar(&batch, ',');
        ring_copy_out(writer_slot, at + sizeof len, batch.data + batch.len, len);
        batch.len += (int)len;
        batch.data[batch.len] = '\0';
        at += sizeof len + len;
        count++;
    }
    appendStringInfoChar(&batch, ']');
    end = at;
    last_seq = first_seq + count - 1;

    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_mcp: writing audit records");
    int64 last_id = 0;
    if (!OidIsValid(get_extension_oid("pg_mcp", true))) {
        ereport(LOG, (errmsg("pg_mcp audit writer: extension dropped in database %u; %d queued "
                             "records discarded",
                             dbid, count)));
    } else {
        last_id = append_records(batch.data, count);
    }
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();  // asynchronous: durable callers flush to committed_lsn
    XLogRecPtr lsn = XactLastCommitEnd;
    pgstat_report_activity(STATE_IDLE, NULL);

    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    s->tail = end;
    s->committed_seq = last_seq;
    s->committed_id = last_id;
    if (lsn > s->committed_lsn) s->committed_lsn = lsn;
    LWLockRelease(shared->lock);
    ConditionVariableBroadcast(&s->committed_cv);
    ConditionVariableBroadcast(&s->space_cv);
    pfree(batch.data);
    return true;
}

}  // namespace

extern "C" void pg_mcp_audit_writer_main(Datum main_arg) {
    Oid dbid = DatumGetObjectId(main_arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
    // The writer commits without waiting for the WAL flush: durable callers flush up to its
    // commit record themselves (see queue_audit_record), so the writer never idles on fsync. The
    // chain's canonical content is written in UTC with exact
    // float output, as mcp._audit_row_hash reads it back.
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("extra_float_digits", "1", PGC_SUSET, PGC_S_OVERRIDE);

    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < shared->nslots; i++)
        if (shared->slots[i].dbid == dbid) writer_slot = i;
    if (writer_slot >= 0) {
        shared->slots[writer_slot].writer_pid = MyProcPid;
        shared->slots[writer_slot].writer_latch = MyLatch;
    }
    LWLockRelease(shared->lock);
    if (writer_slot < 0) proc_exit(0);  // nothing queued for this database any more
    before_shmem_exit(writer_detach, 0);

    TimestampTz last_work = GetCurrentTimestamp();
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (!writer_paused && write_batch(dbid)) {
            last_work = GetCurrentTimestamp();
            continue;
        }
        // Idle for a while: leave (exit code 0 unregisters this worker), so that the database
        // can be dropped; the next queued record starts a new writer.
        if (!writer_paused &&
            TimestampDifferenceExceeds(last_work, GetCurrentTimestamp(), writer_idle_ms)) {
            LWLockAcquire(shared->lock, LW_EXCLUSIVE);
            AuditSlot *s = &shared->slots[writer_slot];
            bool empty = s->head == s->tail;
            if (empty) s->writer_registered = false;
            LWLockRelease(shared->lock);
            if (empty) proc_exit(0);
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

}  // namespace pg_mcp
