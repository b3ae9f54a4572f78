#!/usr/bin/env bash
# Tool definitions, grants and audit rows survive pg_dump / pg_restore (the catalog tables are
# extension configuration tables). Needs PGHOST/PGPORT/PGUSER of a running cluster.
set -euo pipefail
src=pg_mcp_dump_src
dst=pg_mcp_dump_dst
dropdb --if-exists "$src" 2>/dev/null; dropdb --if-exists "$dst" 2>/dev/null
createdb "$src"; createdb "$dst"
psql -q -v ON_ERROR_STOP=1 -d "$src" >/dev/null <<'SQL'
CREATE EXTENSION pg_mcp;
CREATE TABLE items (id int PRIMARY KEY, label text);
INSERT INTO items VALUES (1, 'one');
DO $$ BEGIN CREATE ROLE dump_agent NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT ON items TO dump_agent;
SELECT mcp.create_tool('item', 'SELECT id, label FROM items WHERE id = :id', 'One item',
                       '[{"name": "id", "type": "integer", "minimum": 1}]');
SELECT mcp.alter_tool('item', max_rows => 3);
SELECT mcp.grant_tool('item', 'dump_agent');
SELECT mcp.create_principal('dump-principal', 'dump_agent', '{"tenant_id": 7}');
SELECT mcp.create_sandbox_view('public.item_labels', 'items', ARRAY['label'], 'id > 0', 'Labels', ARRAY['label']);
SET ROLE dump_agent;
SELECT mcp.call_tool('item', '{"id": 1}');
SQL
dumpfile=$(mktemp)
trap 'rm -f "$dumpfile"' EXIT
pg_dump -Fc -d "$src" -f "$dumpfile"
pg_restore -d "$dst" "$dumpfile"

snapshot=$(cat <<'SQL'
SELECT (SELECT jsonb_agg(to_jsonb(t) ORDER BY name) FROM mcp.tools t WHERE NOT builtin),
       (SELECT jsonb_agg(to_jsonb(p) ORDER BY name) FROM mcp.principals p),
       (SELECT jsonb_agg(to_jsonb(v) ORDER BY view_name, version) FROM mcp.sandbox_view_versions v),
       (SELECT jsonb_agg(to_jsonb(g) ORDER BY tool_name) FROM mcp.tool_grants g
         WHERE NOT EXISTS (SELECT FROM mcp.tools t WHERE t.name = g.tool_name AND t.builtin)),
       (SELECT jsonb_agg(jsonb_build_array(g.tool_name, g.role) ORDER BY tool_name) FROM mcp.tool_grants g),
       (SELECT jsonb_agg(to_jsonb(a) ORDER BY id) FROM mcp.audit_log a)
SQL
)
before=$(psql -Atq -d "$src" -c "$snapshot")
after=$(psql -Atq -d "$dst" -c "$snapshot")
if [ "$before" != "$after" ]; then
  echo "dump/restore changed the catalog:"; echo "before: $before"; echo "after:  $after"; exit 1
fi
# The restored tool still works, and new tools get fresh ids (the sequence was restored too).
result=$(psql -Atq -d "$dst" -c "SET ROLE dump_agent; SELECT mcp.call_tool('item', '{\"id\": 1}') #>> '{structuredContent,rows,0,label}'")
[ "$result" = "one" ] || { echo "restored tool returned: $result"; exit 1; }
psql -Atq -d "$dst" -c "SELECT mcp.create_tool('item2', 'SELECT 1 AS one', 'Another')" >/dev/null
dropdb "$src"; dropdb "$dst"
psql -q -c "DROP ROLE dump_agent"
echo "dump/restore: tools, grants and audit rows identical; restored tool callable"
