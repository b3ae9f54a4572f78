// Library entry: module magic, settings, and small SQL-callable helpers.
#include "audit.hpp"
#include "audit_queue.hpp"
#include "call_cost.hpp"
#include "boundary.hpp"
#include "cancel_holdoff.hpp"
#include "catalog_cache.hpp"
#include "confirmation.hpp"
#include "query_guard.hpp"
#include "rate_limit.hpp"
#include "shared_memory.hpp"
#include "tool_memory.hpp"

extern "C" {
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace {
char *agent_name_setting = NULL;
char *client_info_setting = NULL;
char *request_id_setting = NULL;
char *traceparent_setting = NULL;

// pg_mcp.traceparent as tool SQL reads it (current_setting, SHOW): the trace mcp.serve_call
// passed for this transaction, else the setting's own value.
const char *show_traceparent(void) {
    const char *call = pg_mcp::call_traceparent();
    return call != NULL ? call : traceparent_setting != NULL ? traceparent_setting : "";
}
}  // namespace

void _PG_init(void) {
    DefineCustomStringVariable(
        "pg_mcp.agent_name", "Name of the agent making tool calls, recorded in mcp.audit_log.",
        "Set by the bridge for each call (SET LOCAL); asserted by the client, not authenticated.",
        &agent_name_setting, "", PGC_USERSET, 0, NULL, NULL, NULL);
    DefineCustomStringVariable(
        "pg_mcp.client_info", "MCP client name and version, recorded in mcp.audit_log.",
        "Set by the bridge from the client's initialize request; asserted by the client.",
        &client_info_setting, "", PGC_USERSET, 0, NULL, NULL, NULL);
    DefineCustomStringVariable("pg_mcp.request_id",
                               "Request id of the current tool call, recorded in mcp.audit_log.",
                               "Set by the bridge to the JSON-RPC request id of each call.",
                               &request_id_setting, "", PGC_USERSET, 0, NULL, NULL, NULL);
    DefineCustomStringVariable(
        "pg_mcp.traceparent",
        "W3C traceparent of the current tool call; its trace and span ids are recorded in "
        "mcp.audit_log.",
        "Set by the bridge for each call (SET LOCAL), so that the audit row, pg_stat_activity "
        "and the tool's SQL can be joined to the trace.",
        &traceparent_setting, "", PGC_USERSET, 0, NULL, NULL, show_traceparent);
    pg_mcp::define_query_guard_settings();
    pg_mcp::define_tool_memory_settings();
    pg_mcp::define_audit_settings();
    pg_mcp::define_rate_limit_settings();
    pg_mcp::define_confirmation_settings();
    MarkGUCPrefixReserved("pg_mcp");
    pg_mcp::register_catalog_cache_callbacks();
    pg_mcp::install_cost_hook();
    pg_mcp::register_cancel_holdoff();
    // The audit queue lives in shared memory, which only a preloaded library can have;
    // without it call_tool refuses to run (see queue_audit_record).
    if (process_shared_preload_libraries_in_progress) pg_mcp::install_shared_memory_hooks();
}

// mcp.library_version(): the version of the loaded shared library, compared by the bridge with
// the installed extension's version.
PG_MCP_FUNCTION(pg_mcp_library_version) {
    PG_RETURN_TEXT_P(cstring_to_text(PG_MCP_VERSION));
}

// mcp._acting_role(): the role in effect outside SECURITY DEFINER functions (the session's
// current role after SET ROLE), recorded as who created or changed a tool.
PG_MCP_FUNCTION(pg_mcp_acting_role) {
    PG_RETURN_DATUM(
        DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetOuterUserId(), false))));
}

// mcp.check_query(sql): the query tool's guard, run as the current role, without executing.
PG_MCP_FUNCTION(pg_mcp_check_query) {
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pg_mcp::prepare_guarded_query(sql, pg_mcp::query_cost_ceiling(0));
    SPI_finish();
    PG_RETURN_TEXT_P(cstring_to_text("ok"));
}
