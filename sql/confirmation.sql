-- A person confirms each call of a tool with confirm => 'ask' before its SQL runs: the client
-- is asked (mcp.serve_call's head carries pg-mcp/input_required: the message and a signed
-- state), and the retry brings the state with the person's answer. The state is bound to the
-- tool, its version, the arguments and the caller, expires, and is good once; every round is
-- audited with the decision.
\set SHOW_CONTEXT never
CREATE TABLE regress_accounts (id int PRIMARY KEY, owner text, open boolean NOT NULL DEFAULT true);
INSERT INTO regress_accounts VALUES (1, 'ann', true), (2, 'bob', true);
CREATE ROLE regress_cf_agent NOLOGIN;
CREATE ROLE regress_cf_other NOLOGIN;
GRANT SELECT, UPDATE ON regress_accounts TO regress_cf_agent, regress_cf_other;
SELECT mcp.create_tool('cf_close', 'UPDATE regress_accounts SET open = false WHERE id = :id RETURNING id, owner',
                       'Closes an account', '[{"name": "id", "type": "integer"}]', read_only => false,
                       confirm => 'ask', confirm_message => 'Close account {id} for good?');
SELECT mcp.create_tool('cf_bad', 'SELECT 1 AS one', 'x', confirm => 'always');
SELECT mcp.create_tool('cf_bad', 'SELECT 1 AS one', 'x', confirm => 'ask', confirm_message => '');
SELECT mcp.grant_tool('cf_close', r) FROM unnest(ARRAY['regress_cf_agent', 'regress_cf_other']) r;
SELECT name, confirm, confirm_message FROM mcp.tools WHERE name = 'cf_close';

