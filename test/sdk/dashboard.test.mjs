// The Grafana dashboard (deploy/grafana/pg_mcp-dashboard.json) is valid, and every query in it
// names what exists: each Prometheus expression's metrics (and the labels it groups by) are
// in a running bridge's /metrics, and each SQL query runs against the extension's views as an
// auditor (a plain mcp_admin member) can run it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startHttpBridge } from './clients.mjs';
import { psql } from './helpers.mjs';

const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/pg_mcp-dashboard.json', import.meta.url), 'utf8'));

test('dashboard: valid Grafana JSON with unique panels, each with a query', () => {
  assert.equal(typeof dashboard.title, 'string');
  assert.equal(typeof dashboard.uid, 'string');
  assert.ok(Array.isArray(dashboard.panels) && dashboard.panels.length >= 8);
  const ids = new Set();
  for (const panel of dashboard.panels) {
    assert.ok(!ids.has(panel.id), `panel id ${panel.id} repeated`);
    ids.add(panel.id);
    assert.ok(panel.gridPos && panel.gridPos.w > 0 && panel.gridPos.h > 0, panel.title);
    assert.ok(['prometheus', 'grafana-postgresql-datasource'].includes(panel.datasource.type), panel.title);
    // Each data source is one of the dashboard's data source variables.
    const variable = panel.datasource.uid.replace(/^\$\{(.*)\}$/, '$1');
    const declared = dashboard.templating.list.find((v) => v.name === variable && v.type === 'datasource');
    assert.ok(declared, `${panel.title}: data source ${panel.datasource.uid} is not a variable`);
    assert.equal(declared.query, panel.datasource.type, panel.title);
    assert.ok(panel.targets.length > 0, panel.title);
    for (const target of panel.targets) assert.ok(target.expr || target.rawSql, panel.title);
  }
  // What the issue asks for: calls by outcome, latency percentiles, pool use, sessions; top
  // tools by cost, PII access.
  const all = JSON.stringify(dashboard.panels);
  for (const needed of ['pg_mcp_bridge_tool_calls_total', 'histogram_quantile', 'pg_mcp_bridge_pool_in_use',
                        'pg_mcp_bridge_http_sessions', 'mcp.tool_costs', 'mcp.pii_access'])
    assert.ok(all.includes(needed), needed);
});

test('dashboard: every metric and label a panel queries is in /metrics', { timeout: 60_000 }, async () => {
  const bridge = await startHttpBridge('agent_support', [
    '--auth', 'oauth', '--oauth-resource', 'http://127.0.0.1:1/mcp', '--otlp-endpoint', 'http://127.0.0.1:1'
  ]);
  let text;
  try {
    await fetch(new URL('/healthz', bridge.url));  // a response, so that its status is counted
    text = await (await fetch(new URL('/metrics', bridge.url))).text();
  } finally {
    await bridge.stop();
  }
  const families = new Map();  // name -> type
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name, type);
  const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const expressions = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr).filter(Boolean));
  for (const variable of dashboard.templating.list)
    if (variable.definition) expressions.push(variable.definition);
  assert.ok(expressions.length >= 10);
  for (const expr of expressions) {
    const metrics = [...expr.matchAll(/pg_mcp_bridge_[a-z_]+/g)].map((m) => m[0]);
    assert.ok(metrics.length > 0, expr);
    for (const metric of metrics) {
      const family = metric.replace(/_(bucket|sum|count)$/, '');
      const name = families.has(metric) ? metric : family;
      assert.ok(families.has(name), `${metric} (in ${expr}) is not in /metrics`);
      if (metric !== name) assert.equal(families.get(name), 'histogram', metric);
      for (const [, label] of expr.matchAll(/by \(([a-z_]+)\)/g))
        assert.ok(samples.some((l) => l.startsWith(metric) && l.includes(`${label}="`)), `${metric} has no label ${label}`);
    }
  }
});

test('dashboard: every SQL panel runs against the extension, as a plain mcp_admin member', async () => {
  // An auditor: a member of mcp_admin with no other grant (no USAGE on the agents' schemas).
  await psql(`DO $$ BEGIN CREATE ROLE sdk_auditor LOGIN IN ROLE mcp_admin;
              EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  const queries = dashboard.panels.flatMap((p) => p.targets.map((t) => t.rawSql).filter(Boolean));
  assert.ok(queries.length >= 3);
  for (const query of queries) {
    assert.match(query, /\bmcp\.[a-z_]+/);
    // Grafana's time macro, as it expands it.
    const sql = query.replace(/\$__timeFilter\(([a-z_]+)\)/g, "$1 BETWEEN now() - interval '6 hours' AND now()");
    assert.doesNotMatch(sql, /\$__/, 'a macro this test does not expand');
    await psql(sql, { single: false, user: 'sdk_auditor' });
  }
});
