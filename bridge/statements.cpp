// The statements the pool sends: one row per operation of the protocol (its SQL function, with
// and without a principal's token, and its parameters), and their OAuth forms.
#include "statements.hpp"

#include <cstring>
#include <map>
#include <memory>

namespace pg_mcp::bridge {

// One round trip per request, each statement prepared once per connection (unless the pool
// goes through a proxy that cannot keep them): the agent context goes to the audit record as
// arguments, and a call's result comes as rows (its head, then its body in pieces, see
// mcp.call_tool_stream), read one at a time so that a large result passes through the bridge
// without being held whole. With a principal's token, mcp.assume_principal sets its role for
// the statement's transaction first (the MATERIALIZED CTE runs before the outer query reads
// a row); a call passes it to mcp.serve_call instead.
// A call is one function, mcp.serve_call: its trace context ($6 or $7: pg_mcp.traceparent for
// its audit row and the tool's SQL, and the trace in application_name, both for its transaction
// only) and its principal's token go in as arguments, as do its tool, arguments and context.
// The last parameter is what the client brought for a person's confirmation (or NULL).
#define PG_MCP_CALL(TRACE, TOKEN, DEFERRED, CONFIRMATION)                              \
    "SELECT mcp.serve_call($1, $2::jsonb, $3, $4, $5, " TRACE ", " TOKEN ", " DEFERRED \
    ", " CONFIRMATION "::jsonb)"
const Statement kCall = {"pg_mcp_call",
                         PG_MCP_CALL("$6", "NULL::bytea, NULL::jsonb", "false", "$7")};
const Statement kCallAs = {"pg_mcp_call_as",
                           PG_MCP_CALL("$7", "$6::bytea, NULL::jsonb", "false", "$8")};
// The same, returning once the audit record is queued (AuditConfirmer confirms it).
const Statement kCallDeferred = {"pg_mcp_call_deferred",
                                 PG_MCP_CALL("$6", "NULL::bytea, NULL::jsonb", "true", "$7")};
const Statement kCallDeferredAs = {"pg_mcp_call_deferred_as",
                                   PG_MCP_CALL("$7", "$6::bytea, NULL::jsonb", "true", "$8")};
#undef PG_MCP_CALL
const char *const kAuditPendingKey = "pg-mcp/audit_pending";
const Statement kList = {"pg_mcp_list",
                         "WITH context AS MATERIALIZED ("
                         " SELECT pg_catalog.set_config('pg_mcp.agent_name', $1, true),"
                         "        pg_catalog.set_config('pg_mcp.client_info', $2, true),"
                         "        pg_catalog.set_config('pg_mcp.request_id', $3, true))"
                         " SELECT mcp.list_tools()::text FROM context"};
const Statement kListAs = {"pg_mcp_list_as",
                           "WITH context AS MATERIALIZED ("
                           " SELECT mcp.assume_principal($4::bytea),"
                           "        pg_catalog.set_config('pg_mcp.agent_name', $1, true),"
                           "        pg_catalog.set_config('pg_mcp.client_info', $2, true),"
                           "        pg_catalog.set_config('pg_mcp.request_id', $3, true))"
                           " SELECT mcp.list_tools()::text FROM context"};
// The agent context as settings (for mcp.list_resources and mcp.read_resource, as for
// mcp.list_tools), the principal's role first when there is a token.
#define PG_MCP_CONTEXT(FIRST)                                 \
    "WITH context AS MATERIALIZED (SELECT " FIRST             \
    " pg_catalog.set_config('pg_mcp.agent_name', $1, true),"  \
    " pg_catalog.set_config('pg_mcp.client_info', $2, true)," \
    " pg_catalog.set_config('pg_mcp.request_id', $3, true))"
const Statement kListResources = {
    "pg_mcp_resources", PG_MCP_CONTEXT("") " SELECT mcp.list_resources()::text FROM context"};
const Statement kListResourcesAs = {
    "pg_mcp_resources_as",
    PG_MCP_CONTEXT(
        "mcp.assume_principal($4::bytea),") " SELECT mcp.list_resources()::text FROM context"};
const Statement kReadResource = {
    "pg_mcp_resource", PG_MCP_CONTEXT("") " SELECT mcp.read_resource($4)::text FROM context"};
const Statement kReadResourceAs = {
    "pg_mcp_resource_as",
    PG_MCP_CONTEXT(
        "mcp.assume_principal($5::bytea),") " SELECT mcp.read_resource($4)::text FROM context"};
const Statement kListPrompts = {"pg_mcp_prompts",
                                PG_MCP_CONTEXT("") " SELECT mcp.list_prompts()::text FROM context"};
const Statement kListPromptsAs = {
    "pg_mcp_prompts_as",
    PG_MCP_CONTEXT(
        "mcp.assume_principal($4::bytea),") " SELECT mcp.list_prompts()::text FROM context"};
const Statement kGetPrompt = {
    "pg_mcp_prompt", PG_MCP_CONTEXT("") " SELECT mcp.get_prompt($4, $5::jsonb)::text FROM context"};
const Statement kGetPromptAs = {
    "pg_mcp_prompt_as",
    PG_MCP_CONTEXT("mcp.assume_principal($6::bytea),") " SELECT mcp.get_prompt($4, $5::jsonb)::text FROM context"};
#undef PG_MCP_CONTEXT
const Statement kAuthenticate = {"pg_mcp_authenticate", "SELECT mcp.assume_principal($1::bytea)"};
const Statement kEndSession = {
    "pg_mcp_end_session", "SELECT 'true' FROM pg_catalog.pg_notify('pg_mcp_session_ended', $1)"};
const Statement kIdentityProviders = {
    "pg_mcp_identity_providers",
    "SELECT coalesce(pg_catalog.json_agg(p ORDER BY p.issuer), '[]')::text"
    " FROM mcp.identity_providers_for($1) p"};
const Statement kPing = {"pg_mcp_ping", "SELECT 1"};

// One row per operation: its statements (without and with a principal's token; a call's also
// deferred), and the parameters it takes after the agent context ($1..$3) — for a call, its
// tool and arguments come first ($1, $2) and the context after.
const OperationRow kOperations[] = {
    {Operation::ListTools, {&kList, &kListAs}, {&kList, &kListAs}, true, false, false},
    {Operation::CallTool, {&kCall, &kCallAs}, {&kCallDeferred, &kCallDeferredAs}, true, true, true},
    {Operation::ListResources,
     {&kListResources, &kListResourcesAs},
     {&kListResources, &kListResourcesAs},
     true,
     false,
     false},
    {Operation::ReadResource,
     {&kReadResource, &kReadResourceAs},
     {&kReadResource, &kReadResourceAs},
     true,
     true,
     false},
    {Operation::ListPrompts,
     {&kListPrompts, &kListPromptsAs},
     {&kListPrompts, &kListPromptsAs},
     true,
     false,
     false},
    {Operation::GetPrompt,
     {&kGetPrompt, &kGetPromptAs},
     {&kGetPrompt, &kGetPromptAs},
     true,
     true,
     true},
    {Operation::Authenticate,
     {&kAuthenticate, &kAuthenticate},
     {&kAuthenticate, &kAuthenticate},
     false,
     false,
     false},
    {Operation::IdentityProviders,
     {&kIdentityProviders, &kIdentityProviders},
     {&kIdentityProviders, &kIdentityProviders},
     false,
     true,
     false},
    {Operation::EndSession,
     {&kEndSession, &kEndSession},
     {&kEndSession, &kEndSession},
     false,
     true,
     false},
};

// The statement of an OAuth identity: the principal's form with mcp.assume_identity($n::jsonb)
// in place of mcp.assume_principal($n::bytea) (for a call, the identity argument of
// mcp.serve_call in place of the token's), made once for each.
const Statement &identity_form(const Statement &as_principal) {
    struct Derived {
        std::string name, sql;
        Statement statement;
    };
    static const std::map<const Statement *, std::unique_ptr<Derived>> forms = [] {
        std::map<const Statement *, std::unique_ptr<Derived>> made;
        for (const OperationRow &row : kOperations)
            for (const Statement *statement : {row.statements[1], row.deferred[1]}) {
                if (made.count(statement)) continue;
                auto derived = std::make_unique<Derived>();
                derived->name = std::string(statement->name) + "_oauth";
                derived->sql = statement->sql;
                // A call takes the identity in place of the token.
                size_t call = derived->sql.find("$6::bytea, NULL::jsonb");
                if (call != std::string::npos)
                    derived->sql.replace(call, std::strlen("$6::bytea, NULL::jsonb"),
                                         "NULL::bytea, $6::jsonb");
                size_t at = derived->sql.find("mcp.assume_principal(");
                if (at != std::string::npos) {
                    derived->sql.replace(at, std::strlen("mcp.assume_principal("),
                                         "mcp.assume_identity(");
                    size_t cast = derived->sql.find("::bytea)", at);
                    if (cast != std::string::npos) derived->sql.replace(cast, 8, "::jsonb)");
                }
                derived->statement = {derived->name.c_str(), derived->sql.c_str()};
                made.emplace(statement, std::move(derived));
            }
        return made;
    }();
    auto found = forms.find(&as_principal);
    return found == forms.end() ? as_principal : found->second->statement;
}

// What a statement does, for its span (OpenTelemetry db.query.summary: "SELECT <function>").
const char *summary_of(Operation operation) {
    switch (operation) {
        case Operation::ListTools:
            return "mcp.list_tools";
        case Operation::CallTool:
            return "mcp.serve_call";
        case Operation::ListResources:
            return "mcp.list_resources";
        case Operation::ReadResource:
            return "mcp.read_resource";
        case Operation::ListPrompts:
            return "mcp.list_prompts";
        case Operation::GetPrompt:
            return "mcp.get_prompt";
        case Operation::Authenticate:
            return "mcp.assume_principal";
        case Operation::IdentityProviders:
            return "mcp.identity_providers_for";
        case Operation::EndSession:
            return "pg_notify";
    }
    return "mcp";
}

const OperationRow &operation_row(Operation operation) {
    for (const OperationRow &row : kOperations)
        if (row.operation == operation) return row;
    return kOperations[0];
}

}  // namespace pg_mcp::bridge
