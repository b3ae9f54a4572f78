// The Streamable HTTP transport itself (pg_mcp_bridge --http), with plain fetch: sessions,
// status codes, Origin and Host validation, size limit, health endpoints, the 2026-07-28
// stateless form, and many sessions sharing a small pool. The tool tests run over HTTP with the
// SDK client too (scripts/test.sh runs the v1 tests again with PG_MCP_SDK_TRANSPORT=http).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startHttpBridge } from './clients.mjs';
import { createAndGrantTool, dropTool, psql, sleep, waitFor } from './helpers.mjs';
import { connect as netConnect } from 'node:net';

const TEST_TIMEOUT = { timeout: 120_000 };
const JSON_AND_SSE = 'application/json, text/event-stream';

function post(url, body, headers = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: JSON_AND_SSE, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  });
}

async function initialize(url, clientName = 'http-test') {
  const response = await post(url, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: clientName, version: '1' } }
  });
  assert.equal(response.status, 200);
  const session = response.headers.get('mcp-session-id');
  assert.match(session, /^[\x21-\x7e]{32}$/, 'a session id of visible ASCII');
  const body = await response.json();
  assert.equal(body.result.protocolVersion, '2025-11-25');
  const headers = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
  const initialized = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  assert.equal(initialized.status, 202);
  assert.equal(await initialized.text(), '');
  return headers;
}

/** A raw HTTP request (fetch does not let a test set Host). */
function rawRequest(url, { method = 'GET', headers = {}, agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, ...(agent === undefined ? {} : { agent }) }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('http: sessions, status codes and a tool call', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  try {
    const { url } = bridge;
    const headers = await initialize(url);
    const call = await post(
      url,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_customer_info', arguments: { email: 'customer1@example.com' } } },
      headers
    );
    assert.equal(call.status, 200);
    assert.match(call.headers.get('content-type'), /^application\/json/);
    const result = (await call.json()).result;
    assert.equal(result.structuredContent.rows[0].email, 'customer1@example.com');

    // Without a session (not initialize): 400; an unknown session: 404.
    const list = { jsonrpc: '2.0', id: 3, method: 'tools/list' };
    assert.equal((await post(url, list)).status, 400);
    assert.equal((await post(url, list, { 'mcp-session-id': 'no-such-session' })).status, 404);
    // An unsupported protocol version header: 400.
    assert.equal((await post(url, list, { ...headers, 'mcp-protocol-version': '1999-01-01' })).status, 400);
    // Accept must list JSON or an event stream (either is served); the body must be JSON, one
    // message, not too large.
    assert.equal((await post(url, list, { ...headers, accept: 'text/html' })).status, 406);
    assert.equal((await post(url, list, { ...headers, 'content-type': 'text/plain' })).status, 415);
    const parse = await post(url, '{not json', headers);
    assert.equal(parse.status, 400);
    assert.equal((await parse.json()).error.code, -32700);
    assert.equal((await post(url, [list], headers)).status, 400);
    const deep = '{"jsonrpc":"2.0","id":4,"method":"tools/list","params":' + '['.repeat(200) + ']'.repeat(200) + '}';
    assert.equal((await post(url, deep, headers)).status, 400);
    // subscriptions/listen belongs to 2026-07-28 (see http-stream.test.mjs), not to a session.
    const listen = { jsonrpc: '2.0', id: 6, method: 'subscriptions/listen', params: {} };
    const notInSession = await post(url, listen, headers);
    assert.equal(notInSession.status, 200);
    assert.equal((await notInSession.json()).error.code, -32601);
    const big = await post(url, { ...list, params: { pad: 'x'.repeat(2 * 1024 * 1024) } }, headers);
    assert.equal(big.status, 413);
    // GET opens the session's event stream: it needs the session and Accept (see the stream
    // test); other methods get 405 with Allow, other paths 404.
    assert.equal((await fetch(url, { headers: { accept: 'text/event-stream' } })).status, 400);
    assert.equal((await fetch(url, { headers: { accept: 'text/event-stream', 'mcp-session-id': 'nope' } })).status, 404);
    assert.equal((await fetch(url, { headers: { ...headers, accept: 'application/json' } })).status, 406);
    const put = await fetch(url, { method: 'PUT', headers });
    assert.equal(put.status, 405);
    assert.match(put.headers.get('allow'), /GET, POST, DELETE/);
    assert.equal((await fetch(new URL('/other', url))).status, 404);

    // The same request id twice at once in a session: the second is refused (409).
    const slowTool = await psql(
      `SELECT mcp.create_tool('sdk_http_sleep', 'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'sleeps',
         '[{"name": "s", "type": "number"}]');
       SELECT mcp.grant_tool('sdk_http_sleep', 'agent_support');`
    );
    assert.ok(slowTool);
    try {
      const slow = { jsonrpc: '2.0', id: 'same', method: 'tools/call', params: { name: 'sdk_http_sleep', arguments: { s: 1 } } };
      const first = post(url, slow, headers);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await post(url, slow, headers)).status, 409);
      assert.equal((await first).status, 200);
    } finally {
      await psql(`SELECT mcp.drop_tool('sdk_http_sleep')`);
    }

    // DELETE ends the session: a call still running is cancelled (its POST gets a
    // "cancelled" error) and audited as such; the session is then unknown.
    await psql(
      `SELECT mcp.create_tool('sdk_http_sleep3', 'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'sleeps',
         '[{"name": "s", "type": "number"}]');
       SELECT mcp.grant_tool('sdk_http_sleep3', 'agent_support');`
    );
    try {
      const running = post(url, { jsonrpc: '2.0', id: 'long', method: 'tools/call', params: { name: 'sdk_http_sleep3', arguments: { s: 20 } } }, headers);
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      const deleted = await fetch(url, { method: 'DELETE', headers });
      assert.equal(deleted.status, 204);
      const ended = await running;
      assert.ok(Date.now() - started < 5000, 'the running call ended with its session');
      assert.match((await ended.json()).error.message, /cancelled: session deleted/);
      let status;
      for (let i = 0; i < 50 && status !== 'cancelled'; i++) {
        [status] = await psql(`SELECT status FROM mcp.audit_log WHERE tool_name = 'sdk_http_sleep3' ORDER BY id DESC LIMIT 1`, { single: false });
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 'cancelled');
    } finally {
      await psql(`SELECT mcp.drop_tool('sdk_http_sleep3')`);
    }
    assert.equal((await fetch(url, { method: 'DELETE', headers })).status, 404);
    assert.equal((await post(url, list, headers)).status, 404);
  } finally {
    await bridge.stop();
  }
});

