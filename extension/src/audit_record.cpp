#include "audit_record.hpp"

#include "boundary.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/json.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace pg_mcp {

const AuditFieldSpec kAuditFields[kAuditFieldCount] = {
#define PG_MCP_AUDIT_SPEC(member, kind, type, limit, required, column) \
    {#member, AuditKind::kind, type, limit, required, column},
    PG_MCP_AUDIT_FIELDS(PG_MCP_AUDIT_SPEC)
#undef PG_MCP_AUDIT_SPEC
};

namespace {

// The largest packed record: every field at its limit (names at NAMEDATALEN), plus 16 bytes of
// header per field. Each database's queue takes a record up to half its size, and
// pg_mcp.audit_queue_size is at least 64 kB.
constexpr Size max_packed_size() {
    return 0
#define PG_MCP_AUDIT_SIZE(member, kind, type, limit, required, column) \
    +16 + (AuditKind::kind == AuditKind::Name ? NAMEDATALEN : (limit))
        PG_MCP_AUDIT_FIELDS(PG_MCP_AUDIT_SIZE)
#undef PG_MCP_AUDIT_SIZE
            ;
}
static_assert(max_packed_size() <= kMaxPackedAuditRecord, "audit field limits exceed the record");
static_assert(kMaxPackedAuditRecord + sizeof(uint32) <= 64 * 1024 / 2,
              "a bounded audit record must fit the smallest audit queue");

void pack_int32(StringInfo out, int32 value) {
    appendBinaryStringInfo(out, (const char *)&value, sizeof value);
}

void pack_bytes(StringInfo out, const char *value, int32 len) {
    pack_int32(out, value == NULL ? -1 : len);
    if (value != NULL) appendBinaryStringInfo(out, value, len);
}

struct Reader {
    const char *at;
    const char *end;

    void take(void *into, Size n) {
        if ((Size)(end - at) < n) elog(ERROR, "truncated audit record in the queue");
        memcpy(into, at, n);
        at += n;
    }
    void bytes(AuditFieldValue *value) {
        take(&value->len, sizeof value->len);
        value->isnull = value->len < 0;
        value->data = at;
        if (value->len > 0) {
            if (end - at < value->len) elog(ERROR, "truncated audit record in the queue");
            at += value->len;
        }
    }
};

// A field of the record, by its index.
void *field_address(AuditRecord *record, int field) {
    switch ((AuditField)field) {
#define PG_MCP_AUDIT_ADDRESS(member, kind, type, limit, required, column) \
    case AuditField::member:                                              \
        return &record->member;
        PG_MCP_AUDIT_FIELDS(PG_MCP_AUDIT_ADDRESS)
#undef PG_MCP_AUDIT_ADDRESS
        case AuditField::Count:
            break;
    }
    elog(ERROR, "no audit field %d", field);
    pg_unreachable();
}

const void *field_address(const AuditRecord *record, int field) {
    return field_address(const_cast<AuditRecord *>(record), field);
}

bool refused_before_running(const char *status) {
    return status != NULL &&
           (strcmp(status, "not_found") == 0 || strcmp(status, "denied") == 0 ||
            strcmp(status, "rate_limited") == 0 || strcmp(status, "invalid_arguments") == 0);
}

// Notes a cut field in `truncated`: its full size and the SHA-256 of its full value.
void note_cut(StringInfo notes, const char *field, const char *data, Size len) {
    uint8 digest[PG_SHA256_DIGEST_LENGTH];
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (pg_cryptohash_init(ctx) < 0 || pg_cryptohash_update(ctx, (const uint8 *)data, len) < 0 ||
        pg_cryptohash_final(ctx, digest, sizeof digest) < 0)
        elog(ERROR, "sha256 failed: %s", pg_cryptohash_error(ctx));
    pg_cryptohash_free(ctx);
    char hex[2 * PG_SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    appendStringInfo(notes, "%s\"%s\":{\"bytes\":%zu,\"sha256\":\"%s\"}", notes->len > 1 ? "," : "",
                     field, (size_t)len, hex);
}

// A jsonb over `limit` bytes becomes a JSON string: the start of its text.
Datum cut_json(Datum value, int limit, const char *field, StringInfo notes) {
    Jsonb *jsonb = DatumGetJsonbP(value);
    if ((int)VARSIZE(jsonb) <= limit) return PointerGetDatum(jsonb);
    char *text = JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));
    int len = (int)strlen(text);
    note_cut(notes, field, text, len);
    JsonbValue prefix;
    prefix.type = jbvString;
    prefix.val.string.val = text;
    prefix.val.string.len = pg_mbcliplen(text, len, limit - 64);
    return PointerGetDatum(JsonbValueToJsonb(&prefix));
}

const char *cut_text(const char *value, int limit, const char *field, StringInfo notes) {
    int len = (int)strlen(value);
    if (len <= limit) return value;
    note_cut(notes, field, value, len);
    return pnstrdup(value, pg_mbcliplen(value, len, limit));
}

[[noreturn]] void bad_field(const char *label, const AuditFieldSpec &spec, const char *expected) {
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("field \"%s\" of audit record %s must be %s", spec.name, label, expected)));
}

