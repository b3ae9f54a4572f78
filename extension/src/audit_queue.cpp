#include "audit_queue.hpp"

#include "audit_record.hpp"
#include "boundary.hpp"

#include "security.hpp"
#include "shared_memory.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
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
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
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

// One database's queue: a ring of length-prefixed packed records (audit_record.hpp).
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
    uint64 reserved;           // bytes promised to calls whose SQL is running (see reserve)
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

// The slot of a database (allocating one), under the lock. -1 when all are taken.
int slot_for(Oid dbid) {
    int free_slot = -1;
    for (int i = 0; i < shared->nslots; i++) {
        if (shared->slots[i].dbid == dbid) return i;
        // A slot whose queue is empty and has no writer can serve another database.
        AuditSlot *s = &shared->slots[i];
        if (free_slot < 0 && (s->dbid == InvalidOid ||
                              (s->head == s->tail && !s->writer_registered && s->reserved == 0)))
            free_slot = i;
    }
    if (free_slot >= 0) {
        AuditSlot *s = &shared->slots[free_slot];
        uint64 seq = s->next_seq;
        s->dbid = dbid;
        s->head = s->tail = 0;
        s->reserved = 0;
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

Size audit_queue_shmem_size(void) {
    return shared_size();
}

void audit_queue_shmem_init(LWLock *lock) {
    bool found;
    shared = (AuditShared *)ShmemInitStruct("pg_mcp audit queue", shared_size(), &found);
    if (found) return;
    shared->lock = lock;
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

// The slot and sequence number of the last record this backend queued.
int last_queued_slot = -1;
uint64 last_queued_seq = 0;

bool wait_after_write = false;  // set_durable_wait_after_write

// Durable: waits until the writer has committed record `seq` of `slot`, then flushes the WAL
// up to that commit here, in the caller; returns the record's mcp.audit_log id.
int64 wait_committed(int slot, uint64 seq, TimestampTz deadline) {
    AuditSlot *s = &shared->slots[slot];
    for (;;) {
        LWLockAcquire(shared->lock, LW_SHARED);
        // Sequences keep increasing when a slot passes to another database (only once all its
        // records are committed): a record of ours at or below committed_seq is committed.
        bool done = s->committed_seq >= seq;
        int64 id =
            done && s->dbid == MyDatabaseId ? s->committed_id - (int64)(s->committed_seq - seq) : 0;
        XLogRecPtr lsn = s->committed_lsn;
        LWLockRelease(shared->lock);
        if (done) {
            ConditionVariableCancelSleep();
            XLogFlush(lsn);
            wait_for_standbys(lsn);
            return id;
        }
        long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (remaining <= 0 && wait_after_write) {
            ConditionVariableCancelSleep();
            ereport(WARNING,
                    (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                     errmsg("the audit record of a write was not confirmed within %d ms",
                            wait_timeout_ms),
                     errdetail("The write is kept; its record is queued and will be written "
                               "when the audit writer catches up."),
                     errhint("Check that the pg_mcp audit writer is running (pg_stat_activity, "
                             "backend_type 'pg_mcp audit writer').")));
            return 0;
        }
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

}  // namespace

namespace {

// The room this backend holds in its database's queue for the record of a call whose SQL is
// running: taken by reserve_audit_record, used by the next record queued, and given back if
// the (sub)transaction that took it aborts or the process exits.
int reserved_slot = -1;
uint64 reserved_bytes = 0;
int reserved_level = 0;  // transaction nesting level that took it
bool reservation_callbacks = false;

void give_back_reservation(void) {
    if (reserved_slot < 0 || shared == NULL) return;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    AuditSlot *s = &shared->slots[reserved_slot];
    s->reserved -= Min(s->reserved, reserved_bytes);
    LWLockRelease(shared->lock);
    ConditionVariableBroadcast(&s->space_cv);
    reserved_slot = -1;
}

void reservation_on_xact(XactEvent event, void *) {
    if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) give_back_reservation();
}

void reservation_on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB && reserved_slot >= 0 &&
        reserved_level >= GetCurrentTransactionNestLevel())
        give_back_reservation();
}

void reservation_on_exit(int, Datum) {
    give_back_reservation();
}

void check_queue_usable(void) {
    if (shared == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("pg_mcp is not loaded through shared_preload_libraries"),
                 errhint("Add pg_mcp to shared_preload_libraries in postgresql.conf and restart "
                         "PostgreSQL: tool calls are audited through shared memory.")));
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("audit records cannot be queued on a hot standby")));
}

