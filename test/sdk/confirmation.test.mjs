// A person confirms each call of a writing tool defined with confirm => 'ask', through the
// official SDK clients' elicitation handlers: on 2026-07-28 the call is answered input_required
// (an elicitation/create form and a signed requestState), the client asks and retries with the
// answer; on 2025-11-25 the bridge sends elicitation/create within the session (stdio, and
// over HTTP on the call's event stream) and waits, up to --elicitation-timeout. The row is
// written only after acceptance, and each round is audited with the decision. A client that
// cannot ask gets a clear tool error and nothing runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectV1, connectV2, startHttpBridge, REQUEST_TIMEOUT } from './clients.mjs';
import { psql, psqlJson } from './helpers.mjs';

const TOOL = 'sdk_confirm_close';
const MODERN = '2026-07-28';
const TEST_TIMEOUT = { timeout: 60_000 };

before(async () => {
  await cleanup();
  await psql(`
CREATE TABLE public.sdk_confirm_accounts (id int PRIMARY KEY, owner text NOT NULL, open boolean NOT NULL DEFAULT true);
INSERT INTO public.sdk_confirm_accounts VALUES (1, 'ann'), (2, 'bob'), (3, 'cy'), (4, 'di'), (5, 'ed'), (6, 'flo');
GRANT SELECT, UPDATE ON public.sdk_confirm_accounts TO agent_support;
SELECT mcp.create_tool(${"'" + TOOL + "'"},
  'UPDATE public.sdk_confirm_accounts SET open = false WHERE id = :id RETURNING id, owner',
  'Closes a customer account (test)', '[{"name": "id", "type": "integer"}]', read_only => false,
  confirm => 'ask', confirm_message => 'Close account {id}? This cannot be undone.');
SELECT mcp.grant_tool(${"'" + TOOL + "'"}, 'agent_support');
-- The bridges of these tests log in as agent_support: it relays the person's answers.
GRANT mcp_confirmation_relay TO agent_support;`);
});

async function cleanup() {
  await psql(`SELECT mcp.drop_tool(${"'" + TOOL + "'"}, if_exists => true);
              DROP TABLE IF EXISTS public.sdk_confirm_accounts;
              REVOKE mcp_confirmation_relay FROM agent_support;`);
}
after(cleanup);

async function open(id) {
  const [value] = await psql(`SELECT open FROM public.sdk_confirm_accounts WHERE id = ${id}`);
  return value === 't';
}

/** The audit rows of the tool since `since` (an audit id). */
async function audit(since) {
  return psqlJson(`SELECT coalesce(jsonb_agg(jsonb_build_object('status', status, 'decision', confirmation ->> 'decision',
                     'shown', confirmation ->> 'message') ORDER BY id), '[]')
                     FROM mcp.audit_log WHERE tool_name = '${TOOL}' AND id > ${since}`);
}
async function lastAuditId() {
  const [id] = await psql('SELECT coalesce(max(id), 0) FROM mcp.audit_log');
  return Number(id);
}

/** A 2026-07-28 client whose person answers each elicitation with the next of `answers`. */
async function modernClient(answers, asked) {
  return connectV2('agent_support', {
    mode: { pin: MODERN },
    clientOptions: { capabilities: { elicitation: { form: {} } } },
    before: (client) =>
      client.setRequestHandler('elicitation/create', async (request) => {
        asked.push(request.params);
        return answers.shift();
      })
  });
}

