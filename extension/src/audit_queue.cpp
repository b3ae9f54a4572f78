#include "audit_queue.hpp"

#include "boundary.hpp"

#include "rate_limit.hpp"
#include "security.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "fmgr.h"
#include "funcapi.h"
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
#include "utils/typcache.h"
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

namespace {

// With synchronous standbys configured, waits for them as a commit would, at least at the
// level `on` whatever the caller set: an agent's session must not weaken its own audit trail.
// As for a commit, a cancel during this wait only warns (the row is committed locally).
void wait_for_standbys(XLogRecPtr lsn) {
    if (synchronous_commit >= SYNCHRONOUS_COMMIT_REMOTE_FLUSH) {
        SyncRepWaitForLSN(lsn, true);
        return;
    }
    int nest_level = enter_setting("synchronous_commit", "on");
    SyncRepWaitForLSN(lsn, true);
    leave_settings(nest_level);
}

}  // namespace

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
            wait_for_standbys(lsn);
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

// The chain while a batch is being inserted: mcp._audit_chain, called once per row by the
// insert, advances it; the writer carries it to the next batch once the insert succeeded.
struct BatchChain {
    bool active;  // only inside the writer's insert
    int64 next_id;
    bool has_prev;
    uint8 prev[PG_SHA256_DIGEST_LENGTH];
};
BatchChain batch_chain;

// The writer's insert, prepared once per writer process (the plan cache revalidates it if
// mcp.audit_log changes). Generic: a custom plan would fold $1::jsonb at planning time.
SPIPlanPtr insert_plan = NULL;

