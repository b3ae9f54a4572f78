// A person confirms a call before it runs (tools with confirm => 'ask'): the request for
// confirmation the client shows through MCP elicitation, and the state it carries back with
// the person's answer, signed with a server key held in the database (HMAC-SHA256) and bound
// to the call's tool, version, arguments, caller and person, with an expiry and a nonce used
// once. Plain C style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "fmgr.h"
}

namespace pg_mcp {

// What the client brought for this call (mcp.serve_call's confirmation argument), until the
// call ends: whether it can ask a person (declared elicitation), and on a retry the state it
// was given and the person's action (accept, decline or cancel).
void set_call_confirmation(Datum confirmation_jsonb, bool isnull);
void define_confirmation_settings(void);  // pg_mcp.confirmation_timeout
void clear_call_confirmation();

struct ConfirmationDecision {
    enum Kind { Run, Ask, Refuse } kind;
    const char *status;          // audit status when not Run: confirmation_asked, declined, ...
    const char *audit_message;   // why, for the audit row
    const char *agent_message;   // for the agent (Ask and Refuse)
    Datum record;                // jsonb for mcp.audit_log.confirmation (0: none)
    const char *input_required;  // Ask: {"message", "requestState", "requestedSchema"} as JSON
};

// Decides a call of a tool that needs confirmation, once its arguments are valid. tool_name,
// its catalog id and version, the arguments (jsonb, or 0 for none; shown_arguments as the
// person and the audit row may see them, sensitive values redacted) and the template
// (confirm_message, or NULL) describe the call, caller its role (and principal); its OAuth
// identity comes from the session. Runs as the extension's owner, SPI connected.
ConfirmationDecision decide_confirmation(const char *tool_name, int64 tool_id, int32 version,
                                         Datum arguments, Datum shown_arguments,
                                         const char *confirm_message, Oid caller,
                                         const char *principal);

}  // namespace pg_mcp