test('confirmation (2026-07-28): asked through elicitation; written only after the person accepts', TEST_TIMEOUT, async () => {
  const since = await lastAuditId();
  const asked = [];
  const conn = await modernClient([{ action: 'accept', content: {} }, { action: 'decline' }], asked);
  try {
    const { client, tap } = conn;
    const result = await client.callTool({ name: TOOL, arguments: { id: 1 } }, REQUEST_TIMEOUT);
    assert.equal(result.isError, false, JSON.stringify(result));
    assert.deepEqual(result.structuredContent.rows, [{ id: 1, owner: 'ann' }]);
    assert.equal(await open(1), false);
    assert.equal(asked.length, 1);
    assert.equal(asked[0].mode, 'form');
    assert.equal(asked[0].message, 'Close account 1? This cannot be undone.');
    // On the wire: input_required with the request and a state, then the retry that echoes it.
    const first = tap.wire.find((w) => w.dir === '<-' && w.message.result?.resultType === 'input_required');
    assert.ok(first, tap.transcript());
    assert.equal(first.message.result.inputRequests.confirm.method, 'elicitation/create');
    const retry = tap.wire.find((w) => w.dir === '->' && w.message.params?.requestState !== undefined);
    assert.equal(retry.message.params.requestState, first.message.result.requestState);
    assert.equal(retry.message.params.inputResponses.confirm.action, 'accept');

    // Declined: nothing written, a tool error saying so.
    const declined = await client.callTool({ name: TOOL, arguments: { id: 2 } }, REQUEST_TIMEOUT);
    assert.equal(declined.isError, true);
    assert.match(declined.content[0].text, /declined/);
    assert.equal(await open(2), true);
    assert.deepEqual(await audit(since), [
      { status: 'confirmation_asked', decision: 'asked', shown: 'Close account 1? This cannot be undone.' },
      { status: 'ok', decision: 'accepted', shown: 'Close account 1? This cannot be undone.' },
      { status: 'confirmation_asked', decision: 'asked', shown: 'Close account 2? This cannot be undone.' },
      { status: 'declined', decision: 'declined', shown: 'Close account 2? This cannot be undone.' }
    ]);
  } finally {
    await conn.close();
  }
});

test('confirmation: a client that cannot ask a person gets a tool error, and nothing runs', TEST_TIMEOUT, async () => {
  const since = await lastAuditId();
  // 2026-07-28 without the elicitation capability, and a 2025-11-25 client.
  const modern = await connectV2('agent_support', { mode: { pin: MODERN } });
  const legacy = await connectV1('agent_support');
  try {
    for (const client of [modern.client, legacy.client]) {
      const result = await client.callTool({ name: TOOL, arguments: { id: 3 } }, undefined, REQUEST_TIMEOUT);
      assert.equal(result.isError, true);
      assert.match(result.content[0].text, /runs only after a person confirms it.*Nothing was done/s);
    }
    assert.equal(await open(3), true);
    assert.deepEqual((await audit(since)).map((row) => row.status), ['confirmation_unavailable', 'confirmation_unavailable']);
  } finally {
    await modern.close();
    await legacy.close();
  }
});

/** A 2025-11-25 (v1 SDK) client over HTTP with an elicitation handler. */
async function legacyHttpClient(url, handler) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'confirm-http', version: '1' }, { capabilities: { elicitation: {} } });
  client.setRequestHandler(ElicitRequestSchema, handler);
  await client.connect(transport);
  return {
    client,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    }
  };
}

test('confirmation (2025-11-25): asked within the session over stdio and HTTP; a slow person times out', TEST_TIMEOUT, async () => {
  const since = await lastAuditId();
  const asked = [];
  // stdio: accepted, written.
  const stdio = await connectV1('agent_support', {
    capabilities: { elicitation: {} },
    before: (client) => client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return { action: 'accept', content: {} };
    })
  });
  try {
    const result = await stdio.client.callTool({ name: TOOL, arguments: { id: 4 } }, undefined, REQUEST_TIMEOUT);
    assert.equal(result.isError, false, JSON.stringify(result));
    assert.deepEqual(result.structuredContent.rows, [{ id: 4, owner: 'di' }]);
    assert.equal(await open(4), false);
  } finally {
    await stdio.close();
  }
  // HTTP: declined, not written; then a person who does not answer within the timeout.
  const bridge = await startHttpBridge('agent_support', ['--elicitation-timeout', '700']);
  try {
    const declining = await legacyHttpClient(bridge.url, async (request) => {
      asked.push(request.params.message);
      return { action: 'decline' };
    });
    const declined = await declining.client.callTool({ name: TOOL, arguments: { id: 5 } }, undefined, REQUEST_TIMEOUT);
    assert.equal(declined.isError, true);
    assert.match(declined.content[0].text, /declined/);
    await declining.close();
    const slow = await legacyHttpClient(bridge.url, async (request) => {
      asked.push(request.params.message);
      await new Promise((r) => setTimeout(r, 3000));
      return { action: 'accept', content: {} };
    });
    const late = await slow.client.callTool({ name: TOOL, arguments: { id: 6 } }, undefined, REQUEST_TIMEOUT);
    assert.equal(late.isError, true);
    assert.match(late.content[0].text, /did not answer in time/);
    await new Promise((r) => setTimeout(r, 2600));  // the late answer changes nothing
    await slow.close();
  } finally {
    await bridge.stop();
  }
  assert.deepEqual(asked, ['Close account 4? This cannot be undone.', 'Close account 5? This cannot be undone.',
    'Close account 6? This cannot be undone.']);
  assert.equal(await open(5), true);
  assert.equal(await open(6), true);
  assert.deepEqual((await audit(since)).map((row) => `${row.status}/${row.decision}`), [
    'confirmation_asked/asked', 'ok/accepted',
    'confirmation_asked/asked', 'declined/declined',
    'confirmation_asked/asked', 'confirmation_timeout/timeout'
  ]);
});


