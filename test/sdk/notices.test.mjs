// NOTICEs and WARNINGs raised by a tool's SQL reach the client as log messages of the call
// (notifications/message, logger = the tool, level mapped from PostgreSQL's), filtered by the
// session's logging/setLevel, bounded per call, and only to the session whose call raised them;
// over stdio and over Streamable HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectV1, startHttpBridge, REQUEST_TIMEOUT } from './clients.mjs';
import { psql } from './helpers.mjs';

const TOOLS = ['sdk_notices_steps', 'sdk_notices_flood', 'sdk_notices_quiet'];
const DROP = `
SELECT mcp.drop_tool(t, if_exists => true) FROM unnest(ARRAY['${TOOLS.join("', '")}']) t;
DROP FUNCTION IF EXISTS public.sdk_notices_steps(text), public.sdk_notices_flood(bigint);`;

before(async () => {
  await psql(DROP);
  await psql(`
CREATE FUNCTION public.sdk_notices_steps(secret text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE INFO 'below the level';
    RAISE NOTICE 'step one of %', secret;
    PERFORM pg_sleep(0.2);
    RAISE WARNING 'step two is slow' USING DETAIL = 'the index is missing', HINT = 'create it', ERRCODE = '01P01';
    RETURN 'done';
END $$;
CREATE FUNCTION public.sdk_notices_flood(n bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP RAISE NOTICE 'notice %', i; END LOOP;
    RETURN n;
END $$;
SELECT mcp.create_tool('sdk_notices_steps', 'SELECT public.sdk_notices_steps(:secret) AS result', 'Raises notices (test)',
                       '[{"name": "secret", "type": "string"}]');
SELECT mcp.create_tool('sdk_notices_flood', 'SELECT public.sdk_notices_flood(:n) AS result', 'Raises n notices (test)',
                       '[{"name": "n", "type": "integer"}]');
SELECT mcp.create_tool('sdk_notices_quiet', 'SELECT pg_sleep(0.3)::text AS result', 'Raises none (test)');
SELECT mcp.grant_tool(t, 'agent_support') FROM unnest(ARRAY['${TOOLS.join("', '")}']) t;`);
});

after(async () => {
  await psql(DROP);
});

/** Log messages a client receives, in order. */
function collect(client) {
  const messages = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => messages.push(n.params));
  return messages;
}

const STEPS = [
  { level: 'notice', logger: 'sdk_notices_steps', data: { message: 'step one of alpha' } },
  {
    level: 'warning',
    logger: 'sdk_notices_steps',
    data: { message: 'step two is slow', detail: 'the index is missing', hint: 'create it', sqlstate: '01P01' }
  }
];

test('notices: over stdio, a call\'s notices arrive as its log messages at the level asked for', { timeout: 60_000 }, async () => {
  let messages;
  const conn = await connectV1('agent_support', { before: (client) => (messages = collect(client)) });
  try {
    const { client } = conn;
    // Before logging/setLevel nothing is sent.
    await client.callTool({ name: 'sdk_notices_steps', arguments: { secret: 'alpha' } }, undefined, REQUEST_TIMEOUT);
    assert.deepEqual(messages, []);
    await client.setLoggingLevel('notice');
    const result = await client.callTool({ name: 'sdk_notices_steps', arguments: { secret: 'alpha' } }, undefined, REQUEST_TIMEOUT);
    assert.equal(result.structuredContent.rows[0].result, 'done');
    assert.deepEqual(messages, STEPS);
    // Bounded: 32 per call, then one warning saying the rest is not sent.
    messages.length = 0;
    const flood = await client.callTool({ name: 'sdk_notices_flood', arguments: { n: 200 } }, undefined, REQUEST_TIMEOUT);
    assert.equal(flood.structuredContent.rows[0].result, 200);
    assert.equal(messages.length, 33);
    assert.deepEqual(messages[31].data, { message: 'notice 32' });
    assert.equal(messages[32].level, 'warning');
    assert.match(messages[32].data.message, /further notices of this call are not sent \(at most 32/);
    // A higher level filters them out.
    messages.length = 0;
    await client.setLoggingLevel('error');
    await client.callTool({ name: 'sdk_notices_steps', arguments: { secret: 'alpha' } }, undefined, REQUEST_TIMEOUT);
    assert.deepEqual(messages, []);
  } finally {
    await conn.close();
  }
});

test('notices: over HTTP, each session gets its own calls\' notices only', { timeout: 60_000 }, async () => {
  const bridge = await startHttpBridge('agent_support');
  const sessions = [];
  try {
    for (let i = 0; i < 2; i++) {
      const transport = new StreamableHTTPClientTransport(new URL(bridge.url));
      const client = new Client({ name: `notices-${i}`, version: '1' }, { capabilities: {} });
      const messages = collect(client);
      await client.connect(transport);
      await client.setLoggingLevel('debug');
      sessions.push({ client, transport, messages });
    }
    const [noisy, quiet] = sessions;
    const results = await Promise.all([
      noisy.client.callTool({ name: 'sdk_notices_steps', arguments: { secret: 'alpha' } }, undefined, REQUEST_TIMEOUT),
      quiet.client.callTool({ name: 'sdk_notices_quiet', arguments: {} }, undefined, REQUEST_TIMEOUT)
    ]);
    assert.equal(results[0].structuredContent.rows[0].result, 'done');
    // INFO is at the debug level asked for.
    assert.deepEqual(noisy.messages, [{ level: 'info', logger: 'sdk_notices_steps', data: { message: 'below the level' } }, ...STEPS]);
    assert.deepEqual(quiet.messages, []);
    assert.doesNotMatch(bridge.stderr.join(''), /step one of alpha/, 'forwarded notices are not logged by the bridge');
  } finally {
    for (const { transport, client } of sessions) {
      await transport.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    }
    await bridge.stop();
  }
});
