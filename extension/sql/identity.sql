------------------------------------------------------------------------------------------
-- OAuth identities (members of mcp_admin, and the extension owner)
--
-- pg_mcp_bridge --auth oauth is an OAuth 2.1 resource server: it verifies each access token
-- (signature against the issuer's keys, issuer, audience, expiry, scopes) and hands its
-- verified claims to mcp.assume_identity in the call's own statement. Which issuers are
-- trusted, for which resource (audience), and how their claims map to a principal is decided
-- here. Only logins that are members of mcp_identity_verifier may vouch for claims.
------------------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_identity_verifier') THEN
        CREATE ROLE mcp_identity_verifier NOLOGIN;
        COMMENT ON ROLE mcp_identity_verifier IS 'Members (logins of pg_mcp_bridge --auth oauth) may vouch for the OAuth identities they verified: mcp.assume_identity';
    END IF;
END
$$;

CREATE TABLE @extschema@.identity_providers (
    issuer      text NOT NULL CHECK (issuer ~ '^https?://[^\s]+$' AND length(issuer) <= 1024),
    audience    text NOT NULL CHECK (audience ~ '^https?://[^\s]+$' AND length(audience) <= 1024),
    scopes      text[] NOT NULL DEFAULT '{}' CHECK (array_position(scopes, NULL) IS NULL),
    introspect  boolean NOT NULL DEFAULT false,
    token_audiences text[] CHECK (token_audiences IS NULL OR (cardinality(token_audiences) BETWEEN 1 AND 16
                                                             AND array_position(token_audiences, NULL) IS NULL)),
    metadata_url text CHECK (metadata_url ~ '^https?://[^\s]+$' AND length(metadata_url) <= 1024),
    enabled     boolean NOT NULL DEFAULT true,
    description text,
    created_by  name NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  name NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (issuer, audience)
);
COMMENT ON TABLE @extschema@.identity_providers IS 'OAuth authorization servers whose access tokens pg_mcp_bridge --auth oauth accepts: one row per issuer and resource (a bridge''s URL) it is trusted for';
COMMENT ON COLUMN @extschema@.identity_providers.issuer IS 'The issuer identifier, exactly as in its tokens'' "iss" claim and its metadata (RFC 8414 / OpenID Connect discovery)';
COMMENT ON COLUMN @extschema@.identity_providers.audience IS 'The protected resource: tokens must name it in "aud" (RFC 8707), and the bridge serving it (--oauth-resource) trusts this issuer';
COMMENT ON COLUMN @extschema@.identity_providers.scopes IS 'Scopes every access token must carry; fewer is refused with 403 insufficient_scope';
COMMENT ON COLUMN @extschema@.identity_providers.introspect IS 'Tokens that are not JWTs are checked by token introspection (RFC 7662) at the issuer''s introspection endpoint; one issuer per resource at most (an opaque token names no issuer: it is sent to that one only)';
COMMENT ON COLUMN @extschema@.identity_providers.token_audiences IS 'The values a token''s "aud" may hold to be for this resource, compared exactly (one is enough in an array, RFC 7519); NULL: the resource URL itself. Microsoft Entra v2.0 tokens carry the API''s application (client) ID, v1.0 tokens its application ID URI (api://...)';
COMMENT ON COLUMN @extschema@.identity_providers.metadata_url IS 'Where the issuer''s metadata document is when not at a standard location under the issuer URL (e.g. Entra v1.0: https://login.microsoftonline.com/TENANT/.well-known/openid-configuration); its "issuer" must still be the issuer, and its origin may serve the keys';
CREATE UNIQUE INDEX identity_providers_one_introspecting ON @extschema@.identity_providers (audience) WHERE introspect;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.identity_providers', '');
REVOKE ALL ON @extschema@.identity_providers FROM PUBLIC;
GRANT SELECT ON @extschema@.identity_providers TO mcp_admin;

CREATE TABLE @extschema@.identity_mappings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issuer      text NOT NULL,
    claim       text NOT NULL DEFAULT 'sub' CHECK (length(claim) BETWEEN 1 AND 256 AND claim !~ '\s'),
    value       text CHECK (length(value) <= 1024),
    principal   text NOT NULL REFERENCES @extschema@.principals (name) ON UPDATE CASCADE ON DELETE CASCADE,
    priority    integer NOT NULL DEFAULT 100,
    created_by  name NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE NULLS NOT DISTINCT (issuer, claim, value)
);
COMMENT ON TABLE @extschema@.identity_mappings IS 'How verified OAuth identities of an issuer (for every resource it is trusted for) become principals: the first matching mapping (by priority, then id) decides; an identity no mapping matches is refused. Dropping an issuer''s last identity provider drops its mappings.';
COMMENT ON COLUMN @extschema@.identity_mappings.claim IS 'The claim compared: "sub" for one person, or e.g. "groups", "tenant", "client_id"';
COMMENT ON COLUMN @extschema@.identity_mappings.value IS 'Matches a string claim equal to it, or an array claim holding it; NULL matches every identity of the issuer';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.identity_mappings', '');
REVOKE ALL ON @extschema@.identity_mappings FROM PUBLIC;
GRANT SELECT ON @extschema@.identity_mappings TO mcp_admin;

