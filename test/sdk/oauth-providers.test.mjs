// Access tokens shaped exactly as Microsoft Entra ID (v1.0 and v2.0), Auth0 (its own and the
// RFC 9068 dialect) and Keycloak issue them — header, claims, issuer forms, audience forms —
// signed by test issuers that publish their metadata and keys where those providers do
// (Entra v1.0 tokens name a host that does not serve their metadata). Each is verified by
// pg_mcp_bridge --auth oauth and reaches the database as its person and client application;
// an Entra v2.0 token (whose audience is the API's client ID, whatever resource the client
// asked for) is accepted where that ID is configured and refused, saying what to configure,
// where it is not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, createSign, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startBridgeWith } from './clients.mjs';
import { bridgeArgs, freePort, psql, lit } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
const LOGIN = 'sdk_idp_bridge';
const AGENT = 'sdk_idp_agent';
const PRINCIPAL = 'sdk-idp-people';
const TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';
const API_CLIENT_ID = '5e1bd7a1-2c8e-4b9a-9d55-0c1f4b1e6d20';  // the API's app registration
const CALLER_APP = '0dcab1d8-1a0b-4e5c-9c3e-8f5d2b7a6c41';     // the client app (azp / appid)

let dir;
let key;
const servers = [];
const bridges = [];
let RESOURCE;  // its Entra v2.0 provider accepts the API's client ID
let PLAIN;     // a second bridge whose Entra v2.0 provider was given no audiences
const issuer = {};


const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
function sign(header, claims) {
  const input = `${b64url({ alg: 'RS256', kid: key.kid, ...header })}.${b64url(claims)}`;
  const signer = createSign('RSA-SHA256');
  signer.update(input);
  return `${input}.${signer.sign({ key, format: 'jwk' }).toString('base64url')}`;
}
const times = () => {
  const now = Math.floor(Date.now() / 1000);
  return { iat: now, nbf: now, exp: now + 3600 };
};

// Claims as each provider puts them in an access token (their documentation's samples).
const shapes = {
  entraV2: (changes = {}) =>
    sign({ typ: 'JWT' }, {
      aud: API_CLIENT_ID, iss: issuer.entraV2, ...times(), aio: 'AWQAm/8TAAAA', azp: CALLER_APP, azpacr: '0',
      name: 'Abe Lincoln', oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474', preferred_username: 'abe@contoso.com',
      rh: 'I', scp: 'mcp.tools', sub: 'HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ', tid: TENANT,
      uti: 'fqiBqXLPj0eQa82S-IYFAA', ver: '2.0', ...changes
    }),
  entraV1: (changes = {}) =>
    sign({ typ: 'JWT', x5t: 'i6lGk3FZzxRcUb2C3nEQ7syHJlY' }, {
      aud: 'api://pg-mcp', iss: issuer.entraV1, ...times(), acr: '1', aio: 'AVQAq/8TAAAA', amr: ['pwd'],
      appid: CALLER_APP, appidacr: '0', family_name: 'Lincoln', given_name: 'Abe', ipaddr: '203.0.113.7',
      name: 'Abe Lincoln', oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474', rh: 'I', scp: 'mcp.tools',
      sub: 'l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA', tid: TENANT, unique_name: 'abe@contoso.com',
      upn: 'abe@contoso.com', uti: 'fqiBqXLPj0eQa82S-IYFAA', ver: '1.0', ...changes
    }),
  auth0: (changes = {}) =>
    sign({ typ: 'JWT' }, {
      iss: issuer.auth0, sub: 'auth0|5f7c8ec7c33c6c004bbafe82', aud: [RESOURCE, `${issuer.auth0}userinfo`],
      ...times(), azp: 'my_client_id', scope: 'openid profile mcp:tools', permissions: ['mcp:tools'], ...changes
    }),
  // The API's "RFC 9068" token dialect with permissions (rfc9068_profile_authz).
  auth0Rfc9068: (changes = {}) =>
    sign({ typ: 'at+jwt' }, {
      iss: issuer.auth0, sub: 'auth0|5f7c8ec7c33c6c004bbafe82', aud: RESOURCE, ...times(),
      client_id: 'my_client_id', jti: randomUUID(), scope: 'mcp:tools', permissions: ['mcp:tools'], ...changes
    }),
  keycloak: (changes = {}) =>
    sign({ typ: 'JWT' }, {
      ...times(), auth_time: times().iat, jti: `onrtac:${randomUUID()}`, iss: issuer.keycloak,
      aud: [RESOURCE, 'account'], sub: 'f5c9b2a0-54a6-4d2e-9c49-0f0b35c1e4a2', typ: 'Bearer', azp: 'vscode',
      sid: randomUUID(), acr: '1', 'allowed-origins': ['https://vscode.dev'],
      realm_access: { roles: ['default-roles-main', 'offline_access'] },
      resource_access: { account: { roles: ['manage-account'] } },
      scope: 'openid mcp:tools profile email', email_verified: true, preferred_username: 'abe', ...changes
    })
};

