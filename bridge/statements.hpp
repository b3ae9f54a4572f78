// The statements the pool sends, one row per operation of the protocol: its SQL function
// (without and with a principal's token; a call's also deferred) and the parameters it takes.
#pragma once

#include "backend.hpp"

namespace pg_mcp::bridge {

// A statement, prepared once per connection under its name (or sent unnamed).
struct Statement {
    const char *name;
    const char *sql;
};

// An operation's statements (without and with a principal's token; a call's also deferred),
// and the parameters it takes after the agent context ($1..$3) — for a call, its tool and
// arguments come first ($1, $2) and the context after.
struct OperationRow {
    Operation operation;
    const Statement *statements[2];
    const Statement *deferred[2];
    bool context;          // agent_name, client_info, request_id
    bool takes_name;       // the tool, uri or prompt name
    bool takes_arguments;  // JSON arguments
};

const OperationRow &operation_row(Operation operation);
// The statement of an OAuth identity: the principal's form with mcp.assume_identity($n::jsonb)
// in place of mcp.assume_principal($n::bytea), made once for each.
const Statement &identity_form(const Statement &as_principal);
// What a statement does, for its span (OpenTelemetry db.query.summary: "SELECT <function>").
const char *summary_of(Operation operation);

extern const Statement kPing;  // SELECT 1: the readiness probe
// The _meta key of a deferred call's audit token (mcp.call_tool_deferred), for the confirmer.
extern const char *const kAuditPendingKey;

}  // namespace pg_mcp::bridge
