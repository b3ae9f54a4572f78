-- Defining and changing tools: mcp.create_tool and mcp.alter_tool (members of mcp_admin, and
-- the extension owner). Its own file: the upgrade that added a parameter recreates them.

CREATE FUNCTION @extschema@._check_untrusted_data(mode text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF mode IS NULL OR mode NOT IN ('auto', 'mark', 'plain') THEN
        RAISE EXCEPTION 'invalid untrusted_data "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'auto (mark results that can carry text: the default), mark (always) or plain (never).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_untrusted_data(text) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_confirm(confirm text, message text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF confirm IS NULL OR confirm NOT IN ('none', 'ask') THEN
        RAISE EXCEPTION 'invalid confirm "%"', confirm
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'none, or ask: a person confirms each call through the MCP client before it runs.';
    END IF;
    IF length(message) NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'confirm_message must be 1 to 1000 characters'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''Cancel the subscription of {email}?'' ({name} is replaced by that argument''s value).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_confirm(text, text) FROM PUBLIC;

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
    search_path text     DEFAULT @extschema@.current_search_path(),
    untrusted_data text  DEFAULT 'auto',
    confirm     text     DEFAULT 'none',
    confirm_message text DEFAULT NULL
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
    PERFORM @extschema@._check_untrusted_data(coalesce(untrusted_data, 'auto'));
    PERFORM @extschema@._check_confirm(coalesce(confirm, 'none'), confirm_message);
    compiled := @extschema@._compile_tool(sql, parameters, search_path, read_only, coalesce(run_as, acting));
    INSERT INTO @extschema@.tools (name, title, description, sql, compiled_sql, parameters, parameter_types,
                                   input_schema, output_schema, depends_on, max_rows, max_bytes, timeout,
                                   read_only, run_as, annotations, search_path, untrusted_data,
                                   confirm, confirm_message, created_by, updated_by)
    VALUES (name, title, description, sql, compiled.compiled_sql, compiled.parameters,
            compiled.parameter_types, compiled.input_schema, compiled.output_schema, compiled.depends_on, max_rows,
            max_bytes, timeout, read_only, run_as, coalesce(annotations, '{}'), search_path,
            coalesce(untrusted_data, 'auto'), coalesce(confirm, 'none'), confirm_message, acting, acting);
    PERFORM @extschema@._notify_tools_changed(name, 'created');
END
$$;
COMMENT ON FUNCTION @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, text, text, text)
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
    search_path text     DEFAULT NULL,
    max_cost    double precision DEFAULT NULL,
    untrusted_data text  DEFAULT NULL,
    confirm     text     DEFAULT NULL,
    confirm_message text DEFAULT NULL
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
    IF old.builtin AND (sql IS NOT NULL OR parameters IS NOT NULL OR read_only IS NOT NULL
                        OR run_as IS NOT NULL OR search_path IS NOT NULL) THEN
        RAISE EXCEPTION 'tool "%" is built in: only its description, title, limits and annotations can change', name
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF max_cost IS NOT NULL AND old.kind <> 'query' THEN
        RAISE EXCEPTION 'max_cost applies only to the query tool' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_cost IS NOT NULL AND max_cost < 0 THEN
        RAISE EXCEPTION 'max_cost must be positive (0 removes the tool''s own ceiling), got %', max_cost
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- run_as: NULL keeps it, '' makes the tool run as the calling role.
    new_run_as := CASE WHEN run_as IS NULL THEN old.run_as WHEN run_as = '' THEN NULL ELSE run_as END;
    PERFORM @extschema@._check_limits(max_rows, max_bytes, timeout);
    PERFORM @extschema@._check_run_as(new_run_as, acting);
    PERFORM @extschema@._check_annotations(annotations);
    IF untrusted_data IS NOT NULL THEN PERFORM @extschema@._check_untrusted_data(untrusted_data); END IF;
    -- confirm_message => '' goes back to the default message.
    PERFORM @extschema@._check_confirm(coalesce(confirm, old.confirm),
                                       CASE WHEN confirm_message = '' THEN NULL
                                            ELSE coalesce(confirm_message, old.confirm_message) END);
    IF old.kind = 'sql' THEN
        compiled := @extschema@._compile_tool(coalesce(sql, old.sql), coalesce(parameters, old.parameters),
                                              coalesce(search_path, old.search_path),
                                              coalesce(read_only, old.read_only), coalesce(new_run_as, acting));
    ELSE
        SELECT old.compiled_sql, old.parameters, old.parameter_types, old.input_schema, old.output_schema,
               old.depends_on
          INTO compiled;
    END IF;
    UPDATE @extschema@.tools t SET
        title = coalesce(alter_tool.title, t.title),
        description = coalesce(alter_tool.description, t.description),
        sql = coalesce(alter_tool.sql, t.sql),
        compiled_sql = compiled.compiled_sql,
        parameters = compiled.parameters,
        parameter_types = compiled.parameter_types,
        input_schema = compiled.input_schema,
        output_schema = compiled.output_schema,
        depends_on = compiled.depends_on,
        max_rows = coalesce(alter_tool.max_rows, t.max_rows),
        max_bytes = coalesce(alter_tool.max_bytes, t.max_bytes),
        timeout = coalesce(alter_tool.timeout, t.timeout),
        read_only = coalesce(alter_tool.read_only, t.read_only),
        run_as = new_run_as,
        annotations = coalesce(alter_tool.annotations, t.annotations),
        search_path = coalesce(alter_tool.search_path, t.search_path),
        max_cost = CASE WHEN alter_tool.max_cost IS NULL THEN t.max_cost
                        WHEN alter_tool.max_cost = 0 THEN NULL ELSE alter_tool.max_cost END,
        untrusted_data = coalesce(alter_tool.untrusted_data, t.untrusted_data),
        confirm = coalesce(alter_tool.confirm, t.confirm),
        confirm_message = CASE WHEN alter_tool.confirm_message = '' THEN NULL
                               ELSE coalesce(alter_tool.confirm_message, t.confirm_message) END,
        version = t.version + 1,
        updated_by = acting,
        updated_at = now()
    WHERE t.name = alter_tool.name;
    PERFORM @extschema@._notify_tools_changed(name, 'altered');
END
$$;
COMMENT ON FUNCTION @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision, text, text, text)
    IS 'Changes a tool: arguments left NULL keep their value (run_as => '''' runs as the calling role). Revalidates and bumps the version.';

REVOKE ALL ON FUNCTION
    @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, text, text, text),
    @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision, text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, text, text, text),
    @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision, text, text, text)
    TO mcp_admin;
