-- The audit trail no caller can erase: rows are written by the audit writer outside the
-- caller's transaction, chained by hash, verifiable, and purged only as a recorded prefix.
\set SHOW_CONTEXT never
CREATE TABLE ledger (id int PRIMARY KEY, amount int);
INSERT INTO ledger VALUES (1, 10), (2, 20);
CREATE ROLE regress_trail_agent NOLOGIN;
GRANT SELECT ON ledger TO regress_trail_agent;
SELECT mcp.create_tool('entry', 'SELECT id, amount FROM ledger WHERE id = :id', 'One entry',
                       '[{"name": "id", "type": "integer"}]');
SELECT mcp.grant_tool('entry', 'regress_trail_agent');
CREATE FUNCTION pg_temp.rows_for(request text) RETURNS bigint LANGUAGE sql AS
  $$SELECT count(*) FROM mcp.audit_log WHERE request_id = request$$;

-- Each way a caller could try to take its call back leaves exactly one row.
SET ROLE regress_trail_agent;
BEGIN;
SET LOCAL pg_mcp.request_id = 'rollback';
SELECT mcp.call_tool('entry', '{"id": 1}') #>> '{_meta,pg-mcp/status}';
ROLLBACK;
BEGIN;
SAVEPOINT before_call;
SET LOCAL pg_mcp.request_id = 'savepoint';
SELECT mcp.call_tool('entry', '{"id": 1}') #>> '{_meta,pg-mcp/status}';
ROLLBACK TO SAVEPOINT before_call;
COMMIT;
-- (the call runs in FROM, then the statement fails while producing its row)
SET pg_mcp.request_id = 'failed-statement';
SELECT 1 / (length(r::text) - length(r::text)) FROM mcp.call_tool('entry', '{"id": 1}') r;
SET pg_mcp.request_id = 'swallowed';
DO $$
BEGIN
    PERFORM mcp.call_tool('entry', '{"id": 2}');
    RAISE EXCEPTION 'undo everything';
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;
SET pg_mcp.request_id = 'invalid';
BEGIN;
SELECT mcp.call_tool('entry', '{"id": "x"}') #>> '{_meta,pg-mcp/status}';
ROLLBACK;
RESET pg_mcp.request_id;
RESET ROLE;
SELECT request_id, count(*) AS audit_rows, min(status) AS status
  FROM mcp.audit_log WHERE request_id IN ('rollback', 'savepoint', 'failed-statement', 'swallowed', 'invalid')
 GROUP BY request_id ORDER BY request_id;

-- The chain verifies; each kind of tampering (done by a superuser with the triggers off, and
-- rolled back here) is caught at the first broken row.
SELECT verified, first_bad_id, problem FROM mcp.verify_audit();
SELECT min(id) AS a, min(id) + 1 AS b, max(id) AS last FROM mcp.audit_log \gset
BEGIN;
ALTER TABLE mcp.audit_log DISABLE TRIGGER USER;
UPDATE mcp.audit_log SET status = 'ok' WHERE id = :b;
SELECT verified, first_bad_id = :b AS at_b, problem LIKE '%was altered%' AS altered FROM mcp.verify_audit();
ROLLBACK;
BEGIN;
ALTER TABLE mcp.audit_log DISABLE TRIGGER USER;
DELETE FROM mcp.audit_log WHERE id = :b;
SELECT verified, first_bad_id = :b + 1 AS after_b, problem LIKE '%deleted, inserted or reordered%' AS chain FROM mcp.verify_audit();
ROLLBACK;
BEGIN;
INSERT INTO mcp.audit_log (id, called_at, caller_role, session_role, tool_name, status, duration_ms, backend_pid, prev_hash, row_hash)
SELECT :last + 1, now(), 'ghost', 'ghost', 'entry', 'ok', 1, 1, sha256('forged'), sha256('forged');
SELECT verified, first_bad_id = :last + 1 AS at_inserted FROM mcp.verify_audit();
ROLLBACK;
BEGIN;
ALTER TABLE mcp.audit_log DISABLE TRIGGER USER;
UPDATE mcp.audit_log SET id = -id WHERE id IN (:a, :b);
UPDATE mcp.audit_log SET id = CASE WHEN id = -(:a) THEN :b ELSE :a END WHERE id IN (-(:a), -(:b));
SELECT verified, first_bad_id = :a AS at_swap FROM mcp.verify_audit();
ROLLBACK;
SELECT verified FROM mcp.verify_audit();

-- Purging keeps the chain verifiable: the first remaining row follows the recorded anchor,
-- and the purge is itself a row of the chain.
SELECT mcp.purge_audit('-1 day') > 0 AS purged;
SELECT last_purged_id >= :last AS anchored, rows_purged > 0 AS counted FROM mcp.audit_anchors ORDER BY last_purged_id DESC LIMIT 1;
SELECT tool_name, status FROM mcp.audit_log ORDER BY id;
SELECT verified, rows_checked FROM mcp.verify_audit();
SET ROLE regress_trail_agent;
SELECT mcp.call_tool('entry', '{"id": 2}') #>> '{_meta,pg-mcp/status}';
RESET ROLE;
SELECT verified, rows_checked FROM mcp.verify_audit();
-- Anchors are append-only too.
DELETE FROM mcp.audit_anchors;

-- Agents can neither read the log nor verify it.
SET ROLE regress_trail_agent;
SELECT count(*) FROM mcp.audit_log;
SELECT * FROM mcp.verify_audit();
RESET ROLE;

SELECT mcp.drop_tool('entry');
DROP TABLE ledger;
DROP ROLE regress_trail_agent;
