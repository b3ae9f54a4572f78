// A person confirms each call of a writing tool defined with confirm => 'ask', through the
// official SDK client's elicitation handler: on 2026-07-28 the call is answered input_required
// (an elicitation/create form and a signed requestState), the client asks and retries with the
// answer; the row is written only after acceptance, and each round is audited with the
// decision. A client that cannot ask gets a clear tool error and nothing runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectV1, connectV2, REQUEST_TIMEOUT } from './clients.mjs';
import { psql, psqlJson } from './helpers.mjs';

const TOOL = 'sdk_confirm_close';
const MODERN = '2026-07-28';
const TEST_TIMEOUT = { timeout: 60_000 };

before(async () => {
  await cleanup();
  await psql(`
CREATE TABLE public.sdk_confirm_accounts (id int PRIMARY KEY, owner text NOT NULL, open boolean NOT NULL DEFAULT true);
INSERT INTO public.sdk_confirm_accounts VALUES (1, 'ann'), (2, 'bob'), (3, 'cy');
GRANT SELECT, UPDATE ON public.sdk_confirm_accounts TO agent_support;
SELECT mcp.create_tool(${"'" + TOOL + "'"},
  'UPDATE public.sdk_confirm_accounts SET open = false WHERE id = :id RETURNING id, owner',
  'Closes a customer account (test)', '[{"name": "id", "type": "integer"}]', read_only => false,
  confirm => 'ask', confirm_message => 'Close account {id}? This cannot be undone.');
SELECT mcp.grant_tool(${"'" + TOOL + "'"}, 'agent_support');`);
});

async function cleanup() {
  await psql(`SELECT mcp.drop_tool(${"'" + TOOL + "'"}, if_exists => true);
              DROP TABLE IF EXISTS public.sdk_confirm_accounts;`);
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