// Waits (bounded by pg_mcp.audit_wait_timeout) until the database's queue has `need` bytes that
// are neither used nor promised to others, then runs take(slot) under the lock. Refuses with
// "the audit queue is full" after the wait: only ever before a call's SQL runs.
template <typename Take>
int wait_for_room(Size need, bool use_reservation, TimestampTz deadline, Take take) {
    for (;;) {
        LWLockAcquire(shared->lock, LW_EXCLUSIVE);
        int slot = slot_for(MyDatabaseId);
        if (slot >= 0) {
            AuditSlot *s = &shared->slots[slot];
            uint64 mine = use_reservation && reserved_slot == slot ? reserved_bytes : 0;
            uint64 promised = s->reserved - Min(s->reserved, mine);
            if (shared->ring_size - (s->head - s->tail) - Min(promised, shared->ring_size) >=
                need) {
                take(slot, s);  // releases the lock
                ConditionVariableCancelSleep();
                return slot;
            }
        }
        LWLockRelease(shared->lock);
        long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (remaining <= 0) {
            ConditionVariableCancelSleep();
            ereport(ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                     errmsg(slot < 0 ? "no audit queue is free for this database"
                                     : "the audit queue is full"),
                     errdetail("Waited %d ms; the call was not made because its audit record "
                               "could not be queued.",
                               wait_timeout_ms),
                     errhint("Retry shortly. If this persists, check that the pg_mcp audit writer "
                             "is running, or raise pg_mcp.audit_queue_size.")));
        }
        if (slot >= 0)
            ConditionVariableTimedSleep(&shared->slots[slot].space_cv, Min(remaining, 100),
                                        PG_WAIT_EXTENSION);
        else
            pg_usleep(10000L);
        CHECK_FOR_INTERRUPTS();
    }
}

}  // namespace

void reserve_audit_record(Size record_bytes) {
    // A hot standby has no queue: the record travels with the call's result (audit.hpp).
    if (shared != NULL && RecoveryInProgress()) return;
    check_queue_usable();
    give_back_reservation();  // one call at a time per backend holds room
    if (!reservation_callbacks) {
        RegisterXactCallback(reservation_on_xact, NULL);
        RegisterSubXactCallback(reservation_on_subxact, NULL);
        before_shmem_exit(reservation_on_exit, 0);
        reservation_callbacks = true;
    }
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
    Size need = Min(record_bytes, kMaxPackedAuditRecord) + sizeof(uint32);
    int slot = wait_for_room(need, false, deadline, [need](int, AuditSlot *s) {
        s->reserved += need;
        LWLockRelease(shared->lock);
    });
    reserved_slot = slot;
    reserved_bytes = need;
    reserved_level = GetCurrentTransactionNestLevel();
}

int64 enqueue_audit_record(const char *record, Size len, bool durable, bool use_reservation) {
    check_queue_usable();
    Size need = len + sizeof(uint32);
    if (len > kMaxPackedAuditRecord)  // bound_audit_record makes this impossible
        elog(ERROR, "an unbounded audit record reached the audit queue");

    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
    bool start = false;
    uint64 seq = 0;
    int slot = wait_for_room(need, use_reservation, deadline, [&](int taken, AuditSlot *s) {
        uint32 header = (uint32)len;
        ring_copy_in(taken, s->head, (const char *)&header, sizeof header);
        ring_copy_in(taken, s->head + sizeof header, record, len);
        s->head += need;
        seq = s->next_seq++;
        if (use_reservation && reserved_slot == taken) {  // the room promised to this call
            s->reserved -= Min(s->reserved, reserved_bytes);
            reserved_slot = -1;
        }
        if (!s->writer_registered) {
            s->writer_registered = true;
            start = true;
        }
        Latch *latch = s->writer_latch;
        LWLockRelease(shared->lock);
        if (latch != NULL) SetLatch(latch);
    });
    if (start) start_writer(MyDatabaseId);
    last_queued_slot = slot;
    last_queued_seq = seq;
    if (!durable) return 0;
    return wait_committed(slot, seq, deadline);
}

