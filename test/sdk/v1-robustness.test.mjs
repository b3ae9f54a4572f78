// Error paths of the bridge's stdio framing, seen through the v1 SDK: whatever the bridge writes
// must be a valid MCP JSON-RPC message, and the session must survive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectV1, listAllToolsV1, REQUEST_TIMEOUT } from './clients.mjs';
import { withTranscript } from './helpers.mjs';

// The SDK transport reports lines it cannot parse as an MCP JSON-RPC message through onerror
// (a zod validation error); it never hands them to the protocol layer.
const isUnparseable = (e) => e?.name === 'ZodError' || /"code":\s*"invalid_(union|type)"/.test(e?.message ?? '');

test('v1: an over-long request gets a schema-valid error and the session continues', { timeout: 60_000 }, async (t) => {
  let conn;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      conn = await connectV1('agent_support', { extraArgs: ['--max-message-bytes', '4096'] });
      const { client, errors } = conn;
      await listAllToolsV1(client);

      // A request line over --max-message-bytes is discarded by the bridge with a JSON-RPC error.
      // (Whether the caller learns of it before its own timeout depends on the bridge recovering
      // the request id; only the error's validity is asserted here.)
      await assert.rejects(
        client.callTool({ name: 'get_customer_info', arguments: { email: `${'a'.repeat(5000)}@example.com` } }, undefined, { timeout: 3000 })
      );
      const unparseable = errors.filter(isUnparseable);
      assert.deepEqual(
        unparseable.map((e) => e.message.slice(0, 200)),
        [],
        'the bridge wrote a message that is not valid MCP JSON-RPC (an error response must carry the request id or omit "id"; MCP forbids null ids)'
      );

      const res = await client.callTool({ name: 'get_customer_info', arguments: { email: 'customer5@example.com' } }, undefined, REQUEST_TIMEOUT);
      assert.equal(res.isError, false);
      assert.equal(res.structuredContent.rows[0].email, 'customer5@example.com');
    },
    () => conn?.close()
  );
});

// Messages that cannot be parsed whole — a lone UTF-16 surrogate, a number out of range, nesting
// over the limit — still get an error carrying their id, over stdio and HTTP, so the client's
// request fails at once instead of waiting for its own timeout.
const UNPARSABLE = [
  ['a lone surrogate', (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"get_customer_info","arguments":{"email":"\\ud800"}}}`],
  ['1e400', (id) => `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get_customer_info","arguments":{"n":1e400}},"id":${id}}`],
  ['200-deep nesting', (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"x","arguments":{"a":${'['.repeat(200)}${']'.repeat(200)}}}}`]
];

test('stdio: unparsable requests get an error with their id', { timeout: 60_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const { bridgeArgs, bridgeBinary } = await import('./helpers.mjs');
  const child = spawn(await bridgeBinary(), bridgeArgs('agent_support'), { stdio: ['pipe', 'pipe', 'ignore'] });
  const lines = [];
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    let at;
    while ((at = buffered.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffered.slice(0, at)));
      buffered = buffered.slice(at + 1);
    }
  });
  try {
    UNPARSABLE.forEach(([, make], i) => child.stdin.write(make(100 + i) + '\n'));
    const deadline = Date.now() + 10_000;
    while (lines.length < UNPARSABLE.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    UNPARSABLE.forEach(([what], i) => {
      const reply = lines.find((line) => line.id === 100 + i);
      assert.ok(reply, `${what}: no reply with id ${100 + i} in ${JSON.stringify(lines)}`);
      assert.ok([-32700, -32600].includes(reply.error?.code), `${what}: ${JSON.stringify(reply)}`);
    });
  } finally {
    child.kill('SIGTERM');
  }
});

test('http: unparsable requests get an error with their id', { timeout: 60_000 }, async () => {
  const { startHttpBridge } = await import('./clients.mjs');
  const bridge = await startHttpBridge('agent_support');
  try {
    for (const [what, make] of UNPARSABLE) {
      const response = await fetch(bridge.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25'
        },
        body: make(7)
      });
      assert.equal(response.status, 400, what);
      const body = await response.json();
      assert.equal(body.id, 7, `${what}: ${JSON.stringify(body)}`);
      assert.ok([-32700, -32600].includes(body.error.code), what);
    }
  } finally {
    await bridge.stop();
  }
});
