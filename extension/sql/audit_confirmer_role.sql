-- Logins of pg_mcp_bridge that confirm audit durability themselves (mcp.call_tool_deferred).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_audit_confirmer') THEN
        CREATE ROLE mcp_audit_confirmer NOLOGIN;
        COMMENT ON ROLE mcp_audit_confirmer IS 'Members (logins of pg_mcp_bridge) may confirm the durability of their calls'' audit records themselves: mcp.call_tool_deferred returns once the record is queued, and the bridge answers only after mcp.await_audit';
    END IF;
END
$$;
