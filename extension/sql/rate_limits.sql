------------------------------------------------------------------------------------------
-- Rate limits (members of mcp_admin, and the extension owner)
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.rate_limits (
    id              serial PRIMARY KEY,
    subject_kind    text NOT NULL CHECK (subject_kind IN ('role', 'principal')),
    subject         text NOT NULL,
    tool            text,
    max_calls       integer CHECK (max_calls > 0),
    per             interval NOT NULL DEFAULT '1 minute' CHECK (per > '0'::interval),
    max_concurrent  integer CHECK (max_concurrent > 0),
    created_by      name NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (max_calls IS NOT NULL OR max_concurrent IS NOT NULL)
);
CREATE UNIQUE INDEX rate_limits_subject_tool ON @extschema@.rate_limits (subject_kind, subject, coalesce(tool, ''));
COMMENT ON TABLE @extschema@.rate_limits IS 'Calls per window and concurrent calls allowed to a role or principal, for one tool or all (tool NULL); counted in shared memory across every connection';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rate_limits', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rate_limits_id_seq', '');
REVOKE ALL ON @extschema@.rate_limits FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.rate_limits_id_seq FROM PUBLIC;
GRANT SELECT ON @extschema@.rate_limits TO mcp_admin;
