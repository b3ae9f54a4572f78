// The audit queue: backends queue packed records in shared memory, reserve room before a
// tool's SQL runs, and wait for durability; the writer is audit_writer.cpp. Plain C style.
#include "audit_queue.hpp"
#include "audit_queue_shm.hpp"

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

namespace audit_shm {
AuditShared *shared = NULL;
bool writer_paused = false;
int writer_idle_ms = 2000;
int writer_delay_ms = 10;
}  // namespace audit_shm

using audit_shm::AuditShared;
using audit_shm::AuditSlot;
using audit_shm::shared;
using audit_shm::writer_delay_ms;
using audit_shm::writer_idle_ms;
using audit_shm::writer_paused;

namespace {

// Settings.
int audit_mode_setting = 0;  // AuditMode
int queue_size_kb = 1024;
int database_slots = 4;
int wait_timeout_ms = 10000;

const struct config_enum_entry kAuditModes[] = {{"durable", (int)AuditMode::Durable, false},
                                                {"fast", (int)AuditMode::Fast, false},
                                                {NULL, 0, false}};

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

void audit_shm::ring_copy_out(int slot, uint64 at, char *data, Size len) {
    char *ring = ring_of(slot);
    for (Size i = 0; i < len; i++) data[i] = ring[(at + i) % shared->ring_size];
}

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
        "pg_mcp.audit_writer_delay",
        "How long the audit writer gathers records that no call waits for before writing them.",
        "Fast-mode records are written in batches at most this often; a durable call's record, "
        "or a queue a quarter full, is written at once. 0 writes every record as it comes.",
        &writer_delay_ms, 10, 0, 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
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
    // Someone waits for it now: a writer gathering records that nobody awaited writes at once.
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    if (s->awaited_seq < seq) s->awaited_seq = seq;
    Latch *gathering = s->writer_gathering && s->committed_seq < seq ? s->writer_latch : NULL;
    LWLockRelease(shared->lock);
    if (gathering != NULL) SetLatch(gathering);
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

namespace {

// Queues a record; awaited: a backend will wait for its commit (it is written without delay).
// Returns the slot, and the record's sequence number in *seq.
int queue_record(const char *record, Size len, bool awaited, bool use_reservation, uint64 *seq_out,
                 TimestampTz deadline) {
    check_queue_usable();
    Size need = len + sizeof(uint32);
    if (len > kMaxPackedAuditRecord)  // bound_audit_record makes this impossible
        elog(ERROR, "an unbounded audit record reached the audit queue");

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
        if (awaited && s->awaited_seq < seq) s->awaited_seq = seq;
        // A gathering writer is left to its timer unless this record is awaited or the queue
        // fills: one wake-up per batch, not per record.
        bool wake = !s->writer_gathering || awaited || audit_shm::queue_filling(s);
        Latch *latch = wake ? s->writer_latch : NULL;
        LWLockRelease(shared->lock);
        if (latch != NULL) SetLatch(latch);
    });
    if (start) start_writer(MyDatabaseId);
    last_queued_slot = slot;
    last_queued_seq = seq;
    *seq_out = seq;
    return slot;
}

}  // namespace

int64 enqueue_audit_record(const char *record, Size len, bool durable, bool use_reservation) {
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
    uint64 seq;
    int slot = queue_record(record, len, durable, use_reservation, &seq, deadline);
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
        // The caller confirms durability itself (mcp.await_audit) before it answers. The record
        // is not awaited until then: a gathering writer goes on gathering the records of calls
        // still running, and the caller's await (one for many calls) ends the gathering.
        TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_timeout_ms);
        pending->slot = queue_record(record, len, false, use_reservation, &pending->seq, deadline);
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

}  // namespace pg_mcp
