-- pg_mcp 0.2.0: governed MCP tools for AI agents.
\echo Use "CREATE EXTENSION pg_mcp" to load this file. \quit

-- Role whose members manage tools. Roles are cluster-wide: it is created once and survives
-- DROP EXTENSION (like pg_monitor-style roles of other extensions).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_admin') THEN
        CREATE ROLE mcp_admin NOLOGIN;
        COMMENT ON ROLE mcp_admin IS 'Members may create, alter, drop, grant and revoke pg_mcp tools';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_tool_author') THEN
        CREATE ROLE mcp_tool_author NOLOGIN;
        COMMENT ON ROLE mcp_tool_author IS 'Members (agents that draft tools) may call the built-in propose_tool; drafts go live only when a DBA approves them';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_audit_forwarder') THEN
        CREATE ROLE mcp_audit_forwarder NOLOGIN;
        COMMENT ON ROLE mcp_audit_forwarder IS 'Members (the login of pg_mcp_bridge with read replicas) may add the audit records of calls served by hot standbys to mcp.audit_log';
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
    depends_on      regclass[] NOT NULL DEFAULT '{}',
    max_rows        integer NOT NULL DEFAULT 100 CHECK (max_rows > 0),
    max_bytes       integer NOT NULL DEFAULT 1048576 CHECK (max_bytes > 0),
    timeout         interval NOT NULL DEFAULT '30 seconds' CHECK (timeout > '0'::interval),
    read_only       boolean NOT NULL DEFAULT true,
    kind            text NOT NULL DEFAULT 'sql' CHECK (kind IN ('sql', 'query')),
    builtin         boolean NOT NULL DEFAULT false,
    max_cost        double precision CHECK (max_cost > 0),
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
COMMENT ON COLUMN @extschema@.tools.depends_on IS 'Tables and views the SQL reads (found when it was prepared)';
COMMENT ON COLUMN @extschema@.tools.kind IS 'sql: the DBA''s statement; query: the built-in guarded free-form SQL tool';
COMMENT ON COLUMN @extschema@.tools.builtin IS 'Installed with the extension (query, list_objects, describe_object): only limits and description can change';
COMMENT ON COLUMN @extschema@.tools.max_cost IS 'query tool: planner cost ceiling of this tool (the smaller of it and pg_mcp.query_max_cost applies)';
COMMENT ON COLUMN @extschema@.tools.run_as IS 'Role the SQL runs as; NULL means the calling role';
COMMENT ON COLUMN @extschema@.tools.search_path IS 'search_path the SQL is prepared and run with (pg_temp always last)';
COMMENT ON COLUMN @extschema@.tools.version IS 'Incremented by every alter_tool; recorded in each audit row';

CREATE TABLE @extschema@.tool_grants (
    tool_name   text NOT NULL REFERENCES @extschema@.tools (name) ON DELETE CASCADE ON UPDATE CASCADE,
    role        regrole NOT NULL,
    granted_by  name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (tool_name, role)
);
COMMENT ON TABLE @extschema@.tool_grants IS 'Which roles may list and call which tools (members of a granted role may too). Change through mcp.grant_tool / revoke_tool.';
COMMENT ON COLUMN @extschema@.tool_grants.role IS 'The role, by OID: a grant follows a renamed role and never passes to a new role of the old name';

CREATE TABLE @extschema@.principals (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    role        regrole NOT NULL UNIQUE,
    context     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    description text,
    created_by  name NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  name NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.principals IS 'Agent identities: each is one database role, with context values (e.g. a tenant id) that tools can bind as parameters. The principal in effect is the one of the calling role, which PostgreSQL authenticates; no setting can claim another.';
COMMENT ON COLUMN @extschema@.principals.context IS 'Values tools bind to parameters declared {"from_principal": "key"}; set only by DBAs';

CREATE TABLE @extschema@.audit_log (
    id              bigint PRIMARY KEY,
    called_at       timestamptz NOT NULL,
    caller_role     name NOT NULL,
    session_role    name NOT NULL,
    agent_name      text,
    client_info     text,
    request_id      text,
    tool_name       text NOT NULL,
    tool_version    integer,
    arguments       jsonb,
    principal       text,
    status          text NOT NULL CHECK (status IN ('ok', 'truncated', 'invalid_arguments', 'denied',
                                                    'not_found', 'refused', 'error', 'timeout',
                                                    'cancelled', 'rate_limited', 'purge')),
    duration_ms     double precision NOT NULL,
    rows_returned   integer,
    plan_cost       double precision,
    shared_blks_hit bigint,
    shared_blks_read bigint,
    sqlstate        text,
    message         text,
    backend_pid     integer NOT NULL,
    prev_hash       bytea,
    row_hash        bytea NOT NULL,
    truncated       jsonb
);
COMMENT ON TABLE @extschema@.audit_log IS 'One row per mcp.call_tool, whatever its outcome, written by the audit writer outside the caller''s transaction. Append-only and hash-chained (mcp.verify_audit); rows are removed only by mcp.purge_audit.';
COMMENT ON COLUMN @extschema@.audit_log.row_hash IS 'sha256 of the previous row''s hash and this row''s content: the tamper-evident chain';
COMMENT ON COLUMN @extschema@.audit_log.caller_role IS 'Role in effect when call_tool was called (after any SET ROLE)';
COMMENT ON COLUMN @extschema@.audit_log.session_role IS 'Login role of the session';
COMMENT ON COLUMN @extschema@.audit_log.principal IS 'Principal of the calling role, if it has one';
COMMENT ON COLUMN @extschema@.audit_log.agent_name IS 'Setting pg_mcp.agent_name at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.client_info IS 'Setting pg_mcp.client_info at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.request_id IS 'Setting pg_mcp.request_id at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.arguments IS 'Arguments as sent, with sensitive parameters replaced by "[redacted]"';
COMMENT ON COLUMN @extschema@.audit_log.duration_ms IS 'Wall time of the whole call, in milliseconds';
COMMENT ON COLUMN @extschema@.audit_log.plan_cost IS 'The planner''s estimated total cost of the tool''s statement (NULL when it did not run)';
COMMENT ON COLUMN @extschema@.audit_log.shared_blks_hit IS 'Shared buffers found in cache while the tool''s SQL ran (NULL when it did not run)';
COMMENT ON COLUMN @extschema@.audit_log.truncated IS 'Fields cut to their limit, each with its full size and the SHA-256 of its full value: {"message": {"bytes": n, "sha256": "hex"}}; NULL when nothing was cut';
COMMENT ON COLUMN @extschema@.audit_log.shared_blks_read IS 'Shared buffers read from disk (or the OS cache) while the tool''s SQL ran';
CREATE INDEX audit_log_called_at ON @extschema@.audit_log (called_at);
CREATE INDEX audit_log_tool_called_at ON @extschema@.audit_log (tool_name, called_at);

-- DBA's definitions and audit trail survive pg_dump / pg_restore.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tools', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tools_id_seq', '');
-- (The built-in propose_tool's grant to mcp_tool_author is made by this script, not dumped.)
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tool_grants',
    $$WHERE NOT (tool_name = 'propose_tool' AND role = 'mcp_tool_author'::regrole)$$);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.principals', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log', '');

REVOKE ALL ON @extschema@.tools, @extschema@.tool_grants, @extschema@.principals, @extschema@.audit_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.tools_id_seq FROM PUBLIC;
GRANT SELECT ON @extschema@.tools, @extschema@.tool_grants, @extschema@.principals, @extschema@.audit_log TO mcp_admin;

------------------------------------------------------------------------------------------
-- Audit log protection: no UPDATE, DELETE or TRUNCATE except through purge_audit.
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._audit_log_guard() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_audit_log_guard';
REVOKE ALL ON FUNCTION @extschema@._audit_log_guard() FROM PUBLIC;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON @extschema@.audit_log
    FOR EACH ROW EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();

-- Chain: each row's row_hash = sha256(prev_hash || the row's content), in the order the audit
-- writer (the only writer) committed them. The content is a canonical encoding of every other
-- column (fixed-width numbers big-endian, text as UTF-8, jsonb as its canonical text), so it
-- depends on no setting and no server encoding; the writer and this function share its code.
CREATE FUNCTION @extschema@._audit_row_hash(r @extschema@.audit_log) RETURNS bytea
    LANGUAGE C IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'pg_mcp_audit_row_hash';
REVOKE ALL ON FUNCTION @extschema@._audit_row_hash(@extschema@.audit_log) FROM PUBLIC;

