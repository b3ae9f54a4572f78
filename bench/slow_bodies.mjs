// Slow-body flood against pg_mcp_bridge: N connections from 3 loopback addresses each send a
// request head announcing a 100 kB body, then trickle it a byte every 300 ms (reconnecting
// when closed), while one real client calls a tool in a loop. Prints the real client's
// success rate and latency percentiles. Needs a cluster with the demo database (PGHOST etc.):
//   node bench/slow_bodies.mjs BRIDGE_BINARY [token|none] [CONNECTIONS] [SECONDS]
import { spawn } from 'node:child_process';
import { connect } from 'node:net';

const [bridgeBinary, auth = 'token', connections = '520', seconds = '30'] = process.argv.slice(2);
const db = process.env.PG_MCP_E2E_DB ?? 'pg_mcp_e2e';
const port = 18900 + Math.floor(Math.random() * 50);
const url = `http://127.0.0.1:${port}/mcp`;
const JSON_AND_SSE = 'application/json, text/event-stream';

function psql(sql) {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', ['-X', '-A', '-t', '-q', '-d', db, '-c', sql]);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`psql ${code}`))));
  });
}

const args = ['--http', `127.0.0.1:${port}`, `dbname=${db}`];
let token;
if (auth === 'token') {
  token = await psql(`SELECT mcp.create_token('acme-support', 'slow body bench')`);
  args.unshift('--auth', 'token');
}
const bridge = spawn(bridgeBinary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
await new Promise((resolve) => bridge.stderr.on('data', (c) => c.toString().includes('serving MCP') && resolve()));

let stop = false;
let opened = 0;
function attacker(from) {
  if (stop) return;
  const socket = connect({ host: '127.0.0.1', port, localAddress: from });
  opened++;
  let timer;
  socket.on('connect', () => {
    socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
      `Accept: ${JSON_AND_SSE}\r\nContent-Length: 100000\r\n\r\n{`);
    timer = setInterval(() => socket.write(' '), 300);
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    clearInterval(timer);
    setTimeout(() => attacker(from), 50);
  });
}
const addresses = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
for (let i = 0; i < Number(connections); i++) attacker(addresses[i % 3]);
await new Promise((resolve) => setTimeout(resolve, 2000));

const headers = { 'content-type': 'application/json', accept: JSON_AND_SSE, ...(token ? { authorization: `Bearer ${token}` } : {}) };
async function rpc(body, session) {
  const answer = await fetch(url, {
    method: 'POST',
    headers: { ...headers, ...(session ? { 'mcp-session-id': session } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000)
  });
  return { status: answer.status, session: answer.headers.get('mcp-session-id'), text: await answer.text() };
}
let session;
const latencies = [];
let ok = 0;
let failed = 0;
const end = Date.now() + Number(seconds) * 1000;
while (Date.now() < end) {
  const started = performance.now();
  try {
    if (!session) {
      const init = await rpc({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
      if (init.status !== 200) throw new Error(`initialize ${init.status}`);
      session = init.session;
      await rpc({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    }
    // A token's principal (acme-support) has the tenant tool; the login role the support tool.
    const call = token ? { name: 'get_tenant_customers', arguments: {} }
      : { name: 'get_customer_info', arguments: { email: 'customer5@example.com' } };
    const called = await rpc({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: call }, session);
    if (called.status !== 200 || called.text.includes('"error"')) throw new Error(`call ${called.status}`);
    ok++;
  } catch {
    failed++;
    session = undefined;
  }
  latencies.push(performance.now() - started);
  await new Promise((resolve) => setTimeout(resolve, 100));
}
stop = true;
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1);
console.log(`auth=${auth} slow connections=${connections} (opened ${opened} in all) ${seconds} s: ` +
  `real client ${ok}/${ok + failed} calls ok, p50 ${pct(50)} ms, p99 ${pct(99)} ms`);
bridge.kill('SIGTERM');
if (token) await psql(`DELETE FROM mcp.principal_tokens WHERE description = 'slow body bench'`);
process.exit(0);