char *string_of(const JsonbValue *value, const char *label, const AuditFieldSpec &spec) {
    if (value->type != jbvString) bad_field(label, spec, "a string");
    return pnstrdup(value->val.string.val, value->val.string.len);
}

Datum numeric_of(const JsonbValue *value, const char *label, const AuditFieldSpec &spec) {
    if (value->type != jbvNumeric) bad_field(label, spec, "a number");
    return NumericGetDatum(value->val.numeric);
}

}  // namespace

int audit_field_index(const char *name) {
    for (int f = 0; f < kAuditFieldCount; f++)
        if (kAuditFields[f].column && strcmp(kAuditFields[f].name, name) == 0) return f;
    return -1;
}

void init_audit_record(AuditRecord *record) {
    memset(record, 0, sizeof *record);  // texts NULL, jsonb 0
    for (int f = 0; f < kAuditFieldCount; f++) {
        void *at = field_address(record, f);
        if (kAuditFields[f].kind == AuditKind::Int) *(IntField *)at = -1;
        if (kAuditFields[f].kind == AuditKind::Float) *(FloatField *)at = -1;
    }
}

void bound_audit_record(AuditRecord *record) {
    StringInfoData notes;
    initStringInfo(&notes);
    appendStringInfoChar(&notes, '{');
    for (int f = 0; f < kAuditFieldCount; f++) {
        const AuditFieldSpec &spec = kAuditFields[f];
        if ((AuditField)f == AuditField::truncated) continue;  // last, with the notes
        int limit = spec.kind == AuditKind::Name ? NAMEDATALEN - 1 : spec.limit;
        if ((AuditField)f == AuditField::arguments && refused_before_running(record->status))
            limit = kAuditRefusedArgumentsLimit;
        if (limit <= 0) continue;
        void *at = field_address(record, f);
        if (spec.kind == AuditKind::Json && *(JsonField *)at != (Datum)0)
            *(JsonField *)at = cut_json(*(JsonField *)at, limit, spec.name, &notes);
        else if ((spec.kind == AuditKind::Text || spec.kind == AuditKind::Name) &&
                 *(TextField *)at != NULL)
            *(TextField *)at = cut_text(*(TextField *)at, limit, spec.name, &notes);
    }
    if (notes.len > 1) {
        appendStringInfoChar(&notes, '}');
        Datum cut = DirectFunctionCall1(jsonb_in, CStringGetDatum(notes.data));
        // A forwarded record may carry the notes of the standby's own cuts.
        record->truncated = record->truncated == (Datum)0
                                ? cut
                                : DirectFunctionCall2(jsonb_concat, record->truncated, cut);
    }
    // What the writer can always insert: required fields set, integers within their column.
    for (int f = 0; f < kAuditFieldCount; f++) {
        const AuditFieldSpec &spec = kAuditFields[f];
        void *at = field_address(record, f);
        if (spec.kind == AuditKind::Int && spec.type == INT4OID && *(IntField *)at > PG_INT32_MAX)
            *(IntField *)at = PG_INT32_MAX;
        if (!spec.required) continue;
        if (spec.kind == AuditKind::Int && *(IntField *)at < 0) *(IntField *)at = 0;
        if (spec.kind == AuditKind::Float && !(*(FloatField *)at >= 0)) *(FloatField *)at = 0;
        if ((spec.kind == AuditKind::Text || spec.kind == AuditKind::Name) &&
            *(TextField *)at == NULL)
            *(TextField *)at = "";
    }
    if (record->truncated != (Datum)0) {
        StringInfoData ignored;
        initStringInfo(&ignored);
        record->truncated =
            cut_json(record->truncated, kAuditFields[(int)AuditField::truncated].limit, "truncated",
                     &ignored);
    }
}

