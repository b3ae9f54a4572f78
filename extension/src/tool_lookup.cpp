// The tool lookup of a call (tool_lookup.hpp): the catalog queries, and their cache.
#include "tool_lookup.hpp"

#include "catalog_cache.hpp"
#include "security.hpp"
#include "tool_cache.hpp"

extern "C" {
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

namespace pg_mcp {

namespace {

SPIPlanPtr lookup_plan = NULL;
SPIPlanPtr limits_plan = NULL;
SPIPlanPtr policy_plan = NULL;

// One row always: the tool's columns (NULL when there is no such tool), whether the caller
// may use it, and the caller's principal.
const char *kLookupSql =
    "SELECT t.id, t.xmin::text::bigint, t.version, t.compiled_sql, t.parameters::text,"
    "       t.parameter_types::oid[], t.max_rows, t.max_bytes,"
    "       (extract(epoch FROM t.timeout) * 1000)::bigint, t.read_only, t.run_as::text,"
    "       t.search_path,"
    "       EXISTS (SELECT FROM mcp.tool_grants g"
    "                 JOIN pg_catalog.pg_roles r ON r.oid = g.role"
    "                WHERE g.tool_name = t.name"
    "                  AND pg_catalog.pg_has_role($2, r.oid, 'USAGE')),"
    "       p.name, p.context::text, t.kind, t.max_cost,"
    // Read by name from the row: a 0.1.0 catalog (before ALTER EXTENSION UPDATE) has none.
    "       pg_catalog.to_jsonb(t) ->> 'untrusted_data', pg_catalog.to_jsonb(t) ->> 'confirm',"
    "       pg_catalog.to_jsonb(t) ->> 'confirm_message'"
    "  FROM (SELECT) AS one"
    "  LEFT JOIN mcp.tools t ON t.name = $1"
    "  LEFT JOIN mcp.principals p ON p.role::oid = $2";

// The rate limits that apply to a call of tool $1 by role $2 acting as principal $3 (or none):
// on the tool or on every tool, set on a role it can use or on its principal.
const char *kLimitsSql =
    "SELECT l.id, coalesce(l.max_calls, 0), (extract(epoch FROM l.per) * 1000)::bigint,"
    "       coalesce(l.max_concurrent, 0),"
    "       format('%s \"%s\"', l.subject_kind, l.subject)"
    "       || CASE WHEN l.tool IS NULL THEN '' ELSE format(' on tool \"%s\"', l.tool) END"
    "  FROM mcp.rate_limits l"
    " WHERE (l.tool IS NULL OR l.tool = $1)"
    "   AND ((l.subject_kind = 'role' AND EXISTS (SELECT FROM pg_catalog.pg_roles r"
    "          WHERE r.rolname = l.subject AND pg_catalog.pg_has_role($2, r.oid, 'USAGE')))"
    "     OR (l.subject_kind = 'principal' AND l.subject = $3))"
    " ORDER BY l.id";

// Whether a person confirms every writing tool of role $1 acting as principal $2 (or none):
// a policy on a role it can use, or on its principal.
const char *kPolicySql =
    "SELECT EXISTS (SELECT FROM mcp.confirmation_policies c"
    " WHERE (c.subject_kind = 'role' AND EXISTS (SELECT FROM pg_catalog.pg_roles r"
    "          WHERE r.rolname = c.subject AND pg_catalog.pg_has_role($1, r.oid, 'USAGE')))"
    "    OR (c.subject_kind = 'principal' AND c.subject = $2))";

// The plan of sql, prepared once per session into *slot (SPI connected).
void kept_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types, const char *what) {
    if (*slot != NULL) return;
    SPIPlanPtr plan = SPI_prepare(sql, nargs, types);
    if (plan == NULL)
        elog(ERROR, "could not prepare the %s: %s", what, SPI_result_code_string(SPI_result));
    SPI_keepplan(plan);
    *slot = plan;
}

char *column_text(HeapTuple tuple, TupleDesc desc, int column) {
    return SPI_getvalue(tuple, desc, column);
}

Datum column_datum(HeapTuple tuple, TupleDesc desc, int column, bool *isnull) {
    return SPI_getbinval(tuple, desc, column, isnull);
}

// The limits of a call of tool `name` by caller as principal (or NULL), as rows (SPI connected),
// in result_context (also current on return).
RateLimit *query_rate_limits(const char *name, Oid caller, const char *principal,
                             MemoryContext result_context, int *count) {
    Oid arg_types[3] = {TEXTOID, OIDOID, TEXTOID};
    kept_plan(&limits_plan, kLimitsSql, 3, arg_types, "rate limit lookup");
    Datum values[3] = {CStringGetTextDatum(name), ObjectIdGetDatum(caller),
                       principal != NULL ? CStringGetTextDatum(principal) : (Datum)0};
    char nulls[3] = {' ', ' ', principal != NULL ? ' ' : 'n'};
    // The same latest snapshot as the tool's lookup (query_tool_row).
    int rc = SPI_execute_snapshot(limits_plan, values, nulls, GetLatestSnapshot(), InvalidSnapshot,
                                  true, false, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "rate limit lookup failed: %s", SPI_result_code_string(rc));
    MemoryContextSwitchTo(result_context);
    *count = (int)SPI_processed;
    RateLimit *limits = (RateLimit *)palloc0(sizeof(RateLimit) * Max(*count, 1));
    for (int i = 0; i < *count; i++) {
        HeapTuple tuple = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        limits[i].id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
        limits[i].max_calls = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
        limits[i].window_ms = DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull));
        limits[i].max_concurrent = DatumGetInt32(SPI_getbinval(tuple, desc, 4, &isnull));
        limits[i].describe = SPI_getvalue(tuple, desc, 5);
    }
    SPI_freetuptable(SPI_tuptable);
    return limits;
}

