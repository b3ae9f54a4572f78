// Several bridges behind HAProxy (run by test/deployment.sh, around its topology: a primary, a
// streaming standby, PgBouncer): 2026-07-28 requests balanced round-robin, 2025-11-25 sessions
// kept on their bridge by a stick table on MCP-Session-Id, and with --session-key-file taken up
// by another bridge when theirs goes away; without it, the client gets 404 and starts again.
// Shows that rate limits hold across the bridges, that every answered call has exactly one
// audit row, that killing a bridge under load loses no answered call, that /readyz takes a
// bridge whose database is unreachable out of rotation, and what a subscription does when its
// bridge goes away. Skipped unless test/deployment.sh set the topology up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startBridgeWith } from './clients.mjs';
import { DB, conninfo, freePort, lit, psql, sleep } from './helpers.mjs';

const env = process.env;
const ENABLED = Boolean(env.PG_MCP_DEPLOY_REPLICA_HOST);
const TEST = { timeout: 180_000, skip: ENABLED ? false : 'needs test/deployment.sh' };
const LOGIN = 'scale_bridge';
const B3_LOGIN = 'scale_bridge_b3';
const PRINCIPAL = 'scale-agent';
const AGENT_ROLE = 'scale_agent';
const MODERN = '2026-07-28';
const TOOLS = ['sdk_scale_work', 'sdk_scale_limited'];
const workdir = env.PG_MCP_DEPLOY_WORKDIR;
const keyFile = `${workdir}/session.key`;
let token;

const direct = conninfo({ dbname: DB, user: LOGIN, host: env.PG_MCP_DEPLOY_PRIMARY_DIR, port: env.PG_MCP_DEPLOY_PRIMARY_PORT });
const replica = conninfo({ dbname: DB, user: LOGIN, host: env.PG_MCP_DEPLOY_REPLICA_HOST, port: env.PG_MCP_DEPLOY_REPLICA_PORT });
// Through PgBouncer, as `user`: the readiness test takes one bridge's login away (B3_LOGIN).
const viaBouncer = (user = LOGIN) =>
  conninfo({ dbname: DB, user, host: env.PG_MCP_DEPLOY_BOUNCER_HOST, port: env.PG_MCP_DEPLOY_BOUNCER_PORT });

let spoolNumber = 0;
async function startBridge(name, { keyed = true, dsn = viaBouncer() } = {}) {
  const bridge = await startBridgeWith([
    '--http', '127.0.0.1:0', '--auth', 'token', '--agent', `scale-${name}`, '--pool-size', '3',
    '--no-prepared-statements', '--notify-dsn', direct, '--replica', replica,
    '--audit-spool', `${workdir}/scale-${name}-${++spoolNumber}.spool`,
    ...(keyed ? ['--session-key-file', keyFile] : []), dsn]);
  bridge.name = name;
  bridge.port = Number(new URL(bridge.url).port);
  return bridge;
}

async function metric(bridge, name) {
  const text = await (await fetch(new URL('/metrics', bridge.url))).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}
const calls = (bridge) => metric(bridge, 'pg_mcp_bridge_tool_call_duration_seconds_count');

/**
 * HAProxy in front of `groups` ({ name: bridges }): one frontend per group, each balancing
 * round-robin with the stick table of the README's configuration, and naming the bridge that
 * answered in X-Served-By. Returns { urls: { name: url }, stop }.
 */
async function startHaproxy(groups) {
  const ports = {};
  let config = `global
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 300s
  timeout http-request 10s
  timeout check 2s
  retries 3
  option redispatch
`;
  for (const [group, bridges] of Object.entries(groups)) {
    ports[group] = await freePort();
    config += `
frontend ${group}
  bind 127.0.0.1:${ports[group]}
  default_backend ${group}_bridges
backend ${group}_bridges
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
  http-check expect status 200
  default-server inter 300ms fall 2 rise 2
  stick-table type binary len 20 size 100k expire 2h
  stick on req.hdr(mcp-session-id),sha1
  stick store-response res.hdr(mcp-session-id),sha1
  http-response set-header X-Served-By %s
${bridges.map((b) => `  server ${b.name} 127.0.0.1:${b.port} check`).join('\n')}
`;
  }
  const file = `${workdir}/haproxy-${process.pid}.cfg`;
  await writeFile(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = [];
  child.stderr.on('data', (chunk) => stderr.push(chunk.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const urls = Object.fromEntries(Object.entries(ports).map(([g, p]) => [g, `http://127.0.0.1:${p}/mcp`]));
  // Up when every backend serves (its health checks have passed).
  for (const url of Object.values(urls)) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const status = await fetch(new URL('/readyz', url)).then((r) => r.status, () => 0);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`HAProxy did not serve ${url}: ${stderr.join('')}`);
      await sleep(100);
    }
  }
  return { urls, stderr, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

const headers = (method, extra = {}) => ({
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  authorization: `Bearer ${token}`,
  'mcp-protocol-version': MODERN,
  'mcp-method': method,
  ...extra
});
const meta = () => ({
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'scale-out-test', version: '1' }
});

/** A 2026-07-28 tools/call through `url`: { status, servedBy, body }. */
async function modernCall(url, id, name, args = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: headers('tools/call', { 'mcp-name': name }),
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: meta() } })
  });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, servedBy: response.headers.get('x-served-by'), body };
}

