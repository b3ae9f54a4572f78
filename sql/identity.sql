-- OAuth identities: pg_mcp_bridge --auth oauth verifies access tokens and vouches for their
-- claims (mcp.assume_identity); the catalog decides which issuers are trusted for which
-- resource and which principal an identity acts as; the claims reach row-level security,
-- claim-bound parameters and the audit row.
\set SHOW_CONTEXT never
CREATE ROLE regress_idp_agent NOLOGIN;
CREATE ROLE regress_idp_admin LOGIN IN ROLE mcp_admin;
-- The bridge's login: may vouch for identities, and act as the principal's role.
CREATE ROLE regress_idp_bridge LOGIN NOINHERIT IN ROLE mcp_identity_verifier;
GRANT regress_idp_agent TO regress_idp_bridge;
-- Another login that may act as the role but may not vouch for identities.
CREATE ROLE regress_idp_plain LOGIN NOINHERIT;
GRANT regress_idp_agent TO regress_idp_plain;
SELECT mcp.create_principal('idp-people', 'regress_idp_agent', '{"tenant": 3}');

-- Providers: absolute http(s) URLs, plain http only on the loopback; each mistake named.
SELECT mcp.create_identity_provider('login.example.com', 'https://mcp.example.com/mcp');
SELECT mcp.create_identity_provider('http://login.example.com', 'https://mcp.example.com/mcp');
SELECT mcp.create_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp?x=1');
SELECT mcp.create_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp', '{mcp:tools,NULL}');
SELECT mcp.create_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp', '{mcp:tools}');
SELECT mcp.create_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp');
SELECT mcp.create_identity_provider('http://127.0.0.1:9000', 'http://localhost:8080/mcp', description => 'test IdP');
-- An opaque token names no issuer: one issuer per resource at most introspects.
SELECT mcp.create_identity_provider('https://opaque-1.example.com', 'https://mcp.example.com/mcp', introspect => true);
SELECT mcp.create_identity_provider('https://opaque-2.example.com', 'https://mcp.example.com/mcp', introspect => true);
SELECT mcp.alter_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp', introspect => true);
SELECT mcp.drop_identity_provider('https://opaque-1.example.com');
SELECT issuer, audience, scopes, introspect, enabled, description FROM mcp.identity_providers ORDER BY issuer;
-- What a bridge serving a resource loads.
SELECT * FROM mcp.identity_providers_for('https://mcp.example.com/mcp');

-- Mappings: to an existing principal, by an administrator who can act as its role.
SELECT mcp.map_identity('https://nowhere.example.com', 'idp-people');
SELECT mcp.map_identity('https://login.example.com', 'nobody');
SELECT mcp.map_identity('https://login.example.com', 'idp-people', 'bad claim', 'x');
SET ROLE regress_idp_admin;
SELECT mcp.map_identity('https://login.example.com', 'idp-people', 'sub', 'alice');
RESET ROLE;
SELECT mcp.map_identity('https://login.example.com', 'idp-people', 'sub', 'alice') AS alice_mapping \gset
SELECT mcp.map_identity('https://login.example.com', 'idp-people', 'sub', 'alice');
SELECT mcp.map_identity('https://login.example.com', 'idp-people', 'sub', 'bob');
SELECT mcp.map_identity('https://login.example.com', 'idp-people', 'groups', 'analysts');
SELECT issuer, claim, value, principal, priority FROM mcp.identity_mappings ORDER BY id;

-- Data only each person may see, whatever principal they act as.
CREATE TABLE regress_idp_notes (owner text, note text);
INSERT INTO regress_idp_notes VALUES ('alice', 'alice''s note'), ('bob', 'bob''s note'), ('carol', 'carol''s note');
ALTER TABLE regress_idp_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_idp_own ON regress_idp_notes USING (owner = mcp.claim('sub'));
GRANT SELECT ON regress_idp_notes TO regress_idp_agent;
SELECT mcp.create_tool('idp_notes', 'SELECT note FROM regress_idp_notes ORDER BY note', 'My notes');
SELECT mcp.create_tool('idp_me', 'SELECT :me AS me, :tenant AS tenant', 'Who am I',
    '[{"name": "me", "type": "string", "from_claim": "sub"}, {"name": "tenant", "type": "integer", "from_principal": "tenant"}]');
