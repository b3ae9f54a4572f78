-- Tool review: every tool's use over a window, and a verdict on the ones made unused, failing,
-- slow and over-granted on purpose here; mcp.drop_unused_tools acts on it.
\set SHOW_CONTEXT never
CREATE SCHEMA review;
CREATE TABLE review.items (id int PRIMARY KEY, label text, secret text);
INSERT INTO review.items SELECT g, 'item ' || g, 's' FROM generate_series(1, 10) g;
CREATE ROLE regress_review_user NOLOGIN;
CREATE ROLE regress_review_idle NOLOGIN;
SELECT mcp.create_sandbox_view('review.items_view', 'review.items', ARRAY['id', 'label']);
SELECT mcp.create_tool('rv_fine', 'SELECT label FROM review.items_view WHERE id = :id', 'Fine',
    '[{"name": "id", "type": "integer"}]');
SELECT mcp.create_tool('rv_failing', 'SELECT 1 / :d AS x', 'Fails on zero', '[{"name": "d", "type": "integer"}]');
SELECT mcp.create_tool('rv_slow', 'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'Slow',
    '[{"name": "s", "type": "number"}]', timeout => '300 milliseconds');
SELECT mcp.create_tool('rv_unused', 'SELECT 1 AS one', 'Never called');
SELECT mcp.create_tool('rv_wide', 'SELECT 2 AS two', 'Granted too widely');
GRANT USAGE ON SCHEMA review TO regress_review_user;
GRANT SELECT ON review.items_view TO regress_review_user;
SELECT mcp.grant_tool(t, 'regress_review_user')
  FROM unnest(ARRAY['rv_fine', 'rv_failing', 'rv_slow', 'rv_unused', 'rv_wide']) t;
SELECT mcp.grant_tool('rv_wide', 'regress_review_idle');  -- granted, never used
SET ROLE regress_review_user;
SELECT count(*) FROM (SELECT mcp.call_tool('rv_fine', jsonb_build_object('id', g)) FROM generate_series(1, 4) g) c;
SELECT count(*) FROM (SELECT mcp.call_tool('rv_failing', jsonb_build_object('d', g % 2)) FROM generate_series(1, 4) g) c;
SELECT mcp.call_tool('rv_wide') #>> '{_meta,pg-mcp/status}' AS wide;
SELECT mcp.call_tool('rv_slow', '{"s": 0.05}') #>> '{_meta,pg-mcp/status}' AS slow_ok;
SELECT mcp.call_tool('rv_slow', '{"s": 1}') #>> '{_meta,pg-mcp/status}' AS slow_timeout;
RESET ROLE;

SELECT tool, calls, round(error_rate::numeric, 2) AS error_rate, round(timeout_rate::numeric, 2) AS timeout_rate,
       view_changed, granted_to, never_called_by, verdict
  FROM mcp.tool_review WHERE tool LIKE 'rv_%';
SELECT tool, p95_ms > 100 AS p95_over_100ms FROM mcp.tool_review WHERE tool = 'rv_slow';

-- The view under a tool changes after the tool was last altered: the review says so.
SELECT mcp.alter_sandbox_view('review.items_view', columns => ARRAY['id', 'label', 'secret']);
SELECT tool, view_changed, changed_views FROM mcp.tool_review WHERE tool = 'rv_fine';
SELECT mcp.alter_tool('rv_fine', description => 'Fine, reviewed');
SELECT tool, view_changed FROM mcp.tool_review WHERE tool = 'rv_fine';

-- A window reaching no call makes every tool unused.
SELECT count(*) FILTER (WHERE verdict = 'unused') = count(*) AS all_unused
  FROM mcp.review_tools('0 seconds') WHERE tool LIKE 'rv_%';

-- drop_unused_tools lists by default, drops when asked; built-in tools are never dropped.
SELECT mcp.drop_unused_tools(interval '1 day');  -- nothing is a day old
UPDATE mcp.tools SET created_at = now() - interval '2 days' WHERE name LIKE 'rv_%';
SELECT tool, last_call IS NULL AS never_called, dropped FROM mcp.drop_unused_tools(interval '1 day')
 WHERE tool LIKE 'rv_%';
SELECT count(*) AS still_there FROM mcp.tools WHERE name = 'rv_unused';
SELECT tool, dropped FROM mcp.drop_unused_tools(interval '1 day', dry_run => false) WHERE tool LIKE 'rv_%';
SELECT count(*) AS gone FROM mcp.tools WHERE name = 'rv_unused';
SELECT mcp.drop_unused_tools(interval '-1 day');

-- For DBAs only.
SET ROLE regress_review_user;
SELECT * FROM mcp.tool_review;
SELECT mcp.drop_unused_tools(interval '1 day');
RESET ROLE;

SELECT mcp.drop_tool(t) FROM unnest(ARRAY['rv_fine', 'rv_failing', 'rv_slow', 'rv_wide']) t;
SELECT mcp.drop_sandbox_view('review.items_view');
DROP SCHEMA review CASCADE;
DROP ROLE regress_review_user, regress_review_idle;
