
-- Role whose members manage tools. Roles are cluster-wide: it is created once and survives
-- DROP EXTENSION (like pg_monitor-style roles of other extensions).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_admin') THEN
        CREATE ROLE mcp_admin NOLOGIN;
        COMMENT ON ROLE mcp_admin IS 'Members may create, alter, drop, grant and revoke pg_mcp tools';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_tool_author') THEN
        CREATE ROLE mcp_tool_author NOLOGIN;
        COMMENT ON ROLE mcp_tool_author IS 'Members (agents that draft tools) may call the built-in propose_tool; drafts go live only when a DBA approves them';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_audit_forwarder') THEN
        CREATE ROLE mcp_audit_forwarder NOLOGIN;
        COMMENT ON ROLE mcp_audit_forwarder IS 'Members (the login of pg_mcp_bridge with read replicas) may add the audit records of calls served by hot standbys to mcp.audit_log';
    END IF;
END
$$;

--@include audit_confirmer_role.sql

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
