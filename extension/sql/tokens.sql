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
