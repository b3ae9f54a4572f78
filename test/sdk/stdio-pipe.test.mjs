// stdio used as a pipe (`cat requests | pg_mcp_bridge`): every request read before the input
// ended is answered, however long the calls take, and a signal still ends the wait (requests
// then running get an error answer, not silence).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { bridgeArgs, bridgeBinary, createAndGrantTool, dropTool } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
const INITIALIZE = {
  jsonrpc: '2.0', id: 0, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'pipe', version: '1' } }
};

function run(lines, { killAfterMs } = {}) {
  return new Promise(async (resolve) => {
    const child = spawn(await bridgeBinary(), bridgeArgs('agent_support', ['--pool-size', '2']), { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', () => {});
    child.on('exit', () => resolve(out.split('\n').filter(Boolean).map((line) => JSON.parse(line))));
    child.stdin.end(lines.map((m) => JSON.stringify(m)).join('\n') + '\n');
    if (killAfterMs) setTimeout(() => child.kill('SIGTERM'), killAfterMs);
  });
}

test('stdio pipe: every request read before the input ended is answered', TEST_TIMEOUT, async () => {
  const calls = Array.from({ length: 400 }, (_, i) => ({
    jsonrpc: '2.0', id: i + 1, method: 'tools/call',
    params: { name: 'get_customer_info', arguments: { email: `customer${(i % 50) + 1}@example.com` } }
  }));
  const answers = await run([INITIALIZE, { jsonrpc: '2.0', method: 'notifications/initialized' }, ...calls]);
  const ids = new Set(answers.filter((a) => a.id > 0 && a.result && !a.result.isError).map((a) => a.id));
  assert.equal(ids.size, 400, `answered ${ids.size} of 400 calls`);
});

test('stdio pipe: a call still running when the input ends gets its result', TEST_TIMEOUT, async () => {
  await createAndGrantTool({
    name: 'sdk_pipe_slow', sql: 'SELECT pg_sleep(2.5) IS NULL AS slept', description: 'Sleeps 2.5 s', timeout: '60 s', grantTo: 'agent_support'
  });
  try {
    const slow = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'sdk_pipe_slow', arguments: {} } };
    const answers = await run([INITIALIZE, { jsonrpc: '2.0', method: 'notifications/initialized' }, slow]);
    const answer = answers.find((a) => a.id === 5);
    assert.ok(answer?.result && !answer.result.isError, `the slow call was answered with its result: ${JSON.stringify(answer)}`);
  } finally {
    await dropTool('sdk_pipe_slow');
  }
});

test('stdio pipe: a signal during the wait answers what still runs with an error', TEST_TIMEOUT, async () => {
  await createAndGrantTool({
    name: 'sdk_pipe_sleep', sql: 'SELECT pg_sleep(30) IS NULL AS x', description: 'Sleeps', timeout: '60 s', grantTo: 'agent_support'
  });
  try {
    const slow = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'sdk_pipe_sleep', arguments: {} } };
    const ping = { jsonrpc: '2.0', id: 8, method: 'ping' };
    const started = Date.now();
    const answers = await run([INITIALIZE, { jsonrpc: '2.0', method: 'notifications/initialized' }, slow, ping],
      { killAfterMs: 2000 });
    assert.ok(Date.now() - started < 20_000, 'the signal ended the wait');
    assert.ok(answers.some((a) => a.id === 8 && a.result), 'the ping was answered');
    const stopped = answers.find((a) => a.id === 7);
    assert.ok(stopped, 'the running call got an answer');
    assert.match(stopped.error.message, /Server shutting down/);
  } finally {
    await dropTool('sdk_pipe_sleep');
  }
});