SELECT mcp.create_tool('idp_email', 'SELECT :email AS email', 'My email',
    '[{"name": "email", "type": "string", "from_claim": "email"}]');
SELECT mcp.grant_tool('idp_notes', 'regress_idp_agent');
SELECT mcp.grant_tool('idp_me', 'regress_idp_agent');
SELECT mcp.grant_tool('idp_email', 'regress_idp_agent');
-- A claim-bound parameter is not part of the input schema; its definition says where it comes from.
SELECT t->'inputSchema' AS schema FROM jsonb_array_elements(mcp.list_tools()) t WHERE t->>'name' = 'idp_me';
SELECT parameters FROM mcp.tools WHERE name = 'idp_me';
SELECT mcp.create_tool('idp_bad', 'SELECT :me', 'x', '[{"name": "me", "type": "string", "from_claim": ""}]');
SELECT mcp.create_tool('idp_bad', 'SELECT :me', 'x', '[{"name": "me", "type": "string", "from_claim": "sub", "default": "x"}]');
SELECT mcp.create_tool('idp_bad', 'SELECT :me', 'x', '[{"name": "me", "type": "string", "from_claim": "sub", "from_principal": "tenant"}]');

-- Only members of mcp_identity_verifier may vouch for an identity.
SET SESSION AUTHORIZATION regress_idp_plain;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice"}}');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_idp_bridge;
-- Shapes refused, each named.
SELECT mcp.assume_identity(NULL);
SELECT mcp.assume_identity('[]');
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com"}}');
-- A token for another resource.
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice", "aud": "https://other.example.com/mcp"}}');
-- A provider trusted for another resource maps nothing here.
SELECT mcp.assume_identity('{"resource": "https://other.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice"}}');

-- Alice: her rows, her subject bound, and arguments cannot override it.
BEGIN;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice", "aud": ["https://mcp.example.com/mcp"], "client_id": "agent-app", "scope": "mcp:tools", "groups": ["staff"]}}');
SELECT current_user, mcp.claim('sub') AS sub, mcp.claim('groups') AS groups, mcp.claim('missing') AS missing,
       mcp.claims() ->> 'client_id' AS client_id;
SELECT mcp.call_tool('idp_notes', '{}') -> 'structuredContent' -> 'rows' AS rows;
SELECT mcp.call_tool('idp_me', '{}') -> 'structuredContent' -> 'rows' AS rows;
SELECT mcp.call_tool('idp_me', '{"me": "bob"}') -> 'content' -> 0 ->> 'text' AS refused;
-- A claim the token does not carry: the call is denied, naming nothing secret.
SELECT mcp.call_tool('idp_email', '{}') -> 'content' -> 0 ->> 'text' AS denied;
-- Once per transaction: neither the bridge nor the tool's SQL can change it.
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "bob"}}');
ROLLBACK;
-- A subtransaction that vouched and rolled back takes the identity back with the role.
BEGIN;
SAVEPOINT before_identity;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice"}}');
ROLLBACK TO SAVEPOINT before_identity;
SELECT current_user, mcp.claim('sub') AS sub;
ROLLBACK;
-- The identity ended with its transaction.
SELECT mcp.claim('sub') AS sub, mcp.claims() AS claims;
BEGIN;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice"}}');
RESET ROLE;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "bob"}}');
ROLLBACK;
-- Nor can a token's principal follow an identity in its transaction.
BEGIN;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice"}}');
SELECT mcp.assume_principal(sha256(convert_to('pgmcp_any', 'UTF8')));
ROLLBACK;

