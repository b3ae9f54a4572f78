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
    OUT input_schema jsonb, OUT output_schema jsonb, OUT depends_on regclass[])
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_compile_tool';
REVOKE ALL ON FUNCTION @extschema@._compile_tool(text, jsonb, text, boolean, name) FROM PUBLIC;

--@include catalog_version.sql
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
