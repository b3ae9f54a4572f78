// The production topology (run by test/deployment.sh, which starts it around the test cluster):
// agents with bearer tokens -> HTTP bridge -> PgBouncer (transaction pooling) -> primary, with
// read-only work on a streaming hot standby. Checks routing, audit rows of standby-served calls
// on the primary (also across a primary restart during the calls), replica failure fallback,
// no session state leaking through PgBouncer, and 50 sessions over a pool of 10 within the login
// role's CONNECTION LIMIT. Skipped unless test/deployment.sh set the topology up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startBridgeWith } from './clients.mjs';
import { DB, conninfo, lit, psql, sleep, TENANTS } from './helpers.mjs';

const env = process.env;
const ENABLED = Boolean(env.PG_MCP_DEPLOY_REPLICA_HOST);
const TEST = { timeout: 180_000, skip: ENABLED ? false : 'needs test/deployment.sh' };
const LOGIN = 'deploy_bridge';
// The pool test's login: its own, so that PgBouncer's pooled server connections of LOGIN
// (kept open between the tests) do not count against its CONNECTION LIMIT.
const POOL_LOGIN = 'deploy_pool';
const AGENT = `deploy-${process.pid}`;
const tokens = {};

const direct = conninfo({ dbname: DB, user: LOGIN, host: env.PG_MCP_DEPLOY_PRIMARY_DIR, port: env.PG_MCP_DEPLOY_PRIMARY_PORT });
const viaBouncer = conninfo({ dbname: DB, user: LOGIN, host: env.PG_MCP_DEPLOY_BOUNCER_HOST, port: env.PG_MCP_DEPLOY_BOUNCER_PORT });
const replica = conninfo({ dbname: DB, user: LOGIN, host: env.PG_MCP_DEPLOY_REPLICA_HOST, port: env.PG_MCP_DEPLOY_REPLICA_PORT });

