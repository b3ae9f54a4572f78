// MCP resources through the official v1 client: the sandboxed views the role can read, with
// their columns, types and row filter; an unknown or unreadable one is "resource not found".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectV1 } from './clients.mjs';
import { psql } from './helpers.mjs';

// An agent role that may read the support view itself (the demo's agents read only through
// their tools' run_as roles, so they have no resources).
const READER = 'sdk_resource_reader';
before(() => psql(`DROP ROLE IF EXISTS ${READER}; CREATE ROLE ${READER} LOGIN IN ROLE mcp_support_reader;`));
after(() => psql(`DROP ROLE IF EXISTS ${READER}`));

test('v1: resources are the sandboxed views the role can read', { timeout: 60_000 }, async () => {
  const support = await connectV1(READER);
  const analyst = await connectV1('agent_analyst');
  try {
    assert.ok(support.client.getServerCapabilities().resources, 'the resources capability');
    const { resources } = await support.client.listResources();
    const uris = resources.map((r) => r.uri);
    assert.ok(uris.includes('pg-mcp://views/app.customer_support_view'), uris.join(', '));
    assert.ok(!uris.includes('pg-mcp://views/app.tenant_customer_view'), 'not readable by this role');
    const read = await support.client.readResource({ uri: 'pg-mcp://views/app.customer_support_view' });
    assert.equal(read.contents[0].mimeType, 'application/json');
    const view = JSON.parse(read.contents[0].text);
    assert.equal(view.view, 'app.customer_support_view');
    const email = view.columns.find((c) => c.name === 'email');
    assert.deepEqual([email.type, email.pii], ['text', true]);
    assert.match(view.rows, /where is_active/);
    await assert.rejects(
      support.client.readResource({ uri: 'pg-mcp://views/app.tenant_customer_view' }),
      (error) => error.code === -32002 && /Resource not found/.test(error.message)
    );
    const { resourceTemplates } = await support.client.listResourceTemplates();
    assert.deepEqual(resourceTemplates, []);
    // A role that can read no sandboxed view lists none.
    assert.deepEqual((await analyst.client.listResources()).resources, []);
  } finally {
    await support.close();
    await analyst.close();
  }
});
