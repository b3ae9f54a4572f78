// The audit trail: one mcp.audit_log row per call, and the guard that keeps it append-only.
// The record's fields are listed once, in PG_MCP_AUDIT_FIELDS; the struct, its packed form for
// the queue, the writer's row, its JSON form (hot standbys) and the forwarded ingest are all
// generated from that list (audit_record.cpp). Adding a column means adding it to the table's
// DDL and one line here. Plain C style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
#include "datatype/timestamp.h"
}

#include "audit_queue.hpp"

namespace pg_mcp {

// How a field is held in the record, and how it is NULL.
using TimeField = TimestampTz;   // never NULL
using IntField = int64;          // negative: NULL
using FloatField = double;       // negative: NULL
using NameField = const char *;  // NULL: NULL (cut to NAMEDATALEN - 1 bytes)
using TextField = const char *;  // NULL: NULL
using JsonField = Datum;         // a jsonb; 0: NULL
enum class AuditKind { Time, Int, Float, Name, Text, Json };

// Bytes kept of the arguments of a call whose SQL ran, and of a call refused before it
// could run (not_found, denied, rate_limited, invalid_arguments); see bound_audit_record.
constexpr int kAuditArgumentsLimit = 16 * 1024;
constexpr int kAuditRefusedArgumentsLimit = 1024;
// Bytes kept of an error message (the agent's error text is cut alike).
constexpr int kAuditMessageLimit = 4096;

// X(member, kind, type, limit in bytes (0: unbounded by size), required, column): column
// fields are mcp.audit_log's columns of that name and type; record_id (a forwarded record's
// id) goes to mcp.audit_forwarded instead.
#define PG_MCP_AUDIT_FIELDS(X)                                      \
    X(called_at, Time, TIMESTAMPTZOID, 0, true, true)               \
    X(caller_role, Name, NAMEOID, 0, true, true)                    \
    X(session_role, Name, NAMEOID, 0, true, true)                   \
    X(agent_name, Text, TEXTOID, 256, false, true)                  \
    X(client_info, Text, TEXTOID, 1024, false, true)                \
    X(request_id, Text, TEXTOID, 256, false, true)                  \
    X(tool_name, Text, TEXTOID, 256, true, true)                    \
    X(tool_version, Int, INT4OID, 0, false, true)                   \
    X(arguments, Json, JSONBOID, kAuditArgumentsLimit, false, true) \
    X(principal, Text, TEXTOID, 256, false, true)                   \
    X(status, Text, TEXTOID, 32, true, true)                        \
    X(duration_ms, Float, FLOAT8OID, 0, true, true)                 \
    X(rows_returned, Int, INT4OID, 0, false, true)                  \
    X(plan_cost, Float, FLOAT8OID, 0, false, true)                  \
    X(shared_blks_hit, Int, INT8OID, 0, false, true)                \
    X(shared_blks_read, Int, INT8OID, 0, false, true)               \
    X(sqlstate, Text, TEXTOID, 5, false, true)                      \
    X(message, Text, TEXTOID, kAuditMessageLimit, false, true)      \
    X(backend_pid, Int, INT4OID, 0, true, true)                     \
    X(truncated, Json, JSONBOID, 4096, false, true)                 \
    X(auth_issuer, Text, TEXTOID, 1024, false, true)                \
    X(auth_subject, Text, TEXTOID, 256, false, true)                \
    X(auth_client_id, Text, TEXTOID, 256, false, true)              \
    X(trace_id, Text, TEXTOID, 32, false, true)                     \
    X(span_id, Text, TEXTOID, 16, false, true)                      \
    X(confirmation, Json, JSONBOID, 2048, false, true)              \
    X(record_id, Text, UUIDOID, 36, false, false)

struct AuditRecord {
#define PG_MCP_AUDIT_MEMBER(member, kind, type, limit, required, column) kind##Field member;
    PG_MCP_AUDIT_FIELDS(PG_MCP_AUDIT_MEMBER)
#undef PG_MCP_AUDIT_MEMBER
};

// Every field NULL.
void init_audit_record(AuditRecord *record);

// Fills the fields left NULL that have a default: session_role (the session user), backend_pid,
// and agent_name, client_info, request_id (the pg_mcp.* settings). call_tool does it before the
// tool's SQL runs, so nothing the SQL does changes them (and no lookup can fail after it).
void resolve_audit_context(AuditRecord *record);

// Hands the record to the audit queue (audit_queue.hpp): in durable mode returns once the row
// is committed and flushed, with its mcp.audit_log id; in fast mode once it is queued (0).
// The context is resolved (resolve_audit_context) and every field bounded
// (bound_audit_record) first. use_reservation: the record of the call that reserved room
// (reserve_audit_record) before its SQL ran.
// pending: a caller that confirms durability itself (mcp.call_tool_deferred) learns where the
// record waits instead of waiting here (durable mode only; else pending->slot is -1).
int64 write_audit_record(const AuditRecord *record, bool use_reservation = false,
                         AuditPending *pending = NULL);

// The trace of the call in progress, for the rest of its transaction: what the audit row records
// and what pg_mcp.traceparent shows (its show hook), without a round through the setting. Its
// first 55 characters (version 00's form, all the audit row uses) are kept; NULL or an invalid
// one clears it.
constexpr size_t kTraceparentLength = 55;
void set_call_traceparent(const char *traceparent);
const char *call_traceparent();  // NULL: none in this transaction

// On a hot standby write_audit_record cannot queue: it keeps the record as JSON (with a random
// record_id) for the caller to return to the client. Returns it once (then NULL).
char *take_standby_audit_record();

}  // namespace pg_mcp
