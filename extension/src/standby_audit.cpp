// Audit records of calls served by a hot standby, forwarded by the client to the primary:
// mcp._queue_forwarded_audit queues one into the audit writer as it was recorded (its role
// names and backend pid are the standby's), and mcp._await_forwarded_audit waits until every
// record queued so far is durable. mcp.ingest_standby_audit (SQL) drives both and keeps each
// record's id, so that a record sent twice is written once.
#include "audit.hpp"
#include "audit_queue.hpp"
#include "audit_record.hpp"
#include "boundary.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace {

const char *text_or_null(FunctionCallInfo fcinfo, int arg) {
    return PG_ARGISNULL(arg) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(arg));
}

}  // namespace

// mcp._queue_forwarded_audit(called_at, caller_role, session_role, agent_name, client_info,
// request_id, tool_name, tool_version, arguments, principal, status, duration_ms,
// rows_returned, sqlstate, message, backend_pid, record_id, plan_cost, shared_blks_hit,
// shared_blks_read): the caller has validated the
// values. The writer adds record_id to mcp.audit_forwarded with the row.
PG_MCP_FUNCTION(pg_mcp_queue_forwarded_audit) {
    for (int required : {0, 1, 2, 6, 10, 11, 15, 16})
        if (PG_ARGISNULL(required))
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("forwarded audit record lacks a required field (argument %d)",
                                   required + 1)));
    pg_mcp::AuditRecord record;
    memset(&record, 0, sizeof record);
    record.called_at = PG_GETARG_TIMESTAMPTZ(0);
    const char *caller = NameStr(*PG_GETARG_NAME(1));
    const char *session = NameStr(*PG_GETARG_NAME(2));
    record.agent_name = text_or_null(fcinfo, 3);
    record.client_info = text_or_null(fcinfo, 4);
    record.request_id = text_or_null(fcinfo, 5);
    record.tool_name = text_or_null(fcinfo, 6);
    record.tool_version = PG_ARGISNULL(7) ? 0 : PG_GETARG_INT32(7);
    record.arguments = PG_ARGISNULL(8) ? (Datum)0 : PG_GETARG_DATUM(8);
    record.principal = text_or_null(fcinfo, 9);
    record.status = text_or_null(fcinfo, 10);
    record.duration_ms = PG_GETARG_FLOAT8(11);
    record.rows_returned = PG_ARGISNULL(12) ? -1 : PG_GETARG_INT32(12);
    record.sqlstate = text_or_null(fcinfo, 13);
    record.message = text_or_null(fcinfo, 14);
    // Costs travel only together (the standby measured them, or not).
    if (!PG_ARGISNULL(18) && !PG_ARGISNULL(19)) {
        record.cost.measured = true;
        record.cost.plan_cost = PG_ARGISNULL(17) ? -1 : PG_GETARG_FLOAT8(17);
        record.cost.shared_blks_hit = PG_GETARG_INT64(18);
        record.cost.shared_blks_read = PG_GETARG_INT64(19);
    }
    // A uuid, so its text form is always valid input for the writer's uuid column.
    record.record_id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(16)));
    StringInfoData packed;
    initStringInfo(&packed);
    pg_mcp::pack_audit_record(&packed, &record, caller, session, PG_GETARG_INT32(15));
    pg_mcp::enqueue_audit_record(packed.data, packed.len, false);
    pfree(packed.data);
    PG_RETURN_VOID();
}

// mcp._await_forwarded_audit(): every record this session queued is committed and flushed.
PG_MCP_FUNCTION(pg_mcp_await_forwarded_audit) {
    PG_RETURN_INT64(pg_mcp::await_queued_audit_records());
}