test('confirmation (2026-07-28 over HTTP): input_required, the retry with the answer, a forged state refused', TEST_TIMEOUT, async () => {
  const bridge = await startHttpBridge('agent_support');
  const meta = {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
    'io.modelcontextprotocol/clientInfo': { name: 'confirm-raw', version: '1' }
  };
  const call = async (id, extra) => {
    const answer = await fetch(bridge.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': TOOL
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: TOOL, arguments: { id: 6 }, _meta: meta, ...extra } })
    });
    assert.equal(answer.status, 200);
    const text = await answer.text();
    const data = text.startsWith('{') ? text : text.split('\n').find((l) => l.startsWith('data: ')).slice(6);
    return JSON.parse(data);
  };
  try {
    const asked = await call('h1', {});
    assert.equal(asked.result.resultType, 'input_required');
    assert.equal(asked.result.inputRequests.confirm.params.message, 'Close account 6? This cannot be undone.');
    const state = asked.result.requestState;
    const forged = await call('h2', { requestState: state.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')), inputResponses: { confirm: { action: 'accept' } } });
    assert.equal(forged.result.isError, true);
    assert.match(forged.result.content[0].text, /not valid: its signature does not verify/);
    assert.equal(await open(6), true);
    const done = await call('h3', { requestState: state, inputResponses: { confirm: { action: 'accept', content: {} } } });
    assert.equal(done.result.resultType, 'complete');
    assert.deepEqual(done.result.structuredContent.rows, [{ id: 6, owner: 'flo' }]);
    assert.equal(await open(6), false);
  } finally {
    await bridge.stop();
  }
});

test('confirmation (2025-11-25, the v2 SDK client): asked in the session; cancel leaves the row', TEST_TIMEOUT, async () => {
  const since = await lastAuditId();
  const answers = [{ action: 'cancel' }, { action: 'accept', content: {} }];
  const conn = await connectV2('agent_support', {
    clientOptions: { capabilities: { elicitation: { form: {} } } },
    before: (client) => client.setRequestHandler('elicitation/create', async () => answers.shift())
  });
  try {
    assert.equal(conn.client.getProtocolEra(), 'legacy');
    await psql(`UPDATE public.sdk_confirm_accounts SET open = true WHERE id = 3`);
    const dismissed = await conn.client.callTool({ name: TOOL, arguments: { id: 3 } }, REQUEST_TIMEOUT);
    assert.equal(dismissed.isError, true);
    assert.match(dismissed.content[0].text, /dismissed/);
    assert.equal(await open(3), true);
    const accepted = await conn.client.callTool({ name: TOOL, arguments: { id: 3 } }, REQUEST_TIMEOUT);
    assert.equal(accepted.isError, false, JSON.stringify(accepted));
    assert.equal(await open(3), false);
    assert.deepEqual((await audit(since)).map((row) => `${row.status}/${row.decision}`), [
      'confirmation_asked/asked', 'confirmation_cancelled/cancelled', 'confirmation_asked/asked', 'ok/accepted'
    ]);
  } finally {
    await conn.close();
  }
});
