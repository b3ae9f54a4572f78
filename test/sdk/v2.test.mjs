// pg_mcp_bridge with the v2 TypeScript SDK (@modelcontextprotocol/client 2.4.0): the modern
// stateless revision 2026-07-28 (pinned and negotiated by 'auto'), subscriptions/listen, and the
// SDK's default legacy mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, SUBSCRIPTION_ID_META_KEY } from '@modelcontextprotocol/client';
import { connectV2, REQUEST_TIMEOUT } from './clients.mjs';
import { createAndGrantTool, dropTool, signal, sleep, uniqueName, withTranscript, withoutTempTools } from './helpers.mjs';

const MODERN = '2026-07-28';
const TEST_TIMEOUT = { timeout: 120_000 };
const EMAIL = { email: 'customer5@example.com' };

function isInvalidParams(e) {
  return e instanceof ProtocolError && e.code === -32602;
}

async function assertSupportCall(client, options = REQUEST_TIMEOUT) {
  const res = await client.callTool({ name: 'get_customer_info', arguments: EMAIL }, options);
  assert.equal(res.isError, false);
  assert.equal(res.structuredContent.rows.length, 1);
  assert.equal(res.structuredContent.rows[0].email, 'customer5@example.com');
  return res;
}

test('v2 pinned 2026-07-28: modern era, tools, validated call, subscriptions/listen list_changed', TEST_TIMEOUT, async (t) => {
  const toolName = uniqueName('e2e_v2');
  const changed = signal();
  let conn;
  let created = false;
  let dropped = false;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      conn = await connectV2('agent_support', {
        mode: { pin: MODERN },
        before: (client) => client.setNotificationHandler('notifications/tools/list_changed', (n) => changed.push(n))
      });
      const { client, tap } = conn;
      assert.equal(client.getProtocolEra(), 'modern');
      assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(client.getServerVersion()?.name, 'pg_mcp_bridge');
      assert.ok(!tap.wire.some((w) => w.message.method === 'initialize'), 'no initialize on a modern connection');

      const { tools } = await client.listTools(undefined, REQUEST_TIMEOUT);
      assert.deepEqual(withoutTempTools(tools.map((tool) => tool.name)), ['get_customer_info']);
      const tool = tools.find((x) => x.name === 'get_customer_info');
      assert.equal(tool.outputSchema?.type, 'object');

      // Validated against the cached tools/list result, and against an explicit definition.
      await assertSupportCall(client);
      await assertSupportCall(client, { ...REQUEST_TIMEOUT, toolDefinition: tool });
      // Positive control: with a schema the result cannot satisfy, the SDK must reject.
      await assert.rejects(
        client.callTool(
          { name: 'get_customer_info', arguments: EMAIL },
          { ...REQUEST_TIMEOUT, toolDefinition: { ...tool, outputSchema: { ...tool.outputSchema, required: ['rows', 'no_such_property'] } } }
        ),
        (e) => isInvalidParams(e) && /output schema/i.test(e.message)
      );

      // Unknown tool: JSON-RPC error -32602 on the modern revision too.
      await assert.rejects(client.callTool({ name: 'no_such_tool_sdk_e2e', arguments: {} }, REQUEST_TIMEOUT), (e) => isInvalidParams(e));

      // subscriptions/listen
      const sub = await client.listen({ toolsListChanged: true }, REQUEST_TIMEOUT);
      assert.equal(sub.honoredFilter?.toolsListChanged, true);
      const listenReq = tap.wire.find((w) => w.dir === '->' && w.message.method === 'subscriptions/listen');
      assert.ok(listenReq, 'subscriptions/listen was sent');
      const subId = listenReq.message.id;

      const seen = changed.seen.length;
      created = true;
      await createAndGrantTool({
        name: toolName,
        sql: 'SELECT 7 AS seven',
        description: 'pg_mcp_bridge SDK e2e test tool (v2 listen); dropped by the test',
        grantTo: 'agent_support'
      });
      // Wait for the notification, then list (the SDK evicted its cached tools/list on it). Another
      // test file running in parallel may change the catalog too: then wait for the next one.
      const deadline = Date.now() + 10_000;
      let from = seen;
      for (;;) {
        await changed.next({
          from,
          timeoutMs: Math.max(1, deadline - Date.now()),
          what: `notifications/tools/list_changed on the listen stream announcing ${toolName}`
        });
        from = changed.seen.length;
        const after = await client.listTools(undefined, REQUEST_TIMEOUT);
        if (after.tools.some((x) => x.name === toolName)) break;
      }
      const onWire = tap.wire.filter((w) => w.dir === '<-' && w.message.method === 'notifications/tools/list_changed');
      assert.ok(onWire.length > 0);
      for (const w of onWire) {
        assert.equal(w.message.params?._meta?.[SUBSCRIPTION_ID_META_KEY], subId, 'each notification names the subscription');
      }
      const res = await client.callTool({ name: toolName, arguments: {} }, REQUEST_TIMEOUT);
      assert.equal(res.isError, false);
      assert.deepEqual(res.structuredContent.rows, [{ seven: 7 }]);

      // Close the subscription: notifications/cancelled for the listen request id.
      const closedAt = Date.now();
      await sub.close();
      assert.equal(await sub.closed, 'local');
      const cancel = tap.wire.find(
        (w) => w.dir === '->' && w.message.method === 'notifications/cancelled' && w.message.params?.requestId === subId
      );
      assert.ok(cancel, 'notifications/cancelled sent for the subscription');

      // After that the bridge sends nothing more for the closed subscription: open a second
      // one, change the catalog, and wait for the second one's notification.
      const sub2 = await client.listen({ toolsListChanged: true }, REQUEST_TIMEOUT);
      const listen2 = tap.wire.findLast((w) => w.dir === '->' && w.message.method === 'subscriptions/listen');
      assert.notEqual(listen2.message.id, subId);
      const seen2 = changed.seen.length;
      dropped = true;
      const err = await dropTool(toolName);
      assert.equal(err, undefined, `drop ${toolName}: ${err?.message}`);
      await changed.next({ from: seen2, timeoutMs: 10_000, what: 'notifications/tools/list_changed on the second stream' });
      await sleep(300); // a notification for the closed subscription would be written in the same burst
      const stale = tap.wire.filter(
        (w) =>
          w.dir === '<-' &&
          w.t >= closedAt &&
          w.message.method === 'notifications/tools/list_changed' &&
          w.message.params?._meta?.[SUBSCRIPTION_ID_META_KEY] !== listen2.message.id
      );
      assert.deepEqual(stale.map((w) => w.message), [], 'no notifications for the closed subscription');
      await sub2.close();
      assert.equal(await sub2.closed, 'local');

      // The connection still works after closing both subscriptions.
      await assertSupportCall(client);
    },
    async () => {
      await conn?.close();
      if (created && !dropped) {
        const err = await dropTool(toolName);
        if (err) t.diagnostic(`cleanup: could not drop ${toolName}: ${err.message}`);
      }
    }
  );
});