async function auditCounts(prefix) {
  const rows = await psql(`SELECT request_id || '=' || count(*) FROM mcp.audit_log WHERE request_id LIKE ${lit(prefix + '%')} GROUP BY request_id`, { single: false });
  return new Map(rows.map((r) => { const [id, n] = r.split('='); return [id, Number(n)]; }));
}

async function connectV1(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } }
  });
  const client = new Client({ name: 'scale-out-test', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  return { client, transport, close: () => client.close().catch(() => {}) };
}

before(async () => {
  if (!ENABLED) return;
  await writeFile(keyFile, randomBytes(48).toString('base64') + '\n', { mode: 0o600 });
  await psql(
    `SELECT mcp.drop_principal(${lit(PRINCIPAL)}, if_exists => true);
     DROP ROLE IF EXISTS ${LOGIN}, ${B3_LOGIN}, ${AGENT_ROLE};
     CREATE ROLE ${AGENT_ROLE} NOLOGIN IN ROLE agent_tenant;
     CREATE ROLE ${LOGIN} LOGIN NOINHERIT;
     CREATE ROLE ${B3_LOGIN} LOGIN NOINHERIT;
     GRANT ${AGENT_ROLE}, mcp_audit_forwarder TO ${LOGIN}, ${B3_LOGIN};
     SELECT mcp.create_principal(${lit(PRINCIPAL)}, ${lit(AGENT_ROLE)}, '{"tenant_id": "11111111-1111-4111-8111-111111111111"}', 'scale-out test');
     SELECT mcp.create_tool('sdk_scale_work', 'SELECT pg_sleep(0.01) IS NULL AS worked, :n::int AS n', 'Works 10 ms (scale-out test)',
       '[{"name": "n", "type": "integer"}]', read_only => false);
     SELECT mcp.create_tool('sdk_scale_limited', 'SELECT 1 AS one', 'Rate-limited (scale-out test)', read_only => false);
     SELECT mcp.grant_tool(t, 'agent_tenant') FROM unnest(ARRAY['${TOOLS.join("', '")}']) t;
     SELECT mcp.set_rate_limit(${lit(PRINCIPAL)}, 'sdk_scale_limited', max_calls => 30, per => '1 hour', subject_kind => 'principal');`
  );
  [token] = await psql(`SELECT mcp.create_token(${lit(PRINCIPAL)}, 'scale-out test')`);
});

after(async () => {
  if (!ENABLED) return;
  await psql(
    `DELETE FROM mcp.rate_limits WHERE subject = ${lit(PRINCIPAL)};
     SELECT mcp.drop_tool(t, true) FROM unnest(ARRAY['${TOOLS.join("', '")}']) t;
     SELECT mcp.drop_principal(${lit(PRINCIPAL)}, if_exists => true);
     DROP OWNED BY ${LOGIN}; DROP ROLE IF EXISTS ${LOGIN};
     DROP OWNED BY ${B3_LOGIN}; DROP ROLE IF EXISTS ${B3_LOGIN};
     DROP OWNED BY ${AGENT_ROLE}; DROP ROLE IF EXISTS ${AGENT_ROLE};`
  );
});

test('scale-out: three bridges behind HAProxy share the load, the rate limits and the audit trail', TEST, async () => {
  const bridges = [await startBridge('b1'), await startBridge('b2'), await startBridge('b3', { dsn: viaBouncer(B3_LOGIN) })];
  const haproxy = await startHaproxy({ keyed: bridges });
  const url = haproxy.urls.keyed;
  const tag = `scale-${process.pid}-rr`;
  try {
    // Round-robin: 30 calls reach every bridge.
    const spread = [];
    for (let i = 0; i < 30; i++) spread.push(await modernCall(url, `${tag}-${i}`, 'sdk_scale_work', { n: i }));
    for (const r of spread) assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const r of spread) assert.equal(r.body.result.isError, false, JSON.stringify(r.body));
    const servedBy = new Set(spread.map((r) => r.servedBy));
    assert.deepEqual([...servedBy].sort(), ['b1', 'b2', 'b3'], 'every bridge served some of them');
    for (const bridge of bridges) assert.ok((await calls(bridge)) >= 8, `${bridge.name} took its share`);

    // One principal's limit (30 an hour) holds for all bridges together: 60 calls, 6 at a time.
    const limited = [];
    for (let i = 0; i < 60; i += 6)
      limited.push(...await Promise.all(Array.from({ length: 6 }, (_, j) => modernCall(url, `${tag}-limit-${i + j}`, 'sdk_scale_limited'))));
    const allowed = limited.filter((r) => r.status === 200 && r.body?.result?.isError === false);
    const refused = limited.filter((r) => r.status === 200 && r.body?.result?.isError === true);
    assert.equal(allowed.length, 30, 'exactly the limit, whichever bridge served');
    assert.equal(refused.length, 30);
    assert.equal(new Set(allowed.map((r) => r.servedBy)).size, 3, 'allowed calls came through every bridge');
    for (const r of refused) assert.match(JSON.stringify(r.body.result.content), /rate limit/i);
    const [statuses] = await psql(
      `SELECT string_agg(status || ':' || n, ',' ORDER BY status) FROM (SELECT status, count(*) n FROM mcp.audit_log
        WHERE request_id LIKE ${lit(`${tag}-limit-%`)} GROUP BY status) s`, { single: false });
    assert.equal(statuses, 'ok:30,rate_limited:30');

    // Every answered call: exactly one audit row.
    const counts = await auditCounts(tag);
    assert.equal(counts.size, 90);
    for (const [id, n] of counts) assert.equal(n, 1, `${id} has one audit row`);

    // /readyz takes a bridge whose database is unreachable out of rotation: b3 loses its
    // database (its login is refused, its connections end); the others serve every call.
    await psql(`ALTER ROLE ${B3_LOGIN} NOLOGIN;
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ${lit(B3_LOGIN)};`);
    const deadline = Date.now() + 15_000;
    while ((await fetch(new URL('/readyz', bridges[2].url))).status !== 503) {
      assert.ok(Date.now() < deadline, 'b3 /readyz is 503 without its database');
      await sleep(100);
    }
    await sleep(1000);  // two failed health checks
    const before3 = await calls(bridges[2]);
    const during = [];
    for (let i = 0; i < 20; i++) during.push(await modernCall(url, `${tag}-down-${i}`, 'sdk_scale_work', { n: i }));
    for (const r of during) assert.equal(r.status, 200, `served while b3 is out (${JSON.stringify(r.body)})`);
    for (const r of during) assert.equal(r.body.result.isError, false);
    assert.ok(during.every((r) => r.servedBy !== 'b3'), 'b3 is out of rotation');
    assert.equal(await calls(bridges[2]), before3);
    await psql(`ALTER ROLE ${B3_LOGIN} LOGIN`);
    const back = Date.now() + 20_000;
    for (;;) {
      const r = await modernCall(url, `${tag}-back-${Date.now()}`, 'sdk_scale_work', { n: 1 });
      if (r.servedBy === 'b3' && r.status === 200) break;
      assert.ok(Date.now() < back, 'b3 is back in rotation once its database is');
      await sleep(100);
    }
  } finally {
    await psql(`ALTER ROLE ${B3_LOGIN} LOGIN`).catch(() => {});
    await haproxy.stop();
    for (const bridge of bridges) await bridge.stop();
  }
});