test('http: Origin and Host are checked against DNS rebinding', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--allowed-origin', 'http://localhost:3000']);
  try {
    const { url } = bridge;
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } }
    };
    const foreign = await post(url, init, { origin: 'http://evil.example' });
    assert.equal(foreign.status, 403);
    assert.equal((await foreign.json()).error.code, -32600);
    const allowed = await post(url, init, { origin: 'http://localhost:3000' });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    assert.match(allowed.headers.get('access-control-expose-headers'), /MCP-Session-Id/i);
    // A browser's preflight for an allowed origin is answered; for another, refused.
    const preflight = await fetch(url, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' }
    });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-headers'), /MCP-Session-Id/i);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    const foreignPreflight = await fetch(url, { method: 'OPTIONS', headers: { origin: 'http://evil.example' } });
    assert.equal(foreignPreflight.status, 403);
    // A loopback listener also takes pages served from the loopback, on any port; a name that
    // only resolves there (DNS rebinding) is still refused.
    for (const origin of ['http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]', 'https://LOCALHOST'])
      assert.equal((await post(url, init, { origin })).status, 200, origin);
    for (const origin of ['http://localhost.evil.example', 'http://127.0.0.1.nip.io:8080', 'null'])
      assert.equal((await post(url, init, { origin })).status, 403, origin);
    const port = new URL(url).port;
    const rebound = await rawRequest(new URL('/healthz', url), { headers: { host: `evil.example:${port}` } });
    assert.equal(rebound.status, 403);
    const local = await rawRequest(new URL('/healthz', url), { headers: { host: `localhost:${port}` } });
    assert.equal(local.status, 200);
    // An address is no rebinding (a browser sends the name it resolved): a pod's address is
    // what Kubernetes' probes and Prometheus send.
    for (const host of [`10.1.2.3:${port}`, '[fd00::1]:80', '192.168.0.7'])
      assert.equal((await rawRequest(new URL('/healthz', url), { headers: { host } })).status, 200, host);
    for (const host of ['10.1.2.3.nip.io', '[::ffff:evil]', '10.1.2', 'fd00::1'])
      assert.equal((await rawRequest(new URL('/healthz', url), { headers: { host } })).status, 403, host);
  } finally {
    await bridge.stop();
  }
});

test('http: /healthz and /readyz', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  try {
    const health = await fetch(new URL('/healthz', bridge.url));
    assert.equal(health.status, 200);
    const ready = await fetch(new URL('/readyz', bridge.url));
    assert.equal(ready.status, 200);
    assert.match(await ready.text(), /ready/);
  } finally {
    await bridge.stop();
  }
});

