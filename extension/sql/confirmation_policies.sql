-- Confirmation required of every writing tool for a role (and its members) or a principal,
-- whatever each tool's own confirm setting (extension/src/tool_lookup.cpp reads it).
CREATE TABLE @extschema@.confirmation_policies (
    subject_kind text NOT NULL CHECK (subject_kind IN ('role', 'principal')),
    subject      text NOT NULL CHECK (length(subject) BETWEEN 1 AND 256),
    created_by   name NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (subject_kind, subject)
);
COMMENT ON TABLE @extschema@.confirmation_policies IS 'Roles (with their members) and principals whose calls of every writing tool a person confirms first, as with confirm => ''ask''';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.confirmation_policies', '');
REVOKE ALL ON @extschema@.confirmation_policies FROM PUBLIC;
GRANT SELECT ON @extschema@.confirmation_policies TO mcp_admin;
CREATE TRIGGER confirmation_policies_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.confirmation_policies
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER confirmation_policies_truncated AFTER TRUNCATE ON @extschema@.confirmation_policies
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.confirmation_policies ENABLE ALWAYS TRIGGER confirmation_policies_changed,
    ENABLE ALWAYS TRIGGER confirmation_policies_truncated;

CREATE FUNCTION @extschema@.require_confirmation(subject text, subject_kind text DEFAULT 'role') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF subject_kind IS NULL OR subject_kind NOT IN ('role', 'principal') THEN
        RAISE EXCEPTION 'subject_kind must be role or principal, got %', coalesce(quote_literal(subject_kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject_kind = 'role' AND NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = subject) THEN
        RAISE EXCEPTION 'role "%" does not exist', subject USING ERRCODE = 'undefined_object';
    END IF;
    IF subject_kind = 'principal' AND NOT EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = subject) THEN
        RAISE EXCEPTION 'principal "%" does not exist', subject
            USING ERRCODE = 'undefined_object', HINT = 'See mcp.principals.';
    END IF;
    INSERT INTO @extschema@.confirmation_policies (subject_kind, subject, created_by)
    VALUES (subject_kind, subject, @extschema@._acting_role()) ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION @extschema@.require_confirmation(text, text)
    IS 'A person confirms every call of a writing tool by this role (and its members) or principal, through the MCP client, before it runs';

CREATE FUNCTION @extschema@.drop_confirmation_requirement(subject text, subject_kind text DEFAULT 'role',
                                                          if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.confirmation_policies c
     WHERE c.subject_kind = drop_confirmation_requirement.subject_kind AND c.subject = drop_confirmation_requirement.subject;
    IF NOT FOUND AND NOT if_exists THEN
        RAISE EXCEPTION 'no confirmation is required of % "%"', subject_kind, subject
            USING ERRCODE = 'undefined_object', HINT = 'See mcp.confirmation_policies.';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_confirmation_requirement(text, text, boolean)
    IS 'Stops requiring a person''s confirmation of every writing tool for a role or principal (tools with confirm => ''ask'' still ask)';
REVOKE ALL ON FUNCTION @extschema@.require_confirmation(text, text),
                       @extschema@.drop_confirmation_requirement(text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.require_confirmation(text, text),
                          @extschema@.drop_confirmation_requirement(text, text, boolean) TO mcp_admin;
