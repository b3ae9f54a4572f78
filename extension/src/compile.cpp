// mcp._compile_tool: checks a tool definition the way the tool will run, so that a mistake
// fails for the DBA at definition time rather than for an agent at call time.
#include "boundary.hpp"
#include "param_adapter.hpp"
#include "pg_types.hpp"
#include "result_json.hpp"
#include "security.hpp"

extern "C" {
#include "access/htup_details.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/plancache.h"
}

namespace {

// Reports errors in the tool's SQL against the tool's SQL text, not the caller's statement.
void tool_sql_error_callback(void *arg) {
    const char *query = (const char *)arg;
    int position = geterrposition();
    if (position > 0) {
        errposition(0);
        internalerrposition(position);
        internalerrquery(query);
    }
    errcontext("while checking the tool's SQL");
}

const char *statement_kind(Node *stmt) {
    switch (nodeTag(stmt)) {
        case T_SelectStmt:
            return "SELECT";
        case T_InsertStmt:
            return "INSERT";
        case T_UpdateStmt:
            return "UPDATE";
        case T_DeleteStmt:
            return "DELETE";
        case T_MergeStmt:
            return "MERGE";
        default:
            return NULL;
    }
}

// One statement, and one that SPI can plan (no utility commands).
void check_single_query(const char *sql) {
    List *statements = raw_parser(sql, RAW_PARSE_DEFAULT);
    if (list_length(statements) == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("tool SQL is empty"),
                        errhint("Give one SELECT (or, for a writing tool, INSERT, UPDATE, DELETE "
                                "or MERGE) statement.")));
    if (list_length(statements) > 1)
        ereport(
            ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("tool SQL must be a single statement"),
             errdetail("Found %d statements.", list_length(statements)),
             errhint("Combine them into one statement (a WITH query), or define several tools.")));
    RawStmt *raw = linitial_node(RawStmt, statements);
    if (IsA(raw->stmt, SelectStmt) && ((SelectStmt *)raw->stmt)->intoClause != NULL)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("tool SQL cannot be SELECT ... INTO (it creates a table)"),
                 errhint("Tools return rows; use a writing tool with INSERT for stored results.")));
    if (statement_kind(raw->stmt) == NULL)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("tool SQL must be a query: SELECT, INSERT, UPDATE, DELETE or MERGE"),
                        errhint("Utility and DDL statements cannot be tools.")));
}

// A read-only tool's SQL must not write: no data-modifying statement or CTE, no row locks.
void check_read_only(CachedPlanSource *source) {
    ListCell *cell;
    foreach (cell, source->query_list) {
        Query *query = lfirst_node(Query, cell);
        const char *problem = NULL;
        if (query->commandType == CMD_UTILITY)
            problem = "it is not a plain query";
        else if (query->commandType != CMD_SELECT)
            problem = "it modifies data";
        else if (query->hasModifyingCTE)
            problem = "it has a data-modifying WITH clause";
        else if (query->rowMarks != NIL)
            problem = "it locks rows (FOR UPDATE/SHARE)";
        else if (query->utilityStmt != NULL)
            problem = "it is not a plain query";
        if (problem != NULL)
            ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                            errmsg("read-only tool's SQL cannot run read-only: %s", problem),
                            errhint("Declare the tool with read_only => false if it is meant to "
                                    "write; it then gets destructive annotations.")));
    }
}

}  // namespace