test('http: 2026-07-28 requests need no session', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  const requestId = `stateless-${process.pid}-${Date.now()}`;
  try {
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {}
    };
    const response = await post(
      bridge.url,
      { jsonrpc: '2.0', id: requestId, method: 'tools/call', params: { name: 'get_customer_info', arguments: { email: 'customer2@example.com' }, _meta: meta } },
      { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'get_customer_info' }
    );
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.result.structuredContent.rows[0].email, 'customer2@example.com');
    assert.equal(body.result.resultType, 'complete');
    assert.equal(body.id, requestId);
    // The audit row carries the client's own request id.
    const [audited] = await psql(`SELECT count(*) FROM mcp.audit_log WHERE request_id = '${requestId}'`, { single: false });
    assert.equal(audited, '1');
  } finally {
    await bridge.stop();
  }
});

test('http: 2026-07-28 headers mirror the body, and refusals carry the revision\'s statuses', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  try {
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {}
    };
    const headers = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'get_customer_info' };
    let n = 0;
    const tag = `headers-${process.pid}-${Date.now()}`;
    const call = (changes = {}, params = {}, method = 'tools/call') => {
      const id = `${tag}-${++n}`;
      const body = {
        jsonrpc: '2.0',
        id,
        method,
        params: { name: 'get_customer_info', arguments: { email: 'customer5@example.com' }, _meta: meta, ...params }
      };
      const sent = Object.fromEntries(Object.entries({ ...headers, ...changes }).filter(([, v]) => v !== undefined));
      return post(bridge.url, body, sent).then(async (r) => ({ id, status: r.status, body: await r.json() }));
    };
    const refused = async (promise, status, code, what) => {
      const { id, status: got, body } = await promise;
      assert.equal(got, status, `${what}: ${JSON.stringify(body)}`);
      assert.equal(body.error?.code, code, `${what}: ${JSON.stringify(body)}`);
      assert.equal(body.id, id, `${what}: the error carries the request's id`);
      return body;
    };
    const ok = await call();
    assert.equal(ok.status, 200);
    assert.equal(ok.body.result.structuredContent.rows[0].email, 'customer5@example.com');
    // That revision has no sessions: a session header is ignored (no 404 for an unknown one).
    assert.equal((await call({ 'mcp-session-id': 'no-such-session' })).status, 200);
    // The name may come Base64-encoded (=?base64?...?=).
    const encoded = `=?base64?${Buffer.from('get_customer_info').toString('base64')}?=`;
    assert.equal((await call({ 'mcp-name': encoded })).status, 200);

    await refused(call({ 'mcp-protocol-version': undefined }), 400, -32020, 'no MCP-Protocol-Version');
    await refused(call({}, { _meta: { ...meta, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } }), 400, -32020, 'header and body versions differ');
    const unsupported = await refused(call({ 'mcp-protocol-version': '2099-01-01' }), 400, -32022, 'unsupported version');
    assert.ok(unsupported.error.data.supported.includes('2026-07-28'), 'the supported versions are listed');
    assert.equal(unsupported.error.data.requested, '2099-01-01');
    await refused(call({ 'mcp-method': undefined }), 400, -32020, 'no Mcp-Method');
    await refused(call({ 'mcp-method': 'tools/list' }), 400, -32020, 'Mcp-Method names another method');
    await refused(call({ 'mcp-name': undefined }), 400, -32020, 'no Mcp-Name');
    await refused(call({ 'mcp-name': 'get_tenant_customers' }), 400, -32020, 'Mcp-Name names another tool');
    await refused(call({ 'mcp-name': '=?base64?not base64?=' }), 400, -32020, 'a malformed encoded name');
    await refused(call({ 'mcp-method': 'tools/unknown' }, {}, 'tools/unknown'), 404, -32601, 'an unknown method');
    await refused(call({}, { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } }), 400, -32602, 'no client capabilities');
    // Caching: what the result's ttlMs and cacheScope say, as Cache-Control; a call: no-store.
    assert.equal((await call()).status, 200);
    const cached = async (method) => {
      const response = await post(bridge.url, { jsonrpc: '2.0', id: `${tag}-${method}`, method, params: { _meta: meta } },
        { 'mcp-protocol-version': '2026-07-28', 'mcp-method': method });
      const body = await response.json();
      return { header: response.headers.get('cache-control'), result: body.result };
    };
    const list = await cached('tools/list');
    assert.equal(list.header, `${list.result.cacheScope}, max-age=${list.result.ttlMs / 1000}`);
    assert.equal(list.header, 'private, max-age=60', 'a role-dependent list is private');
    const discover = await cached('server/discover');
    assert.equal(discover.header, `${discover.result.cacheScope}, max-age=${discover.result.ttlMs / 1000}`);
    const noStore = await post(bridge.url, { jsonrpc: '2.0', id: `${tag}-nostore`, method: 'tools/call',
      params: { name: 'get_customer_info', arguments: { email: 'customer5@example.com' }, _meta: meta } }, headers);
    assert.equal(noStore.headers.get('cache-control'), 'no-store');
    await noStore.text();
    // Nothing ran for a refused request: only the calls that were accepted are audited.
    const [audited] = await psql(`SELECT count(*) FROM mcp.audit_log WHERE request_id LIKE '${tag}-%'`, { single: false });
    assert.equal(audited, '5');
  } finally {
    await bridge.stop();
  }
});

