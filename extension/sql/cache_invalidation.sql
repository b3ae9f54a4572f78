------------------------------------------------------------------------------------------
-- Cache invalidation: backends cache each (tool, caller) lookup — the tool's definition, the
-- grant check, the principal, the rate limits — until one of these tables (or a role or
-- membership) changes. Any change, through the API or not, invalidates every backend's cache
-- when it commits (and the changing session's own at its next command). Row triggers, enabled
-- ALWAYS, so that changes applied by logical replication (which fires row triggers only) and
-- under session_replication_role = replica invalidate too.
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._catalog_changed() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_catalog_changed';
REVOKE ALL ON FUNCTION @extschema@._catalog_changed() FROM PUBLIC;
CREATE TRIGGER tools_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.tools
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER tools_truncated AFTER TRUNCATE ON @extschema@.tools
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.tools ENABLE ALWAYS TRIGGER tools_changed, ENABLE ALWAYS TRIGGER tools_truncated;
CREATE TRIGGER tool_grants_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.tool_grants
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER tool_grants_truncated AFTER TRUNCATE ON @extschema@.tool_grants
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.tool_grants ENABLE ALWAYS TRIGGER tool_grants_changed, ENABLE ALWAYS TRIGGER tool_grants_truncated;
CREATE TRIGGER principals_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.principals
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER principals_truncated AFTER TRUNCATE ON @extschema@.principals
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.principals ENABLE ALWAYS TRIGGER principals_changed, ENABLE ALWAYS TRIGGER principals_truncated;
CREATE TRIGGER rate_limits_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.rate_limits
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER rate_limits_truncated AFTER TRUNCATE ON @extschema@.rate_limits
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.rate_limits ENABLE ALWAYS TRIGGER rate_limits_changed, ENABLE ALWAYS TRIGGER rate_limits_truncated;
--@include token_invalidation.sql
--@include confirmation_policies.sql

CREATE FUNCTION @extschema@.set_rate_limit(subject text, tool text DEFAULT NULL, max_calls integer DEFAULT NULL,
                                           per interval DEFAULT '1 minute', max_concurrent integer DEFAULT NULL,
                                           subject_kind text DEFAULT 'role') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF subject_kind NOT IN ('role', 'principal') THEN
        RAISE EXCEPTION 'subject_kind must be role or principal, got %', subject_kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject_kind = 'role' AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = subject) THEN
        RAISE EXCEPTION 'role "%" does not exist', subject USING ERRCODE = 'undefined_object';
    END IF;
    IF subject_kind = 'principal' AND NOT EXISTS (SELECT FROM @extschema@.principals p WHERE p.name = subject) THEN
        RAISE EXCEPTION 'principal "%" does not exist', subject USING ERRCODE = 'undefined_object';
    END IF;
    IF tool IS NOT NULL AND NOT EXISTS (SELECT FROM @extschema@.tools t WHERE t.name = tool) THEN
        RAISE EXCEPTION 'tool "%" does not exist', tool USING ERRCODE = 'undefined_object';
    END IF;
    IF max_calls IS NULL AND max_concurrent IS NULL THEN
        RAISE EXCEPTION 'a rate limit needs max_calls or max_concurrent' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example: max_calls => 60, per => ''1 minute''.';
    END IF;
    IF max_calls <= 0 OR max_concurrent <= 0 OR per <= '0'::interval THEN
        RAISE EXCEPTION 'rate limits must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM @extschema@.rate_limits l
     WHERE l.subject_kind = set_rate_limit.subject_kind AND l.subject = set_rate_limit.subject
       AND coalesce(l.tool, '') = coalesce(set_rate_limit.tool, '');
    INSERT INTO @extschema@.rate_limits (subject_kind, subject, tool, max_calls, per, max_concurrent, created_by)
    VALUES (subject_kind, subject, tool, max_calls, per, max_concurrent, @extschema@._acting_role());
END
$$;
COMMENT ON FUNCTION @extschema@.set_rate_limit(text, text, integer, interval, integer, text)
    IS 'Limits a role (or principal) to max_calls per interval and/or max_concurrent calls, for one tool or all; replaces an existing limit for the same subject and tool';

CREATE FUNCTION @extschema@.drop_rate_limit(subject text, tool text DEFAULT NULL, subject_kind text DEFAULT 'role')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.rate_limits l
     WHERE l.subject_kind = drop_rate_limit.subject_kind AND l.subject = drop_rate_limit.subject
       AND coalesce(l.tool, '') = coalesce(drop_rate_limit.tool, '');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rate limit for % "%" and tool %', subject_kind, subject, coalesce(tool, '(all)')
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_rate_limit(text, text, text) IS 'Removes a rate limit';

CREATE FUNCTION @extschema@._rate_limit_counters(OUT limit_id integer, OUT window_start timestamptz,
                                                 OUT calls integer, OUT concurrent integer)
    RETURNS SETOF record LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_rate_limit_counters';
REVOKE ALL ON FUNCTION @extschema@._rate_limit_counters() FROM PUBLIC;

CREATE VIEW @extschema@.rate_limit_usage AS
    SELECT l.subject_kind, l.subject, coalesce(l.tool, '(all tools)') AS tool, l.max_calls, l.per,
           l.max_concurrent, c.window_start, coalesce(c.calls, 0) AS calls_in_window,
           coalesce(c.concurrent, 0) AS concurrent_now
      FROM @extschema@.rate_limits l
      LEFT JOIN @extschema@._rate_limit_counters() c ON c.limit_id = l.id
     ORDER BY l.subject_kind, l.subject, l.tool NULLS FIRST;
COMMENT ON VIEW @extschema@.rate_limit_usage IS 'Each rate limit with its current use (calls in the current window, calls running now)';
REVOKE ALL ON @extschema@.rate_limit_usage FROM PUBLIC;
GRANT SELECT ON @extschema@.rate_limit_usage TO mcp_admin;

REVOKE ALL ON FUNCTION @extschema@.set_rate_limit(text, text, integer, interval, integer, text),
                       @extschema@.drop_rate_limit(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_rate_limit(text, text, integer, interval, integer, text),
                          @extschema@.drop_rate_limit(text, text, text) TO mcp_admin;


--@include tool_listing.sql

-- Management is for mcp_admin members (and the owner), nobody else.
REVOKE ALL ON FUNCTION
    @extschema@.drop_tool(text, boolean),
    @extschema@.grant_tool(text, name),
    @extschema@.revoke_tool(text, name)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    @extschema@.drop_tool(text, boolean),
    @extschema@.grant_tool(text, name),
    @extschema@.revoke_tool(text, name)
    TO mcp_admin;