test("v2 'auto' negotiation ends up on the modern revision and can call a tool", TEST_TIMEOUT, async (t) => {
  let conn;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      conn = await connectV2('agent_support', { mode: 'auto' });
      const { client } = conn;
      assert.equal(client.getProtocolEra(), 'modern');
      assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
      const { tools } = await client.listTools(undefined, REQUEST_TIMEOUT);
      assert.deepEqual(withoutTempTools(tools.map((tool) => tool.name)), ['get_customer_info']);
      await assertSupportCall(client);
    },
    () => conn?.close()
  );
});

test('v2 default (legacy) mode: initialize handshake, tools, validated call', TEST_TIMEOUT, async (t) => {
  let conn;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      conn = await connectV2('agent_support');
      const { client, tap } = conn;
      assert.equal(client.getProtocolEra(), 'legacy');
      assert.equal(client.getNegotiatedProtocolVersion(), '2025-11-25');
      assert.ok(tap.wire.some((w) => w.dir === '->' && w.message.method === 'initialize'), 'initialize was sent');
      assert.equal(client.getServerVersion()?.name, 'pg_mcp_bridge');
      assert.equal(client.getServerCapabilities()?.tools?.listChanged, true);
      const { tools } = await client.listTools(undefined, REQUEST_TIMEOUT);
      assert.deepEqual(withoutTempTools(tools.map((tool) => tool.name)), ['get_customer_info']);
      await assertSupportCall(client);
      await assertSupportCall(client, { ...REQUEST_TIMEOUT, toolDefinition: tools.find((x) => x.name === 'get_customer_info') });
      await assert.rejects(client.callTool({ name: 'no_such_tool_sdk_e2e', arguments: {} }, REQUEST_TIMEOUT), (e) => isInvalidParams(e));
    },
    () => conn?.close()
  );
});

// The SDK's own list_changed support (ClientOptions.listChanged) only engages when the server
// advertises capabilities.tools.listChanged: from initialize on a legacy connection, from
// server/discover on a modern one (where the SDK then opens subscriptions/listen by itself).
for (const [label, mode] of [['legacy', 'legacy'], ['pinned 2026-07-28', { pin: MODERN }]]) {
  test(`v2 ${label}: ClientOptions.listChanged.tools.onChanged fires after another session creates and grants a tool`, TEST_TIMEOUT, async (t) => {
    const toolName = uniqueName('e2e_v2lc');
    const changed = signal();
    let conn;
    let created = false;
    await withTranscript(
      t,
      () => [conn?.tap],
      async () => {
        conn = await connectV2('agent_support', {
          mode,
          clientOptions: {
            listChanged: { tools: { autoRefresh: true, onChanged: (error, tools) => changed.push({ error, tools }) } }
          }
        });
        const { client } = conn;
        const discover = client.getDiscoverResult();
        t.diagnostic(`era ${client.getProtocolEra()}; server capabilities ${JSON.stringify(client.getServerCapabilities())}` +
          (discover ? `; server/discover capabilities ${JSON.stringify(discover.capabilities)}` : ''));
        assert.equal(client.getServerCapabilities()?.tools?.listChanged, true,
          'the server advertises capabilities.tools.listChanged (it does send tools/list_changed)');
        if (client.getProtocolEra() === 'modern') {
          assert.ok(client.autoOpenedSubscription, 'the SDK opened subscriptions/listen for ClientOptions.listChanged');
        }

        created = true;
        await createAndGrantTool({
          name: toolName,
          sql: 'SELECT 1 AS one',
          description: 'pg_mcp_bridge SDK e2e test tool (v2 listChanged option); dropped by the test',
          grantTo: 'agent_support'
        });
        const hit = await changed.next({
          timeoutMs: 10_000,
          what: `onChanged with a tool list including ${toolName}`,
          pred: (c) => c.error == null && c.tools?.some((x) => x.name === toolName)
        });
        assert.ok(hit.tools.some((x) => x.name === 'get_customer_info'));
      },
      async () => {
        await conn?.client.autoOpenedSubscription?.close().catch(() => {});
        await conn?.close();
        if (created) {
          const err = await dropTool(toolName);
          if (err) t.diagnostic(`cleanup: could not drop ${toolName}: ${err.message}`);
        }
      }
    );
  });
}
