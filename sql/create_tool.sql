-- Management API: create, alter, drop, grant and revoke tools, and every validation error.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TABLE orders (id bigint PRIMARY KEY, customer_email text NOT NULL, total numeric(10,2),
                     placed_on date NOT NULL, status text NOT NULL DEFAULT 'open');
INSERT INTO orders VALUES (1, 'ann@example.com', 10.50, '2025-01-02', 'open'),
                          (2, 'bob@example.com', 99.00, '2025-02-03', 'shipped');
CREATE ROLE regress_agent NOLOGIN;
CREATE ROLE regress_reader NOLOGIN;
GRANT SELECT ON orders TO regress_reader;

-- A valid tool: named parameters, declared types, defaults.
SELECT mcp.create_tool(
    name => 'orders_by_email',
    sql => 'SELECT id, total, placed_on FROM orders WHERE customer_email = :email AND placed_on >= :since ORDER BY id',
    description => 'Orders of one customer since a date',
    parameters => '[{"name": "email", "type": "string", "format": "email", "description": "Customer email"},
                    {"name": "since", "type": "string", "format": "date", "default": "2000-01-01"}]',
    run_as => 'regress_reader');
SELECT name, version, compiled_sql, parameter_types, read_only, run_as, search_path, created_by = current_user AS created_by_me
  FROM mcp.tools WHERE NOT builtin;

-- The name follows MCP naming: 1-128 of A-Za-z0-9_.-
SELECT mcp.create_tool('bad name!', 'SELECT 1', 'x');
SELECT mcp.create_tool('', 'SELECT 1', 'x');
SELECT mcp.create_tool(repeat('a', 129), 'SELECT 1', 'x');
SELECT mcp.create_tool('dotted.name-ok_1', 'SELECT 1 AS one', 'Names may contain dots and hyphens');
-- Duplicate name.
SELECT mcp.create_tool('orders_by_email', 'SELECT 1', 'x');
-- Description is required.
SELECT mcp.create_tool('no_description', 'SELECT 1', '  ');

-- The SQL is exactly one query.
SELECT mcp.create_tool('two', 'SELECT 1; SELECT 2', 'x');
SELECT mcp.create_tool('empty', ' -- nothing ', 'x');
SELECT mcp.create_tool('ddl', 'DROP TABLE orders', 'x');
SELECT mcp.create_tool('syntax', 'SELEC 1', 'x');

-- Every :name is declared, every declared parameter is used; no positional $1.
SELECT mcp.create_tool('undeclared', 'SELECT * FROM orders WHERE id = :order_id', 'x');
SELECT mcp.create_tool('unused', 'SELECT 1 AS one', 'x', '[{"name": "id", "type": "integer"}]');
SELECT mcp.create_tool('positional', 'SELECT * FROM orders WHERE id = $1', 'x');
-- Casts, strings, quoted identifiers and comments are not parameters.
SELECT mcp.create_tool('not_params',
    $$SELECT ':nope'::text AS "a:b", E'\':x' AS c, $q$:y$q$ AS d /* :z */ , :n::int AS n -- :w$$,
    'Only :n is a parameter', '[{"name": "n", "type": "integer"}]');
SELECT compiled_sql FROM mcp.tools WHERE name = 'not_params';

-- The SQL prepares with the declared types: typos fail now, for the DBA.
SELECT mcp.create_tool('typo', 'SELECT id FROM ordrs', 'x');
SELECT mcp.create_tool('bad_column', 'SELECT idd FROM orders', 'x');
SELECT mcp.create_tool('type_mismatch', 'SELECT id FROM orders WHERE placed_on = :n', 'x',
                       '[{"name": "n", "type": "integer"}]');
-- Result columns must have distinct names (rows are JSON objects).
SELECT mcp.create_tool('dup_columns', 'SELECT id, id FROM orders', 'x');

-- Read-only tools cannot write; writing tools must say so.
SELECT mcp.create_tool('sneaky_write', 'UPDATE orders SET status = ''x''', 'x');
SELECT mcp.create_tool('sneaky_cte', 'WITH d AS (DELETE FROM orders RETURNING id) SELECT id FROM d', 'x');
SELECT mcp.create_tool('sneaky_lock', 'SELECT id FROM orders FOR UPDATE', 'x');
SELECT mcp.create_tool('ship_order', 'UPDATE orders SET status = ''shipped'' WHERE id = :id RETURNING id, status',
                       'Marks an order shipped', '[{"name": "id", "type": "integer", "minimum": 1}]',
                       read_only => false);

-- The run-as role exists and is not a superuser.
SELECT mcp.create_tool('ghost', 'SELECT 1 AS one', 'x', run_as => 'no_such_role');
SELECT mcp.create_tool('superuser_tool', 'SELECT 1 AS one', 'x', run_as => 'postgres');

-- SELECT ... INTO creates a table: not a tool.
SELECT mcp.create_tool('into', 'SELECT id INTO copied FROM orders', 'x', read_only => false);