void set_durable_wait_after_write(bool after_write) {
    wait_after_write = after_write;
}

int64 queue_audit_record(const char *record, Size len, bool use_reservation,
                         AuditPending *pending) {
    bool durable = (AuditMode)audit_mode_setting == AuditMode::Durable;
    if (pending != NULL) pending->slot = -1;
    if (durable && pending != NULL) {
        // The caller confirms durability itself (mcp.await_audit) before it answers.
        (void)enqueue_audit_record(record, len, false, use_reservation);
        pending->slot = last_queued_slot;
        pending->seq = last_queued_seq;
        return 0;
    }
    return enqueue_audit_record(record, len, durable, use_reservation);
}

int64 await_audit_record(int slot, uint64 seq) {
    check_queue_usable();
    if (slot < 0 || slot >= shared->nslots || seq == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("no audit record %d:" UINT64_FORMAT " is pending", slot, seq)));
    LWLockAcquire(shared->lock, LW_SHARED);
    bool known = seq < shared->slots[slot].next_seq;
    LWLockRelease(shared->lock);
    if (!known)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("no audit record %d:" UINT64_FORMAT " was queued", slot, seq)));
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
    return wait_committed(slot, seq, deadline);
}

int64 await_queued_audit_records() {
    if (last_queued_slot < 0) return 0;
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
    return wait_committed(last_queued_slot, last_queued_seq, deadline);
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

// mcp.audit_log as the writer sees it: each column's field of the record (audit.hpp) or its
// own role, and the insert of a batch as one array per column. Built once and rebuilt when the
// table's definition changes.
constexpr int kColumnId = -1, kColumnPrevHash = -2, kColumnRowHash = -3, kColumnOther = -4;

struct AuditTable {
    TupleDesc desc;  // in TopMemoryContext
    int *fields;     // per attribute: an AuditField, or kColumn*
    int16 *typlen;
    bool *typbyval;
    char *typalign;
    SPIPlanPtr insert;
};
AuditTable *audit_table = NULL;

AuditTable *build_audit_table(TupleDesc current) {
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    AuditTable *table = (AuditTable *)palloc0(sizeof(AuditTable));
    table->desc = CreateTupleDescCopyConstr(current);  // equalTupleDescs compares constraints
    int natts = current->natts;
    table->fields = (int *)palloc(sizeof(int) * natts);
    table->typlen = (int16 *)palloc(sizeof(int16) * natts);
    table->typbyval = (bool *)palloc(sizeof(bool) * natts);
    table->typalign = (char *)palloc(sizeof(char) * natts);
    MemoryContextSwitchTo(old);

    StringInfoData sql, columns;
    initStringInfo(&sql);
    initStringInfo(&columns);
    Oid *types = (Oid *)palloc(sizeof(Oid) * natts);
    int nparams = 0;
    // The arrays unnested side by side in the target list (ProjectSet: no tuplestore).
    appendStringInfoString(&sql, " SELECT ");
    for (int i = 0; i < natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(current, i);
        table->fields[i] = kColumnOther;
        if (attr->attisdropped) continue;
        const char *column = NameStr(attr->attname);
        int field = audit_field_index(column);
        Oid expected = field >= 0                         ? kAuditFields[field].type
                       : strcmp(column, "id") == 0        ? INT8OID
                       : strcmp(column, "prev_hash") == 0 ? BYTEAOID
                       : strcmp(column, "row_hash") == 0  ? BYTEAOID
                                                          : InvalidOid;
        if (OidIsValid(expected) && attr->atttypid != expected)
            elog(ERROR, "column mcp.audit_log.%s has type %s, expected %s", column,
                 format_type_be(attr->atttypid), format_type_be(expected));
        table->fields[i] = field >= 0                         ? field
                           : strcmp(column, "id") == 0        ? kColumnId
                           : strcmp(column, "prev_hash") == 0 ? kColumnPrevHash
                           : strcmp(column, "row_hash") == 0  ? kColumnRowHash
                                                              : kColumnOther;
        get_typlenbyvalalign(attr->atttypid, &table->typlen[i], &table->typbyval[i],
                             &table->typalign[i]);
        types[nparams] = get_array_type(attr->atttypid);
        if (!OidIsValid(types[nparams]))
            elog(ERROR, "column mcp.audit_log.%s has no array type", NameStr(attr->attname));
        if (nparams > 0) {
            appendStringInfoString(&columns, ", ");
            appendStringInfoString(&sql, ", ");
        }
        appendStringInfoString(&columns, quote_identifier(NameStr(attr->attname)));
        appendStringInfo(&sql, "pg_catalog.unnest($%d)", ++nparams);
    }
    char *insert = psprintf("INSERT INTO mcp.audit_log (%s)%s", columns.data, sql.data);
    // Generic: the arrays change with every batch.
    SPIPlanPtr plan = SPI_prepare_cursor(insert, nparams, types, CURSOR_OPT_GENERIC_PLAN);
    if (plan == NULL)
        elog(ERROR, "preparing the audit insert failed: %s", SPI_result_code_string(SPI_result));
    if (SPI_keepplan(plan) != 0) elog(ERROR, "keeping the audit insert's plan failed");
    table->insert = plan;
    return table;
}

// mcp.audit_log's OID (a syscache lookup), InvalidOid once the extension is dropped.
Oid audit_log_relid(void) {
    Oid schema = get_namespace_oid("mcp", true);
    return OidIsValid(schema) ? get_relname_relid("audit_log", schema) : InvalidOid;
}

// The writer's table description, checked against the table's current definition.
AuditTable *current_audit_table(Oid relid) {
    Relation rel = table_open(relid, AccessShareLock);
    TupleDesc current = RelationGetDescr(rel);
    if (audit_table == NULL || !equalTupleDescs(audit_table->desc, current)) {
        if (audit_table != NULL) {
            SPI_freeplan(audit_table->insert);
            audit_table = NULL;  // the old one is left to TopMemoryContext (rare)
        }
        audit_table = build_audit_table(current);
    }
    table_close(rel, AccessShareLock);
    return audit_table;
}

Datum bytea_datum(const uint8 *data, Size len) {
    bytea *value = (bytea *)palloc(VARHDRSZ + len);
    SET_VARSIZE(value, VARHDRSZ + len);
    memcpy(VARDATA(value), data, len);
    return PointerGetDatum(value);
}

// One row's values from a packed record (the hashes are set by the caller).
void record_values(const AuditTable *table, const UnpackedRecord *r, int64 id, Datum *values,
                   bool *nulls) {
    for (int i = 0; i < table->desc->natts; i++) {
        int field = table->fields[i];
        if (field >= 0) {
            values[i] = audit_field_datum(r, field, &nulls[i]);
        } else {
            nulls[i] = field != kColumnId;
            values[i] = field == kColumnId ? Int64GetDatum(id) : (Datum)0;
        }
    }
}

constexpr int kRecordIdKey = 40;  // a uuid's text and its NUL

// Adds the forwarded records' ids to mcp.audit_forwarded, skipping ids already there; returns
// the ids added (a set of kRecordIdKey strings), NULL when the batch has no forwarded record.
HTAB *record_forwarded(Oid relid, const UnpackedRecord *records, int count) {
    Datum *ids = (Datum *)palloc(sizeof(Datum) * count);
    Datum *by = (Datum *)palloc(sizeof(Datum) * count);
    int forwarded = 0;
    for (int k = 0; k < count; k++) {
        const AuditFieldValue &record_id = records[k][AuditField::record_id];
        if (record_id.isnull || record_id.len <= 0) continue;
        const AuditFieldValue &session = records[k][AuditField::session_role];
        ids[forwarded] = PointerGetDatum(cstring_to_text_with_len(record_id.data, record_id.len));
        by[forwarded++] =
            PointerGetDatum(cstring_to_text_with_len(session.data, Max(session.len, 0)));
    }
    if (forwarded == 0) return NULL;
    char *sql = psprintf(
        "INSERT INTO %s.audit_forwarded (record_id, ingested_by)"
        " SELECT u.r::uuid, u.s::name FROM unnest($1::text[], $2::text[]) AS u(r, s)"
        " ON CONFLICT (record_id) DO NOTHING RETURNING record_id::text",
        quote_identifier(get_namespace_name(get_rel_namespace(relid))));
    Oid types[2] = {TEXTARRAYOID, TEXTARRAYOID};
    Datum args[2] = {PointerGetDatum(construct_array(ids, forwarded, TEXTOID, -1, false, 'i')),
                     PointerGetDatum(construct_array(by, forwarded, TEXTOID, -1, false, 'i'))};
    int rc = SPI_execute_with_args(sql, 2, types, args, NULL, false, 0);
    if (rc != SPI_OK_INSERT_RETURNING)
        elog(ERROR, "recording forwarded audit records failed: %s", SPI_result_code_string(rc));
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = kRecordIdKey;
    ctl.entrysize = kRecordIdKey;
    ctl.hcxt = CurrentMemoryContext;
    HTAB *added = hash_create("pg_mcp forwarded records", Max(SPI_processed, 1), &ctl,
                              HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
    for (uint64 i = 0; i < SPI_processed; i++) {
        char *id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
        char key[kRecordIdKey] = {0};
        strlcpy(key, id, sizeof key);
        (void)hash_search(added, key, HASH_ENTER, NULL);
    }
    return added;
}

// Appends a batch of packed records as rows with consecutive ids, chained: each row_hash =
// sha256(prev_hash || the row's canonical content) (audit_record.hpp), computed here, in id
// order, by the only writer. One INSERT per batch, each column passed as an array. Returns
// the last id.
int64 append_records(Oid relid, const char *bytes, const uint32 *offsets, const uint32 *lengths,
                     int count) {
    if (!chain_loaded) load_chain_end();
    AuditTable *table = current_audit_table(relid);
    int natts = table->desc->natts;
    Datum **columns = (Datum **)palloc(sizeof(Datum *) * natts);
    bool **column_nulls = (bool **)palloc(sizeof(bool *) * natts);
    for (int i = 0; i < natts; i++) {
        columns[i] = (Datum *)palloc(sizeof(Datum) * count);
        column_nulls[i] = (bool *)palloc(sizeof(bool) * count);
    }
    Datum *values = (Datum *)palloc(sizeof(Datum) * natts);
    bool *nulls = (bool *)palloc(sizeof(bool) * natts);
    bool has_prev = chain_prev != NULL;
    uint8 prev[PG_SHA256_DIGEST_LENGTH];
    if (has_prev) {
        if (VARSIZE_ANY_EXHDR(chain_prev) != PG_SHA256_DIGEST_LENGTH)
            elog(ERROR, "the audit chain's last row_hash is not a sha256 digest");
        memcpy(prev, VARDATA_ANY(chain_prev), sizeof prev);
    }
    // Records forwarded from hot standbys: their ids join mcp.audit_forwarded first, in this
    // same transaction, so a row and the note that it was ingested exist together or not at
    // all; a record whose id is there already (sent twice, by a retry or two sessions) gets no
    // second row. Its id in the chain is left unused, so every record keeps id = first + k.
    UnpackedRecord *records = (UnpackedRecord *)palloc(sizeof(UnpackedRecord) * count);
    for (int k = 0; k < count; k++)
        unpack_audit_record(bytes + offsets[k], lengths[k], &records[k]);
    HTAB *new_forwarded = record_forwarded(relid, records, count);
    int rows = 0;
    for (int k = 0; k < count; k++) {
        const UnpackedRecord &record = records[k];
        const AuditFieldValue &record_id = record[AuditField::record_id];
        if (!record_id.isnull && record_id.len > 0) {
            char key[kRecordIdKey] = {0};
            memcpy(key, record_id.data, Min(record_id.len, kRecordIdKey - 1));
            bool found = false;
            if (new_forwarded != NULL) (void)hash_search(new_forwarded, key, HASH_REMOVE, &found);
            if (!found) continue;  // ingested before, or twice in this batch
        }
        record_values(table, &record, chain_next_id + k, values, nulls);
        uint8 digest[PG_SHA256_DIGEST_LENGTH];
        audit_row_hash(has_prev ? prev : NULL, sizeof prev, table->desc, values, nulls, digest);
        for (int i = 0; i < natts; i++) {
            if (table->fields[i] == kColumnPrevHash) {
                nulls[i] = !has_prev;
                if (has_prev) values[i] = bytea_datum(prev, sizeof prev);
            } else if (table->fields[i] == kColumnRowHash) {
                nulls[i] = false;
                values[i] = bytea_datum(digest, sizeof digest);
            }
            columns[i][rows] = values[i];
            column_nulls[i][rows] = nulls[i];
        }
        rows++;
        memcpy(prev, digest, sizeof prev);
        has_prev = true;
    }
    if (rows > 0) {
        Datum *params = (Datum *)palloc(sizeof(Datum) * natts);
        int nparams = 0;
        for (int i = 0; i < natts; i++) {
            Form_pg_attribute attr = TupleDescAttr(table->desc, i);
            if (attr->attisdropped) continue;
            int dims[1] = {rows};
            int lbs[1] = {1};
            params[nparams++] = PointerGetDatum(
                construct_md_array(columns[i], column_nulls[i], 1, dims, lbs, attr->atttypid,
                                   table->typlen[i], table->typbyval[i], table->typalign[i]));
        }
        int rc = SPI_execute_plan(table->insert, params, NULL, false, 0);
        if (rc != SPI_OK_INSERT || (int)SPI_processed != rows)
            elog(ERROR, "inserting audit rows failed: %s", SPI_result_code_string(rc));
    }
    // Carried to the next batch only now that the rows exist (the transaction may still fail,
    // but then this process exits and a new writer reads the chain's end again).
    if (has_prev) {
        if (chain_prev == NULL)
            chain_prev =
                (bytea *)MemoryContextAlloc(TopMemoryContext, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
        SET_VARSIZE(chain_prev, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
        memcpy(VARDATA(chain_prev), prev, PG_SHA256_DIGEST_LENGTH);
    }
    chain_next_id += count;
    return chain_next_id - 1;
}

// Writes one batch: the records between tail and head (up to a limit) in one transaction.
// Returns false when there was nothing to write.
bool write_batch(Oid dbid) {
    constexpr int kMaxBatch = 10000;
    constexpr int kMaxBatchBytes = 4 * 1024 * 1024;
    LWLockAcquire(shared->lock, LW_SHARED);
    AuditSlot *s = &shared->slots[writer_slot];
    uint64 at = s->tail, head = s->head;
    uint64 first_seq = s->committed_seq + 1;
    LWLockRelease(shared->lock);
    if (at == head) return false;

    // The records, copied out of the ring (which may wrap) into one buffer.
    StringInfoData bytes;
    initStringInfo(&bytes);
    uint32 *offsets = (uint32 *)palloc(sizeof(uint32) * kMaxBatch);
    uint32 *lengths = (uint32 *)palloc(sizeof(uint32) * kMaxBatch);
    int count = 0;
    while (at < head && bytes.len < kMaxBatchBytes && count < kMaxBatch) {
        uint32 len;
        ring_copy_out(writer_slot, at, (char *)&len, sizeof len);
        enlargeStringInfo(&bytes, (int)len);
        offsets[count] = (uint32)bytes.len;
        lengths[count] = len;
        ring_copy_out(writer_slot, at + sizeof len, bytes.data + bytes.len, len);
        bytes.len += (int)len;
        at += sizeof len + len;
        count++;
    }
    uint64 end = at;
    uint64 last_seq = first_seq + count - 1;

    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_mcp: writing audit records");
    int64 last_id = 0;
    Oid relid = audit_log_relid();
    if (!OidIsValid(relid)) {
        ereport(LOG, (errmsg("pg_mcp audit writer: extension dropped in database %u; %d queued "
                             "records discarded",
                             dbid, count)));
    } else {
        last_id = append_records(relid, bytes.data, offsets, lengths, count);
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
    pfree(bytes.data);
    pfree(offsets);
    pfree(lengths);
    return true;
}

}  // namespace

// Looked up by name when the worker starts (bgw_function_name): exported, as extensions are
// built with hidden symbols from PostgreSQL 16 on.
extern "C" {
PGDLLEXPORT void pg_mcp_audit_writer_main(Datum main_arg);
}

extern "C" void pg_mcp_audit_writer_main(Datum main_arg) {
    Oid dbid = DatumGetObjectId(main_arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
    // The writer commits without waiting for the WAL flush: durable callers flush up to its
    // commit record themselves (see queue_audit_record), so the writer never idles on fsync.
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    // It runs as the bootstrap superuser: nothing but pg_catalog may resolve its names, whatever
    // ALTER DATABASE / ALTER ROLE set (its own objects are schema-qualified).
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

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
    start_refresher_if_scheduled();  // e.g. after a server restart

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
