------------------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.tools (
    id              bigserial NOT NULL UNIQUE,
    name            text PRIMARY KEY
                    CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    title           text,
    description     text NOT NULL,
    sql             text NOT NULL,
    compiled_sql    text NOT NULL,
    parameters      jsonb NOT NULL DEFAULT '[]',
    parameter_types regtype[] NOT NULL DEFAULT '{}',
    input_schema    jsonb NOT NULL,
    output_schema   jsonb NOT NULL,
    depends_on      regclass[] NOT NULL DEFAULT '{}',
    max_rows        integer NOT NULL DEFAULT 100 CHECK (max_rows > 0),
    max_bytes       integer NOT NULL DEFAULT 1048576 CHECK (max_bytes > 0),
    timeout         interval NOT NULL DEFAULT '30 seconds' CHECK (timeout > '0'::interval),
    read_only       boolean NOT NULL DEFAULT true,
    kind            text NOT NULL DEFAULT 'sql' CHECK (kind IN ('sql', 'query')),
    builtin         boolean NOT NULL DEFAULT false,
    max_cost        double precision CHECK (max_cost > 0),
    run_as          name,
    annotations     jsonb NOT NULL DEFAULT '{}',
    search_path     text NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    created_by      name NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by      name NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Added in 0.2.0 (last, as the upgrade adds them).
    untrusted_data  text NOT NULL DEFAULT 'auto' CHECK (untrusted_data IN ('auto', 'mark', 'plain')),
    confirm         text NOT NULL DEFAULT 'none' CHECK (confirm IN ('none', 'ask')),
    confirm_message text CHECK (length(confirm_message) BETWEEN 1 AND 1000)
);
COMMENT ON TABLE @extschema@.tools IS 'Agent tools: one SQL statement each, with typed parameters, limits and MCP metadata. Change through mcp.create_tool / alter_tool / drop_tool.';
COMMENT ON COLUMN @extschema@.tools.sql IS 'The SQL as written by the DBA, with :name parameters';
COMMENT ON COLUMN @extschema@.tools.compiled_sql IS 'The SQL with $n positions, as prepared and executed';
COMMENT ON COLUMN @extschema@.tools.parameters IS 'Parameter definitions in canonical form, in position order';
COMMENT ON COLUMN @extschema@.tools.depends_on IS 'Tables and views the SQL reads (found when it was prepared)';
COMMENT ON COLUMN @extschema@.tools.kind IS 'sql: the DBA''s statement; query: the built-in guarded free-form SQL tool';
COMMENT ON COLUMN @extschema@.tools.builtin IS 'Installed with the extension (query, list_objects, describe_object): only limits and description can change';
COMMENT ON COLUMN @extschema@.tools.max_cost IS 'query tool: planner cost ceiling of this tool (the smaller of it and pg_mcp.query_max_cost applies)';
COMMENT ON COLUMN @extschema@.tools.run_as IS 'Role the SQL runs as; NULL means the calling role';
COMMENT ON COLUMN @extschema@.tools.search_path IS 'search_path the SQL is prepared and run with (pg_temp always last)';
COMMENT ON COLUMN @extschema@.tools.untrusted_data IS 'Whether the text content of a result is wrapped in per-call boundaries saying it is data, not instructions (structuredContent is never changed): auto (results with a column that can carry text, and the query tool), mark (always) or plain (never)';
COMMENT ON COLUMN @extschema@.tools.confirm IS 'none, or ask: a person confirms each call through the MCP client (elicitation) before its SQL runs; the audit row records the decision';
COMMENT ON COLUMN @extschema@.tools.confirm_message IS 'What the person is asked, with {argument} placeholders replaced by the call''s values; NULL: the tool, the caller and the arguments';
COMMENT ON COLUMN @extschema@.tools.version IS 'Incremented by every alter_tool; recorded in each audit row';

CREATE TABLE @extschema@.tool_grants (
    tool_name   text NOT NULL REFERENCES @extschema@.tools (name) ON DELETE CASCADE ON UPDATE CASCADE,
    role        regrole NOT NULL,
    granted_by  name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (tool_name, role)
);
COMMENT ON TABLE @extschema@.tool_grants IS 'Which roles may list and call which tools (members of a granted role may too). Change through mcp.grant_tool / revoke_tool.';
COMMENT ON COLUMN @extschema@.tool_grants.role IS 'The role, by OID: a grant follows a renamed role and never passes to a new role of the old name';

