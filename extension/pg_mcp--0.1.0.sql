-- pg_mcp 0.1.0: governed MCP tools for AI agents.
\echo Use "CREATE EXTENSION pg_mcp" to load this file. \quit

-- Role whose members manage tools. Roles are cluster-wide: it is created once and survives
-- DROP EXTENSION (like pg_monitor-style roles of other extensions).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_admin') THEN
        CREATE ROLE mcp_admin NOLOGIN;
        COMMENT ON ROLE mcp_admin IS 'Members may create, alter, drop, grant and revoke pg_mcp tools';
    END IF;
END
$$;

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

------------------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.tools (
    id              bigserial NOT NULL UNIQUE,
    name            text PRIMARY KEY
                    CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    title           text,
    description     text NOT NULL,
    sql             text NOT NULL,
    compiled_sql    text NOT NULL,
    parameters      jsonb NOT NULL DEFAULT '[]',
    parameter_types regtype[] NOT NULL DEFAULT '{}',
    input_schema    jsonb NOT NULL,
    output_schema   jsonb NOT NULL,
    max_rows        integer NOT NULL DEFAULT 100 CHECK (max_rows > 0),
    max_bytes       integer NOT NULL DEFAULT 1048576 CHECK (max_bytes > 0),
    timeout         interval NOT NULL DEFAULT '30 seconds' CHECK (timeout > '0'::interval),
    read_only       boolean NOT NULL DEFAULT true,
    run_as          name,
    annotations     jsonb NOT NULL DEFAULT '{}',
    search_path     text NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    created_by      name NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by      name NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.tools IS 'Agent tools: one SQL statement each, with typed parameters, limits and MCP metadata. Change through mcp.create_tool / alter_tool / drop_tool.';
COMMENT ON COLUMN @extschema@.tools.sql IS 'The SQL as written by the DBA, with :name parameters';
COMMENT ON COLUMN @extschema@.tools.compiled_sql IS 'The SQL with $n positions, as prepared and executed';
COMMENT ON COLUMN @extschema@.tools.parameters IS 'Parameter definitions in canonical form, in position order';
COMMENT ON COLUMN @extschema@.tools.run_as IS 'Role the SQL runs as; NULL means the calling role';
COMMENT ON COLUMN @extschema@.tools.search_path IS 'search_path the SQL is prepared and run with (pg_temp always last)';
COMMENT ON COLUMN @extschema@.tools.version IS 'Incremented by every alter_tool; recorded in each audit row';

CREATE TABLE @extschema@.tool_grants (
    tool_name   text NOT NULL REFERENCES @extschema@.tools (name) ON DELETE CASCADE ON UPDATE CASCADE,
    role_name   name NOT NULL,
    granted_by  name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (tool_name, role_name)
);
COMMENT ON TABLE @extschema@.tool_grants IS 'Which roles may list and call which tools (members of a granted role may too). Change through mcp.grant_tool / revoke_tool.';

CREATE TABLE @extschema@.audit_log (
    id              bigserial PRIMARY KEY,
    called_at       timestamptz NOT NULL,
    caller_role     name NOT NULL,
    session_role    name NOT NULL,
    agent_name      text,
    client_info     text,
    request_id      text,
    tool_name       text NOT NULL,
    tool_version    integer,
    arguments       jsonb,
    status          text NOT NULL CHECK (status IN ('ok', 'truncated', 'invalid_arguments', 'denied',
                                                    'not_found', 'error', 'timeout', 'cancelled')),
    duration_ms     double precision NOT NULL,
    rows_returned   integer,
    sqlstate        text,
    message         text,
    backend_pid     integer NOT NULL
);
COMMENT ON TABLE @extschema@.audit_log IS 'One row per mcp.call_tool, whatever its outcome. Append-only: rows are removed only by mcp.purge_audit_log.';
COMMENT ON COLUMN @extschema@.audit_log.caller_role IS 'Role in effect when call_tool was called (after any SET ROLE)';
COMMENT ON COLUMN @extschema@.audit_log.session_role IS 'Login role of the session';
COMMENT ON COLUMN @extschema@.audit_log.agent_name IS 'Setting pg_mcp.agent_name at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.client_info IS 'Setting pg_mcp.client_info at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.request_id IS 'Setting pg_mcp.request_id at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.arguments IS 'Arguments as sent, with sensitive parameters replaced by "[redacted]"';
COMMENT ON COLUMN @extschema@.audit_log.duration_ms IS 'Wall time of the whole call, in milliseconds';
CREATE INDEX audit_log_called_at ON @extschema@.audit_log (called_at);
CREATE INDEX audit_log_tool_called_at ON @extschema@.audit_log (tool_name, called_at);

-- DBA's definitions and audit trail survive pg_dump / pg_restore.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tools', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tools_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tool_grants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log_id_seq', '');

REVOKE ALL ON @extschema@.tools, @extschema@.tool_grants, @extschema@.audit_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.tools_id_seq, @extschema@.audit_log_id_seq FROM PUBLIC;
GRANT SELECT ON @extschema@.tools, @extschema@.tool_grants, @extschema@.audit_log TO mcp_admin;

------------------------------------------------------------------------------------------
-- Audit log protection: no UPDATE, DELETE or TRUNCATE except through purge_audit_log.
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._audit_log_guard() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_audit_log_guard';
REVOKE ALL ON FUNCTION @extschema@._audit_log_guard() FROM PUBLIC;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON @extschema@.audit_log
    FOR EACH ROW EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();

CREATE FUNCTION @extschema@.purge_audit_log(older_than interval) RETURNS bigint
    LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pg_mcp_purge_audit_log';
COMMENT ON FUNCTION @extschema@.purge_audit_log(interval) IS 'Retention: deletes audit rows older than the given age and returns how many; the only way audit rows are removed';
REVOKE ALL ON FUNCTION @extschema@.purge_audit_log(interval) FROM PUBLIC;

------------------------------------------------------------------------------------------
-- Internal helpers
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.library_version() RETURNS text
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'pg_mcp_library_version';
COMMENT ON FUNCTION @extschema@.library_version() IS 'Version of the loaded pg_mcp shared library';

-- The role in effect outside any SECURITY DEFINER function (after SET ROLE): who is managing.
CREATE FUNCTION @extschema@._acting_role() RETURNS name
    LANGUAGE C STRICT STABLE AS 'MODULE_PATHNAME', 'pg_mcp_acting_role';
REVOKE ALL ON FUNCTION @extschema@._acting_role() FROM PUBLIC;

-- The caller's effective schemas as a search_path, with pg_temp last. Used as a default
-- argument, so it runs in the caller's context before SECURITY DEFINER takes effect.
CREATE FUNCTION @extschema@.current_search_path() RETURNS text
    LANGUAGE sql STABLE
    RETURN pg_catalog.concat_ws(', ',
        (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(s), ', ' ORDER BY o)
           FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS t(s, o)),
        'pg_temp');
