-- Sandboxed views: a column allow-list and a row filter over a source, versioned, with PII
-- marks; tools depend on them; a tool can be generated from one.
\set SHOW_CONTEXT never
CREATE SCHEMA crm;
CREATE TABLE crm.people (id int PRIMARY KEY, email text, phone text, salary numeric, active boolean, joined date);
COMMENT ON COLUMN crm.people.email IS 'Work email';
INSERT INTO crm.people VALUES (1, 'ann@example.com', '555-1', 100, true, '2024-01-01'),
                              (2, 'bob@example.com', '555-2', 200, false, '2024-02-01'),
                              (3, 'cy@example.com', '555-3', 300, true, '2024-03-01');
CREATE ROLE regress_view_reader NOLOGIN;
CREATE ROLE regress_view_agent NOLOGIN;

-- Definition errors.
SELECT mcp.create_sandbox_view('people_view', 'crm.people', ARRAY['id']);
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.nope', ARRAY['id']);
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY['id', 'nope']);
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY[]::text[]);
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY['id', 'id']);
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY['id'], pii_columns => ARRAY['email']);
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY['id'], row_filter => 'no_such_column > 1');
-- A row filter is one condition: text that would add statements is refused, and runs nowhere.
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY['id'],
                               row_filter => 'true); DROP TABLE crm.people; SELECT (1');
SELECT count(*) AS people_still_there FROM crm.people;

-- A view of three columns and the active rows; email is PII.
SELECT mcp.create_sandbox_view('crm.people_view', 'crm.people', ARRAY['id', 'email', 'joined'],
                               row_filter => 'active', description => 'Active people, no phone or salary',
                               pii_columns => ARRAY['email']);
SELECT c.relname, c.relowner::regrole AS owner, c.reloptions, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c WHERE c.oid = 'crm.people_view'::regclass;
SELECT attname, col_description(attrelid, attnum) FROM pg_attribute
 WHERE attrelid = 'crm.people_view'::regclass AND attnum > 0 ORDER BY attnum;
SELECT * FROM crm.people_view ORDER BY id;
SELECT name, version, source, columns, pii_columns, row_filter, view FROM mcp.sandbox_views WHERE view IS NOT NULL;

-- Agents reach the data through the view and a tool, never the base table.
GRANT USAGE ON SCHEMA crm TO regress_view_reader;
GRANT SELECT ON crm.people_view TO regress_view_reader;
SELECT mcp.create_tool('person', 'SELECT id, email FROM crm.people_view WHERE id = :id', 'A person',
                       '[{"name": "id", "type": "integer"}]', run_as => 'regress_view_reader');
SELECT mcp.grant_tool('person', 'regress_view_agent');
SELECT depends_on FROM mcp.tools WHERE name = 'person';
SELECT name, reads, reads_pii FROM mcp.list_all_tools() WHERE name = 'person';
SET ROLE regress_view_agent;
SELECT mcp.call_tool('person', '{"id": 1}') -> 'structuredContent' -> 'rows';
SELECT mcp.call_tool('person', '{"id": 2}') -> 'structuredContent' -> 'rows' AS inactive_filtered;
SELECT * FROM crm.people;
RESET ROLE;
SET ROLE regress_view_reader;
SELECT * FROM crm.people;
SELECT phone FROM crm.people_view;
RESET ROLE;

-- A new version keeps the view's grants; a change that would break a tool is refused.
SELECT mcp.alter_sandbox_view('crm.people_view', columns => ARRAY['id', 'email', 'joined', 'active'], row_filter => '');
SELECT has_table_privilege('regress_view_reader', 'crm.people_view', 'SELECT') AS grant_kept;
SELECT count(*) AS all_rows_now FROM crm.people_view;
SELECT mcp.alter_sandbox_view('crm.people_view', columns => ARRAY['id', 'joined']);
SELECT version, columns FROM mcp.sandbox_views WHERE name = 'crm.people_view';
SET ROLE regress_view_agent;
SELECT mcp.call_tool('person', '{"id": 2}') -> 'structuredContent' -> 'rows' AS after_alter;
RESET ROLE;

