-- Group commit at the client: a call that returns once its audit record is queued, and the wait
-- that confirms it (pg_mcp_bridge answers only after it; many calls share one wait).
CREATE FUNCTION @extschema@.call_tool_deferred(name text, arguments jsonb DEFAULT '{}',
                                               agent_name text DEFAULT NULL, client_info text DEFAULT NULL,
                                               request_id text DEFAULT NULL) RETURNS SETOF text
    LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 2 AS 'MODULE_PATHNAME', 'pg_mcp_call_tool_deferred';
COMMENT ON FUNCTION @extschema@.call_tool_deferred(text, jsonb, text, text, text) IS 'mcp.call_tool_stream for a client that confirms durability itself: in durable audit mode, for a login that is a member of mcp_audit_confirmer, it returns once the audit record is queued, the head carrying "pg-mcp/audit_pending": [slot, seq]; the result must not be used before mcp.await_audit(slot, seq) returns. Otherwise the same as mcp.call_tool_stream';

CREATE FUNCTION @extschema@.await_audit(slot integer, seq bigint) RETURNS bigint
    LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_await_audit';
COMMENT ON FUNCTION @extschema@.await_audit(integer, bigint) IS 'Waits until the queued audit record (slot, seq) of mcp.call_tool_deferred, and every record queued before it, is committed and flushed (bounded by pg_mcp.audit_wait_timeout); returns its mcp.audit_log id';