CREATE TABLE @extschema@.audit_anchors (
    last_purged_id  bigint NOT NULL,
    anchor_hash     bytea NOT NULL,
    rows_purged     bigint NOT NULL,
    purged_by       name NOT NULL,
    purged_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.audit_anchors IS 'Where the audit chain starts after each purge: the hash of the last purged row';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_anchors', '');
REVOKE ALL ON @extschema@.audit_anchors FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_anchors TO mcp_admin;
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON @extschema@.audit_anchors
    FOR EACH ROW EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON @extschema@.audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();


CREATE FUNCTION @extschema@.verify_audit()
RETURNS TABLE (verified boolean, rows_checked bigint, first_bad_id bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    expected_prev bytea;
    a @extschema@.audit_log;
    n bigint := 0;
BEGIN
    SELECT x.anchor_hash INTO expected_prev FROM @extschema@.audit_anchors x ORDER BY x.last_purged_id DESC LIMIT 1;
    FOR a IN SELECT * FROM @extschema@.audit_log ORDER BY id LOOP
        n := n + 1;
        IF a.prev_hash IS DISTINCT FROM expected_prev THEN
            RETURN QUERY SELECT false, n, a.id,
                format('row %s does not follow the row before it: a row was deleted, inserted or reordered', a.id);
            RETURN;
        END IF;
        IF @extschema@._audit_row_hash(a) IS DISTINCT FROM a.row_hash THEN
            RETURN QUERY SELECT false, n, a.id, format('row %s was altered after it was written', a.id);
            RETURN;
        END IF;
        expected_prev := a.row_hash;
    END LOOP;
    RETURN QUERY SELECT true, n, NULL::bigint, NULL::text;
END
$$;
COMMENT ON FUNCTION @extschema@.verify_audit() IS 'Walks the audit chain; reports the first row that was altered, deleted, inserted or reordered since the writer wrote it';
REVOKE ALL ON FUNCTION @extschema@.verify_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.verify_audit() TO mcp_admin;

-- Called by purge_audit only (which holds the flag the guard trigger checks): deletes the
-- oldest rows, up to the first one at or after the cutoff, and anchors the chain there.
CREATE FUNCTION @extschema@._purge_audit_prefix(cutoff timestamptz) RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    boundary bigint;
    last_row record;
    deleted bigint;
BEGIN
    -- The ids of forwarded standby records go with the rows' age (a spool never keeps a record
    -- that long).
    DELETE FROM @extschema@.audit_forwarded f WHERE f.ingested_at < cutoff;
    SELECT coalesce(min(l.id), (SELECT max(id) + 1 FROM @extschema@.audit_log)) INTO boundary
      FROM @extschema@.audit_log l WHERE l.called_at >= cutoff;
    SELECT l.id, l.row_hash INTO last_row FROM @extschema@.audit_log l WHERE l.id < boundary ORDER BY l.id DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    DELETE FROM @extschema@.audit_log l WHERE l.id < boundary;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    INSERT INTO @extschema@.audit_anchors (last_purged_id, anchor_hash, rows_purged, purged_by)
    VALUES (last_row.id, last_row.row_hash, deleted, @extschema@._acting_role());
    RETURN deleted;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._purge_audit_prefix(timestamptz) FROM PUBLIC;

CREATE FUNCTION @extschema@.purge_audit(older_than interval) RETURNS bigint
    LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pg_mcp_purge_audit';
COMMENT ON FUNCTION @extschema@.purge_audit(interval) IS 'Retention: deletes the oldest audit rows (those before the first row newer than the given age), anchors the chain so verify_audit still passes, records the purge, and returns how many rows went; the only way rows leave the log';
REVOKE ALL ON FUNCTION @extschema@.purge_audit(interval) FROM PUBLIC;



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

-- Every catalog change an agent can see advances the catalog version, in the changing
-- transaction (a row, so readers see only committed changes); pg_mcp_bridge acts on a
-- notification only when the version moved, so that a NOTIFY on the channel (which any role
-- may send) changes nothing.
CREATE TABLE @extschema@.catalog_state (
    version bigint NOT NULL
);
INSERT INTO @extschema@.catalog_state VALUES (1);
REVOKE ALL ON @extschema@.catalog_state FROM PUBLIC;
COMMENT ON TABLE @extschema@.catalog_state IS 'One row: the catalog version (mcp.catalog_version())';

CREATE FUNCTION @extschema@.catalog_version() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT version FROM @extschema@.catalog_state;
    END;
COMMENT ON FUNCTION @extschema@.catalog_version() IS 'A number that changes whenever tools, grants, views, prompts or drafts an agent can see change: a client re-lists only when it moved';
REVOKE ALL ON FUNCTION @extschema@.catalog_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.catalog_version() TO PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._notify_tools_changed(tool text, change text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        UPDATE @extschema@.catalog_state SET version = version + 1;
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
                                   input_schema, output_schema, depends_on, max_rows, max_bytes, timeout,
                                   read_only, run_as, annotations, search_path, created_by, updated_by)
    VALUES (name, title, description, sql, compiled.compiled_sql, compiled.parameters,
            compiled.parameter_types, compiled.input_schema, compiled.output_schema, compiled.depends_on, max_rows,
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
    search_path text     DEFAULT NULL,
    max_cost    double precision DEFAULT NULL
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
        version = t.version + 1,
        updated_by = acting,
        updated_at = now()
    WHERE t.name = alter_tool.name;
    PERFORM @extschema@._notify_tools_changed(name, 'altered');
END
$$;
COMMENT ON FUNCTION @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision)
    IS 'Changes a tool: arguments left NULL keep their value (run_as => '''' runs as the calling role). Revalidates and bumps the version.';

CREATE FUNCTION @extschema@.drop_tool(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = drop_tool.name AND t.builtin) THEN
        RAISE EXCEPTION 'tool "%" is built in and cannot be dropped', name
            USING ERRCODE = 'feature_not_supported', HINT = 'Built-in tools are off until granted; revoke it instead.';
    END IF;
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
    INSERT INTO @extschema@.tool_grants (tool_name, role, granted_by)
    VALUES (tool, role::regrole, @extschema@._acting_role())
    ON CONFLICT ON CONSTRAINT tool_grants_pkey DO NOTHING;
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
    DELETE FROM @extschema@.tool_grants g
     WHERE g.tool_name = tool AND g.role = (SELECT r.oid FROM pg_roles r WHERE r.rolname = revoke_tool.role);
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

------------------------------------------------------------------------------------------
-- Audit records of calls served by hot standbys
--
-- A standby cannot write mcp.audit_log: mcp.call_tool_stream there returns the call's audit
-- record with its result (_meta "pg-mcp/standby_audit"), and the client (pg_mcp_bridge) spools
-- it and forwards it here, on the primary. Each record has a random id; one already ingested
-- is skipped, so a client may resend after any failure.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.audit_forwarded (
    record_id    uuid PRIMARY KEY,
    ingested_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    ingested_by  name NOT NULL  -- the standby session's login
);
COMMENT ON TABLE @extschema@.audit_forwarded IS 'Ids of the standby-served calls'' audit records added to mcp.audit_log by mcp.ingest_standby_audit (a record is added once)';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_forwarded', '');
REVOKE ALL ON @extschema@.audit_forwarded FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_forwarded TO mcp_admin;

CREATE FUNCTION @extschema@._queue_forwarded_audit(record jsonb, queue boolean) RETURNS void
    LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_queue_forwarded_record';
CREATE FUNCTION @extschema@._await_forwarded_audit() RETURNS bigint
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_await_forwarded_audit';
REVOKE ALL ON FUNCTION @extschema@._queue_forwarded_audit(jsonb, boolean),
                       @extschema@._await_forwarded_audit() FROM PUBLIC;

CREATE FUNCTION @extschema@.ingest_standby_audit(records jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    added integer := 0;
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'this server is a hot standby; forward audit records to the primary'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    IF records IS NULL OR jsonb_typeof(records) <> 'array' THEN
        RAISE EXCEPTION 'records must be a JSON array of audit records' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every record is checked before any is queued (the queue is outside this transaction):
    -- two passes over the same records. Fields are mapped by name (mcp.audit_log's columns).
    FOR r IN SELECT x.value AS record FROM jsonb_array_elements(records) AS x LOOP
        PERFORM @extschema@._queue_forwarded_audit(r.record, false);
        -- The statuses of mcp.audit_log's CHECK constraint that a call can have.
        IF r.record->>'status' NOT IN ('ok', 'truncated', 'invalid_arguments', 'denied', 'not_found',
                                       'refused', 'error', 'timeout', 'cancelled', 'rate_limited') THEN
            RAISE EXCEPTION 'audit record % has an invalid status "%"', r.record->>'record_id', r.record->>'status'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    -- Each record once: not if the primary has it already (the audit writer notes its id in
    -- mcp.audit_forwarded in the transaction that writes its row), nor twice from one batch.
    FOR r IN SELECT DISTINCT ON ((x.value->>'record_id')::uuid) (x.value->>'record_id')::uuid AS id,
                    x.value AS record
               FROM jsonb_array_elements(records) AS x LOOP
        CONTINUE WHEN EXISTS (SELECT FROM @extschema@.audit_forwarded f WHERE f.record_id = r.id);
        PERFORM @extschema@._queue_forwarded_audit(r.record, true);
        added := added + 1;
    END LOOP;
    IF added > 0 THEN
        PERFORM @extschema@._await_forwarded_audit();  -- durable before the client drops its copy
    END IF;
    RETURN added;
END
$$;
COMMENT ON FUNCTION @extschema@.ingest_standby_audit(jsonb)
    IS 'Adds audit records of calls served by hot standbys (pg_mcp_bridge forwards them) to mcp.audit_log, durably, each once; returns how many were new';
REVOKE ALL ON FUNCTION @extschema@.ingest_standby_audit(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.ingest_standby_audit(jsonb) TO mcp_audit_forwarder;

------------------------------------------------------------------------------------------
-- Principals (members of mcp_admin, and the extension owner)
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._check_principal_role(role name) RETURNS regrole
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    SELECT oid, rolsuper INTO r FROM pg_roles WHERE rolname = role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" does not exist', role
            USING ERRCODE = 'undefined_object', HINT = 'Create the agent''s role first: each principal is one role.';
    END IF;
    IF r.rolsuper THEN
        RAISE EXCEPTION 'role "%" is a superuser and cannot be an agent principal', role
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Whoever sets a role's principal context, or issues tokens that act as it, must be able
    -- to act as that role already (as run_as requires).
    IF NOT pg_has_role(@extschema@._acting_role(), r.oid, 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" cannot manage principal role "%": it is not a member of it',
                        @extschema@._acting_role(), role
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A superuser can GRANT the agent role to the administrator, or do it.';
    END IF;
    RETURN r.oid::regrole;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_principal_role(name) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_context(context jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF context IS NOT NULL AND jsonb_typeof(context) <> 'object' THEN
        RAISE EXCEPTION 'principal context must be a JSON object, got %', jsonb_typeof(context)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: {"tenant_id": "11111111-1111-4111-8111-111111111111"}';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_context(jsonb) FROM PUBLIC;

CREATE FUNCTION @extschema@.create_principal(name text, role name, context jsonb DEFAULT '{}',
                                             description text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    role_oid regrole;
    acting name := @extschema@._acting_role();
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,128}$' THEN
        RAISE EXCEPTION 'invalid principal name "%"', name
            USING ERRCODE = 'invalid_name', DETAIL = 'Principal names are 1 to 128 characters from A-Z, a-z, 0-9, underscore, hyphen and dot.';
    END IF;
    role_oid := @extschema@._check_principal_role(role);
    PERFORM @extschema@._check_context(context);
    IF EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = create_principal.name) THEN
        RAISE EXCEPTION 'principal "%" already exists', name USING ERRCODE = 'duplicate_object';
    END IF;
    IF EXISTS (SELECT FROM @extschema@.principals p WHERE p.role = role_oid) THEN
        RAISE EXCEPTION 'role "%" already belongs to principal "%"', role,
                        (SELECT p.name FROM @extschema@.principals p WHERE p.role = role_oid)
            USING ERRCODE = 'unique_violation',
                  HINT = 'A role identifies exactly one principal; create one role per agent identity.';
    END IF;
    INSERT INTO @extschema@.principals (name, role, context, description, created_by, updated_by)
    VALUES (name, role_oid, coalesce(context, '{}'), description, acting, acting);
END
$$;
COMMENT ON FUNCTION @extschema@.create_principal(text, name, jsonb, text)
    IS 'Makes a role an agent principal with context values (e.g. {"tenant_id": ...}) that tools bind to parameters declared {"from_principal": "tenant_id"}';

CREATE FUNCTION @extschema@.alter_principal(name text, context jsonb DEFAULT NULL, description text DEFAULT NULL,
                                            role name DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    role_oid regrole;
BEGIN
    IF NOT EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = alter_principal.name) THEN
        RAISE EXCEPTION 'principal "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM @extschema@._check_context(context);
    IF role IS NOT NULL THEN
        role_oid := @extschema@._check_principal_role(role);
    END IF;
    UPDATE @extschema@.principals p SET
        context = coalesce(alter_principal.context, p.context),
        description = coalesce(alter_principal.description, p.description),
        role = coalesce(role_oid, p.role),
        updated_by = @extschema@._acting_role(),
        updated_at = now()
    WHERE p.name = alter_principal.name;
END
$$;
COMMENT ON FUNCTION @extschema@.alter_principal(text, jsonb, text, name)
    IS 'Changes a principal''s context (replaced as a whole), description or role; NULL keeps a value';

CREATE FUNCTION @extschema@.drop_principal(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.principals p WHERE p.name = drop_principal.name;
    IF NOT FOUND AND NOT if_exists THEN
        RAISE EXCEPTION 'principal "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_principal(text, boolean) IS 'Removes a principal; tools that bind its context then refuse its role';

REVOKE ALL ON FUNCTION
    @extschema@.create_principal(text, name, jsonb, text),
    @extschema@.alter_principal(text, jsonb, text, name),
    @extschema@.drop_principal(text, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_principal(text, name, jsonb, text),
    @extschema@.alter_principal(text, jsonb, text, name),
    @extschema@.drop_principal(text, boolean)
    TO mcp_admin;

------------------------------------------------------------------------------------------
-- Bearer tokens (members of mcp_admin, and the extension owner)
--
-- A token lets a network agent act as a principal through a shared bridge login: the bridge
-- sends the token's SHA-256 (never the token) with each call, and mcp.assume_principal sets
-- the principal's role for that call's transaction only (SET LOCAL ROLE), which PostgreSQL
-- allows only if the bridge's login role is a member of it. Only hashes are stored: a token
-- is shown once, when it is created.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.principal_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal    text NOT NULL REFERENCES @extschema@.principals (name) ON UPDATE CASCADE ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    hint         text NOT NULL,
    description  text,
    created_by   name NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz,
    revoked_by   name,
    revoked_at   timestamptz
);
COMMENT ON TABLE @extschema@.principal_tokens IS 'Bearer tokens of principals, stored as SHA-256 hashes; see mcp.tokens';
COMMENT ON COLUMN @extschema@.principal_tokens.hint IS 'The token''s first characters, to tell tokens apart in logs and lists';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.principal_tokens', '');
REVOKE ALL ON @extschema@.principal_tokens FROM PUBLIC;

CREATE VIEW @extschema@.tokens AS
    SELECT t.id, t.principal, t.hint, t.description, t.created_by, t.created_at, t.expires_at,
           t.revoked_by, t.revoked_at,
           CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
                WHEN t.expires_at <= pg_catalog.now() THEN 'expired'
                ELSE 'active' END AS status
      FROM @extschema@.principal_tokens t;
COMMENT ON VIEW @extschema@.tokens IS 'Bearer tokens (without their hashes) and whether each is active, expired or revoked';
REVOKE ALL ON @extschema@.tokens FROM PUBLIC;
GRANT SELECT ON @extschema@.tokens TO mcp_admin;

CREATE FUNCTION @extschema@.create_token(principal text, description text DEFAULT NULL,
                                         expires_at timestamptz DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    token text;
BEGIN
    IF NOT EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = create_token.principal) THEN
        RAISE EXCEPTION 'principal "%" does not exist', principal
            USING ERRCODE = 'undefined_object', HINT = 'Create it first with mcp.create_principal.';
    END IF;
    -- A token acts as the principal's role: only who can already act as it may issue one.
    PERFORM @extschema@._check_principal_role(
        (SELECT r.rolname FROM @extschema@.principals p JOIN pg_roles r ON r.oid = p.role
          WHERE p.name = create_token.principal));
    IF expires_at IS NOT NULL AND expires_at <= now() THEN
        RAISE EXCEPTION 'expires_at must be in the future' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example: now() + interval ''90 days''; NULL for a token that does not expire.';
    END IF;
    -- 32 bytes from the server's strong random source (two version 4 UUIDs: 244 random bits),
    -- base64url-encoded.
    token := 'pgmcp_' || translate(encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64'), '+/=', '-_');
    INSERT INTO @extschema@.principal_tokens (principal, token_sha256, hint, description, created_by, expires_at)
    VALUES (create_token.principal, sha256(convert_to(token, 'UTF8')), left(token, 10), description,
            @extschema@._acting_role(), expires_at);
    RETURN token;
END
$$;
COMMENT ON FUNCTION @extschema@.create_token(text, text, timestamptz)
    IS 'Creates a bearer token for a principal and returns it; it is shown only this once (only its hash is stored)';

CREATE FUNCTION @extschema@.revoke_token(id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE @extschema@.principal_tokens t SET revoked_at = now(), revoked_by = @extschema@._acting_role()
     WHERE t.id = revoke_token.id AND t.revoked_at IS NULL;
    IF NOT FOUND AND NOT EXISTS (SELECT FROM @extschema@.principal_tokens t WHERE t.id = revoke_token.id) THEN
        RAISE EXCEPTION 'token % does not exist', id USING ERRCODE = 'undefined_object', HINT = 'See mcp.tokens.';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.revoke_token(bigint) IS 'Revokes a token (by its id in mcp.tokens): its next call is refused';

CREATE FUNCTION @extschema@.revoke_tokens(principal text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH revoked AS (
        UPDATE @extschema@.principal_tokens t SET revoked_at = now(), revoked_by = @extschema@._acting_role()
         WHERE t.principal = revoke_tokens.principal AND t.revoked_at IS NULL
        RETURNING 1)
    SELECT count(*) FROM revoked;
END;
COMMENT ON FUNCTION @extschema@.revoke_tokens(text) IS 'Revokes every active token of a principal; returns how many';

REVOKE ALL ON FUNCTION
    @extschema@.create_token(text, text, timestamptz),
    @extschema@.revoke_token(bigint),
    @extschema@.revoke_tokens(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_token(text, text, timestamptz),
    @extschema@.revoke_token(bigint),
    @extschema@.revoke_tokens(text)
    TO mcp_admin;

-- Not SECURITY DEFINER: a role can only be set outside one, and PostgreSQL then checks that
-- the session's login role is a member of the principal's role (the token lookup itself runs
-- as the function's owner).
CREATE FUNCTION @extschema@.assume_principal(token_sha256 bytea) RETURNS text
    LANGUAGE C CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_assume_principal';
COMMENT ON FUNCTION @extschema@.assume_principal(bytea)
    IS 'For bridges serving many agents over one login: given the SHA-256 of a bearer token, sets the role of the token''s principal until the end of the current transaction (SET LOCAL ROLE) and returns the principal''s name';

------------------------------------------------------------------------------------------
-- Sandboxed views (members of mcp_admin, and the extension owner)
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.sandbox_view_versions (
    view_name    text NOT NULL,
    version      integer NOT NULL,
    change       text NOT NULL CHECK (change IN ('created', 'altered', 'dropped')),
    source       text NOT NULL,
    columns      text[] NOT NULL,
    pii_columns  text[] NOT NULL DEFAULT '{}',
    row_filter   text,
    description  text,
    definition   text NOT NULL,
    changed_by   name NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (view_name, version)
);
COMMENT ON TABLE @extschema@.sandbox_view_versions IS 'Every version of every sandboxed view (created, altered, dropped): definition, who, when';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.sandbox_view_versions', '');
REVOKE ALL ON @extschema@.sandbox_view_versions FROM PUBLIC;
GRANT SELECT ON @extschema@.sandbox_view_versions TO mcp_admin;

CREATE VIEW @extschema@.sandbox_views AS
    SELECT DISTINCT ON (v.view_name) v.view_name AS name, v.version, v.source, v.columns, v.pii_columns,
           v.row_filter, v.description, v.changed_by, v.changed_at,
           CASE WHEN v.change <> 'dropped' THEN pg_catalog.to_regclass(v.view_name) END AS view
      FROM @extschema@.sandbox_view_versions v
     ORDER BY v.view_name, v.version DESC;
COMMENT ON VIEW @extschema@.sandbox_views IS 'The current version of each sandboxed view (dropped ones have view = NULL)';
REVOKE ALL ON @extschema@.sandbox_views FROM PUBLIC;
GRANT SELECT ON @extschema@.sandbox_views TO mcp_admin;

-- Runs one CREATE VIEW statement as the given role (refusing any other text).
CREATE FUNCTION @extschema@._create_view_as(definition text, role name) RETURNS void
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'pg_mcp_create_view_as';
REVOKE ALL ON FUNCTION @extschema@._create_view_as(text, name) FROM PUBLIC;

-- Checks a sandboxed view's definition and returns the SQL that creates it.
CREATE FUNCTION @extschema@._sandbox_view_sql(view_name text, source text, columns text[], pii_columns text[],
                                              row_filter text, acting name) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    source_oid regclass;
    parts text[];
    col text;
BEGIN
    parts := parse_ident(view_name);
    IF cardinality(parts) <> 2 THEN
        RAISE EXCEPTION 'sandboxed view name "%" must be schema-qualified', view_name
            USING ERRCODE = 'invalid_name', HINT = 'For example: app.customer_support_view.';
    END IF;
    source_oid := to_regclass(source);
    IF source_oid IS NULL THEN
        RAISE EXCEPTION 'source relation "%" does not exist', source USING ERRCODE = 'undefined_table';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = source_oid) NOT IN ('r', 'v', 'm', 'p', 'f') THEN
        RAISE EXCEPTION '"%" is not a table or view', source USING ERRCODE = 'wrong_object_type';
    END IF;
    IF columns IS NULL OR cardinality(columns) = 0 THEN
        RAISE EXCEPTION 'a sandboxed view needs at least one column'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'List the columns agents may see: columns => ARRAY[''id'', ''name''].';
    END IF;
    IF (SELECT count(DISTINCT c) FROM unnest(columns) c) <> cardinality(columns) THEN
        RAISE EXCEPTION 'a column is listed twice' USING ERRCODE = 'duplicate_column';
    END IF;
    FOREACH col IN ARRAY columns LOOP
        IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = source_oid AND attname = col
                          AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" does not exist in "%"', col, source USING ERRCODE = 'undefined_column';
        END IF;
        IF NOT has_column_privilege(acting, source_oid, col, 'SELECT') THEN
            RAISE EXCEPTION 'role "%" cannot read column "%" of "%"', acting, col, source
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A sandboxed view reads its source with the rights of the role that creates it.';
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM unnest(coalesce(pii_columns, '{}')) p WHERE p <> ALL (columns)) THEN
        RAISE EXCEPTION 'pii_columns must be among the view''s columns' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN format('CREATE VIEW %I.%I WITH (security_barrier) AS SELECT %s FROM %s%s',
                  parts[1], parts[2],
                  (SELECT string_agg(format('%I', c), ', ' ORDER BY o) FROM unnest(columns) WITH ORDINALITY AS u(c, o)),
                  source_oid::text,
                  CASE WHEN row_filter IS NULL OR btrim(row_filter) = '' THEN ''
                       ELSE ' WHERE (' || row_filter || ')' END);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._sandbox_view_sql(text, text, text[], text[], text, name) FROM PUBLIC;

-- Creates the view from its SQL as the acting role's object; comments its columns (PII marked).
CREATE FUNCTION @extschema@._build_sandbox_view(view_name text, definition text, source text, pii_columns text[],
                                                description text, acting name) RETURNS regclass
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    view_oid regclass;
    col record;
BEGIN
    BEGIN
        -- Created by the acting role (CREATE on the schema, its rights on the source), and
        -- only if the text is exactly one CREATE VIEW: nothing in row_filter can run as the
        -- extension owner.
        PERFORM @extschema@._create_view_as(definition, acting);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'sandboxed view "%" cannot be created: %', view_name, SQLERRM
            USING ERRCODE = SQLSTATE,
                  HINT = 'The view is created by your role (CREATE on its schema, SELECT on the source''s columns); the row filter is one SQL condition on the source''s columns.';
    END;
    view_oid := to_regclass(view_name);
    EXECUTE format('COMMENT ON VIEW %s IS %L', view_oid, coalesce(description, 'Sandboxed view of ' || source));
    FOR col IN SELECT a.attname, col_description(to_regclass(source), s.attnum) AS comment
                 FROM pg_attribute a
                 JOIN pg_attribute s ON s.attrelid = to_regclass(source) AND s.attname = a.attname
                WHERE a.attrelid = view_oid AND a.attnum > 0 LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', view_oid, col.attname,
                       nullif(concat_ws(' ', col.comment, CASE WHEN col.attname = ANY (pii_columns) THEN '(PII)' END), ''));
    END LOOP;
    RETURN view_oid;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._build_sandbox_view(text, text, text, text[], text, name) FROM PUBLIC;

CREATE FUNCTION @extschema@.create_sandbox_view(name text, source regclass, columns text[], row_filter text DEFAULT NULL,
                                                description text DEFAULT NULL, pii_columns text[] DEFAULT '{}')
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acting name := @extschema@._acting_role();
    definition text;
    view_oid regclass;
    next_version integer;
BEGIN
    definition := @extschema@._sandbox_view_sql(name, source::text, columns, pii_columns, row_filter, acting);
    IF to_regclass(name) IS NOT NULL THEN
        RAISE EXCEPTION 'relation "%" already exists', name USING ERRCODE = 'duplicate_table';
    END IF;
    view_oid := @extschema@._build_sandbox_view(name, definition, source::text, pii_columns, description, acting);
    SELECT coalesce(max(v.version), 0) + 1 INTO next_version
      FROM @extschema@.sandbox_view_versions v WHERE v.view_name = create_sandbox_view.name;
    INSERT INTO @extschema@.sandbox_view_versions (view_name, version, change, source, columns, pii_columns,
                                                    row_filter, description, definition, changed_by)
    VALUES (name, next_version, 'created', source::text, columns, coalesce(pii_columns, '{}'),
            row_filter, description, definition, acting);
    RETURN view_oid;
END
$$;
COMMENT ON FUNCTION @extschema@.create_sandbox_view(text, regclass, text[], text, text, text[])
    IS 'Creates a security_barrier view exposing only the listed columns of source and the rows passing row_filter, owned by the caller; grant SELECT on it (not on the source) to the roles tools run as';

CREATE FUNCTION @extschema@.alter_sandbox_view(name text, columns text[] DEFAULT NULL, row_filter text DEFAULT NULL,
                                               description text DEFAULT NULL, pii_columns text[] DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acting name := @extschema@._acting_role();
    current @extschema@.sandbox_views;
    old_oid regclass;
    new_oid regclass;
    definition text;
    saved_grants text[];
    statement text;
    tool record;
    new_columns text[];
    new_filter text;
    new_pii text[];
BEGIN
    SELECT * INTO current FROM @extschema@.sandbox_views v WHERE v.name = alter_sandbox_view.name;
    IF NOT FOUND OR current.view IS NULL THEN
        RAISE EXCEPTION 'sandboxed view "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    old_oid := current.view;
    IF NOT pg_has_role(acting, (SELECT relowner FROM pg_class WHERE oid = old_oid), 'USAGE') THEN
        RAISE EXCEPTION 'role "%" does not own sandboxed view "%"', acting, name USING ERRCODE = 'insufficient_privilege';
    END IF;
    new_columns := coalesce(columns, current.columns);
    -- row_filter => '' removes the filter.
    new_filter := CASE WHEN row_filter IS NULL THEN current.row_filter WHEN btrim(row_filter) = '' THEN NULL ELSE row_filter END;
    new_pii := coalesce(pii_columns, ARRAY(SELECT p FROM unnest(current.pii_columns) p WHERE p = ANY (new_columns)));
    definition := @extschema@._sandbox_view_sql(name, current.source, new_columns, new_pii, new_filter, acting);
    -- Recreate (the columns may change), keeping the privileges granted on the view.
    SELECT coalesce(array_agg(a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
                              || ':' || coalesce(r.rolname, '')), '{}')
      INTO saved_grants
      FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE c.oid = old_oid AND a.grantee <> c.relowner;
    EXECUTE format('DROP VIEW %s', old_oid);
    new_oid := @extschema@._build_sandbox_view(name, definition, current.source, new_pii,
                                               coalesce(description, current.description), acting);
    FOREACH statement IN ARRAY saved_grants LOOP  -- "privilege[*]:grantee" ('' = PUBLIC)
        EXECUTE format('GRANT %s ON %s TO %s%s', rtrim(split_part(statement, ':', 1), '*'), new_oid,
                       CASE WHEN substr(statement, strpos(statement, ':') + 1) = '' THEN 'PUBLIC'
                            ELSE quote_ident(substr(statement, strpos(statement, ':') + 1)) END,
                       CASE WHEN split_part(statement, ':', 1) LIKE '%*' THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    -- Tools reading the view must still work with the new version.
    FOR tool IN SELECT t.* FROM @extschema@.tools t WHERE old_oid = ANY (t.depends_on) LOOP
        BEGIN
            UPDATE @extschema@.tools t SET depends_on = (
                SELECT c.depends_on FROM @extschema@._compile_tool(tool.sql, tool.parameters, tool.search_path,
                                                                    tool.read_only, coalesce(tool.run_as, acting)) c)
             WHERE t.name = tool.name;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'tool "%" would break: %', tool.name, SQLERRM
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Alter or drop the tool first, or keep the columns it uses.';
        END;
    END LOOP;
    INSERT INTO @extschema@.sandbox_view_versions (view_name, version, change, source, columns, pii_columns,
                                                    row_filter, description, definition, changed_by)
    VALUES (name, current.version + 1, 'altered', current.source, new_columns, new_pii, new_filter,
            coalesce(description, current.description), definition, acting);
    RETURN new_oid;
END
$$;
COMMENT ON FUNCTION @extschema@.alter_sandbox_view(text, text[], text, text, text[])
    IS 'Changes a sandboxed view''s columns, row filter (an empty string removes it), description or PII marks as a new version; keeps its grants and refuses a change that breaks a tool';

CREATE FUNCTION @extschema@.drop_sandbox_view(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current @extschema@.sandbox_views;
    dependents text;
BEGIN
    SELECT * INTO current FROM @extschema@.sandbox_views v WHERE v.name = drop_sandbox_view.name;
    IF NOT FOUND OR current.view IS NULL THEN
        RAISE EXCEPTION 'sandboxed view "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role(@extschema@._acting_role(), (SELECT relowner FROM pg_class WHERE oid = current.view), 'USAGE') THEN
        RAISE EXCEPTION 'role "%" does not own sandboxed view "%"', @extschema@._acting_role(), name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT string_agg(format('"%s"', t.name), ', ' ORDER BY t.name) INTO dependents
      FROM @extschema@.tools t WHERE current.view = ANY (t.depends_on);
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'sandboxed view "%" is used by tools %', name, dependents
            USING ERRCODE = 'dependent_objects_still_exist', HINT = 'Drop or alter those tools first.';
    END IF;
    EXECUTE format('DROP VIEW %s', current.view);
    INSERT INTO @extschema@.sandbox_view_versions (view_name, version, change, source, columns, pii_columns,
                                                    row_filter, description, definition, changed_by)
    VALUES (name, current.version + 1, 'dropped', current.source, current.columns, current.pii_columns,
            current.row_filter, current.description, '', @extschema@._acting_role());
END
$$;
COMMENT ON FUNCTION @extschema@.drop_sandbox_view(text) IS 'Drops a sandboxed view (refused while a tool reads it); its history stays';

CREATE FUNCTION @extschema@.sandbox_view_diff(name text, from_version integer, to_version integer)
RETURNS TABLE (aspect text, before text, after text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH a AS (SELECT * FROM @extschema@.sandbox_view_versions v WHERE v.view_name = sandbox_view_diff.name AND v.version = from_version),
         b AS (SELECT * FROM @extschema@.sandbox_view_versions v WHERE v.view_name = sandbox_view_diff.name AND v.version = to_version)
    SELECT 'column removed', c, NULL FROM a, unnest(a.columns) c WHERE c <> ALL (coalesce((SELECT b.columns FROM b), '{}'))
    UNION ALL
    SELECT 'column added', NULL, c FROM b, unnest(b.columns) c WHERE c <> ALL (coalesce((SELECT a.columns FROM a), '{}'))
    UNION ALL
    SELECT 'pii unmarked', c, NULL FROM a, unnest(a.pii_columns) c WHERE c <> ALL (coalesce((SELECT b.pii_columns FROM b), '{}'))
    UNION ALL
    SELECT 'pii marked', NULL, c FROM b, unnest(b.pii_columns) c WHERE c <> ALL (coalesce((SELECT a.pii_columns FROM a), '{}'))
    UNION ALL
    SELECT 'row filter', a.row_filter, b.row_filter FROM a, b WHERE a.row_filter IS DISTINCT FROM b.row_filter
    UNION ALL
    SELECT 'description', a.description, b.description FROM a, b WHERE a.description IS DISTINCT FROM b.description
    UNION ALL
    SELECT 'change', a.change, b.change FROM a, b WHERE b.change = 'dropped';
END;
COMMENT ON FUNCTION @extschema@.sandbox_view_diff(text, integer, integer) IS 'What changed between two versions of a sandboxed view: columns, PII marks, row filter, description';

REVOKE ALL ON FUNCTION
    @extschema@.create_sandbox_view(text, regclass, text[], text, text, text[]),
    @extschema@.alter_sandbox_view(text, text[], text, text, text[]),
    @extschema@.drop_sandbox_view(text),
    @extschema@.sandbox_view_diff(text, integer, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_sandbox_view(text, regclass, text[], text, text, text[]),
    @extschema@.alter_sandbox_view(text, text[], text, text, text[]),
    @extschema@.drop_sandbox_view(text),
    @extschema@.sandbox_view_diff(text, integer, integer)
    TO mcp_admin;

CREATE FUNCTION @extschema@.create_tool_from_view(view regclass, lookup_columns text[], name text DEFAULT NULL,
                                                  description text DEFAULT NULL, max_rows integer DEFAULT 20,
                                                  run_as name DEFAULT NULL, columns text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    view_oid regclass := view;
    tool_name text;
    params jsonb := '[]';
    conditions text[] := '{}';
    col text;
    attr record;
    param jsonb;
    output_columns text;
BEGIN
    IF view_oid IS NULL THEN
        RAISE EXCEPTION 'relation "%" does not exist', view USING ERRCODE = 'undefined_table';
    END IF;
    IF lookup_columns IS NULL OR cardinality(lookup_columns) = 0 THEN
        RAISE EXCEPTION 'a tool from a view needs at least one lookup column'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Agents look rows up by these columns, e.g. lookup_columns => ARRAY[''email''].';
    END IF;
    FOREACH col IN ARRAY lookup_columns LOOP
        SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) AS type_name,
               col_description(view_oid, a.attnum) AS comment
          INTO attr
          FROM pg_attribute a WHERE a.attrelid = view_oid AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" does not exist in "%"', col, view USING ERRCODE = 'undefined_column';
        END IF;
        IF col !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'column "%" cannot be a parameter name', col
                USING ERRCODE = 'invalid_name', HINT = 'Lookup columns need plain identifier names; define the tool with mcp.create_tool.';
        END IF;
        param := CASE (SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
                         FROM pg_type t WHERE t.oid = attr.atttypid)::regtype
            WHEN 'text'::regtype THEN '{"type": "string"}'
            WHEN 'varchar'::regtype THEN '{"type": "string"}'
            WHEN 'bpchar'::regtype THEN '{"type": "string"}'
            WHEN 'int2'::regtype THEN '{"type": "integer"}'
            WHEN 'int4'::regtype THEN '{"type": "integer"}'
            WHEN 'int8'::regtype THEN '{"type": "integer"}'
            WHEN 'numeric'::regtype THEN '{"type": "number"}'
            WHEN 'float4'::regtype THEN '{"type": "number"}'
            WHEN 'float8'::regtype THEN '{"type": "number"}'
            WHEN 'bool'::regtype THEN '{"type": "boolean"}'
            WHEN 'uuid'::regtype THEN '{"type": "string", "format": "uuid"}'
            WHEN 'date'::regtype THEN '{"type": "string", "format": "date"}'
            WHEN 'timestamptz'::regtype THEN '{"type": "string", "format": "date-time"}'
            ELSE NULL END;
        IF param IS NULL THEN
            RAISE EXCEPTION 'column "%" has type %, which a lookup parameter cannot take', col, attr.type_name
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Use text, integer, numeric, boolean, uuid, date or timestamptz lookup columns, or write the tool with mcp.create_tool.';
        END IF;
        IF attr.type_name LIKE 'character varying(%)' THEN
            param := param || jsonb_build_object('maxLength', substring(attr.type_name FROM '\((\d+)\)')::int);
        END IF;
        params := params || jsonb_build_array(param || jsonb_build_object(
            'name', col, 'description', coalesce(attr.comment, format('Value of %s to look up', col))));
        conditions := conditions || format('%I = :%s', col, col);
    END LOOP;
    IF columns IS NOT NULL THEN
        FOREACH col IN ARRAY columns LOOP
            IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = view_oid AND a.attname = col AND a.attnum > 0) THEN
                RAISE EXCEPTION 'column "%" does not exist in "%"', col, view USING ERRCODE = 'undefined_column';
            END IF;
        END LOOP;
        output_columns := (SELECT string_agg(format('%I', c), ', ' ORDER BY o) FROM unnest(columns) WITH ORDINALITY u(c, o));
    ELSE
        output_columns := '*';
    END IF;
    tool_name := coalesce(name, 'get_' || (SELECT relname FROM pg_class WHERE oid = view_oid));
    PERFORM @extschema@.create_tool(
        name        => tool_name,
        sql         => format('SELECT %s FROM %s WHERE %s', output_columns, view_oid, array_to_string(conditions, ' AND ')),
        description => coalesce(description, obj_description(view_oid, 'pg_class'),
                                format('Rows of %s looked up by %s', view_oid, array_to_string(lookup_columns, ', '))),
        parameters  => params,
        max_rows    => max_rows,
        read_only   => true,
        run_as      => run_as,
        search_path => 'pg_catalog, pg_temp');
    RETURN tool_name;
END
$$;
COMMENT ON FUNCTION @extschema@.create_tool_from_view(regclass, text[], text, text, integer, name, text[])
    IS 'Generates a read-only tool over a (sandboxed) view with one parameter per lookup column, typed and described from the columns; review it with mcp.list_all_tools() and grant it';
REVOKE ALL ON FUNCTION @extschema@.create_tool_from_view(regclass, text[], text, text, integer, name, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.create_tool_from_view(regclass, text[], text, text, integer, name, text[]) TO mcp_admin;

------------------------------------------------------------------------------------------
-- Rate limits (members of mcp_admin, and the extension owner)
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.rate_limits (
    id              serial PRIMARY KEY,
    subject_kind    text NOT NULL CHECK (subject_kind IN ('role', 'principal')),
    subject         text NOT NULL,
    tool            text,
    max_calls       integer CHECK (max_calls > 0),
    per             interval NOT NULL DEFAULT '1 minute' CHECK (per > '0'::interval),
    max_concurrent  integer CHECK (max_concurrent > 0),
    created_by      name NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (max_calls IS NOT NULL OR max_concurrent IS NOT NULL)
);
CREATE UNIQUE INDEX rate_limits_subject_tool ON @extschema@.rate_limits (subject_kind, subject, coalesce(tool, ''));
COMMENT ON TABLE @extschema@.rate_limits IS 'Calls per window and concurrent calls allowed to a role or principal, for one tool or all (tool NULL); counted in shared memory across every connection';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rate_limits', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rate_limits_id_seq', '');
REVOKE ALL ON @extschema@.rate_limits FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.rate_limits_id_seq FROM PUBLIC;
GRANT SELECT ON @extschema@.rate_limits TO mcp_admin;

------------------------------------------------------------------------------------------
-- Cache invalidation: backends cache each (tool, caller) lookup — the tool's definition, the
-- grant check, the principal, the rate limits — until one of these tables (or a role or
-- membership) changes. Any change, through the API or not, invalidates every backend's cache
-- when it commits (and the changing session's own at its next command). Row triggers, enabled
-- ALWAYS, so that changes applied by logical replication (which fires row triggers only) and
-- under session_replication_role = replica invalidate too.
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._catalog_changed() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_catalog_changed';
REVOKE ALL ON FUNCTION @extschema@._catalog_changed() FROM PUBLIC;
CREATE TRIGGER tools_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.tools
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER tools_truncated AFTER TRUNCATE ON @extschema@.tools
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.tools ENABLE ALWAYS TRIGGER tools_changed, ENABLE ALWAYS TRIGGER tools_truncated;
CREATE TRIGGER tool_grants_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.tool_grants
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER tool_grants_truncated AFTER TRUNCATE ON @extschema@.tool_grants
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.tool_grants ENABLE ALWAYS TRIGGER tool_grants_changed, ENABLE ALWAYS TRIGGER tool_grants_truncated;
CREATE TRIGGER principals_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.principals
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER principals_truncated AFTER TRUNCATE ON @extschema@.principals
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.principals ENABLE ALWAYS TRIGGER principals_changed, ENABLE ALWAYS TRIGGER principals_truncated;
CREATE TRIGGER rate_limits_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.rate_limits
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER rate_limits_truncated AFTER TRUNCATE ON @extschema@.rate_limits
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.rate_limits ENABLE ALWAYS TRIGGER rate_limits_changed, ENABLE ALWAYS TRIGGER rate_limits_truncated;

CREATE FUNCTION @extschema@.set_rate_limit(subject text, tool text DEFAULT NULL, max_calls integer DEFAULT NULL,
                                           per interval DEFAULT '1 minute', max_concurrent integer DEFAULT NULL,
                                           subject_kind text DEFAULT 'role') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF subject_kind NOT IN ('role', 'principal') THEN
        RAISE EXCEPTION 'subject_kind must be role or principal, got %', subject_kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject_kind = 'role' AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = subject) THEN
        RAISE EXCEPTION 'role "%" does not exist', subject USING ERRCODE = 'undefined_object';
    END IF;
    IF subject_kind = 'principal' AND NOT EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = subject) THEN
        RAISE EXCEPTION 'principal "%" does not exist', subject USING ERRCODE = 'undefined_object';
    END IF;
    IF tool IS NOT NULL AND NOT EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = tool) THEN
        RAISE EXCEPTION 'tool "%" does not exist', tool USING ERRCODE = 'undefined_object';
    END IF;
    IF max_calls IS NULL AND max_concurrent IS NULL THEN
        RAISE EXCEPTION 'a rate limit needs max_calls or max_concurrent' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example: max_calls => 60, per => ''1 minute''.';
    END IF;
    IF max_calls <= 0 OR max_concurrent <= 0 OR per <= '0'::interval THEN
        RAISE EXCEPTION 'rate limits must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM @extschema@.rate_limits l
     WHERE l.subject_kind = set_rate_limit.subject_kind AND l.subject = set_rate_limit.subject
       AND coalesce(l.tool, '') = coalesce(set_rate_limit.tool, '');
    INSERT INTO @extschema@.rate_limits (subject_kind, subject, tool, max_calls, per, max_concurrent, created_by)
    VALUES (subject_kind, subject, tool, max_calls, per, max_concurrent, @extschema@._acting_role());
END
$$;
COMMENT ON FUNCTION @extschema@.set_rate_limit(text, text, integer, interval, integer, text)
    IS 'Limits a role (or principal) to max_calls per interval and/or max_concurrent calls, for one tool or all; replaces an existing limit for the same subject and tool';

CREATE FUNCTION @extschema@.drop_rate_limit(subject text, tool text DEFAULT NULL, subject_kind text DEFAULT 'role')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.rate_limits l
     WHERE l.subject_kind = drop_rate_limit.subject_kind AND l.subject = drop_rate_limit.subject
       AND coalesce(l.tool, '') = coalesce(drop_rate_limit.tool, '');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rate limit for % "%" and tool %', subject_kind, subject, coalesce(tool, '(all)')
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_rate_limit(text, text, text) IS 'Removes a rate limit';

CREATE FUNCTION @extschema@._rate_limit_counters(OUT limit_id integer, OUT window_start timestamptz,
                                                 OUT calls integer, OUT concurrent integer)
    RETURNS SETOF record LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_rate_limit_counters';
REVOKE ALL ON FUNCTION @extschema@._rate_limit_counters() FROM PUBLIC;

CREATE VIEW @extschema@.rate_limit_usage AS
    SELECT l.subject_kind, l.subject, coalesce(l.tool, '(all tools)') AS tool, l.max_calls, l.per,
           l.max_concurrent, c.window_start, coalesce(c.calls, 0) AS calls_in_window,
           coalesce(c.concurrent, 0) AS concurrent_now
      FROM @extschema@.rate_limits l
      LEFT JOIN @extschema@._rate_limit_counters() c ON c.limit_id = l.id
     ORDER BY l.subject_kind, l.subject, l.tool NULLS FIRST;
COMMENT ON VIEW @extschema@.rate_limit_usage IS 'Each rate limit with its current use (calls in the current window, calls running now)';
REVOKE ALL ON @extschema@.rate_limit_usage FROM PUBLIC;
GRANT SELECT ON @extschema@.rate_limit_usage TO mcp_admin;

REVOKE ALL ON FUNCTION @extschema@.set_rate_limit(text, text, integer, interval, integer, text),
                       @extschema@.drop_rate_limit(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_rate_limit(text, text, integer, interval, integer, text),
                          @extschema@.drop_rate_limit(text, text, text) TO mcp_admin;

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

-- Management is for mcp_admin members (and the owner), nobody else.
REVOKE ALL ON FUNCTION
    @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text),
    @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision),
    @extschema@.drop_tool(text, boolean),
    @extschema@.grant_tool(text, name),
    @extschema@.revoke_tool(text, name),
    @extschema@.list_all_tools()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text),
    @extschema@.alter_tool(text, text, text, jsonb, text, integer, integer, interval, boolean, name, jsonb, text, double precision),
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
                     JOIN pg_catalog.pg_roles r ON r.oid = g.role
                    WHERE g.tool_name = t.name
                      AND pg_catalog.pg_has_role(current_user, r.oid, 'USAGE'));
COMMENT ON VIEW @extschema@.granted_tools IS 'Tools the current role may call, as MCP tool definitions';
REVOKE ALL ON @extschema@.granted_tools FROM PUBLIC;
GRANT SELECT ON @extschema@.granted_tools TO PUBLIC;

-- The principal of the role executing the query (its name only; context stays with DBAs).
CREATE VIEW @extschema@.my_principal WITH (security_barrier) AS
    SELECT p.name FROM @extschema@.principals p
     WHERE p.role = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
COMMENT ON VIEW @extschema@.my_principal IS 'The principal of the current role, if any';
REVOKE ALL ON @extschema@.my_principal FROM PUBLIC;
GRANT SELECT ON @extschema@.my_principal TO PUBLIC;

CREATE FUNCTION @extschema@.current_principal() RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    RETURN (SELECT name FROM @extschema@.my_principal);
COMMENT ON FUNCTION @extschema@.current_principal() IS 'Name of the principal in effect (that of the current role), or NULL';

-- MCP resources: each sandboxed view the calling role can read, with its columns, their types
-- and comments, and what its row filter keeps, so that clients can show it to their model.
-- SECURITY DEFINER to read the sandbox catalog; _acting_role() is the caller's role.
-- pg-mcp://views/ and the view's name, percent-encoded (RFC 3986 unreserved characters stay).
CREATE FUNCTION @extschema@._resource_uri(view_name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
RETURN 'pg-mcp://views/' || (
    SELECT string_agg(CASE WHEN s.ch ~ '^[A-Za-z0-9._~-]$' THEN s.ch
                           ELSE upper(regexp_replace(encode(convert_to(s.ch, 'UTF8'), 'hex'), '(..)', '%\1', 'g')) END,
                      '' ORDER BY s.i)
      FROM regexp_split_to_table(view_name, '') WITH ORDINALITY AS s(ch, i));

CREATE FUNCTION @extschema@.list_resources() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'uri', @extschema@._resource_uri(v.name),
                   'name', v.name,
                   'title', 'View ' || v.name,
                   'description', coalesce(v.description, 'Sandboxed view ' || v.name)
                                  || ' (columns: ' || array_to_string(v.columns, ', ') || ')',
                   'mimeType', 'application/json') ORDER BY v.name COLLATE "C"), '[]')
          FROM @extschema@.sandbox_views v
         WHERE v.view IS NOT NULL
           AND has_table_privilege(@extschema@._acting_role(), v.view, 'SELECT'));
COMMENT ON FUNCTION @extschema@.list_resources() IS 'MCP resource definitions of the sandboxed views the calling role can read (uri pg-mcp://views/schema.view)';

CREATE FUNCTION @extschema@.read_resource(uri text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
    body jsonb;
BEGIN
    SELECT * INTO v FROM @extschema@.sandbox_views s
     WHERE uri = @extschema@._resource_uri(s.name) AND s.view IS NOT NULL;
    -- Unknown and unreadable look the same: names a role may not read stay hidden.
    IF NOT FOUND OR NOT has_table_privilege(@extschema@._acting_role(), v.view, 'SELECT') THEN
        RAISE EXCEPTION 'resource "%" not found', uri USING ERRCODE = 'undefined_object',
            HINT = 'Call resources/list to see the resources you can read.';
    END IF;
    body := jsonb_build_object(
        'view', v.name,
        'description', v.description,
        'columns', (SELECT jsonb_agg(jsonb_build_object(
                               'name', a.attname,
                               'type', format_type(a.atttypid, a.atttypmod),
                               'comment', col_description(a.attrelid, a.attnum),
                               'pii', a.attname = ANY (v.pii_columns))
                           ORDER BY a.attnum)
                      FROM pg_attribute a
                     WHERE a.attrelid = v.view AND a.attnum > 0 AND NOT a.attisdropped),
        'row_filter', v.row_filter,
        'rows', CASE WHEN v.row_filter IS NULL THEN 'every row of ' || v.source
                     ELSE 'the rows of ' || v.source || ' where ' || v.row_filter END,
        'version', v.version);
    RETURN jsonb_build_object('contents', jsonb_build_array(jsonb_build_object(
        'uri', uri, 'mimeType', 'application/json', 'text', body::text)));
END
$$;
COMMENT ON FUNCTION @extschema@.read_resource(text) IS 'An MCP resources/read result for a sandboxed view the calling role can read: its columns (name, type, comment, pii), row filter and source';

-- MCP prompts: for roles that may propose tools (mcp_tool_author), draft_tool gives a client's
-- model the rules for a good tool and the columns of the sandboxed views the role can read.
CREATE FUNCTION @extschema@.list_prompts() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN pg_has_role(@extschema@._acting_role(), 'mcp_tool_author', 'USAGE') THEN
    jsonb_build_array(jsonb_build_object(
        'name', 'draft_tool',
        'title', 'Draft a database tool',
        'description', 'Turns a request in plain words into a pg_mcp tool definition to submit with propose_tool: the rules for a good tool and the views you can read',
        'arguments', jsonb_build_array(jsonb_build_object(
            'name', 'request', 'description', 'What the tool should do, in plain words', 'required', true))))
    ELSE '[]'::jsonb END;
COMMENT ON FUNCTION @extschema@.list_prompts() IS 'MCP prompt definitions for the calling role (draft_tool for members of mcp_tool_author)';

CREATE FUNCTION @extschema@.get_prompt(name text, arguments jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acting name := @extschema@._acting_role();
    views text;
    request text := arguments ->> 'request';
BEGIN
    IF name IS DISTINCT FROM 'draft_tool' OR NOT pg_has_role(acting, 'mcp_tool_author', 'USAGE') THEN
        RAISE EXCEPTION 'prompt "%" not found', name USING ERRCODE = 'undefined_object';
    END IF;
    IF request IS NULL OR btrim(request) = '' THEN
        RAISE EXCEPTION 'prompt "draft_tool" needs the argument "request"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(format(E'- %s%s\n  rows: %s\n  columns: %s', v.name,
                             coalesce(': ' || v.description, ''),
                             CASE WHEN v.row_filter IS NULL THEN 'all of ' || v.source
                                  ELSE 'those of ' || v.source || ' where ' || v.row_filter END,
                             (SELECT string_agg(format('%s %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                                       CASE WHEN a.attname = ANY (v.pii_columns) THEN ' (PII)' ELSE '' END,
                                                       coalesce(' -- ' || nullif(col_description(a.attrelid, a.attnum), '(PII)'), '')),
                                                ', ' ORDER BY a.attnum)
                                FROM pg_attribute a
                               WHERE a.attrelid = v.view AND a.attnum > 0 AND NOT a.attisdropped)),
                      E'\n' ORDER BY v.name COLLATE "C")
      INTO views
      FROM @extschema@.sandbox_views v
     WHERE v.view IS NOT NULL AND has_table_privilege(acting, v.view, 'SELECT');
    RETURN jsonb_build_object(
        'description', 'Draft a pg_mcp tool for: ' || request,
        'messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', jsonb_build_object(
            'type', 'text',
            'text', format(E'Draft one database tool for this request:\n\n%s\n\n'
                           'Rules for a good tool:\n'
                           '- One SQL statement, reading the views listed below (schema-qualified names).\n'
                           '- Every input is a :name parameter, declared in "parameters" with a type (string, integer, number, boolean, or a format such as uuid, date, email) and a description; never put values into the SQL text.\n'
                           '- Return only the columns the request needs; leave out columns marked (PII) unless the request needs them.\n'
                           '- Keep results small: filter by the parameters, aggregate when counts or sums are asked for, and add ORDER BY and LIMIT for lists.\n'
                           '- Read only, unless the request is to change data.\n'
                           '- The description says what the tool returns and when to use it; the name is short, lowercase, with underscores.\n\n'
                           'Views you can read:\n%s\n\n'
                           'Submit it with the propose_tool tool: name, description, sql, parameters (the JSON array as text) and title. '
                           'A database administrator reviews it before anyone can call it.',
                           request, coalesce(views, '(none: ask the database administrator for access to a sandboxed view)'))))));
END
$$;
COMMENT ON FUNCTION @extschema@.get_prompt(text, jsonb) IS 'An MCP prompts/get result: draft_tool with the request, the rules for a good tool and the readable sandboxed views'' columns';

CREATE FUNCTION @extschema@.list_tools() RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    RETURN (SELECT coalesce(jsonb_agg(g.definition ORDER BY g.name COLLATE "C"), '[]')
              FROM @extschema@.granted_tools g);
COMMENT ON FUNCTION @extschema@.list_tools() IS 'MCP tool definitions of every tool granted to the calling role, ordered by name';

CREATE FUNCTION @extschema@.call_tool(name text, arguments jsonb DEFAULT '{}') RETURNS jsonb
    LANGUAGE C CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_call_tool';
COMMENT ON FUNCTION @extschema@.call_tool(text, jsonb) IS 'Calls a tool granted to the calling role with JSON arguments; returns an MCP CallToolResult and writes one audit row';

CREATE FUNCTION @extschema@.call_tool_stream(name text, arguments jsonb DEFAULT '{}',
                                             agent_name text DEFAULT NULL, client_info text DEFAULT NULL,
                                             request_id text DEFAULT NULL) RETURNS SETOF text
    LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 2 AS 'MODULE_PATHNAME', 'pg_mcp_call_tool_stream';
COMMENT ON FUNCTION @extschema@.call_tool_stream(text, jsonb, text, text, text) IS 'mcp.call_tool for clients that stream large results (pg_mcp_bridge): the first row is {"_meta":...,"isError":...}, the following rows, concatenated, are the CallToolResult''s other members. agent_name, client_info and request_id, when given, are recorded in the audit row instead of the pg_mcp.* settings';

------------------------------------------------------------------------------------------
-- Built-in tools: guarded free-form SQL, and the catalog of what the caller can read.
-- They are off until a DBA grants them; they run as the calling role.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.query_allowed_functions (
    function    regprocedure PRIMARY KEY,
    reason      text,
    allowed_by  name NOT NULL,
    allowed_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.query_allowed_functions IS 'Volatile functions the query tool may call anyway (the DBA''s allow-list)';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.query_allowed_functions', '');
REVOKE ALL ON @extschema@.query_allowed_functions FROM PUBLIC;
GRANT SELECT ON @extschema@.query_allowed_functions TO mcp_admin;

-- Asked by the query guard, which runs as the caller and cannot read the list itself.
CREATE FUNCTION @extschema@._query_function_allowed(function regprocedure) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT FROM @extschema@.query_allowed_functions a WHERE a.function = _query_function_allowed.function);
REVOKE ALL ON FUNCTION @extschema@._query_function_allowed(regprocedure) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._query_function_allowed(regprocedure) TO PUBLIC;

CREATE FUNCTION @extschema@.allow_query_function(function regprocedure, reason text DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO @extschema@.query_allowed_functions (function, reason, allowed_by)
    VALUES (function, reason, @extschema@._acting_role())
    ON CONFLICT (function) DO UPDATE SET reason = excluded.reason, allowed_by = excluded.allowed_by,
                                         allowed_at = excluded.allowed_at;
END;
COMMENT ON FUNCTION @extschema@.allow_query_function(regprocedure, text) IS 'Lets the query tool call a volatile function (e.g. a reviewed report function)';

CREATE FUNCTION @extschema@.disallow_query_function(function regprocedure) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    DELETE FROM @extschema@.query_allowed_functions a WHERE a.function = disallow_query_function.function;
END;
COMMENT ON FUNCTION @extschema@.disallow_query_function(regprocedure) IS 'Removes a function from the query tool''s allow-list';

REVOKE ALL ON FUNCTION @extschema@.allow_query_function(regprocedure, text),
                       @extschema@.disallow_query_function(regprocedure) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.allow_query_function(regprocedure, text),
                          @extschema@.disallow_query_function(regprocedure) TO mcp_admin;

-- Checks a query the way the query tool would, without running it (for DBAs and tests).
CREATE FUNCTION @extschema@.check_query(sql text) RETURNS text
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'pg_mcp_check_query';
COMMENT ON FUNCTION @extschema@.check_query(text) IS 'Runs the query tool''s guard on sql as the current role: raises the refusal (SQLSTATE MCP01) or returns ''ok''';

DO $$
DECLARE
    c record;
BEGIN
    -- query: the SQL text is its one parameter; the guard, not a prepared statement, checks it.
    SELECT * INTO c FROM @extschema@._compile_tool(
        'SELECT :sql::text AS sql', '[{"name": "sql", "type": "string", "minLength": 1, "maxLength": 100000, "description": "One read-only SQL query: SELECT, VALUES or EXPLAIN of a SELECT. Only immutable and stable functions; results are capped."}]',
        'pg_catalog, pg_temp', true, current_user);
    INSERT INTO @extschema@.tools (name, title, description, sql, compiled_sql, parameters, parameter_types,
                                   input_schema, output_schema, max_rows, timeout, kind, builtin,
                                   search_path, created_by, updated_by)
    VALUES ('query', 'Read-only SQL query',
            'Runs one read-only SQL query (SELECT, VALUES or EXPLAIN of a SELECT) as your database role and '
            'returns its rows. Only tables and views your role can read are reachable; functions that change '
            'state or wait are refused, as are queries whose estimated cost is too high. Use list_objects and '
            'describe_object to see what exists.',
            '-- guarded free-form SQL (see mcp.check_query)', '', c.parameters, c.parameter_types, c.input_schema,
            '{"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}}, "row_count": {"type": "integer"}, "truncated": {"type": "boolean"}, "truncated_by": {"type": "string", "enum": ["max_rows", "max_bytes"]}}, "required": ["rows", "row_count", "truncated"]}',
            100, '10 seconds', 'query', true, 'pg_catalog, pg_temp', current_user, current_user);
END
$$;

SELECT @extschema@.create_tool(
    name        => 'list_objects',
    title       => 'Tables and views you can read',
    description => 'Lists the tables and views your database role can read, with their comments; optionally of one schema.',
    sql         => $q$SELECT n.nspname AS schema, c.relname AS name,
                         CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                        WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
                         obj_description(c.oid, 'pg_class') AS description
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'mcp') AND n.nspname !~ '^pg_'
                     AND (:schema::text IS NULL OR n.nspname = :schema)
                     AND has_schema_privilege(n.oid, 'USAGE')
                     AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT'))
                   ORDER BY 1, 2$q$,
    parameters  => '[{"name": "schema", "type": "string", "required": false, "maxLength": 63, "description": "Only this schema"}]',
    max_rows    => 500,
    timeout     => '5 seconds',
    search_path => 'pg_catalog, pg_temp');

