#!/usr/bin/env bash
# The audit trail against what SQL tests cannot do in one session: a terminated caller, a
# killed audit writer, and a full queue. Needs PGHOST/PGPORT/PGUSER (a superuser) of a running
# cluster with pg_mcp preloaded.
set -euo pipefail
db=pg_mcp_audit_durability
fail() { echo "audit durability: FAIL: $*" >&2; exit 1; }
q() { psql -X -Atq -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

dropdb --if-exists "$db" 2>/dev/null
createdb "$db"
restore_settings() {
  psql -X -qAt -d postgres -c "ALTER SYSTEM RESET pg_mcp.audit_writer_paused" -c "SELECT pg_reload_conf()" >/dev/null || true
  dropdb --if-exists "$db" 2>/dev/null || true
}
trap restore_settings EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION pg_mcp;
CREATE TABLE t (id int PRIMARY KEY);
INSERT INTO t VALUES (1);
SELECT mcp.create_tool('one', 'SELECT id FROM t WHERE id = :id', 'One row', '[{"name": "id", "type": "integer"}]');
SELECT mcp.grant_tool('one', current_user);
-- A writing tool with a side effect no rollback undoes (a sequence), and a concurrency limit.
CREATE SEQUENCE bump_seq;
SELECT mcp.create_tool('bump', 'SELECT nextval(''bump_seq'') AS n', 'Advances a sequence', '[]', read_only => false);
SELECT mcp.grant_tool('bump', current_user);
SELECT mcp.set_rate_limit(current_user, 'bump', max_concurrent => 1);
SQL
rows_for() { q "SELECT count(*) FROM mcp.audit_log WHERE request_id = '$1'"; }
wait_rows() {  # request_id expected seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    [ "$(rows_for "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  fail "expected $2 audit rows for $1, found $(rows_for "$1")"
}

# 1. The caller is terminated after the call, inside an open transaction: its row stays.
psql -X -q -d "$db" >/dev/null 2>&1 <<'SQL' &
BEGIN;
SET LOCAL pg_mcp.request_id = 'terminated';
SELECT mcp.call_tool('one', '{"id": 1}');
SELECT pg_sleep(60);
SQL
caller=$!
for _ in $(seq 1 100); do
  [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND query LIKE 'SELECT pg_sleep(60)%'")" = 1 ] && break
  sleep 0.1
done
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db' AND query LIKE 'SELECT pg_sleep(60)%'" >/dev/null
wait "$caller" || true
wait_rows terminated 1 5
echo "audit durability: terminated caller: its audit row stayed"

# 2. The writer is killed while records wait in the queue: it restarts and writes every
#    acknowledged record (fast mode: acknowledged when queued; durable: when committed).
q "ALTER SYSTEM SET pg_mcp.audit_writer_paused = on" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
SET pg_mcp.audit_mode = fast;
SET pg_mcp.request_id = 'queued';
SELECT count(mcp.call_tool('one', '{"id": 1}')) FROM generate_series(1, 25);
SQL
[ "$(rows_for queued)" = 0 ] || fail "records were written while the writer was paused"
(psql -X -Atq -d "$db" -c "SET pg_mcp.request_id = 'durable-waiting'; SELECT mcp.call_tool('one', '{\"id\": 1}') #>> '{_meta,pg-mcp/status}'" \
   > /tmp/pg_mcp_durable_call.$$ 2>&1) &
durable=$!
sleep 0.5
writer=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_mcp audit writer' AND datname = '$db'")
[ -n "$writer" ] || fail "no audit writer is running"
q "SELECT pg_terminate_backend($writer)" >/dev/null
q "ALTER SYSTEM RESET pg_mcp.audit_writer_paused" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_rows queued 25 15
wait "$durable" || fail "the durable call failed: $(cat /tmp/pg_mcp_durable_call.$$)"
[ "$(cat /tmp/pg_mcp_durable_call.$$)" = ok ] || fail "durable call answered: $(cat /tmp/pg_mcp_durable_call.$$)"
rm -f /tmp/pg_mcp_durable_call.$$
wait_rows durable-waiting 1 5
new_writer=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_mcp audit writer' AND datname = '$db' AND pid <> $writer")
echo "audit durability: killed writer (pid $writer) restarted ($new_writer new); 25 queued and 1 durable record written"
[ "$(q "SELECT verified FROM mcp.verify_audit()")" = t ] || fail "chain does not verify after the restart"

# 3. A full queue refuses calls (after a bounded wait) before their SQL runs, instead of running
#    them unaudited: the refused call did not advance the sequence; and the concurrency slot it
#    took is given back when the exception block's subtransaction aborts, not at commit.
q "ALTER SYSTEM SET pg_mcp.audit_writer_paused = on" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
filled=$(psql -X -Atq -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<'SQL' || true
SET pg_mcp.audit_mode = fast;
SET pg_mcp.audit_wait_timeout = '200ms';
SET pg_mcp.request_id = 'fill';
DO $$
DECLARE
    n int := 0;
BEGIN
    FOR i IN 1..100000 LOOP
        BEGIN
            PERFORM mcp.call_tool('bump', '{}');
            n := n + 1;
        EXCEPTION WHEN insufficient_resources THEN
            RAISE NOTICE 'refused: %', SQLERRM;
            EXIT;
        END;
    END LOOP;
    IF (SELECT last_value FROM bump_seq) <> n THEN
        RAISE EXCEPTION 'the refused call ran its SQL: sequence at %, % calls answered',
            (SELECT last_value FROM bump_seq), n;
    END IF;
    IF (SELECT concurrent_now FROM mcp.rate_limit_usage WHERE tool = 'bump') <> 0 THEN
        RAISE EXCEPTION 'the refused call''s concurrency slot is still held';
    END IF;
    PERFORM set_config('pg_mcp_test.answered', n::text, false);
END
$$;
SELECT current_setting('pg_mcp_test.answered');
SQL
)
answered=$(printf '%s\n' "$filled" | tail -n 1)
case "$answered" in ''|*[!0-9]*) fail "filling the queue did not end with a refusal: $filled" ;; esac
[ "$answered" -gt 0 ] || fail "no call was answered before the queue filled"
q "ALTER SYSTEM RESET pg_mcp.audit_writer_paused" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_rows fill "$answered" 30
echo "audit durability: full queue refused the call before it ran, after $answered answered calls; all $answered were written; its concurrency slot was given back"
[ "$(q "SELECT verified FROM mcp.verify_audit()")" = t ] || fail "chain does not verify"
echo "audit durability: ok"