COMMENT ON FUNCTION @extschema@.current_search_path() IS 'The caller''s schemas as a search_path with pg_temp last: the default search_path of new tools';

-- Checks a tool definition and compiles it: rewrites :name parameters, prepares the SQL with
-- the declared types as prepare_as under search_path, and derives the JSON Schemas.
CREATE FUNCTION @extschema@._compile_tool(
    sql text, parameters jsonb, search_path text, read_only boolean, prepare_as name,
    OUT compiled_sql text, OUT parameters jsonb, OUT parameter_types regtype[],
    OUT input_schema jsonb, OUT output_schema jsonb)
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_compile_tool';
REVOKE ALL ON FUNCTION @extschema@._compile_tool(text, jsonb, text, boolean, name) FROM PUBLIC;

CREATE FUNCTION @extschema@._notify_tools_changed(tool text, change text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT pg_catalog.pg_notify('pg_mcp_tools_changed',
                                    pg_catalog.jsonb_build_object('tool', tool, 'change', change)::text);
    END;
REVOKE ALL ON FUNCTION @extschema@._notify_tools_changed(text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_limits(max_rows integer, max_bytes integer, timeout interval)
    RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF max_rows IS NOT NULL AND max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1, got %', max_rows
            USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is 100 rows.';
    END IF;
    IF max_bytes IS NOT NULL AND max_bytes < 1 THEN
        RAISE EXCEPTION 'max_bytes must be at least 1, got %', max_bytes
            USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is 1048576 bytes (1 MiB).';
    END IF;
    IF timeout IS NOT NULL AND (timeout < '1 millisecond'::interval OR timeout > '1 day'::interval) THEN
        RAISE EXCEPTION 'timeout must be between 1 ms and 1 day, got %', timeout
            USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is 30 seconds.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_limits(integer, integer, interval) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_run_as(run_as name, acting name) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF run_as IS NULL THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = run_as) THEN
        RAISE EXCEPTION 'role "%" given as run_as does not exist', run_as
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create the role first, or leave run_as NULL to run the tool as the calling role.';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = run_as AND rolsuper) THEN
        RAISE EXCEPTION 'run_as role "%" is a superuser', run_as
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Tools run with least privilege: create a role with only the grants the tool needs.';
    END IF;
    -- A tool manager may only lend a tool rights it could take itself (as with SET ROLE).
    IF NOT pg_has_role(acting, run_as, 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" is not a member of run_as role "%"', acting, run_as
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('A superuser can GRANT %I TO %I first, or define the tool.', run_as, acting);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_run_as(name, name) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_annotations(annotations jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key text;
BEGIN
    IF annotations IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(annotations) <> 'object' THEN
        RAISE EXCEPTION 'annotations must be a JSON object, got %', jsonb_typeof(annotations)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR key IN SELECT jsonb_object_keys(annotations) LOOP
        IF key NOT IN ('title', 'readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint') THEN
            RAISE EXCEPTION 'unknown annotation "%"', key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'MCP tool annotations are: title, readOnlyHint, destructiveHint, idempotentHint, openWorldHint.';
        END IF;
        IF key <> 'title' AND jsonb_typeof(annotations -> key) <> 'boolean' THEN
            RAISE EXCEPTION 'annotation "%" must be true or false', key USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_annotations(jsonb) FROM PUBLIC;

-- MCP annotations of a tool: read-only tools are read-only and idempotent; writing tools are
-- destructive unless the DBA says otherwise. Explicit annotations win; closed world always.
CREATE FUNCTION @extschema@._effective_annotations(read_only boolean, annotations jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN read_only
                THEN '{"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}'::jsonb
                ELSE '{"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false}'::jsonb
           END || coalesce(annotations, '{}') || CASE WHEN read_only THEN '{"readOnlyHint": true}'::jsonb ELSE '{}' END;

------------------------------------------------------------------------------------------
-- Management API (members of mcp_admin, and the extension owner)
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.create_tool(
    name        text,
    sql         text,
    description text,
    parameters  jsonb    DEFAULT '[]',
    title       text     DEFAULT NULL,
    max_rows    integer  DEFAULT 100,
    max_bytes   integer  DEFAULT 1048576,
    timeout     interval DEFAULT '30 seconds',
    read_only   boolean  DEFAULT true,
    run_as      name     DEFAULT NULL,
    annotations jsonb    DEFAULT '{}',
    search_path text     DEFAULT @extschema@.current_search_path()
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    compiled record;
    acting name := @extschema@._acting_role();
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,128}$' THEN
        RAISE EXCEPTION 'invalid tool name "%"', name
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'MCP tool names are 1 to 128 characters from A-Z, a-z, 0-9, underscore, hyphen and dot.',
                  HINT = 'For example: get_customer_info.';
    END IF;
    IF EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = create_tool.name) THEN
        RAISE EXCEPTION 'tool "%" already exists', name
            USING ERRCODE = 'duplicate_object', HINT = 'Use mcp.alter_tool to change it, or mcp.drop_tool first.';
    END IF;
    IF description IS NULL OR btrim(description) = '' THEN
        RAISE EXCEPTION 'tool "%" needs a description', name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Agents choose tools by their description: say what it returns and when to use it.';
    END IF;
    IF read_only IS NULL OR search_path IS NULL THEN
        RAISE EXCEPTION 'read_only and search_path must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM @extschema@._check_limits(coalesce(max_rows, 0), coalesce(max_bytes, 0), coalesce(timeout, '0'));
    PERFORM @extschema@._check_run_as(run_as, acting);
    PERFORM @extschema@._check_annotations(annotations);
    compiled := @extschema@._compile_tool(sql, parameters, search_path, read_only, coalesce(run_as, acting));
    INSERT INTO @extschema@.tools (name, title, description, sql, compiled_sql, parameters, parameter_types,
                                   input_schema, output_schema, max_rows, max_bytes, timeout, read_only,
                                   run_as, annotations, search_path, created_by, updated_by)
    VALUES (name, title, description, sql, compiled.compiled_sql, compiled.parameters,
            compiled.parameter_types, compiled.input_schema, compiled.output_schema, max_rows,
            max_bytes, timeout, read_only, run_as, coalesce(annotations, '{}'), search_path, acting, acting);
    PERFORM @extschema@._notify_tools_changed(name, 'created');
END
$$;
COMMENT ON FUNCTION @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text)
    IS 'Defines a tool: one SQL statement with :name parameters declared in parameters (a JSON array). Validated and prepared now, so mistakes fail here rather than for an agent.';

CREATE FUNCTION @extschema@.alter_tool(
    name        text,
    sql         text     DEFAULT NULL,
    description text     DEFAULT NULL,
    parameters  jsonb    DEFAULT NULL,
    title       text     DEFAULT NULL,
    max_rows    integer  DEFAULT NULL,
    max_bytes   integer  DEFAULT NULL,
    timeout     interval DEFAULT NULL,
    read_only   boolean  DEFAULT NULL,
    run_as      name     DEFAULT NULL,
    annotations jsonb    DEFAULT NULL,
    search_path text     DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old @extschema@.tools;
    compiled record;
    acting name := @extschema@._acting_role();
    new_run_as name;
BEGIN
    SELECT * INTO old FROM @extschema@.tools t WHERE t.name = alter_tool.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tool "%" does not exist', name
            USING ERRCODE = 'undefined_object', HINT = 'mcp.list_all_tools() shows every tool.';
    END IF;
    IF description IS NOT NULL AND btrim(description) = '' THEN
        RAISE EXCEPTION 'tool "%" needs a description', name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- run_as: NULL keeps it, '' makes the tool run as the calling role.
    new_run_as := CASE WHEN run_as IS NULL THEN old.run_as WHEN run_as = '' THEN NULL ELSE run_as END;
    PERFORM @extschema@._check_limits(max_rows, max_bytes, timeout);
    PERFORM @extschema@._check_run_as(new_run_as, acting);
    PERFORM @extschema@._check_annotations(annotations);
    compiled := @extschema@._compile_tool(coalesce(sql, old.sql), coalesce(parameters, old.parameters),
                                          coalesce(search_path, old.search_path),
                                          coalesce(read_only, old.read_only), coalesce(new_run_as, acting));
    UPDATE @extschema@.tools t SET
        title = coalesce(alter_tool.title, t.title),
        description = coalesce(alter_tool.description, t.description),
        sql = coalesce(alter_tool.sql, t.sql),
        compiled_sql = compiled.compiled_sql,
        parameters = compiled.parameters,
        parameter_types = compiled.parameter_types,
        input_schema = compiled.input_schema,
        output_schema = compiled.output_schema,
        max_rows = coalesce(alter_tool.max_rows, t.max_rows),
        max_bytes = coalesce(alter_tool.max_bytes, t.max_bytes),
        timeout = coalesce(alter_tool.timeout, t.timeout),
        read_only = coalesce(alter_tool.read_only, t.read_only),
        run_as = new_run_as,
        annotations = coalesce(alter_tool.annotations, t.annotations),
        search_path = coalesce(alter_tool.search_path, t.search_path),
        version = t.version + 1,
        updated_by = acting,
        updated_at = now()
    WHERE t.name = alter_tool.name;
    PERFORM @extschema@._notify_tools_changed(name, 'altered');
END
$$;
COMMENT ON FUNCTION @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text)
    IS 'Changes a tool: arguments left NULL keep their value (run_as => '''' runs as the calling role). Revalidates and bumps the version.';

CREATE FUNCTION @extschema@.drop_tool(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.tools t WHERE t.name = drop_tool.name;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'tool "%" does not exist, skipping', name;
            RETURN;
        END IF;
        RAISE EXCEPTION 'tool "%" does not exist', name
            USING ERRCODE = 'undefined_object', HINT = 'Pass if_exists => true to ignore a missing tool.';
    END IF;
    PERFORM @extschema@._notify_tools_changed(name, 'dropped');
END
$$;
COMMENT ON FUNCTION @extschema@.drop_tool(text, boolean) IS 'Removes a tool and its grants; its audit rows stay';

CREATE FUNCTION @extschema@.grant_tool(tool text, role name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = tool) THEN
        RAISE EXCEPTION 'tool "%" does not exist', tool USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = role) THEN
        RAISE EXCEPTION 'role "%" does not exist', role
            USING ERRCODE = 'undefined_object', HINT = 'Create the agent role first (CREATE ROLE ... NOLOGIN).';
    END IF;
    INSERT INTO @extschema@.tool_grants (tool_name, role_name, granted_by)
    VALUES (tool, role, @extschema@._acting_role())
    ON CONFLICT (tool_name, role_name) DO NOTHING;
    IF FOUND THEN
        PERFORM @extschema@._notify_tools_changed(tool, 'granted');
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.grant_tool(text, name) IS 'Lets a role (and its members) list and call a tool';

CREATE FUNCTION @extschema@.revoke_tool(tool text, role name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = tool) THEN
        RAISE EXCEPTION 'tool "%" does not exist', tool USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM @extschema@.tool_grants g WHERE g.tool_name = tool AND g.role_name = role;
    IF NOT FOUND THEN
        RAISE NOTICE 'role "%" was not granted tool "%"', role, tool;
        RETURN;
    END IF;
    PERFORM @extschema@._notify_tools_changed(tool, 'revoked');
END
$$;
COMMENT ON FUNCTION @extschema@.revoke_tool(text, name) IS 'Withdraws a role''s grant of a tool';

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

-- Every tool with everything about it, for DBAs reviewing what agents can do.
CREATE FUNCTION @extschema@.list_all_tools() RETURNS TABLE (
    name text, version integer, description text, sql text, parameters jsonb, max_rows integer,
    max_bytes integer, timeout interval, read_only boolean, run_as name, granted_to name[],
    definition jsonb, updated_by name, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT t.name, t.version, t.description, t.sql, t.parameters, t.max_rows, t.max_bytes, t.timeout,
           t.read_only, t.run_as,
           ARRAY(SELECT g.role_name FROM @extschema@.tool_grants g WHERE g.tool_name = t.name ORDER BY 1),
           @extschema@._tool_definition(t), t.updated_by, t.updated_at
      FROM @extschema@.tools t
     ORDER BY t.name COLLATE "C";
END;
COMMENT ON FUNCTION @extschema@.list_all_tools() IS 'Every tool with its SQL, limits, grants and the MCP definition agents see: for DBAs reviewing tools';

-- Management is for mcp_admin members (and the owner), nobody else.
REVOKE ALL ON FUNCTION
    @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text),
    @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text),
    @extschema@.drop_tool(text, boolean),
    @extschema@.grant_tool(text, name),
    @extschema@.revoke_tool(text, name),
    @extschema@.list_all_tools()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text),
    @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text),
    @extschema@.drop_tool(text, boolean),
    @extschema@.grant_tool(text, name),
    @extschema@.revoke_tool(text, name),
    @extschema@.list_all_tools()
    TO mcp_admin;

------------------------------------------------------------------------------------------
-- Agent API
------------------------------------------------------------------------------------------

-- Tools granted to the role executing the query (current_user is the caller, not the view's
-- owner); security_barrier keeps a caller's own predicates from peeking at other tools.
CREATE VIEW @extschema@.granted_tools WITH (security_barrier) AS
    SELECT t.name, @extschema@._tool_definition(t) AS definition
      FROM @extschema@.tools t
     WHERE EXISTS (SELECT FROM @extschema@.tool_grants g
                     JOIN pg_catalog.pg_roles r ON r.rolname = g.role_name
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

CREATE FUNCTION @extschema@.call_tool(name text, arguments jsonb DEFAULT '{}') RETURNS jsonb
    LANGUAGE C CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_call_tool';
COMMENT ON FUNCTION @extschema@.call_tool(text, jsonb) IS 'Calls a tool granted to the calling role with JSON arguments; returns an MCP CallToolResult and writes one audit row';
