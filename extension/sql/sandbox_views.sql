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

--@include sandbox_views_view.sql
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

--@include sandbox_view_changes.sql

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
