// Every result a tool returns must satisfy the outputSchema in its tools/list definition: the SDK
// validates structuredContent against it and rejects the whole call otherwise. One single-column
// tool per PostgreSQL value shape, called through the v1 SDK with validation armed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectV1, listAllToolsV1, REQUEST_TIMEOUT } from './clients.mjs';
import { dropTool, lit, psql, uniqueName, withTranscript } from './helpers.mjs';

// column expression, and the value expected in structuredContent.rows[0].v (undefined: not checked)
const CASES = {
  numeric: ['1.5::numeric', 1.5],
  numeric_nan: ["'NaN'::numeric", 'NaN'],
  float8_infinity: ["'Infinity'::float8", 'Infinity'],
  bigint: ['42::bigint', 42],
  boolean: ['true', true],
  text_null: ['NULL::text', null],
  date: ["'2024-01-02'::date", '2024-01-02'],
  timestamptz: ["'2024-01-02 03:04:05+00'::timestamptz", undefined],
  timestamp: ["'2024-01-02 03:04:05'::timestamp", undefined],
  uuid: ["'11111111-1111-4111-8111-111111111111'::uuid", '11111111-1111-4111-8111-111111111111'],
  jsonb: ['\'{"a": [1, 2]}\'::jsonb', { a: [1, 2] }],
  int_array: ['ARRAY[1, 2, NULL]::int[]', [1, 2, null]],
  record: ["ROW(1, 'a')", undefined],
  // PostgreSQL values outside the JSON Schema the extension derives (found by these tests):
  date_infinity: ["'infinity'::date", undefined],
  timestamptz_minus_infinity: ["'-infinity'::timestamptz", undefined],
  int_array_2d: ['ARRAY[[1, 2], [3, 4]]::int[]', [[1, 2], [3, 4]]]
};

test('v1: results of every column type satisfy the tool outputSchema (SDK validation)', { timeout: 120_000 }, async (t) => {
  const prefix = uniqueName('types');
  const names = Object.fromEntries(Object.keys(CASES).map((k) => [k, `${prefix}_${k}`]));
  let conn;
  let created = false;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      created = true;
      await psql(
        Object.entries(CASES)
          .map(
            ([k, [expr]]) =>
              `SELECT mcp.create_tool(name => ${lit(names[k])}, sql => ${lit(`SELECT ${expr} AS v`)},
                 description => 'pg_mcp_bridge SDK e2e test tool (output schema); dropped by the test');
               SELECT mcp.grant_tool(${lit(names[k])}, 'agent_support');`
          )
          .join('\n')
      );
      conn = await connectV1('agent_support');
      const { client } = conn;
      const { tools } = await listAllToolsV1(client);
      // Portable schemas (what MCP Inspector --strict asks for, and what some model providers'
      // function declarations accept): "or null" as anyOf, never a type array.
      await t.test('no schema of any listed tool has a type array', () => {
        const arrays = [];
        const walk = (node, path) => {
          if (Array.isArray(node)) return node.forEach((each, i) => walk(each, `${path}[${i}]`));
          if (node === null || typeof node !== 'object') return;
          if (Array.isArray(node.type)) arrays.push(`${path}.type = ${JSON.stringify(node.type)}`);
          for (const [key, value] of Object.entries(node)) walk(value, `${path}.${key}`);
        };
        for (const tool of tools) {
          walk(tool.inputSchema, `${tool.name}.inputSchema`);
          walk(tool.outputSchema, `${tool.name}.outputSchema`);
        }
        assert.ok(tools.some((tool) => tool.name === names.int_array));
        assert.deepEqual(arrays, []);
      });
      for (const [k, [expr, expected]] of Object.entries(CASES)) {
        await t.test(`${k}: SELECT ${expr}`, async () => {
          const tool = tools.find((x) => x.name === names[k]);
          assert.ok(tool, `${names[k]} is listed`);
          assert.equal(typeof client.getToolOutputValidator(names[k]), 'function');
          const schema = JSON.stringify(tool.outputSchema.properties.rows.items.properties.v);
          let res;
          try {
            res = await client.callTool({ name: names[k], arguments: {} }, undefined, REQUEST_TIMEOUT);
          } catch (e) {
            const got = conn.tap.wire.findLast((w) => w.dir === '<-' && w.message.result?.structuredContent);
            throw new Error(
              `${e.message}\n  outputSchema of column v: ${schema}\n  value returned: ${JSON.stringify(got?.message.result.structuredContent.rows?.[0]?.v)}`
            );
          }
          assert.equal(res.isError, false);
          if (expected !== undefined) assert.deepEqual(res.structuredContent.rows[0].v, expected);
        });
      }
    },
    async () => {
      await conn?.close();
      if (created) {
        const err = await dropTool(...Object.values(names));
        if (err) t.diagnostic(`cleanup: could not drop the ${prefix}_* tools: ${err.message}`);
      }
    }
  );
});
