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
--@include serve_call.sql

-- OAuth identities: who the person behind a call is, verified by pg_mcp_bridge --auth oauth.
ALTER TABLE @extschema@.audit_log ADD COLUMN auth_issuer text, ADD COLUMN auth_subject text,
    ADD COLUMN auth_client_id text;
COMMENT ON COLUMN @extschema@.audit_log.auth_issuer IS 'Issuer of the OAuth access token the call came with (verified by pg_mcp_bridge --auth oauth), or NULL';
COMMENT ON COLUMN @extschema@.audit_log.auth_subject IS 'Subject ("sub") of that token: the person or workload behind the agent';
COMMENT ON COLUMN @extschema@.audit_log.auth_client_id IS 'OAuth client (the agent application) the token was issued to';
--@include identity.sql

-- The person behind each PII access.
--@include pii_access.sql

-- Traces: the trace and span of each call.
ALTER TABLE @extschema@.audit_log ADD COLUMN trace_id text, ADD COLUMN span_id text;
COMMENT ON COLUMN @extschema@.audit_log.trace_id IS 'W3C trace id of the call (setting pg_mcp.traceparent, which pg_mcp_bridge sets from the agent''s trace or a new one; asserted by the client, not authenticated): the key to its spans';
COMMENT ON COLUMN @extschema@.audit_log.span_id IS 'Span id of the database call within that trace';

-- Changing or dropping a sandboxed view waits a bounded time for agents' open transactions.
--@include sandbox_view_changes.sql

-- The audit writer's cost per row: time ranges of the append-only log through a BRIN index.
DROP INDEX @extschema@.audit_log_called_at;
CREATE INDEX audit_log_called_at ON @extschema@.audit_log USING brin (called_at) WITH (autosummarize = on);

-- Tokens' principals are cached in each backend until a token changes.
--@include token_invalidation.sql

-- Auditors (plain mcp_admin members) read mcp.sandbox_views and mcp.pii_access.
--@include sandbox_views_view.sql