SELECT @extschema@.create_tool(
    name        => 'describe_object',
    title       => 'Columns of a table or view',
    description => 'Describes a table or view your role can read: each column you can read, its type, whether it can be null, and its comment.',
    sql         => $q$SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
                         NOT a.attnotnull AS nullable, col_description(a.attrelid, a.attnum) AS description
                    FROM pg_attribute a
                   WHERE a.attrelid = to_regclass(:name)
                     AND a.attnum > 0 AND NOT a.attisdropped
                     AND has_schema_privilege((SELECT c.relnamespace FROM pg_class c WHERE c.oid = a.attrelid), 'USAGE')
                     AND has_column_privilege(a.attrelid, a.attnum, 'SELECT')
                   ORDER BY a.attnum$q$,
    parameters  => '[{"name": "name", "type": "string", "minLength": 1, "maxLength": 200, "description": "Table or view name, schema-qualified if needed (e.g. app.customer_support_view)"}]',
    max_rows    => 500,
    timeout     => '5 seconds',
    search_path => 'pg_catalog, pg_temp');

UPDATE @extschema@.tools SET builtin = true WHERE name IN ('list_objects', 'describe_object');

------------------------------------------------------------------------------------------
-- Materialized views refreshed on a schedule by the extension's background worker (one per
-- database, "pg_mcp refresher"), e.g. pre-aggregated views that analytics tools read cheaply.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.refresh_schedule (
    view             regclass PRIMARY KEY,
    refresh_every    interval NOT NULL CHECK (refresh_every >= interval '1 second'),
    next_refresh_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_refresh_at  timestamptz,
    last_duration_ms double precision,
    last_concurrent  boolean,
    last_error       text,
    scheduled_by     name NOT NULL,
    scheduled_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.refresh_schedule IS 'Materialized views the pg_mcp refresher keeps fresh; see mcp.refresh_status';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.refresh_schedule', '');
REVOKE ALL ON @extschema@.refresh_schedule FROM PUBLIC;

CREATE VIEW @extschema@.refresh_status AS
    SELECT r.view, r.refresh_every, r.last_refresh_at, r.last_duration_ms, r.last_concurrent,
           r.last_error, r.next_refresh_at,
           EXISTS (SELECT FROM pg_stat_activity a WHERE a.backend_type = 'pg_mcp refresher'
                     AND a.datname = current_database()) AS refresher_running
      FROM @extschema@.refresh_schedule r;
COMMENT ON VIEW @extschema@.refresh_status IS 'Each scheduled materialized view: last refresh, its duration, whether it was concurrent, the last error, the next refresh, and whether the refresher runs';
REVOKE ALL ON @extschema@.refresh_status FROM PUBLIC;
GRANT SELECT ON @extschema@.refresh_status TO mcp_admin;

CREATE FUNCTION @extschema@._start_refresher() RETURNS boolean
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'pg_mcp_start_refresher';
REVOKE ALL ON FUNCTION @extschema@._start_refresher() FROM PUBLIC;

CREATE FUNCTION @extschema@.start_refresher() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_stat_activity a WHERE a.backend_type = 'pg_mcp refresher'
                 AND a.datname = current_database()) THEN
        RETURN false;
    END IF;
    RETURN @extschema@._start_refresher();
