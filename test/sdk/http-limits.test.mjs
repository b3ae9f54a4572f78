// What one client can take from the others over Streamable HTTP, and what bounds it: a request
// without a valid token is refused from its head (its body is never awaited); bodies arrive at a
// minimum rate; connections that trickle bodies or never finish a request are closed before a
// real client is refused; without tokens, one address holds a bounded share of the sessions;
// with tokens, re-checks of known tokens never fail or delay a request; refused tokens are
// counted, not logged one line each; headers that must appear once do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHttpBridge } from './clients.mjs';
import { psql, lit, sleep } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
const JSON_AND_SSE = 'application/json, text/event-stream';
const LOGIN = 'sdk_limits_bridge';
const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'limits-test', version: '1' } }
};
const tokens = [];

before(async () => {
  await psql(
    `DROP ROLE IF EXISTS ${LOGIN};
     CREATE ROLE ${LOGIN} LOGIN NOINHERIT;
     GRANT agent_acme TO ${LOGIN};`
  );
  for (let i = 0; i < 20; i++) {
    const [token] = await psql(`SELECT mcp.create_token('acme-support', 'sdk limits test')`);
    tokens.push(token);
  }
});

after(async () => {
  await psql(`DELETE FROM mcp.principal_tokens WHERE description = 'sdk limits test';
              DROP ROLE IF EXISTS ${LOGIN};`);
});

/** A raw connection from `from` (a loopback address) to the bridge at `url`. */
function open(url, from = '127.0.0.1') {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: hostname, port: Number(port), localAddress: from });
    socket.setNoDelay(true);
    const received = [];
    let closed = false;
    socket.on('data', (chunk) => received.push(chunk.toString('latin1')));
    socket.on('error', () => {});
    const ended = new Promise((done) => socket.on('close', () => {
      closed = true;
      done();
    }));
    socket.on('connect', () =>
      resolve({ socket, ended, text: () => received.join(''), closed: () => closed }));
    socket.on('error', reject);
  });
}

