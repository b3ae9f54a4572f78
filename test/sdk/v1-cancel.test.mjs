// Cancelling a running tools/call through the v1 SDK (AbortController -> notifications/cancelled):
// the bridge must cancel the query in PostgreSQL and the audit log must say 'cancelled'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectV1, listAllToolsV1 } from './clients.mjs';
import {
  createAndGrantTool,
  dropTool,
  lit,
  psql,
  sleep,
  sleepingBridgeBackends,
  uniqueName,
  waitFor,
  withTranscript
} from './helpers.mjs';

/**
 * After a cancel: the call's audit row appears (the bridge commits it once PostgreSQL has
 * cancelled the statement), the backend that ran it (seen sleeping before) no longer sleeps, and
 * no bridge backend runs pg_sleep. Resolves to the audit row.
 */
async function cancelledInDatabase(toolName, maxIdBefore, sleepers) {
  const row = await waitFor(
    async () => {
      const [line] = await psql(
        `SELECT row_to_json(a) FROM (SELECT id, status, caller_role, request_id, backend_pid, sqlstate, message
                                      FROM mcp.audit_log
                                     WHERE tool_name = ${lit(toolName)} AND id > ${Number(maxIdBefore)}
                                     ORDER BY id DESC LIMIT 1) a`,
        { single: false }
      );
      return line && JSON.parse(line);
    },
    { timeoutMs: 5000, what: `the audit row of the cancelled call of ${toolName} (is it still running?)` }
  );
  assert.ok(sleepers.includes(row.backend_pid), `the audited call ran in a backend seen sleeping (${sleepers}): ${JSON.stringify(row)}`);
  await waitFor(
    async () => {
      // (pg_stat_activity.query is the bridge's top-level SELECT mcp.serve_call(...), so the first
      // condition can only catch the tool SQL if that ever changes; the wait event is what tells.)
      const [n] = await psql(
        `SELECT count(*) FROM pg_stat_activity
          WHERE query LIKE '%pg_sleep%' AND application_name LIKE 'pg_mcp_bridge%' AND state = 'active'
            AND datname = current_database()`,
        { single: false }
      );
      return Number(n) === 0 && !(await sleepingBridgeBackends('agent_support')).includes(row.backend_pid);
    },
    { timeoutMs: 5000, what: `backend ${row.backend_pid} to leave pg_sleep` }
  );
  return row;
}

