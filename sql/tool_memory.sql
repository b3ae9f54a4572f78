-- pg_mcp.tool_memory_limit: a tool whose SQL builds a value larger than the limit (here a
-- string_agg, which work_mem does not bound) is stopped while it runs and audited as an error
-- (53200); under the limit the same tool answers; only superusers may change the limit.
\set SHOW_CONTEXT never
CREATE ROLE regress_mem_agent NOLOGIN;
SELECT mcp.create_tool('mem_agg',
    'SELECT length(string_agg(repeat(''x'', 1000) || g, '''')) AS n FROM generate_series(1, :rows) g',
    'Aggregates rows into one value', '[{"name": "rows", "type": "integer", "maximum": 1000000}]');
SELECT mcp.grant_tool('mem_agg', 'regress_mem_agent');

SET pg_mcp.tool_memory_limit = '32MB';
SET ROLE regress_mem_agent;
-- About 100 MB in one value: stopped.
SELECT r #>> '{content,0,text}' AS message, r -> 'isError' AS is_error, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('mem_agg', '{"rows": 100000}') r;
-- About 1 MB: answered.
SELECT r -> 'structuredContent' -> 'rows' AS rows, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('mem_agg', '{"rows": 1000}') r;
-- The agent cannot lift its own limit.
SET pg_mcp.tool_memory_limit = 0;
RESET ROLE;
-- 0 disables the watch: the large value is built.
SET pg_mcp.tool_memory_limit = 0;
SET ROLE regress_mem_agent;
SELECT r -> 'structuredContent' -> 'rows' AS rows, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('mem_agg', '{"rows": 100000}') r;
RESET ROLE;
RESET pg_mcp.tool_memory_limit;

SELECT status, sqlstate, message FROM mcp.audit_log WHERE tool_name = 'mem_agg' ORDER BY id;

SELECT mcp.drop_tool('mem_agg');
DROP ROLE regress_mem_agent;
