-- The built-in query tool: free-form SQL checked by PostgreSQL's parser and analyzer, run as
-- the calling role, read-only, with a planner-cost ceiling; and the catalog tools.
\set SHOW_CONTEXT never
CREATE SCHEMA shop;
CREATE TABLE shop.products (id int PRIMARY KEY, name text, price numeric);
COMMENT ON TABLE shop.products IS 'What we sell';
COMMENT ON COLUMN shop.products.price IS 'Price in EUR';
INSERT INTO shop.products SELECT g, 'product ' || g, g * 1.5 FROM generate_series(1, 200) g;
CREATE TABLE shop.secrets (id int, token text);
CREATE SEQUENCE shop.ids;
ANALYZE shop.products;
CREATE ROLE regress_query_agent NOLOGIN;
GRANT USAGE ON SCHEMA shop TO regress_query_agent;
GRANT SELECT ON shop.products TO regress_query_agent;
GRANT USAGE ON SEQUENCE shop.ids TO regress_query_agent;
SELECT mcp.grant_tool('query', 'regress_query_agent');
SELECT mcp.grant_tool('list_objects', 'regress_query_agent');
SELECT mcp.grant_tool('describe_object', 'regress_query_agent');

-- What the guard accepts.
SET ROLE regress_query_agent;
SELECT mcp.check_query('SELECT id, name FROM shop.products WHERE id < 3');
SELECT mcp.check_query('VALUES (1), (2)');
SELECT mcp.check_query('WITH cheap AS (SELECT * FROM shop.products WHERE price < 10) SELECT count(*), now(), upper(''x'') FROM cheap');
SELECT mcp.check_query('EXPLAIN (COSTS OFF) SELECT * FROM shop.products WHERE id = 1');
SELECT mcp.check_query('SELECT p.* FROM shop.products p JOIN LATERAL (SELECT 1) s ON true WHERE p.id = ANY (ARRAY[1, 2])');