test('http: 50 concurrent sessions over a pool of 10, no connection beyond it', TEST_TIMEOUT, async () => {
  // Each call holds its connection for 50 ms: 50 of them cannot all be served by the connection
  // the bridge's readiness probe opened, however fast the machine is.
  await createAndGrantTool({
    name: 'sdk_pool_hold',
    sql: 'SELECT pg_sleep(0.05) IS NULL AS held, :email::text AS email',
    description: 'Holds a connection for 50 ms (pool test)',
    parameters: [{ name: 'email', type: 'string' }],
    grantTo: 'agent_support'
  });
  const bridge = await startHttpBridge('agent_support', ['--pool-size', '10']);
  try {
    const sessions = await Promise.all(Array.from({ length: 50 }, () => initialize(bridge.url)));
    // The pool opens its connections on demand: those started from now on are the pool's.
    const [since] = await psql('SELECT clock_timestamp()', { single: false });
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [n] = await psql(
          `SELECT count(*) FROM pg_stat_activity WHERE usename = 'agent_support'
              AND application_name LIKE 'pg_mcp_bridge%' AND backend_start >= '${since}'`,
          { single: false }
        );
        peak = Math.max(peak, Number(n));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const results = await Promise.all(
      sessions.map((headers, i) =>
        post(
          bridge.url,
          { jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: { name: 'sdk_pool_hold', arguments: { email: `customer${i + 1}@example.com` } } },
          headers
        ).then(async (r) => ({ status: r.status, body: await r.json() }))
      )
    );
    sampling = false;
    await sampler;
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200);
      assert.ok(!r.body.error, JSON.stringify(r.body));
      assert.equal(r.body.id, 10 + i);
    }
    // Never more than the pool, whatever the number of sessions; and the pool was used.
    assert.ok(peak <= 10, `at most 10 pool connections, saw ${peak}`);
    assert.ok(peak >= 2, `concurrent calls used several pool connections, saw ${peak}`);

    // /metrics (Prometheus text): the 50 calls, the pool, the sessions.
    const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
    const value = (name) => Number(metrics.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1]);
    assert.equal(value('pg_mcp_bridge_tool_calls_total\\{outcome="ok"\\}'), 50, metrics);
    assert.equal(value('pg_mcp_bridge_tool_call_duration_seconds_count'), 50);
    assert.equal(value('pg_mcp_bridge_pool_connections'), 10);
    assert.equal(value('pg_mcp_bridge_pool_in_use'), 0);
    assert.equal(value('pg_mcp_bridge_http_sessions'), 50);
    assert.ok(value('pg_mcp_bridge_http_responses_total\\{code="200"\\}') >= 100);
  } finally {
    await bridge.stop();
    await dropTool('sdk_pool_hold');
  }
});