/** An HTTPS server answering GETs from `routes` (path → JSON), 404 otherwise. */
async function serve(port, routes) {
  const server = createHttpsServer({
    cert: readFileSync(join(dir, 'cert.pem')),
    key: readFileSync(join(dir, 'key.pem'))
  }, (req, res) => {
    const body = routes[new URL(req.url, 'https://x').pathname];
    if (body === undefined) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pg-mcp-idp-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ], { stdio: 'ignore' });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  key = { ...privateKey.export({ format: 'jwk' }), kid: 'nOo3ZDrODXEK1jKWhXslHR_KXEg' };
  const { kty, n, e, kid } = key;
  const jwks = { keys: [{ kty, use: 'sig', kid, n, e }] };
  const [login, sts, auth0, keycloak, bridgePort, plainPort] =
    await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  // login.microsoftonline.com: both versions' metadata and keys; sts.windows.net, the v1.0
  // tokens' issuer host, serves nothing here (its metadata is on the login host).
  const origin = (port) => `https://127.0.0.1:${port}`;
  issuer.entraV2 = `${origin(login)}/${TENANT}/v2.0`;
  issuer.entraV1 = `${origin(sts)}/${TENANT}/`;
  issuer.entraV1Metadata = `${origin(login)}/${TENANT}/.well-known/openid-configuration`;
  issuer.auth0 = `${origin(auth0)}/`;
  issuer.keycloak = `${origin(keycloak)}/realms/main`;
  await serve(login, {
    [`/${TENANT}/v2.0/.well-known/openid-configuration`]: {
      issuer: issuer.entraV2,
      authorization_endpoint: `${origin(login)}/${TENANT}/oauth2/v2.0/authorize`,
      token_endpoint: `${origin(login)}/${TENANT}/oauth2/v2.0/token`,
      jwks_uri: `${origin(login)}/${TENANT}/discovery/v2.0/keys`
    },
    [`/${TENANT}/.well-known/openid-configuration`]: {
      issuer: issuer.entraV1,
      authorization_endpoint: `${origin(login)}/${TENANT}/oauth2/authorize`,
      token_endpoint: `${origin(login)}/${TENANT}/oauth2/token`,
      jwks_uri: `${origin(login)}/common/discovery/keys`
    },
    [`/${TENANT}/discovery/v2.0/keys`]: jwks,
    '/common/discovery/keys': jwks
  });
  await serve(auth0, {
    '/.well-known/openid-configuration': {
      issuer: issuer.auth0,
      authorization_endpoint: `${issuer.auth0}authorize`,
      token_endpoint: `${issuer.auth0}oauth/token`,
      registration_endpoint: `${issuer.auth0}oidc/register`,
      jwks_uri: `${issuer.auth0}.well-known/jwks.json`
    },
    '/.well-known/jwks.json': jwks
  });
  await serve(keycloak, {
    '/realms/main/.well-known/openid-configuration': {
      issuer: issuer.keycloak,
      authorization_endpoint: `${issuer.keycloak}/protocol/openid-connect/auth`,
      token_endpoint: `${issuer.keycloak}/protocol/openid-connect/token`,
      registration_endpoint: `${issuer.keycloak}/clients-registrations/openid-connect`,
      jwks_uri: `${issuer.keycloak}/protocol/openid-connect/certs`
    },
    '/realms/main/protocol/openid-connect/certs': jwks
  });

  RESOURCE = `http://127.0.0.1:${bridgePort}/mcp`;
  PLAIN = `http://127.0.0.1:${plainPort}/mcp`;
  await cleanup();
  await psql(
    `CREATE ROLE ${AGENT} NOLOGIN;
     CREATE ROLE ${LOGIN} LOGIN NOINHERIT IN ROLE mcp_identity_verifier;
     GRANT ${AGENT} TO ${LOGIN};
     SELECT mcp.create_principal(${lit(PRINCIPAL)}, ${lit(AGENT)});
     SELECT mcp.create_identity_provider(${lit(issuer.entraV2)}, ${lit(RESOURCE)}, '{mcp.tools}',
                                         token_audiences => ARRAY[${lit(API_CLIENT_ID)}, 'api://pg-mcp']);
     SELECT mcp.create_identity_provider(${lit(issuer.entraV2)}, ${lit(PLAIN)}, '{mcp.tools}');
     SELECT mcp.create_identity_provider(${lit(issuer.entraV1)}, ${lit(RESOURCE)}, '{mcp.tools}',
                                         token_audiences => '{api://pg-mcp}',
                                         metadata_url => ${lit(issuer.entraV1Metadata)});
     SELECT mcp.create_identity_provider(${lit(issuer.auth0)}, ${lit(RESOURCE)}, '{mcp:tools}');
     SELECT mcp.create_identity_provider(${lit(issuer.keycloak)}, ${lit(RESOURCE)}, '{mcp:tools}');
     -- Entra's sub is pairwise (one per application): people are mapped by their object ID.
     SELECT mcp.map_identity(${lit(issuer.entraV2)}, ${lit(PRINCIPAL)}, 'oid', '690222be-ff1a-4d56-abd1-7e4f7d38e474');
     SELECT mcp.map_identity(${lit(issuer.entraV1)}, ${lit(PRINCIPAL)}, 'oid', '690222be-ff1a-4d56-abd1-7e4f7d38e474');
     SELECT mcp.map_identity(${lit(issuer.auth0)}, ${lit(PRINCIPAL)}, 'permissions', 'mcp:tools');
     SELECT mcp.map_identity(${lit(issuer.keycloak)}, ${lit(PRINCIPAL)}, 'preferred_username', 'abe');
     SELECT mcp.create_tool('sdk_idp_whoami', 'SELECT :me AS me, mcp.claim(''ver'') AS ver', 'Who am I',
                            '[{"name": "me", "type": "string", "from_claim": "sub"}]');
     SELECT mcp.grant_tool('sdk_idp_whoami', ${lit(AGENT)});`
  );
  for (const [port, resource] of [[bridgePort, RESOURCE], [plainPort, PLAIN]])
    bridges.push(await startBridgeWith([
      '--http', `127.0.0.1:${port}`,
      ...bridgeArgs(LOGIN, ['--auth', 'oauth', '--oauth-resource', resource, '--oauth-ca-file', join(dir, 'cert.pem')])
    ]));
});

