// Traces (pg_mcp_bridge --otlp-endpoint): the official SDK client sends a W3C traceparent (an
// HTTP header, or params._meta as the MCP semantic conventions place it over stdio); an OTLP
// receiver on loopback (this file's, decoding OTLP/HTTP JSON) gets the request's span and its
// children with that trace id and the semantic-convention attributes; the call's audit row has
// the same trace id, and the tool's SQL sees it (pg_mcp.traceparent, application_name). A dead
// collector changes nothing for callers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startHttpBridge, REQUEST_TIMEOUT } from './clients.mjs';
import { bridgeArgs, bridgeBinary, createAndGrantTool, dropTool, psql, lit, waitFor } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };
let receiver;
let collector;  // its URL
const received = [];
const exports = [];  // metric export requests, as received

before(async () => {
  receiver = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    if (req.method !== 'POST' || !['/v1/traces', '/v1/metrics'].includes(req.url) ||
        req.headers['content-type'] !== 'application/json') {
      res.writeHead(404).end();
      return;
    }
    const request = JSON.parse(body);
    if (req.url === '/v1/metrics') {
      exports.push(request);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    for (const resourceSpans of request.resourceSpans) {
      const resource = Object.fromEntries(resourceSpans.resource.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
      for (const scopeSpans of resourceSpans.scopeSpans)
        for (const span of scopeSpans.spans)
          received.push({
            ...span,
            resource,
            attrs: Object.fromEntries(span.attributes.map((a) => [a.key, Object.values(a.value)[0]]))
          });
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  collector = `http://127.0.0.1:${receiver.address().port}`;
  await createAndGrantTool({
    name: 'sdk_trace_context',
    sql: `SELECT current_setting('pg_mcp.traceparent', true) AS traceparent, current_setting('application_name') AS app,
                 (SELECT count(*) FROM pg_sleep(0.3)) AS slept`,
    description: 'The trace context the tool SQL sees',
    grantTo: 'agent_support'
  });
});

after(async () => {
  await dropTool('sdk_trace_context');
  await new Promise((resolve) => receiver.close(resolve));
});

const traceparent = () => {
  const trace = randomBytes(16).toString('hex');
  const parent = randomBytes(8).toString('hex');
  return { trace, parent, header: `00-${trace}-${parent}-01` };
};

function spansOf(trace) {
  return received.filter((s) => s.traceId === trace);
}

async function auditRows(trace) {
  const lines = await psql(
    `SELECT row_to_json(a)::text FROM (SELECT tool_name, status, trace_id, span_id FROM mcp.audit_log
      WHERE trace_id = ${lit(trace)} ORDER BY id) a`,
    { single: false }
  );
  return lines.map((l) => JSON.parse(l));
}

test('traces: a traceparent header reaches the spans, the audit row and the tool SQL (HTTP)', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--otlp-endpoint', collector]);
  const { trace, parent, header } = traceparent();
  const transport = new StreamableHTTPClientTransport(new URL(bridge.url), { requestInit: { headers: { traceparent: header } } });
  const client = new Client({ name: 'trace-test', version: '1' }, { capabilities: {} });
  try {
    await client.connect(transport);
    const called = await client.callTool({ name: 'get_customer_info', arguments: { email: 'customer1@example.com' } }, undefined, REQUEST_TIMEOUT);
    assert.equal(called.isError, false, JSON.stringify(called));

    // The request's span, a child of the client's, with the MCP semantic-convention attributes.
    const server = await waitFor(
      () => spansOf(trace).find((s) => s.name === 'tools/call get_customer_info'),
      { timeoutMs: 10_000, what: 'the tools/call span at the receiver' }
    );
    assert.equal(server.parentSpanId, parent);
    assert.equal(server.kind, 2, 'SERVER');
    assert.equal(server.attrs['mcp.method.name'], 'tools/call');
    assert.equal(server.attrs['gen_ai.tool.name'], 'get_customer_info');
    assert.equal(server.attrs['gen_ai.operation.name'], 'execute_tool');
    assert.equal(server.attrs['mcp.session.id'], transport.sessionId);
    assert.equal(server.attrs['mcp.protocol.version'], '2025-11-25');
    assert.equal(server.attrs['network.transport'], 'tcp');
    assert.equal(server.attrs['network.protocol.name'], 'http');
    assert.equal(server.attrs['network.protocol.version'], '1.1');
    assert.equal(server.attrs['client.address'], '127.0.0.1');
    assert.ok(Number(server.attrs['client.port']) > 0, `client.port ${server.attrs['client.port']}`);
    assert.match(server.attrs['jsonrpc.request.id'], /^\d+$/, 'the id as the client sent it');
    assert.equal(server.resource['service.name'], 'pg_mcp_bridge');
    assert.ok(BigInt(server.endTimeUnixNano) >= BigInt(server.startTimeUnixNano));
    // Its children: the wait for a pool connection, and the database call.
    const children = await waitFor(() => {
      const found = spansOf(trace).filter((s) => s.parentSpanId === server.spanId);
      return found.some((s) => s.kind === 3) && found;
    }, { timeoutMs: 10_000, what: 'the child spans' });
    const db = children.find((s) => s.kind === 3);  // CLIENT: the database call
    assert.equal(db.attrs['db.system.name'], 'postgresql');
    assert.equal(db.attrs['db.namespace'], process.env.PG_MCP_E2E_DB || 'demo');
    assert.equal(db.attrs['db.query.summary'], 'SELECT mcp.serve_call');
    assert.ok(children.some((s) => s.name === 'pg_mcp pool wait'), children.map((s) => s.name).join(', '));
    for (const child of children) assert.ok(BigInt(child.startTimeUnixNano) >= BigInt(server.startTimeUnixNano), child.name);

    // The audit row: the same trace, the database call's span.
    const rows = await auditRows(trace);
    assert.deepEqual(rows, [{ tool_name: 'get_customer_info', status: 'ok', trace_id: trace, span_id: db.spanId }]);

    // The tool's SQL session sees the context (setting and application_name).
    const seen = await client.callTool({ name: 'sdk_trace_context', arguments: {} }, undefined, REQUEST_TIMEOUT);
    const [row] = seen.structuredContent.rows;
    assert.match(row.traceparent, new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    assert.equal(row.app, `pg_mcp_bridge ${row.traceparent.slice(3, 52)}`);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    await bridge.stop();
  }
});

/** The data points of a metric in an export, with their attributes as an object. */
function points(request, name) {
  const out = [];
  for (const resourceMetrics of request.resourceMetrics)
    for (const scopeMetrics of resourceMetrics.scopeMetrics)
      for (const metric of scopeMetrics.metrics)
        if (metric.name === name)
          for (const point of (metric.histogram || metric.sum).dataPoints)
            out.push({ ...point, unit: metric.unit, attrs: Object.fromEntries(point.attributes.map((a) => [a.key, Object.values(a.value)[0]])) });
  return out;
}

test('traces: OTLP metrics of every request (mcp.server.operation.duration) and tool calls by outcome', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support', ['--otlp-endpoint', collector, '--otlp-metrics-interval', '200']);
  const transport = new StreamableHTTPClientTransport(new URL(bridge.url));
  const client = new Client({ name: 'metrics-test', version: '1' }, { capabilities: {} });
  try {
    await client.connect(transport);
    const started = exports.length;
    for (let i = 0; i < 3; i++)
      assert.equal((await client.callTool({ name: 'sdk_trace_context', arguments: {} }, undefined, REQUEST_TIMEOUT)).isError, false);
    await assert.rejects(client.callTool({ name: 'sdk_no_such_tool_xyz', arguments: {} }, undefined, REQUEST_TIMEOUT));
    // A 2026-07-28 request (stateless): its version is an attribute too.
    const modern = await fetch(bridge.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list'
      },
      body: JSON.stringify({
        jsonrpc: '2.0', id: 'modern-1', method: 'tools/list',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } }
      })
    });
    assert.equal(modern.status, 200, await modern.text());
    // A later export holds them all (cumulative).
    const latest = await waitFor(() => {
      const last = exports.slice(started).at(-1);
      const calls = last && points(last, 'mcp.server.operation.duration')
        .find((p) => p.attrs['gen_ai.tool.name'] === 'sdk_trace_context' && !p.attrs['error.type']);
      return calls?.count === '3' && last;
    }, { timeoutMs: 10_000, what: 'an export with the three calls' });
    const durations = points(latest, 'mcp.server.operation.duration');
    const ok = durations.find((p) => p.attrs['gen_ai.tool.name'] === 'sdk_trace_context');
    assert.equal(ok.unit, 's');
    assert.equal(ok.attrs['mcp.method.name'], 'tools/call');
    assert.equal(ok.attrs['mcp.protocol.version'], '2025-11-25');
    assert.equal(ok.attrs['network.transport'], 'tcp');
    assert.ok(ok.sum >= 0.9 && ok.sum < 30, `three calls of a 0.3 s tool: ${ok.sum} s`);
    assert.equal(ok.bucketCounts.length, ok.explicitBounds.length + 1);
    assert.equal(ok.bucketCounts.reduce((a, b) => a + Number(b), 0), 3);
    // The unknown tool: an error type, and no series named by what the client sent.
    const refused = durations.find((p) => p.attrs['mcp.method.name'] === 'tools/call' && p.attrs['error.type']);
    assert.equal(refused.attrs['error.type'], '-32602');
    assert.equal(refused.attrs['gen_ai.tool.name'], undefined);
    assert.ok(durations.some((p) => p.attrs['mcp.method.name'] === 'initialize'));
    assert.ok(durations.some((p) => p.attrs['mcp.method.name'] === 'tools/list' && p.attrs['mcp.protocol.version'] === '2026-07-28'),
      JSON.stringify(durations.map((p) => p.attrs)));
    const calls = points(latest, 'pg_mcp.tool.calls');
    assert.deepEqual(
      calls.map((p) => [p.attrs['pg_mcp.outcome'], p.attrs['gen_ai.tool.name'], p.asInt]).sort(),
      [['error', undefined, '1'], ['ok', 'sdk_trace_context', '3']]
    );
    const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
    assert.match(metrics, /pg_mcp_bridge_metric_exports_total\{outcome="ok"\} [1-9]/);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    await bridge.stop();
  }
});

