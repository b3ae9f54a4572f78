// Drafts proposed by an agent, through the official v1 client: the draft_tool prompt gives the
// model the rules and the views it can read; propose_tool stores a draft that no agent can
// list or call; once a DBA approves it, list_changed arrives and the tool is there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectV1 } from './clients.mjs';
import { lit, psql, signal, uniqueName } from './helpers.mjs';

const AUTHOR = 'sdk_tool_author';
const NAME = uniqueName('draft');
before(() => psql(`DROP ROLE IF EXISTS ${AUTHOR}; CREATE ROLE ${AUTHOR} LOGIN IN ROLE mcp_tool_author, mcp_support_reader;`));
after(() => psql(`SELECT mcp.drop_tool(${lit(NAME)}, true); DELETE FROM mcp.tool_drafts WHERE name = ${lit(NAME)};
                  DROP OWNED BY ${AUTHOR}; DROP ROLE IF EXISTS ${AUTHOR};`));

test('v1: a drafted tool is invisible until a DBA approves it, then appears with list_changed', { timeout: 60_000 }, async () => {
  const changed = signal();
  const author = await connectV1(AUTHOR, {
    before: (client) => client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changed.push(n))
  });
  const other = await connectV1('agent_support');
  try {
    const { client } = author;
    // The prompt: the rules and the views this role can read.
    const { prompts } = await client.listPrompts();
    assert.deepEqual(prompts.map((p) => p.name), ['draft_tool']);
    assert.deepEqual((await other.client.listPrompts()).prompts, [], 'only tool authors get it');
    const prompt = await client.getPrompt({ name: 'draft_tool', arguments: { request: 'open tickets of a customer by email' } });
    const text = prompt.messages[0].content.text;
    assert.match(text, /open tickets of a customer by email/);
    assert.match(text, /app\.customer_support_view[\s\S]*open_tickets_count integer/);
    assert.match(text, /propose_tool/);

    // The proposal: checked now, stored as a draft.
    const proposed = await client.callTool({
      name: 'propose_tool',
      arguments: {
        name: NAME,
        description: 'Open tickets of a customer, by email',
        sql: 'SELECT open_tickets_count FROM app.customer_support_view WHERE email = :email',
        parameters: JSON.stringify([{ name: 'email', type: 'string', format: 'email', description: 'Customer email' }])
      }
    });
    assert.equal(proposed.isError, false, JSON.stringify(proposed));
    const invalid = await client.callTool({
      name: 'propose_tool',
      arguments: { name: `${NAME}_bad`, description: 'x', sql: 'SELECT nope FROM app.customer_support_view' }
    });
    assert.equal(invalid.isError, true);
    assert.match(invalid.content[0].text, /column "nope" does not exist/);
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(!names.includes(NAME), 'a draft is not listed');
    await assert.rejects(client.callTool({ name: NAME, arguments: { email: 'customer1@example.com' } }),
      (error) => error.code === -32602);
    assert.deepEqual(await psql(`SELECT status FROM mcp.tool_drafts WHERE name = ${lit(NAME)}`, { single: false }), ['pending']);

    // Approved by the DBA: list_changed, then listed and callable.
    const seen = changed.seen.length;
    await psql(`SELECT mcp.approve_tool(${lit(NAME)}, run_as => 'mcp_support_reader', grant_to => ${lit(AUTHOR)})`);
    await changed.next({ from: seen, timeoutMs: 10_000, what: 'notifications/tools/list_changed' });
    assert.ok((await client.listTools()).tools.some((t) => t.name === NAME));
    const result = await client.callTool({ name: NAME, arguments: { email: 'customer1@example.com' } });
    assert.equal(result.isError, false, JSON.stringify(result));
    assert.equal(typeof result.structuredContent.rows[0].open_tickets_count, 'number');
  } finally {
    await author.close();
    await other.close();
  }
});
