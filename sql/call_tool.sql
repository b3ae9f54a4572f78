-- call_tool(): success, every invalid-argument class, denied, unknown tool, timeout,
-- truncation by rows and by bytes, SQL errors, writing tools, and inert injection strings.
\set SHOW_CONTEXT never
CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text NOT NULL,
                        plan text NOT NULL, signup date NOT NULL, notes text);
INSERT INTO customers (email, name, plan, signup, notes)
SELECT 'user' || g || '@example.com', 'User ' || g, CASE WHEN g % 2 = 0 THEN 'pro' ELSE 'free' END,
       date '2024-01-01' + g, repeat('n', 200)
  FROM generate_series(1, 50) g;
CREATE ROLE regress_agent NOLOGIN;
CREATE ROLE regress_other NOLOGIN;
CREATE ROLE regress_tool_reader NOLOGIN;
GRANT SELECT ON customers TO regress_tool_reader;
GRANT USAGE ON SCHEMA public TO regress_tool_reader;

SELECT mcp.create_tool('find_customer',
    'SELECT id, name, plan, signup FROM customers WHERE email = :email',
    'Find a customer by email',
    '[{"name": "email", "type": "string", "format": "email", "maxLength": 100}]',
    run_as => 'regress_tool_reader');
SELECT mcp.create_tool('customers_by_plan',
    'SELECT id, email FROM customers WHERE plan = :plan AND id = ANY(:ids) AND signup >= :since ORDER BY id LIMIT :lim',
    'Customers of a plan among some ids',
    $$[{"name": "plan", "type": "string", "enum": ["free", "pro"]},
       {"name": "ids", "type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 50},
       {"name": "since", "type": "string", "format": "date", "default": "2000-01-01"},
       {"name": "lim", "type": "integer", "minimum": 1, "maximum": 20, "default": 20}]$$,
    run_as => 'regress_tool_reader');
SELECT mcp.create_tool('all_customers', 'SELECT id, email, notes FROM customers ORDER BY id',
    'Every customer (capped)', max_rows => 5, run_as => 'regress_tool_reader');
SELECT mcp.create_tool('big_rows', 'SELECT id, notes FROM customers ORDER BY id',
    'Large rows (byte cap)', max_bytes => 1000, run_as => 'regress_tool_reader');
SELECT mcp.create_tool('slow', 'SELECT pg_sleep(:seconds) IS NOT NULL AS slept', 'Sleeps',
    '[{"name": "seconds", "type": "number", "maximum": 5}]', timeout => '200 ms');
SELECT mcp.create_tool('divide', 'SELECT 100 / :d AS q', 'Divides', '[{"name": "d", "type": "integer"}]');
SELECT mcp.create_tool('rename_customer', 'UPDATE customers SET name = :name WHERE id = :id RETURNING id, name',
    'Renames a customer', '[{"name": "id", "type": "integer"}, {"name": "name", "type": "string", "minLength": 1}]',
    read_only => false);
SELECT mcp.create_tool('echo', 'SELECT :v AS v, :n AS n, :b AS b', 'Echoes its arguments',
    '[{"name": "v", "type": "string"}, {"name": "n", "type": "number", "required": false},
      {"name": "b", "type": "boolean", "required": false}]');
SELECT mcp.grant_tool(name, 'regress_agent') FROM mcp.tools WHERE NOT builtin;
GRANT SELECT, UPDATE ON customers TO regress_agent;  -- for the writing tool, which runs as the caller

SET ROLE regress_agent;
-- Success: rows, row count, not truncated; content carries the same JSON as text.
SELECT r -> 'structuredContent' AS result, r -> 'isError' AS is_error, r #>> '{_meta,pg-mcp/status}' AS status,
       substring(r #>> '{content,0,text}' from '<untrusted-data-[0-9a-f]{32}>\n(.*)\n</untrusted-data-')::jsonb
         = r -> 'structuredContent' AS text_matches
  FROM mcp.call_tool('find_customer', '{"email": "user7@example.com"}') r;
-- No match is an empty result, not an error.
SELECT mcp.call_tool('find_customer', '{"email": "nobody@example.com"}') -> 'structuredContent';
-- Arrays, enums, defaults.
SELECT mcp.call_tool('customers_by_plan', '{"plan": "pro", "ids": [2, 3, 4, 6]}') -> 'structuredContent';
SELECT mcp.call_tool('customers_by_plan', '{"plan": "pro", "ids": [2, 4, 6], "lim": 1, "since": "2024-01-05"}') -> 'structuredContent';

-- Invalid arguments: each class names the parameter and the rule, as a tool error.
SELECT r #>> '{content,0,text}' AS message, r -> 'isError' AS is_error, r #>> '{_meta,pg-mcp/status}' AS status
  FROM (VALUES
    ('{}'::jsonb),                                           -- missing required
    ('{"email": "user7@example.com", "extra": 1}'),          -- unknown parameter
    ('{"email": 42}'),                                       -- wrong type
    ('{"email": null}'),                                     -- null
    ('{"email": "not-an-email"}'),                           -- format
    ('[1, 2]')                                               -- not an object
  ) AS a(args), LATERAL mcp.call_tool('find_customer', a.args) r;
SELECT r #>> '{content,0,text}' AS message
  FROM (VALUES
    ('{"plan": "gold", "ids": [1]}'::jsonb),                 -- enum
    ('{"plan": "pro", "ids": [1, 0]}'),                      -- array item minimum
    ('{"plan": "pro", "ids": "1,2"}'),                       -- not an array
    ('{"plan": "pro", "ids": [1], "lim": 21}'),              -- maximum
    ('{"plan": "pro", "ids": [1], "lim": 2.5}'),             -- integer
    ('{"plan": "pro", "ids": [1], "since": "2024-02-30"}'),  -- impossible date
    ('{"ids": [1], "lim": "ten"}')                           -- several problems at once
  ) AS a(args), LATERAL mcp.call_tool('customers_by_plan', a.args) r;
SELECT mcp.call_tool('echo', '{"v": "x", "n": "1.5"}') #>> '{content,0,text}';
SELECT mcp.call_tool('echo', '{"v": "x", "b": "true"}') #>> '{content,0,text}';
-- Numbers keep their value; integral floats are accepted as integers.
SELECT mcp.call_tool('echo', '{"v": "x", "n": 12345.678, "b": false}') -> 'structuredContent' -> 'rows';
SELECT mcp.call_tool('customers_by_plan', '{"plan": "pro", "ids": [2], "lim": 1.0}') -> 'structuredContent' -> 'row_count';

-- Unknown and ungranted tools look the same to the agent.
SELECT mcp.call_tool('no_such_tool', '{}') #>> '{content,0,text}' AS unknown;
RESET ROLE;
SELECT mcp.create_tool('secret_tool', 'SELECT 1 AS one', 'Not granted to the agent');
SET ROLE regress_agent;
SELECT r #>> '{content,0,text}' AS denied, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('secret_tool', '{}') r;
SET ROLE regress_other;
SELECT mcp.call_tool('find_customer', '{"email": "user7@example.com"}') #>> '{_meta,pg-mcp/status}' AS other_role;

SET ROLE regress_agent;
-- Truncation by rows and by bytes is reported, not hidden.
SELECT r -> 'structuredContent' -> 'row_count' AS row_count, r -> 'structuredContent' -> 'truncated' AS truncated,
       r -> 'structuredContent' ->> 'truncated_by' AS by, r #>> '{content,1,text}' AS note, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('all_customers') r;
SELECT r -> 'structuredContent' -> 'row_count' AS row_count, r -> 'structuredContent' ->> 'truncated_by' AS by,
       length((r -> 'structuredContent' -> 'rows')::text) <= 1100 AS within_cap
  FROM mcp.call_tool('big_rows') r;

-- The tool's own timeout stops it (without ending the caller's statement or transaction).
BEGIN;
SELECT r #>> '{content,0,text}' AS message, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('slow', '{"seconds": 3}') r;
SELECT mcp.call_tool('slow', '{"seconds": 0.01}') -> 'structuredContent' -> 'rows' AS fast_enough;
COMMIT;

-- A failing tool's SQL is a tool error with PostgreSQL's message; the transaction goes on.
BEGIN;
SELECT r #>> '{content,0,text}' AS message, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('divide', '{"d": 0}') r;
SELECT mcp.call_tool('divide', '{"d": 4}') -> 'structuredContent' -> 'rows' AS still_usable;
COMMIT;

-- Writing tools write, inside the caller's transaction; read-only tools cannot.
SELECT mcp.call_tool('rename_customer', '{"id": 3, "name": "Renamed"}') -> 'structuredContent' -> 'rows';
RESET ROLE;
SELECT name FROM customers WHERE id = 3;

-- Settings the call changes do not leak into the caller's transaction.
BEGIN;
SET LOCAL search_path = pg_catalog;
SELECT mcp.call_tool('find_customer', '{"email": "user7@example.com"}') #>> '{_meta,pg-mcp/status}';
SHOW search_path;
SHOW transaction_read_only;
SELECT current_user;
COMMIT;

-- SQL injection strings are values, never SQL.
SET ROLE regress_agent;
SELECT mcp.call_tool('find_customer', $${"email": "x'OR'1'='1@example.com"}$$) -> 'structuredContent';
SELECT mcp.call_tool('echo', $${"v": "'); DELETE FROM customers; --"}$$) -> 'structuredContent' -> 'rows';
SELECT mcp.call_tool('echo', $j${"v": "$1 :v $$ \\x"}$j$) -> 'structuredContent' -> 'rows';
RESET ROLE;
SELECT count(*) AS customers_still_there FROM customers;

-- A NULL name or NULL arguments are handled, not crashes.
SELECT mcp.call_tool(NULL, NULL) #>> '{_meta,pg-mcp/status}';
SELECT mcp.call_tool('all_customers', NULL) -> 'structuredContent' -> 'row_count';

-- Altering a tool takes effect at the next call in the same session (plans are per version),
-- even when it is altered twice in one transaction, changing its parameter's type.
SELECT mcp.alter_tool('divide', sql => 'SELECT 1000 / :d AS q');
SET ROLE regress_agent;
SELECT mcp.call_tool('divide', '{"d": 4}') -> 'structuredContent' -> 'rows' AS after_alter;
RESET ROLE;
BEGIN;
SELECT mcp.alter_tool('divide', sql => 'SELECT :d || ''!'' AS q', parameters => '[{"name": "d", "type": "string"}]');
SELECT mcp.call_tool('divide', '{"d": "5"}') -> 'structuredContent' -> 'rows' AS as_text;
SELECT mcp.alter_tool('divide', sql => 'SELECT :d * 2 AS q', parameters => '[{"name": "d", "type": "integer"}]');
SELECT mcp.call_tool('divide', '{"d": 5}') -> 'structuredContent' -> 'rows' AS as_integer;
COMMIT;

-- Numbers are bound exactly as sent, beyond double precision; absurd numbers are rejected.
SELECT mcp.call_tool('echo', '{"v": "x", "n": 12345678901234567890.123456789}') -> 'structuredContent' -> 'rows' -> 0 -> 'n' AS exact;
SELECT mcp.call_tool('echo', '{"v": "x", "n": 1e400}') #>> '{content,0,text}' AS too_big;

-- A tool's SQL cannot call tools.
SELECT mcp.create_tool('recursive', 'SELECT mcp.call_tool(''echo'', ''{"v": "x"}'') AS inner_result', 'Calls a tool');
SELECT mcp.grant_tool('recursive', current_user);
SELECT mcp.call_tool('recursive') #>> '{content,0,text}' AS nested;

-- Results stay intact when a new session calls different tools in turn (first calls prepare
-- and cache plans; results are built after the internal SPI connection is closed).
\c
SET ROLE regress_agent;
SELECT mcp.call_tool('find_customer', '{"email": "user7@example.com"}') -> 'structuredContent' -> 'row_count' AS first;
SELECT (r -> 'structuredContent' -> 'row_count') AS second, jsonb_array_length(r -> 'structuredContent' -> 'rows') AS rows
  FROM mcp.call_tool('all_customers') r;
SELECT mcp.call_tool('customers_by_plan', '{"plan": "free", "ids": [1, 3]}') -> 'structuredContent' -> 'row_count' AS third;
RESET ROLE;
\set SHOW_CONTEXT never

-- Every call in this file left exactly one audit row (counted per outcome: 46 calls in all;
-- the suites before this one call no tools).
SELECT status, count(*) FROM mcp.audit_log GROUP BY status ORDER BY status;

SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
DROP TABLE customers;
REVOKE ALL ON SCHEMA public FROM regress_tool_reader;
DROP ROLE regress_agent, regress_other, regress_tool_reader;
