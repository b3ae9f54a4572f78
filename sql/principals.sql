-- Principals: agent identities bound to roles, whose context tools bind as parameters the
-- model can neither see nor set; the principal in effect is the calling role's, nothing else.
\set SHOW_CONTEXT never
CREATE TABLE tenant_rows (tenant int, id int, secret text);
INSERT INTO tenant_rows VALUES (1, 10, 'a1'), (1, 11, 'a2'), (2, 20, 'b1'), (2, 21, 'b2');
CREATE ROLE regress_tenant_reader NOLOGIN;
GRANT SELECT ON tenant_rows TO regress_tenant_reader;
CREATE ROLE regress_agents NOLOGIN;
CREATE ROLE regress_agent_a LOGIN IN ROLE regress_agents;
CREATE ROLE regress_agent_b NOLOGIN IN ROLE regress_agents;
CREATE ROLE regress_agent_none NOLOGIN IN ROLE regress_agents;

-- Creating principals: each mistake is named.
SELECT mcp.create_principal('tenant-a', 'regress_agent_a', '{"tenant": 1}', 'Agent of tenant 1');
SELECT mcp.create_principal('tenant-b', 'regress_agent_b', '{"tenant": 2}');
SELECT mcp.create_principal('bad name', 'regress_agent_none');
SELECT mcp.create_principal('ghost', 'no_such_role');
SELECT mcp.create_principal('root', 'postgres');
SELECT mcp.create_principal('tenant-a', 'regress_agent_none');
SELECT mcp.create_principal('second', 'regress_agent_a');
SELECT mcp.create_principal('arrayctx', 'regress_agent_none', '[1]');
SELECT name, role, context, description FROM mcp.principals ORDER BY name;

-- A parameter bound from the principal: not in the inputSchema, cannot be supplied.
SELECT mcp.create_tool('my_rows', 'SELECT id, secret FROM tenant_rows WHERE tenant = :tenant AND id >= :min_id ORDER BY id',
    'Rows of your own tenant',
    '[{"name": "tenant", "type": "integer", "from_principal": "tenant"},
      {"name": "min_id", "type": "integer", "default": 0}]',
    run_as => 'regress_tenant_reader');
SELECT mcp.grant_tool('my_rows', 'regress_agents');
SELECT input_schema FROM mcp.tools WHERE name = 'my_rows';
SELECT parameters -> 0 AS bound_parameter FROM mcp.tools WHERE name = 'my_rows';
-- Definition errors of bound parameters.
SELECT mcp.create_tool('bad_bound', 'SELECT :t AS t', 'x', '[{"name": "t", "type": "integer", "from_principal": "tenant", "default": 1}]');
SELECT mcp.create_tool('bad_bound', 'SELECT :t AS t', 'x', '[{"name": "t", "type": "integer", "from_principal": "no spaces"}]');

-- Each agent sees its own tenant's rows, whatever it passes.
SET ROLE regress_agent_a;
SELECT mcp.current_principal();
SELECT mcp.call_tool('my_rows') -> 'structuredContent' -> 'rows' AS tenant_a_rows;
SELECT mcp.call_tool('my_rows', '{"tenant": 2}') #>> '{content,0,text}' AS cannot_pass_tenant;
SELECT mcp.call_tool('my_rows', '{"min_id": 20}') -> 'structuredContent' -> 'rows' AS still_only_a;
-- The agent context settings are not identity: claiming another principal changes nothing.
SET pg_mcp.agent_name = 'tenant-b';
SELECT mcp.call_tool('my_rows') -> 'structuredContent' -> 'rows' AS still_a;
RESET pg_mcp.agent_name;
-- Nor can it become another principal's role: PostgreSQL itself refuses (a session that
-- logged in as the agent).
\c - regress_agent_a
SET ROLE regress_agent_b;
SELECT mcp.call_tool('my_rows') -> 'structuredContent' -> 'rows' AS own_session_rows;
\c - postgres
\set SHOW_CONTEXT never
SET ROLE regress_agent_b;
SELECT mcp.call_tool('my_rows') -> 'structuredContent' -> 'rows' AS tenant_b_rows;
-- A role without a principal, or a principal without the key, is denied (as a tool error).
SET ROLE regress_agent_none;
SELECT mcp.current_principal();
SELECT r #>> '{content,0,text}' AS no_principal, r #>> '{_meta,pg-mcp/status}' AS status,
       r #> '{_meta,pg-mcp/unknown_tool}' AS unknown_tool
  FROM mcp.call_tool('my_rows') r;
RESET ROLE;
SELECT mcp.create_principal('nokey', 'regress_agent_none', '{"region": "eu"}');
SET ROLE regress_agent_none;
SELECT mcp.call_tool('my_rows') #>> '{content,0,text}' AS missing_key;
RESET ROLE;
SELECT mcp.alter_principal('nokey', context => '{"tenant": "one"}');
SET ROLE regress_agent_none;
SELECT mcp.call_tool('my_rows') #>> '{_meta,pg-mcp/status}' AS wrong_type;
RESET ROLE;
-- The DBA changes a principal's context; the next call uses it.
SELECT mcp.alter_principal('tenant-a', context => '{"tenant": 2}');
SET ROLE regress_agent_a;
SELECT mcp.call_tool('my_rows') -> 'structuredContent' -> 'rows' AS now_tenant_2;
RESET ROLE;
-- Non-admins cannot manage principals or read them.
SET ROLE regress_agent_a;
SELECT mcp.create_principal('mine', 'regress_agent_a');
SELECT mcp.alter_principal('tenant-a', context => '{"tenant": 1}');
SELECT * FROM mcp.principals;
RESET ROLE;

-- The audit log records the principal and the reason for denials.
SELECT caller_role, principal, status, message FROM mcp.audit_log
 WHERE tool_name = 'my_rows' ORDER BY id;

SELECT mcp.drop_principal('nokey');
SELECT mcp.drop_principal('nokey');
SELECT mcp.drop_principal(name) FROM mcp.principals;
SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
DROP TABLE tenant_rows;
DROP ROLE regress_agent_a, regress_agent_b, regress_agent_none, regress_agents, regress_tenant_reader;