test('http: sessions sharing the pool do not confuse requests with the same id', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--pool-size', '4']);
  await psql(
    `SELECT mcp.create_tool('sdk_http_sleep2', 'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'sleeps',
       '[{"name": "s", "type": "number"}]');
     SELECT mcp.grant_tool('sdk_http_sleep2', 'agent_support');`
  );
  try {
    const a = await initialize(bridge.url);
    const b = await initialize(bridge.url);
    const slow = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'sdk_http_sleep2', arguments: { s: 1.5 } } };
    const inA = post(bridge.url, slow, a);
    const inB = post(bridge.url, slow, b);
    await new Promise((r) => setTimeout(r, 500));
    // Cancelling id 5 in session A leaves session B's id 5 running to its answer.
    const cancel = await post(bridge.url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 5, reason: 'test' } }, a);
    assert.equal(cancel.status, 202);
    // Cancelled: no JSON-RPC response, as cancellation asks (an event stream with no event).
    const cancelled = await inA;
    assert.equal(cancelled.status, 200);
    assert.match(cancelled.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(await cancelled.text(), '');
    const answered = await inB;
    assert.equal(answered.status, 200);
    const body = await answered.json();
    assert.equal(body.id, 5);
    assert.deepEqual(body.result.structuredContent.rows, [{ slept: true }]);

    // Stateless (2026-07-28) requests of two clients with the same id: both answered, each
    // with its own id back.
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
    const modern = (email) =>
      post(
        bridge.url,
        { jsonrpc: '2.0', id: 'x', method: 'tools/call', params: { name: 'get_customer_info', arguments: { email }, _meta: meta } },
        { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'get_customer_info' }
      ).then((r) => r.json());
    const [one, two] = await Promise.all([modern('customer3@example.com'), modern('customer4@example.com')]);
    assert.equal(one.id, 'x');
    assert.equal(two.id, 'x');
    assert.equal(one.result.structuredContent.rows[0].email, 'customer3@example.com');
    assert.equal(two.result.structuredContent.rows[0].email, 'customer4@example.com');
  } finally {
    await psql(`SELECT mcp.drop_tool('sdk_http_sleep2')`);
    await bridge.stop();
  }
});

test('http: a full pool answers "busy, retry" after the queue timeout, and opens no more', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--pool-size', '1', '--queue-timeout', '300']);
  await psql(
    `SELECT mcp.create_tool('sdk_http_sleep4', 'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'sleeps',
       '[{"name": "s", "type": "number"}]');
     SELECT mcp.grant_tool('sdk_http_sleep4', 'agent_support');`
  );
  try {
    const headers = await initialize(bridge.url);
    const call = (id, s) =>
      post(bridge.url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'sdk_http_sleep4', arguments: { s } } }, headers).then(
        (r) => r.json()
      );
    const slow = call(1, 2);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const queued = await call(2, 0);
    const waited = Date.now() - started;
    assert.match(queued.error?.message ?? '', /^Busy: all 1 database connections/, JSON.stringify(queued));
    assert.equal(queued.error.code, -32001);
    assert.ok(waited >= 250 && waited < 1500, `answered after the queue timeout (${waited} ms)`);
    assert.deepEqual((await slow).result.structuredContent.rows, [{ slept: true }]);
    const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
    assert.match(metrics, /^pg_mcp_bridge_pool_busy_total 1$/m);
    // The pool is free again: the retry succeeds.
    assert.deepEqual((await call(3, 0)).result.structuredContent.rows, [{ slept: true }]);
  } finally {
    await psql(`SELECT mcp.drop_tool('sdk_http_sleep4')`);
    await bridge.stop();
  }
});

test('http: --log-format json writes one object per line, with the request id', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--log-format', 'json']);
  try {
    const headers = await initialize(bridge.url);
    const response = await post(
      bridge.url,
      { jsonrpc: '2.0', id: 'req-42', method: 'tools/call', params: { name: 'get_customer_info', arguments: { email: 'not-an-email' } } },
      headers
    );
    assert.equal((await response.json()).result.isError, true);
    await new Promise((r) => setTimeout(r, 100));
    const lines = bridge.stderr.join('').split('\n').filter((l) => l !== '');
    const entries = lines.map((l) => JSON.parse(l));
    for (const entry of entries) {
      assert.equal(entry.logger, 'pg_mcp_bridge');
      assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    const warning = entries.find((e) => e.request_id === 'req-42');
    assert.ok(warning, lines.join('\n'));
    assert.equal(warning.level, 'warning');
    assert.match(warning.message, /invalid_arguments/);
  } finally {
    await bridge.stop();
  }
});