test('traces: params._meta.traceparent over stdio; a new trace when none comes', TEST_TIMEOUT, async () => {
  const transport = new StdioClientTransport({
    command: await bridgeBinary(),
    args: bridgeArgs('agent_support', ['--otlp-endpoint', `${collector}/v1/traces`]),
    env: { ...process.env },
    stderr: 'pipe'
  });
  const client = new Client({ name: 'trace-test', version: '1' }, { capabilities: {} });
  try {
    await client.connect(transport);
    const { trace, parent, header } = traceparent();
    const called = await client.callTool(
      { name: 'get_customer_info', arguments: { email: 'customer2@example.com' }, _meta: { traceparent: header, tracestate: 'vendor=1' } },
      undefined,
      REQUEST_TIMEOUT
    );
    assert.equal(called.isError, false);
    const server = await waitFor(() => spansOf(trace).find((s) => s.name === 'tools/call get_customer_info'), {
      timeoutMs: 10_000,
      what: 'the span of a _meta traceparent'
    });
    assert.equal(server.parentSpanId, parent);
    assert.equal(server.traceState, 'vendor=1');
    assert.equal(server.attrs['network.transport'], 'pipe');
    assert.equal(server.attrs['client.address'], undefined, 'no peer address over stdio');
    assert.equal((await auditRows(trace)).length, 1);

    // Without one: a trace of its own, in the audit row too.
    const before = new Set(received.map((s) => s.spanId));
    await client.callTool({ name: 'get_customer_info', arguments: { email: 'customer3@example.com' } }, undefined, REQUEST_TIMEOUT);
    const fresh = await waitFor(
      () => received.find((s) => !before.has(s.spanId) && s.name === 'tools/call get_customer_info' && !s.parentSpanId),
      { timeoutMs: 10_000, what: 'a root span' }
    );
    assert.match(fresh.traceId, /^[0-9a-f]{32}$/);
    assert.equal((await auditRows(fresh.traceId)).length, 1);

    // A malformed traceparent is ignored (a new trace), never an error.
    const bad = await client.callTool(
      { name: 'get_customer_info', arguments: { email: 'customer4@example.com' }, _meta: { traceparent: '00-zz-1-01' } },
      undefined,
      REQUEST_TIMEOUT
    );
    assert.equal(bad.isError, false);
  } finally {
    await client.close().catch(() => {});
  }
});

