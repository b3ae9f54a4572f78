// notifications/tools/list_changed to a v1 (2025-11-25) client when another session changes the
// tool catalog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectV1, listAllToolsV1, REQUEST_TIMEOUT } from './clients.mjs';
import { createAndGrantTool, dropTool, psql, signal, uniqueName, withTranscript } from './helpers.mjs';

// A v1 client of agent_support that records list_changed, with the test tool it may create
// (create(): created and granted to agent_support; dropped after the test whatever happens).
async function withListChanged(t, toolName, body) {
  const changed = signal();
  let conn;
  let created = false;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      conn = await connectV1('agent_support', {
        before: (client) => client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changed.push(n))
      });
      const create = async (tool) => {
        created = true; // from here on, clean up even if creating fails half-way
        await createAndGrantTool({ name: toolName, grantTo: 'agent_support', ...tool });
      };
      await body({ client: conn.client, changed, create });
    },
    async () => {
      await conn?.close();
      if (created) {
        const err = await dropTool(toolName);
        if (err) t.diagnostic(`cleanup: could not drop ${toolName}: ${err.message}`);
      }
    }
  );
}

test('v1: list_changed arrives after another session creates and grants a tool', { timeout: 120_000 }, async (t) => {
  const toolName = uniqueName('e2e_lc');
  await withListChanged(t, toolName, async ({ client, changed, create }) => {
    const before = await listAllToolsV1(client);
    assert.ok(!before.tools.some((tool) => tool.name === toolName));
    const seenBefore = changed.seen.length;
    await create({
      sql: 'SELECT 42 AS answer',
      description: 'pg_mcp_bridge SDK e2e test tool (list_changed); dropped by the test'
    });

    // Wait for the notification, then list. (Another test file running in parallel may change
    // the catalog too: if a notification came before this change was visible, wait for the next.)
    const deadline = Date.now() + 10_000;
    let from = seenBefore;
    let after;
    let names;
    for (;;) {
      const n = await changed.next({
        from,
        timeoutMs: Math.max(1, deadline - Date.now()),
        what: `notifications/tools/list_changed announcing ${toolName}`
      });
      assert.equal(n.method, 'notifications/tools/list_changed');
      from = changed.seen.length;
      after = await listAllToolsV1(client);
      names = after.tools.map((tool) => tool.name);
      if (names.includes(toolName)) break;
    }
    assert.ok(names.includes('get_customer_info'));

    // The new tool is callable and validated against its outputSchema.
    assert.equal(typeof client.getToolOutputValidator(toolName), 'function');
    const res = await client.callTool({ name: toolName, arguments: {} }, undefined, REQUEST_TIMEOUT);
    assert.equal(res.isError, false);
    assert.deepEqual(res.structuredContent.rows, [{ answer: 42 }]);
  });
});

test('v1: a NOTIFY on the catalog channel by an agent changes nothing; a real change is announced once', { timeout: 120_000 }, async (t) => {
  const toolName = uniqueName('e2e_lc_spoof');
  await withListChanged(t, toolName, async ({ client, changed, create }) => {
    await listAllToolsV1(client);
    const seenBefore = changed.seen.length;
    // Any role may NOTIFY the channel: the bridge checks mcp.catalog_version() and ignores it.
    await psql(
      Array.from({ length: 50 }, (_, i) => `NOTIFY pg_mcp_tools_changed, '{"tool": "spoof${i}"}';`).join(' '),
      { user: 'agent_support' }
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(changed.seen.length, seenBefore, 'a spoofed NOTIFY must not produce list_changed');
    await create({
      sql: 'SELECT 1 AS one',
      description: 'pg_mcp_bridge SDK e2e test tool (spoofed notifications); dropped by the test'
    });
    await changed.next({ from: seenBefore, timeoutMs: 10_000, what: 'list_changed after a real change' });
  });
});

test('v1: after its listening connection is terminated, the bridge reconnects and announces a change', { timeout: 120_000 }, async (t) => {
  const toolName = uniqueName('e2e_lc_rec');
  await withListChanged(t, toolName, async ({ client, changed, create }) => {
    await listAllToolsV1(client);
    const seenBefore = changed.seen.length;
    // The listener's connection is the one that last asked for the catalog version.
    const killed = await psql(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity " +
        "WHERE query = 'SELECT mcp.catalog_version()' AND pid <> pg_backend_pid()"
    );
    assert.match(String(killed).trim(), /^[1-9]/, 'a listening connection was terminated');
    await create({
      sql: 'SELECT 2 AS two',
      description: 'pg_mcp_bridge SDK e2e test tool (listener reconnect); dropped by the test'
    });
    await changed.next({ from: seenBefore, timeoutMs: 10_000, what: 'list_changed after the listener reconnected' });
    const names = (await listAllToolsV1(client)).tools.map((tool) => tool.name);
    assert.ok(names.includes(toolName));
  });
});
