-- The bridge's one statement per tool call (extension/src/serve_call.cpp).
CREATE FUNCTION @extschema@.serve_call(name text, arguments jsonb, agent_name text, client_info text,
                                       request_id text, traceparent text, principal_token bytea,
                                       identity jsonb, deferred boolean,
                                       confirmation jsonb DEFAULT NULL) RETURNS SETOF text
    LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 2 AS 'MODULE_PATHNAME', 'pg_mcp_serve_call';
COMMENT ON FUNCTION @extschema@.serve_call(text, jsonb, text, text, text, text, bytea, jsonb, boolean, jsonb) IS 'One tool call as pg_mcp_bridge makes it, in one function: the call''s trace (pg_mcp.traceparent and application_name, for its transaction), its principal (the SHA-256 of a token, as mcp.assume_principal, or a verified OAuth identity, as mcp.assume_identity), then mcp.call_tool_stream, or mcp.call_tool_deferred when deferred; confirmation: {"can_ask": the client can ask a person (MCP elicitation), "state", "action"} for tools a person confirms';