// Whether a policy makes a person confirm caller's writing tools (SPI connected); false on a
// catalog not yet updated from 0.1.0, which has no policies.
bool policy_requires_confirmation(Oid caller, const char *principal) {
    if (!OidIsValid(get_relname_relid("confirmation_policies", get_namespace_oid("mcp", false))))
        return false;
    Oid arg_types[2] = {OIDOID, TEXTOID};
    kept_plan(&policy_plan, kPolicySql, 2, arg_types, "confirmation policy lookup");
    Datum values[2] = {ObjectIdGetDatum(caller),
                       principal != NULL ? CStringGetTextDatum(principal) : (Datum)0};
    char nulls[2] = {' ', principal != NULL ? ' ' : 'n'};
    int rc = SPI_execute_snapshot(policy_plan, values, nulls, GetLatestSnapshot(), InvalidSnapshot,
                                  true, false, 1);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "confirmation policy lookup failed: %s", SPI_result_code_string(rc));
    bool isnull;
    bool required =
        DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    SPI_freetuptable(SPI_tuptable);
    return required;
}

// Reads the tool and whether caller may use it (as the owner; SPI connected), from the catalog.
ToolRow read_tool_row(const char *name, Oid caller, MemoryContext result_context) {
    Oid arg_types[2] = {TEXTOID, OIDOID};
    kept_plan(&lookup_plan, kLookupSql, 2, arg_types, "tool lookup");
    Datum values[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(caller)};
    // The latest snapshot, whatever the caller's isolation level (as PostgreSQL's own privilege
    // checks read the catalogs): a revoke, a revoked token or a new limit applies to the next
    // call even in a REPEATABLE READ transaction opened before it. Taken after
    // catalog_generation() applied the pending invalidations, so that what is cached is never
    // older than the generation it is filed under.
    int rc = SPI_execute_snapshot(lookup_plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
                                  true, false, 1);
    if (rc != SPI_OK_SELECT) elog(ERROR, "tool lookup failed: %s", SPI_result_code_string(rc));
    MemoryContextSwitchTo(result_context);
    ToolRow row;
    memset(&row, 0, sizeof row);
    if (SPI_processed != 1)
        elog(ERROR, "tool lookup returned " UINT64_FORMAT " rows", SPI_processed);

    HeapTuple tuple = SPI_tuptable->vals[0];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool isnull;
    row.principal = column_text(tuple, desc, 14);
    row.principal_context = column_text(tuple, desc, 15);
    row.id = DatumGetInt64(column_datum(tuple, desc, 1, &isnull));
    if (isnull) {
        SPI_freetuptable(SPI_tuptable);
        return row;  // no such tool
    }
    row.found = true;
    row.row_xmin = (TransactionId)DatumGetInt64(column_datum(tuple, desc, 2, &isnull));
    row.version = DatumGetInt32(column_datum(tuple, desc, 3, &isnull));
    row.compiled_sql = column_text(tuple, desc, 4);
    row.parameters_json = column_text(tuple, desc, 5);
    ArrayType *types = DatumGetArrayTypePCopy(column_datum(tuple, desc, 6, &isnull));
    Datum *type_datums;
    deconstruct_array(types, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &type_datums, NULL,
                      &row.nparams);
    row.param_types = (Oid *)palloc(sizeof(Oid) * Max(row.nparams, 1));
    for (int i = 0; i < row.nparams; i++) row.param_types[i] = DatumGetObjectId(type_datums[i]);
    row.max_rows = DatumGetInt32(column_datum(tuple, desc, 7, &isnull));
    row.max_bytes = DatumGetInt32(column_datum(tuple, desc, 8, &isnull));
    row.timeout_ms = DatumGetInt64(column_datum(tuple, desc, 9, &isnull));
    row.read_only = DatumGetBool(column_datum(tuple, desc, 10, &isnull));
    row.run_as = column_text(tuple, desc, 11);
    row.search_path = column_text(tuple, desc, 12);
    row.granted = DatumGetBool(column_datum(tuple, desc, 13, &isnull));
    row.is_query = strcmp(column_text(tuple, desc, 16), "query") == 0;
    Datum max_cost = column_datum(tuple, desc, 17, &isnull);
    row.max_cost = isnull ? 0 : DatumGetFloat8(max_cost);
    const char *untrusted_data = column_text(tuple, desc, 18);
    row.untrusted_data = untrusted_data != NULL ? untrusted_data[0] : 'a';
    const char *confirm = column_text(tuple, desc, 19);
    row.confirm = confirm != NULL && strcmp(confirm, "ask") == 0;
    row.confirm_message = column_text(tuple, desc, 20);
    SPI_freetuptable(SPI_tuptable);
    if (!row.read_only && !row.confirm)
        row.confirm = policy_requires_confirmation(caller, row.principal);
    row.limits = query_rate_limits(name, caller, row.principal, result_context, &row.nlimits);
    return row;
}