Size packed_size_bound(const AuditRecord *record) {
    Size total = 0;
    for (int f = 0; f < kAuditFieldCount; f++) {
        const AuditFieldSpec &spec = kAuditFields[f];
        const void *at = field_address(record, f);
        Size limit = spec.kind == AuditKind::Name ? NAMEDATALEN - 1 : (Size)spec.limit;
        Size size = 0;
        if (spec.kind == AuditKind::Name || spec.kind == AuditKind::Text) {
            const char *text = *(const TextField *)at;
            size = text == NULL ? limit : Min(strlen(text), limit);
        } else if (spec.kind == AuditKind::Json) {
            Datum value = *(const JsonField *)at;
            size = value == (Datum)0 ? limit : Min(VARSIZE_ANY(DatumGetPointer(value)), limit);
        }
        total += sizeof(int64) + size;  // a length word or a fixed-size value, and the bytes
    }
    return Min(total, kMaxPackedAuditRecord);
}

void pack_audit_record(StringInfo out, const AuditRecord *record) {
    for (int f = 0; f < kAuditFieldCount; f++) {
        const void *at = field_address(record, f);
        switch (kAuditFields[f].kind) {
            case AuditKind::Time:
            case AuditKind::Int:
                appendBinaryStringInfo(out, (const char *)at, sizeof(int64));
                break;
            case AuditKind::Float:
                appendBinaryStringInfo(out, (const char *)at, sizeof(double));
                break;
            case AuditKind::Name:
            case AuditKind::Text: {
                const char *text = *(const TextField *)at;
                pack_bytes(out, text, text == NULL ? 0 : (int32)strlen(text));
                break;
            }
            case AuditKind::Json: {
                Datum value = *(const JsonField *)at;
                if (value == (Datum)0) {
                    pack_int32(out, -1);
                } else {
                    Jsonb *jsonb = DatumGetJsonbP(value);  // 4-byte header once detoasted
                    pack_bytes(out, (const char *)jsonb, (int32)VARSIZE(jsonb));
                }
                break;
            }
        }
    }
}

void unpack_audit_record(const char *data, Size len, UnpackedRecord *out) {
    Reader reader{data, data + len};
    for (int f = 0; f < kAuditFieldCount; f++) {
        AuditFieldValue *value = &out->values[f];
        memset(value, 0, sizeof *value);
        switch (kAuditFields[f].kind) {
            case AuditKind::Time:
                reader.take(&value->integer, sizeof value->integer);
                break;
            case AuditKind::Int:
                reader.take(&value->integer, sizeof value->integer);
                value->isnull = value->integer < 0;
                break;
            case AuditKind::Float:
                reader.take(&value->number, sizeof value->number);
                value->isnull = value->number < 0;
                break;
            case AuditKind::Name:
            case AuditKind::Text:
            case AuditKind::Json:
                reader.bytes(value);
                break;
        }
    }
    if (reader.at != reader.end) elog(ERROR, "malformed audit record in the queue");
}

