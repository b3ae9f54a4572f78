// Shared helpers for the SDK end-to-end tests of pg_mcp_bridge.
//
// Configuration (environment):
//   PG_MCP_BRIDGE          path of the bridge binary (default: ../../build/cmake/pg_mcp_bridge,
//                          relative to this directory; a relative value is taken from the cwd)
//   PG_MCP_E2E_DB          database with the pg_mcp extension and demo/demo.sql loaded (default demo)
//   PG_MCP_E2E_SUPERUSER   superuser for psql and for the bridge in the pagination test
//                          (default postgres)
//   PGHOST, PGPORT, ...    as usual for libpq and psql; passed on to the bridge unchanged
//
// This file is not a test file (node --test only picks up *.test.mjs here).
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));

export const BRIDGE = process.env.PG_MCP_BRIDGE
  ? resolve(process.env.PG_MCP_BRIDGE)
  : resolve(here, '../../build/cmake/pg_mcp_bridge');
export const DB = process.env.PG_MCP_E2E_DB || 'demo';
export const SUPERUSER = process.env.PG_MCP_E2E_SUPERUSER || 'postgres';

// Every tool granted in the demo (a superuser sees them all), in name order.
export const DEMO_TOOLS = ['cancel_subscription', 'describe_object', 'get_customer_analytics', 'get_customer_info',
  'get_tenant_customers', 'list_objects', 'propose_tool', 'query'];
export const TENANTS = [
  '11111111-1111-4111-8111-111111111111',
  '22222222-2222-4222-8222-222222222222',
  '33333333-3333-4333-8333-333333333333'
];
// Every tool these tests create starts with this prefix (and is dropped again).
export const TEMP_TOOL_PREFIX = 'sdk_';

/**
 * Tool names without the temporary tools of this suite: test files may run in parallel
 * (node --test runs files concurrently on machines with more than two cores), and a tool another
 * file created for agent_support may show up in this file's tools/list.
 */
export function withoutTempTools(names) {
  return names.filter((n) => !n.startsWith(TEMP_TOOL_PREFIX));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A name unique to this run and call, e.g. sdk_e2e_lc_1234_lq3x9a_5f2c. */
export function uniqueName(kind) {
  return `${TEMP_TOOL_PREFIX}${kind}_${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** libpq keyword/value connection string with properly quoted values. */
export function conninfo(fields) {
  return Object.entries(fields)
    .map(([k, v]) => `${k}='${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`)
    .join(' ');
}

/** A free TCP port on the loopback (for a server a test starts on a known port). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
    server.on('error', reject);
  });
}

/** SQL string literal. */
export function lit(value) {
  return `'${String(value).replace(/'/g, "''")}'`;
}

/**
 * Wait until the bridge binary exists and is executable (it may be briefly missing while
 * someone rebuilds it), then return its path.
 */
export async function bridgeBinary(timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await access(BRIDGE, constants.X_OK);
      return BRIDGE;
    } catch (e) {
      if (Date.now() > deadline) {
        throw new Error(`bridge binary ${BRIDGE} not found or not executable (set PG_MCP_BRIDGE): ${e.message}`);
      }
      await sleep(1000);
    }
  }
}

/** Arguments of the bridge process for a login role. */
export function bridgeArgs(user, extra = []) {
  return [...extra, conninfo({ dbname: DB, user })];
}

/**
 * Run SQL with psql as the superuser; resolves to the unaligned, tuples-only output lines.
 * With single: true (default) the whole script runs in one transaction (psql -1).
 */
export function psql(sql, { single = true, user = SUPERUSER } = {}) {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', DB, '-U', user];
  if (single) args.push('-1');
  args.push('-c', sql);
  return new Promise((resolvePromise, reject) => {
    execFile('psql', args, { env: process.env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`psql failed (${err.code ?? err.signal}): ${stderr || err.message}\nSQL: ${sql}`));
        return;
      }
      resolvePromise(stdout.split('\n').filter((l) => l !== ''));
    });
  });
}

/** Run a query returning one jsonb/json value; resolves to the parsed value. */
export async function psqlJson(sql) {
  const lines = await psql(sql, { single: false });
  if (lines.length !== 1) throw new Error(`expected one line from psql, got ${lines.length}: ${lines.join('\n')}`);
  return JSON.parse(lines[0]);
}

