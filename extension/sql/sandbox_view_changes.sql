-- Changing and dropping a sandboxed view (install and upgrade share this text). Both drop the
-- view, which waits for every transaction that read it: the wait is bounded, so an agent's
-- open transaction cannot queue the change and, behind it, every other agent's calls.

CREATE OR REPLACE FUNCTION @extschema@._drop_view_in_use(view_oid regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    previous text := current_setting('lock_timeout');
    holders text;
BEGIN
    -- The session's own lock_timeout when it is shorter; otherwise 5 s.
    IF previous IN ('0', '') OR previous::interval > interval '5 s' THEN
        PERFORM set_config('lock_timeout', '5s', true);
    END IF;
    BEGIN
        EXECUTE format('DROP VIEW %s', view_oid);
    EXCEPTION WHEN lock_not_available THEN
        -- Sessions of this database (pid and role, as pg_stat_activity shows anyone), and
        -- prepared transactions, which hold locks without a session.
        SELECT string_agg(CASE WHEN l.pid IS NULL THEN format('a prepared transaction (%s)', l.virtualtransaction)
                               ELSE format('pid %s (%s)', l.pid, coalesce(a.usename::text, '?')) END,
                          ', ' ORDER BY l.pid) INTO holders
          FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'relation' AND l.relation = view_oid AND l.granted
           AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
           AND l.pid IS DISTINCT FROM pg_backend_pid();
        PERFORM set_config('lock_timeout', previous, true);
        RAISE EXCEPTION 'sandboxed view "%" is in use by open transactions; not changed', view_oid
            USING ERRCODE = 'lock_not_available',
                  DETAIL = 'Holding it: ' || coalesce(holders, 'none now (they ended meanwhile)') || '.',
                  HINT = 'Try again when they end, or end them: SELECT pg_terminate_backend(pid) (ROLLBACK PREPARED for a prepared transaction). While a change waits (5 s, or the session''s lock_timeout if shorter), calls that read the view wait behind it.';
    END;
    PERFORM set_config('lock_timeout', previous, true);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._drop_view_in_use(regclass) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@.alter_sandbox_view(name text, columns text[] DEFAULT NULL, row_filter text DEFAULT NULL,
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
    PERFORM @extschema@._drop_view_in_use(old_oid);
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

CREATE OR REPLACE FUNCTION @extschema@.drop_sandbox_view(name text) RETURNS void
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
    PERFORM @extschema@._drop_view_in_use(current.view);
    INSERT INTO @extschema@.sandbox_view_versions (view_name, version, change, source, columns, pii_columns,
                                                    row_filter, description, definition, changed_by)
    VALUES (name, current.version + 1, 'dropped', current.source, current.columns, current.pii_columns,
            current.row_filter, current.description, '', @extschema@._acting_role());
END
$$;
COMMENT ON FUNCTION @extschema@.drop_sandbox_view(text) IS 'Drops a sandboxed view (refused while a tool reads it); its history stays';