-- Bob, the same principal, sees his own rows.
BEGIN;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "bob", "email": "bob@example.com"}}');
SELECT mcp.call_tool('idp_notes', '{}') -> 'structuredContent' -> 'rows' AS rows;
SELECT mcp.call_tool('idp_email', '{}') -> 'structuredContent' -> 'rows' AS rows;
ROLLBACK;

-- Carol, by her group; Dave is in no mapped group: refused and audited as denied.
BEGIN;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "carol", "groups": ["analysts", "staff"]}}');
SELECT mcp.call_tool('idp_notes', '{}') -> 'structuredContent' -> 'rows' AS rows;
ROLLBACK;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "dave", "groups": ["staff"], "client_id": "agent-app"}}');
-- A disabled provider's identities are refused at once; an untrusted issuer's too.
RESET SESSION AUTHORIZATION;
SELECT mcp.alter_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp', enabled => false);
SELECT mcp.alter_identity_provider('https://nowhere.example.com', 'https://mcp.example.com/mcp', enabled => false);
SET SESSION AUTHORIZATION regress_idp_bridge;
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://login.example.com", "sub": "alice"}}');
SELECT mcp.assume_identity('{"resource": "https://mcp.example.com/mcp", "claims": {"iss": "https://evil.example.com", "sub": "alice"}}');
SELECT * FROM mcp.identity_providers_for('https://mcp.example.com/mcp');
RESET SESSION AUTHORIZATION;
SELECT mcp.alter_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp', enabled => true, scopes => '{mcp:tools,mcp:admin}');

-- A provider that names this resource otherwise: Microsoft Entra v2.0 tokens carry the API's
-- client ID (a GUID), v1.0 tokens come from another host than their metadata. Each value is
-- checked; the audiences accepted are exactly the ones given.
\set entra '''https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0'''
SELECT mcp.create_identity_provider(:entra, 'https://mcp.example.com/mcp', token_audiences => '{}');
SELECT mcp.create_identity_provider(:entra, 'https://mcp.example.com/mcp', token_audiences => '{"two words"}');
SELECT mcp.create_identity_provider(:entra, 'https://mcp.example.com/mcp', token_audiences => '{x,NULL}');
SELECT mcp.create_identity_provider(:entra, 'https://mcp.example.com/mcp', metadata_url => 'ftp://login.microsoftonline.com/x');
SELECT mcp.create_identity_provider(:entra, 'https://mcp.example.com/mcp', '{mcp.tools}',
                                    token_audiences => '{5e1bd7a1-2c8e-4b9a-9d55-0c1f4b1e6d20}');
