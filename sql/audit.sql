-- The audit trail: exactly one row per call whatever the outcome, with the caller, the agent
-- context, redacted arguments and the status; append-only.
\set SHOW_CONTEXT never
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50);
CREATE ROLE regress_auditor_agent NOLOGIN;
GRANT SELECT ON accounts TO regress_auditor_agent;
SELECT mcp.create_tool('account', 'SELECT id, owner, balance FROM accounts WHERE id = :id AND :pin = :pin',
    'One account', '[{"name": "id", "type": "integer"}, {"name": "pin", "type": "string", "sensitive": true}]');
SELECT mcp.create_tool('accounts', 'SELECT id FROM accounts ORDER BY id', 'All accounts', max_rows => 1);
SELECT mcp.create_tool('boom', 'SELECT 1 / (id - id) AS x FROM accounts', 'Fails');
SELECT mcp.create_tool('sleepy', 'SELECT pg_sleep(2) IS NULL AS x', 'Too slow', timeout => '100 ms');
SELECT mcp.create_tool('hidden', 'SELECT 1 AS x', 'Not granted');
SELECT mcp.grant_tool(t, 'regress_auditor_agent') FROM unnest(ARRAY['account', 'accounts', 'boom', 'sleepy']) t;

SET ROLE regress_auditor_agent;
-- The bridge sets these for each call; they are recorded with it.
SET pg_mcp.agent_name = 'support-bot';
SET pg_mcp.client_info = 'regress-client/1.0';
SET pg_mcp.request_id = '42';
SELECT mcp.call_tool('account', '{"id": 1, "pin": "1234"}') #>> '{_meta,pg-mcp/status}' AS ok;
SELECT mcp.call_tool('accounts') #>> '{_meta,pg-mcp/status}' AS truncated;
SELECT mcp.call_tool('account', '{"id": "one", "pin": "1234"}') #>> '{_meta,pg-mcp/status}' AS invalid;
-- A sensitive value never appears in messages either.
SELECT mcp.call_tool('account', '{"id": 1, "pin": 987654}') #>> '{content,0,text}' AS hidden;
SELECT mcp.call_tool('hidden') #>> '{_meta,pg-mcp/status}' AS denied;
SELECT mcp.call_tool('nope') #>> '{_meta,pg-mcp/status}' AS not_found;
SELECT mcp.call_tool('boom') #>> '{_meta,pg-mcp/status}' AS error;
SELECT mcp.call_tool('sleepy') #>> '{_meta,pg-mcp/status}' AS timeout;
RESET pg_mcp.agent_name;
RESET pg_mcp.client_info;
RESET pg_mcp.request_id;

-- Agents cannot read, change or delete audit rows.
SELECT count(*) FROM mcp.audit_log;
DELETE FROM mcp.audit_log;
UPDATE mcp.audit_log SET status = 'ok';
RESET ROLE;

-- Eight calls, eight rows, each with its status, caller, context and redacted arguments.
SELECT tool_name, tool_version, caller_role, session_role, agent_name, client_info, request_id, arguments,
       status, rows_returned, sqlstate, message, duration_ms >= 0 AS timed
  FROM mcp.audit_log WHERE backend_pid = pg_backend_pid() ORDER BY id;

-- The audit row's id is returned to the caller in _meta.
SET ROLE regress_auditor_agent;
SELECT mcp.call_tool('account', '{"id": 2, "pin": "9"}') #>> '{_meta,pg-mcp/audit_id}' AS audit_id \gset
RESET ROLE;
SELECT tool_name, caller_role, arguments, rows_returned FROM mcp.audit_log WHERE id = :audit_id;

-- A failed call's row survives the failure (the tool's SQL rolls back, the audit row does not).
SELECT count(*) AS error_rows FROM mcp.audit_log WHERE status = 'error';

-- Nobody, not even the owner, updates or deletes audit rows through ordinary DML.
SELECT count(*) AS rows_before FROM mcp.audit_log \gset
UPDATE mcp.audit_log SET status = 'ok' WHERE status = 'error';
DELETE FROM mcp.audit_log;
TRUNCATE mcp.audit_log;
SELECT count(*) = :rows_before AS rows_kept FROM mcp.audit_log;
-- Retention is the one documented way to remove rows (and only the owner may run it by default).
SET ROLE regress_auditor_agent;
SELECT mcp.purge_audit('0 seconds');
RESET ROLE;
SELECT mcp.purge_audit('1 day') AS purged_recent;
-- A purge is itself recorded in the log.
SELECT count(*) = :rows_before + 1 AS rows_kept_and_purge_recorded FROM mcp.audit_log;
SELECT tool_name, status, rows_returned, message LIKE 'purged 0 audit rows older than %' AS message_ok
  FROM mcp.audit_log ORDER BY id DESC LIMIT 1;
SELECT mcp.purge_audit('-1 day') = :rows_before + 1 AS purged_all;
-- After a purge the guard is back in force.
SELECT mcp.call_tool('nope') #>> '{_meta,pg-mcp/status}';
DELETE FROM mcp.audit_log;
SELECT count(*) FROM mcp.audit_log;

-- The call's trace (pg_mcp.traceparent, as the bridge sets it) is recorded; a malformed one is not.
SET ROLE regress_auditor_agent;
BEGIN;
SET LOCAL pg_mcp.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SELECT mcp.call_tool('account', '{"id": 1, "pin": "1234"}') #>> '{_meta,pg-mcp/status}' AS traced;
COMMIT;
SET pg_mcp.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01';
SELECT mcp.call_tool('account', '{"id": 1, "pin": "1234"}') #>> '{_meta,pg-mcp/status}' AS zero_span;
SET pg_mcp.traceparent = 'not a traceparent';
SELECT mcp.call_tool('account', '{"id": 1, "pin": "1234"}') #>> '{_meta,pg-mcp/status}' AS malformed;
RESET pg_mcp.traceparent;
RESET ROLE;
SELECT trace_id, span_id FROM mcp.audit_log ORDER BY id DESC LIMIT 3;
SELECT verified FROM mcp.verify_audit();

SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
DROP TABLE accounts;
DROP ROLE regress_auditor_agent;
