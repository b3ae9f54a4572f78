-- Group commit at the client: mcp.call_tool_deferred returns once the audit record is queued (for
-- a login that is a member of mcp_audit_confirmer, in durable mode), and mcp.await_audit confirms it.
\set SHOW_CONTEXT never
CREATE ROLE regress_deferred_login LOGIN;
CREATE ROLE regress_deferred_agent NOLOGIN;
SELECT mcp.create_tool('deferred_echo', 'SELECT :x::int AS x', 'Echoes x', '[{"name": "x", "type": "integer"}]');
SELECT mcp.grant_tool('deferred_echo', 'regress_deferred_agent');
GRANT regress_deferred_agent TO regress_deferred_login;

-- Not a member of mcp_audit_confirmer: the call waits for its record itself, as call_tool_stream does.
SET SESSION AUTHORIZATION regress_deferred_login;
SET ROLE regress_deferred_agent;
SELECT h::jsonb #> '{_meta}' ? 'pg-mcp/audit_id' AS waited, h::jsonb #> '{_meta}' ? 'pg-mcp/audit_pending' AS pending
  FROM mcp.call_tool_deferred('deferred_echo', '{"x": 1}', NULL, NULL, 'deferred-1') h LIMIT 1;
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- A member: the head names the pending record; await_audit confirms it and returns its id,
-- which is the row's.
GRANT mcp_audit_confirmer TO regress_deferred_login;
SET SESSION AUTHORIZATION regress_deferred_login;
SET ROLE regress_deferred_agent;
SELECT h AS head FROM mcp.call_tool_deferred('deferred_echo', '{"x": 2}', NULL, NULL, 'deferred-2') h LIMIT 1 \gset
SELECT :'head'::jsonb #> '{_meta,pg-mcp/audit_pending}' AS pending \gset
SELECT jsonb_array_length(:'pending'::jsonb) = 2 AS pending_is_slot_and_seq,
       NOT (:'head'::jsonb -> '_meta' ? 'pg-mcp/audit_id') AS no_id_yet;
RESET ROLE;
SELECT mcp.await_audit((:'pending'::jsonb ->> 0)::int, (:'pending'::jsonb ->> 1)::bigint) AS confirmed_id \gset
RESET SESSION AUTHORIZATION;
SELECT id = :confirmed_id AS id_matches, status, request_id FROM mcp.audit_log WHERE request_id = 'deferred-2';

-- Bad tokens are refused clearly.
SELECT mcp.await_audit(-1, 1);
SELECT mcp.await_audit(0, 0);
SELECT mcp.await_audit(0, 999999999999);

SELECT mcp.drop_tool('deferred_echo');
REVOKE mcp_audit_confirmer FROM regress_deferred_login;
DROP ROLE regress_deferred_login, regress_deferred_agent;
