-- Security suite: attacks an agent (or a prompt-injected model) might try, through the query
-- tool and through ordinary tools. Each is refused with a clear message, and at the end the
-- database's state — tables, roles, settings, large objects, other sessions — is unchanged.
\set SHOW_CONTEXT never
CREATE SCHEMA bank;
CREATE TABLE bank.accounts (id int PRIMARY KEY, owner text, balance numeric);
INSERT INTO bank.accounts VALUES (1, 'ann', 100), (2, 'bob', 50);
CREATE ROLE regress_attacker NOLOGIN;
GRANT USAGE ON SCHEMA bank TO regress_attacker;
GRANT SELECT ON bank.accounts TO regress_attacker;
SELECT mcp.grant_tool('query', 'regress_attacker');
SELECT mcp.alter_tool('query', timeout => '1 second');  -- keeps the runaway cases short
SELECT mcp.create_tool('account_by_owner', 'SELECT id, owner FROM bank.accounts WHERE owner = :owner AND id = ANY(:ids) AND balance >= :min',
    'Accounts of an owner', '[{"name": "owner", "type": "string", "maxLength": 100},
      {"name": "ids", "type": "array", "items": {"type": "integer"}, "maxItems": 10, "default": [1, 2]},
      {"name": "min", "type": "number", "default": 0}]');
SELECT mcp.grant_tool('account_by_owner', 'regress_attacker');

