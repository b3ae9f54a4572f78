-- Audit records of calls served by a hot standby reach the primary's log through
-- mcp.ingest_standby_audit (pg_mcp_bridge forwards them): durably, each once, validated.
\set SHOW_CONTEXT never
CREATE ROLE regress_forwarder LOGIN IN ROLE mcp_audit_forwarder;
CREATE ROLE regress_not_forwarder LOGIN;
\set rec '{"record_id": "6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f11", "called_at": "2026-01-02T03:04:05.678+00:00", "caller_role": "standby_agent", "session_role": "standby_login", "agent_name": "bot", "client_info": "client/1", "request_id": "42", "tool_name": "lookup", "tool_version": 3, "arguments": {"id": 7}, "principal": "acme", "status": "ok", "duration_ms": 1.5, "rows_returned": 1, "sqlstate": null, "message": null, "backend_pid": 4242}'
SET ROLE regress_forwarder;
SELECT mcp.ingest_standby_audit(jsonb_build_array(:'rec'::jsonb)) AS added;
SELECT mcp.ingest_standby_audit(jsonb_build_array(:'rec'::jsonb)) AS added_again;
RESET ROLE;
SELECT caller_role, session_role, agent_name, client_info, request_id, tool_name, tool_version,
       arguments, principal, status, duration_ms, rows_returned, backend_pid, called_at AT TIME ZONE 'UTC' AS called_at
  FROM mcp.audit_log WHERE request_id = '42' AND tool_name = 'lookup';
SELECT verified FROM mcp.verify_audit();
SELECT count(*) AS remembered FROM mcp.audit_forwarded WHERE record_id = '6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f11';

-- Bad input is refused whole and changes nothing.
SET ROLE regress_forwarder;
SELECT mcp.ingest_standby_audit('{"not": "an array"}');
SELECT mcp.ingest_standby_audit(NULL);
SELECT mcp.ingest_standby_audit('[{"record_id": "6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f12", "status": "ok"}]');
SELECT mcp.ingest_standby_audit(jsonb_build_array(jsonb_set(jsonb_set(:'rec'::jsonb, '{status}', '"purge"'),
       '{record_id}', '"6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f13"')));
SELECT mcp.ingest_standby_audit('[{"record_id": "not-a-uuid"}]');
-- A valid record beside an invalid one is not added either.
SELECT mcp.ingest_standby_audit(jsonb_build_array(
    jsonb_set(:'rec'::jsonb, '{record_id}', '"6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f12"'),
    jsonb_set(jsonb_set(:'rec'::jsonb, '{status}', '"bogus"'), '{record_id}', '"6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f13"')));
RESET ROLE;
SELECT count(*) AS rows_from_bad_input FROM mcp.audit_forwarded
 WHERE record_id IN ('6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f12', '6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f13');
SELECT count(*) AS audit_rows FROM mcp.audit_log WHERE request_id = '42' AND tool_name = 'lookup';

-- The same record queued twice before either is written (a resend racing the first copy, or
-- two forwarding sessions) gets one row: the writer notes ids first and skips ones it has.
SELECT mcp._queue_forwarded_audit(r, true), mcp._queue_forwarded_audit(r, true)
  FROM jsonb_set(jsonb_set(:'rec'::jsonb, '{record_id}', '"6f1c2a47-0d5e-4c1b-9a41-2b7c1d9e0f21"'),
                 '{request_id}', '"dup-42"') AS r;
SELECT mcp._await_forwarded_audit() > 0 AS durable;
SELECT count(*) AS one_row FROM mcp.audit_log WHERE request_id = 'dup-42';
SELECT verified FROM mcp.verify_audit();

-- A record forwarded with a required field missing or out of range is refused before it is
-- queued (a row the writer could not insert would hold up the queue).
SELECT mcp._queue_forwarded_audit(jsonb_set(:'rec'::jsonb, '{duration_ms}', '-1'), false);
SELECT mcp._queue_forwarded_audit(jsonb_set(:'rec'::jsonb, '{rows_returned}', '3000000000'), false);
SELECT mcp._queue_forwarded_audit(:'rec'::jsonb - 'tool_name', false);

-- Only members of mcp_audit_forwarder may add rows; the internals are nobody's.
SET ROLE regress_not_forwarder;
SELECT mcp.ingest_standby_audit(jsonb_build_array(:'rec'::jsonb));
SELECT mcp._await_forwarded_audit();
SELECT * FROM mcp.audit_forwarded;
RESET ROLE;
DROP ROLE regress_forwarder, regress_not_forwarder;