-- History and diff.
SELECT version, change, columns, pii_columns, row_filter, changed_by = current_user AS by_me
  FROM mcp.sandbox_view_versions WHERE view_name = 'crm.people_view' ORDER BY version;
SELECT * FROM mcp.sandbox_view_diff('crm.people_view', 1, 2);

-- Dropping is refused while a tool reads the view, naming the tool.
SELECT mcp.drop_sandbox_view('crm.people_view');
SELECT mcp.drop_tool('person');
SELECT mcp.drop_sandbox_view('crm.people_view');
SELECT to_regclass('crm.people_view') AS gone;
SELECT version, change FROM mcp.sandbox_view_versions WHERE view_name = 'crm.people_view' ORDER BY version;
SELECT mcp.drop_sandbox_view('crm.people_view');

-- A tool generated from a view: typed parameters from the lookup columns, descriptions from
-- their comments, read-only, a small row cap; the DBA reviews and grants it.
SELECT mcp.create_sandbox_view('crm.directory', 'crm.people', ARRAY['id', 'email', 'active', 'joined']);
GRANT SELECT ON crm.directory TO regress_view_reader;
SELECT mcp.create_tool_from_view('crm.directory', ARRAY['email', 'active'], run_as => 'regress_view_reader');
SELECT name, sql, max_rows, read_only, input_schema FROM mcp.tools WHERE name = 'get_directory';
SELECT mcp.create_tool_from_view('crm.directory', ARRAY['joined'], name => 'people_joined_on',
                                 columns => ARRAY['id'], run_as => 'regress_view_reader');
SELECT input_schema -> 'properties' FROM mcp.tools WHERE name = 'people_joined_on';
SELECT mcp.grant_tool('get_directory', 'regress_view_agent');
SET ROLE regress_view_agent;
SELECT mcp.call_tool('get_directory', '{"email": "cy@example.com", "active": true}') -> 'structuredContent' -> 'rows';
RESET ROLE;
SELECT mcp.create_tool_from_view('crm.nope', ARRAY['id']);
SELECT mcp.create_tool_from_view('crm.directory', ARRAY['nope']);
SELECT mcp.create_tool_from_view('crm.directory', ARRAY[]::text[]);
CREATE VIEW crm.odd AS SELECT id, point(id, id) AS p FROM crm.people;
SELECT mcp.create_tool_from_view('crm.odd', ARRAY['p']);

-- Only tool managers manage sandboxed views.
SET ROLE regress_view_agent;
SELECT mcp.create_sandbox_view('public.mine', 'pg_class', ARRAY['relname']);
RESET ROLE;
-- A tool manager cannot expose columns it cannot read itself.
CREATE ROLE regress_view_dba NOLOGIN IN ROLE mcp_admin;
GRANT USAGE ON SCHEMA crm TO regress_view_dba;
GRANT SELECT (id, email) ON crm.people TO regress_view_dba;
SET ROLE regress_view_dba;
SELECT mcp.create_sandbox_view('crm.salaries', 'crm.people', ARRAY['id', 'salary']);
-- ...nor create a view in a schema where it may not create objects.
SELECT mcp.create_sandbox_view('crm.emails', 'crm.people', ARRAY['id', 'email']);
RESET ROLE;
GRANT CREATE ON SCHEMA crm TO regress_view_dba;
SET ROLE regress_view_dba;
SELECT mcp.create_sandbox_view('crm.emails', 'crm.people', ARRAY['id', 'email']);
RESET ROLE;
SELECT relowner::regrole AS emails_owner FROM pg_class WHERE oid = 'crm.emails'::regclass;

-- An auditor, a plain mcp_admin member with no USAGE on the views' schemas, reads the views'
-- catalog and who accessed PII.
CREATE ROLE regress_view_auditor NOLOGIN IN ROLE mcp_admin;
SET ROLE regress_view_auditor;
SELECT name, view FROM mcp.sandbox_views ORDER BY name;
SELECT count(*) >= 0 AS pii_access_readable FROM mcp.pii_access;
RESET ROLE;

SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
SELECT mcp.drop_sandbox_view(name) FROM mcp.sandbox_views WHERE view IS NOT NULL;
DROP SCHEMA crm CASCADE;
DROP ROLE regress_view_reader, regress_view_agent, regress_view_dba, regress_view_auditor;