/** Create a tool (as the superuser) and grant it, in one transaction. */
export async function createAndGrantTool({ name, sql, description, parameters = [], timeout = null, grantTo }) {
  const args = [
    `name => ${lit(name)}`,
    `sql => ${lit(sql)}`,
    `description => ${lit(description)}`,
    `parameters => ${lit(JSON.stringify(parameters))}::jsonb`
  ];
  if (timeout) args.push(`timeout => ${lit(timeout)}::interval`);
  await psql(
    `SELECT mcp.create_tool(${args.join(', ')});\n` +
      `SELECT mcp.grant_tool(${lit(name)}, ${lit(grantTo)});`
  );
}

/** Drop tools if they exist; never throws (cleanup path), returns the error if any. */
export async function dropTool(...names) {
  try {
    await psql(names.map((name) => `SELECT mcp.drop_tool(${lit(name)}, if_exists => true);`).join('\n'));
    return undefined;
  } catch (e) {
    return e;
  }
}

/** Poll fn() until it returns a truthy value; throws with `what` after timeoutMs. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value: ${JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

/** A promise for the next value passed to the returned `push`, with a bounded wait. */
export function signal() {
  const waiters = [];
  const seen = [];
  return {
    seen,
    push(value) {
      seen.push(value);
      for (const w of waiters.splice(0)) w(value);
    },
    /** Resolves with the first value (already seen after index `from`, or arriving) matching pred. */
    next({ timeoutMs, what, from = 0, pred = () => true }) {
      const hit = seen.slice(from).find(pred);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
        const waiter = (value) => {
          if (!pred(value)) {
            waiters.push(waiter);
            return;
          }
          clearTimeout(timer);
          resolvePromise(value);
        };
        waiters.push(waiter);
      });
    }
  };
}

/**
 * Record every JSON-RPC message a transport sends and receives (for diagnostics and
 * wire-level assertions), and the bridge's stderr (the transport must use stderr: 'pipe').
 * Call before connect().
 */
export function tapTransport(transport) {
  const wire = [];
  const stderr = [];
  const origSend = transport.send.bind(transport);
  transport.send = (message, options) => {
    wire.push({ dir: '->', t: Date.now(), message });
    return origSend(message, options);
  };
  let inner;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get() {
      if (!inner) return undefined;
      return (message, extra) => {
        wire.push({ dir: '<-', t: Date.now(), message });
        return inner(message, extra);
      };
    },
    set(fn) {
      inner = fn;
    }
  });
  transport.stderr?.on('data', (chunk) => stderr.push(chunk.toString()));
  return {
    wire,
    stderr,
    /** Human-readable transcript: one JSON message per line, and the bridge's stderr. */
    transcript() {
      const lines = wire.map((w) => `${w.dir} ${JSON.stringify(w.message)}`);
      return `--- JSON-RPC (-> client to bridge, <- bridge to client) ---\n${lines.join('\n')}\n--- bridge stderr ---\n${stderr.join('')}`;
    }
  };
}

/**
 * Run body(); if it throws, print the transcript(s) as test diagnostics (shown by the
 * reporter) and rethrow. Always runs cleanup() (closing clients), even on failure.
 */
export async function withTranscript(t, taps, body, cleanup) {
  try {
    return await body();
  } catch (e) {
    for (const tap of taps()) {
      if (tap) for (const line of tap.transcript().split('\n')) t.diagnostic(line);
    }
    throw e;
  } finally {
    await cleanup?.();
  }
}

/**
 * Pids of the bridge's backends (application_name pg_mcp_bridge) in this database, logged in as
 * `user`, currently inside pg_sleep(). (pg_stat_activity.query shows the bridge's top-level
 * statement, SELECT mcp.call_tool(...), never the tool's SQL, so the wait event is what tells.)
 */
export async function sleepingBridgeBackends(user) {
  const lines = await psql(
    `SELECT pid FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'pg_mcp_bridge%'
        AND usename = ${lit(user)} AND state = 'active' AND wait_event = 'PgSleep'`,
    { single: false }
  );
  return lines.map(Number);
}
