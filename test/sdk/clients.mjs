// Client factories for the two official TypeScript SDKs (not a test file).
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as StdioTransportV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as HttpTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { spawn } from 'node:child_process';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioTransportV2 } from '@modelcontextprotocol/client/stdio';
import { bridgeArgs, bridgeBinary, tapTransport } from './helpers.mjs';

export const REQUEST_TIMEOUT = { timeout: 20_000 };

/**
 * The transport the v1 tests use: 'stdio' (default) or 'http' (PG_MCP_SDK_TRANSPORT=http: each
 * connection starts `pg_mcp_bridge --http 127.0.0.1:0` and talks Streamable HTTP to it).
 */
export const TRANSPORT = process.env.PG_MCP_SDK_TRANSPORT || 'stdio';

/**
 * Starts an HTTP bridge on a free loopback port; resolves to { child, url, stderr, stop }.
 */
export async function startHttpBridge(user, extraArgs = []) {
  return startBridgeWith(['--http', '127.0.0.1:0', ...bridgeArgs(user, extraArgs)]);
}

/** The same with the whole command line given (it must include --http ADDRESS:PORT). */
export async function startBridgeWith(args, env = {}) {
  const child = spawn(await bridgeBinary(), args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe']
  });
  const stderr = [];
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`HTTP bridge did not start: ${stderr.join('')}`)), 20_000);
    child.stderr.on('data', (chunk) => {
      stderr.push(chunk.toString());
      const found = stderr.join('').match(/serving MCP on (http:\/\/\S+\/mcp)/);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`HTTP bridge exited (${code}): ${stderr.join('')}`));
    });
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
  };
  return { child, url, stderr, stop };
}

/**
 * v1 client (@modelcontextprotocol/sdk 1.x, legacy initialize handshake) connected to a bridge
 * running as `user`. `before(client)` runs before connect (register notification handlers there).
 * Returns { client, tap, close }; close() never throws. The bridge gets the full environment
 * (the SDK's default environment drops PGHOST/PGPORT/...).
 */
export async function connectV1(user, { extraArgs = [], before, capabilities = {} } = {}) {
  let transport;
  let http;
  if (TRANSPORT === 'http') {
    http = await startHttpBridge(user, extraArgs);
    transport = new HttpTransportV1(new URL(http.url));
  } else {
    transport = new StdioTransportV1({
      command: await bridgeBinary(),
      args: bridgeArgs(user, extraArgs),
      env: { ...process.env },
      stderr: 'pipe'
    });
  }
  const tap = tapTransport(transport);
  const client = new ClientV1({ name: 'pg-mcp-bridge-sdk-e2e-v1', version: '0.0.1' }, { capabilities });
  const errors = [];
  client.onerror = (e) => errors.push(e);
  before?.(client);
  const close = async () => {
    if (http) await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    await http?.stop();
  };
  try {
    await client.connect(transport, REQUEST_TIMEOUT);
  } catch (e) {
    await close();
    e.message += `\n${tap.transcript()}`;
    throw e;
  }
  return { client, transport, tap, errors, close };
}

/** Walk every tools/list page with a v1 client; returns { tools, pages } and caches all tools. */
export async function listAllToolsV1(client) {
  const tools = [];
  const pages = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? undefined : { cursor }, REQUEST_TIMEOUT);
    pages.push(page);
    tools.push(...page.tools);
    cursor = page.nextCursor;
    if (pages.length > 1000) throw new Error('tools/list pagination does not terminate');
  } while (cursor !== undefined);
  // listTools() caches only its own page for outputSchema validation; make it cover all pages.
  client.cacheToolMetadata(tools);
  return { tools, pages };
}

/**
 * v2 client (@modelcontextprotocol/client 2.x). mode: 'legacy' (the SDK default: no
 * versionNegotiation option at all), 'auto', or { pin: '2026-07-28' }. clientOptions are merged
 * into the Client's options (e.g. listChanged).
 */
export async function connectV2(user, { mode = 'legacy', extraArgs = [], before, clientOptions = {} } = {}) {
  const transport = new StdioTransportV2({
    command: await bridgeBinary(),
    args: bridgeArgs(user, extraArgs),
    env: { ...process.env },
    stderr: 'pipe'
  });
  const tap = tapTransport(transport);
  const options = { capabilities: {}, ...clientOptions };
  if (mode !== 'legacy') options.versionNegotiation = { mode, probe: { timeoutMs: 20_000 } };
  const client = new ClientV2({ name: 'pg-mcp-bridge-sdk-e2e-v2', version: '0.0.1' }, options);
  const errors = [];
  client.onerror = (e) => errors.push(e);
  before?.(client);
  const close = async () => {
    await client.close().catch(() => {});
  };
  try {
    await client.connect(transport, REQUEST_TIMEOUT);
  } catch (e) {
    await close();
    e.message += `\n${tap.transcript()}`;
    throw e;
  }
  return { client, transport, tap, errors, close };
}