-- The state every attack must leave alone.
CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT md5(concat_ws('|',
        (SELECT string_agg(c.oid::regclass::text || ':' || c.relkind::text, ',' ORDER BY c.oid)
           FROM pg_class c WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
            AND c.relpersistence <> 't' AND c.relnamespace::regnamespace::text NOT LIKE 'pg_%'),
        (SELECT string_agg(rolname || rolsuper::text, ',' ORDER BY rolname) FROM pg_roles),
        (SELECT string_agg(concat_ws(':', id, owner, balance), ',' ORDER BY id) FROM bank.accounts),
        (SELECT count(*) FROM pg_largeobject_metadata),
        current_setting('search_path'), current_setting('statement_timeout'), current_setting('role'),
        (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')))
$$;
SELECT pg_temp.fingerprint() AS before \gset

SET ROLE regress_attacker;
CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT (r #>> '{_meta,pg-mcp/status}') || ': ' || regexp_replace(coalesce(r #>> '{content,0,text}', ''),
                                                                      '[0-9a-f]{32}', 'TOKEN', 'g')
      FROM mcp.call_tool('query', jsonb_build_object('sql', sql)) r
$$;

-- Escaping read-only with more statements, or by ending the transaction.
SELECT pg_temp.q('SELECT 1; DROP TABLE bank.accounts');
SELECT pg_temp.q('COMMIT; DROP TABLE bank.accounts');
SELECT pg_temp.q('SELECT 1; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE');
-- Changing identity or settings.
SELECT pg_temp.q('SELECT set_config(''role'', ''postgres'', false)');
SELECT pg_temp.q('SET ROLE postgres');
SELECT pg_temp.q('SET SESSION AUTHORIZATION postgres');
SELECT pg_temp.q('RESET ALL');
-- Writing through a WITH clause, through SELECT INTO, through COPY.
SELECT pg_temp.q('WITH gone AS (DELETE FROM bank.accounts RETURNING *) SELECT count(*) FROM gone');
SELECT pg_temp.q('WITH moved AS (UPDATE bank.accounts SET balance = 0 RETURNING 1) SELECT 1');
SELECT pg_temp.q('SELECT * INTO bank.stolen FROM bank.accounts');
SELECT pg_temp.q('COPY bank.accounts TO PROGRAM ''cat > /tmp/stolen''');
SELECT pg_temp.q('COPY (SELECT 1) TO ''/tmp/stolen''');
-- Files, large objects, other sessions, sequences, notifications, locks.
SELECT pg_temp.q('SELECT pg_read_file(''/etc/passwd'')');
SELECT pg_temp.q('SELECT pg_ls_dir(''.'')');
SELECT pg_temp.q('SELECT lo_import(''/etc/passwd'')');
SELECT pg_temp.q('SELECT lo_create(0)');
SELECT pg_temp.q('SELECT pg_terminate_backend(pid) FROM pg_stat_activity');
SELECT pg_temp.q('SELECT pg_cancel_backend(pid) FROM pg_stat_activity');
SELECT pg_temp.q('SELECT pg_notify(''x'', ''y'')');
SELECT pg_temp.q('SELECT pg_advisory_lock(1)');
SELECT pg_temp.q('SELECT txid_current()') LIKE 'ok:%' AS stable_reads_allowed;
-- Waiting and CPU bombs.
SELECT pg_temp.q('SELECT pg_sleep(60)');
SELECT pg_temp.q('SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b');
SELECT pg_temp.q('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r');
-- Result-size bombs: capped, reported, never returned whole.
SELECT pg_temp.q('SELECT repeat(''x'', 10000000) AS big') AS huge_value;
SELECT length(mcp.call_tool('query', '{"sql": "SELECT g, repeat(''y'', 1000) FROM generate_series(1, 100000) g"}')::text) < 2000000 AS capped_output;
-- Obfuscation: comments, quoting, case, schema qualification, unicode escapes, nesting.
SELECT pg_temp.q('SELECT 1 /* ; */ ; DROP TABLE bank.accounts');
SELECT pg_temp.q('SELECT $x$;$x$; DROP TABLE bank.accounts');
SELECT pg_temp.q('SeLeCt PG_SLEEP(1)');
SELECT pg_temp.q('SELECT pg_catalog.pg_sleep(1)');
SELECT pg_temp.q('SELECT U&"\0070g_sleep"(1)');
SELECT pg_temp.q('SELECT * FROM (SELECT * FROM (SELECT pg_sleep(1)) a) b');
SELECT pg_temp.q('SELECT 1 WHERE EXISTS (SELECT pg_sleep(1))');
SELECT pg_temp.q('SELECT (SELECT set_config(''statement_timeout'', ''0'', false))');
SELECT pg_temp.q('SELECT * FROM bank.accounts -- ; DROP TABLE bank.accounts');
SELECT pg_temp.q(E'SELECT 1\n;\nDROP TABLE bank.accounts');

-- Injection strings in every parameter type of an ordinary tool are values, never SQL.
SELECT r #>> '{_meta,pg-mcp/status}' AS status, r -> 'structuredContent' -> 'row_count' AS row_count
  FROM (VALUES
    ($j${"owner": "ann' OR '1'='1"}$j$::jsonb),
    ($j${"owner": "ann'; DROP TABLE bank.accounts; --"}$j$),
    ($j${"owner": "ann\\'); DELETE FROM bank.accounts; --"}$j$),
    ($j${"owner": "ann", "ids": ["1); DROP TABLE bank.accounts; --"]}$j$),
    ($j${"owner": "ann", "ids": [1, "1 OR 1=1"]}$j$),
    ($j${"owner": "ann", "min": "0 OR 1=1"}$j$),
    ($j${"owner": "ann", "min": "0; DROP TABLE bank.accounts"}$j$),
    ($j${"owner": "$1"}$j$),
    ($j${"owner": ":owner"}$j$)
  ) AS a(args), LATERAL mcp.call_tool('account_by_owner', a.args) r;
-- Oversized and deeply nested arguments.
SELECT mcp.call_tool('account_by_owner', jsonb_build_object('owner', repeat('a', 101))) #>> '{content,0,text}' AS oversized;
SELECT mcp.call_tool('account_by_owner', ('{"owner": ' || repeat('[', 100) || repeat(']', 100) || '}')::jsonb) #>> '{content,0,text}' AS deeply_nested;
SELECT mcp.call_tool('account_by_owner', jsonb_build_object('owner', 'ann', 'ids', (SELECT jsonb_agg(g) FROM generate_series(1, 1000) g))) #>> '{content,0,text}' AS too_many_items;

-- Spoofing: the agent context is not identity, and a tool's SQL cannot change the role.
SET pg_mcp.agent_name = 'postgres';
SELECT mcp.call_tool('account_by_owner', '{"owner": "ann"}') -> 'structuredContent' -> 'row_count' AS as_itself;
RESET pg_mcp.agent_name;
RESET ROLE;

-- Nothing changed, and every attempt is in the audit log.
SELECT pg_temp.fingerprint() = :'before' AS state_unchanged;
SELECT (SELECT count(*) FROM mcp.audit_log WHERE caller_role = 'regress_attacker') AS audited_calls,
       (SELECT count(*) FROM mcp.audit_log WHERE caller_role = 'regress_attacker' AND status IN ('ok', 'truncated')) AS succeeded;

SELECT mcp.drop_tool('account_by_owner');
SELECT mcp.revoke_tool('query', 'regress_attacker');
SELECT mcp.alter_tool('query', timeout => '10 seconds');
DROP SCHEMA bank CASCADE;
DROP OWNED BY regress_attacker;
DROP ROLE regress_attacker;