function head(url, { length = 100_000, headers = '' } = {}) {
  const { host } = new URL(url);
  return `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
    `Accept: ${JSON_AND_SSE}\r\nContent-Length: ${length}\r\n${headers}\r\n`;
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
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

async function sdkClient(url, token) {
  const transport = new StreamableHTTPClientTransport(new URL(url), token
    ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : {});
  const client = new Client({ name: 'limits-test', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  return { client, transport };
}

test('limits: a request without a valid token is refused from its head; its body is never awaited', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token']);
  try {
    for (const headers of ['', `Authorization: Bearer pgmcp_${'A'.repeat(43)}\r\n`, 'Authorization: Basic eDp5\r\n']) {
      const conn = await open(bridge.url);
      conn.socket.write(head(bridge.url, { headers }));  // a 100 kB body announced, none sent
      await Promise.race([conn.ended, sleep(8000)]);  // answered, then drained for 2 s at most
      assert.match(conn.text(), /^HTTP\/1\.1 401 /, `answered before the body, then closed (${headers.trim() || 'no token'})`);
      assert.ok(conn.closed(), 'the connection is closed: the announced body is not waited for');
    }
    // A small body sent with its head keeps the connection usable.
    const conn = await open(bridge.url);
    const body = JSON.stringify(INITIALIZE);
    conn.socket.write(head(bridge.url, { length: Buffer.byteLength(body) }) + body);
    await sleep(500);
    assert.match(conn.text(), /^HTTP\/1\.1 401 /);
    assert.equal(conn.closed(), false, 'kept alive');
    conn.socket.destroy();
  } finally {
    await bridge.stop();
  }
});

test('limits: a body slower than the minimum rate is cut long before the body timeout', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--body-timeout', '60000', '--body-min-rate', '1024']);
  try {
    const conn = await open(bridge.url);
    conn.socket.write(head(bridge.url, { length: 1000 }));
    const started = Date.now();
    const trickle = setInterval(() => conn.socket.write(' '), 200);
    await Promise.race([conn.ended, sleep(20_000)]);
    clearInterval(trickle);
    assert.ok(conn.closed(), 'closed while still trickling');
    assert.ok(Date.now() - started < 15_000, `cut at the minimum rate, not after the 60 s body timeout (${Date.now() - started} ms)`);
    const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
    assert.match(metrics, /pg_mcp_bridge_http_slow_bodies_total 1\b/);
  } finally {
    await bridge.stop();
  }
});

test('limits: connections trickling bodies from three addresses are closed before a real client is refused', TEST_TIMEOUT, async () => {
  // Room for 60 connections, 30 per address; the minimum rate is low so the tricklers stay.
  const bridge = await startHttpBridge('agent_support', [
    '--max-connections', '60', '--max-connections-per-address', '30', '--body-min-rate', '1'
  ]);
  const slow = [];
  const trickle = setInterval(() => slow.forEach((c) => c.socket.write(' ')), 300);
  try {
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4'])
      for (let i = 0; i < 30; i++) {
        const conn = await open(bridge.url, from);
        conn.socket.write(head(bridge.url));
        slow.push(conn);
      }
    await sleep(300);
    // A real client (another address) connects and calls, again and again.
    const { client, transport } = await sdkClient(bridge.url);
    let ok = 0;
    for (let i = 0; i < 10; i++) {
      const result = await client.callTool({ name: 'get_customer_info', arguments: { email: 'customer5@example.com' } }).catch(() => null);
      if (result && !result.isError) ok++;
    }
    await transport.terminateSession().catch(() => {});
    await client.close();
    assert.equal(ok, 10, 'every call of the real client answered');
    assert.ok(slow.some((c) => c.closed()), 'tricklers were evicted to make room');
  } finally {
    clearInterval(trickle);
    slow.forEach((c) => c.socket.destroy());
    await bridge.stop();
  }
});

test('limits: without tokens, one address holds a bounded share of the sessions', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--max-sessions-per-address', '2']);
  try {
    for (let i = 0; i < 2; i++)
      assert.equal((await postFrom(bridge.url, INITIALIZE, {}, '127.0.0.2')).status, 200);
    const third = await postFrom(bridge.url, INITIALIZE, {}, '127.0.0.2');
    assert.equal(third.status, 429, third.body);
    assert.match(JSON.parse(third.body).error.message, /--max-sessions-per-address/);
    assert.equal((await postFrom(bridge.url, INITIALIZE, {}, '127.0.0.3')).status, 200, 'another address is not affected');
  } finally {
    await bridge.stop();
  }
});

test('limits: re-checks of known tokens never fail a request, and refusals are counted, not logged each', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token']);
  try {
    // 20 tokens of one address, each known to the bridge.
    for (const token of tokens)
      assert.equal((await postFrom(bridge.url, INITIALIZE, { authorization: `Bearer ${token}` }, '127.0.0.1')).status, 200);
    await sleep(5500);  // each is due for a re-check
    // The token table is locked: every re-check waits in the database meanwhile.
    const lock = psql(`BEGIN; LOCK TABLE mcp.principal_tokens IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;`);
    await sleep(300);
    const statuses = await Promise.all(tokens.map((token) =>
      postFrom(bridge.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { authorization: `Bearer ${token}`, 'mcp-session-id': 'none' }, '127.0.0.1')
        .then((r) => r.status)));
    await lock;
    assert.deepEqual(statuses, Array(20).fill(404), 'each passed the gate (and found no such session): no 429, no 503');

    // 50 made-up tokens: refused, counted in /metrics, and logged as one count.
    for (let i = 0; i < 50; i++) {
      const made = `pgmcp_${randomBytes(33).toString('base64url').slice(0, 43)}`;
      const answer = await postFrom(bridge.url, INITIALIZE, { authorization: `Bearer ${made}` }, '127.0.0.5');
      assert.ok([401, 429].includes(answer.status), `refused: ${answer.status}`);
    }
    const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
    const refused = Number(metrics.match(/pg_mcp_bridge_auth_refusals_total\{reason="unknown_token"\} (\d+)/)[1]);
    const throttled = Number(metrics.match(/pg_mcp_bridge_auth_refusals_total\{reason="throttled"\} (\d+)/)[1]);
    assert.equal(refused + throttled, 50);
    assert.match(metrics, /pg_mcp_bridge_auth_checks_total\{kind="recheck"\} [1-9]/);
  } finally {
    await bridge.stop();
  }
  const log = bridge.stderr.join('');
  assert.doesNotMatch(log, /refused a request with an unknown/, 'no line per refused token');
  const counted = log.match(/refused \d+ bearer tokens in the last \d+ s/g) ?? [];
  assert.ok(counted.length >= 1 && counted.length <= 3, `refusals logged as counts: ${counted.length} lines`);
  assert.doesNotMatch(log, /pgmcp_/, 'no token in the log');
});

test('limits: headers that must appear once, and a Host that is not a host, are refused', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', []);
  try {
    const call = { jsonrpc: '2.0', id: 'dup-1', method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } };
    const conn = await open(bridge.url);
    const body = JSON.stringify(call);
    conn.socket.write(head(bridge.url, {
      length: Buffer.byteLength(body),
      headers: 'MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\nMcp-Method: tools/call\r\nConnection: close\r\n'
    }) + body);
    await Promise.race([conn.ended, sleep(3000)]);
    assert.match(conn.text(), /^HTTP\/1\.1 400 /);
    const answer = JSON.parse(conn.text().split('\r\n\r\n')[1]);
    assert.equal(answer.id, 'dup-1', 'the error carries the request id');
    assert.equal(answer.error.code, -32020);
    assert.match(answer.error.message, /Mcp-Method header appears more than once/);

    const evil = await open(bridge.url);
    evil.socket.write(`GET /healthz HTTP/1.1\r\nHost: localhost:80@evil.com\r\nConnection: close\r\n\r\n`);
    await Promise.race([evil.ended, sleep(3000)]);
    assert.match(evil.text(), /^HTTP\/1\.1 403 /, 'a Host with user info is not a loopback host');
  } finally {
    await bridge.stop();
  }
});

test('limits: no request reaches a tool without passing the gate, whatever its Host or trailers', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge(LOGIN, ['--auth', 'token']);
  try {
    const body = JSON.stringify(INITIALIZE);
    const chunked = (headers, trailer) =>
      `POST /mcp HTTP/1.1\r\n${headers}Content-Type: application/json\r\nAccept: ${JSON_AND_SSE}\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n${trailer}\r\n`;
    // No Host in the head (so not an allowed request), a Host in a trailer: refused by the gate
    // from the head, never served as the bridge's own login.
    const sneaky = await open(bridge.url);
    sneaky.socket.write(chunked('', `Host: 127.0.0.1\r\n`));
    await Promise.race([sneaky.ended, sleep(8000)]);
    assert.match(sneaky.text(), /^HTTP\/1\.1 401 /, sneaky.text().slice(0, 200));
    // With a valid token, trailer fields are refused as such.
    const { host } = new URL(bridge.url);
    const trailed = await open(bridge.url);
    trailed.socket.write(chunked(`Host: ${host}\r\nAuthorization: Bearer ${tokens[0]}\r\n`, `Mcp-Method: tools/call\r\n`));
    await Promise.race([trailed.ended, sleep(8000)]);
    assert.match(trailed.text(), /^HTTP\/1\.1 400 /);
    assert.match(trailed.text(), /trailer fields are not accepted/);
  } finally {
    await bridge.stop();
  }
});
