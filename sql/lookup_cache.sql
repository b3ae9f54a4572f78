-- Backends cache each (tool, caller) lookup; every change that could alter a call's outcome
-- must be seen by the very next call: in the same session (at the next command), after a
-- rollback, and in other sessions once committed (here through dblink's second session).
\set SHOW_CONTEXT never
CREATE TABLE cache_items (id int PRIMARY KEY, label text);
INSERT INTO cache_items VALUES (1, 'one');
CREATE ROLE regress_cache_group NOLOGIN;
CREATE ROLE regress_cache_agent NOLOGIN IN ROLE regress_cache_group;
GRANT SELECT ON cache_items TO regress_cache_group;
SELECT mcp.create_tool('cached_item', 'SELECT id, label FROM cache_items WHERE id = :id', 'An item',
                       '[{"name": "id", "type": "integer"}]');
CREATE FUNCTION cache_call() RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(r #>> '{_meta,pg-mcp/status}', 'ok') || ': '
         || regexp_replace(r #>> '{content,0,text}', '[0-9a-f]{32}', 'TOKEN', 'g')
    FROM mcp.call_tool('cached_item', '{"id": 1}') r $$;

-- Grants, through the API, in the same session.
SET ROLE regress_cache_agent;
SELECT cache_call() AS before_grant;
RESET ROLE;
SELECT mcp.grant_tool('cached_item', 'regress_cache_group');
SET ROLE regress_cache_agent;
SELECT cache_call() AS granted_to_group;
SELECT cache_call() AS granted_again;
RESET ROLE;

-- Role membership: leaving the group removes the tool; joining again restores it.
REVOKE regress_cache_group FROM regress_cache_agent;
SET ROLE regress_cache_agent;
SELECT cache_call() AS left_group;
RESET ROLE;
GRANT regress_cache_group TO regress_cache_agent;
SET ROLE regress_cache_agent;
SELECT cache_call() AS rejoined_group;
RESET ROLE;
-- NOINHERIT: the tool follows the server's own answer at once (up to 15 the role attribute
-- governs existing memberships; from 16 each membership has its own INHERIT option).
ALTER ROLE regress_cache_agent NOINHERIT;
SET ROLE regress_cache_agent;
SELECT (cache_call() LIKE 'ok: %') = pg_has_role('regress_cache_agent', 'regress_cache_group', 'USAGE')
       AS follows_the_server;
RESET ROLE;
-- A membership made without inheritance (any version) does not carry the grant.
REVOKE regress_cache_group FROM regress_cache_agent;
GRANT regress_cache_group TO regress_cache_agent;
SET ROLE regress_cache_agent;
SELECT cache_call() AS noinherit;
RESET ROLE;
ALTER ROLE regress_cache_agent INHERIT;
REVOKE regress_cache_group FROM regress_cache_agent;
GRANT regress_cache_group TO regress_cache_agent;

-- The tool's definition: a new SQL body is used at once.
SELECT mcp.alter_tool('cached_item', sql => 'SELECT id, upper(label) AS label FROM cache_items WHERE id = :id');
SET ROLE regress_cache_agent;
SELECT cache_call() AS altered;
RESET ROLE;

-- A rate limit, and its removal.
SELECT mcp.set_rate_limit('regress_cache_agent', 'cached_item', max_calls => 1, per => '1 hour');
SET ROLE regress_cache_agent;
SELECT cache_call() LIKE 'ok: %' AS first_within_limit, cache_call() LIKE 'rate_limited: %' AS second_limited;
RESET ROLE;
SELECT mcp.drop_rate_limit('regress_cache_agent', 'cached_item');
SET ROLE regress_cache_agent;
SELECT cache_call() AS limit_dropped;
RESET ROLE;

-- Changes made directly to the catalog tables, not through the API, are seen too.
DELETE FROM mcp.tool_grants WHERE tool_name = 'cached_item';
SET ROLE regress_cache_agent;
SELECT cache_call() AS grant_row_deleted;
RESET ROLE;

-- ...also under session_replication_role = replica (as logical replication applies changes).
SELECT mcp.grant_tool('cached_item', 'regress_cache_agent');
SET ROLE regress_cache_agent;
SELECT cache_call() LIKE 'ok: %' AS granted_before_replica_delete;
RESET ROLE;
SET session_replication_role = replica;
DELETE FROM mcp.tool_grants WHERE tool_name = 'cached_item';
RESET session_replication_role;
SET ROLE regress_cache_agent;
SELECT cache_call() AS deleted_as_replica;
RESET ROLE;

-- pg_database_owner: membership follows the database's owner.
SELECT mcp.grant_tool('cached_item', 'pg_database_owner');
SET ROLE regress_cache_agent;
SELECT cache_call() AS not_yet_owner;
RESET ROLE;
CREATE TEMP TABLE previous_owner AS
  SELECT datdba::regrole::text AS owner FROM pg_database WHERE datname = current_database();
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO regress_cache_agent', current_database()); END $$;
SET ROLE regress_cache_agent;
SELECT cache_call() AS database_owner;
RESET ROLE;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO %I', current_database(), (SELECT owner FROM previous_owner)); END $$;
SET ROLE regress_cache_agent;
SELECT cache_call() AS no_longer_owner;
RESET ROLE;
SELECT mcp.revoke_tool('cached_item', 'pg_database_owner');

-- A change and a call in the same statement: the call sees the change.
CREATE FUNCTION cache_delete_grants() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS $$
  DECLARE deleted bigint;
  BEGIN
    DELETE FROM mcp.tool_grants WHERE tool_name = 'cached_item';
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
  END $$;
GRANT EXECUTE ON FUNCTION cache_delete_grants() TO regress_cache_agent;
SELECT mcp.grant_tool('cached_item', 'regress_cache_agent');
SET ROLE regress_cache_agent;
SELECT cache_call() LIKE 'ok: %' AS granted_before_same_statement;
SELECT cache_delete_grants() AS deleted, cache_call() AS same_statement;
RESET ROLE;
DROP FUNCTION cache_delete_grants();

-- A change rolled back: the cache does not keep the rolled-back state.
SELECT mcp.grant_tool('cached_item', 'regress_cache_agent');
BEGIN;
SELECT mcp.revoke_tool('cached_item', 'regress_cache_agent');
SET LOCAL ROLE regress_cache_agent;
SELECT cache_call() AS revoked_in_transaction;
ROLLBACK;
SET ROLE regress_cache_agent;
SELECT cache_call() AS after_rollback;
RESET ROLE;

-- Another session's committed change is seen by this session's next call.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                                      split_part(current_setting('unix_socket_directories'), ',', 1)));
SET ROLE regress_cache_agent;
SELECT cache_call() AS cached_before_other_session;
RESET ROLE;
SELECT * FROM dblink('other', $$SELECT mcp.revoke_tool('cached_item', 'regress_cache_agent')::text$$) AS t(r text);
SET ROLE regress_cache_agent;
SELECT cache_call() AS revoked_by_other_session;
RESET ROLE;
SELECT * FROM dblink('other', $$SELECT mcp.grant_tool('cached_item', 'regress_cache_agent')::text$$) AS t(r text);
SET ROLE regress_cache_agent;
SELECT cache_call() AS granted_by_other_session;
RESET ROLE;
SELECT * FROM dblink('other', $$SELECT mcp.drop_tool('cached_item')::text$$) AS t(r text);
SET ROLE regress_cache_agent;
SELECT cache_call() AS dropped_by_other_session;
RESET ROLE;
SELECT dblink_disconnect('other');

-- REPEATABLE READ reads the catalog as of its snapshot (uncached), as before.
SELECT mcp.create_tool('cached_item', 'SELECT id, label FROM cache_items WHERE id = :id', 'An item',
                       '[{"name": "id", "type": "integer"}]');
SELECT mcp.grant_tool('cached_item', 'regress_cache_agent');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL ROLE regress_cache_agent;
SELECT cache_call() AS repeatable_read;
COMMIT;

DROP FUNCTION cache_call();
SELECT mcp.drop_tool('cached_item');
DROP EXTENSION dblink;
DROP TABLE cache_items;
DROP ROLE regress_cache_agent;
DROP ROLE regress_cache_group;