// read_tool_row with names resolved in pg_catalog only: the owner's part of a call otherwise
// runs in the caller's search_path, as nothing else in it resolves names (no SQL, no name
// lookups), which spares a call the setting's round when its lookup is cached.
ToolRow query_tool_row(const char *name, Oid caller, MemoryContext result_context) {
    int nest_level = enter_search_path("pg_catalog, pg_temp");
    ToolRow row = read_tool_row(name, caller, result_context);
    leave_settings(nest_level);
    return row;
}

// Lookups cached per (caller, tool name) until the catalog generation changes (see
// catalog_cache.hpp): a call then costs no catalog query. Entries live in lookups.context.
struct LookupKey {
    Oid caller;
    char name[kToolNameMax + 1];
};
struct LookupEntry {
    LookupKey key;
    ToolRow row;
};
CatalogCache lookups = {
    "pg_mcp tool lookups", sizeof(LookupKey), sizeof(LookupEntry), 1024, NULL, NULL, 0};

char *copy_text(const char *text) {
    return text == NULL ? NULL : pstrdup(text);
}

// A deep copy of row, allocated in the current memory context.
ToolRow copy_tool_row(const ToolRow &from) {
    ToolRow row = from;
    row.compiled_sql = copy_text(from.compiled_sql);
    row.parameters_json = copy_text(from.parameters_json);
    row.run_as = copy_text(from.run_as);
    row.search_path = copy_text(from.search_path);
    row.confirm_message = copy_text(from.confirm_message);
    row.principal = copy_text(from.principal);
    row.principal_context = copy_text(from.principal_context);
    row.limits = (RateLimit *)palloc(sizeof(RateLimit) * Max(from.nlimits, 1));
    for (int i = 0; i < from.nlimits; i++) {
        row.limits[i] = from.limits[i];
        row.limits[i].describe = copy_text(from.limits[i].describe);
    }
    if (from.param_types != NULL) {
        size_t size = sizeof(Oid) * Max(from.nparams, 1);
        row.param_types = (Oid *)palloc(size);
        memcpy(row.param_types, from.param_types, size);
    }
    return row;
}

}  // namespace

// The tool and whether caller may use it, in result_context (also current on return), from the
// cache when the catalog has not changed since. A transaction that changed the catalog itself
// reads it uncached for the rest of it.
ToolRow load_tool(const char *name, Oid caller, MemoryContext result_context) {
    if (catalog_changed_in_transaction() || strlen(name) > kToolNameMax)
        return query_tool_row(name, caller, result_context);
    HTAB *cache = current_catalog_cache(&lookups);
    LookupKey key;
    memset(&key, 0, sizeof key);
    key.caller = caller;
    strlcpy(key.name, name, sizeof key.name);
    LookupEntry *entry = (LookupEntry *)hash_search(cache, &key, HASH_FIND, NULL);
    if (entry == NULL) {
        ToolRow row = query_tool_row(name, caller, result_context);
        MemoryContextSwitchTo(lookups.context);
        ToolRow cached = copy_tool_row(row);
        bool found;
        entry = (LookupEntry *)hash_search(cache, &key, HASH_ENTER, &found);
        entry->row = cached;
        MemoryContextSwitchTo(result_context);
        return row;
    }
    MemoryContextSwitchTo(result_context);
    return copy_tool_row(entry->row);  // callers modify their copy (e.g. the query tool's path)
}

}  // namespace pg_mcp