END
$$;
COMMENT ON FUNCTION @extschema@.start_refresher() IS 'Starts this database''s refresher if it is not running (mcp.schedule_refresh does; after a server restart, run it once or schedule again)';

CREATE FUNCTION @extschema@.schedule_refresh(view regclass, refresh_every interval) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = view) IS DISTINCT FROM 'm' THEN
        RAISE EXCEPTION '% is not a materialized view', view USING ERRCODE = 'wrong_object_type',
            HINT = 'CREATE MATERIALIZED VIEW ... AS SELECT ...; then schedule it.';
    END IF;
    IF NOT pg_has_role(@extschema@._acting_role(), (SELECT c.relowner FROM pg_class c WHERE c.oid = view), 'MEMBER') THEN
        RAISE EXCEPTION 'only the owner of % may schedule its refresh', view USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF refresh_every IS NULL OR refresh_every < interval '1 second' THEN
        RAISE EXCEPTION 'refresh_every must be at least 1 second' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.refresh_schedule AS s (view, refresh_every, scheduled_by)
    VALUES (schedule_refresh.view, schedule_refresh.refresh_every, @extschema@._acting_role())
    ON CONFLICT ON CONSTRAINT refresh_schedule_pkey DO UPDATE SET refresh_every = excluded.refresh_every, next_refresh_at = now(),
                                     scheduled_by = excluded.scheduled_by, scheduled_at = now();
    PERFORM @extschema@.start_refresher();