test('scale-out: a bridge killed under load loses no answered call; the others carry on', TEST, async () => {
  const bridges = [await startBridge('k1'), await startBridge('k2'), await startBridge('k3')];
  const haproxy = await startHaproxy({ keyed: bridges });
  const url = haproxy.urls.keyed;
  const tag = `scale-${process.pid}-kill`;
  const outcomes = [];
  let running = true;
  let n = 0;
  try {
    const worker = async () => {
      while (running) {
        const id = `${tag}-${n++}`;
        const r = await modernCall(url, id, 'sdk_scale_work', { n }).catch(() => ({ status: 0 }));
        outcomes.push({ id, at: Date.now(), ok: r.status === 200 && r.body?.result?.isError === false, status: r.status, servedBy: r.servedBy });
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await sleep(1500);
    const killedAt = Date.now();
    bridges[1].child.kill('SIGKILL');
    await sleep(2500);
    running = false;
    await Promise.all(workers);
    const answered = outcomes.filter((o) => o.ok);
    const failed = outcomes.filter((o) => !o.ok);
    assert.ok(answered.filter((o) => o.at < killedAt && o.servedBy === 'k2').length > 0, 'k2 served before it was killed');
    const after = answered.filter((o) => o.at > killedAt + 1000);
    assert.ok(after.length > 20, `the others carry on (${after.length} calls in the last 1.5 s)`);
    assert.ok(after.every((o) => o.servedBy !== 'k2'));
    // At most the calls k2 had in progress failed (each client had one at a time).
    assert.ok(failed.length <= 8, `failed: ${JSON.stringify(failed)}`);
    const counts = await auditCounts(tag);
    for (const o of answered) assert.equal(counts.get(o.id), 1, `answered ${o.id} has its audit row`);
    for (const o of failed) assert.ok((counts.get(o.id) ?? 0) <= 1, `${o.id}: never two rows`);
  } finally {
    running = false;
    await haproxy.stop();
    for (const bridge of bridges) await bridge.stop();
  }
});

test('scale-out: a 2025-11-25 session stays on its bridge, and moves to another when it goes away', TEST, async () => {
  const keyed = [await startBridge('s1'), await startBridge('s2'), await startBridge('s3')];
  const plain = [await startBridge('p1', { keyed: false }), await startBridge('p2', { keyed: false })];
  const haproxy = await startHaproxy({ keyed, plain });
  let session, plainSession, again;
  try {
    // With session keys: the SDK client's session stays on the bridge that opened it.
    session = await connectV1(haproxy.urls.keyed);
    const sessionId = session.transport.sessionId;
    assert.match(sessionId, /^s1\.[\x21-\x7e]+$/);
    for (let i = 0; i < 6; i++) {
      const result = await session.client.callTool({ name: 'sdk_scale_work', arguments: { n: i } });
      assert.equal(result.isError, false);
    }
    const holding = [];
    for (const b of keyed) if ((await metric(b, 'pg_mcp_bridge_http_sessions')) > 0) holding.push(b);
    assert.equal(holding.length, 1, 'one bridge holds the session (affinity)');
    for (const b of keyed) assert.equal(await metric(b, 'pg_mcp_bridge_http_sessions_resumed_total'), 0);
    // Its bridge goes away: the next call is served by another one, in the same session.
    holding[0].child.kill('SIGKILL');
    // HAProxy closes the client connections it had open to it (a request already on one fails
    // as a network error, which a client retries); the next call comes on a new connection.
    await sleep(1000);
    const result = await session.client.callTool({ name: 'sdk_scale_work', arguments: { n: 99 } });
    assert.equal(result.isError, false);
    assert.equal(result.structuredContent.rows[0].n, 99);
    assert.equal(session.transport.sessionId, sessionId, 'no new initialize');
    const resumed = async () => {
      let n = 0;
      for (const b of keyed) if (b !== holding[0]) n += await metric(b, 'pg_mcp_bridge_http_sessions_resumed_total');
      return n;
    };
    // Taken up from its id by another bridge (by two when the client's GET stream, which it
    // reopens at once, and the call were balanced before HAProxy stored the new server).
    const moved = await resumed();
    assert.ok(moved === 1 || moved === 2, `another bridge took the session up from its id (${moved})`);
    // Then it sticks again.
    for (let i = 0; i < 5; i++) assert.equal((await session.client.callTool({ name: 'sdk_scale_work', arguments: { n: i } })).isError, false);
    assert.equal(await resumed(), moved);
    // DELETE ends it where it now lives; its ticket is refused there from then on.
    await session.transport.terminateSession();
    const afterDelete = await fetch(haproxy.urls.keyed, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`,
        'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    });
    assert.equal(afterDelete.status, 404);
    // ... and on every other bridge too (NOTIFY pg_mcp_session_ended), which would otherwise
    // take it up from its ticket.
    for (const b of keyed.filter((x) => x !== holding[0])) {
      const deadline = Date.now() + 5000;
      for (;;) {
        const direct = await fetch(b.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`,
            'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
        });
        if (direct.status === 404) break;
        assert.ok(Date.now() < deadline, `${b.name} refuses the ended session (${direct.status})`);
        await sleep(100);
      }
    }
    // The audit rows of the session's calls, wherever they ran, name the same client.
    const [clients] = await psql(`SELECT count(DISTINCT client_info) FROM mcp.audit_log WHERE agent_name LIKE 'scale-s%' AND tool_name = 'sdk_scale_work'`, { single: false });
    assert.equal(clients, '1');

    // Without session keys: the other bridge does not know the session (404), and the client
    // starts a new one and carries on.
    plainSession = await connectV1(haproxy.urls.plain);
    assert.equal((await plainSession.client.callTool({ name: 'sdk_scale_work', arguments: { n: 1 } })).isError, false);
    const plainHolder = [];
    for (const b of plain) if ((await metric(b, 'pg_mcp_bridge_http_sessions')) > 0) plainHolder.push(b);
    assert.equal(plainHolder.length, 1);
    plainHolder[0].child.kill('SIGKILL');
    await sleep(1000);
    await assert.rejects(plainSession.client.callTool({ name: 'sdk_scale_work', arguments: { n: 2 } }),
      (error) => error instanceof StreamableHTTPError && error.code === 404);
    again = await connectV1(haproxy.urls.plain);
    assert.equal((await again.client.callTool({ name: 'sdk_scale_work', arguments: { n: 3 } })).isError, false);
  } finally {
    for (const c of [session, plainSession, again]) await c?.close();
    await haproxy.stop();
    for (const bridge of [...keyed, ...plain]) await bridge.stop();
  }
});

