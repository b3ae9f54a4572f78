#include "result_json.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
}

namespace pg_mcp {

enum class ColumnKind { Boolean, Number, Json, Jsonb, Array, Composite, DateTime, Text };

struct ColumnWriter {
    ColumnKind kind;
    Oid base_type;
    Oid output_function;
    bool varlena;
};

namespace {

ColumnKind kind_of(Oid type) {
    Oid base = getBaseType(type);
    switch (base) {
        case BOOLOID:
            return ColumnKind::Boolean;
        case INT2OID:
        case INT4OID:
        case INT8OID:
        case OIDOID:
        case FLOAT4OID:
        case FLOAT8OID:
        case NUMERICOID:
            return ColumnKind::Number;
        case JSONOID:
            return ColumnKind::Json;
        case JSONBOID:
            return ColumnKind::Jsonb;
        case DATEOID:
        case TIMEOID:
        case TIMETZOID:
        case TIMESTAMPOID:
        case TIMESTAMPTZOID:
            return ColumnKind::DateTime;
        default:
            break;
    }
    if (OidIsValid(get_element_type(base))) return ColumnKind::Array;
    if (type_is_rowtype(base)) return ColumnKind::Composite;
    return ColumnKind::Text;
}

// Numbers print as JSON numbers, except NaN and infinities, which JSON cannot express.
bool is_json_number(const char *text) {
    return !(strcmp(text, "NaN") == 0 || strcmp(text, "Infinity") == 0 ||
             strcmp(text, "-Infinity") == 0);
}

// A column's schema: its JSON type or null, written with anyOf (not a type array, which
// several model providers' function declarations do not accept).
void append_column_schema(StringInfo out, Oid type) {
    Oid base = getBaseType(type);
    const char *null_too = ",{\"type\":\"null\"}]}";
    switch (kind_of(base)) {
        case ColumnKind::Boolean:
            appendStringInfo(out, "{\"anyOf\":[{\"type\":\"boolean\"}%s", null_too);
            return;
        case ColumnKind::Number:
            if (base == INT2OID || base == INT4OID || base == INT8OID || base == OIDOID)
                appendStringInfo(out, "{\"anyOf\":[{\"type\":\"integer\"}%s", null_too);
            else  // NaN and infinities arrive as strings
                appendStringInfo(out, "{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"string\"}%s",
                                 null_too);
            return;
        case ColumnKind::Json:
        case ColumnKind::Jsonb:
            appendStringInfoString(out, "{}");
            return;
        case ColumnKind::Array:
            // Items may themselves be arrays: PostgreSQL arrays can have several dimensions.
            appendStringInfoString(out, "{\"anyOf\":[{\"type\":\"array\",\"items\":{\"anyOf\":[");
            append_column_schema(out, get_element_type(base));
            appendStringInfo(out, ",{\"type\":\"array\"}]}}%s", null_too);
            return;
        case ColumnKind::Composite:
            appendStringInfo(out, "{\"anyOf\":[{\"type\":\"object\"}%s", null_too);
            return;
        case ColumnKind::DateTime:
        case ColumnKind::Text:
            break;
    }
    // Dates and timestamps carry no "format": PostgreSQL's infinity and -infinity are valid
    // values that no JSON Schema date format accepts.
    if (base == UUIDOID)
        appendStringInfo(out, "{\"anyOf\":[{\"type\":\"string\",\"format\":\"uuid\"}%s", null_too);
    else
        appendStringInfo(out, "{\"anyOf\":[{\"type\":\"string\"}%s", null_too);
}

}  // namespace

bool carries_text(TupleDesc desc) {
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (attr->attisdropped) continue;
        switch (kind_of(attr->atttypid)) {
            case ColumnKind::Boolean:
            case ColumnKind::Number:
            case ColumnKind::DateTime:
                break;
            default:
                if (getBaseType(attr->atttypid) != UUIDOID) return true;
        }
    }
    return false;
}

ColumnWriter *prepare_column_writers(TupleDesc desc) {
    ColumnWriter *writers = (ColumnWriter *)palloc0(sizeof(ColumnWriter) * Max(desc->natts, 1));
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (attr->attisdropped) continue;
        writers[i].kind = kind_of(attr->atttypid);
        writers[i].base_type = getBaseType(attr->atttypid);
        getTypeOutputInfo(attr->atttypid, &writers[i].output_function, &writers[i].varlena);
    }
    return writers;
}