END
$$;
COMMENT ON FUNCTION @extschema@.schedule_refresh(regclass, interval) IS 'Has the refresher refresh a materialized view every refresh_every (concurrently when it has a unique index and data), starting now';

CREATE FUNCTION @extschema@.unschedule_refresh(view regclass) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    DELETE FROM @extschema@.refresh_schedule r WHERE r.view = unschedule_refresh.view;
END;
COMMENT ON FUNCTION @extschema@.unschedule_refresh(regclass) IS 'Stops refreshing a materialized view';
REVOKE ALL ON FUNCTION @extschema@.start_refresher(), @extschema@.schedule_refresh(regclass, interval),
                       @extschema@.unschedule_refresh(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.start_refresher(), @extschema@.schedule_refresh(regclass, interval),
                          @extschema@.unschedule_refresh(regclass) TO mcp_admin;

-- For the refresher: refreshes the most overdue view, if any (1), else returns 0. A failure
-- is recorded, not raised.
CREATE FUNCTION @extschema@._refresh_due() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    started timestamptz;
    concurrent boolean;
BEGIN
    SELECT * INTO r FROM @extschema@.refresh_schedule s
     WHERE s.next_refresh_at <= clock_timestamp()
     ORDER BY s.next_refresh_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    started := clock_timestamp();
    concurrent := (SELECT c.relispopulated FROM pg_class c WHERE c.oid = r.view)
                  AND EXISTS (SELECT FROM pg_index i WHERE i.indrelid = r.view AND i.indisunique
                                AND i.indpred IS NULL AND i.indexprs IS NULL);
    BEGIN
        EXECUTE format('REFRESH MATERIALIZED VIEW %s %s', CASE WHEN concurrent THEN 'CONCURRENTLY' ELSE '' END, r.view);
        UPDATE @extschema@.refresh_schedule s SET last_refresh_at = started, last_error = NULL,
               last_duration_ms = extract(epoch FROM clock_timestamp() - started) * 1000,
               last_concurrent = concurrent,
               next_refresh_at = greatest(s.next_refresh_at + s.refresh_every, clock_timestamp())
         WHERE s.view = r.view;
    EXCEPTION WHEN OTHERS THEN
        UPDATE @extschema@.refresh_schedule s SET last_error = SQLERRM,
               next_refresh_at = clock_timestamp() + s.refresh_every
         WHERE s.view = r.view;
    END;
    RETURN 1;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._refresh_due() FROM PUBLIC;

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

------------------------------------------------------------------------------------------
-- Monitoring views over the audit log (for mcp_admin)
------------------------------------------------------------------------------------------

CREATE VIEW @extschema@.tool_stats_hourly AS
    SELECT date_trunc('hour', a.called_at) AS hour, a.tool_name AS tool,
           count(*) AS calls,
           count(*) FILTER (WHERE a.status IN ('error', 'refused')) AS errors,
           count(*) FILTER (WHERE a.status IN ('denied', 'not_found')) AS denials,
           count(*) FILTER (WHERE a.status = 'invalid_arguments') AS invalid_arguments,
           count(*) FILTER (WHERE a.status = 'timeout') AS timeouts,
           count(*) FILTER (WHERE a.status = 'rate_limited') AS rate_limited,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.rows_returned) AS p50_rows,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.rows_returned) AS p95_rows
      FROM @extschema@.audit_log a
     WHERE a.status <> 'purge'
     GROUP BY 1, 2;
