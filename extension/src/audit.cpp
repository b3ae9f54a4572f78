#include "audit.hpp"

#include "audit_queue.hpp"
#include "audit_record.hpp"
#include "boundary.hpp"
#include "identity.hpp"
#include "random_bytes.hpp"

extern "C" {
#include "access/xlog.h"
#include "storage/proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
}

namespace pg_mcp {

namespace {

// Set only while purge_audit deletes: the one path allowed through the guard trigger.
bool purge_in_progress = false;

// The last record written on a hot standby, as JSON (see take_standby_audit_record).
char *standby_record = NULL;

const char *setting_or_null(const char *name) {
    const char *value = GetConfigOption(name, true, false);
    return value != NULL && value[0] != '\0' ? value : NULL;
}

// A W3C traceparent: version 2 hex digits (not ff), trace id 32 and span id 16 lowercase hex
// digits (not all zero), flags 2; a later version may carry more after a '-'.
bool valid_traceparent(const char *value) {
    size_t length = strlen(value);
    if (length < 55 || (length > 55 && (value[55] != '-' || strncmp(value, "00", 2) == 0)))
        return false;
    if (strncmp(value, "ff", 2) == 0) return false;
    bool nonzero_trace = false, nonzero_span = false;
    for (size_t i = 0; i < 55; i++) {
        char c = value[i];
        bool dash = i == 2 || i == 35 || i == 52;
        if (dash) {
            if (c != '-') return false;
            continue;
        }
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        if (i >= 3 && i < 35 && c != '0') nonzero_trace = true;
        if (i >= 36 && i < 52 && c != '0') nonzero_span = true;
    }
    return nonzero_trace && nonzero_span;
}

// A random (version 4) uuid: the primary ingests a forwarded record once, however often it is
// sent.
char *random_record_id(void) {
    static const int kGroups[] = {4, 2, 2, 2, 6};  // bytes between the dashes
    uint8 id[16];
    strong_random(id, sizeof id);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    char *out = (char *)palloc(37);
    char *at = out;
    const uint8 *from = id;
    for (int group : kGroups) {
        if (from != id) *at++ = '-';
        at += hex_encode((const char *)from, group, at);
        from += group;
    }
    *at = '\0';
    return out;
}

}  // namespace

namespace {
// The trace of the call in progress (mcp.serve_call), for its transaction only.
char call_trace[kTraceparentLength + 1];
LocalTransactionId call_trace_lxid = InvalidLocalTransactionId;
}  // namespace

void set_call_traceparent(const char *traceparent) {
    if (traceparent == NULL || !valid_traceparent(traceparent)) {
        call_trace_lxid = InvalidLocalTransactionId;
        return;
    }
    strlcpy(call_trace, traceparent, sizeof call_trace);  // the version-00 form
    call_trace_lxid = pg_mcp::compat::local_transaction_id();
}

const char *call_traceparent() {
    return call_trace_lxid != InvalidLocalTransactionId && MyProc != NULL &&
                   call_trace_lxid == pg_mcp::compat::local_transaction_id()
               ? call_trace
               : NULL;
}

char *take_standby_audit_record() {
    char *record = standby_record;
    standby_record = NULL;
    return record;
}

void resolve_audit_context(AuditRecord *record) {
    if (record->session_role == NULL)
        record->session_role = GetUserNameFromId(GetSessionUserId(), false);
    if (record->backend_pid < 0) record->backend_pid = MyProcPid;
    // Who called: as the client passed it, else the pg_mcp.* settings.
    if (record->agent_name == NULL) record->agent_name = setting_or_null("pg_mcp.agent_name");
    if (record->client_info == NULL) record->client_info = setting_or_null("pg_mcp.client_info");
    if (record->request_id == NULL) record->request_id = setting_or_null("pg_mcp.request_id");
    // The OAuth identity the bridge verified (mcp.assume_identity), which no setting can claim.
    if (record->auth_issuer == NULL) record->auth_issuer = identity_issuer();
    if (record->auth_subject == NULL) record->auth_subject = identity_subject();
    if (record->auth_client_id == NULL) record->auth_client_id = identity_client_id();
    // The trace the call belongs to (pg_mcp.traceparent, W3C: 00-<trace>-<span>-<flags>).
    if (record->trace_id == NULL) {
        const char *traceparent = call_traceparent();
        if (traceparent == NULL) traceparent = setting_or_null("pg_mcp.traceparent");
        if (traceparent != NULL && valid_traceparent(traceparent)) {
            record->trace_id = pnstrdup(traceparent + 3, 32);
            record->span_id = pnstrdup(traceparent + 36, 16);
        }
    }
}

int64 write_audit_record(const AuditRecord *record, bool use_reservation, AuditPending *pending) {
    if (pending != NULL) pending->slot = -1;
    AuditRecord resolved = *record;
    resolve_audit_context(&resolved);
    bound_audit_record(&resolved);
    if (audit_queue_available() && RecoveryInProgress()) {
        // No writer on a hot standby: the record goes with the call's result, for the client
        // (pg_mcp_bridge) to forward to the primary (mcp.ingest_standby_audit), and to the
        // server log, as pgaudit's would.
        resolved.record_id = random_record_id();
        standby_record = audit_record_json(&resolved);
        ereport(LOG, (errmsg("pg_mcp audit (standby): %s", standby_record)));
        return 0;
    }
    StringInfoData packed;
    initStringInfo(&packed);
    pack_audit_record(&packed, &resolved);
    int64 id = queue_audit_record(packed.data, packed.len, use_reservation, pending);
    pfree(packed.data);
    return id;
}

}  // namespace pg_mcp