-- Audiences other than the resource need a scope (the application's ID tokens carry its ID).
SELECT mcp.create_identity_provider('https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/', 'https://mcp.example.com/mcp',
                                    token_audiences => '{api://pg-mcp}');
SELECT mcp.create_identity_provider('https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/', 'https://mcp.example.com/mcp',
                                    '{mcp.tools}', token_audiences => '{api://pg-mcp}',
                                    metadata_url => 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/.well-known/openid-configuration');
SELECT mcp.map_identity(:entra, 'idp-people', 'sub', 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ');
SELECT * FROM mcp.identity_providers_for('https://mcp.example.com/mcp') WHERE issuer ~ 'microsoft|windows';
SET SESSION AUTHORIZATION regress_idp_bridge;
BEGIN;
SELECT mcp.assume_identity(jsonb_build_object('resource', 'https://mcp.example.com/mcp', 'claims', jsonb_build_object(
    'iss', :entra, 'sub', 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', 'aud', '5e1bd7a1-2c8e-4b9a-9d55-0c1f4b1e6d20',
    'azp', '0dcab1d8-1a0b-4e5c-9c3e-8f5d2b7a6c41', 'scp', 'mcp.tools', 'ver', '2.0')));
SELECT mcp.claim('ver') AS ver, mcp.claim('aud') AS aud;
ROLLBACK;
-- The resource URL itself is not among the audiences given, nor is another GUID.
SELECT mcp.assume_identity(jsonb_build_object('resource', 'https://mcp.example.com/mcp', 'claims', jsonb_build_object(
    'iss', :entra, 'sub', 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', 'aud', 'https://mcp.example.com/mcp')));
SELECT mcp.assume_identity(jsonb_build_object('resource', 'https://mcp.example.com/mcp', 'claims', jsonb_build_object(
    'iss', :entra, 'sub', 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', 'aud', jsonb_build_array('00000003-0000-0000-c000-000000000000', 7))));
RESET SESSION AUTHORIZATION;
-- '{}' goes back to the resource URL, '' to the standard metadata locations.
SELECT mcp.alter_identity_provider(:entra, 'https://mcp.example.com/mcp', token_audiences => '{}', metadata_url => '');
SELECT mcp.alter_identity_provider(:entra, 'https://mcp.example.com/mcp', token_audiences => '{" "}');
SELECT mcp.alter_identity_provider(:entra, 'https://mcp.example.com/mcp', scopes => '{}',
                                   token_audiences => '{5e1bd7a1-2c8e-4b9a-9d55-0c1f4b1e6d20}');
SELECT token_audiences, metadata_url FROM mcp.identity_providers WHERE issuer = :entra;
SET SESSION AUTHORIZATION regress_idp_bridge;
SELECT mcp.assume_identity(jsonb_build_object('resource', 'https://mcp.example.com/mcp', 'claims', jsonb_build_object(
    'iss', :entra, 'sub', 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', 'aud', '5e1bd7a1-2c8e-4b9a-9d55-0c1f4b1e6d20')));
BEGIN;
SELECT mcp.assume_identity(jsonb_build_object('resource', 'https://mcp.example.com/mcp', 'claims', jsonb_build_object(
    'iss', :entra, 'sub', 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', 'aud', jsonb_build_array('x', 'https://mcp.example.com/mcp'))));
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT mcp.drop_identity_provider(:entra);
SELECT mcp.drop_identity_provider('https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/');

-- The audit trail names the person and the client application of each call.
SELECT tool_name, status, principal, auth_issuer, auth_subject, auth_client_id, message
  FROM mcp.audit_log WHERE tool_name LIKE 'idp\_%' OR tool_name = 'mcp.assume_identity' ORDER BY id;
SELECT verified, problem FROM mcp.verify_audit();

-- One issuer, several resources (bridges); its mappings hold for each.
SELECT mcp.create_identity_provider('https://login.example.com', 'https://reports.example.com/mcp');
SELECT * FROM mcp.identity_providers_for('https://reports.example.com/mcp');
-- Unmapping; dropping an issuer's last provider drops its mappings.
SELECT mcp.unmap_identity(:alice_mapping);
SELECT mcp.unmap_identity(:alice_mapping);
SELECT mcp.drop_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp');
SELECT mcp.drop_identity_provider('https://login.example.com', 'https://mcp.example.com/mcp');
SELECT count(*) AS mappings_kept FROM mcp.identity_mappings;
SELECT mcp.drop_identity_provider('https://login.example.com');
SELECT mcp.drop_identity_provider('https://login.example.com', if_exists => true);
SELECT count(*) AS mappings_left FROM mcp.identity_mappings;
SELECT mcp.drop_identity_provider('http://127.0.0.1:9000');

DROP TABLE regress_idp_notes;
SELECT mcp.drop_tool('idp_notes');
SELECT mcp.drop_tool('idp_me');
SELECT mcp.drop_tool('idp_email');
SELECT mcp.drop_principal('idp-people');
DROP ROLE regress_idp_agent, regress_idp_admin, regress_idp_bridge, regress_idp_plain;
