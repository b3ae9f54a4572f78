// Bearer tokens over Streamable HTTP (pg_mcp_bridge --http --auth token): one login role shared
// by every agent, each request running as the principal of its token (mcp.create_token); 401
// with WWW-Authenticate for a missing, unknown or revoked token; a denial for a tool the
// principal is not granted, audited; sessions bound to their token; tokens in no log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { execFile } from 'node:child_process';
import { startHttpBridge } from './clients.mjs';
import { BRIDGE, bridgeArgs, bridgeBinary, psql, lit, sleep, TENANTS, waitFor } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
const JSON_AND_SSE = 'application/json, text/event-stream';
const LOGIN = 'sdk_auth_bridge';
const STRANGER = 'sdk_auth_stranger';
let tokens = {};

function post(url, body, headers = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: JSON_AND_SSE, ...headers },
    body: JSON.stringify(body)
  });
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'auth-test', version: '1' } }
};

async function connect(url, token) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } }
  });
  const client = new Client({ name: 'auth-test', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  return { client, transport };
}

before(async () => {
  // The bridge's login: a member of the tenant agents' roles, nothing else.
  await psql(
    `DROP ROLE IF EXISTS ${LOGIN}; DROP ROLE IF EXISTS ${STRANGER};
     CREATE ROLE ${LOGIN} LOGIN NOINHERIT; CREATE ROLE ${STRANGER} LOGIN;
     GRANT agent_acme, agent_globex TO ${LOGIN};`
  );
  for (const principal of ['acme-support', 'globex-support']) {
    const [token] = await psql(`SELECT mcp.create_token(${lit(principal)}, 'sdk auth test')`);
    tokens[principal] = token;
  }
});

after(async () => {
  await psql(`DELETE FROM mcp.principal_tokens WHERE description = 'sdk auth test';
              DROP ROLE IF EXISTS ${LOGIN}; DROP ROLE IF EXISTS ${STRANGER};`);
});

test('http auth: requests without a valid token get 401 with a Bearer challenge', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token']);
  try {
    const missing = await post(bridge.url, INITIALIZE);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="pg_mcp"');
    assert.equal((await missing.json()).error.code, -31001);
    for (const header of ['Bearer pgmcp_not-a-real-token', 'Basic dXNlcjpwYXNz', 'Bearer a b']) {
      const refused = await post(bridge.url, INITIALIZE, { authorization: header });
      assert.equal(refused.status, 401, header);
      assert.match(refused.headers.get('www-authenticate'), /^Bearer realm="pg_mcp", error="invalid_token"/);
    }
    // The health endpoints need no token.
    assert.equal((await fetch(new URL('/healthz', bridge.url))).status, 200);
  } finally {
    await bridge.stop();
  }
  assert.doesNotMatch(bridge.stderr.join(''), /pgmcp_/, 'no token in the log');
});

