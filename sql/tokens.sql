-- Bearer tokens: a bridge serving many agents over one login acts, per call, as the principal
-- of the agent's token (SET LOCAL ROLE); only the tokens' hashes are stored.
\set SHOW_CONTEXT never
CREATE ROLE regress_tok_agent NOLOGIN;
CREATE ROLE regress_tok_other NOLOGIN;
-- The bridge's login: NOINHERIT, so that it holds none of the principals' privileges itself,
-- only the right to SET ROLE to them.
CREATE ROLE regress_tok_bridge LOGIN NOINHERIT;
CREATE ROLE regress_tok_stranger LOGIN;
GRANT regress_tok_agent, regress_tok_other TO regress_tok_bridge;
CREATE ROLE regress_tok_admin LOGIN IN ROLE mcp_admin;
SELECT mcp.create_principal('tok-a', 'regress_tok_agent', '{"tenant": 7}');
SELECT mcp.create_principal('tok-b', 'regress_tok_other', '{"tenant": 8}');
SELECT mcp.create_tool('tok_whoami', 'SELECT current_user AS role, :tenant AS tenant', 'Who is calling',
    '[{"name": "tenant", "type": "integer", "from_principal": "tenant"}]');
SELECT mcp.grant_tool('tok_whoami', 'regress_tok_agent');

-- Creating tokens: each mistake is named; a token is shown once, only its hash is kept.
SELECT mcp.create_token('nobody');
SELECT mcp.create_token('tok-a', expires_at => now() - interval '1 minute');
-- An administrator who cannot act as the principal's role cannot issue tokens for it.
SET ROLE regress_tok_admin;
SELECT mcp.create_token('tok-a', 'first agent');
SELECT mcp.create_principal('tok-c', 'regress_tok_stranger');
RESET ROLE;
GRANT regress_tok_agent, regress_tok_other TO regress_tok_admin;
SET ROLE regress_tok_admin;
SELECT mcp.create_token('tok-a', 'first agent') AS token_a \gset
SELECT mcp.create_token('tok-b') AS token_b \gset
SELECT :'token_a' ~ '^pgmcp_[A-Za-z0-9_-]{43}$' AS well_formed, :'token_a' <> :'token_b' AS distinct_tokens;
SELECT principal, hint = left(:'token_a', 10) AS hint_is_prefix, description, created_by, status
  FROM mcp.tokens ORDER BY id;
SELECT * FROM mcp.principal_tokens;  -- hashes are not even for admins
RESET ROLE;
SELECT count(*) AS stored_as_hash FROM mcp.principal_tokens
 WHERE token_sha256 = sha256(convert_to(:'token_a', 'UTF8'));
SELECT count(*) AS token_text_stored FROM mcp.principal_tokens t
 WHERE position(convert_to(:'token_a', 'UTF8') IN t::text::bytea) > 0;

-- Agents and strangers cannot manage tokens or read them.
SET ROLE regress_tok_stranger;
SELECT mcp.create_token('tok-a');
SELECT * FROM mcp.tokens;
SELECT mcp.revoke_tokens('tok-a');
RESET ROLE;

-- The bridge's login acts as the token's principal for one transaction; without a token it
-- is itself, and can call nothing.
SET SESSION AUTHORIZATION regress_tok_bridge;
SELECT r #>> '{content,0,text}' AS without_token FROM mcp.call_tool('tok_whoami') r;
BEGIN;
SELECT mcp.assume_principal(sha256(convert_to(:'token_a', 'UTF8')));
SELECT current_user, mcp.current_principal();
SELECT r #>> '{structuredContent,rows,0}' AS row FROM mcp.call_tool('tok_whoami') r;
COMMIT;
SELECT current_user;
-- One statement (how pg_mcp_bridge calls): the role is set before the call runs.
WITH principal AS MATERIALIZED (SELECT mcp.assume_principal(sha256(convert_to(:'token_a', 'UTF8'))))
SELECT regexp_replace(regexp_replace(chunk, '"pg-mcp/audit_id":[0-9]+', '"pg-mcp/audit_id":N'),
                      '[0-9a-f]{32}', 'TOKEN', 'g') AS chunk
  FROM principal, mcp.call_tool_stream('tok_whoami', '{}', 'agent', 'client', 'r1') chunk;
-- tok-b's principal is not granted the tool: a clear denial, audited.
WITH principal AS MATERIALIZED (SELECT mcp.assume_principal(sha256(convert_to(:'token_b', 'UTF8'))))
SELECT r #>> '{content,0,text}' AS denied FROM principal, mcp.call_tool('tok_whoami') r;
-- Unknown tokens; the tools list follows the principal.
SELECT mcp.assume_principal(sha256(convert_to('pgmcp_not-a-token', 'UTF8')));
SELECT mcp.assume_principal(NULL);
WITH principal AS MATERIALIZED (SELECT mcp.assume_principal(sha256(convert_to(:'token_a', 'UTF8'))))
SELECT jsonb_path_query_array(mcp.list_tools(), '$[*].name') AS tools_of_a FROM principal;
WITH principal AS MATERIALIZED (SELECT mcp.assume_principal(sha256(convert_to(:'token_b', 'UTF8'))))
SELECT mcp.list_tools() AS tools_of_b FROM principal;
RESET SESSION AUTHORIZATION;

