-- Every call whose SQL ran is audited whatever its size: each variable-size field of the record
-- is cut to a documented limit, with a note of its full size and SHA-256 in `truncated`; calls
-- refused before running keep much less of their arguments; the agent never sees a size
-- derived from data it did not get. And rate limits follow role membership, as grants do.
\set SHOW_CONTEXT never
CREATE SCHEMA al;
CREATE TABLE al.secrets (v text);
INSERT INTO al.secrets VALUES ('s3cr3t');
CREATE ROLE regress_al_agent NOLOGIN;
GRANT USAGE ON SCHEMA al TO regress_al_agent;
GRANT SELECT ON al.secrets TO regress_al_agent;
SELECT mcp.grant_tool('query', 'regress_al_agent');
SELECT mcp.create_tool('al_echo', 'SELECT :note::text AS note', 'Echoes a note',
                       '[{"name": "note", "type": "string"}]');
SELECT mcp.grant_tool('al_echo', 'regress_al_agent');
SELECT count(*) AS rows_before FROM mcp.audit_log \gset

-- A query whose error carries a 600 kB value computed from the data (more than the audit
-- queue takes whole): exactly one audit row, its message cut and hashed; the agent's error is
-- cut alike and states no size of the value.
SET ROLE regress_al_agent;
SET pg_mcp.request_id = 'al-big-error';
SELECT r #>> '{_meta,pg-mcp/status}' AS status,
       octet_length(r #>> '{content,0,text}') <= 4096 + 64 AS agent_text_bounded,
       r #>> '{content,0,text}' LIKE 'Tool "query" failed: invalid input syntax for type integer: "s3cr3ts3cr3t%' AS agent_text_starts,
       r #>> '{content,0,text}' LIKE '%[cut at 4096 bytes]' AS agent_text_marked,
       position('6000' IN r #>> '{content,0,text}') = 0 AS no_size_shown
  FROM mcp.call_tool('query', '{"sql": "SELECT repeat(v, 100000)::int FROM al.secrets"}') r;
RESET pg_mcp.request_id;
RESET ROLE;
SELECT count(*) AS rows, min(status) AS status, max(octet_length(message)) <= 4096 AS message_bounded,
       bool_and(message LIKE 'invalid input syntax for type integer: "s3cr3t%') AS message_kept,
       min((truncated #>> '{message,bytes}')::int) AS full_bytes,
       bool_and(truncated #>> '{message,sha256}' = encode(sha256(convert_to(
           'invalid input syntax for type integer: "' || repeat('s3cr3t', 100000) || '"', 'UTF8')), 'hex')) AS hash_of_full_message
  FROM mcp.audit_log WHERE request_id = 'al-big-error';

-- Arguments: a call that ran keeps up to 16 kB of them (more: the start of their text as a JSON
-- string, and their hash); small ones stay whole and leave `truncated` NULL.
SET ROLE regress_al_agent;
SET pg_mcp.request_id = 'al-ran-big';
SELECT mcp.call_tool('al_echo', jsonb_build_object('note', repeat('n', 20000))) #>> '{_meta,pg-mcp/status}' AS ran_big;
SET pg_mcp.request_id = 'al-ran-small';
SELECT mcp.call_tool('al_echo', '{"note": "hello"}') #>> '{_meta,pg-mcp/status}' AS ran_small;
RESET pg_mcp.request_id;
RESET ROLE;
SELECT request_id, jsonb_typeof(arguments) AS kept_as, octet_length(arguments::text) <= 16384 AS bounded,
       truncated #>> '{arguments,sha256}' = encode(sha256(convert_to(jsonb_build_object('note', repeat('n', 20000))::text, 'UTF8')), 'hex') AS hash_of_full_arguments,
       truncated IS NULL AS nothing_cut
  FROM mcp.audit_log WHERE request_id IN ('al-ran-big', 'al-ran-small') ORDER BY request_id;

-- Calls refused before running (unknown tool, invalid arguments, denied, rate limited) keep at
-- most 1 kB of arguments: a few sessions cannot fill the audit log with what they send.
SELECT mcp.set_rate_limit('regress_al_agent', 'al_echo', max_calls => 2, per => '1 hour');
SET ROLE regress_al_agent;
SET pg_mcp.request_id = 'al-refused';
SELECT mcp.call_tool('no_such_tool', jsonb_build_object('blob', repeat('y', 300000))) #>> '{_meta,pg-mcp/status}' AS unknown;
SELECT mcp.call_tool('list_objects', jsonb_build_object('blob', repeat('y', 300000))) #>> '{_meta,pg-mcp/status}' AS not_granted;
SELECT mcp.call_tool('al_echo', jsonb_build_object('note', 5, 'blob', repeat('y', 300000))) #>> '{_meta,pg-mcp/status}' AS invalid;
SELECT mcp.call_tool('al_echo', jsonb_build_object('note', 'a')) #>> '{_meta,pg-mcp/status}' AS first;
SELECT mcp.call_tool('al_echo', jsonb_build_object('note', repeat('z', 300000))) #>> '{_meta,pg-mcp/status}' AS limited;
RESET pg_mcp.request_id;
RESET ROLE;
SELECT status, jsonb_typeof(arguments) AS kept_as, octet_length(arguments::text) <= 1024 AS bounded,
       (truncated #>> '{arguments,bytes}')::int > 300000 AS full_size_noted,
       length(truncated #>> '{arguments,sha256}') AS hash_length
  FROM mcp.audit_log WHERE request_id = 'al-refused' AND status <> 'ok' ORDER BY status;

-- Every other variable field is bounded too: an unknown tool's name, the agent's name and
-- client, the request id.
SET ROLE regress_al_agent;
SELECT count(*) AS result_rows FROM mcp.call_tool_stream(repeat('t', 10000), '{}', repeat('a', 5000), repeat('c', 5000), 'al-' || repeat('r', 5000));
RESET ROLE;
SELECT octet_length(tool_name) AS tool_name, octet_length(agent_name) AS agent_name,
       octet_length(client_info) AS client_info, octet_length(request_id) AS request_id,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(truncated) k) AS cut
  FROM mcp.audit_log WHERE request_id LIKE 'al-rrr%';

-- Exactly one row per call above, and the chain verifies.
SELECT count(*) - :rows_before AS new_rows FROM mcp.audit_log;
SELECT verified, problem FROM mcp.verify_audit();

-- A limit on a group role counts the calls of its members (the membership rule of grants), and
-- the members share it; every limit that matches a call applies.
CREATE ROLE regress_al_group NOLOGIN;
CREATE ROLE regress_al_member1 NOLOGIN IN ROLE regress_al_group;
CREATE ROLE regress_al_member2 NOLOGIN IN ROLE regress_al_group;
SELECT mcp.grant_tool('al_echo', 'regress_al_group');
SELECT mcp.set_rate_limit('regress_al_group', 'al_echo', max_calls => 3, per => '1 hour');
SET ROLE regress_al_member1;
SELECT mcp.call_tool('al_echo', '{"note": "m1"}') #>> '{_meta,pg-mcp/status}' AS member1
  FROM generate_series(1, 2);
SET ROLE regress_al_member2;
SELECT mcp.call_tool('al_echo', '{"note": "m2"}') #>> '{_meta,pg-mcp/status}' AS member2
  FROM generate_series(1, 2);
SELECT r #>> '{content,0,text}' LIKE '%for role "regress_al_group" on tool "al_echo"%' AS names_group_limit
  FROM mcp.call_tool('al_echo', '{"note": "m2"}') r;
RESET ROLE;
SELECT subject, calls_in_window FROM mcp.rate_limit_usage WHERE subject = 'regress_al_group';

SELECT mcp.drop_tool('al_echo');
SELECT mcp.revoke_tool('query', 'regress_al_agent');
DROP ROLE regress_al_member1, regress_al_member2, regress_al_group;
DROP TABLE al.secrets;
REVOKE ALL ON SCHEMA al FROM regress_al_agent;
DROP SCHEMA al;
DROP ROLE regress_al_agent;