test('http auth: each token acts as its principal over one login; denials are audited', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token', '--pool-size', '2']);
  const acme = await connect(bridge.url, tokens['acme-support']);
  const globex = await connect(bridge.url, tokens['globex-support']);
  try {
    // Each principal sees the tools of its role and the rows of its own tenant.
    const listed = (await acme.client.listTools()).tools.map((t) => t.name);
    assert.deepEqual(listed, ['get_tenant_customers']);
    for (const [who, session, tenant] of [['acme', acme, TENANTS[0]], ['globex', globex, TENANTS[1]]]) {
      const result = await session.client.callTool({ name: 'get_tenant_customers', arguments: {} });
      assert.equal(result.isError, false, JSON.stringify(result));
      const expected = await psql(
        `SELECT id FROM app.tenant_customer_view WHERE tenant_id = ${lit(tenant)} ORDER BY id DESC LIMIT 25`,
        { single: false }
      );
      assert.deepEqual(result.structuredContent.rows.map((r) => String(r.id)), expected, who);
    }
    // A tool the principal is not granted: a clear denial, audited with principal and login.
    await assert.rejects(
      acme.client.callTool({ name: 'get_customer_info', arguments: { email: 'customer1@example.com' } }),
      (error) => error.code === -32602 && /not available/.test(error.data.detail)
    );
    const [row] = await psql(
      `SELECT caller_role || ' ' || session_role || ' ' || principal || ' ' || status FROM mcp.audit_log
        WHERE tool_name = 'get_customer_info' ORDER BY id DESC LIMIT 1`,
      { single: false }
    );
    assert.equal(row, `agent_acme ${LOGIN} acme-support denied`);

    // A session answers only the token that opened it.
    const sessionId = acme.transport.sessionId;
    const stolen = await post(bridge.url, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, {
      authorization: `Bearer ${tokens['globex-support']}`,
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '2025-11-25'
    });
    assert.equal(stolen.status, 404);
    const deleted = await fetch(bridge.url, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${tokens['globex-support']}`, 'mcp-session-id': sessionId }
    });
    assert.equal(deleted.status, 404, 'another token cannot end the session either');
    assert.equal((await acme.client.listTools()).tools.length, 1, 'the session lives on');

    // Revoked: the very next call is refused (the database checks every call), with 401.
    await psql(`SELECT mcp.revoke_tokens('acme-support')`);
    const after = await post(bridge.url, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'get_tenant_customers', arguments: {} } }, {
      authorization: `Bearer ${tokens['acme-support']}`,
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '2025-11-25'
    });
    assert.equal(after.status, 401);
    assert.match(after.headers.get('www-authenticate'), /error="invalid_token"/);
    // Globex is unaffected.
    const still = await globex.client.callTool({ name: 'get_tenant_customers', arguments: {} });
    assert.equal(still.isError, false);
  } finally {
    await globex.transport.terminateSession().catch(() => {});
    await acme.client.close().catch(() => {});
    await globex.client.close().catch(() => {});
    await bridge.stop();
  }
  const log = bridge.stderr.join('');
  assert.doesNotMatch(log, /pgmcp_/, 'no token in the log');
  const [inAudit] = await psql(
    `SELECT count(*) FROM mcp.audit_log WHERE arguments::text LIKE '%pgmcp%' OR coalesce(message, '') LIKE '%pgmcp%'`,
    { single: false }
  );
  assert.equal(inAudit, '0');
  // Restore acme's token for later tests in this file.
  const [token] = await psql(`SELECT mcp.create_token('acme-support', 'sdk auth test')`);
  tokens['acme-support'] = token;
});

test('http auth: a login that may not act as the principal gets a clear 500, not a crash', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(STRANGER, ['--auth', 'token']);
  try {
    const response = await post(bridge.url, INITIALIZE, { authorization: `Bearer ${tokens['acme-support']}` });
    assert.equal(response.status, 500);
    const body = await response.json();
    // The client learns that it failed; the operator's log says why and how to fix it.
    assert.doesNotMatch(body.error.message, /agent_acme|GRANT/);
    assert.match(bridge.stderr.join(''), new RegExp(`GRANT agent_acme TO ${STRANGER}`));
    assert.equal((await fetch(new URL('/healthz', bridge.url))).status, 200, 'still serving');
  } finally {
    await bridge.stop();
  }
});

test('stdio: --token-env runs the bridge as the token\'s principal; a bad token stops the start', TEST_TIMEOUT, async () => {
  const transport = new StdioClientTransport({
    command: await bridgeBinary(),
    args: bridgeArgs(LOGIN, ['--token-env', 'PG_MCP_TEST_TOKEN']),
    env: { ...process.env, PG_MCP_TEST_TOKEN: tokens['globex-support'] },
    stderr: 'pipe'
  });
  const client = new Client({ name: 'auth-test', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'get_tenant_customers', arguments: { plan_name: 'pro' } });
    assert.equal(result.isError, false, JSON.stringify(result));
    const expected = await psql(
      `SELECT id FROM app.tenant_customer_view WHERE tenant_id = ${lit(TENANTS[1])} AND plan_name = 'pro'
        ORDER BY id DESC LIMIT 25`,
      { single: false }
    );
    assert.deepEqual(result.structuredContent.rows.map((r) => String(r.id)), expected);
  } finally {
    await client.close();
  }
  const failed = await new Promise((resolve) => {
    execFile(BRIDGE, bridgeArgs(LOGIN, ['--token-env', 'PG_MCP_TEST_TOKEN']),
      { env: { ...process.env, PG_MCP_TEST_TOKEN: 'pgmcp_wrong' }, timeout: 20_000 },
      (error, stdout, stderr) => resolve({ code: error?.code ?? 0, stderr }));
  });
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /PG_MCP_TEST_TOKEN: Unauthorized: the bearer token is unknown, expired or revoked/);
  assert.doesNotMatch(failed.stderr, /pgmcp_wrong/);
});

test('http auth: one principal at its session cap cannot lock out another', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token', '--max-sessions-per-principal', '3']);
  const open = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await connect(bridge.url, tokens['acme-support']));
    // The fourth session of the same principal: 429 with Retry-After, naming the cap.
    const refused = await post(bridge.url, INITIALIZE, { authorization: `Bearer ${tokens['acme-support']}` });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match((await refused.json()).error.message, /acme-support.*--max-sessions-per-principal/);
    // Another principal opens sessions and calls as usual.
    const globex = await connect(bridge.url, tokens['globex-support']);
    open.push(globex);
    const result = await globex.client.callTool({ name: 'get_tenant_customers', arguments: {} });
    assert.equal(result.isError, false, JSON.stringify(result));
    // Ending one of acme's sessions gives its place back.
    const ended = open.shift();
    await ended.transport.terminateSession();
    await ended.client.close();
    open.push(await connect(bridge.url, tokens['acme-support']));
    // Initializes at the same moment cannot overrun the cap either: with acme's three places
    // taken, none of eight concurrent ones gets in; with them free, exactly three do.
    const burst = () =>
      Promise.all(Array.from({ length: 8 }, () => post(bridge.url, INITIALIZE, { authorization: `Bearer ${tokens['acme-support']}` })));
    assert.deepEqual((await burst()).map((r) => r.status).filter((s) => s === 200), []);
    for (const session of open.filter((o) => o !== globex).splice(0)) {
      await session.transport.terminateSession();
      await session.client.close();
    }
    open.splice(0, open.length, globex);
    const statuses = (await burst()).map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 3, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 5, JSON.stringify(statuses));
  } finally {
    for (const { transport, client } of open) {
      await transport.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    }
    await bridge.stop();
  }
});

test('http auth: a durable call frees its pool connection at once; its answer waits for its audit row', TEST_TIMEOUT, async () => {
  await psql(
    `CREATE TABLE IF NOT EXISTS public.sdk_marks (note text);
     TRUNCATE public.sdk_marks;
     GRANT INSERT ON public.sdk_marks TO agent_tenant;
     SELECT mcp.create_tool('sdk_mark', 'INSERT INTO public.sdk_marks (note) VALUES (:note) RETURNING true AS marked',
                            'Leaves a mark (durability test)', '[{"name": "note", "type": "string"}]', read_only => false);
     SELECT mcp.grant_tool('sdk_mark', 'agent_tenant');
     GRANT mcp_audit_confirmer TO ${LOGIN};`
  );
  // (--confirm-audit always: also the first call, dispatched while nothing waits, is deferred.)
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token', '--pool-size', '1', '--confirm-audit', 'always']);
  const acme = await connect(bridge.url, tokens['acme-support']);
  const setPaused = async (on) => {
    await psql(on ? 'ALTER SYSTEM SET pg_mcp.audit_writer_paused = on' : 'ALTER SYSTEM RESET pg_mcp.audit_writer_paused', { single: false });
    await psql('SELECT pg_reload_conf()', { single: false });
  };
  let paused = false;
  try {
    await setPaused(true);
    paused = true;
    await sleep(500);
    let answered = 0;
    const calls = ['one', 'two'].map((note) =>
      acme.client.callTool({ name: 'sdk_mark', arguments: { note } }, undefined, { timeout: 60_000 }).then((r) => {
        answered++;
        return r;
      })
    );
    // Both calls ran on the one pool connection, one after the other (their rows are committed)...
    await waitFor(async () => (await psql('SELECT count(*) FROM public.sdk_marks'))[0] === '2', {
      timeoutMs: 10_000,
      what: 'both calls to run on the single pool connection'
    });
    // ...yet neither is answered while its audit row cannot be written.
    await sleep(500);
    assert.equal(answered, 0, 'no answer before its audit row is durable');
    // The confirmer's connection is lost while it waits: the records are confirmed again on its
    // next connection, and the calls are not failed "not confirmed durable".
    const [terminated] = await psql(
      `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE query LIKE '%mcp.await_audit%' AND pid <> pg_backend_pid() AND usename = '${LOGIN}'`);
    assert.equal(terminated, '1', 'the confirmer was waiting on its connection');
    await sleep(500);
    assert.equal(answered, 0, 'still no answer before its audit row is durable');
    await setPaused(false);
    paused = false;
    const results = await Promise.all(calls);
    const ids = results.map((r) => {
      assert.equal(r.isError, false, JSON.stringify(r));
      return r._meta['pg-mcp/audit_id'];
    });
    assert.ok(ids.every((id) => Number.isInteger(id) && id > 0), JSON.stringify(ids));
    const [rows] = await psql(`SELECT count(*) FROM mcp.audit_log WHERE id IN (${ids.join(',')}) AND tool_name = 'sdk_mark' AND status = 'ok'`);
    assert.equal(rows, '2', 'each answer names its own audit row');
  } finally {
    if (paused) await setPaused(false);
    await acme.client.close().catch(() => {});
    await bridge.stop();
    await psql(`SELECT mcp.drop_tool('sdk_mark'); DROP TABLE public.sdk_marks; REVOKE mcp_audit_confirmer FROM ${LOGIN};`);
  }
});

test('http auth: unknown tokens from one address are checked a few at a time (429 beyond)', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token']);
  try {
    // Token checks wait while the token table is locked: they pile up in progress.
    const lock = psql(`BEGIN; LOCK TABLE mcp.principal_tokens IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;`);
    await sleep(300);
    const { randomBytes } = await import('node:crypto');
    const madeUp = Array.from({ length: 12 }, () => `pgmcp_${randomBytes(33).toString('base64url').slice(0, 43)}`);
    const statuses = await Promise.all(
      madeUp.map((token) => post(bridge.url, INITIALIZE, { authorization: `Bearer ${token}` }).then((r) => r.status))
    );
    await lock;
    assert.deepEqual(
      statuses.slice().sort(),
      [...Array(8).fill(401), ...Array(4).fill(429)].sort(),
      `8 checked (and refused), the rest told to retry: ${statuses}`
    );
    // Once those are done, a real token from the same address is served.
    const { client, transport } = await connect(bridge.url, tokens['acme-support']);
    assert.ok((await client.listTools()).tools.length > 0);
    await transport.terminateSession().catch(() => {});
    await client.close();
  } finally {
    await bridge.stop();
  }
});
