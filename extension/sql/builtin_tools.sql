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