async function cleanup() {
  await psql(
    `SELECT mcp.drop_tool('sdk_idp_whoami', if_exists => true);
     SELECT mcp.drop_identity_provider(p.issuer, p.audience, if_exists => true) FROM mcp.identity_providers p
      WHERE p.audience LIKE 'http://127.0.0.1:%' AND p.issuer LIKE 'https://127.0.0.1:%';
     SELECT mcp.drop_principal(${lit(PRINCIPAL)}, if_exists => true);
     DROP ROLE IF EXISTS ${LOGIN}; DROP ROLE IF EXISTS ${AGENT};`
  );
}

after(async () => {
  for (const bridge of bridges) await bridge.stop();
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  await cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The official SDK client with the token as its bearer; the tool's answer. */
async function whoami(url, token) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } }
  });
  const client = new Client({ name: 'idp-shapes', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'sdk_idp_whoami', arguments: {} });
    assert.ok(!result.isError, JSON.stringify(result));
    return result.structuredContent.rows[0];
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
}

/** The status and WWW-Authenticate of an initialize with the token. */
async function challenge(url, token) {
  const answer = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'idp-shapes', version: '1' } }
    })
  });
  await answer.text();
  return { status: answer.status, challenge: answer.headers.get('www-authenticate') || '' };
}

async function lastAudit() {
  const [row] = await psql(
    `SELECT row_to_json(a)::text FROM (SELECT principal, auth_issuer, auth_subject, auth_client_id
       FROM mcp.audit_log WHERE tool_name = 'sdk_idp_whoami' ORDER BY id DESC LIMIT 1) a`
  );
  return JSON.parse(row);
}