// Trigger on mcp.audit_log and mcp.audit_anchors: refuses UPDATE, DELETE and TRUNCATE,
// except the DELETE that purge_audit runs (a backend-local flag that SQL cannot set).
PG_MCP_FUNCTION(pg_mcp_audit_log_guard) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "_audit_log_guard must be called as a trigger");
    TriggerData *trigger = (TriggerData *)fcinfo->context;
    if (TRIGGER_FIRED_BY_DELETE(trigger->tg_event) && pg_mcp::purge_in_progress)
        return PointerGetDatum(trigger->tg_trigtuple);
    const char *operation = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event)   ? "UPDATE"
                            : TRIGGER_FIRED_BY_DELETE(trigger->tg_event) ? "DELETE"
                                                                         : "TRUNCATE";
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("%s is append-only: %s is not allowed",
                           RelationGetRelationName(trigger->tg_relation), operation),
                    errhint("Old audit rows are removed only with mcp.purge_audit(older_than).")));
    pg_unreachable();
}

namespace {

struct Purge {
    Datum cutoff;
    int64 deleted;
};

void purge_rows(void *arg) {
    Purge *purge = (Purge *)arg;
    Oid types[1] = {TIMESTAMPTZOID};
    Datum values[1] = {purge->cutoff};
    pg_mcp::purge_in_progress = true;
    int rc = SPI_execute_with_args("SELECT mcp._purge_audit_prefix($1)", 1, types, values, NULL,
                                   false, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "audit purge failed: %s", SPI_result_code_string(rc));
    bool isnull;
    purge->deleted =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void end_purge(void *) {
    pg_mcp::purge_in_progress = false;
}

}  // namespace

// mcp.purge_audit(older_than interval): retention. Deletes the oldest rows (a prefix of the
// chain, so the rest stays verifiable from a recorded anchor), records the purge itself in
// the audit log, and returns the number of rows deleted.
PG_MCP_FUNCTION(pg_mcp_purge_audit) {
    Purge purge;
    purge.cutoff = DirectFunctionCall2(timestamptz_mi_interval,
                                       TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
                                       PG_GETARG_DATUM(0));
    purge.deleted = 0;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    // The flag must not outlive the DELETE, even when it fails.
    pg_mcp::run_with_cleanup(purge_rows, end_purge, &purge);
    SPI_finish();

    pg_mcp::AuditRecord record;
    pg_mcp::init_audit_record(&record);
    record.called_at = GetCurrentTimestamp();
    record.caller_role = GetUserNameFromId(GetOuterUserId(), false);
    record.tool_name = "mcp.purge_audit";
    record.status = "purge";
    record.duration_ms = 0;
    record.rows_returned = purge.deleted;
    record.message = psprintf("purged " INT64_FORMAT " audit rows older than %s", purge.deleted,
                              JsonEncodeDateTime(NULL, purge.cutoff, TIMESTAMPTZOID, NULL));
    pg_mcp::write_audit_record(&record);
    PG_RETURN_INT64(purge.deleted);
}
