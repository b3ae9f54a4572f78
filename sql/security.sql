-- Agent roles reach data only through granted tools: no base tables, no catalog, no audit log,
-- no way to widen their own rights through a tool.
\set SHOW_CONTEXT never
CREATE SCHEMA app;
CREATE TABLE app.customers (id int PRIMARY KEY, email text, card_number text);
INSERT INTO app.customers VALUES (1, 'ann@example.com', '4111-1111-1111-1111');
CREATE VIEW app.customer_contacts AS SELECT id, email FROM app.customers;
CREATE ROLE regress_view_reader NOLOGIN;
GRANT USAGE ON SCHEMA app TO regress_view_reader;
GRANT SELECT ON app.customer_contacts TO regress_view_reader;
CREATE ROLE regress_sec_agent NOLOGIN;

SET search_path = app, public;
SELECT mcp.create_tool('contact', 'SELECT id, email FROM customer_contacts WHERE id = :id', 'A contact',
    '[{"name": "id", "type": "integer"}]', run_as => 'regress_view_reader');
RESET search_path;
SELECT mcp.grant_tool('contact', 'regress_sec_agent');

SET ROLE regress_sec_agent;
-- The tool works (it runs as the view reader, with the search_path it was defined with)...
SELECT mcp.call_tool('contact', '{"id": 1}') -> 'structuredContent' -> 'rows';
-- ...but the agent itself reaches neither the base table, the view, nor the catalog.
SELECT * FROM app.customers;
SELECT * FROM app.customer_contacts;
SELECT * FROM mcp.tools;
SELECT * FROM mcp.tool_grants;
SELECT * FROM mcp.audit_log;
-- Internal helpers are not callable by agents.
SELECT mcp._compile_tool('SELECT 1', '[]', 'public', true, 'regress_sec_agent');
SELECT mcp.purge_audit('0');
RESET ROLE;

-- The run-as role is the tool's ceiling: a tool whose SQL reaches past it fails, audited.
SELECT mcp.alter_tool('contact', sql => 'SELECT id, email FROM app.customer_contacts WHERE id = :id AND EXISTS (SELECT FROM app.customers)');
SET ROLE regress_sec_agent;
SELECT r #>> '{content,0,text}' AS message, r #>> '{_meta,pg-mcp/status}' AS status
  FROM mcp.call_tool('contact', '{"id": 1}') r;
RESET ROLE;

-- The tool's SQL runs in a security-restricted context: it cannot change role or settings
-- beyond the call, nor create objects in the caller's session.
CREATE ROLE regress_tricky NOLOGIN;
SELECT mcp.create_tool('escalate', 'SELECT set_config(''role'', ''postgres'', false) AS r', 'Tries to change role',
                       run_as => 'regress_view_reader');
SELECT mcp.grant_tool('escalate', 'regress_sec_agent');
SET ROLE regress_sec_agent;
SELECT r #>> '{content,0,text}' AS message FROM mcp.call_tool('escalate') r;
SELECT current_user;
RESET ROLE;

-- A temporary table in the caller's session cannot shadow the objects a tool reads
-- (pg_temp comes last in every tool's search_path).
SELECT search_path FROM mcp.tools WHERE name = 'contact';
SET search_path = app, public;
SELECT mcp.create_tool('unqualified', 'SELECT id, email FROM customer_contacts ORDER BY id', 'Unqualified name',
                       run_as => 'regress_view_reader');
RESET search_path;
SELECT mcp.grant_tool('unqualified', 'regress_sec_agent');
GRANT TEMPORARY ON DATABASE contrib_regression TO regress_sec_agent;
SET ROLE regress_sec_agent;
CREATE TEMP TABLE customer_contacts AS SELECT 99 AS id, 'fake@example.com' AS email;
SELECT mcp.call_tool('unqualified') -> 'structuredContent' -> 'rows';
DROP TABLE customer_contacts;
RESET ROLE;
REVOKE TEMPORARY ON DATABASE contrib_regression FROM regress_sec_agent;

SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
DROP SCHEMA app CASCADE;
DROP ROLE regress_view_reader, regress_sec_agent, regress_tricky;
