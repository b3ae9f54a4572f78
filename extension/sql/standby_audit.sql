------------------------------------------------------------------------------------------
-- Audit records of calls served by hot standbys
--
-- A standby cannot write mcp.audit_log: mcp.call_tool_stream there returns the call's audit
-- record with its result (_meta "pg-mcp/standby_audit"), and the client (pg_mcp_bridge) spools
-- it and forwards it here, on the primary. Each record has a random id; one already ingested
-- is skipped, so a client may resend after any failure.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.audit_forwarded (
    record_id    uuid PRIMARY KEY,
    ingested_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    ingested_by  name NOT NULL  -- the standby session's login
);
COMMENT ON TABLE @extschema@.audit_forwarded IS 'Ids of the standby-served calls'' audit records added to mcp.audit_log by mcp.ingest_standby_audit (a record is added once)';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_forwarded', '');
REVOKE ALL ON @extschema@.audit_forwarded FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_forwarded TO mcp_admin;

--@include standby_ingest.sql