test('http: JSON logs stay JSON through PostgreSQL notices and terminated connections', TEST_TIMEOUT, async () => {
  await psql(`CREATE OR REPLACE FUNCTION public.sdk_noisy() RETURNS int LANGUAGE plpgsql AS
              $$ BEGIN RAISE WARNING E'noisy\\nsecond line'; RETURN 1; END $$;
              GRANT EXECUTE ON FUNCTION public.sdk_noisy() TO PUBLIC;`);
  await createAndGrantTool({ name: 'sdk_noisy', sql: 'SELECT public.sdk_noisy() AS x', description: 'Warns, then answers (log test)', grantTo: 'agent_support' });
  // A call's notices go to its client, and to the log at debug level.
  const bridge = await startHttpBridge('agent_support', ['--log-format', 'json', '--log-level', 'debug']);
  try {
    const headers = await initialize(bridge.url);
    const call = (id) => post(bridge.url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'sdk_noisy', arguments: {} } }, headers);
    assert.equal((await (await call(1)).json()).result.isError, false);
    // The server ends the bridge's connections (as a restart would): the goodbye arrives on
    // idle connections, and the next call reconnects.
    await psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE usename = 'agent_support' AND application_name LIKE 'pg_mcp_bridge%'`);
    await new Promise((r) => setTimeout(r, 300));
    for (let id = 2; id < 5; id++) await (await call(id)).json();
    assert.equal((await (await call(5)).json()).result.isError, false);
    await new Promise((r) => setTimeout(r, 100));
    const lines = bridge.stderr.join('').split('\n').filter((l) => l !== '');
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    const messages = lines.map((l) => JSON.parse(l).message);
    assert.ok(messages.some((m) => /noisy\nsecond line/.test(m)), messages.join('\n'));
  } finally {
    await bridge.stop();
    await dropTool('sdk_noisy');
  }
});

test('http: text logs escape control characters, so a value cannot forge a line', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--log-level', 'debug']);
  try {
    // A client name and a request id with line breaks, both logged (the outcome of a call that
    // failed validation is a warning naming its request).
    const headers = await initialize(bridge.url, 'client\nFORGED pg_mcp_bridge error: fake');
    await post(bridge.url, { jsonrpc: '2.0', id: 'x\nFORGED pg_mcp_bridge error: fake', method: 'tools/call', params: { name: 'get_customer_info', arguments: { email: 'bad' } } }, headers);
    await new Promise((r) => setTimeout(r, 100));
    const lines = bridge.stderr.join('').split('\n').filter((l) => l !== '');
    assert.ok(lines.filter((l) => l.includes('FORGED')).length >= 2, lines.join('\n'));
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\S+ pg_mcp_bridge \w+: /, `forged or broken line: ${line}`);
  } finally {
    await bridge.stop();
  }
});

test('http: a body framed by both Transfer-Encoding and Content-Length is refused with 400', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  const url = new URL(bridge.url);
  const raw = (text) =>
    new Promise((resolve, reject) => {
      const socket = netConnect(Number(url.port), url.hostname, () => socket.write(text));
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
      setTimeout(() => { socket.destroy(); resolve(answer); }, 3000);
    });
  try {
    const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
    for (const coding of ['gzip', 'chunked']) {
      const answer = await raw(
        `POST /mcp HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
        `Accept: application/json, text/event-stream\r\nTransfer-Encoding: ${coding}\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`);
      assert.match(answer, /^HTTP\/1\.1 400 /, `${coding}: ${answer.slice(0, 200)}`);
    }
    // Not HTTP at all: 400 too, then the connection closes.
    assert.match(await raw('HELLO\r\n\r\n'), /^HTTP\/1\.1 400 /);
  } finally {
    await bridge.stop();
  }
});

test('http: 2,000 idle and 200 half-header sockets neither delay a client nor stay open', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--header-timeout', '1500', '--idle-timeout', '1500']);
  const url = new URL(bridge.url);
  const sockets = [];
  let closed = 0;
  const open = (halfHeader) =>
    new Promise((resolve) => {
      const socket = netConnect(Number(url.port), url.hostname, () => {
        if (halfHeader) socket.write(`POST /mcp HTTP/1.1\r\nHost: ${url.host}\r\nContent-Ty`);
        resolve();
      });
      socket.on('close', () => closed++);
      socket.on('error', () => {});
      sockets.push(socket);
    });
  try {
    for (let i = 0; i < 2200; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => open(i + k >= 2000)));
    // A client that talks is served at once: initialize and a tool call within a second.
    const started = Date.now();
    const headers = await initialize(bridge.url);
    const call = await post(
      bridge.url,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_customer_info', arguments: { email: 'customer5@example.com' } } },
      headers
    );
    const body = await call.json();
    const took = Date.now() - started;
    assert.equal(body.result.isError, false, JSON.stringify(body));
    assert.ok(took < 1000, `initialize and a call took ${took} ms behind 2,200 idle sockets`);
    // Every idle or half-sent socket is closed by the bridge: evicted to admit others, or
    // past its deadline.
    const deadline = Date.now() + 6000;
    while (closed < sockets.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(closed, sockets.length, `${sockets.length - closed} idle sockets still open`);
    const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
    assert.match(metrics, /pg_mcp_bridge_http_connections_closed_total\{reason="timeout"\} [1-9]/);
  } finally {
    for (const socket of sockets) socket.destroy();
    await bridge.stop();
  }
});

