// Streamable HTTP answers that are event streams: progress of a long call (SDK v1 and v2), the
// Accept rules (JSON, a stream, or either), and cancellation by a client that goes away during a
// call (both protocol eras): the query is cancelled in PostgreSQL and audited as cancelled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HttpTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpTransportV2 } from '@modelcontextprotocol/client';
import { startHttpBridge } from './clients.mjs';
import { createAndGrantTool, dropTool, lit, psql, sleep, sleepingBridgeBackends, uniqueName, waitFor } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
const MODERN = '2026-07-28';

function modernMeta(extra = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'http-stream-test', version: '1' },
    ...extra
  };
}

/** The events of an SSE body, as parsed JSON messages. */
function sseMessages(text) {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n'))
    .filter((data) => data !== '')
    .map((data) => JSON.parse(data));
}

async function withSleepTool(body) {
  const name = uniqueName('stream_sleep');
  await createAndGrantTool({
    name,
    sql: 'SELECT pg_sleep(:s) IS NOT NULL AS slept',
    description: 'sleeps (http-stream test); dropped by the test',
    parameters: [{ name: 's', type: 'number' }],
    timeout: '30 seconds',
    grantTo: 'agent_support'
  });
  try {
    await body(name);
  } finally {
    await dropTool(name);
  }
}

test('http: a 3 s call with a progress token streams its progress, then its result (SDK v1 and v2)', TEST_TIMEOUT, async () => {
  await withSleepTool(async (tool) => {
    const bridge = await startHttpBridge('agent_support');
    try {
      for (const [label, Client, Transport] of [
        ['v1', ClientV1, HttpTransportV1],
        ['v2', ClientV2, HttpTransportV2]
      ]) {
        const client = new Client({ name: `progress-${label}`, version: '1' }, { capabilities: {} });
        await client.connect(new Transport(new URL(bridge.url)));
        try {
          const progress = [];
          const options = { timeout: 20_000, onprogress: (p) => progress.push(p) };
          const params = { name: tool, arguments: { s: 3 } };
          // v1: callTool(params, resultSchema, options); v2: callTool(params, options).
          const result = await (label === 'v1' ? client.callTool(params, undefined, options) : client.callTool(params, options));
          assert.equal(result.isError, false, `${label}: ${JSON.stringify(result)}`);
          assert.ok(progress.length >= 2, `${label}: progress notifications arrived: ${JSON.stringify(progress)}`);
          assert.deepEqual(
            progress.map((p) => p.progress),
            [...progress.keys()].map((i) => i + 1),
            `${label}: one a second, counting the seconds`
          );
          assert.match(progress[0].message, new RegExp(`tool ${tool} running`));
        } finally {
          await client.close().catch(() => {});
        }
      }
    } finally {
      await bridge.stop();
    }
  });
});

test('http: Accept picks the answer: JSON, an event stream, or either', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  try {
    const list = (id) => ({ jsonrpc: '2.0', id, method: 'tools/list', params: { _meta: modernMeta() } });
    const ask = (accept, id) =>
      fetch(bridge.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' },
        body: JSON.stringify(list(id))
      });
    for (const accept of ['application/json', '*/*', 'application/json, text/event-stream']) {
      const response = await ask(accept, 1);
      assert.equal(response.status, 200, accept);
      assert.match(response.headers.get('content-type'), /^application\/json/, accept);
      assert.ok((await response.json()).result.tools.length > 0, accept);
    }
    const streamed = await ask('text/event-stream', 2);
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers.get('content-type'), /^text\/event-stream/);
    const messages = sseMessages(await streamed.text());
    assert.equal(messages.length, 1, 'the response alone');
    assert.equal(messages[0].id, 2);
    assert.ok(messages[0].result.tools.length > 0);
    assert.equal((await ask('text/html', 3)).status, 406);
  } finally {
    await bridge.stop();
  }
});

/** Aborts a POSTed call after a second; then the query is cancelled and audited so. */
async function abortMidCall(bridge, tool, body, headers) {
  const [before] = await psql('SELECT coalesce(max(id), 0) FROM mcp.audit_log', { single: false });
  const abort = new AbortController();
  const pending = fetch(bridge.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
    signal: abort.signal
  }).then((r) => r.text());
  await waitFor(async () => (await sleepingBridgeBackends('agent_support')).length === 1, {
    timeoutMs: 5000,
    what: 'the call to be running'
  });
  await sleep(300);
  abort.abort();
  await assert.rejects(pending);
  const row = await waitFor(
    async () => {
      const [line] = await psql(
        `SELECT row_to_json(a) FROM (SELECT status, sqlstate FROM mcp.audit_log
                                      WHERE tool_name = ${lit(tool)} AND id > ${Number(before)}
                                      ORDER BY id DESC LIMIT 1) a`,
        { single: false }
      );
      return line && JSON.parse(line);
    },
    { timeoutMs: 3000, what: 'the audit row of the abandoned call (was it cancelled?)' }
  );
  assert.equal(row.status, 'cancelled', JSON.stringify(row));
  assert.deepEqual(await sleepingBridgeBackends('agent_support'), [], 'no backend still sleeps');
}

