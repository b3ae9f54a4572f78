-- list_tools(): only the tools granted to the calling role, as MCP tool definitions with exact
-- JSON Schemas, in a deterministic order.
\set SHOW_CONTEXT never
CREATE ROLE regress_support NOLOGIN;
CREATE ROLE regress_analytics NOLOGIN;
CREATE ROLE regress_team NOLOGIN;
CREATE ROLE regress_member NOLOGIN IN ROLE regress_team;

-- One parameter of every type and constraint.
SELECT mcp.create_tool('every_type',
    'SELECT :s AS s, :e AS e, :u AS u, :d AS d, :ts AS ts, :i AS i, :n AS n, :b AS b, :ids AS ids, :tags AS tags, :opt AS opt',
    'A tool with one parameter of each type', $$[
      {"name": "s", "type": "string", "description": "Free text", "minLength": 2, "maxLength": 10, "pattern": "^[a-z]+$"},
      {"name": "e", "type": "string", "format": "email", "sensitive": true},
      {"name": "u", "type": "string", "format": "uuid"},
      {"name": "d", "type": "string", "format": "date"},
      {"name": "ts", "type": "string", "format": "date-time"},
      {"name": "i", "type": "integer", "minimum": 1, "maximum": 100},
      {"name": "n", "type": "number", "minimum": 0.5},
      {"name": "b", "type": "boolean"},
      {"name": "ids", "type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 3},
      {"name": "tags", "type": "array", "items": {"type": "string", "enum": ["red", "green"]}},
      {"name": "opt", "type": "string", "enum": ["asc", "desc"], "default": "asc"}
    ]$$, title => 'Every type');
SELECT mcp.create_tool('b_support_only', 'SELECT 1 AS one', 'Granted to support');
SELECT mcp.create_tool('a_analytics_only', 'SELECT 2 AS two', 'Granted to analytics');
SELECT mcp.create_tool('team_tool', 'SELECT 3 AS three', 'Granted to a group role');
SELECT mcp.create_tool('nobody', 'SELECT 4 AS four', 'Granted to nobody');
SELECT mcp.grant_tool('every_type', 'regress_support');
SELECT mcp.grant_tool('b_support_only', 'regress_support');
SELECT mcp.grant_tool('a_analytics_only', 'regress_analytics');
SELECT mcp.grant_tool('team_tool', 'regress_team');

-- The exact definition agents see.
SET ROLE regress_support;
SELECT jsonb_pretty(t) FROM jsonb_array_elements(mcp.list_tools()) t WHERE t ->> 'name' = 'every_type';

-- Each role sees only its own tools, ordered by name; group grants reach members.
SELECT jsonb_path_query_array(mcp.list_tools(), '$[*].name') AS support_sees;
SET ROLE regress_analytics;
SELECT jsonb_path_query_array(mcp.list_tools(), '$[*].name') AS analytics_sees;
SET ROLE regress_member;
SELECT jsonb_path_query_array(mcp.list_tools(), '$[*].name') AS member_sees;
-- The view behind list_tools does not leak other tools, not even through a leaky predicate.
CREATE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
  $$BEGIN RAISE NOTICE 'saw %', $1; RETURN true; END$$;
SELECT name FROM mcp.granted_tools WHERE pg_temp.peek(name);
DROP FUNCTION pg_temp.peek(text);
RESET ROLE;

-- A writing tool is annotated destructive; a DBA's explicit annotations and title are kept.
CREATE TABLE scratch (x int);
SELECT mcp.create_tool('writer', 'UPDATE scratch SET x = :x', 'Sets x', '[{"name": "x", "type": "integer"}]',
                       read_only => false, annotations => '{"idempotentHint": true}', title => 'Set X');
SELECT mcp.grant_tool('writer', 'regress_support');
SET ROLE regress_support;
SELECT jsonb_pretty(t - 'inputSchema' - 'outputSchema') FROM jsonb_array_elements(mcp.list_tools()) t WHERE t ->> 'name' = 'writer';
-- Output schemas follow the result columns' types.
RESET ROLE;
SELECT mcp.create_tool('typed_out',
    $$SELECT 1::int AS i, 2.5::numeric AS n, true AS b, 'x'::text AS t, '{"a":1}'::jsonb AS j,
             ARRAY[1,2] AS arr, current_date AS d, now() AS ts, gen_random_uuid() AS u$$,
    'Typed output');
SELECT jsonb_pretty(output_schema -> 'properties' -> 'rows' -> 'items') FROM mcp.tools WHERE name = 'typed_out';

SELECT mcp.drop_tool(name) FROM mcp.tools WHERE NOT builtin;
DROP TABLE scratch;
DROP ROLE regress_support, regress_analytics, regress_member, regress_team;
