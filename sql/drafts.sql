-- Drafts proposed by agents: propose_tool (granted to mcp_tool_author) checks a definition as
-- mcp.create_tool would and stores it as a draft no agent can list or call, until a DBA
-- approves it (with the run_as and grants the DBA chooses) or rejects it with a reason.
\set SHOW_CONTEXT never
CREATE TABLE draft_items (id int PRIMARY KEY, label text);
INSERT INTO draft_items VALUES (1, 'one'), (2, 'two');
CREATE ROLE regress_author NOLOGIN IN ROLE mcp_tool_author;
CREATE ROLE regress_plain NOLOGIN;
GRANT SELECT ON draft_items TO regress_author;

SET ROLE regress_author;
SELECT r #>> '{structuredContent,rows,0,result}' AS proposed
  FROM mcp.call_tool('propose_tool', jsonb_build_object(
      'name', 'item_label', 'description', 'Label of an item',
      'sql', 'SELECT label FROM public.draft_items WHERE id = :id',
      'parameters', '[{"name": "id", "type": "integer", "description": "Item id"}]')) r;
-- Invalid definitions are refused with create_tool's own message, and stored nowhere.
SELECT r #>> '{content,0,text}' AS invalid_sql
  FROM mcp.call_tool('propose_tool', '{"name": "bad_sql", "description": "x", "sql": "SELECT nope FROM public.draft_items"}') r;
SELECT r #>> '{content,0,text}' AS undeclared
  FROM mcp.call_tool('propose_tool', '{"name": "bad_param", "description": "x", "sql": "SELECT :x::int AS x"}') r;
SELECT r #>> '{content,0,text}' AS bad_json
  FROM mcp.call_tool('propose_tool', '{"name": "bad_json", "description": "x", "sql": "SELECT 1 AS one", "parameters": "[{"}') r;
SELECT r #>> '{content,0,text}' AS existing
  FROM mcp.call_tool('propose_tool', '{"name": "propose_tool", "description": "x", "sql": "SELECT 1 AS one"}') r;
SELECT r #>> '{content,0,text}' AS twice
  FROM mcp.call_tool('propose_tool', '{"name": "item_label", "description": "again", "sql": "SELECT 1 AS one"}') r;
-- The draft is no tool: not listed, not callable.
SELECT jsonb_path_query_array(mcp.list_tools(), '$[*].name') AS listed;
SELECT r #>> '{content,0,text}' AS call_draft FROM mcp.call_tool('item_label', '{"id": 1}') r;
RESET ROLE;

-- Agents without the author role do not even see propose_tool.
SET ROLE regress_plain;
SELECT jsonb_path_query_array(mcp.list_tools(), '$[*].name') AS plain_sees;
SELECT r #>> '{content,0,text}' AS plain_calls
  FROM mcp.call_tool('propose_tool', '{"name": "x", "description": "x", "sql": "SELECT 1 AS one"}') r;
RESET ROLE;

-- The draft_tool prompt: for tool authors only, with the rules and the readable views.
SET ROLE regress_author;
SELECT jsonb_path_query_array(mcp.list_prompts(), '$[*].name') AS author_prompts;
SELECT mcp.get_prompt('draft_tool', '{"request": "labels by id"}') #>> '{messages,0,content,text}' ~ 'labels by id' AS has_request;
SELECT mcp.get_prompt('draft_tool', '{}');
SELECT mcp.get_prompt('other', '{"request": "x"}');
RESET ROLE;
SET ROLE regress_plain;
SELECT mcp.list_prompts() AS plain_prompts;
SELECT mcp.get_prompt('draft_tool', '{"request": "x"}');
RESET ROLE;

SELECT name, status, proposed_by, parameters FROM mcp.tool_drafts ORDER BY id;
-- The DBA approves it: a tool, run as the role the DBA chooses, granted as asked.
SELECT mcp.approve_tool('item_label', grant_to => 'regress_plain', run_as => 'regress_author', max_rows => 10);
SELECT name, status, reviewed_by IS NOT NULL AS reviewed FROM mcp.tool_drafts ORDER BY id;
SELECT name, run_as, max_rows, created_by FROM mcp.tools WHERE name = 'item_label';
SET ROLE regress_plain;
SELECT r #>> '{structuredContent,rows,0,label}' AS label FROM mcp.call_tool('item_label', '{"id": 2}') r;
RESET ROLE;
SELECT mcp.approve_tool('item_label');

-- Or rejects one, with a reason.
SET ROLE regress_author;
SELECT r #>> '{structuredContent,rows,0,result}' IS NOT NULL AS proposed
  FROM mcp.call_tool('propose_tool', '{"name": "all_items", "description": "Every item", "sql": "SELECT * FROM public.draft_items"}') r;
RESET ROLE;
SELECT mcp.reject_tool('all_items', '');
SELECT mcp.reject_tool('all_items', 'Unbounded: add a filter');
SELECT name, status, reason FROM mcp.tool_drafts WHERE name = 'all_items';
SELECT count(*) AS all_items_tools FROM mcp.tools WHERE name = 'all_items';
SET ROLE regress_author;
SELECT mcp.approve_tool('all_items');
SELECT * FROM mcp.tool_drafts;
RESET ROLE;

SELECT mcp.drop_tool('item_label');
DELETE FROM mcp.tool_drafts;
DROP TABLE draft_items;
DROP ROLE regress_author, regress_plain;