test('v1: aborting a tools/call cancels the query and is audited as cancelled', { timeout: 120_000 }, async (t) => {
  const toolName = uniqueName('sleep');
  let conn;
  let created = false;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      created = true;
      await createAndGrantTool({
        name: toolName,
        sql: 'SELECT pg_sleep(:s) IS NOT NULL AS slept',
        description: 'pg_mcp_bridge SDK e2e test tool (sleeps); dropped by the test',
        parameters: [{ name: 's', type: 'number' }],
        timeout: '30 seconds',
        grantTo: 'agent_support'
      });
      conn = await connectV1('agent_support');
      const { client, tap } = conn;
      const { tools } = await listAllToolsV1(client);
      assert.ok(tools.some((tool) => tool.name === toolName));
      const [maxIdBefore] = await psql(`SELECT coalesce(max(id), 0) FROM mcp.audit_log`, { single: false });

      const ac = new AbortController();
      const started = Date.now();
      const call = client.callTool({ name: toolName, arguments: { s: 20 } }, undefined, {
        signal: ac.signal,
        timeout: 60_000
      });
      let outcome; // set once the call settles
      call.then(
        (r) => (outcome = `resolved: ${JSON.stringify(r)}`),
        (e) => (outcome = `rejected: ${e?.message}`)
      );
      // Positive control for the check after the abort: while the call runs, its backend is
      // visible in pg_stat_activity, sleeping. Then abort (no earlier than 1 s after the start).
      const sleepers = await waitFor(async () => {
        if (outcome !== undefined && !ac.signal.aborted) throw new Error(`the call ended before the abort, ${outcome}`);
        const pids = await sleepingBridgeBackends('agent_support');
        return pids.length > 0 && pids;
      }, {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: 'the tool call sleeping in pg_stat_activity'
      });
      await sleep(Math.max(0, 1000 - (Date.now() - started)));
      const abortedAt = Date.now();
      ac.abort(new Error('test aborts the call'));

      await assert.rejects(call, (e) => {
        assert.ok(ac.signal.aborted, `the call failed before the abort: ${e?.message}`);
        return true;
      });
      const elapsed = Date.now() - abortedAt;
      assert.ok(elapsed < 5000, `the call rejected ${elapsed} ms after the abort`);

      // The client sent notifications/cancelled for the request.
      const request = tap.wire.find((w) => w.dir === '->' && w.message.method === 'tools/call');
      const cancel = tap.wire.find((w) => w.dir === '->' && w.message.method === 'notifications/cancelled');
      assert.ok(cancel, 'notifications/cancelled was sent');
      assert.equal(cancel.message.params.requestId, request.message.id);

      // The query is cancelled in PostgreSQL (not left running for 20 s), and audited as such.
      const row = await cancelledInDatabase(toolName, maxIdBefore, sleepers);
      assert.equal(row.status, 'cancelled', `audit row: ${JSON.stringify(row)}`);
      assert.equal(row.caller_role, 'agent_support');
      assert.equal(row.request_id, String(request.message.id));

      // The bridge sends no response for the cancelled request, and the session still works.
      await sleep(200);
      assert.ok(
        !tap.wire.some((w) => w.dir === '<-' && w.message.id === request.message.id),
        'no response to the cancelled request'
      );
      const res = await client.callTool({ name: toolName, arguments: { s: 0 } });
      assert.equal(res.isError, false);
      assert.deepEqual(res.structuredContent.rows, [{ slept: true }]);
    },
    async () => {
      await conn?.close();
      if (created) {
        const err = await dropTool(toolName);
        if (err) t.diagnostic(`cleanup: could not drop ${toolName}: ${err.message}`);
      }
    }
  );
});

test('v1: closing the client during a call cancels the query and is audited as cancelled', { timeout: 120_000 }, async (t) => {
  const toolName = uniqueName('sleep');
  let conn;
  let created = false;
  await withTranscript(
    t,
    () => [conn?.tap],
    async () => {
      created = true;
      await createAndGrantTool({
        name: toolName,
        sql: 'SELECT pg_sleep(:s) IS NOT NULL AS slept',
        description: 'pg_mcp_bridge SDK e2e test tool (sleeps); dropped by the test',
        parameters: [{ name: 's', type: 'number' }],
        timeout: '30 seconds',
        grantTo: 'agent_support'
      });
      conn = await connectV1('agent_support');
      const { client } = conn;
      await listAllToolsV1(client);
      const [maxIdBefore] = await psql(`SELECT coalesce(max(id), 0) FROM mcp.audit_log`, { single: false });

      let outcome;
      const call = client.callTool({ name: toolName, arguments: { s: 20 } }, undefined, { timeout: 60_000 });
      call.then(
        (r) => (outcome = `resolved: ${JSON.stringify(r)}`),
        (e) => (outcome = `rejected: ${e?.message}`)
      );
      const sleepers = await waitFor(
        async () => {
          if (outcome !== undefined) throw new Error(`the call ended before the client closed, ${outcome}`);
          const pids = await sleepingBridgeBackends('agent_support');
          return pids.length > 0 && pids;
        },
        { timeoutMs: 10_000, intervalMs: 50, what: 'the tool call sleeping in pg_stat_activity' }
      );

      // close(): end of input for the bridge (then SIGTERM after 2 s, SIGKILL after 4 s).
      const closing = Date.now();
      await conn.close();
      await assert.rejects(call);
      t.diagnostic(`client closed in ${Date.now() - closing} ms`);

      const row = await cancelledInDatabase(toolName, maxIdBefore, sleepers);
      assert.equal(row.status, 'cancelled', `audit row: ${JSON.stringify(row)}`);
    },
    async () => {
      await conn?.close();
      if (created) {
        const err = await dropTool(toolName);
        if (err) t.diagnostic(`cleanup: could not drop ${toolName}: ${err.message}`);
      }
    }
  );
});
