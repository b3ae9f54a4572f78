// Audit records in the queue, and the chain's hash over an mcp.audit_log row.
//
// A calling backend packs its record into a compact binary form (no JSON, nothing to parse);
// the audit writer unpacks it straight into the row's datums. The chain's hash covers a
// canonical encoding of the row's columns that does not depend on any setting (time zone,
// float digits, date style) or on the server encoding (text is hashed as UTF-8), and that
// the writer and mcp._audit_row_hash compute with the same code. Plain C style.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/tupdesc.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
}

#include "audit.hpp"

namespace pg_mcp {

// Appends the record's packed form to out.
void pack_audit_record(StringInfo out, const AuditRecord *record, const char *caller_name,
                       const char *session_name, int32 backend_pid);

// A packed record's fields, pointing into the packed bytes (which must outlive it). Strings
// are not NUL-terminated: use the lengths; a length of -1 is NULL.
struct PackedText {
    const char *data;
    int32 len;
};
struct UnpackedRecord {
    int64 called_at;
    double duration_ms;
    int32 tool_version;   // 0: NULL
    int32 rows_returned;  // -1: NULL
    int32 backend_pid;
    PackedText caller_role, session_role, agent_name, client_info, request_id, tool_name, principal,
        status, sqlstate, message;
    PackedText arguments;  // a jsonb varlena (4-byte header), or len -1
    PackedText record_id;  // a forwarded record's uuid (text), or len -1
    bool cost_measured;    // false: the cost columns are NULL
    double plan_cost;      // -1: NULL
    int64 shared_blks_hit, shared_blks_read;
};

// Unpacks; errors if the bytes are not a whole record.
void unpack_audit_record(const char *data, Size len, UnpackedRecord *out);

// sha256(prev || canonical encoding of every column but prev_hash and row_hash, in column
// order). prev may be NULL (the first row of a chain).
void audit_row_hash(const uint8 *prev, Size prev_len, TupleDesc desc, const Datum *values,
                    const bool *nulls, uint8 digest[PG_SHA256_DIGEST_LENGTH]);

}  // namespace pg_mcp
