------------------------------------------------------------------------------------------
-- Management API (members of mcp_admin, and the extension owner)
------------------------------------------------------------------------------------------

--@include tool_define.sql

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