test('scale-out: a subscription whose bridge goes away ends; listening again through the balancer works', TEST, async () => {
  const bridges = [await startBridge('l1'), await startBridge('l2')];
  const haproxy = await startHaproxy({ keyed: bridges });
  const url = haproxy.urls.keyed;
  const listen = async (id) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers('subscriptions/listen'),
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: meta() } })
    });
    assert.equal(response.status, 200);
    const reader = response.body.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /notifications\/subscriptions\/acknowledged/);
    return { reader, servedBy: response.headers.get('x-served-by') };
  };
  const tool = `sdk_scale_new_${process.pid}`;
  try {
    const first = await listen('listen-1');
    const holder = bridges.find((b) => b.name === first.servedBy);
    assert.ok(holder, `served by a bridge (${first.servedBy})`);
    holder.child.kill('SIGKILL');
    // The stream ends (HAProxy closes it with its server): the client sees the end, not silence.
    const ended = await Promise.race([
      (async () => { for (;;) { const c = await first.reader.read().catch(() => ({ done: true })); if (c.done) return true; } })(),
      sleep(10_000).then(() => false)
    ]);
    assert.ok(ended, 'the stream ended with its bridge');
    await sleep(1000);  // HAProxy's health checks mark it down
    const second = await listen('listen-2');
    assert.notEqual(second.servedBy, first.servedBy);
    // Any role may NOTIFY the bridges' session channel: junk there changes nothing (the
    // listener that carries catalog changes too keeps working).
    await psql(`SELECT pg_notify('pg_mcp_session_ended', p) FROM unnest(ARRAY['', 'x', repeat('a', 32),
                  repeat('a', 32) || ' 99999999999999999999', repeat('a', 32) || ' -1', repeat('G', 32) || ' 1',
                  repeat('a', 32) || ' 1 2', repeat('a', 7999), repeat('a', 32) || ' 999999999999999999']) p`);
    await psql(`SELECT mcp.create_tool(${lit(tool)}, 'SELECT 1 AS one', 'scale-out listen test');
                SELECT mcp.grant_tool(${lit(tool)}, 'agent_tenant');`);
    let seen = '';
    const heard = await Promise.race([
      (async () => {
        for (;;) {
          const chunk = await second.reader.read();
          if (chunk.done) return false;
          seen += new TextDecoder().decode(chunk.value);
          if (seen.includes('notifications/tools/list_changed')) return true;
        }
      })(),
      sleep(15_000).then(() => false)
    ]);
    assert.ok(heard, `the new stream hears of the change: ${seen}`);
    await second.reader.cancel();
  } finally {
    await psql(`SELECT mcp.drop_tool(${lit(tool)}, true)`).catch(() => {});
    await haproxy.stop();
    for (const bridge of bridges) await bridge.stop();
  }
});