test('http: a client that goes away mid-call cancels the query, in both eras', TEST_TIMEOUT, async () => {
  await withSleepTool(async (tool) => {
    const bridge = await startHttpBridge('agent_support');
    try {
      // 2026-07-28: one POST per request, no session.
      await abortMidCall(
        bridge,
        tool,
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: { s: 10 }, _meta: modernMeta() } },
        { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': tool }
      );
      // 2025-11-25: in a session, with and without a progress token (a stream or JSON).
      const init = await fetch(bridge.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'abort', version: '1' } }
        })
      });
      const session = { 'mcp-session-id': init.headers.get('mcp-session-id'), 'mcp-protocol-version': '2025-11-25' };
      await init.text();
      for (const [id, meta] of [
        [2, {}],
        [3, { _meta: { progressToken: 'p' } }]
      ])
        await abortMidCall(
          bridge,
          tool,
          { jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: { s: 10 }, ...meta } },
          session
        );
    } finally {
      await bridge.stop();
    }
  });
});

test('http: a v2 client pinned to 2026-07-28 hears of catalog changes on its subscriptions/listen stream', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  const toolName = uniqueName('listen_http');
  let client;
  let created = false;
  try {
    const changed = [];
    client = new ClientV2(
      { name: 'listen-http', version: '1' },
      {
        capabilities: {},
        versionNegotiation: { mode: { pin: MODERN }, probe: { timeoutMs: 20_000 } },
        listChanged: { tools: { autoRefresh: true, onChanged: (error, tools) => changed.push({ error, tools }) } }
      }
    );
    await client.connect(new HttpTransportV2(new URL(bridge.url)));
    assert.equal(client.getProtocolEra(), 'modern');
    assert.ok(client.autoOpenedSubscription, 'the SDK opened subscriptions/listen over HTTP');
    created = true;
    await createAndGrantTool({
      name: toolName,
      sql: 'SELECT 1 AS one',
      description: 'http-stream test tool (listen over HTTP); dropped by the test',
      grantTo: 'agent_support'
    });
    await waitFor(() => changed.some((c) => c.error == null && c.tools?.some((x) => x.name === toolName)), {
      timeoutMs: 10_000,
      what: `onChanged with a tool list including ${toolName}`
    });
    // The stream is open while the client listens; closing it ends the subscription.
    await client.autoOpenedSubscription.close();
  } finally {
    await client?.close().catch(() => {});
    if (created) await dropTool(toolName);
    await bridge.stop();
  }
});

test('http: open subscriptions give way to a client that talks (eviction), and end with their subscription', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--max-connections', '2']);
  try {
    const headers = (method) => ({
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method
    });
    const listen = async (id) => {
      const response = await fetch(bridge.url, {
        method: 'POST',
        headers: headers('subscriptions/listen'),
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'subscriptions/listen',
          params: { notifications: { toolsListChanged: true }, _meta: modernMeta() }
        })
      });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type'), /^text\/event-stream/);
      const stream = response.body.getReader();
      const first = await stream.read();
      assert.match(new TextDecoder().decode(first.value), /notifications\/subscriptions\/acknowledged/);
      return stream;
    };
    const streams = [await listen('s1'), await listen('s2')];
    // Both connections are taken by subscriptions: a new client is served all the same.
    const list = await fetch(bridge.url, {
      method: 'POST',
      headers: headers('tools/list'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: modernMeta() } })
    });
    assert.equal(list.status, 200);
    assert.ok((await list.json()).result.tools.length > 0);
    // One subscription made room: its stream has ended.
    const ended = await Promise.race(
      streams.map(async (stream) => {
        for (;;) {
          const chunk = await stream.read().catch(() => ({ done: true }));
          if (chunk.done) return true;
        }
      }).concat([sleep(5000).then(() => false)])
    );
    assert.ok(ended, 'an idle subscription was closed to admit the new client');
    for (const stream of streams) await stream.cancel().catch(() => {});
  } finally {
    await bridge.stop();
  }
});
