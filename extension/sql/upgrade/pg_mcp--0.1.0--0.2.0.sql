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

-- Output schemas say "or null" with anyOf, not a type array (which several model providers'
-- function declarations do not accept): the stored schemas of existing tools are rewritten.
CREATE FUNCTION @extschema@._portable_schema(schema jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    types jsonb := schema -> 'type';
BEGIN
    IF jsonb_typeof(schema) <> 'object' THEN RETURN schema; END IF;
    IF schema ? 'items' THEN
        schema := jsonb_set(schema, '{items}', @extschema@._portable_schema(schema -> 'items'));
    END IF;
    IF jsonb_typeof(schema -> 'anyOf') = 'array' THEN
        schema := jsonb_set(schema, '{anyOf}',
            (SELECT coalesce(jsonb_agg(@extschema@._portable_schema(e) ORDER BY n), '[]')
               FROM jsonb_array_elements(schema -> 'anyOf') WITH ORDINALITY a(e, n)));
    END IF;
    IF jsonb_typeof(types) = 'array' THEN
        RETURN jsonb_build_object('anyOf',
            (SELECT jsonb_agg(CASE WHEN e = '"null"' THEN '{"type": "null"}'::jsonb
                                   ELSE (schema - 'type') || jsonb_build_object('type', e) END ORDER BY n)
               FROM jsonb_array_elements(types) WITH ORDINALITY a(e, n)));
    END IF;
    RETURN schema;
END
$$;
UPDATE @extschema@.tools t
   SET output_schema = jsonb_set(t.output_schema, '{properties,rows,items,properties}',
                                 (SELECT jsonb_object_agg(c.key, @extschema@._portable_schema(c.value))
                                    FROM jsonb_each(t.output_schema #> '{properties,rows,items,properties}') c))
 WHERE jsonb_typeof(t.output_schema #> '{properties,rows,items,properties}') = 'object'
   AND t.output_schema #> '{properties,rows,items,properties}' <> '{}';
DROP FUNCTION @extschema@._portable_schema(jsonb);

-- Results marked as data, not instructions: each tool's setting; create_tool and alter_tool
-- take it (recreated with the new parameter).
-- What is parsed against the row type goes first, and comes back from tool_listing.sql.
DROP FUNCTION @extschema@.list_all_tools();
DROP FUNCTION @extschema@.list_tools();
DROP VIEW @extschema@.granted_tools;
DROP FUNCTION @extschema@._tool_definition(@extschema@.tools);
ALTER TABLE @extschema@.tools
    ADD COLUMN untrusted_data text NOT NULL DEFAULT 'auto' CHECK (untrusted_data IN ('auto', 'mark', 'plain')),
    ADD COLUMN confirm text NOT NULL DEFAULT 'none' CHECK (confirm IN ('none', 'ask')),
    ADD COLUMN confirm_message text CHECK (length(confirm_message) BETWEEN 1 AND 1000);
COMMENT ON COLUMN @extschema@.tools.confirm IS 'none, or ask: a person confirms each call through the MCP client (elicitation) before its SQL runs; the audit row records the decision';
COMMENT ON COLUMN @extschema@.tools.confirm_message IS 'What the person is asked, with {argument} placeholders replaced by the call''s values; NULL: the tool, the caller and the arguments';
COMMENT ON COLUMN @extschema@.tools.untrusted_data IS 'Whether the text content of a result is wrapped in per-call boundaries saying it is data, not instructions (structuredContent is never changed): auto (results with a column that can carry text, and the query tool), mark (always) or plain (never)';
DROP FUNCTION @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text);
DROP FUNCTION @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision);
--@include tool_define.sql
--@include tool_listing.sql

-- A person confirms calls of tools with confirm => 'ask': the state's key and its uses, the
-- decision in the audit row, and the statuses of calls that did not run for it.
--@include confirmation.sql
--@include confirmation_policies.sql
ALTER TABLE @extschema@.audit_log ADD COLUMN confirmation jsonb;
COMMENT ON COLUMN @extschema@.audit_log.confirmation IS 'For tools a person confirms: {"decision": asked | accepted | declined | cancelled | timeout | refused | unavailable, "asked_at", "message": what the person was shown}; the person is auth_subject';
ALTER TABLE @extschema@.audit_log DROP CONSTRAINT audit_log_status_check,
    ADD CONSTRAINT audit_log_status_check CHECK (status IN ('ok', 'truncated', 'invalid_arguments', 'denied',
                                                    'not_found', 'refused', 'error', 'timeout',
                                                    'cancelled', 'rate_limited', 'purge',
                                                    'confirmation_asked', 'confirmation_unavailable',
                                                    'confirmation_refused', 'declined',
                                                    'confirmation_cancelled', 'confirmation_timeout'));
