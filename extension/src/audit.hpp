// The audit trail: one mcp.audit_log row per call, and the guard that keeps it append-only.
// Plain C style.
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

#include "call_cost.hpp"

namespace pg_mcp {

struct AuditRecord {
    CallCost cost;  // measured: the tool's SQL ran (plan_cost -1: no plan started)
    TimestampTz called_at;
    Oid caller_role;
    const char *tool_name;
    const char *principal;  // NULL when the caller has none
    int32 tool_version;     // 0 when the tool was not found
    Datum arguments;        // jsonb, already redacted; 0 for NULL
    const char *status;
    double duration_ms;
    int64 rows_returned;   // -1 for NULL
    const char *sqlstate;  // NULL when none
    const char *message;   // NULL when none
    // Who made the call, as the client reported it; NULL: the pg_mcp.agent_name,
    // pg_mcp.client_info and pg_mcp.request_id settings.
    const char *agent_name;
    const char *client_info;
    const char *request_id;
    // A record forwarded from a hot standby: its id, which the audit writer adds to
    // mcp.audit_forwarded in the same transaction as the row. NULL otherwise.
    const char *record_id;
};

// Hands the record to the audit queue (audit_queue.hpp): in durable mode returns once the row
// is committed and flushed, with its mcp.audit_log id; in fast mode once it is queued (0).
int64 write_audit_record(const AuditRecord *record);

// On a hot standby write_audit_record cannot queue: it keeps the record as JSON (with a random
// record_id) for the caller to return to the client. Returns it once (then NULL).
char *take_standby_audit_record();

}  // namespace pg_mcp