Datum audit_field_datum(const UnpackedRecord *record, int field, bool *isnull) {
    const AuditFieldValue &value = record->values[field];
    *isnull = value.isnull;
    if (value.isnull) return (Datum)0;
    switch (kAuditFields[field].kind) {
        case AuditKind::Time:
            return TimestampTzGetDatum(value.integer);
        case AuditKind::Int:
            return kAuditFields[field].type == INT8OID ? Int64GetDatum(value.integer)
                                                       : Int32GetDatum((int32)value.integer);
        case AuditKind::Float:
            return Float8GetDatum(value.number);
        case AuditKind::Name: {
            Name name = (Name)palloc0(NAMEDATALEN);
            memcpy(NameStr(*name), value.data, Min(value.len, NAMEDATALEN - 1));
            return NameGetDatum(name);
        }
        case AuditKind::Text:
            return PointerGetDatum(cstring_to_text_with_len(value.data, value.len));
        case AuditKind::Json: {
            char *jsonb = (char *)palloc(value.len);  // a copy: aligned, as a varlena must be
            memcpy(jsonb, value.data, value.len);
            return PointerGetDatum(jsonb);
        }
    }
    pg_unreachable();
}

char *audit_record_json(const AuditRecord *record) {
    StringInfoData out;
    initStringInfo(&out);
    appendStringInfoChar(&out, '{');
    for (int f = 0; f < kAuditFieldCount; f++) {
        const AuditFieldSpec &spec = kAuditFields[f];
        const void *at = field_address(record, f);
        if (f > 0) appendStringInfoChar(&out, ',');
        escape_json(&out, spec.name);
        appendStringInfoChar(&out, ':');
        switch (spec.kind) {
            case AuditKind::Time:
                escape_json(&out,
                            JsonEncodeDateTime(NULL, TimestampTzGetDatum(*(const TimeField *)at),
                                               TIMESTAMPTZOID, NULL));
                break;
            case AuditKind::Int:
                if (*(const IntField *)at < 0)
                    appendStringInfoString(&out, "null");
                else
                    appendStringInfo(&out, INT64_FORMAT, *(const IntField *)at);
                break;
            case AuditKind::Float:
                if (*(const FloatField *)at < 0)
                    appendStringInfoString(&out, "null");
                else
                    appendStringInfo(&out, "%.17g", *(const FloatField *)at);
                break;
            case AuditKind::Name:
            case AuditKind::Text:
                if (*(const TextField *)at == NULL)
                    appendStringInfoString(&out, "null");
                else
                    escape_json(&out, *(const TextField *)at);
                break;
            case AuditKind::Json: {
                Datum value = *(const JsonField *)at;
                if (value == (Datum)0) {
                    appendStringInfoString(&out, "null");
                } else {
                    Jsonb *jsonb = DatumGetJsonbP(value);
                    (void)JsonbToCString(&out, &jsonb->root, VARSIZE(jsonb));
                }
                break;
            }
        }
    }
    appendStringInfoChar(&out, '}');
    return out.data;
}

void audit_record_from_json(Jsonb *json, const char *label, AuditRecord *record) {
    init_audit_record(record);
    if (!JB_ROOT_IS_OBJECT(json))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("audit record %s must be a JSON object", label)));
    for (int f = 0; f < kAuditFieldCount; f++) {
        const AuditFieldSpec &spec = kAuditFields[f];
        JsonbValue *value =
            getKeyJsonValueFromContainer(&json->root, spec.name, strlen(spec.name), NULL);
        if (value == NULL || value->type == jbvNull) {
            if (spec.required)
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                errmsg("audit record %s lacks the required field \"%s\"", label,
                                       spec.name)));
            continue;
        }
        void *at = field_address(record, f);
        switch (spec.kind) {
            case AuditKind::Time:
                *(TimeField *)at = DatumGetTimestampTz(DirectFunctionCall3(
                    timestamptz_in, CStringGetDatum(string_of(value, label, spec)),
                    ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
                break;
            case AuditKind::Int: {
                int64 n = DatumGetInt64(
                    DirectFunctionCall1(numeric_int8, numeric_of(value, label, spec)));
                if (n < 0 || (spec.type == INT4OID && n > PG_INT32_MAX))
                    bad_field(label, spec, "a non-negative integer in range");
                *(IntField *)at = n;
                break;
            }
            case AuditKind::Float: {
                double n = DatumGetFloat8(
                    DirectFunctionCall1(numeric_float8, numeric_of(value, label, spec)));
                if (!(n >= 0)) bad_field(label, spec, "a non-negative number");
                *(FloatField *)at = n;
                break;
            }
            case AuditKind::Name:
            case AuditKind::Text: {
                char *text = string_of(value, label, spec);
                if (spec.type == UUIDOID)  // normalised, so the writer's cast cannot fail
                    text = DatumGetCString(DirectFunctionCall1(
                        uuid_out, DirectFunctionCall1(uuid_in, CStringGetDatum(text))));
                *(TextField *)at = text;
                break;
            }
            case AuditKind::Json:
                *(JsonField *)at = PointerGetDatum(JsonbValueToJsonb(value));
                break;
        }
    }
}

