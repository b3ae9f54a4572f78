#include "query_guard.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "commands/defrem.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace pg_mcp {

namespace {

double query_max_cost_setting = 1000000.0;

struct GuardState {
    Oid refused_function;
    const char *refused_reason;
};

// Stable functions that still do not belong in an agent's free-form query: they serialize
// whole tables or schemas in one value.
const char *const kDeniedStable[] = {
    "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "schema_to_xml",   "schema_to_xmlschema",   "schema_to_xml_and_xmlschema",
    "table_to_xml",    "table_to_xmlschema",    "table_to_xml_and_xmlschema"};

// mcp.query_allowed_functions is the DBA's list; the guard runs as the caller, who cannot
// read it, and asks a SECURITY DEFINER function instead.
bool allow_listed(Oid function) {
    Oid args[1] = {REGPROCEDUREOID};
    Datum values[1] = {ObjectIdGetDatum(function)};
    int rc = SPI_execute_with_args("SELECT mcp._query_function_allowed($1)", 1, args, values, NULL,
                                   true, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1) return false;
    bool isnull;
    Datum allowed = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    return !isnull && DatumGetBool(allowed);
}

bool function_refused(Oid function, void *context) {
    GuardState *state = (GuardState *)context;
    HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(function));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for function %u", function);
    Form_pg_proc proc = (Form_pg_proc)GETSTRUCT(tuple);
    char volatility = proc->provolatile;
    bool denied = false;
    if (proc->pronamespace == PG_CATALOG_NAMESPACE) {
        for (const char *name : kDeniedStable)
            if (strcmp(NameStr(proc->proname), name) == 0) denied = true;
    }
    ReleaseSysCache(tuple);
    if ((volatility == PROVOLATILE_VOLATILE || denied) && !allow_listed(function)) {
        state->refused_function = function;
        state->refused_reason = denied ? "it returns whole tables or schemas at once"
                                       : "it is volatile (it can change state or wait)";
        return true;
    }
    return false;
}

bool guard_walker(Node *node, void *context);

// An aggregate's call names only its final-facing function; its transition, final, combine
// and (de)serialization functions are checked too.
bool aggregate_refused(Oid aggregate, void *context) {
    HeapTuple tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggregate));
    if (!HeapTupleIsValid(tuple)) return false;
    Form_pg_aggregate agg = (Form_pg_aggregate)GETSTRUCT(tuple);
    Oid parts[] = {agg->aggtransfn,    agg->aggfinalfn,  agg->aggcombinefn,   agg->aggserialfn,
                   agg->aggdeserialfn, agg->aggmtransfn, agg->aggminvtransfn, agg->aggmfinalfn};
    ReleaseSysCache(tuple);
    for (Oid part : parts)
        if (OidIsValid(part) && function_refused(part, context)) return true;
    return false;
}

bool guard_walker(Node *node, void *context) {
    if (node == NULL) return false;
    if (IsA(node, Aggref) && aggregate_refused(((Aggref *)node)->aggfnoid, context)) return true;
    if (check_functions_in_node(node, function_refused, context)) return true;
    if (IsA(node, NextValueExpr)) {
        ((GuardState *)context)->refused_reason = "it advances a sequence";
        return true;
    }
    if (IsA(node, Query)) {
        Query *query = (Query *)node;
        if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
            ereport(
                ERROR,
                (errcode(ERRCODE_PG_MCP_REFUSED),
                 errmsg("query refused: only SELECT is allowed, also inside WITH and subqueries")));
        if (query->hasModifyingCTE)
            ereport(ERROR, (errcode(ERRCODE_PG_MCP_REFUSED),
                            errmsg("query refused: data-modifying WITH clauses are not allowed")));
        if (query->rowMarks != NIL)
            ereport(ERROR,
                    (errcode(ERRCODE_PG_MCP_REFUSED),
                     errmsg("query refused: locking clauses (FOR UPDATE/SHARE) are not allowed")));
        return query_tree_walker(query, PG_MCP_TREE_WALKER(guard_walker), context, 0);
    }
    return expression_tree_walker(node, PG_MCP_TREE_WALKER(guard_walker), context);
}