CREATE TABLE @extschema@.principals (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    role        regrole NOT NULL UNIQUE,
    context     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    description text,
    created_by  name NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  name NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.principals IS 'Agent identities: each is one database role, with context values (e.g. a tenant id) that tools can bind as parameters. The principal in effect is the one of the calling role, which PostgreSQL authenticates; no setting can claim another.';
COMMENT ON COLUMN @extschema@.principals.context IS 'Values tools bind to parameters declared {"from_principal": "key"}; set only by DBAs';

CREATE TABLE @extschema@.audit_log (
    id              bigint PRIMARY KEY,
    called_at       timestamptz NOT NULL,
    caller_role     name NOT NULL,
    session_role    name NOT NULL,
    agent_name      text,
    client_info     text,
    request_id      text,
    tool_name       text NOT NULL,
    tool_version    integer,
    arguments       jsonb,
    principal       text,
    status          text NOT NULL CHECK (status IN ('ok', 'truncated', 'invalid_arguments', 'denied',
                                                    'not_found', 'refused', 'error', 'timeout',
                                                    'cancelled', 'rate_limited', 'purge',
                                                    'confirmation_asked', 'confirmation_unavailable',
                                                    'confirmation_refused', 'declined',
                                                    'confirmation_cancelled', 'confirmation_timeout')),
    duration_ms     double precision NOT NULL,
    rows_returned   integer,
    plan_cost       double precision,
    shared_blks_hit bigint,
    shared_blks_read bigint,
    sqlstate        text,
    message         text,
    backend_pid     integer NOT NULL,
    prev_hash       bytea,
    row_hash        bytea NOT NULL,
    truncated       jsonb,
    auth_issuer     text,
    auth_subject    text,
    auth_client_id  text,
    trace_id        text,
    span_id         text,
    confirmation    jsonb
);
COMMENT ON TABLE @extschema@.audit_log IS 'One row per mcp.call_tool, whatever its outcome, written by the audit writer outside the caller''s transaction. Append-only and hash-chained (mcp.verify_audit); rows are removed only by mcp.purge_audit.';
COMMENT ON COLUMN @extschema@.audit_log.row_hash IS 'sha256 of the previous row''s hash and this row''s content: the tamper-evident chain';
COMMENT ON COLUMN @extschema@.audit_log.caller_role IS 'Role in effect when call_tool was called (after any SET ROLE)';
COMMENT ON COLUMN @extschema@.audit_log.session_role IS 'Login role of the session';
COMMENT ON COLUMN @extschema@.audit_log.principal IS 'Principal of the calling role, if it has one';
COMMENT ON COLUMN @extschema@.audit_log.agent_name IS 'Setting pg_mcp.agent_name at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.client_info IS 'Setting pg_mcp.client_info at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.request_id IS 'Setting pg_mcp.request_id at call time (asserted by the client)';
COMMENT ON COLUMN @extschema@.audit_log.arguments IS 'Arguments as sent, with sensitive parameters replaced by "[redacted]"';
COMMENT ON COLUMN @extschema@.audit_log.duration_ms IS 'Wall time of the whole call, in milliseconds';
COMMENT ON COLUMN @extschema@.audit_log.plan_cost IS 'The planner''s estimated total cost of the tool''s statement (NULL when it did not run)';
COMMENT ON COLUMN @extschema@.audit_log.shared_blks_hit IS 'Shared buffers found in cache while the tool''s SQL ran (NULL when it did not run)';
COMMENT ON COLUMN @extschema@.audit_log.truncated IS 'Fields cut to their limit, each with its full size and the SHA-256 of its full value: {"message": {"bytes": n, "sha256": "hex"}}; NULL when nothing was cut';
COMMENT ON COLUMN @extschema@.audit_log.auth_issuer IS 'Issuer of the OAuth access token the call came with (verified by pg_mcp_bridge --auth oauth), or NULL';
COMMENT ON COLUMN @extschema@.audit_log.auth_subject IS 'Subject ("sub") of that token: the person or workload behind the agent';
COMMENT ON COLUMN @extschema@.audit_log.auth_client_id IS 'OAuth client (the agent application) the token was issued to';
COMMENT ON COLUMN @extschema@.audit_log.trace_id IS 'W3C trace id of the call (setting pg_mcp.traceparent, which pg_mcp_bridge sets from the agent''s trace or a new one; asserted by the client, not authenticated): the key to its spans';
COMMENT ON COLUMN @extschema@.audit_log.confirmation IS 'For tools a person confirms: {"decision": asked | accepted | declined | cancelled | timeout | refused | unavailable, "asked_at", "message": what the person was shown}; the person is auth_subject';
COMMENT ON COLUMN @extschema@.audit_log.span_id IS 'Span id of the database call within that trace';
COMMENT ON COLUMN @extschema@.audit_log.shared_blks_read IS 'Shared buffers read from disk (or the OS cache) while the tool''s SQL ran';
--@include confirmation.sql

-- Rows are appended in call order and never updated: a BRIN index serves time ranges at a
-- fraction of a B-tree's cost per written row.
CREATE INDEX audit_log_called_at ON @extschema@.audit_log USING brin (called_at) WITH (autosummarize = on);
CREATE INDEX audit_log_tool_called_at ON @extschema@.audit_log (tool_name, called_at);

-- DBA's definitions and audit trail survive pg_dump / pg_restore.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tools', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tools_id_seq', '');
-- (The built-in propose_tool's grant to mcp_tool_author is made by this script, not dumped.)
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tool_grants',
    $$WHERE NOT (tool_name = 'propose_tool' AND role = 'mcp_tool_author'::regrole)$$);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.principals', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log', '');

REVOKE ALL ON @extschema@.tools, @extschema@.tool_grants, @extschema@.principals, @extschema@.audit_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.tools_id_seq FROM PUBLIC;
GRANT SELECT ON @extschema@.tools, @extschema@.tool_grants, @extschema@.principals, @extschema@.audit_log TO mcp_admin;