namespace {

// The hash input, built in one buffer and hashed once.
void add_bytes(StringInfo out, const char *data, Size len) {
    uint32 be = pg_hton32((uint32)len);
    appendBinaryStringInfo(out, (const char *)&be, sizeof be);
    appendBinaryStringInfo(out, data, (int)len);
}

void add_utf8(StringInfo out, const char *data, Size len) {
    char *utf8 = pg_server_to_any(data, (int)len, PG_UTF8);
    add_bytes(out, utf8, utf8 == data ? len : strlen(utf8));
    if (utf8 != data) pfree(utf8);
}

void add_int64(StringInfo out, int64 value) {
    uint64 be = pg_hton64((uint64)value);
    appendBinaryStringInfo(out, (const char *)&be, sizeof be);
}

void add_column(StringInfo out, Oid type, Datum value) {
    switch (type) {
        case INT8OID:
        case TIMESTAMPTZOID:
            add_int64(out, DatumGetInt64(value));
            return;
        case INT4OID: {
            uint32 be = pg_hton32((uint32)DatumGetInt32(value));
            appendBinaryStringInfo(out, (const char *)&be, sizeof be);
            return;
        }
        case FLOAT8OID: {
            double number = DatumGetFloat8(value);
            int64 bits;
            memcpy(&bits, &number, sizeof bits);
            add_int64(out, bits);
            return;
        }
        case NAMEOID: {
            const char *name = NameStr(*DatumGetName(value));
            add_utf8(out, name, strlen(name));
            return;
        }
        case TEXTOID: {
            text *t = DatumGetTextPP(value);
            add_utf8(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
            return;
        }
        case BYTEAOID: {
            bytea *b = DatumGetByteaPP(value);
            add_bytes(out, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
            return;
        }
        case JSONBOID: {
            Jsonb *jsonb = DatumGetJsonbP(value);
            char *json = JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));
            add_utf8(out, json, strlen(json));
            return;
        }
        default: {
            Oid output;
            bool varlena;
            getTypeOutputInfo(type, &output, &varlena);
            char *json = OidOutputFunctionCall(output, value);
            add_utf8(out, json, strlen(json));
            return;
        }
    }
}

// The columns of mcp.audit_log in 0.1.0 (hashed in column order, NULL included); any other
// column is hashed only when it has a value.
bool added_after_first_release(const char *column) {
    static const char *const kFirst[] = {"id",
                                         "called_at",
                                         "caller_role",
                                         "session_role",
                                         "agent_name",
                                         "client_info",
                                         "request_id",
                                         "tool_name",
                                         "tool_version",
                                         "arguments",
                                         "principal",
                                         "status",
                                         "duration_ms",
                                         "rows_returned",
                                         "plan_cost",
                                         "shared_blks_hit",
                                         "shared_blks_read",
                                         "sqlstate",
                                         "message",
                                         "backend_pid"};
    for (const char *name : kFirst)
        if (strcmp(name, column) == 0) return false;
    return true;
}

}  // namespace

// How each column enters the hash, decided once per table definition.
enum class HashedAs : char { Skipped, Positional, Tagged };

