#!/usr/bin/env bash
# ALTER EXTENSION pg_mcp UPDATE from every released version gives exactly what a fresh install
# of the current version gives, and keeps the data: a database is set up on 0.1.0 (from its
# frozen install script) with tools, a sandboxed view, principals, tokens, rate limits and
# audit rows, updated, and its catalog compared object by object with a fresh install's.
# Needs PGHOST/PGPORT/PGUSER of a running cluster.
set -euo pipefail
old=pg_mcp_upgrade_old
new=pg_mcp_upgrade_new
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$(dirname "$0")/../extension/pg_mcp.control")
dropdb --if-exists "$old" 2>/dev/null; dropdb --if-exists "$new" 2>/dev/null
createdb "$old"; createdb "$new"
trap 'dropdb --if-exists "$old"; dropdb --if-exists "$new"' EXIT

psql -q -v ON_ERROR_STOP=1 -d "$old" >/dev/null <<'SQL'
CREATE EXTENSION pg_mcp VERSION '0.1.0';
CREATE TABLE items (id int PRIMARY KEY, label text, secret text);
INSERT INTO items VALUES (1, 'one', 's1'), (2, 'two', 's2');
DO $$ BEGIN CREATE ROLE upgrade_agent NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT ON items TO upgrade_agent;
SELECT mcp.create_tool('item', 'SELECT id, label FROM items WHERE id = :id', 'One item',
                       '[{"name": "id", "type": "integer", "minimum": 1}]');
SELECT mcp.grant_tool('item', 'upgrade_agent');
-- The output schema as the 0.1.0 library derived it (nullable columns as type arrays).
UPDATE mcp.tools SET output_schema = jsonb_set(output_schema, '{properties,rows,items,properties}',
    '{"id": {"type": ["integer", "null"]}, "label": {"type": ["string", "null"]}}') WHERE name = 'item';
SELECT mcp.create_principal('upgrade-principal', 'upgrade_agent', '{"tenant_id": 7}');
SELECT mcp.create_token('upgrade-principal', 'kept across the upgrade');
SELECT mcp.set_rate_limit('upgrade_agent', 'item', max_calls => 1000, per => '1 hour');
SELECT mcp.create_sandbox_view('public.item_labels', 'items', ARRAY['label'], 'id > 0', 'Labels', ARRAY['label']);
SET ROLE upgrade_agent;
SELECT mcp.call_tool('item', '{"id": 1}');
SELECT mcp.call_tool('item', '{"id": "x"}');
SELECT mcp.call_tool('missing', '{}');
RESET ROLE;
SQL
rows_before=$(psql -Atq -d "$old" -c "SELECT jsonb_agg(to_jsonb(a) ORDER BY id) FROM mcp.audit_log a")