COMMENT ON VIEW @extschema@.tool_stats_hourly IS 'Per tool and hour: calls, errors, denials, timeouts, rate-limited calls, p50/p95 duration and rows';

CREATE VIEW @extschema@.tool_costs AS
    SELECT a.tool_name AS tool,
           count(*) AS calls,
           round(sum(a.plan_cost)::numeric, 2) AS total_cost,
           round(avg(a.plan_cost)::numeric, 2) AS mean_cost,
           round(max(a.plan_cost)::numeric, 2) AS max_cost,
           sum(a.shared_blks_hit + a.shared_blks_read) AS buffers,
           sum(a.shared_blks_read) AS buffers_read,
           coalesce(sum(a.rows_returned), 0) AS rows_returned,
           round(sum(a.shared_blks_hit + a.shared_blks_read)::numeric
                 / greatest(coalesce(sum(a.rows_returned), 0), 1), 2) AS buffers_per_row,
           round(avg(a.duration_ms)::numeric, 3) AS mean_ms,
           max(a.called_at) AS last_call
      FROM @extschema@.audit_log a
     WHERE a.shared_blks_hit IS NOT NULL
     GROUP BY a.tool_name
     ORDER BY sum(a.plan_cost) DESC NULLS LAST, a.tool_name;
COMMENT ON VIEW @extschema@.tool_costs IS 'Which tools cost the database most: per tool over the calls whose SQL ran, the planner''s estimated cost (total, mean, max), shared buffers touched and read from disk, rows returned, and buffers touched per row returned (high: the tool reads far more than it returns), most expensive first';