function cluster(...args) {
  return new Promise((resolve, reject) =>
    execFile(env.PG_MCP_DEPLOY_CLUSTER_SH, args, { timeout: 90_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`cluster.sh ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
}
const stopPrimary = () => cluster('stop', env.PG_MCP_DEPLOY_PRIMARY_DIR);
const startPrimary = () => cluster('start', env.PG_MCP_DEPLOY_PRIMARY_DIR, env.PG_MCP_DEPLOY_PRIMARY_PORT);
const stopReplica = () => cluster('stop', env.PG_MCP_DEPLOY_REPLICA_HOST);
const startReplica = () => cluster('start', env.PG_MCP_DEPLOY_REPLICA_HOST, env.PG_MCP_DEPLOY_REPLICA_PORT);

/** psql against the standby. */
function psqlReplica(sql) {
  return new Promise((resolve, reject) =>
    execFile('psql', ['-X', '-q', '-A', '-t', '-h', env.PG_MCP_DEPLOY_REPLICA_HOST, '-p', env.PG_MCP_DEPLOY_REPLICA_PORT,
      '-U', 'postgres', '-d', DB, '-c', sql], { timeout: 30_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(stderr)) : resolve(stdout.split('\n').filter((l) => l !== ''))));
}

async function startBridge(dsn, extra = []) {
  return startBridgeWith(['--http', '127.0.0.1:0', '--auth', 'token', '--agent', AGENT, ...extra, dsn]);
}

async function connect(url, token) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } }
  });
  const client = new Client({ name: 'deploy-test', version: '1' }, { capabilities: {} });
  await client.connect(transport);
  return { client, transport, close: () => client.close().catch(() => {}) };
}

async function metric(url, name) {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

async function waitFor(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const where = (session) => session.client.callTool({ name: 'sdk_deploy_where', arguments: {} });

before(async () => {
  if (!ENABLED) return;
  await psql(
    `DROP ROLE IF EXISTS ${LOGIN};
     CREATE ROLE ${LOGIN} LOGIN NOINHERIT;
     GRANT agent_acme, agent_globex, mcp_audit_forwarder TO ${LOGIN};
     DROP ROLE IF EXISTS ${POOL_LOGIN};
     CREATE ROLE ${POOL_LOGIN} LOGIN NOINHERIT CONNECTION LIMIT 12;
     GRANT agent_acme, agent_globex TO ${POOL_LOGIN};
     CREATE TABLE IF NOT EXISTS sdk_deploy_log (note text, at timestamptz DEFAULT now());
     GRANT INSERT ON sdk_deploy_log TO agent_tenant;
     SELECT mcp.create_tool('sdk_deploy_where',
       'SELECT pg_is_in_recovery() AS standby, current_user AS role', 'Which server and role run this');
     SELECT mcp.create_tool('sdk_deploy_write',
       'INSERT INTO public.sdk_deploy_log (note) VALUES (:note) RETURNING pg_is_in_recovery() AS standby',
       'A writing tool', '[{"name": "note", "type": "string"}]', read_only => false);
     SELECT mcp.create_tool('sdk_deploy_slow', 'SELECT pg_sleep(0.02) IS NULL AS slept', 'Takes 20 ms');
     SELECT mcp.grant_tool(t, 'agent_tenant') FROM unnest(ARRAY['sdk_deploy_where', 'sdk_deploy_write', 'sdk_deploy_slow']) t;`
  );
  for (const principal of ['acme-support', 'globex-support']) {
    const [token] = await psql(`SELECT mcp.create_token(${lit(principal)}, 'deployment test')`);
    tokens[principal] = token;
  }
  // The standby has replayed all of it.
  await waitFor('the standby to replay the setup', async () =>
    (await psqlReplica(`SELECT count(*) FROM mcp.principal_tokens WHERE description = 'deployment test'`))[0] === '2');
});

after(async () => {
  if (!ENABLED) return;
  await psql(
    `SELECT mcp.drop_tool(t, true) FROM unnest(ARRAY['sdk_deploy_where', 'sdk_deploy_write', 'sdk_deploy_slow']) t;
     DELETE FROM mcp.principal_tokens WHERE description = 'deployment test';
     DROP TABLE IF EXISTS sdk_deploy_log;
     DROP OWNED BY ${LOGIN}; DROP ROLE IF EXISTS ${LOGIN};
     DROP OWNED BY ${POOL_LOGIN}; DROP ROLE IF EXISTS ${POOL_LOGIN};`
  );
});

test('deployment: after a restart (fast, immediate) calls succeed within 2 s; /readyz is 503 while down', TEST, async () => {
  const bridge = await startBridgeWith(['--http', '127.0.0.1:0', '--auth', 'token', '--agent', `${AGENT}-recovery`, '--pool-size', '4', direct]);
  const acme = await connect(bridge.url, tokens['acme-support']);
  const outcomes = [];
  let running = true;
  let down = false;
  // A steady load: one call after another, each outcome with the time it was answered.
  const load = (async () => {
    while (running) {
      let ok = false;
      try {
        ok = (await where(acme)).isError === false;
      } catch {
        ok = false;
      }
      outcomes.push({ ok, at: Date.now() });
      if (!ok) await sleep(20);
    }
  })();
  const readyz = async () => (await fetch(new URL('/readyz', bridge.url))).status;
  try {
    for (const mode of ['fast', 'immediate']) {
      const since = Date.now();
      await waitFor(`calls succeeding before the ${mode} stop`, async () => outcomes.some((o) => o.ok && o.at > since));
      await cluster('stop', env.PG_MCP_DEPLOY_PRIMARY_DIR, mode);
      down = true;
      await waitFor(`/readyz 503 after the ${mode} stop`, async () => (await readyz()) === 503, 5_000);
      // Down for a few seconds under load (every call fails meanwhile), as a slow restart is.
      await sleep(3000);
      assert.equal(await readyz(), 503, '/readyz stays 503 while the server is down');
      await startPrimary();
      down = false;
      const back = Date.now();  // the server accepts connections from here on
      await waitFor(`a call to succeed after the ${mode} restart`, async () => outcomes.some((o) => o.ok && o.at >= back), 15_000);
      const first = outcomes.find((o) => o.ok && o.at >= back);
      assert.ok(first.at - back < 2000, `first success ${first.at - back} ms after the server was back (${mode})`);
      await waitFor('/readyz 200 again', async () => (await readyz()) === 200, 5_000);
    }
    // The login's CONNECTION LIMIT lowered under load, its connections ended: the pool serves
    // with the connections it can have instead of stopping.
    await psql(`ALTER ROLE ${LOGIN} CONNECTION LIMIT 2;
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ${lit(LOGIN)};`);
    const limited = Date.now();
    await sleep(2000);
    const served = outcomes.filter((o) => o.ok && o.at > limited + 1000).length;
    assert.ok(served >= 20, `only ${served} calls served in the second second under CONNECTION LIMIT 2`);
  } finally {
    running = false;
    await load;
    if (down) await startPrimary();
    await psql(`ALTER ROLE ${LOGIN} CONNECTION LIMIT -1`);
    await acme.close();
    await bridge.stop();
  }
});

test('deployment: read-only tools run on the standby, writing tools on the primary, via PgBouncer', TEST, async () => {
  const spool = `${env.PG_MCP_DEPLOY_WORKDIR}/spool-routing.jsonl`;
  const bridge = await startBridge(viaBouncer, ['--no-prepared-statements', '--notify-dsn', direct,
    '--replica', replica, '--audit-spool', spool, '--pool-size', '4']);
  const acme = await connect(bridge.url, tokens['acme-support']);
  const globex = await connect(bridge.url, tokens['globex-support']);
  try {
    await waitFor('the replica to be in use', async () => (await metric(bridge.url, 'pg_mcp_bridge_replica_usable')) === 1);
    const read = await where(acme);
    assert.deepEqual(read.structuredContent.rows, [{ standby: true, role: 'agent_acme' }]);
    const write = await acme.client.callTool({ name: 'sdk_deploy_write', arguments: { note: AGENT } });
    assert.equal(write.isError, false, JSON.stringify(write));
    assert.deepEqual(write.structuredContent.rows, [{ standby: false }]);
    assert.equal((await psql(`SELECT count(*) FROM sdk_deploy_log WHERE note = ${lit(AGENT)}`, { single: false }))[0], '1');
    // The standby's audit record travels with the result to the bridge, not to the agent.
    assert.equal(read._meta['pg-mcp/standby_audit'], undefined);

    // Through one shared pool and PgBouncer, each call runs as its own principal: nothing of
    // one call's role or settings reaches the next (SET LOCAL ROLE ends with its transaction).
    const calls = [];
    for (let i = 0; i < 20; i++) {
      const session = i % 2 ? acme : globex;
      calls.push(session.client.callTool({ name: 'get_tenant_customers', arguments: {} }).then((r) => [i % 2, r]));
      calls.push(where(session).then((r) => [i % 2, r]));
    }
    for (const [isAcme, result] of await Promise.all(calls)) {
      assert.equal(result.isError, false, JSON.stringify(result));
      if (result.structuredContent.rows[0].role !== undefined)
        assert.equal(result.structuredContent.rows[0].role, isAcme ? 'agent_acme' : 'agent_globex');
    }
    const acmeRows = (await acme.client.callTool({ name: 'get_tenant_customers', arguments: {} })).structuredContent.rows;
    const expected = await psql(
      `SELECT id FROM app.tenant_customer_view WHERE tenant_id = ${lit(TENANTS[0])} ORDER BY id DESC LIMIT 25`, { single: false });
    assert.deepEqual(acmeRows.map((r) => String(r.id)), expected);

    // Every call has its audit row on the primary, the standby-served ones included.
    await waitFor('the spool to drain', async () => (await metric(bridge.url, 'pg_mcp_bridge_standby_audit_spooled')) === 0);
    const rows = await psql(
      `SELECT tool_name || ' ' || status || ' ' || caller_role, count(*) FROM mcp.audit_log
        WHERE agent_name = ${lit(AGENT)} GROUP BY 1 ORDER BY 1`, { single: false });
    assert.deepEqual(rows, [
      'get_tenant_customers truncated agent_acme|11',
      'get_tenant_customers truncated agent_globex|10',
      'sdk_deploy_where ok agent_acme|11',
      'sdk_deploy_where ok agent_globex|10',
      'sdk_deploy_write ok agent_acme|1'
    ]);
    // Each row names its call's trace, the standby-served ones too (the standby records it).
    const [traced] = await psql(
      `SELECT count(*) FILTER (WHERE trace_id ~ '^[0-9a-f]{32}$' AND span_id ~ '^[0-9a-f]{16}$') || ' ' ||
              count(DISTINCT trace_id) || ' ' || count(*)
         FROM mcp.audit_log WHERE agent_name = ${lit(AGENT)}`, { single: false });
    assert.equal(traced, '43 43 43', 'a trace id in every row, one trace per call');
    assert.ok((await metric(bridge.url, 'pg_mcp_bridge_routed_total{to="replica"}')) >= 42);
    assert.equal(await metric(bridge.url, 'pg_mcp_bridge_routed_total{to="write"}'), 1);
  } finally {
    await acme.close();
    await globex.close();
    await bridge.stop();
  }
});

test('deployment: no audit row is lost when the primary stops and restarts during standby-served calls', TEST, async () => {
  const agent = `${AGENT}-restart`;
  const spool = `${env.PG_MCP_DEPLOY_WORKDIR}/spool-restart.jsonl`;
  const bridge = await startBridgeWith(['--http', '127.0.0.1:0', '--auth', 'token', '--agent', agent,
    '--no-prepared-statements', '--notify-dsn', direct, '--replica', replica, '--audit-spool', spool, viaBouncer]);
  const acme = await connect(bridge.url, tokens['acme-support']);
  let primaryDown = false;
  try {
    await waitFor('the replica to be in use', async () => (await metric(bridge.url, 'pg_mcp_bridge_replica_usable')) === 1);
    let ok = 0;
    let duringOutage = 0;
    for (let i = 0; i < 60; i++) {
      if (i === 15) {
        await stopPrimary();
        primaryDown = true;
      }
      if (i === 40) {
        assert.ok((await metric(bridge.url, 'pg_mcp_bridge_standby_audit_spooled')) > 0, 'records wait in the spool');
        await startPrimary();
        primaryDown = false;
      }
      const result = await where(acme);
      assert.equal(result.isError, false, JSON.stringify(result));
      assert.equal(result.structuredContent.rows[0].standby, true);
      ok++;
      if (primaryDown) duringOutage++;
    }
    assert.equal(duringOutage, 25);
    await waitFor('the spool to drain after the restart', async () =>
      (await metric(bridge.url, 'pg_mcp_bridge_standby_audit_spooled')) === 0, 60_000);
    const [rows, distinct] = (await psql(
      `SELECT count(*) || ' ' || count(DISTINCT request_id) FROM mcp.audit_log WHERE agent_name = ${lit(agent)}`,
      { single: false }))[0].split(' ');
    assert.equal(Number(rows), ok, 'one audit row per call');
    assert.equal(Number(distinct), ok, 'no duplicates');
    // And they carry the standby's context, with a verifiable chain.
    assert.equal((await psql(`SELECT verified FROM mcp.verify_audit()`, { single: false }))[0], 't');
  } finally {
    if (primaryDown) await startPrimary();
    await acme.close();
    await bridge.stop();
  }
});

test('deployment: with --replica the bridge starts while the primary is down, serves the standby, spools audit', TEST, async () => {
  const agent = `${AGENT}-cold`;
  const spool = `${env.PG_MCP_DEPLOY_WORKDIR}/spool-cold.jsonl`;
  await stopPrimary();
  let primaryDown = true;
  let bridge;
  let acme;
  try {
    bridge = await startBridgeWith(['--http', '127.0.0.1:0', '--auth', 'token', '--agent', agent,
      '--no-prepared-statements', '--notify-dsn', direct, '--replica', replica, '--audit-spool', spool, viaBouncer]);
    assert.match(bridge.stderr.join(''), /starting with a read replica/);
    // Until the monitor has found the standby usable, calls are answered 503 "retry shortly".
    await waitFor('the replica to be in use', async () => (await metric(bridge.url, 'pg_mcp_bridge_replica_usable')) === 1);
    acme = await connect(bridge.url, tokens['acme-support']);
    let ok = 0;
    for (let i = 0; i < 10; i++) {
      const result = await where(acme);
      assert.equal(result.isError, false, JSON.stringify(result));
      assert.equal(result.structuredContent.rows[0].standby, true);
      ok++;
    }
    // A writing tool fails while the primary is down: "database unavailable, retry" (-32001).
    const write = await acme.client.callTool({ name: 'sdk_deploy_write', arguments: { note: 'cold' } })
      .catch((error) => error);
    assert.equal(write.code, -32001, `a writing tool fails while the primary is down: ${write}`);
    assert.equal(await metric(bridge.url, 'pg_mcp_bridge_standby_audit_spooled'), ok, 'records wait in the spool');
    await startPrimary();
    primaryDown = false;
    await waitFor('the spool to drain', async () =>
      (await metric(bridge.url, 'pg_mcp_bridge_standby_audit_spooled')) === 0, 60_000);
    const [rows] = await psql(`SELECT count(*) FROM mcp.audit_log WHERE agent_name = ${lit(agent)} AND tool_name = 'sdk_deploy_where'`);
    assert.equal(Number(rows), ok, 'one audit row per standby-served call');
    // Once the primary answers, a writing tool works.
    await waitFor('a write to succeed', async () =>
      (await acme.client.callTool({ name: 'sdk_deploy_write', arguments: { note: 'warm' } }).catch(() => ({ isError: true })))
        .isError === false, 30_000);
  } finally {
    if (primaryDown) await startPrimary();
    await acme?.close();
    await bridge?.stop();
  }
});

test('deployment: a replica that goes down is replaced by the primary, or refused when so configured', TEST, async () => {
  const spool = (name) => `${env.PG_MCP_DEPLOY_WORKDIR}/spool-${name}.jsonl`;
  const common = ['--notify-dsn', direct, '--replica', replica];
  const fallback = await startBridge(direct, [...common, '--audit-spool', spool('fallback')]);
  let strict, a, b;
  let replicaDown = false;
  try {
    strict = await startBridge(direct, [...common, '--audit-spool', spool('strict'), '--replica-fallback', 'fail']);
    a = await connect(fallback.url, tokens['acme-support']);
    b = await connect(strict.url, tokens['acme-support']);
    await waitFor('the replicas to be in use', async () =>
      (await metric(fallback.url, 'pg_mcp_bridge_replica_usable')) === 1 &&
      (await metric(strict.url, 'pg_mcp_bridge_replica_usable')) === 1);
    assert.equal((await where(a)).structuredContent.rows[0].standby, true);
    await stopReplica();
    replicaDown = true;
    // The first call after the failure already falls back (no error reaches the agent).
    const fell = await where(a);
    assert.equal(fell.isError, false);
    assert.equal(fell.structuredContent.rows[0].standby, false);
    await assert.rejects(where(b), (error) => /No read replica is usable/.test(error.message));
    await startReplica();
    replicaDown = false;
    await waitFor('the replica to be used again', async () => (await where(a)).structuredContent.rows[0].standby === true);
  } finally {
    if (replicaDown) await startReplica();
    await a?.close();
    await b?.close();
    await fallback.stop();
    await strict?.stop();
  }
});

test('deployment: a standby that stops replaying while the primary commits is not used', TEST, async () => {
  const spool = `${env.PG_MCP_DEPLOY_WORKDIR}/spool-lag.jsonl`;
  const bridge = await startBridge(direct, ['--notify-dsn', direct, '--replica', replica, '--audit-spool', spool,
    '--replica-max-lag', '1000']);
  const acme = await connect(bridge.url, tokens['acme-support']);
  let paused = false;
  try {
    await waitFor('the replica to be in use', async () => (await metric(bridge.url, 'pg_mcp_bridge_replica_usable')) === 1);
    assert.equal((await where(acme)).structuredContent.rows[0].standby, true);
    await psqlReplica('SELECT pg_wal_replay_pause()');
    paused = true;
    // The primary commits (a revoked token, a changed tool...): the standby falls behind.
    await psql(`INSERT INTO sdk_deploy_log (note) VALUES ('lag test')`);
    await waitFor('the lagging replica to be dropped', async () => (await metric(bridge.url, 'pg_mcp_bridge_replica_usable')) === 0, 15_000);
    assert.ok((await metric(bridge.url, 'pg_mcp_bridge_replica_lag_ms{replica="1"}')) > 1000);
    assert.equal((await where(acme)).structuredContent.rows[0].standby, false, 'served by the primary');
    await psqlReplica('SELECT pg_wal_replay_resume()');
    paused = false;
    await waitFor('the replica to be used again', async () => (await where(acme)).structuredContent.rows[0].standby === true);
  } finally {
    if (paused) await psqlReplica('SELECT pg_wal_replay_resume()');
    await acme.close();
    await bridge.stop();
  }
});

test('deployment: 50 agent sessions over a pool of 10 stay within the login role\'s CONNECTION LIMIT', TEST, async () => {
  const logBefore = (await readFile(`${env.PG_MCP_DEPLOY_PRIMARY_DIR}/server.log`, 'utf8')).length;
  // Asked for a pool of 20, the bridge fits it to the limit: 12 - 2 (listener, probe) = 10.
  const pooled = conninfo({ dbname: DB, user: POOL_LOGIN, host: env.PG_MCP_DEPLOY_PRIMARY_DIR, port: env.PG_MCP_DEPLOY_PRIMARY_PORT });
  const bridge = await startBridge(pooled, ['--pool-size', '20', '--notify-dsn', pooled]);
  assert.match(bridge.stderr.join(''), /--pool-size 20 .* CONNECTION LIMIT 12; using a pool of 10/);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const [count] = await psql(`SELECT count(*) FROM pg_stat_activity WHERE usename = ${lit(POOL_LOGIN)}`, { single: false });
      peak = Math.max(peak, Number(count));
      await sleep(20);
    }
  })();
  try {
    const sessions = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      connect(bridge.url, tokens[i % 2 ? 'acme-support' : 'globex-support'])));
    const results = await Promise.all(sessions.flatMap((s) =>
      [0, 1, 2].map(() => s.client.callTool({ name: 'sdk_deploy_slow', arguments: {} }))));
    assert.equal(results.length, 150);
    for (const result of results) assert.equal(result.isError, false, JSON.stringify(result));
    await Promise.all(sessions.map((s) => s.close()));
  } finally {
    sampling = false;
    await sampler;
    await bridge.stop();
  }
  assert.ok(peak >= 10, `the pool was used (peak ${peak})`);
  assert.ok(peak <= 12, `never more connections than the CONNECTION LIMIT of 12 (peak ${peak})`);
  const log = (await readFile(`${env.PG_MCP_DEPLOY_PRIMARY_DIR}/server.log`, 'utf8')).slice(logBefore);
  assert.doesNotMatch(log, /too many connections/);
});

test('deployment: a foreign Origin is refused before any authentication', TEST, async () => {
  const bridge = await startBridge(direct, ['--notify-dsn', direct]);
  try {
    const response = await fetch(bridge.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
        origin: 'https://evil.example', authorization: `Bearer ${tokens['acme-support']}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    });
    assert.equal(response.status, 403);
  } finally {
    await bridge.stop();
  }
});