// The statement EXPLAIN would run, if stmt is a plain EXPLAIN (no ANALYZE) of a SELECT.
Node *explained_select(ExplainStmt *explain) {
    ListCell *cell;
    foreach (cell, explain->options) {
        DefElem *option = (DefElem *)lfirst(cell);
        if (strcmp(option->defname, "analyze") == 0 &&
            (option->arg == NULL || defGetBoolean(option)))
            ereport(ERROR,
                    (errcode(ERRCODE_PG_MCP_REFUSED),
                     errmsg("query refused: EXPLAIN ANALYZE runs the query; use plain EXPLAIN")));
    }
    return explain->query;
}

}  // namespace

void define_query_guard_settings(void) {
    DefineCustomRealVariable(
        "pg_mcp.query_max_cost", "Largest planner cost estimate the built-in query tool accepts.",
        "Queries estimated above it are refused before they run. Superusers set it, also per "
        "role (ALTER ROLE ... SET pg_mcp.query_max_cost); 0 disables the ceiling.",
        &query_max_cost_setting, 1000000.0, 0.0, 1e100, PGC_SUSET, 0, NULL, NULL, NULL);
}

double query_cost_ceiling(double tool_max_cost) {
    double setting = query_max_cost_setting;
    if (tool_max_cost > 0 && (setting <= 0 || tool_max_cost < setting)) return tool_max_cost;
    return setting;
}

SPIPlanPtr prepare_guarded_query(const char *sql, double max_cost, bool *is_explain) {
    List *statements = raw_parser(sql, RAW_PARSE_DEFAULT);
    if (list_length(statements) != 1)
        ereport(ERROR, (errcode(ERRCODE_PG_MCP_REFUSED),
                        errmsg("query refused: send exactly one statement, got %d",
                               list_length(statements))));
    RawStmt *raw = linitial_node(RawStmt, statements);
    Node *stmt = raw->stmt;
    bool explain = IsA(stmt, ExplainStmt);
    if (is_explain != nullptr) *is_explain = explain;
    if (explain) stmt = explained_select((ExplainStmt *)stmt);
    if (!IsA(stmt, SelectStmt))
        ereport(ERROR,
                (errcode(ERRCODE_PG_MCP_REFUSED),
                 errmsg("query refused: only SELECT, VALUES or EXPLAIN of a SELECT is allowed")));
    if (((SelectStmt *)stmt)->intoClause != NULL)
        ereport(ERROR, (errcode(ERRCODE_PG_MCP_REFUSED),
                        errmsg("query refused: SELECT INTO is not allowed")));

    RawStmt *inner = makeNode(RawStmt);
    inner->stmt = stmt;
    inner->stmt_location = raw->stmt_location;
    inner->stmt_len = raw->stmt_len;
    Query *query = parse_analyze_fixedparams(inner, sql, NULL, 0, NULL);
    GuardState state = {InvalidOid, NULL};
    if (guard_walker((Node *)query, &state)) {
        if (OidIsValid(state.refused_function))
            ereport(ERROR,
                    (errcode(ERRCODE_PG_MCP_REFUSED),
                     errmsg("query refused: function %s is not allowed: %s",
                            format_procedure(state.refused_function), state.refused_reason),
                     errhint("Free-form queries may call only immutable and stable functions, "
                             "and those a database administrator allowed.")));
        ereport(ERROR, (errcode(ERRCODE_PG_MCP_REFUSED),
                        errmsg("query refused: %s", state.refused_reason)));
    }

    SPIPlanPtr plan = SPI_prepare(sql, 0, NULL);
    if (plan == NULL)
        elog(ERROR, "could not prepare the query: %s", SPI_result_code_string(SPI_result));
    if (!explain && max_cost > 0) {
        CachedPlan *cached = SPI_plan_get_cached_plan(plan);
        double cost = 0;
        if (cached != NULL) {
            ListCell *cell;
            foreach (cell, cached->stmt_list) {
                PlannedStmt *planned = lfirst_node(PlannedStmt, cell);
                if (planned->planTree != NULL) cost = Max(cost, planned->planTree->total_cost);
            }
            ReleaseCachedPlan(cached, NULL);  // an unsaved plan's cached plan has no owner
        }
        if (cost > max_cost)
            ereport(ERROR,
                    (errcode(ERRCODE_PG_MCP_REFUSED),
                     errmsg("query refused: estimated cost %.0f is above the limit of %.0f", cost,
                            max_cost),
                     errhint("Add a selective filter on an indexed column, or a LIMIT; ask the "
                             "database administrator for an index if this query is needed.")));
    }
    return plan;
}

}  // namespace pg_mcp