-- Tool review: what to remove, fix or narrow. One row per tool over the calls of the last
-- `since`; the verdict is the first that applies.
CREATE FUNCTION @extschema@.review_tools(since interval DEFAULT '30 days')
RETURNS TABLE (tool text, builtin boolean, created_at timestamptz, updated_at timestamptz,
               calls bigint, last_call timestamptz, error_rate double precision,
               denial_rate double precision, timeout_rate double precision, p95_ms double precision,
               timeout_ms double precision, view_changed boolean, changed_views text[],
               granted_to text[], never_called_by text[], verdict text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH recent AS (
        SELECT a.tool_name, a.caller_role, a.status, a.duration_ms, a.called_at
          FROM @extschema@.audit_log a
         WHERE a.called_at > now() - review_tools.since AND a.status <> 'purge'),
    stats AS (
        SELECT r.tool_name, count(*) AS calls, max(r.called_at) AS last_call,
               (count(*) FILTER (WHERE r.status IN ('error', 'refused')))::double precision / count(*) AS error_rate,
               (count(*) FILTER (WHERE r.status = 'denied'))::double precision / count(*) AS denial_rate,
               (count(*) FILTER (WHERE r.status = 'timeout'))::double precision / count(*) AS timeout_rate,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms) AS p95_ms
          FROM recent r GROUP BY r.tool_name),
    callers AS (
        SELECT DISTINCT r.tool_name, o.oid AS role
          FROM recent r JOIN pg_roles o ON o.rolname = r.caller_role
         WHERE r.status NOT IN ('denied', 'not_found')),
    grants AS (
        SELECT g.tool_name,
               array_agg(g.role::text ORDER BY g.role::text) AS granted_to,
               array_agg(g.role::text ORDER BY g.role::text) FILTER (
                   WHERE NOT EXISTS (SELECT FROM callers c
                                      WHERE c.tool_name = g.tool_name
                                        AND pg_has_role(c.role, g.role::oid, 'USAGE'))) AS never_called_by
          FROM @extschema@.tool_grants g GROUP BY g.tool_name),
    views AS (
        SELECT t.name AS tool_name,
               array_agg(v.name ORDER BY v.name) FILTER (WHERE v.changed_at > t.updated_at) AS changed_views
          FROM @extschema@.tools t
          JOIN @extschema@.sandbox_views v ON v.name = ANY (SELECT d::text FROM unnest(t.depends_on) d)
                                           OR v.view = ANY (t.depends_on)
         GROUP BY t.name)
    SELECT t.name, t.builtin, t.created_at, t.updated_at,
           coalesce(s.calls, 0), s.last_call, s.error_rate, s.denial_rate, s.timeout_rate, s.p95_ms,
           extract(epoch FROM t.timeout) * 1000,
           coalesce(cardinality(v.changed_views) > 0, false), coalesce(v.changed_views, '{}'),
           coalesce(g.granted_to, '{}'), coalesce(g.never_called_by, '{}'),
           CASE
               WHEN coalesce(s.calls, 0) = 0 THEN 'unused'
               WHEN s.calls >= 3 AND s.error_rate + s.timeout_rate >= 0.2 THEN 'failing'
               WHEN s.p95_ms > 0.5 * extract(epoch FROM t.timeout) * 1000 OR s.timeout_rate > 0 THEN 'slow'
               WHEN cardinality(g.never_called_by) > 0 THEN 'over-granted'
               ELSE 'fine'
           END
      FROM @extschema@.tools t
      LEFT JOIN stats s ON s.tool_name = t.name
      LEFT JOIN grants g ON g.tool_name = t.name
      LEFT JOIN views v ON v.tool_name = t.name
     ORDER BY t.name COLLATE "C";
END;
COMMENT ON FUNCTION @extschema@.review_tools(interval) IS 'Every tool with its calls since the given interval ago, last call, error/denial/timeout rates, p95 duration, whether a sandboxed view under it changed after the tool, roles granted it that never called it, and a verdict: unused, failing (>= 20 % errors or timeouts), slow (p95 over half its timeout, or timeouts), over-granted, fine';

CREATE VIEW @extschema@.tool_review AS SELECT * FROM @extschema@.review_tools('30 days');
COMMENT ON VIEW @extschema@.tool_review IS 'mcp.review_tools over the last 30 days: what to remove (unused), fix (failing, slow, view changed) or narrow (over-granted)';

