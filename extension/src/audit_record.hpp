// The forms of an audit record (audit.hpp), all generated from PG_MCP_AUDIT_FIELDS: bounding,
// the compact binary form that passes through the queue (no JSON, nothing to parse), the
// writer's datums, the JSON form of hot standbys and the forwarded ingest; and the chain's hash
// over an mcp.audit_log row. The hash covers a canonical encoding of the row's columns that
// does not depend on any setting (time zone, float digits, date style) or on the server
// encoding (text is hashed as UTF-8), and that the writer and mcp._audit_row_hash compute with
// the same code. Plain C style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "access/tupdesc.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
}

#include "audit.hpp"

namespace pg_mcp {

// The fields, in PG_MCP_AUDIT_FIELDS order.
enum class AuditField {
#define PG_MCP_AUDIT_ENUM(member, kind, type, limit, required, column) member,
    PG_MCP_AUDIT_FIELDS(PG_MCP_AUDIT_ENUM)
#undef PG_MCP_AUDIT_ENUM
        Count
};
constexpr int kAuditFieldCount = (int)AuditField::Count;

struct AuditFieldSpec {
    const char *name;
    AuditKind kind;
    Oid type;
    int limit;
    bool required;
    bool column;  // a column of mcp.audit_log
};
extern const AuditFieldSpec kAuditFields[kAuditFieldCount];

// The field of an mcp.audit_log column name; -1 for none.
int audit_field_index(const char *name);

// The most bytes a bounded record packs into (checked against the queue's smallest size).
constexpr Size kMaxPackedAuditRecord = 31 * 1024;

// Cuts every field with a limit to it (text on a character boundary; arguments over their
// limit become a JSON string holding a prefix of their text), and records each cut in
// `truncated`: {"field": {"bytes": full size, "sha256": hex of the full value}}. Arguments of
// refused calls get kAuditRefusedArgumentsLimit. Then makes it insertable whatever the caller
// set: a required field left NULL (or negative) becomes empty (or 0), and an integer beyond its
// column's range is clamped. Fields are copied only when cut.
void bound_audit_record(AuditRecord *record);

// The most bytes the record can pack into once bounded, whatever its NULL fields become (the
// outcome: status, sqlstate, message, notes of cut fields): what call_tool reserves in the
// queue before the SQL runs. Computed from the fields' sizes and limits, nothing copied.
Size packed_size_bound(const AuditRecord *record);

// Appends the record's packed form to out (at most kMaxPackedAuditRecord bytes once bounded).
void pack_audit_record(StringInfo out, const AuditRecord *record);

// A packed record's fields, pointing into the packed bytes (which must outlive it). Text is
// not NUL-terminated: use len. Json fields are jsonb varlenas (4-byte header).
struct AuditFieldValue {
    bool isnull;
    int64 integer;  // Time, Int
    double number;  // Float
    const char *data;
    int32 len;  // Name, Text, Json
};
struct UnpackedRecord {
    AuditFieldValue values[kAuditFieldCount];
    const AuditFieldValue &operator[](AuditField field) const { return values[(int)field]; }
};

// Unpacks; errors if the bytes are not a whole record.
void unpack_audit_record(const char *data, Size len, UnpackedRecord *out);

// The datum of a field for a column of type column_type (checked to be the field's type).
Datum audit_field_datum(const UnpackedRecord *record, int field, bool *isnull);

// The record as a JSON object (keys: the field names), and back. From JSON, every field is
// checked against its kind and `required`; an error names the record (label) and the field.
char *audit_record_json(const AuditRecord *record);
void audit_record_from_json(Jsonb *json, const char *label, AuditRecord *record);

// sha256(prev || canonical encoding of every column but prev_hash and row_hash, in column
// order). prev may be NULL (the first row of a chain). A hasher is made once for a table
// definition (in the current memory context) and hashes any number of its rows.
struct AuditHasher;
AuditHasher *make_audit_hasher(TupleDesc desc);
void audit_row_hash(AuditHasher *hasher, const uint8 *prev, Size prev_len, const Datum *values,
                    const bool *nulls, uint8 digest[PG_SHA256_DIGEST_LENGTH]);

}  // namespace pg_mcp