test('traces: a dead collector changes nothing for callers; its losses are counted', TEST_TIMEOUT, async () => {
  // A port nothing listens on.
  const probe = http.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const dead = `http://127.0.0.1:${probe.address().port}/v1/traces`;
  await new Promise((resolve) => probe.close(resolve));
  const bridge = await startHttpBridge('agent_support', ['--otlp-endpoint', dead]);
  const transport = new StreamableHTTPClientTransport(new URL(bridge.url));
  const client = new Client({ name: 'trace-test', version: '1' }, { capabilities: {} });
  try {
    await client.connect(transport);
    for (let i = 0; i < 20; i++) {
      const called = await client.callTool({ name: 'get_customer_info', arguments: { email: `customer${1 + (i % 9)}@example.com` } }, undefined, REQUEST_TIMEOUT);
      assert.equal(called.isError, false);
    }
    const failed = await waitFor(async () => {
      const metrics = await (await fetch(new URL('/metrics', bridge.url))).text();
      const found = /pg_mcp_bridge_trace_spans_total\{outcome="failed"\} (\d+)/.exec(metrics);
      return found && Number(found[1]) > 0 && Number(found[1]);
    }, { timeoutMs: 10_000, what: 'failed spans counted in /metrics' });
    assert.ok(failed >= 20, `${failed} failed spans`);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    await bridge.stop();
  }
});

test('traces: a collector that never answers delays a stop by about a second, not an export timeout', TEST_TIMEOUT, async () => {
  // Accepts connections and reads requests, never answers.
  const sockets = [];
  const hung = http.createServer(() => {});
  hung.on('connection', (socket) => sockets.push(socket));
  await new Promise((resolve) => hung.listen(0, '127.0.0.1', resolve));
  const bridge = await startHttpBridge('agent_support', ['--otlp-endpoint', `http://127.0.0.1:${hung.address().port}/v1/traces`]);
  const transport = new StreamableHTTPClientTransport(new URL(bridge.url));
  const client = new Client({ name: 'trace-test', version: '1' }, { capabilities: {} });
  try {
    await client.connect(transport);
    const called = await client.callTool({ name: 'get_customer_info', arguments: { email: 'customer1@example.com' } }, undefined, REQUEST_TIMEOUT);
    assert.equal(called.isError, false);
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    const started = Date.now();
    await bridge.stop();
    const took = Date.now() - started;
    // The export timeout is 5 s; a stop used to wait for it and one more second.
    assert.ok(took < 3500, `the stop took ${took} ms`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => hung.close(resolve));
  }
});