CREATE FUNCTION @extschema@.drop_unused_tools(older_than interval, dry_run boolean DEFAULT true)
RETURNS TABLE (tool text, created_at timestamptz, last_call timestamptz, dropped boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example: mcp.drop_unused_tools(interval ''90 days'')';
    END IF;
    FOR r IN SELECT rv.tool, rv.created_at, rv.last_call FROM @extschema@.review_tools(older_than) rv
              WHERE rv.calls = 0 AND NOT rv.builtin AND rv.created_at < now() - older_than
              ORDER BY rv.tool COLLATE "C"
    LOOP
        IF NOT dry_run THEN
            PERFORM @extschema@.drop_tool(r.tool);
        END IF;
        tool := r.tool;
        created_at := r.created_at;
        last_call := (SELECT max(a.called_at) FROM @extschema@.audit_log a WHERE a.tool_name = r.tool);
        dropped := NOT dry_run;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_unused_tools(interval, boolean)
    IS 'Tools (not built in) older than older_than and not called within it; dry_run (the default) only lists them, otherwise they are dropped with mcp.drop_tool';

REVOKE ALL ON FUNCTION @extschema@.review_tools(interval), @extschema@.drop_unused_tools(interval, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.review_tools(interval), @extschema@.drop_unused_tools(interval, boolean) TO mcp_admin;
REVOKE ALL ON @extschema@.tool_review FROM PUBLIC;
GRANT SELECT ON @extschema@.tool_review TO mcp_admin;

-- Advice: explain each tool's plan with representative arguments and say what would make it
-- cheaper. Arguments are the latest successful call's (from the audit log), else a typed
-- sample per parameter; they are bound as parameters of the EXPLAIN (up to 16), never written
-- into its text.
CREATE FUNCTION @extschema@._sample_argument(parameter jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN CASE
    WHEN parameter ? 'default' THEN parameter->>'default'
    WHEN parameter ? 'enum' THEN parameter->'enum'->>0
    WHEN parameter->>'format' = 'uuid' THEN '00000000-0000-4000-8000-000000000000'
    WHEN parameter->>'format' = 'date' THEN '2024-01-01'
    WHEN parameter->>'format' = 'date-time' THEN '2024-01-01T00:00:00Z'
    WHEN parameter->>'format' = 'email' THEN 'someone@example.com'
    WHEN parameter->>'type' IN ('integer', 'number') THEN '1'
    WHEN parameter->>'type' = 'boolean' THEN 'true'
    WHEN parameter->>'type' = 'array' THEN '{}'
    ELSE 'a' END;
REVOKE ALL ON FUNCTION @extschema@._sample_argument(jsonb) FROM PUBLIC;

CREATE FUNCTION @extschema@.advise_tool(name text, min_rows real DEFAULT 10000)
RETURNS TABLE (tool text, finding text, detail text, suggestion text,
               cost_before double precision, cost_after double precision)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller name := current_user;
    t record;
    sample jsonb;
    sample_source text;
    v text[] := array_fill(NULL::text, ARRAY[16]);
    q text;
    plan jsonb;
    node jsonb;
    rel regclass;
    cols text[];
    hypo_schema name;
    hypo_oid oid;
    after_plan jsonb;
    stats record;
    i integer;
BEGIN
    SELECT * INTO t FROM @extschema@.tools x WHERE x.name = advise_tool.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tool "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    tool := t.name;
    -- What the audit log says about its use.
    SELECT count(*) AS calls, max(a.rows_returned) AS max_rows_returned,
           sum(a.shared_blks_hit + a.shared_blks_read) AS buffers, sum(a.rows_returned) AS rows
      INTO stats FROM @extschema@.audit_log a
     WHERE a.tool_name = t.name AND a.status IN ('ok', 'truncated');
    IF stats.calls >= 5 AND stats.buffers > 100 * greatest(stats.rows, 1) THEN
        finding := 'reads_far_more_than_returns';
        detail := format('%s calls touched %s shared buffers to return %s rows (%s buffers per row)',
                         stats.calls, stats.buffers, coalesce(stats.rows, 0),
                         round(stats.buffers::numeric / greatest(stats.rows, 1), 1));
        suggestion := 'Filter in an index, or pre-aggregate into a (materialized) sandboxed view';
        cost_before := NULL; cost_after := NULL;
        RETURN NEXT;
    END IF;
    IF stats.calls >= 5 AND t.max_rows > 10 * greatest(stats.max_rows_returned, 1) THEN
        finding := 'cap_far_above_use';
        detail := format('max_rows is %s but no call returned more than %s rows', t.max_rows,
                         coalesce(stats.max_rows_returned, 0));
        suggestion := format('SELECT mcp.alter_tool(%L, max_rows => %s);', t.name,
                             greatest(2 * coalesce(stats.max_rows_returned, 1), 1));
        RETURN NEXT;
    END IF;
    IF t.kind <> 'sql' THEN
        RETURN;  -- free-form SQL has no plan of its own
    END IF;
    IF cardinality(t.parameter_types) > 16 THEN
        finding := 'not_explained'; detail := 'more than 16 parameters'; suggestion := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT a.arguments INTO sample FROM @extschema@.audit_log a
     WHERE a.tool_name = t.name AND a.status IN ('ok', 'truncated') AND a.arguments IS NOT NULL
       AND NOT EXISTS (SELECT FROM jsonb_each(a.arguments) e WHERE e.value = '"[redacted]"')
     ORDER BY a.id DESC LIMIT 1;
    sample_source := CASE WHEN sample IS NULL THEN 'typed samples' ELSE 'the latest call''s arguments' END;
    FOR i IN 1 .. cardinality(t.parameter_types) LOOP
        v[i] := coalesce(sample ->> (t.parameters -> (i - 1) ->> 'name'),
                         @extschema@._sample_argument(t.parameters -> (i - 1)));
        IF jsonb_typeof(sample -> (t.parameters -> (i - 1) ->> 'name')) = 'array' THEN
            v[i] := translate(sample ->> (t.parameters -> (i - 1) ->> 'name'), '[]', '{}');
        END IF;
    END LOOP;
    -- Each $n becomes ($n::text::type): the values are passed as text parameters.
    q := t.compiled_sql;
    FOR i IN REVERSE cardinality(t.parameter_types) .. 1 LOOP
        q := regexp_replace(q, '\$' || i || '(?![0-9])',
                            format('($%s::text::%s)', i, t.parameter_types[i]), 'g');
    END LOOP;
    -- Not SECURITY DEFINER: the plan is made as the tool's run_as role, which the DBA must be
    -- able to act as, with the tool's search_path; planning can run immutable functions, so
    -- never as a more privileged role than the tool's own (a tool without run_as runs as its
    -- callers: it is not explained).
    IF t.run_as IS NULL OR NOT pg_has_role(caller, t.run_as, 'MEMBER') THEN
        finding := 'not_explained';
        detail := CASE WHEN t.run_as IS NULL
                       THEN 'the tool runs as its caller: its plan is made only as a run_as role'
                       ELSE format('role %I cannot act as the tool''s run_as role %I', caller, t.run_as) END;
        suggestion := NULL; cost_before := NULL; cost_after := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM set_config('role', t.run_as, true);
    PERFORM set_config('search_path', t.search_path, true);
    EXECUTE 'EXPLAIN (FORMAT JSON, VERBOSE) ' || q INTO plan
        USING v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16];
    SELECT e.extnamespace::regnamespace::name INTO hypo_schema FROM pg_extension e WHERE e.extname = 'hypopg';
    FOR node IN SELECT n FROM jsonb_path_query(plan, 'strict $.**?(@."Node Type" == "Seq Scan")') n LOOP
        CONTINUE WHEN node->>'Schema' IS NULL OR node->>'Relation Name' IS NULL;
        rel := to_regclass(format('%I.%I', node->>'Schema', node->>'Relation Name'));
        CONTINUE WHEN rel IS NULL OR node->>'Filter' IS NULL
                      OR (SELECT c.reltuples FROM pg_class c WHERE c.oid = rel) < min_rows;
        SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND (node->>'Filter') ~ ('(^|[^A-Za-z0-9_"])"?' || regexp_replace(a.attname, '([^A-Za-z0-9_])', '\\\1', 'g') || '"?($|[^A-Za-z0-9_"])');
        CONTINUE WHEN cols IS NULL;
        finding := 'seq_scan';
        detail := format('sequential scan of %s (about %s rows) filtering %s, with %s',
                         rel, (SELECT c.reltuples::bigint FROM pg_class c WHERE c.oid = rel),
                         node->>'Filter', sample_source);
        suggestion := format('CREATE INDEX ON %s (%s);', rel, array_to_string(cols, ', '));
        cost_before := (plan -> 0 -> 'Plan' ->> 'Total Cost')::double precision;
        cost_after := NULL;
        IF hypo_schema IS NOT NULL THEN
            -- What the planner would do with that index (hypothetical: nothing is built).
            hypo_oid := NULL;
            BEGIN
                EXECUTE format('SELECT indexrelid FROM %I.hypopg_create_index($1)', hypo_schema)
                    INTO hypo_oid USING suggestion;
                EXECUTE 'EXPLAIN (FORMAT JSON, VERBOSE) ' || q INTO after_plan
                    USING v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16];
                cost_after := (after_plan -> 0 -> 'Plan' ->> 'Total Cost')::double precision;
            EXCEPTION WHEN OTHERS THEN
                cost_after := NULL;  -- hypopg could not say; the suggestion stands
            END;
            -- Hypothetical indexes outlive a rollback: always dropped here.
            IF hypo_oid IS NOT NULL THEN
                EXECUTE format('SELECT %I.hypopg_drop_index($1)', hypo_schema) USING hypo_oid;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM set_config('role', caller, true);
END
$$;
COMMENT ON FUNCTION @extschema@.advise_tool(text, real)
    IS 'Advice for one tool: sequential scans over relations of at least min_rows rows on the columns its SQL filters by, with a ready CREATE INDEX and, when hypopg is installed, the plan''s estimated cost before and after that hypothetical index; tools reading far more buffers than the rows they return; row caps far above any result';

CREATE FUNCTION @extschema@.advise_tools(min_rows real DEFAULT 10000)
RETURNS TABLE (tool text, finding text, detail text, suggestion text,
               cost_before double precision, cost_after double precision)
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.* FROM @extschema@.tools t, @extschema@.advise_tool(t.name, advise_tools.min_rows) a
     WHERE NOT t.builtin ORDER BY t.name COLLATE "C";
END;
COMMENT ON FUNCTION @extschema@.advise_tools(real) IS 'mcp.advise_tool for every tool that is not built in';
REVOKE ALL ON FUNCTION @extschema@.advise_tool(text, real), @extschema@.advise_tools(real) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.advise_tool(text, real), @extschema@.advise_tools(real) TO mcp_admin;

CREATE VIEW @extschema@.principal_stats_hourly AS
    SELECT date_trunc('hour', a.called_at) AS hour, coalesce(a.principal, a.caller_role::text) AS principal,
           a.principal IS NOT NULL AS is_principal,
           count(*) AS calls,
           count(*) FILTER (WHERE a.status IN ('error', 'refused')) AS errors,
           count(*) FILTER (WHERE a.status IN ('denied', 'not_found')) AS denials,
           count(*) FILTER (WHERE a.status = 'timeout') AS timeouts,
           count(*) FILTER (WHERE a.status = 'rate_limited') AS rate_limited,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.rows_returned) AS p50_rows,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.rows_returned) AS p95_rows
      FROM @extschema@.audit_log a
     WHERE a.status <> 'purge'
     GROUP BY 1, 2, 3;
COMMENT ON VIEW @extschema@.principal_stats_hourly IS 'Per principal (or calling role, when it has none) and hour: calls, errors, denials, timeouts, p50/p95 duration and rows';

-- The auditor's question: which agents accessed PII (columns marked in sandboxed views read by
-- the tools they called), and when.
CREATE VIEW @extschema@.pii_access AS
    SELECT a.called_at, a.caller_role, a.principal, a.agent_name, a.tool_name, a.rows_returned,
           array_agg(DISTINCT v.name || '.' || p ORDER BY v.name || '.' || p) AS pii_columns, a.id AS audit_id
      FROM @extschema@.audit_log a
      JOIN @extschema@.tools t ON t.name = a.tool_name
      JOIN @extschema@.sandbox_views v ON v.view = ANY (t.depends_on)
      CROSS JOIN LATERAL unnest(v.pii_columns) p
     WHERE a.status IN ('ok', 'truncated') AND coalesce(a.rows_returned, 0) > 0
     GROUP BY a.id;
COMMENT ON VIEW @extschema@.pii_access IS 'Successful calls that returned rows from tools reading PII-marked columns of sandboxed views; e.g. WHERE called_at > now() - interval ''30 days''';

REVOKE ALL ON @extschema@.tool_stats_hourly, @extschema@.principal_stats_hourly, @extschema@.pii_access, @extschema@.tool_costs FROM PUBLIC;
GRANT SELECT ON @extschema@.tool_stats_hourly, @extschema@.principal_stats_hourly, @extschema@.pii_access, @extschema@.tool_costs TO mcp_admin;
