------------------------------------------------------------------------------------------
-- Drafts proposed by agents: the built-in propose_tool (granted to mcp_tool_author) checks a
-- definition exactly as mcp.create_tool would and stores it as a draft, which no agent can
-- list or call; a DBA approves it (it becomes a tool) or rejects it with a reason.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.tool_drafts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    title       text,
    description text NOT NULL,
    sql         text NOT NULL,
    parameters  jsonb NOT NULL DEFAULT '[]',
    proposed_by name NOT NULL,
    proposed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reviewed_by name,
    reviewed_at timestamptz,
    reason      text
);
CREATE UNIQUE INDEX tool_drafts_pending ON @extschema@.tool_drafts (name) WHERE status = 'pending';
COMMENT ON TABLE @extschema@.tool_drafts IS 'Tool definitions proposed by agents (propose_tool), pending until a DBA approves (mcp.approve_tool) or rejects (mcp.reject_tool) them';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tool_drafts', '');
REVOKE ALL ON @extschema@.tool_drafts FROM PUBLIC;
GRANT SELECT ON @extschema@.tool_drafts TO mcp_admin;

CREATE FUNCTION @extschema@._propose_tool(name text, description text, sql text, parameters text,
                                          title text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acting name := @extschema@._acting_role();
    definition jsonb;
BEGIN
    IF NOT pg_has_role(acting, 'mcp_tool_author', 'USAGE') THEN
        RAISE EXCEPTION 'role "%" may not propose tools', acting USING ERRCODE = 'insufficient_privilege';
    END IF;
    BEGIN
        definition := coalesce(nullif(btrim(parameters), ''), '[]')::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'parameters must be a JSON array of parameter definitions' USING ERRCODE = 'invalid_parameter_value';
    END;
    -- Taken names look the same whether a tool (perhaps not granted to this agent) or another
    -- author's pending draft has them.
    IF EXISTS (SELECT FROM @extschema@.tool_drafts d WHERE d.name = _propose_tool.name AND d.status = 'pending')
       OR EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = _propose_tool.name) THEN
        RAISE EXCEPTION 'the name "%" is not available; choose another', name USING ERRCODE = 'duplicate_object';
    END IF;
    -- Checked exactly as mcp.create_tool checks (as this agent's role, which the tool would run
    -- as), then undone: only the draft remains.
    BEGIN
        PERFORM @extschema@.create_tool(name => name, sql => sql, description => description,
                                        parameters => definition, title => title,
                                        search_path => 'public, pg_temp');
        RAISE EXCEPTION USING ERRCODE = 'MCP09', MESSAGE = 'valid';
    EXCEPTION WHEN SQLSTATE 'MCP09' THEN
        NULL;
    END;
    INSERT INTO @extschema@.tool_drafts (name, title, description, sql, parameters, proposed_by)
    VALUES (name, title, description, sql, definition, acting);
    RETURN format('Draft "%s" is stored for review. It becomes a tool only when a database administrator approves it.', name);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._propose_tool(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._propose_tool(text, text, text, text, text) TO mcp_tool_author;

CREATE FUNCTION @extschema@.approve_tool(name text, run_as name DEFAULT NULL, grant_to name DEFAULT NULL,
                                         max_rows integer DEFAULT 100, timeout interval DEFAULT '30 seconds')
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d record;
BEGIN
    SELECT * INTO d FROM @extschema@.tool_drafts x WHERE x.name = approve_tool.name AND x.status = 'pending' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no pending draft named "%"', name USING ERRCODE = 'undefined_object',
            HINT = 'See SELECT * FROM mcp.tool_drafts WHERE status = ''pending''.';
    END IF;
    PERFORM @extschema@.create_tool(name => d.name, sql => d.sql, description => d.description,
                                    parameters => d.parameters, title => d.title, run_as => run_as,
                                    max_rows => max_rows, timeout => timeout, search_path => 'public, pg_temp');
    IF grant_to IS NOT NULL THEN
        PERFORM @extschema@.grant_tool(d.name, grant_to);
    END IF;
    UPDATE @extschema@.tool_drafts x SET status = 'approved', reviewed_by = @extschema@._acting_role(), reviewed_at = now()
     WHERE x.id = d.id;
END
$$;
COMMENT ON FUNCTION @extschema@.approve_tool(text, name, name, integer, interval)
    IS 'Makes a pending draft a tool (checked again by mcp.create_tool, with the run_as role and limits the DBA chooses), optionally granted to a role; records who approved it and when';

CREATE FUNCTION @extschema@.reject_tool(name text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a rejection needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE @extschema@.tool_drafts x SET status = 'rejected', reviewed_by = @extschema@._acting_role(),
           reviewed_at = now(), reason = reject_tool.reason
     WHERE x.name = reject_tool.name AND x.status = 'pending';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no pending draft named "%"', name USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.reject_tool(text, text) IS 'Rejects a pending draft, with the reason recorded';
REVOKE ALL ON FUNCTION @extschema@.approve_tool(text, name, name, integer, interval), @extschema@.reject_tool(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.approve_tool(text, name, name, integer, interval), @extschema@.reject_tool(text, text) TO mcp_admin;

SELECT @extschema@.create_tool(
    name        => 'propose_tool',
    title       => 'Propose a new tool',
    description => 'Submits a tool definition for review by a database administrator: one SQL statement with :name '
                   'parameters, its description, and its parameters as a JSON array (e.g. [{"name": "email", "type": '
                   '"string", "description": "..."}]). It is checked now (you get the error if it is invalid) and '
                   'stored as a draft; nobody can call it until it is approved.',
    sql         => 'SELECT @extschema@._propose_tool(:name, :description, :sql, :parameters, :title) AS result',
    parameters  => '[{"name": "name", "type": "string", "minLength": 1, "maxLength": 128, "description": "Tool name: letters, digits, _ . -"},
                     {"name": "description", "type": "string", "minLength": 1, "maxLength": 4000, "description": "What the tool returns and when to use it"},
                     {"name": "sql", "type": "string", "minLength": 1, "maxLength": 20000, "description": "One SQL statement with :name parameters"},
                     {"name": "parameters", "type": "string", "required": false, "maxLength": 20000, "description": "The parameters as a JSON array (default [])"},
                     {"name": "title", "type": "string", "required": false, "maxLength": 200, "description": "A short human-readable title"}]',
    read_only   => false,
    max_rows    => 1,
    timeout     => '10 seconds',
    annotations => '{"destructiveHint": false}',
    search_path => 'pg_catalog, pg_temp');
UPDATE @extschema@.tools SET builtin = true WHERE name = 'propose_tool';
SELECT @extschema@.grant_tool('propose_tool', 'mcp_tool_author');