-- What it refuses, by the parser's reading, not by text patterns.
SELECT mcp.check_query('SELECT 1; SELECT 2');
SELECT mcp.check_query('INSERT INTO shop.products VALUES (999, ''x'', 1)');
SELECT mcp.check_query('WITH d AS (DELETE FROM shop.products RETURNING id) SELECT * FROM d');
SELECT mcp.check_query('SELECT * INTO shop.copy FROM shop.products');
SELECT mcp.check_query('SELECT * FROM shop.products FOR UPDATE');
SELECT mcp.check_query('SELECT * FROM (SELECT * FROM shop.products FOR SHARE) s');
SELECT mcp.check_query('SELECT pg_sleep(1)');
SELECT mcp.check_query('SELECT 1 WHERE (SELECT pg_sleep(1)) IS NULL');
SELECT mcp.check_query('SELECT set_config(''role'', ''postgres'', false)');
SELECT mcp.check_query('SELECT nextval(''shop.ids'')');
SELECT mcp.check_query('SELECT pg_terminate_backend(1)');
SELECT mcp.check_query('SELECT database_to_xml(true, true, '''')');
SELECT mcp.check_query('EXPLAIN ANALYZE SELECT * FROM shop.products');
SELECT mcp.check_query('EXPLAIN INSERT INTO shop.products VALUES (1)');
SELECT mcp.check_query('SET statement_timeout = 0');
SELECT mcp.check_query('COPY shop.products TO STDOUT');
SELECT mcp.check_query('DO $$BEGIN NULL; END$$');
-- Errors of the query itself are PostgreSQL's own (privileges are checked when it runs).
SELECT mcp.check_query('SELECT nope FROM shop.products');
SELECT mcp.check_query('SELECT * FROM shop.secrets');
RESET ROLE;

-- The planner-cost ceiling: pg_mcp.query_max_cost (superusers only, also per role) and the
-- tool's own max_cost; the smaller applies.
SET ROLE regress_query_agent;
SET pg_mcp.query_max_cost = 0;
SHOW pg_mcp.query_max_cost;
SELECT mcp.check_query('SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b');
RESET ROLE;
SELECT mcp.alter_tool('query', max_cost => 100);
SELECT mcp.alter_tool('query', sql => 'SELECT 1');
SELECT mcp.alter_tool('list_objects', max_cost => 5);
SELECT mcp.drop_tool('query');

-- Through call_tool: as the calling role, read-only, capped, audited; refusals are tool errors.
SET ROLE regress_query_agent;
SELECT r -> 'structuredContent' AS result, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('query', '{"sql": "SELECT id, name, price FROM shop.products WHERE id <= 2 ORDER BY id"}') r;
SELECT r #>> '{content,0,text}' AS message, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('query', '{"sql": "SELECT pg_sleep(5)"}') r;
SELECT r #>> '{content,0,text}' AS message, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('query', '{"sql": "SELECT * FROM shop.products a, shop.products b, shop.products c"}') r;
SELECT mcp.call_tool('query', '{"sql": "SELECT id FROM shop.products ORDER BY id"}') -> 'structuredContent' -> 'truncated_by' AS capped;
SELECT mcp.call_tool('query', '{"sql": "SELECT * FROM shop.secrets"}') #>> '{content,0,text}' AS not_granted;
-- Plain EXPLAIN runs; a json value the result cannot hold is the call's error, not a broken result.
SELECT jsonb_array_length(mcp.call_tool('query', '{"sql": "EXPLAIN (COSTS OFF) SELECT * FROM shop.products WHERE id = 1"}')
                          -> 'structuredContent' -> 'rows') > 0 AS explain_rows;
SELECT r #>> '{_meta,pg-mcp/status}' AS status, r #>> '{content,0,text}' AS message
  FROM mcp.call_tool('query', jsonb_build_object('sql', $q$SELECT '"\u0000"'::json AS j$q$)) r;
SELECT mcp.call_tool('query', '{"sql": "SELECT count(*) AS n FROM products"}') #>> '{content,0,text}' AS session_search_path;
SET search_path = shop, public;
SELECT mcp.call_tool('query', '{"sql": "SELECT count(*) AS n FROM products"}') -> 'structuredContent' -> 'rows' AS with_search_path;
RESET search_path;
RESET ROLE;
SELECT status, count(*) FROM mcp.audit_log WHERE tool_name = 'query' GROUP BY status ORDER BY status;

-- The DBA's allow-list admits a volatile function by its signature.
SELECT mcp.allow_query_function('pg_sleep(double precision)', 'short waits for demos');
SET ROLE regress_query_agent;
SELECT mcp.check_query('SELECT pg_sleep(0)');
RESET ROLE;
SELECT mcp.disallow_query_function('pg_sleep(double precision)');
SET ROLE regress_query_agent;
SELECT mcp.check_query('SELECT pg_sleep(0)');
SELECT mcp.allow_query_function('pg_sleep(double precision)');
RESET ROLE;

-- The catalog tools show only what the calling role can read.
SET ROLE regress_query_agent;
SELECT mcp.call_tool('list_objects') -> 'structuredContent' -> 'rows' AS objects;
SELECT mcp.call_tool('describe_object', '{"name": "shop.products"}') -> 'structuredContent' -> 'rows' AS columns;
SELECT mcp.call_tool('describe_object', '{"name": "shop.secrets"}') -> 'structuredContent' -> 'row_count' AS unreadable;
SELECT mcp.call_tool('describe_object', '{"name": "no.such"}') -> 'structuredContent' -> 'row_count' AS missing;
RESET ROLE;

SELECT mcp.revoke_tool(t, 'regress_query_agent') FROM unnest(ARRAY['query', 'list_objects', 'describe_object']) t;
SELECT mcp.alter_tool('query', max_cost => 0);  -- back to the setting alone
SELECT mcp.disallow_query_function('pg_sleep(double precision)');
DROP SCHEMA shop CASCADE;
DROP ROLE regress_query_agent;