-- A login that is not a member of the principal's role cannot act as it (PostgreSQL's own
-- SET ROLE rule), and is told how to fix it.
SET SESSION AUTHORIZATION regress_tok_stranger;
SELECT mcp.assume_principal(sha256(convert_to(:'token_a', 'UTF8')));
SELECT current_user;
RESET SESSION AUTHORIZATION;

-- Expired and revoked tokens stop working at once.
UPDATE mcp.principal_tokens SET expires_at = now() - interval '1 second' WHERE principal = 'tok-b';
SELECT principal, status FROM mcp.tokens ORDER BY id;
SET SESSION AUTHORIZATION regress_tok_bridge;
SELECT mcp.assume_principal(sha256(convert_to(:'token_b', 'UTF8')));
RESET SESSION AUTHORIZATION;
SET ROLE regress_tok_admin;
SELECT mcp.revoke_token(id) FROM mcp.tokens WHERE principal = 'tok-a';
SELECT mcp.revoke_token(id) FROM mcp.tokens WHERE principal = 'tok-a';  -- already: no error
SELECT mcp.revoke_token(-1);
SELECT principal, status, revoked_by FROM mcp.tokens ORDER BY id;
RESET ROLE;
SET SESSION AUTHORIZATION regress_tok_bridge;
SELECT mcp.assume_principal(sha256(convert_to(:'token_a', 'UTF8')));
RESET SESSION AUTHORIZATION;

-- A principal's role that became a superuser is refused.
SELECT mcp.create_token('tok-a') AS token_a2 \gset
SELECT mcp.revoke_tokens('tok-a') AS revoked, mcp.revoke_tokens('tok-a') AS again;
SELECT mcp.create_token('tok-a') AS token_a3 \gset
ALTER ROLE regress_tok_agent SUPERUSER;
SELECT mcp.assume_principal(sha256(convert_to(:'token_a3', 'UTF8')));
ALTER ROLE regress_tok_agent NOSUPERUSER;

-- mcp.serve_call, the bridge's one statement per call: the trace for the call's transaction
-- only, the token's principal, never a token and an identity at once.
SET SESSION AUTHORIZATION regress_tok_bridge;
SELECT (array_agg(chunk))[1]::jsonb -> '_meta' ->> 'pg-mcp/status' AS status,
       regexp_replace((array_agg(chunk))[2], '[0-9a-f]{32}', 'TOKEN', 'g') AS body
  FROM mcp.serve_call('tok_whoami', '{}', 'regress', NULL, 'serve-1',
                      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
                      sha256(convert_to(:'token_a3', 'UTF8')), NULL, false) AS chunk;
SELECT current_user, current_setting('pg_mcp.traceparent', true) AS traceparent_after;
SELECT mcp.serve_call('tok_whoami', '{}', NULL, NULL, NULL, NULL,
                      sha256(convert_to(:'token_a3', 'UTF8')), '{}'::jsonb, false);
-- A call's trace lasts for its transaction; a later call without one clears it.
BEGIN;
SELECT count(*) FROM mcp.serve_call('tok_whoami', '{}', 'regress', NULL, 'serve-2',
    '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01', sha256(convert_to(:'token_a3', 'UTF8')), NULL, false);
SELECT current_setting('pg_mcp.traceparent', true) AS traceparent_in_transaction;
SELECT count(*) FROM mcp.serve_call('tok_whoami', '{}', 'regress', NULL, 'serve-3', NULL,
    sha256(convert_to(:'token_a3', 'UTF8')), NULL, false);
SELECT current_setting('pg_mcp.traceparent', true) AS cleared;
COMMIT;
-- A token's principal is cached in the backend; its expiry still counts at each call.
RESET SESSION AUTHORIZATION;
SELECT mcp.create_token('tok-a', expires_at => clock_timestamp() + interval '1 second') AS token_short \gset
SET SESSION AUTHORIZATION regress_tok_bridge;
SELECT mcp.assume_principal(sha256(convert_to(:'token_short', 'UTF8')));
SELECT pg_sleep(1.2);
SELECT mcp.assume_principal(sha256(convert_to(:'token_short', 'UTF8')));
RESET SESSION AUTHORIZATION;
SELECT request_id, principal, trace_id, span_id, agent_name FROM mcp.audit_log
 WHERE request_id LIKE 'serve-%' ORDER BY id;

-- The audit trail has the principal, the login it came through, never a token.
SELECT caller_role, session_role, principal, status, request_id FROM mcp.audit_log
 WHERE tool_name = 'tok_whoami' ORDER BY id;
SELECT count(*) AS tokens_in_audit FROM mcp.audit_log
 WHERE arguments::text LIKE '%pgmcp_%' OR coalesce(message, '') LIKE '%pgmcp_%';

-- Dropping a principal drops its tokens.
SELECT mcp.drop_principal('tok-a');
SELECT principal, count(*) FROM mcp.tokens GROUP BY principal;
SELECT mcp.drop_principal('tok-b');
SELECT mcp.drop_tool('tok_whoami');
DROP ROLE regress_tok_agent, regress_tok_other, regress_tok_bridge, regress_tok_stranger, regress_tok_admin;