CREATE FUNCTION @extschema@._check_url(what text, url text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF url IS NULL OR url !~ '^https?://[^\s/?#]+(/[^\s?#]*)?$' OR length(url) > 1024 THEN
        RAISE EXCEPTION 'invalid % "%"', what, url
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An absolute http(s) URL without query or fragment, e.g. https://login.example.com/realms/main (plain http only for a loopback address).';
    END IF;
    IF url ~ '^http://' AND url !~ '^http://(localhost|127\.[0-9.]+|\[::1\])(:[0-9]+)?(/|$)' THEN
        RAISE EXCEPTION 'invalid % "%": plain http is allowed only on the loopback', what, url
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use https://.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_url(text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_audiences(audiences text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF audiences IS NOT NULL AND (cardinality(audiences) NOT BETWEEN 1 AND 16
                                  OR array_position(audiences, NULL) IS NOT NULL
                                  OR EXISTS (SELECT FROM unnest(audiences) a
                                              WHERE length(a) NOT BETWEEN 1 AND 1024 OR a ~ '\s')) THEN
        RAISE EXCEPTION 'token_audiences must hold 1 to 16 audience values without spaces or NULLs'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example, for Microsoft Entra: ''{00000000-0000-0000-0000-000000000000, api://pg-mcp}'' (the API''s application ID and its application ID URI).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_audiences(text[]) FROM PUBLIC;

-- An audience other than the resource URL is often the API's client ID, which the provider's
-- ID tokens and app-only tokens for that application carry too: such a provider must require
-- a scope, which only delegated access tokens have.
CREATE FUNCTION @extschema@._check_audience_scopes(audiences text[], scopes text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF audiences IS NOT NULL AND coalesce(cardinality(scopes), 0) = 0 THEN
        RAISE EXCEPTION 'token_audiences need at least one required scope'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An application''s ID tokens and app-only tokens carry its client ID as their audience too; a scope (e.g. ''{mcp.tools}'') admits delegated access tokens only.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_audience_scopes(text[], text[]) FROM PUBLIC;

CREATE FUNCTION @extschema@._check_introspecting(issuer text, audience text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- An opaque token names no issuer: one issuer per resource at most introspects (the unique
    -- index identity_providers_one_introspecting holds it; this says why).
    IF EXISTS (SELECT FROM @extschema@.identity_providers p
                WHERE p.audience = _check_introspecting.audience AND p.introspect
                  AND p.issuer <> _check_introspecting.issuer) THEN
        RAISE EXCEPTION 'another identity provider of "%" introspects tokens already', audience
            USING ERRCODE = 'unique_violation',
                  HINT = 'An opaque token names no issuer, so one issuer per resource at most may introspect (the bridge sends such tokens to it alone).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_introspecting(text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@.create_identity_provider(issuer text, audience text,
                                                     scopes text[] DEFAULT '{}',
                                                     introspect boolean DEFAULT false,
                                                     description text DEFAULT NULL,
                                                     token_audiences text[] DEFAULT NULL,
                                                     metadata_url text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM @extschema@._check_url('issuer', issuer);
    PERFORM @extschema@._check_url('audience', audience);
    PERFORM @extschema@._check_audiences(token_audiences);
    PERFORM @extschema@._check_audience_scopes(token_audiences, scopes);
    IF metadata_url IS NOT NULL THEN PERFORM @extschema@._check_url('metadata_url', metadata_url); END IF;
    IF scopes IS NULL OR array_position(scopes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'scopes must be an array of scope names, without NULLs'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''{mcp:tools}'', or ''{}'' for none.';
    END IF;
    IF introspect THEN PERFORM @extschema@._check_introspecting(issuer, audience); END IF;
    IF EXISTS (SELECT FROM @extschema@.identity_providers p
                WHERE p.issuer = create_identity_provider.issuer AND p.audience = create_identity_provider.audience) THEN
        RAISE EXCEPTION 'identity provider "%" for "%" already exists', issuer, audience
            USING ERRCODE = 'duplicate_object', HINT = 'Change it with mcp.alter_identity_provider.';
    END IF;
    INSERT INTO @extschema@.identity_providers (issuer, audience, scopes, introspect, token_audiences, metadata_url,
                                                description, created_by, updated_by)
    VALUES (issuer, audience, scopes, coalesce(introspect, false), token_audiences, metadata_url, description,
            @extschema@._acting_role(), @extschema@._acting_role());
END
$$;
COMMENT ON FUNCTION @extschema@.create_identity_provider(text, text, text[], boolean, text, text[], text)
    IS 'Trusts an OAuth authorization server (its issuer identifier) for tokens meant for the given resource (a bridge''s --oauth-resource: "aud" holds it, or one of token_audiences when given), requiring the given scopes; metadata_url when its metadata is not under the issuer URL';

CREATE FUNCTION @extschema@.alter_identity_provider(issuer text, audience text,
                                                    scopes text[] DEFAULT NULL,
                                                    introspect boolean DEFAULT NULL,
                                                    enabled boolean DEFAULT NULL,
                                                    description text DEFAULT NULL,
                                                    token_audiences text[] DEFAULT NULL,
                                                    metadata_url text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF array_position(scopes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'scopes must not hold NULLs' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- '{}' and '' go back to the defaults (the resource URL; the standard metadata locations).
    IF cardinality(token_audiences) > 0 THEN PERFORM @extschema@._check_audiences(token_audiences); END IF;
    IF metadata_url <> '' THEN PERFORM @extschema@._check_url('metadata_url', metadata_url); END IF;
    IF introspect THEN PERFORM @extschema@._check_introspecting(issuer, audience); END IF;
    UPDATE @extschema@.identity_providers p
       SET scopes = coalesce(alter_identity_provider.scopes, p.scopes),
           introspect = coalesce(alter_identity_provider.introspect, p.introspect),
           enabled = coalesce(alter_identity_provider.enabled, p.enabled),
           description = coalesce(alter_identity_provider.description, p.description),
           token_audiences = CASE WHEN alter_identity_provider.token_audiences IS NULL THEN p.token_audiences
                                  WHEN cardinality(alter_identity_provider.token_audiences) = 0 THEN NULL
                                  ELSE alter_identity_provider.token_audiences END,
           metadata_url = CASE WHEN alter_identity_provider.metadata_url IS NULL THEN p.metadata_url
                               ELSE nullif(alter_identity_provider.metadata_url, '') END,
           updated_by = @extschema@._acting_role(), updated_at = now()
     WHERE p.issuer = alter_identity_provider.issuer AND p.audience = alter_identity_provider.audience;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'identity provider "%" for "%" does not exist', issuer, audience
            USING ERRCODE = 'undefined_object', HINT = 'See mcp.identity_providers.';
    END IF;
    PERFORM @extschema@._check_audience_scopes(p.token_audiences, p.scopes)
       FROM @extschema@.identity_providers p
      WHERE p.issuer = alter_identity_provider.issuer AND p.audience = alter_identity_provider.audience;
END
$$;
COMMENT ON FUNCTION @extschema@.alter_identity_provider(text, text, text[], boolean, boolean, text, text[], text)
    IS 'Changes an identity provider of a resource (NULL keeps a value; token_audiences => ''{}'' and metadata_url => '''' go back to the defaults); enabled => false refuses its tokens at once';

CREATE FUNCTION @extschema@.drop_identity_provider(issuer text, audience text DEFAULT NULL,
                                                   if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.identity_providers p
     WHERE p.issuer = drop_identity_provider.issuer
       AND (drop_identity_provider.audience IS NULL OR p.audience = drop_identity_provider.audience);
    IF NOT FOUND AND NOT if_exists THEN
        RAISE EXCEPTION 'identity provider "%"% does not exist', issuer,
                        coalesce(' for "' || audience || '"', '')
            USING ERRCODE = 'undefined_object', HINT = 'See mcp.identity_providers.';
    END IF;
    -- An issuer trusted for no resource any more keeps no mappings.
    DELETE FROM @extschema@.identity_mappings m
     WHERE m.issuer = drop_identity_provider.issuer
       AND NOT EXISTS (SELECT FROM @extschema@.identity_providers p WHERE p.issuer = m.issuer);
END
$$;
COMMENT ON FUNCTION @extschema@.drop_identity_provider(text, text, boolean)
    IS 'Stops trusting an issuer for a resource (every resource when audience is NULL); its mappings go with its last resource';

CREATE FUNCTION @extschema@.map_identity(issuer text, principal text, claim text DEFAULT 'sub',
                                         value text DEFAULT NULL, priority integer DEFAULT 100) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM @extschema@.identity_providers p WHERE p.issuer = map_identity.issuer) THEN
        RAISE EXCEPTION 'identity provider "%" does not exist', issuer
            USING ERRCODE = 'undefined_object', HINT = 'Create it first with mcp.create_identity_provider.';
    END IF;
    IF NOT EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = map_identity.principal) THEN
        RAISE EXCEPTION 'principal "%" does not exist', principal
            USING ERRCODE = 'undefined_object', HINT = 'Create it first with mcp.create_principal.';
    END IF;
    IF claim IS NULL OR length(claim) NOT BETWEEN 1 AND 256 OR claim ~ '\s' THEN
        RAISE EXCEPTION 'invalid claim name "%"', claim
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''sub'', ''groups'' or ''tenant''.';
    END IF;
    -- A mapping acts as the principal's role: only who can already act as it may add one.
    PERFORM @extschema@._check_principal_role(
        (SELECT r.rolname FROM @extschema@.principals p JOIN pg_roles r ON r.oid = p.role
          WHERE p.name = map_identity.principal));
    IF EXISTS (SELECT FROM @extschema@.identity_mappings m
                WHERE m.issuer = map_identity.issuer AND m.claim = map_identity.claim
                  AND m.value IS NOT DISTINCT FROM map_identity.value) THEN
        RAISE EXCEPTION 'identities with % = % from "%" are already mapped', claim,
                        coalesce(quote_literal(value), 'any value'), issuer
            USING ERRCODE = 'duplicate_object', HINT = 'Remove the mapping first with mcp.unmap_identity (see mcp.identity_mappings).';
    END IF;
    INSERT INTO @extschema@.identity_mappings (issuer, claim, value, principal, priority, created_by)
    VALUES (issuer, claim, value, principal, coalesce(priority, 100), @extschema@._acting_role())
    RETURNING identity_mappings.id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION @extschema@.map_identity(text, text, text, text, integer)
    IS 'Maps the identities of an issuer whose claim equals (or, for an array claim, holds) value to a principal; value NULL maps every identity of the issuer. Returns the mapping''s id';

CREATE FUNCTION @extschema@.unmap_identity(id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.identity_mappings m WHERE m.id = unmap_identity.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'identity mapping % does not exist', id
            USING ERRCODE = 'undefined_object', HINT = 'See mcp.identity_mappings.';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.unmap_identity(bigint) IS 'Removes an identity mapping (by its id in mcp.identity_mappings)';

REVOKE ALL ON FUNCTION
    @extschema@.create_identity_provider(text, text, text[], boolean, text, text[], text),
    @extschema@.alter_identity_provider(text, text, text[], boolean, boolean, text, text[], text),
    @extschema@.drop_identity_provider(text, text, boolean),
    @extschema@.map_identity(text, text, text, text, integer),
    @extschema@.unmap_identity(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.create_identity_provider(text, text, text[], boolean, text, text[], text),
    @extschema@.alter_identity_provider(text, text, text[], boolean, boolean, text, text[], text),
    @extschema@.drop_identity_provider(text, text, boolean),
    @extschema@.map_identity(text, text, text, text, integer),
    @extschema@.unmap_identity(bigint)
    TO mcp_admin;

-- What a bridge serving a resource needs to know: the issuers it trusts and their scopes.
CREATE FUNCTION @extschema@.identity_providers_for(audience text)
    RETURNS TABLE (issuer text, scopes text[], introspect boolean, token_audiences text[], metadata_url text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Membership, not inherited privileges: a bridge's login is usually NOINHERIT.
    IF NOT pg_has_role(session_user, 'mcp_identity_verifier', 'MEMBER')
       AND NOT pg_has_role(session_user, 'mcp_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'only members of mcp_identity_verifier or mcp_admin may list the identity providers of a resource'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'As a superuser: GRANT mcp_identity_verifier TO the login of pg_mcp_bridge --auth oauth.';
    END IF;
    RETURN QUERY SELECT p.issuer, p.scopes, p.introspect, coalesce(p.token_audiences, ARRAY[p.audience]), p.metadata_url
                   FROM @extschema@.identity_providers p
                  WHERE p.audience = identity_providers_for.audience AND p.enabled ORDER BY p.issuer;
END
$$;
COMMENT ON FUNCTION @extschema@.identity_providers_for(text)
    IS 'For pg_mcp_bridge --auth oauth: the enabled issuers trusted for a resource, with the scopes their tokens must carry, the audiences they may name and where their metadata is';

-- The mapping, run as the extension's owner by mcp.assume_identity: one row when the issuer is
-- trusted for the resource, saying whether the token's "aud" (when it has one) names one of the
-- audiences accepted for it, and the principal (and its role) the first matching mapping
-- names (NULL when none matches); no row when the issuer is not trusted for it.
CREATE FUNCTION @extschema@._map_identity(issuer text, audience text, claims jsonb)
    RETURNS TABLE (principal text, role oid, audience_accepted boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT found.principal, found.role,
           CASE jsonb_typeof(claims -> 'aud')
               WHEN 'string' THEN claims ->> 'aud' = ANY (coalesce(p.token_audiences, ARRAY[p.audience]))
               WHEN 'array' THEN (claims -> 'aud') ?| coalesce(p.token_audiences, ARRAY[p.audience])
               ELSE NOT claims ? 'aud' END
      FROM @extschema@.identity_providers p
      LEFT JOIN LATERAL (
          SELECT m.principal, pr.role::oid AS role
            FROM @extschema@.identity_mappings m
            JOIN @extschema@.principals pr ON pr.name = m.principal
           WHERE m.issuer = p.issuer
             AND (m.value IS NULL
                  OR (jsonb_typeof(claims -> m.claim) = 'string' AND claims ->> m.claim = m.value)
                  OR (jsonb_typeof(claims -> m.claim) = 'array' AND (claims -> m.claim) ? m.value)
                  OR (jsonb_typeof(claims -> m.claim) IN ('number', 'boolean') AND (claims -> m.claim)::text = m.value))
           ORDER BY m.priority, m.value IS NULL, m.id
           LIMIT 1) found ON true
     WHERE p.issuer = _map_identity.issuer AND p.audience = _map_identity.audience AND p.enabled;
END;
REVOKE ALL ON FUNCTION @extschema@._map_identity(text, text, jsonb) FROM PUBLIC;

-- Not SECURITY DEFINER on purpose (a role cannot be set inside one), like assume_principal.
CREATE FUNCTION @extschema@.assume_identity(identity jsonb) RETURNS text
    LANGUAGE C CALLED ON NULL INPUT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_assume_identity';
COMMENT ON FUNCTION @extschema@.assume_identity(jsonb)
    IS 'For pg_mcp_bridge --auth oauth (logins that are members of mcp_identity_verifier, calling as themselves): given an access token''s verified claims ({"iss", "sub", "aud", "client_id", "scope", ...}) and the resource, {"resource": url, "claims": {...}}, sets the role of the principal the identity maps to until the end of the current transaction, makes the claims readable with mcp.claim, and returns the principal''s name. Once per transaction.';
-- Executable by all: it checks membership itself (a bridge's login is usually NOINHERIT).

CREATE FUNCTION @extschema@.claim(name text) RETURNS text
    LANGUAGE C STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'pg_mcp_claim';
COMMENT ON FUNCTION @extschema@.claim(text)
    IS 'A verified claim of the OAuth identity of the current transaction (mcp.assume_identity): a string claim as itself, any other as its JSON text; NULL when absent or when the call has no OAuth identity. For row-level security: USING (owner = mcp.claim(''sub''))';
CREATE FUNCTION @extschema@.claims() RETURNS jsonb
    LANGUAGE C STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'pg_mcp_claims';
COMMENT ON FUNCTION @extschema@.claims()
    IS 'Every verified claim of the OAuth identity of the current transaction, or NULL without one';
GRANT EXECUTE ON FUNCTION @extschema@.claim(text), @extschema@.claims() TO PUBLIC;