struct AuditHasher {
    TupleDesc desc;
    HashedAs *how;
    StringInfoData content;  // reused from row to row
};

AuditHasher *make_audit_hasher(TupleDesc desc) {
    AuditHasher *hasher = (AuditHasher *)palloc0(sizeof(AuditHasher));
    hasher->desc = desc;
    hasher->how = (HashedAs *)palloc(sizeof(HashedAs) * Max(desc->natts, 1));
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        const char *name = NameStr(attr->attname);
        hasher->how[i] =
            attr->attisdropped || strcmp(name, "prev_hash") == 0 || strcmp(name, "row_hash") == 0
                ? HashedAs::Skipped
            : added_after_first_release(name) ? HashedAs::Tagged
                                              : HashedAs::Positional;
    }
    initStringInfo(&hasher->content);
    return hasher;
}

void audit_row_hash(AuditHasher *hasher, const uint8 *prev, Size prev_len, const Datum *values,
                    const bool *nulls, uint8 digest[PG_SHA256_DIGEST_LENGTH]) {
    StringInfo content = &hasher->content;
    resetStringInfo(content);
    if (prev != NULL) appendBinaryStringInfo(content, (const char *)prev, (int)prev_len);
    for (int i = 0; i < hasher->desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(hasher->desc, i);
        switch (hasher->how[i]) {
            case HashedAs::Skipped:
                break;
            case HashedAs::Tagged: {
                // Tagged by name and left out when NULL: rows written before the column existed
                // keep their hash, and no two columns' values can be taken for one another.
                if (nulls[i]) break;
                const char *name = NameStr(attr->attname);
                appendStringInfoChar(content, 2);
                add_bytes(content, name, strlen(name));
                add_column(content, attr->atttypid, values[i]);
                break;
            }
            case HashedAs::Positional:
                appendStringInfoChar(content, nulls[i] ? 0 : 1);
                if (!nulls[i]) add_column(content, attr->atttypid, values[i]);
                break;
        }
    }
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (pg_cryptohash_init(ctx) < 0 ||
        pg_cryptohash_update(ctx, (const uint8 *)content->data, content->len) < 0 ||
        pg_cryptohash_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
        elog(ERROR, "sha256 failed: %s", pg_cryptohash_error(ctx));
    pg_cryptohash_free(ctx);
}

}  // namespace pg_mcp

// mcp._audit_row_hash(r mcp.audit_log): the hash the audit writer gave row r, recomputed from
// its stored values and its prev_hash; mcp.verify_audit compares it with r.row_hash.
PG_MCP_FUNCTION(pg_mcp_audit_row_hash) {
    HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
    TupleDesc desc =
        lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
    HeapTupleData tuple;
    tuple.t_len = HeapTupleHeaderGetDatumLength(row);
    ItemPointerSetInvalid(&tuple.t_self);
    tuple.t_tableOid = InvalidOid;
    tuple.t_data = row;
    Datum *values = (Datum *)palloc(sizeof(Datum) * desc->natts);
    bool *nulls = (bool *)palloc(sizeof(bool) * desc->natts);
    heap_deform_tuple(&tuple, desc, values, nulls);
    const uint8 *prev = NULL;
    Size prev_len = 0;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (!attr->attisdropped && !nulls[i] && strcmp(NameStr(attr->attname), "prev_hash") == 0) {
            bytea *hash = DatumGetByteaPP(values[i]);
            prev = (const uint8 *)VARDATA_ANY(hash);
            prev_len = VARSIZE_ANY_EXHDR(hash);
        }
    }
    uint8 digest[PG_SHA256_DIGEST_LENGTH];
    pg_mcp::audit_row_hash(pg_mcp::make_audit_hasher(desc), prev, prev_len, values, nulls, digest);
    ReleaseTupleDesc(desc);
    bytea *result = (bytea *)palloc(VARHDRSZ + sizeof digest);
    SET_VARSIZE(result, VARHDRSZ + sizeof digest);
    memcpy(VARDATA(result), digest, sizeof digest);
    PG_RETURN_BYTEA_P(result);
}