void append_row_json(StringInfo out, HeapTuple tuple, TupleDesc desc, const ColumnWriter *writers) {
    bool first = true;
    appendStringInfoChar(out, '{');
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (attr->attisdropped) continue;
        if (!first) appendStringInfoChar(out, ',');
        first = false;
        escape_json(out, NameStr(attr->attname));
        appendStringInfoChar(out, ':');
        bool isnull;
        Datum value = heap_getattr(tuple, i + 1, desc, &isnull);
        if (isnull) {
            appendStringInfoString(out, "null");
            continue;
        }
        const ColumnWriter &writer = writers[i];
        switch (writer.kind) {
            case ColumnKind::Boolean:
                appendStringInfoString(out, DatumGetBool(value) ? "true" : "false");
                break;
            case ColumnKind::Number: {
                char *text = OidOutputFunctionCall(writer.output_function, value);
                if (is_json_number(text))
                    appendStringInfoString(out, text);
                else
                    escape_json(out, text);
                break;
            }
            case ColumnKind::Json: {
                // Through jsonb, which refuses what the result (a jsonb) could not hold, such
                // as \u0000: the error then belongs to the tool's call, not to the result.
                Datum jsonb = DirectFunctionCall1(jsonb_in, CStringGetDatum(OidOutputFunctionCall(
                                                                writer.output_function, value)));
                Jsonb *parsed = DatumGetJsonbP(jsonb);
                (void)JsonbToCString(out, &parsed->root, VARSIZE(parsed));
                break;
            }
            case ColumnKind::Jsonb: {
                Jsonb *jsonb = DatumGetJsonbP(value);
                (void)JsonbToCString(out, &jsonb->root, VARSIZE(jsonb));
                break;
            }
            case ColumnKind::Array: {
                text *json = DatumGetTextPP(DirectFunctionCall1(array_to_json, value));
                appendBinaryStringInfo(out, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
                break;
            }
            case ColumnKind::Composite: {
                text *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, value));
                appendBinaryStringInfo(out, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
                break;
            }
            case ColumnKind::DateTime: {
                // ISO 8601 whatever the session's DateStyle, as to_json writes them.
                char buffer[MAXDATELEN + 1];
                escape_json(out, JsonEncodeDateTime(buffer, value, writer.base_type, NULL));
                break;
            }
            case ColumnKind::Text:
                escape_json(out, OidOutputFunctionCall(writer.output_function, value));
                break;
        }
    }
    appendStringInfoChar(out, '}');
}

char *output_schema_json(TupleDesc desc) {
    StringInfoData columns, required;
    initStringInfo(&columns);
    initStringInfo(&required);
    int count = 0;
    for (int i = 0; desc != NULL && i < desc->natts; i++) {
        Form_pg_attribute attr = TupleDescAttr(desc, i);
        if (attr->attisdropped) continue;
        for (int j = 0; j < i; j++) {
            if (strcmp(NameStr(TupleDescAttr(desc, j)->attname), NameStr(attr->attname)) == 0)
                ereport(ERROR, (errcode(ERRCODE_DUPLICATE_COLUMN),
                                errmsg("tool SQL returns two columns named \"%s\"",
                                       NameStr(attr->attname)),
                                errhint("Give each result column a distinct name with AS; agents "
                                        "receive each row as a JSON object.")));
        }
        if (count++ > 0) {
            appendStringInfoChar(&columns, ',');
            appendStringInfoChar(&required, ',');
        }
        escape_json(&columns, NameStr(attr->attname));
        appendStringInfoChar(&columns, ':');
        append_column_schema(&columns, attr->atttypid);
        escape_json(&required, NameStr(attr->attname));
    }
    return psprintf(
        "{\"type\":\"object\","
        "\"properties\":{"
        "\"rows\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{%s},"
        "\"required\":[%s],\"additionalProperties\":false}},"
        "\"row_count\":{\"type\":\"integer\",\"description\":\"Rows in this result (rows "
        "affected, for a statement that returns none)\"},"
        "\"truncated\":{\"type\":\"boolean\",\"description\":\"True when the tool's row or byte "
        "limit cut the result short\"},"
        "\"truncated_by\":{\"type\":\"string\",\"enum\":[\"max_rows\",\"max_bytes\"]}},"
        "\"required\":[\"rows\",\"row_count\",\"truncated\"]}",
        columns.data, required.data);
}

}  // namespace pg_mcp
