-- Tools as agents and DBAs see them: _tool_definition (a row as an MCP Tool object), the view
-- of the caller's granted tools and mcp.list_tools() over it, and mcp.list_all_tools(). Their
-- bodies are parsed against mcp.tools' row type, so an upgrade that adds a column to it drops
-- and recreates them from this file.

-- A tool as agents see it: an MCP Tool object.
CREATE FUNCTION @extschema@._tool_definition(t @extschema@.tools) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'name', t.name,
        'title', t.title,
        'description', t.description,
        'inputSchema', t.input_schema,
        'outputSchema', t.output_schema))
      || jsonb_build_object('annotations',
             @extschema@._effective_annotations(t.read_only, t.annotations)
             || CASE WHEN t.title IS NOT NULL AND NOT t.annotations ? 'title'
                     THEN jsonb_build_object('title', t.title) ELSE '{}' END);
-- Executable by everyone: views run functions with the querying role's rights, and it only
-- formats the row it is given.

-- Tools granted to the role executing the query (current_user is the caller, not the view's
-- owner); security_barrier keeps a caller's own predicates from peeking at other tools.
CREATE VIEW @extschema@.granted_tools WITH (security_barrier) AS
    SELECT t.name, @extschema@._tool_definition(t) AS definition
      FROM @extschema@.tools t
     WHERE EXISTS (SELECT FROM @extschema@.tool_grants g
                     JOIN pg_catalog.pg_roles r ON r.oid = g.role
                    WHERE g.tool_name = t.name
                      AND pg_catalog.pg_has_role(current_user, r.oid, 'USAGE'));
COMMENT ON VIEW @extschema@.granted_tools IS 'Tools the current role may call, as MCP tool definitions';
REVOKE ALL ON @extschema@.granted_tools FROM PUBLIC;
GRANT SELECT ON @extschema@.granted_tools TO PUBLIC;

CREATE FUNCTION @extschema@.list_tools() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    RETURN (SELECT coalesce(jsonb_agg(g.definition ORDER BY g.name COLLATE "C"), '[]')
              FROM @extschema@.granted_tools g);
COMMENT ON FUNCTION @extschema@.list_tools() IS 'MCP tool definitions of every tool granted to the calling role, ordered by name';

-- Every tool with everything about it, for DBAs reviewing what agents can do.
CREATE FUNCTION @extschema@.list_all_tools() RETURNS TABLE (
    name text, version integer, kind text, builtin boolean, description text, sql text, parameters jsonb,
    max_rows integer, max_bytes integer, timeout interval, read_only boolean, run_as name, granted_to name[],
    reads text[], reads_pii text[], definition jsonb, updated_by name, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT t.name, t.version, t.kind, t.builtin, t.description, t.sql, t.parameters, t.max_rows, t.max_bytes,
           t.timeout, t.read_only, t.run_as,
           ARRAY(SELECT g.role::text::name FROM @extschema@.tool_grants g WHERE g.tool_name = t.name ORDER BY 1),
           ARRAY(SELECT d::text FROM unnest(t.depends_on) d ORDER BY 1),
           ARRAY(SELECT v.name || '.' || p FROM @extschema@.sandbox_views v, unnest(v.pii_columns) p
                  WHERE v.view = ANY (t.depends_on) ORDER BY 1),
           @extschema@._tool_definition(t), t.updated_by, t.updated_at
      FROM @extschema@.tools t
     ORDER BY t.name COLLATE "C";
END;
COMMENT ON FUNCTION @extschema@.list_all_tools() IS 'Every tool with its SQL, limits, grants and the MCP definition agents see: for DBAs reviewing tools';
REVOKE ALL ON FUNCTION @extschema@.list_all_tools() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.list_all_tools() TO mcp_admin;
