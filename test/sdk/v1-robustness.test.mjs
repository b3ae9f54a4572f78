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