PG_MCP_FUNCTION(pg_mcp_compile_tool) {
    if (PG_ARGISNULL(0))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("tool SQL must not be NULL")));
    if (PG_ARGISNULL(2) || PG_ARGISNULL(4))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("search_path and the preparing role must not be NULL")));
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *parameters = NULL;
    if (!PG_ARGISNULL(1)) {
        Jsonb *jsonb = PG_GETARG_JSONB_P(1);
        parameters = JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));
    }
    char *search_path = text_to_cstring(PG_GETARG_TEXT_PP(2));
    bool read_only = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
    Oid prepare_as = get_role_oid(NameStr(*PG_GETARG_NAME(4)), false);

    TupleDesc result_type;
    if (get_call_result_type(fcinfo, NULL, &result_type) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "_compile_tool must return a record");

    pg_mcp::CompiledDefinition definition = pg_mcp::compile_tool_definition(sql, parameters);

    ErrorContextCallback error_context;
    error_context.callback = tool_sql_error_callback;
    error_context.arg = definition.compiled_sql;
    error_context.previous = error_context_stack;
    error_context_stack = &error_context;

    check_single_query(definition.compiled_sql);

    Oid *types = (Oid *)palloc(sizeof(Oid) * Max(definition.nparams, 1));
    Datum *type_datums = (Datum *)palloc(sizeof(Datum) * Max(definition.nparams, 1));
    for (int i = 0; i < definition.nparams; i++) {
        types[i] = pg_mcp::binding_type_oid(definition.bindings[i]);
        type_datums[i] = ObjectIdGetDatum(types[i]);
    }

    // Prepare as the role the tool will run as, with the tool's search_path: name resolution,
    // and anything the planner evaluates, happen with exactly the tool's rights.
    MemoryContext outer = CurrentMemoryContext;
    pg_mcp::RoleSwitch role = pg_mcp::enter_role(prepare_as, search_path, true, true);
    SPIPlanPtr plan = SPI_prepare(definition.compiled_sql, definition.nparams, types);
    if (plan == NULL)
        elog(ERROR, "could not prepare the tool's SQL: %s", SPI_result_code_string(SPI_result));
    List *sources = SPI_plan_get_plan_sources(plan);
    if (list_length(sources) != 1)
        elog(ERROR, "tool SQL prepared into %d statements", list_length(sources));
    CachedPlanSource *source = (CachedPlanSource *)linitial(sources);
    if (read_only) check_read_only(source);
    MemoryContext spi_context = MemoryContextSwitchTo(outer);
    char *output_schema = pg_mcp::output_schema_json(source->resultDesc);
    // The relations (tables and views) the tool reads: drop_sandbox_view refuses while a
    // tool depends on one, and reviews can tell when a view under a tool changed.
    int nrelations = list_length(source->relationOids);
    Datum *relations = (Datum *)palloc(sizeof(Datum) * Max(nrelations, 1));
    int r = 0;
    ListCell *cell;
    foreach (cell, source->relationOids) {
        Oid relation = lfirst_oid(cell);
        bool seen = false;
        for (int k = 0; k < r; k++) seen = seen || DatumGetObjectId(relations[k]) == relation;
        if (!seen) relations[r++] = ObjectIdGetDatum(relation);
    }
    nrelations = r;
    MemoryContextSwitchTo(spi_context);
    pg_mcp::leave_role(role);
    error_context_stack = error_context.previous;

    Datum values[6];
    bool nulls[6] = {false, false, false, false, false, false};
    values[0] = CStringGetTextDatum(definition.compiled_sql);
    values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(definition.parameters_json));
    values[2] = PointerGetDatum(construct_array(type_datums, definition.nparams, REGTYPEOID,
                                                sizeof(Oid), true, TYPALIGN_INT));
    values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(definition.input_schema_json));
    values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(output_schema));
    values[5] = PointerGetDatum(
        construct_array(relations, nrelations, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT));
    BlessTupleDesc(result_type);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(result_type, values, nulls)));
}

// mcp._create_view_as(definition, role): the one way sandboxed views are created. The text
// must parse as exactly one CREATE VIEW (so a row filter cannot smuggle in other statements),
// and it runs as the acting role, which then owns the view and needs CREATE on its schema.
PG_MCP_FUNCTION(pg_mcp_create_view_as) {
    char *definition = text_to_cstring(PG_GETARG_TEXT_PP(0));
    Oid role = get_role_oid(NameStr(*PG_GETARG_NAME(1)), false);
    List *statements = raw_parser(definition, RAW_PARSE_DEFAULT);
    if (list_length(statements) != 1 || !IsA(linitial_node(RawStmt, statements)->stmt, ViewStmt))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the row filter must be one SQL condition"),
                        errdetail("The view definition does not parse as a single CREATE VIEW.")));
    pg_mcp::RoleSwitch as_role = pg_mcp::enter_role(role, NULL, false, true);
    int rc = SPI_execute(definition, false, 0);
    if (rc != SPI_OK_UTILITY)
        elog(ERROR, "creating the view failed: %s", SPI_result_code_string(rc));
    pg_mcp::leave_role(as_role);
    PG_RETURN_VOID();
}
