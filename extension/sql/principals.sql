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
