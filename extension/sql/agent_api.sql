------------------------------------------------------------------------------------------
-- Agent API
------------------------------------------------------------------------------------------

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

CREATE FUNCTION @extschema@.call_tool(name text, arguments jsonb DEFAULT '{}') RETURNS jsonb
    LANGUAGE C CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_call_tool';
COMMENT ON FUNCTION @extschema@.call_tool(text, jsonb) IS 'Calls a tool granted to the calling role with JSON arguments; returns an MCP CallToolResult and writes one audit row';

CREATE FUNCTION @extschema@.call_tool_stream(name text, arguments jsonb DEFAULT '{}',
                                             agent_name text DEFAULT NULL, client_info text DEFAULT NULL,
                                             request_id text DEFAULT NULL) RETURNS SETOF text
    LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 2 AS 'MODULE_PATHNAME', 'pg_mcp_call_tool_stream';
COMMENT ON FUNCTION @extschema@.call_tool_stream(text, jsonb, text, text, text) IS 'mcp.call_tool for clients that stream large results (pg_mcp_bridge): the first row is {"_meta":...,"isError":...}, the following rows, concatenated, are the CallToolResult''s other members. agent_name, client_info and request_id, when given, are recorded in the audit row instead of the pg_mcp.* settings';

--@include deferred_audit.sql
--@include serve_call.sql
