-- What each call cost the database (the plan's estimated cost, shared buffers hit and read),
-- recorded with its audit row, and mcp.tool_costs ranking the tools by it.
\set SHOW_CONTEXT never
CREATE TABLE cost_items (id int PRIMARY KEY, category int, note text);
INSERT INTO cost_items SELECT g, g % 100, repeat('x', 50) FROM generate_series(1, 20000) g;
ANALYZE cost_items;
CREATE ROLE regress_cost_reader NOLOGIN;
GRANT SELECT ON cost_items TO regress_cost_reader;
SELECT mcp.create_tool('cost_by_id', 'SELECT id, note FROM public.cost_items WHERE id = :id', 'By key',
    '[{"name": "id", "type": "integer"}]', run_as => 'regress_cost_reader');
SELECT mcp.create_tool('cost_by_category', 'SELECT count(*) AS n FROM public.cost_items WHERE category = :c', 'Scans',
    '[{"name": "c", "type": "integer"}]', run_as => 'regress_cost_reader');
SELECT mcp.grant_tool(t, 'postgres') FROM unnest(ARRAY['cost_by_id', 'cost_by_category']) t;
SELECT count(*) FROM (SELECT mcp.call_tool('cost_by_id', jsonb_build_object('id', g)) FROM generate_series(1, 5) g) calls;
SELECT count(*) FROM (SELECT mcp.call_tool('cost_by_category', jsonb_build_object('c', g)) FROM generate_series(1, 3) g) calls;
SELECT mcp.call_tool('cost_by_id', '{"id": "not a number"}') #>> '{_meta,pg-mcp/status}' AS invalid;

-- Each run's row has its cost; a call whose SQL never ran has none.
SELECT tool_name, status, plan_cost > 0 AS costed, shared_blks_hit + shared_blks_read > 0 AS touched_buffers
  FROM mcp.audit_log WHERE tool_name LIKE 'cost_by_%' ORDER BY id;
-- The scan costs more than the key lookup, in the plan and in buffers per row returned.
SELECT (SELECT avg(plan_cost) FROM mcp.audit_log WHERE tool_name = 'cost_by_category')
     > 10 * (SELECT avg(plan_cost) FROM mcp.audit_log WHERE tool_name = 'cost_by_id') AS scan_costs_more;
SELECT tool, calls, rows_returned, total_cost > 0 AS has_cost, buffers >= buffers_read AS consistent
  FROM mcp.tool_costs WHERE tool LIKE 'cost_by_%';
SELECT tool FROM mcp.tool_costs WHERE tool LIKE 'cost_by_%' ORDER BY buffers_per_row DESC LIMIT 1;
SELECT (SELECT tool FROM mcp.tool_costs WHERE tool LIKE 'cost_by_%' LIMIT 1) AS most_expensive_first;
-- For DBAs only.
SET ROLE regress_cost_reader;
SELECT * FROM mcp.tool_costs;
RESET ROLE;

SELECT mcp.drop_tool(t) FROM unnest(ARRAY['cost_by_id', 'cost_by_category']) t;
DROP TABLE cost_items;
DROP ROLE regress_cost_reader;
