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
}

namespace pg_mcp {

namespace {

void pack_int32(StringInfo out, int32 value) {
    appendBinaryStringInfo(out, (const char *)&value, sizeof value);
}

void pack_text(StringInfo out, const char *value) {
    if (value == NULL) {
        pack_int32(out, -1);
        return;
    }
    int32 len = (int32)strlen(value);
    pack_int32(out, len);
    appendBinaryStringInfo(out, value, len);
}

struct Reader {
    const char *at;
    const char *end;

    void take(void *into, Size n) {
        if ((Size)(end - at) < n) elog(ERROR, "truncated audit record in the queue");
        memcpy(into, at, n);
        at += n;
    }
    PackedText text() {
        PackedText value;
        take(&value.len, sizeof value.len);
        value.data = at;
        if (value.len > 0) {
            if (end - at < value.len) elog(ERROR, "truncated audit record in the queue");
            at += value.len;
        }
        return value;
    }
};

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

}  // namespace

void pack_audit_record(StringInfo out, const AuditRecord *record, const char *caller_name,
                       const char *session_name, int32 backend_pid) {
    appendBinaryStringInfo(out, (const char *)&record->called_at, sizeof record->called_at);
    appendBinaryStringInfo(out, (const char *)&record->duration_ms, sizeof record->duration_ms);
    pack_int32(out, record->tool_version);
    pack_int32(out, record->rows_returned < 0
                        ? -1
                        : (int32)Min(record->rows_returned, (int64)PG_INT32_MAX));
    pack_int32(out, backend_pid);
    pack_text(out, caller_name);
    pack_text(out, session_name);
    pack_text(out, record->agent_name);
    pack_text(out, record->client_info);
    pack_text(out, record->request_id);
    pack_text(out, record->tool_name);
    pack_text(out, record->principal);
    pack_text(out, record->status);
    pack_text(out, record->sqlstate);
    pack_text(out, record->message);
    if (record->arguments == (Datum)0) {
        pack_int32(out, -1);
    } else {
        Jsonb *arguments = DatumGetJsonbP(record->arguments);  // 4-byte header once detoasted
        pack_int32(out, (int32)VARSIZE(arguments));
        appendBinaryStringInfo(out, (const char *)arguments, (int)VARSIZE(arguments));
    }
    pack_text(out, record->record_id);
    char measured = record->cost.measured ? 1 : 0;
    appendBinaryStringInfo(out, &measured, 1);
    if (measured) {
        appendBinaryStringInfo(out, (const char *)&record->cost.plan_cost,
                               sizeof record->cost.plan_cost);
        appendBinaryStringInfo(out, (const char *)&record->cost.shared_blks_hit,
                               sizeof record->cost.shared_blks_hit);
        appendBinaryStringInfo(out, (const char *)&record->cost.shared_blks_read,
                               sizeof record->cost.shared_blks_read);
    }
}

void unpack_audit_record(const char *data, Size len, UnpackedRecord *out) {
    Reader reader{data, data + len};
    reader.take(&out->called_at, sizeof out->called_at);
    reader.take(&out->duration_ms, sizeof out->duration_ms);
    reader.take(&out->tool_version, sizeof out->tool_version);
    reader.take(&out->rows_returned, sizeof out->rows_returned);
    reader.take(&out->backend_pid, sizeof out->backend_pid);
    PackedText *texts[] = {&out->caller_role, &out->session_role, &out->agent_name,
                           &out->client_info, &out->request_id,   &out->tool_name,
                           &out->principal,   &out->status,       &out->sqlstate,
                           &out->message,     &out->arguments,    &out->record_id};
    for (PackedText *text : texts) *text = reader.text();
    char measured = 0;
    reader.take(&measured, 1);
    out->cost_measured = measured != 0;
    out->plan_cost = -1;
    out->shared_blks_hit = out->shared_blks_read = 0;
    if (out->cost_measured) {
        reader.take(&out->plan_cost, sizeof out->plan_cost);
        reader.take(&out->shared_blks_hit, sizeof out->shared_blks_hit);
        reader.take(&out->shared_blks_read, sizeof out->shared_blks_read);
    }
    if (reader.at != reader.end) elog(ERROR, "malformed audit record in the queue");
}

void audit_row_hash(const uint8 *prev, Size prev_len, TupleDesc desc, const Datum *values,
                    const bool *nulls, uint8 digest[PG_SHA256_DIGEST_LENGTH]) {
    StringInfoData content;
    initStringInfo(&content);
    if (prev != NULL) appendBinaryStringInfo(&content, (const char *)prev, (int)prev_len);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (attr->attisdropped || strcmp(NameStr(attr->attname), "prev_hash") == 0 ||
            strcmp(NameStr(attr->attname), "row_hash") == 0)
            continue;
        appendStringInfoChar(&content, nulls[i] ? 0 : 1);
        if (!nulls[i]) add_column(&content, attr->atttypid, values[i]);
    }
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (pg_cryptohash_init(ctx) < 0 ||
        pg_cryptohash_update(ctx, (const uint8 *)content.data, content.len) < 0 ||
        pg_cryptohash_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
        elog(ERROR, "sha256 failed: %s", pg_cryptohash_error(ctx));
    pg_cryptohash_free(ctx);
    pfree(content.data);
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
    pg_mcp::audit_row_hash(prev, prev_len, desc, values, nulls, digest);
    ReleaseTupleDesc(desc);
    bytea *result = (bytea *)palloc(VARHDRSZ + sizeof digest);
    SET_VARSIZE(result, VARHDRSZ + sizeof digest);
    memcpy(VARDATA(result), digest, sizeof digest);
    PG_RETURN_BYTEA_P(result);
}
