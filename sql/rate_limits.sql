-- Rate limits per role or principal and tool, counted in shared memory; and the monitoring
-- views over the audit log.
\set SHOW_CONTEXT never
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'one'), (2, 'two');
CREATE ROLE regress_rl_agent NOLOGIN;
CREATE ROLE regress_rl_other NOLOGIN;
GRANT SELECT ON notes TO regress_rl_agent, regress_rl_other;
SELECT mcp.create_tool('note', 'SELECT id, body FROM notes WHERE id = :id', 'A note', '[{"name": "id", "type": "integer"}]');
SELECT mcp.grant_tool('note', 'regress_rl_agent');
SELECT mcp.grant_tool('note', 'regress_rl_other');

-- Managing limits: each mistake is named.
SELECT mcp.set_rate_limit('regress_rl_agent', 'note', max_calls => 3, per => '1 hour');
SELECT mcp.set_rate_limit('no_such_role', 'note', max_calls => 3);
SELECT mcp.set_rate_limit('regress_rl_agent', 'no_such_tool', max_calls => 3);
SELECT mcp.set_rate_limit('regress_rl_agent', 'note');
SELECT mcp.set_rate_limit('regress_rl_agent', 'note', max_calls => 0);
SELECT mcp.set_rate_limit('nobody', subject_kind => 'principal', max_calls => 1);
SELECT subject_kind, subject, tool, max_calls, per, max_concurrent FROM mcp.rate_limits;

-- The fourth call within the hour is refused, with a retry hint, and audited.
SET ROLE regress_rl_agent;
SELECT mcp.call_tool('note', jsonb_build_object('id', g)) #>> '{_meta,pg-mcp/status}' AS status
  FROM generate_series(1, 4) g;
SELECT r #>> '{content,0,text}' LIKE 'Rate limit reached for tool "note" (at most 3 calls per 3600 s for role "regress_rl_agent" on tool "note"). Retry in %' AS message_ok,
       (r #>> '{_meta,pg-mcp/retry_after_ms}')::bigint BETWEEN 1 AND 3600000 AS retry_hint
  FROM mcp.call_tool('note', '{"id": 1}') r;
-- Another role is not affected.
SET ROLE regress_rl_other;
SELECT mcp.call_tool('note', '{"id": 1}') #>> '{_meta,pg-mcp/status}' AS other_role;
RESET ROLE;
SELECT subject, tool, max_calls, calls_in_window, concurrent_now FROM mcp.rate_limit_usage;
SELECT status, count(*) FROM mcp.audit_log WHERE tool_name = 'note' GROUP BY status ORDER BY status;

-- Raising the limit applies at once.
SELECT mcp.set_rate_limit('regress_rl_agent', 'note', max_calls => 100, per => '1 hour');
SET ROLE regress_rl_agent;
SELECT mcp.call_tool('note', '{"id": 1}') #>> '{_meta,pg-mcp/status}' AS after_raise;
RESET ROLE;
SELECT mcp.drop_rate_limit('regress_rl_agent', 'note');
SELECT mcp.drop_rate_limit('regress_rl_agent', 'note');

-- Monitoring: per tool and hour, per principal and hour, and who read PII.
SELECT tool, calls, errors, denials, rate_limited, p50_ms >= 0 AS has_p50, p95_rows
  FROM mcp.tool_stats_hourly WHERE tool = 'note';
SELECT principal, is_principal, calls, rate_limited FROM mcp.principal_stats_hourly
 WHERE principal LIKE 'regress_rl%' ORDER BY principal;
CREATE SCHEMA hr;
CREATE TABLE hr.staff (id int, name text, badge text);
INSERT INTO hr.staff VALUES (1, 'Ann', 'A1');
SELECT mcp.create_sandbox_view('hr.staff_view', 'hr.staff', ARRAY['id', 'name'], pii_columns => ARRAY['name']);
GRANT USAGE ON SCHEMA hr TO regress_rl_agent;
GRANT SELECT ON hr.staff_view TO regress_rl_agent;
SELECT mcp.create_tool('staff', 'SELECT id, name FROM hr.staff_view WHERE id = :id', 'Staff',
                       '[{"name": "id", "type": "integer"}]', search_path => 'pg_catalog, pg_temp');
SELECT mcp.grant_tool('staff', 'regress_rl_agent');
SET ROLE regress_rl_agent;
SELECT mcp.call_tool('staff', '{"id": 1}') #>> '{_meta,pg-mcp/status}';
SELECT mcp.call_tool('staff', '{"id": 99}') #>> '{_meta,pg-mcp/status}';  -- no rows: no PII read
SELECT count(*) FROM mcp.pii_access;
RESET ROLE;
SELECT caller_role, tool_name, rows_returned, pii_columns FROM mcp.pii_access
 WHERE called_at > now() - interval '30 days' ORDER BY audit_id;

SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
SELECT mcp.drop_sandbox_view('hr.staff_view');
DROP SCHEMA hr CASCADE;
DROP TABLE notes;
DROP ROLE regress_rl_agent, regress_rl_other;
