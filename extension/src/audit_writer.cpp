// The audit writer: a background worker per database that takes the queued records out of
// shared memory (audit_queue.cpp) and appends them to mcp.audit_log, hash-chained, many per
// transaction. Plain C style.
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

using audit_shm::AuditSlot;
using audit_shm::ring_copy_out;
using audit_shm::shared;
using audit_shm::writer_delay_ms;
using audit_shm::writer_idle_ms;
using audit_shm::writer_paused;

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
    AuditHasher *hasher;
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
    table->hasher = make_audit_hasher(table->desc);
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
        audit_row_hash(table->hasher, has_prev ? prev : NULL, sizeof prev, values, nulls, digest);
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

// Whether to hold off the next batch (pg_mcp.audit_writer_delay): records are queued, none is
// awaited and the queue is not filling. Then marks the slot as gathering (see queue_record).
// (Holding awaited records back for the calls still running, as commit_delay does, was
// measured: at 50 HTTP agents with fsync on it cost a quarter of durable throughput.)
bool start_gathering() {
    if (writer_delay_ms <= 0) return false;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    AuditSlot *s = &shared->slots[writer_slot];
    bool gather =
        s->head != s->tail && s->awaited_seq <= s->committed_seq && !audit_shm::queue_filling(s);
    s->writer_gathering = gather;
    LWLockRelease(shared->lock);
    return gather;
}

void stop_gathering() {
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    shared->slots[writer_slot].writer_gathering = false;
    LWLockRelease(shared->lock);
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
        // Whatever set the latch so far is seen by start_gathering or write_batch (under the
        // lock); only what comes after may end the wait below.
        ResetLatch(MyLatch);
        if (!writer_paused && start_gathering()) {
            // Woken early by an awaited record or a filling queue.
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                            writer_delay_ms, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            stop_gathering();
            CHECK_FOR_INTERRUPTS();
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
