// mcp.serve_call(...): the one statement pg_mcp_bridge sends for a tool call. Everything the
// call needs arrives as its arguments (the tool and its arguments, the agent context, the trace
// context, the principal's token or the verified OAuth identity, what the client brought for a
// person's confirmation), so that a call costs one
// function and no round of set_config calls through SQL. It acts as mcp.assume_principal or
// mcp.assume_identity would, then runs mcp.call_tool_stream (or mcp.call_tool_deferred).
// Plain C style: the functions it calls raise their errors themselves.
#include "audit.hpp"
#include "boundary.hpp"
#include "confirmation.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
}

extern "C" {
Datum pg_mcp_assume_principal(PG_FUNCTION_ARGS);
Datum pg_mcp_assume_identity(PG_FUNCTION_ARGS);
Datum pg_mcp_call_tool_stream(PG_FUNCTION_ARGS);
Datum pg_mcp_call_tool_deferred(PG_FUNCTION_ARGS);
}

namespace {

// The arguments of mcp.serve_call after the five of mcp.call_tool_stream.
enum Argument {
    kTraceparent = 5,
    kPrincipalToken = 6,
    kIdentity = 7,
    kDeferred = 8,
    kConfirmation = 9
};

// The call's trace, for its transaction: the audit row records it, tool SQL reads it as
// pg_mcp.traceparent (whose show hook returns it: no round through the setting), and
// application_name becomes "<the session's> <trace id>-<span id>" (pg_stat_activity, the server
// log's %a; at most NAMEDATALEN - 1 bytes, as PostgreSQL keeps). An invalid one is ignored, as
// the audit row would ignore it.
void set_trace(const char *traceparent) {
    pg_mcp::set_call_traceparent(traceparent);  // clears an earlier call's
    traceparent = pg_mcp::call_traceparent();
    if (traceparent == NULL) return;
    const char *session = GetConfigOptionResetString("application_name");
    char name[NAMEDATALEN];
    snprintf(name, sizeof name, "%s %.32s-%.16s", session != NULL ? session : "", traceparent + 3,
             traceparent + 36);
    (void)set_config_option("application_name", name, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
                            true, 0, false);
}

// Calls fn (mcp.assume_principal or mcp.assume_identity) with argument `arg` of this call.
void act_as(FunctionCallInfo fcinfo, PGFunction fn, int arg) {
    LOCAL_FCINFO(inner, 1);
    InitFunctionCallInfoData(*inner, fcinfo->flinfo, 1, InvalidOid, NULL, NULL);
    inner->args[0] = fcinfo->args[arg];
    (void)fn(inner);
}

}  // namespace

PG_MCP_FUNCTION(pg_mcp_serve_call) {
    if (PG_NARGS() != 10) elog(ERROR, "mcp.serve_call takes 10 arguments");
    if (!PG_ARGISNULL(kPrincipalToken) && !PG_ARGISNULL(kIdentity))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("a call acts for a principal's token or an OAuth identity, not both")));
    set_trace(PG_ARGISNULL(kTraceparent) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(kTraceparent)));
    if (!PG_ARGISNULL(kPrincipalToken)) act_as(fcinfo, pg_mcp_assume_principal, kPrincipalToken);
    if (!PG_ARGISNULL(kIdentity)) act_as(fcinfo, pg_mcp_assume_identity, kIdentity);
    // What the client brought for a person's confirmation (tools with confirm => 'ask').
    pg_mcp::set_call_confirmation(PG_GETARG_DATUM(kConfirmation), PG_ARGISNULL(kConfirmation));
    bool deferred = !PG_ARGISNULL(kDeferred) && PG_GETARG_BOOL(kDeferred);
    return deferred ? pg_mcp_call_tool_deferred(fcinfo) : pg_mcp_call_tool_stream(fcinfo);
}