-- The head of a call through mcp.serve_call, as the bridge reads it.
CREATE FUNCTION pg_temp.call(args jsonb, confirmation jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT (array_agg(x))[1]::jsonb FROM mcp.serve_call('cf_close', args, 'regress', NULL, NULL, NULL,
                                                         NULL, NULL, false, confirmation) x $$;
CREATE FUNCTION pg_temp.answer(args jsonb, state text, action text) RETURNS text LANGUAGE sql AS $$
    SELECT h #>> '{_meta,pg-mcp/status}' FROM pg_temp.call(args, jsonb_build_object('state', state, 'action', action)) h $$;
GRANT EXECUTE ON FUNCTION pg_temp.call(jsonb, jsonb), pg_temp.answer(jsonb, text, text) TO PUBLIC;

SET ROLE regress_cf_agent;
-- A client that cannot ask a person (no elicitation): refused, nothing done.
SELECT mcp.call_tool('cf_close', '{"id": 1}') #>> '{content,0,text}' AS refused;
SELECT h #>> '{_meta,pg-mcp/status}' AS status FROM pg_temp.call('{"id": 1}', '{"can_ask": false}') h;
-- One that can: asked, with the message and a state; still nothing done.
SELECT h #>> '{_meta,pg-mcp/status}' AS status, h -> 'isError' AS is_error,
       h #>> '{_meta,pg-mcp/input_required,message}' AS message,
       h #> '{_meta,pg-mcp/input_required,requestedSchema}' AS schema,
       h #>> '{_meta,pg-mcp/input_required,requestState}' ~ '^[0-9a-f]+\.[0-9a-f]{64}$' AS state_shape
  FROM pg_temp.call('{"id": 1}', '{"can_ask": true}') h;
SELECT h #>> '{_meta,pg-mcp/input_required,requestState}' AS state1 FROM pg_temp.call('{"id": 1}', '{"can_ask": true}') h \gset
SELECT open FROM regress_accounts WHERE id = 1;
-- Accepted: runs once; the same state again is refused.
SELECT pg_temp.answer('{"id": 1}', :'state1', 'accept') AS accepted;
SELECT open FROM regress_accounts WHERE id = 1;
SELECT pg_temp.answer('{"id": 1}', :'state1', 'accept') AS replayed;
-- Bound to the arguments, the signature, the answer's form.
SELECT h #>> '{_meta,pg-mcp/input_required,requestState}' AS state2 FROM pg_temp.call('{"id": 2}', '{"can_ask": true}') h \gset
SELECT pg_temp.answer('{"id": 1}', :'state2', 'accept') AS other_arguments;
SELECT pg_temp.answer('{"id": 2}', overlay(:'state2' placing (CASE substr(:'state2', 3, 1) WHEN 'a' THEN 'b' ELSE 'a' END) from 3 for 1), 'accept') AS altered;
SELECT pg_temp.answer('{"id": 2}', 'deadbeef.' || repeat('0', 64), 'accept') AS forged;
SELECT pg_temp.answer('{"id": 2}', 'not a state', 'accept') AS garbage;
SELECT pg_temp.answer('{"id": 2}', :'state2', 'maybe') AS bad_action;
SELECT call -> 'content' -> 0 ->> 'text' AS message FROM (SELECT mcp.call_tool('cf_close', '{"id": 2}') AS call) c;
RESET ROLE;
-- Bound to the caller: another role cannot use it.
SET ROLE regress_cf_other;
SELECT pg_temp.answer('{"id": 2}', :'state2', 'accept') AS other_caller;
RESET ROLE;
SET ROLE regress_cf_agent;
-- Declined and dismissed: nothing done, each audited with its own status.
SELECT pg_temp.answer('{"id": 2}', :'state2', 'decline') AS declined;
SELECT h #>> '{_meta,pg-mcp/input_required,requestState}' AS state3 FROM pg_temp.call('{"id": 2}', '{"can_ask": true}') h \gset
SELECT pg_temp.answer('{"id": 2}', :'state3', 'cancel') AS dismissed;
SELECT open FROM regress_accounts WHERE id = 2;
RESET ROLE;
-- Only a relay (pg_mcp_bridge's login: a member of mcp_confirmation_relay) may bring the
-- person's answer: a login that is not cannot approve its own call, though it can be asked.
CREATE ROLE regress_cf_login LOGIN;
GRANT regress_cf_agent TO regress_cf_login;
SET SESSION AUTHORIZATION regress_cf_login;
SET ROLE regress_cf_agent;
SELECT h #>> '{_meta,pg-mcp/input_required,requestState}' AS state5 FROM pg_temp.call('{"id": 2}', '{"can_ask": true}') h \gset
SELECT pg_temp.answer('{"id": 2}', :'state5', 'accept') AS self_approved;
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT open FROM regress_accounts WHERE id = 2;
-- Names a caller could shadow are never resolved in its search_path (the decision runs as the
-- extension's owner).
CREATE FUNCTION public.to_timestamp(bigint) RETURNS timestamptz LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'shadowing to_timestamp ran'; END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'shadowing now ran'; END $$;
SET search_path = public, pg_catalog;
SET ROLE regress_cf_agent;
SELECT h #>> '{_meta,pg-mcp/input_required,requestState}' AS state6 FROM pg_temp.call('{"id": 2}', '{"can_ask": true}') h \gset
SELECT pg_temp.answer('{"id": 2}', :'state6', 'decline') AS declined_with_shadows;
RESET ROLE;
RESET search_path;
DROP FUNCTION public.to_timestamp(bigint), public.now();
-- Expired: after pg_mcp.confirmation_timeout.
SET pg_mcp.confirmation_timeout = '1s';
SET ROLE regress_cf_agent;
SELECT h #>> '{_meta,pg-mcp/input_required,requestState}' AS state4 FROM pg_temp.call('{"id": 2}', '{"can_ask": true}') h \gset
SELECT pg_sleep(2.1);
SELECT pg_temp.answer('{"id": 2}', :'state4', 'accept') AS expired;
SELECT open FROM regress_accounts WHERE id = 2;
RESET ROLE;
RESET pg_mcp.confirmation_timeout;

-- The audit trail: every round with its decision and what the person was shown.
SELECT status, caller_role, arguments, confirmation ->> 'decision' AS decision,
       confirmation ->> 'message' AS shown, confirmation ? 'asked_at' AS has_asked_at,
       CASE WHEN status = 'confirmation_refused' THEN message END AS why
  FROM mcp.audit_log WHERE tool_name = 'cf_close' ORDER BY id;
SELECT verified, problem FROM mcp.verify_audit();
SELECT count(*) AS nonces_used FROM mcp.confirmation_uses;

-- Turned off again by alter_tool; confirm_message => '' goes back to the default.
SELECT mcp.alter_tool('cf_close', confirm => 'sometimes');
SELECT mcp.alter_tool('cf_close', confirm_message => '');
SELECT confirm, confirm_message FROM mcp.tools WHERE name = 'cf_close';
SET ROLE regress_cf_agent;
SELECT h #>> '{_meta,pg-mcp/input_required,message}' AS default_message FROM pg_temp.call('{"id": 2}', '{"can_ask": true}') h;
RESET ROLE;
SELECT mcp.alter_tool('cf_close', confirm => 'none');
SET ROLE regress_cf_agent;
SELECT mcp.call_tool('cf_close', '{"id": 2}') -> 'structuredContent' -> 'rows' AS ran;
RESET ROLE;

-- Required of every writing tool of a role (and its members) or a principal, whatever the
-- tool says; read-only tools are not asked.
SELECT mcp.create_tool('cf_reopen', 'UPDATE regress_accounts SET open = true WHERE id = :id RETURNING id',
                       'Reopens an account', '[{"name": "id", "type": "integer"}]', read_only => false);
SELECT mcp.create_tool('cf_list', 'SELECT id, open FROM regress_accounts ORDER BY id', 'Accounts');
SELECT mcp.grant_tool(t, r) FROM unnest(ARRAY['cf_reopen', 'cf_list']) t,
                                 unnest(ARRAY['regress_cf_agent', 'regress_cf_other']) r;
SELECT mcp.create_principal('cf-people', 'regress_cf_other');
SELECT mcp.require_confirmation('regress_cf_agent', 'team');
SELECT mcp.require_confirmation('regress_nobody');
SELECT mcp.require_confirmation('nobody', 'principal');
SELECT mcp.require_confirmation('regress_cf_agent');
SELECT mcp.require_confirmation('cf-people', 'principal');
SELECT subject_kind, subject FROM mcp.confirmation_policies ORDER BY 1, 2;
SET ROLE regress_cf_agent;
SELECT mcp.call_tool('cf_reopen', '{"id": 1}') #>> '{_meta,pg-mcp/status}' AS role_policy;
SELECT mcp.call_tool('cf_list') #>> '{_meta,pg-mcp/status}' AS read_only_tool;
RESET ROLE;
SET ROLE regress_cf_other;
SELECT mcp.call_tool('cf_reopen', '{"id": 1}') #>> '{_meta,pg-mcp/status}' AS principal_policy;
RESET ROLE;
SELECT mcp.drop_confirmation_requirement('regress_cf_agent');
SELECT mcp.drop_confirmation_requirement('regress_cf_agent');
SELECT mcp.drop_confirmation_requirement('cf-people', 'principal');
SET ROLE regress_cf_agent;
SELECT mcp.call_tool('cf_reopen', '{"id": 1}') -> 'structuredContent' -> 'rows' AS runs_again;
RESET ROLE;

-- A string is shown quoted, its control characters escaped and bidirectional controls removed:
-- a value cannot pass itself off as part of the message.
SELECT mcp.create_tool('cf_note', 'UPDATE regress_accounts SET owner = :owner WHERE id = 1 RETURNING id',
                       'Renames', '[{"name": "owner", "type": "string"}]', read_only => false,
                       confirm => 'ask', confirm_message => 'Rename the owner to {owner}?');
SELECT mcp.grant_tool('cf_note', 'regress_cf_agent');
SET ROLE regress_cf_agent;
SELECT (array_agg(x))[1]::jsonb #>> '{_meta,pg-mcp/input_required,message}' AS shown
  FROM mcp.serve_call('cf_note', jsonb_build_object('owner', E'eve\n(safe, accept)' || chr(8238) || 'evil'),
                      NULL, NULL, NULL, NULL, NULL, NULL, false, '{"can_ask": true}') x;
RESET ROLE;

SELECT mcp.drop_tool(t) FROM unnest(ARRAY['cf_close', 'cf_reopen', 'cf_list', 'cf_note']) t;
SELECT mcp.drop_principal('cf-people');
DROP TABLE regress_accounts;
DROP ROLE regress_cf_login, regress_cf_agent, regress_cf_other;
