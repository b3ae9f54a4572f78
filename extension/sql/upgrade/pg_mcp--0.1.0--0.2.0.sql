-- Every change to SQL objects since 0.1.0; test/upgrade.sh compares the result with a fresh
-- 0.2.0 install.

-- Audit fields are bounded: which were cut, with the full value's size and SHA-256. Added
-- last, so 0.1.0 rows keep their hash (audit_record.cpp hashes later columns only when set).
ALTER TABLE @extschema@.audit_log ADD COLUMN truncated jsonb;
COMMENT ON COLUMN @extschema@.audit_log.truncated IS 'Fields cut to their limit, each with its full size and the SHA-256 of its full value: {"message": {"bytes": n, "sha256": "hex"}}; NULL when nothing was cut';

-- Forwarded standby records are mapped to the record's fields by name.
DROP FUNCTION @extschema@.ingest_standby_audit(jsonb);
DROP FUNCTION @extschema@._queue_forwarded_audit(timestamptz, name, name, text, text, text, text, integer, jsonb, text, text, double precision, integer, text, text, integer, uuid, double precision, bigint, bigint);
DROP FUNCTION @extschema@._await_forwarded_audit();
--@include standby_ingest.sql

-- Catalog changes advance a version that the bridge checks before re-listing.
--@include catalog_version.sql

-- Group commit at the bridge: deferred calls and the wait that confirms them.
--@include audit_confirmer_role.sql
--@include deferred_audit.sql

-- OAuth identities: who the person behind a call is, verified by pg_mcp_bridge --auth oauth.
ALTER TABLE @extschema@.audit_log ADD COLUMN auth_issuer text, ADD COLUMN auth_subject text,
    ADD COLUMN auth_client_id text;
COMMENT ON COLUMN @extschema@.audit_log.auth_issuer IS 'Issuer of the OAuth access token the call came with (verified by pg_mcp_bridge --auth oauth), or NULL';
COMMENT ON COLUMN @extschema@.audit_log.auth_subject IS 'Subject ("sub") of that token: the person or workload behind the agent';
COMMENT ON COLUMN @extschema@.audit_log.auth_client_id IS 'OAuth client (the agent application) the token was issued to';
--@include identity.sql

-- The person behind each PII access.
CREATE OR REPLACE VIEW @extschema@.pii_access AS
    SELECT a.called_at, a.caller_role, a.principal, a.agent_name, a.tool_name, a.rows_returned,
           array_agg(DISTINCT v.name || '.' || p ORDER BY v.name || '.' || p) AS pii_columns, a.id AS audit_id,
           a.auth_issuer, a.auth_subject, a.auth_client_id
      FROM @extschema@.audit_log a
      JOIN @extschema@.tools t ON t.name = a.tool_name
      JOIN @extschema@.sandbox_views v ON v.view = ANY (t.depends_on)
      CROSS JOIN LATERAL unnest(v.pii_columns) p
     WHERE a.status IN ('ok', 'truncated') AND coalesce(a.rows_returned, 0) > 0
     GROUP BY a.id;
COMMENT ON VIEW @extschema@.pii_access IS 'Successful calls that returned rows from tools reading PII-marked columns of sandboxed views, with the person behind each (OAuth issuer, subject, client); e.g. WHERE called_at > now() - interval ''30 days''';

-- Traces: the trace and span of each call.
ALTER TABLE @extschema@.audit_log ADD COLUMN trace_id text, ADD COLUMN span_id text;
COMMENT ON COLUMN @extschema@.audit_log.trace_id IS 'W3C trace id of the call (setting pg_mcp.traceparent, which pg_mcp_bridge sets from the agent''s trace or a new one; asserted by the client, not authenticated): the key to its spans';
COMMENT ON COLUMN @extschema@.audit_log.span_id IS 'Span id of the database call within that trace';