test('http: a client that stops reading is closed after --write-timeout', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--write-timeout', '1000']);
  const url = new URL(bridge.url);
  try {
    // Thousands of pipelined requests whose answers are never read: the bridge's writes block.
    const socket = netConnect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.pause();
    socket.on('error', () => {});
    const request = `GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`;
    socket.write(request.repeat(200_000));
    // The bridge closes it (its thread is free again): seen in its own counters.
    const timedOut = async () => {
      const text = await (await fetch(new URL('/metrics', bridge.url))).text();
      return Number(/pg_mcp_bridge_http_connections_closed_total\{reason="timeout"\} (\d+)/.exec(text)[1]);
    };
    const deadline = Date.now() + 10_000;
    while ((await timedOut()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(await timedOut(), 1, 'a blocked write must end the connection after the write timeout');
    socket.destroy();
  } finally {
    await bridge.stop();
  }
});

test('http: beyond --max-connections the idlest connection makes room; all busy: 503; sessions too', TEST_TIMEOUT, async () => {
  await createAndGrantTool({ name: 'sdk_http_sleep', sql: 'SELECT pg_sleep(1) IS NULL AS slept', description: 'Takes a second (connection test)', grantTo: 'agent_support' });
  const bridge = await startHttpBridge('agent_support', ['--max-connections', '2', '--max-sessions', '1']);
  const { createConnection } = await import('node:net');
  const sockets = [];
  try {
    const port = Number(new URL(bridge.url).port);
    // Two idle connections take the two places; a client that talks still gets in, and the
    // connection idle the longest is closed for it.
    let closed = 0;
    for (let i = 0; i < 2; i++) {
      const socket = createConnection({ host: '127.0.0.1', port });
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.on('close', () => closed++);
      sockets.push(socket);
    }
    await new Promise((r) => setTimeout(r, 200));
    const served = await rawRequest(new URL('/healthz', bridge.url), { headers: { host: `127.0.0.1:${port}`, connection: 'close' }, agent: false });
    assert.equal(served.status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(closed >= 1, 'an idle connection was closed to admit the client');
    for (const socket of sockets) socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    // Both places serving a request: nothing can be closed, so a third connection gets 503.
    // (Each request on a connection of its own, closed after it: no idle kept-alive one.)
    const once = (body, headers = {}) =>
      new Promise((resolve, reject) => {
        const text = JSON.stringify(body);
        const req = httpRequest(bridge.url, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', accept: JSON_AND_SSE, connection: 'close', 'content-length': Buffer.byteLength(text), ...headers }
        }, (res) => {
          let data = '';
          res.on('data', (chunk) => (data += chunk));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
        });
        req.on('error', reject);
        req.end(text);
      });
    const opened = await once({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    const headers = { 'mcp-session-id': opened.headers['mcp-session-id'], 'mcp-protocol-version': '2025-11-25' };
    assert.equal((await once({ jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).status, 202);
    const slow = (id) => once({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'sdk_http_sleep', arguments: {} } }, headers);
    // One after the other: a connection that has not sent its request yet is one the bridge may
    // close to admit another when at its limit.
    await new Promise((r) => setTimeout(r, 100));
    const calls = [slow(11)];
    await new Promise((r) => setTimeout(r, 150));
    calls.push(slow(12));
    await new Promise((r) => setTimeout(r, 250));
    const refused = await rawRequest(new URL('/healthz', bridge.url), { headers: { host: `127.0.0.1:${port}`, connection: 'close' }, agent: false });
    assert.equal(refused.status, 503);
    for (const call of calls) assert.equal(JSON.parse((await call).body).result.isError, false);
    // One session allowed: the second initialize is refused until the first ends.
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
    assert.equal((await post(bridge.url, init)).status, 503);
    assert.equal((await fetch(bridge.url, { method: 'DELETE', headers })).status, 204);
    assert.equal((await post(bridge.url, init)).status, 200);
  } finally {
    for (const socket of sockets) socket.destroy();
    await bridge.stop();
    await dropTool('sdk_http_sleep');
  }
});

test('http: a GET event stream carries list_changed, and ends with its session', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  const tool = `sdk_http_stream_${process.pid}`;
  try {
    const { url } = bridge;
    const headers = await initialize(url);
    const stream = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type'), /^text\/event-stream/);
    const reader = stream.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const until = async (pattern, ms) => {
      const deadline = Date.now() + ms;
      while (!pattern.test(text)) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${pattern} on the stream; got: ${text}`);
        const chunk = await Promise.race([reader.read(), new Promise((r) => setTimeout(() => r(null), left))]);
        if (chunk === null) continue;
        if (chunk.done) return false;
        text += decoder.decode(chunk.value);
      }
      return true;
    };
    await psql(`SELECT mcp.create_tool(${JSON.stringify(tool).replace(/"/g, "'")}, 'SELECT 1 AS one', 'stream test');
                SELECT mcp.grant_tool(${JSON.stringify(tool).replace(/"/g, "'")}, 'agent_support');`);
    assert.ok(await until(/notifications\/tools\/list_changed/, 10_000));
    const event = text.split('\n\n').find((e) => e.includes('list_changed'));
    assert.match(event, /^id: \d+\nevent: message\ndata: /);
    const message = JSON.parse(event.split('data: ')[1]);
    assert.equal(message.method, 'notifications/tools/list_changed');
    assert.equal(message.id, undefined);
    // Ending the session ends its stream.
    assert.equal((await fetch(url, { method: 'DELETE', headers })).status, 204);
    const ended = await Promise.race([
      (async () => { for (;;) { const c = await reader.read(); if (c.done) return true; } })(),
      new Promise((r) => setTimeout(() => r(false), 5_000))
    ]);
    assert.ok(ended, 'the stream ended with its session');
  } finally {
    await psql(`SELECT mcp.drop_tool('${tool}', true)`);
    await bridge.stop();
  }
});

/** An SSE reader over a fetch response: events as { id, data } as they come. */
function sseReader(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const events = [];
  const pump = (async () => {
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true }));
      if (chunk.done) return;
      text += decoder.decode(chunk.value);
      let end;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const id = block.match(/^id: (\d+)$/m)?.[1];
        const data = block.match(/^data: (.*)$/m)?.[1];
        if (data !== undefined) events.push({ id: id === undefined ? undefined : Number(id), data: JSON.parse(data) });
      }
    }
  })();
  return { events, cancel: () => reader.cancel().catch(() => {}), pump };
}

test('http: a GET stream resumed with Last-Event-ID replays exactly the events it missed', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  const tools = [1, 2, 3].map((i) => `sdk_http_resume_${process.pid}_${i}`);
  const change = (tool) =>
    psql(`SELECT mcp.create_tool('${tool}', 'SELECT 1 AS one', 'resume test'); SELECT mcp.grant_tool('${tool}', 'agent_support');`);
  const open = (headers, extra = {}) => fetch(bridge.url, { headers: { ...headers, accept: 'text/event-stream', ...extra } });
  const waitEvents = (stream, n, what) =>
    waitFor(() => stream.events.length >= n, { timeoutMs: 10_000, what });
  try {
    const subject = await initialize(bridge.url, 'resumed');
    const observer = await initialize(bridge.url, 'observer');
    const watching = sseReader(await open(observer));
    let first = sseReader(await open(subject));
    await change(tools[0]);
    await waitEvents(first, 1, 'the first change on the subject stream');
    await waitEvents(watching, 1, 'the first change on the observer stream');
    const seen = first.events[0];
    assert.equal(seen.data.method, 'notifications/tools/list_changed');
    assert.ok(Number.isInteger(seen.id), 'events carry ids');
    await first.cancel();
    await sleep(200);
    // Missed while disconnected: what the observer sees now.
    await change(tools[1]);
    await change(tools[2]);
    await sleep(500);
    const missed = watching.events.length - 1;
    assert.ok(missed >= 1, 'changes happened while the subject was away');
    const resumed = sseReader(await open(subject, { 'last-event-id': String(seen.id) }));
    await waitEvents(resumed, missed, 'the replayed events');
    await sleep(500);
    assert.equal(resumed.events.length, missed, 'exactly the missed events, once each');
    assert.deepEqual(resumed.events.map((e) => e.id), Array.from({ length: missed }, (_, i) => seen.id + 1 + i));
    assert.deepEqual(resumed.events.map((e) => e.data), watching.events.slice(1).map((e) => e.data));
    await resumed.cancel();
    // Without Last-Event-ID a new stream starts with what comes next.
    const fresh = sseReader(await open(subject));
    await sleep(500);
    assert.equal(fresh.events.length, 0);
    await fresh.cancel();
    await watching.cancel();
  } finally {
    for (const tool of tools) await psql(`SELECT mcp.drop_tool('${tool}', true)`);
    await bridge.stop();
  }
});