psql -q -v ON_ERROR_STOP=1 -d "$old" -c "ALTER EXTENSION pg_mcp UPDATE" >/dev/null
psql -q -v ON_ERROR_STOP=1 -d "$new" -c "CREATE EXTENSION pg_mcp" >/dev/null
version=$(psql -Atq -d "$old" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_mcp'")
[ "$version" = "$current" ] || { echo "FAIL: updated to $version, expected $current"; exit 1; }

# Every object of the extension, described canonically (definitions, types, defaults,
# constraints, privileges, comments, options), one line each.
catalog=$(cat <<'SQL'
WITH members AS (
    SELECT d.classid, d.objid FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_mcp'))
SELECT line FROM (
  SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid)
         || ' acl=' || coalesce(p.proacl::text, '') || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
  UNION ALL
  SELECT 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '')
         || ' options=' || coalesce(c.reloptions::text, '') || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
         || CASE WHEN c.relkind IN ('v', 'm') THEN ' view=' || pg_get_viewdef(c.oid) ELSE '' END
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  UNION ALL
  SELECT 'column ' || c.oid::regclass || '.' || a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') || ' identity=' || a.attidentity::text
         || ' acl=' || coalesce(a.attacl::text, '') || ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
  UNION ALL
  SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
  FROM members m JOIN pg_constraint co ON m.classid = 'pg_class'::regclass AND co.conrelid = m.objid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM members m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM members m JOIN pg_trigger t ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid AND NOT t.tgisinternal
  UNION ALL
  SELECT 'policy ' || pol.polrelid::regclass || ' ' || pol.polname || ' ' || pol.polcmd::text || ' ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '')
  FROM members m JOIN pg_policy pol ON m.classid = 'pg_class'::regclass AND pol.polrelid = m.objid
  UNION ALL
  SELECT 'type ' || t.oid::regtype FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
  UNION ALL
  SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '') || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '')
  FROM pg_namespace n WHERE n.nspname = 'mcp'
  UNION ALL
  SELECT 'config ' || cfg::regclass || ' ' || coalesce(e.extcondition[i], '')
  FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS u(cfg, i) WHERE e.extname = 'pg_mcp'
  UNION ALL
  SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) FROM members m
) AS objects(line) ORDER BY line COLLATE "C";
SQL
)
psql -Atq -d "$old" -c "$catalog" > "${TMPDIR:-/tmp}/pg_mcp_upgraded.catalog"
psql -Atq -d "$new" -c "$catalog" > "${TMPDIR:-/tmp}/pg_mcp_fresh.catalog"
if ! diff -u "${TMPDIR:-/tmp}/pg_mcp_fresh.catalog" "${TMPDIR:-/tmp}/pg_mcp_upgraded.catalog" > "${TMPDIR:-/tmp}/pg_mcp_upgrade.diff"; then
  echo "FAIL: the updated catalog differs from a fresh $current install (- fresh, + updated):"
  head -n 60 "${TMPDIR:-/tmp}/pg_mcp_upgrade.diff"
  exit 1
fi
objects=$(wc -l < "${TMPDIR:-/tmp}/pg_mcp_fresh.catalog")

# The data is kept: every audit row as it was, the chain verifies, and calls work as before.
# Columns added since 0.1.0 are NULL in the old rows.
added="'truncated', 'auth_issuer', 'auth_subject', 'auth_client_id', 'trace_id', 'span_id', 'confirmation'"
rows_after=$(psql -Atq -d "$old" -c "SELECT jsonb_agg(to_jsonb(a) - ARRAY[$added] ORDER BY id) FROM mcp.audit_log a")
[ "$rows_before" = "$rows_after" ] || { echo "FAIL: audit rows changed across the update"; exit 1; }
set_added=$(psql -Atq -d "$old" -c "SELECT count(*) FROM mcp.audit_log a, jsonb_each(to_jsonb(a)) e WHERE e.key IN ($added) AND e.value <> 'null'")
[ "$set_added" = 0 ] || { echo "FAIL: old audit rows have values in columns added since 0.1.0"; exit 1; }
result=$(psql -Atq -v ON_ERROR_STOP=1 -d "$old" <<'SQL'
SET ROLE upgrade_agent;
SELECT mcp.call_tool('item', '{"id": 2}') #>> '{structuredContent,rows,0,label}';
SELECT mcp.call_tool('missing', jsonb_build_object('blob', repeat('x', 5000))) #>> '{_meta,pg-mcp/status}';
RESET ROLE;
SELECT count(*) FROM mcp.tokens WHERE revoked_at IS NULL;
SELECT max_calls FROM mcp.rate_limits WHERE subject = 'upgrade_agent';
SELECT count(*) FROM mcp.audit_log WHERE truncated ? 'arguments';
SELECT verified FROM mcp.verify_audit();
-- Stored output schemas are those the current version derives (anyOf, not type arrays).
SELECT count(*) FILTER (WHERE t.output_schema IS DISTINCT FROM c.output_schema)
       || CASE WHEN count(*) >= 2 THEN ' differ' ELSE ' tools?' END
  FROM mcp.tools t, mcp._compile_tool(t.sql, t.parameters, t.search_path, t.read_only, coalesce(t.run_as, t.created_by)) c
 WHERE t.kind = 'sql';
SQL
)
expected=$'two\nnot_found\n1\n1000\n1\nt\n0 differ'
[ "$result" = "$expected" ] || { echo "FAIL: after the update got:"; echo "$result"; exit 1; }
echo "upgrade 0.1.0 -> $current: $objects catalog lines equal to a fresh install; audit rows kept, chain verified, calls work"