-- Limits.
SELECT mcp.create_tool('limits', 'SELECT 1 AS one', 'x', max_rows => 0);
SELECT mcp.create_tool('limits', 'SELECT 1 AS one', 'x', max_bytes => -1);
SELECT mcp.create_tool('limits', 'SELECT 1 AS one', 'x', timeout => '0');
SELECT mcp.create_tool('limits', 'SELECT 1 AS one', 'x', timeout => '2 days');
SELECT mcp.create_tool('limits', 'SELECT 1 AS one', 'x', timeout => '0.5 ms');

-- Annotations are MCP's, with boolean hints.
SELECT mcp.create_tool('annotated', 'SELECT 1 AS one', 'x', annotations => '{"readOnly": true}');
SELECT mcp.create_tool('annotated', 'SELECT 1 AS one', 'x', annotations => '{"openWorldHint": "yes"}');

-- Parameter definitions: each mistake is named.
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '{"name": "a"}');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"type": "string"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "text"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "string", "maxlength": 3}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "string"}, {"name": "a", "type": "string"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a-b", "type": "string"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "string", "format": "phone"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "integer", "minLength": 1}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "integer", "minimum": 5, "maximum": 1}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "string", "pattern": "(unclosed"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "string", "enum": ["x", 1]}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "integer", "default": "one"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "integer", "default": 1, "required": true}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "array"}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "array", "items": {"type": "array"}}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "array", "items": {"type": "string"}, "maxLength": 3}]');
SELECT mcp.create_tool('p', 'SELECT :a AS a', 'x', '[{"name": "a", "type": "boolean", "sensitive": "yes"}]');

-- alter_tool: changes only what is given, revalidates, bumps the version.
SELECT mcp.alter_tool('orders_by_email', max_rows => 5, description => 'Orders of one customer (newest rules)');
SELECT name, version, max_rows, description FROM mcp.tools WHERE name = 'orders_by_email';
SELECT mcp.alter_tool('orders_by_email', sql => 'SELECT id FROM orders WHERE customer_email = :mail');
SELECT version FROM mcp.tools WHERE name = 'orders_by_email';
SELECT mcp.alter_tool('no_such_tool', max_rows => 5);
SELECT mcp.alter_tool('orders_by_email', run_as => '');
SELECT run_as IS NULL AS runs_as_caller, version FROM mcp.tools WHERE name = 'orders_by_email';

-- grant_tool / revoke_tool.
SELECT mcp.grant_tool('orders_by_email', 'regress_agent');
SELECT mcp.grant_tool('orders_by_email', 'regress_agent');  -- idempotent
SELECT tool_name, role, granted_by = current_user AS granted_by_me FROM mcp.tool_grants;
SELECT mcp.grant_tool('no_such_tool', 'regress_agent');
SELECT mcp.grant_tool('orders_by_email', 'no_such_role');
SELECT mcp.revoke_tool('orders_by_email', 'regress_agent');
SELECT mcp.revoke_tool('orders_by_email', 'regress_agent');
SELECT count(*) AS grants FROM mcp.tool_grants;

SELECT mcp.grant_tool('dotted.name-ok_1', 'regress_agent');

-- drop_tool removes the tool and its grants.
SELECT mcp.drop_tool('dotted.name-ok_1');
SELECT count(*) AS grants FROM mcp.tool_grants;
SELECT mcp.drop_tool('dotted.name-ok_1');
SELECT mcp.drop_tool('dotted.name-ok_1', if_exists => true);

-- Only tool managers (mcp_admin members and the owner) may call the management API.
SET ROLE regress_agent;
SELECT mcp.create_tool('mine', 'SELECT 1 AS one', 'x');
SELECT mcp.alter_tool('orders_by_email', max_rows => 1000);
SELECT mcp.drop_tool('orders_by_email');
SELECT mcp.grant_tool('orders_by_email', 'regress_agent');
SELECT * FROM mcp.tools;
INSERT INTO mcp.tools (name) VALUES ('x');
RESET ROLE;
-- A member of mcp_admin can; the tool records who did it.
CREATE ROLE regress_dba NOLOGIN IN ROLE mcp_admin;
GRANT USAGE ON SCHEMA public TO regress_dba;
GRANT SELECT ON orders TO regress_dba;
SET ROLE regress_dba;
SELECT mcp.create_tool('dba_tool', 'SELECT count(*) AS n FROM orders', 'Counts orders');
SELECT name, created_by, updated_by FROM mcp.tools WHERE name = 'dba_tool';
SELECT mcp.drop_tool('dba_tool');
-- ...but may only lend a tool the rights of a role it is a member of (as SET ROLE would).
SELECT mcp.create_tool('borrowed', 'SELECT count(*) AS n FROM orders', 'Counts orders', run_as => 'regress_reader');
RESET ROLE;

-- The list for DBAs shows everything about every tool.
SELECT name, version, builtin, read_only, run_as, granted_to, definition -> 'annotations' AS annotations
  FROM mcp.list_all_tools();

-- Clean up cluster-wide roles.
SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
DROP TABLE orders;
REVOKE ALL ON SCHEMA public FROM regress_dba;
DROP ROLE regress_agent, regress_reader, regress_dba;
