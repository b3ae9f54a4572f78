-- MCP resources: each sandboxed view the calling role can read, listed and read with its
-- columns, types, comments and row filter; others stay invisible.
\set SHOW_CONTEXT never
CREATE SCHEMA res;
CREATE TABLE res.accounts (id int PRIMARY KEY, name text, email text, balance numeric, active boolean);
COMMENT ON COLUMN res.accounts.name IS 'Account holder';
CREATE ROLE regress_res_reader NOLOGIN;
CREATE ROLE regress_res_other NOLOGIN;
SELECT mcp.create_sandbox_view('res.active_accounts', 'res.accounts', ARRAY['id', 'name', 'email'],
    row_filter => 'active', description => 'Active accounts, no balances', pii_columns => ARRAY['email']);
SELECT mcp.create_sandbox_view('res.all_ids', 'res.accounts', ARRAY['id']);
GRANT USAGE ON SCHEMA res TO regress_res_reader;
GRANT SELECT ON res.active_accounts TO regress_res_reader;

SET ROLE regress_res_reader;
SELECT jsonb_pretty(mcp.list_resources());
SELECT jsonb_pretty((mcp.read_resource('pg-mcp://views/res.active_accounts') #>> '{contents,0,text}')::jsonb);
SELECT mcp.read_resource('pg-mcp://views/res.active_accounts') #>> '{contents,0,mimeType}' AS mime;
-- Not readable by this role, or not there at all: the same answer.
SELECT mcp.read_resource('pg-mcp://views/res.all_ids');
SELECT mcp.read_resource('pg-mcp://views/res.nope');
SELECT mcp.read_resource('res.active_accounts');
RESET ROLE;
SET ROLE regress_res_other;
SELECT mcp.list_resources() AS nothing_readable;
RESET ROLE;
-- A dropped view is no resource any more.
SELECT mcp.drop_sandbox_view('res.active_accounts');
SET ROLE regress_res_reader;
SELECT mcp.list_resources() AS after_drop;
RESET ROLE;

SELECT mcp.drop_sandbox_view('res.all_ids');
DROP SCHEMA res CASCADE;
DROP ROLE regress_res_reader, regress_res_other;