// Appends a batch (a JSON array of records) as rows with consecutive ids, chained: each
// row_hash = sha256(prev_hash || canonical content), the content being the row's jsonb text
// without the two hashes, in UTC (what mcp._audit_row_hash computes when verifying). One
// statement per batch, whatever its size; the batch's JSON is parsed once. Returns the last id.
int64 append_records(const char *records_json, int count) {
    if (!chain_loaded) load_chain_end();
    if (insert_plan == NULL) {
        Oid types[2] = {TEXTOID, INT8OID};
        SPIPlanPtr plan = SPI_prepare_cursor(
            "INSERT INTO mcp.audit_log"
            " SELECT c.* FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e,"
            "      LATERAL jsonb_populate_record(NULL::mcp.audit_log,"
            "              e.value || jsonb_build_object('id', $2 + e.ordinality - 1)) AS r,"
            "      LATERAL mcp._audit_chain(r, (to_jsonb(r) - 'row_hash' - 'prev_hash')::text) AS "
            "c",
            2, types, CURSOR_OPT_GENERIC_PLAN);
        if (plan == NULL)
            elog(ERROR, "preparing the audit insert failed: %s",
                 SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "keeping the audit insert's plan failed");
        insert_plan = plan;
    }
    batch_chain.next_id = chain_next_id;
    batch_chain.has_prev = chain_prev != NULL;
    if (chain_prev != NULL) {
        if (VARSIZE_ANY_EXHDR(chain_prev) != PG_SHA256_DIGEST_LENGTH)
            elog(ERROR, "the audit chain's last row_hash is not a sha256 digest");
        memcpy(batch_chain.prev, VARDATA_ANY(chain_prev), PG_SHA256_DIGEST_LENGTH);
    }
    Datum values[2] = {CStringGetTextDatum(records_json), Int64GetDatum(chain_next_id)};
    batch_chain.active = true;
    int rc = SPI_execute_plan(insert_plan, values, NULL, false, 0);
    batch_chain.active = false;
    if (rc != SPI_OK_INSERT || (int)SPI_processed != count ||
        batch_chain.next_id != chain_next_id + count)
        elog(ERROR, "inserting audit rows failed");
    // Carried to the next batch only now that the rows exist (the transaction may still fail,
    // but then this process exits and a new writer reads the chain's end again).
    if (chain_prev == NULL)
        chain_prev =
            (bytea *)MemoryContextAlloc(TopMemoryContext, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
    SET_VARSIZE(chain_prev, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
    memcpy(VARDATA(chain_prev), batch_chain.prev, PG_SHA256_DIGEST_LENGTH);
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

// mcp._audit_chain(r, content): inside the writer's insert, sets the row's prev_hash and
// row_hash = sha256(prev_hash || content) and advances the chain. Rows must come in id order
// (the insert feeds them so); anything else, or a call outside the writer's insert, is an error,
// so the chain can never be built out of order.
PG_MCP_FUNCTION(pg_mcp_audit_chain) {
    if (!batch_chain.active)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("mcp._audit_chain is used only by the pg_mcp audit writer")));
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) elog(ERROR, "audit row or content is NULL");
    HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
    text *content = PG_GETARG_TEXT_PP(1);
    TupleDesc desc =
        lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
    HeapTupleData tuple;
    tuple.t_len = HeapTupleHeaderGetDatumLength(row);
    ItemPointerSetInvalid(&tuple.t_self);
    tuple.t_tableOid = InvalidOid;
    tuple.t_data = row;
    int id_att = SPI_fnumber(desc, "id");
    int prev_att = SPI_fnumber(desc, "prev_hash");
    int hash_att = SPI_fnumber(desc, "row_hash");
    if (id_att <= 0 || prev_att <= 0 || hash_att <= 0)
        elog(ERROR, "mcp.audit_log lacks its chain columns");
    bool isnull;
    Datum id = heap_getattr(&tuple, id_att, desc, &isnull);
    if (isnull || DatumGetInt64(id) != batch_chain.next_id)
        elog(ERROR, "audit rows out of order: expected id " INT64_FORMAT, batch_chain.next_id);

    uint8 digest[PG_SHA256_DIGEST_LENGTH];
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (pg_cryptohash_init(ctx) < 0 ||
        (batch_chain.has_prev && pg_cryptohash_update(ctx, batch_chain.prev, sizeof digest) < 0) ||
        pg_cryptohash_update(ctx, (uint8 *)VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content)) < 0 ||
        pg_cryptohash_final(ctx, digest, sizeof digest) < 0)
        elog(ERROR, "sha256 failed: %s", pg_cryptohash_error(ctx));
    pg_cryptohash_free(ctx);

    Datum *values = (Datum *)palloc0(sizeof(Datum) * desc->natts);
    bool *nulls = (bool *)palloc0(sizeof(bool) * desc->natts);
    bool *replace = (bool *)palloc0(sizeof(bool) * desc->natts);
    bytea *hash = (bytea *)palloc(VARHDRSZ + sizeof digest);
    SET_VARSIZE(hash, VARHDRSZ + sizeof digest);
    memcpy(VARDATA(hash), digest, sizeof digest);
    replace[hash_att - 1] = true;
    values[hash_att - 1] = PointerGetDatum(hash);
    replace[prev_att - 1] = true;
    if (batch_chain.has_prev) {
        bytea *prev = (bytea *)palloc(VARHDRSZ + sizeof digest);
        SET_VARSIZE(prev, VARHDRSZ + sizeof digest);
        memcpy(VARDATA(prev), batch_chain.prev, sizeof digest);
        values[prev_att - 1] = PointerGetDatum(prev);
    } else {
        nulls[prev_att - 1] = true;
    }
    HeapTuple result = heap_modify_tuple(&tuple, desc, values, nulls, replace);
    ReleaseTupleDesc(desc);

    memcpy(batch_chain.prev, digest, sizeof digest);
    batch_chain.has_prev = true;
    batch_chain.next_id++;
    return HeapTupleGetDatum(result);
}

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
    // It runs as the bootstrap superuser: nothing but pg_catalog may resolve its names, whatever
    // ALTER DATABASE / ALTER ROLE set (its own objects are schema-qualified).
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
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