for (const [provider, client] of [
  ['entraV2', CALLER_APP], ['entraV1', CALLER_APP], ['auth0', 'my_client_id'],
  ['auth0Rfc9068', 'my_client_id'], ['keycloak', 'vscode']
]) {
  test(`providers: an access token shaped as ${provider} issues it reaches the database as its person and client`, TEST_TIMEOUT, async () => {
    const token = shapes[provider]();
    const row = await whoami(RESOURCE, token);
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
    assert.equal(row.me, claims.sub);
    assert.equal(row.ver, claims.ver ?? null);
    assert.deepEqual(await lastAudit(), {
      principal: PRINCIPAL,
      auth_issuer: claims.iss,
      auth_subject: claims.sub,
      auth_client_id: client
    });
  });
}

test('providers: an Entra v2.0 token names the API by its client ID; accepted only where configured', TEST_TIMEOUT, async () => {
  // Where no audience was configured, the resource URL is the only one: the token is refused,
  // and the refusal names what it carries and what to configure.
  const refused = await challenge(PLAIN, shapes.entraV2());
  assert.equal(refused.status, 401);
  assert.match(refused.challenge, new RegExp(`aud: ${API_CLIENT_ID}\\)`));
  assert.match(refused.challenge, /token_audiences \(mcp\.alter_identity_provider\)/);
  // Configured: exactly the values given, one enough in an array.
  assert.equal((await challenge(RESOURCE, shapes.entraV2())).status, 200);
  assert.equal((await challenge(RESOURCE, shapes.entraV2({ aud: ['00000003-0000-0000-c000-000000000000', 'api://pg-mcp'] }))).status, 200);
  for (const aud of [RESOURCE, API_CLIENT_ID.toUpperCase(), '00000003-0000-0000-c000-000000000000', [], 7]) {
    const answer = await challenge(RESOURCE, shapes.entraV2({ aud }));
    assert.equal(answer.status, 401, JSON.stringify(aud));
    assert.match(answer.challenge, /error="invalid_token"/);
  }
  // Without aud at all: refused.
  assert.match((await challenge(RESOURCE, shapes.entraV2({ aud: undefined }))).challenge, /names no audience/);
});

test('providers: an Entra v1.0 token is verified through the metadata URL configured for its issuer', TEST_TIMEOUT, async () => {
  // Its issuer's own host serves no metadata; the login host's document names the v1.0 issuer
  // and keys on the login host (allowed: the metadata URL's origin).
  assert.equal((await challenge(RESOURCE, shapes.entraV1())).status, 200);
  // A v1.0-shaped token claiming the v2.0 issuer does not carry the v2.0 audience: refused.
  assert.equal((await challenge(RESOURCE, shapes.entraV1({ iss: issuer.entraV2, aud: 'api://other' }))).status, 401);
  assert.doesNotMatch(bridges[0].stderr.join(''), /eyJ/, 'no token in the log');
});
