// The audit trail: one mcp.audit_log row per call, and the guard that keeps it append-only.
// The record's fields are listed once, in PG_MCP_AUDIT_FIELDS; the struct, its packed form for
// the queue, the writer's row, its JSON form (hot standbys) and the forwarded ingest are all
// generated from that list (audit_record.cpp). Adding a column means adding it to the table's
// DDL and one line here. Plain C style.
#pragma once

extern "C" {
#include "postgres.h"
#include "catalog/pg_type_d.h"
#include "datatype/timestamp.h"
}

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

// X(member, kind, column type, limit in bytes (0: unbounded by size), required). Columns of
// mcp.audit_log by name, except record_id (a forwarded record's id: mcp.audit_forwarded).
#define PG_MCP_AUDIT_FIELDS(X)                                \
    X(called_at, Time, TIMESTAMPTZOID, 0, true)               \
    X(caller_role, Name, NAMEOID, 0, true)                    \
    X(session_role, Name, NAMEOID, 0, true)                   \
    X(agent_name, Text, TEXTOID, 256, false)                  \
    X(client_info, Text, TEXTOID, 1024, false)                \
    X(request_id, Text, TEXTOID, 256, false)                  \
    X(tool_name, Text, TEXTOID, 256, true)                    \
    X(tool_version, Int, INT4OID, 0, false)                   \
    X(arguments, Json, JSONBOID, kAuditArgumentsLimit, false) \
    X(principal, Text, TEXTOID, 256, false)                   \
    X(status, Text, TEXTOID, 32, true)                        \
    X(duration_ms, Float, FLOAT8OID, 0, true)                 \
    X(rows_returned, Int, INT4OID, 0, false)                  \
    X(plan_cost, Float, FLOAT8OID, 0, false)                  \
    X(shared_blks_hit, Int, INT8OID, 0, false)                \
    X(shared_blks_read, Int, INT8OID, 0, false)               \
    X(sqlstate, Text, TEXTOID, 5, false)                      \
    X(message, Text, TEXTOID, kAuditMessageLimit, false)      \
    X(backend_pid, Int, INT4OID, 0, true)                     \
    X(truncated, Json, JSONBOID, 4096, false)                 \
    X(record_id, Text, UUIDOID, 36, false)

struct AuditRecord {
#define PG_MCP_AUDIT_MEMBER(member, kind, type, limit, required) kind##Field member;
    PG_MCP_AUDIT_FIELDS(PG_MCP_AUDIT_MEMBER)
#undef PG_MCP_AUDIT_MEMBER
};

// Every field NULL.
void init_audit_record(AuditRecord *record);

// Hands the record to the audit queue (audit_queue.hpp): in durable mode returns once the row
// is committed and flushed, with its mcp.audit_log id; in fast mode once it is queued (0).
// Fields left NULL that have a default are filled in first: session_role (the session user),
// backend_pid, and agent_name, client_info, request_id (the pg_mcp.* settings); then every
// field is bounded (bound_audit_record).
int64 write_audit_record(const AuditRecord *record);

// On a hot standby write_audit_record cannot queue: it keeps the record as JSON (with a random
// record_id) for the caller to return to the client. Returns it once (then NULL).
char *take_standby_audit_record();

}  // namespace pg_mcp
