------------------------------------------------------------------------------------------
-- Monitoring views over the audit log (for mcp_admin)
------------------------------------------------------------------------------------------

CREATE VIEW @extschema@.tool_stats_hourly AS
    SELECT date_trunc('hour', a.called_at) AS hour, a.tool_name AS tool,
           count(*) AS calls,
           count(*) FILTER (WHERE a.status IN ('error', 'refused')) AS errors,
           count(*) FILTER (WHERE a.status IN ('denied', 'not_found')) AS denials,
           count(*) FILTER (WHERE a.status = 'invalid_arguments') AS invalid_arguments,
           count(*) FILTER (WHERE a.status = 'timeout') AS timeouts,
           count(*) FILTER (WHERE a.status = 'rate_limited') AS rate_limited,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.rows_returned) AS p50_rows,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.rows_returned) AS p95_rows
      FROM @extschema@.audit_log a
     WHERE a.status <> 'purge'
     GROUP BY 1, 2;
COMMENT ON VIEW @extschema@.tool_stats_hourly IS 'Per tool and hour: calls, errors, denials, timeouts, rate-limited calls, p50/p95 duration and rows';

CREATE VIEW @extschema@.tool_costs AS
    SELECT a.tool_name AS tool,
           count(*) AS calls,
           round(sum(a.plan_cost)::numeric, 2) AS total_cost,
           round(avg(a.plan_cost)::numeric, 2) AS mean_cost,
           round(max(a.plan_cost)::numeric, 2) AS max_cost,
           sum(a.shared_blks_hit + a.shared_blks_read) AS buffers,
           sum(a.shared_blks_read) AS buffers_read,
           coalesce(sum(a.rows_returned), 0) AS rows_returned,
           round(sum(a.shared_blks_hit + a.shared_blks_read)::numeric
                 / greatest(coalesce(sum(a.rows_returned), 0), 1), 2) AS buffers_per_row,
           round(avg(a.duration_ms)::numeric, 3) AS mean_ms,
           max(a.called_at) AS last_call
      FROM @extschema@.audit_log a
     WHERE a.shared_blks_hit IS NOT NULL
     GROUP BY a.tool_name
     ORDER BY sum(a.plan_cost) DESC NULLS LAST, a.tool_name;
COMMENT ON VIEW @extschema@.tool_costs IS 'Which tools cost the database most: per tool over the calls whose SQL ran, the planner''s estimated cost (total, mean, max), shared buffers touched and read from disk, rows returned, and buffers touched per row returned (high: the tool reads far more than it returns), most expensive first';

-- Tool review: what to remove, fix or narrow. One row per tool over the calls of the last
-- `since`; the verdict is the first that applies.
CREATE FUNCTION @extschema@.review_tools(since interval DEFAULT '30 days')
RETURNS TABLE (tool text, builtin boolean, created_at timestamptz, updated_at timestamptz,
               calls bigint, last_call timestamptz, error_rate double precision,
               denial_rate double precision, timeout_rate double precision, p95_ms double precision,
               timeout_ms double precision, view_changed boolean, changed_views text[],
               granted_to text[], never_called_by text[], verdict text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH recent AS (
        SELECT a.tool_name, a.caller_role, a.status, a.duration_ms, a.called_at
          FROM @extschema@.audit_log a
         WHERE a.called_at > now() - review_tools.since AND a.status <> 'purge'),
    stats AS (
        SELECT r.tool_name, count(*) AS calls, max(r.called_at) AS last_call,
               (count(*) FILTER (WHERE r.status IN ('error', 'refused')))::double precision / count(*) AS error_rate,
               (count(*) FILTER (WHERE r.status = 'denied'))::double precision / count(*) AS denial_rate,
               (count(*) FILTER (WHERE r.status = 'timeout'))::double precision / count(*) AS timeout_rate,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms) AS p95_ms
          FROM recent r GROUP BY r.tool_name),
    callers AS (
        SELECT DISTINCT r.tool_name, o.oid AS role
          FROM recent r JOIN pg_roles o ON o.rolname = r.caller_role
         WHERE r.status NOT IN ('denied', 'not_found')),
    grants AS (
        SELECT g.tool_name,
               array_agg(g.role::text ORDER BY g.role::text) AS granted_to,
               array_agg(g.role::text ORDER BY g.role::text) FILTER (
                   WHERE NOT EXISTS (SELECT FROM callers c
                                      WHERE c.tool_name = g.tool_name
                                        AND pg_has_role(c.role, g.role::oid, 'USAGE'))) AS never_called_by
          FROM @extschema@.tool_grants g GROUP BY g.tool_name),
    views AS (
        SELECT t.name AS tool_name,
               array_agg(v.name ORDER BY v.name) FILTER (WHERE v.changed_at > t.updated_at) AS changed_views
          FROM @extschema@.tools t
          JOIN @extschema@.sandbox_views v ON v.name = ANY (SELECT d::text FROM unnest(t.depends_on) d)
                                           OR v.view = ANY (t.depends_on)
         GROUP BY t.name)
    SELECT t.name, t.builtin, t.created_at, t.updated_at,
           coalesce(s.calls, 0), s.last_call, s.error_rate, s.denial_rate, s.timeout_rate, s.p95_ms,
           extract(epoch FROM t.timeout) * 1000,
           coalesce(cardinality(v.changed_views) > 0, false), coalesce(v.changed_views, '{}'),
           coalesce(g.granted_to, '{}'), coalesce(g.never_called_by, '{}'),
           CASE
               WHEN coalesce(s.calls, 0) = 0 THEN 'unused'
               WHEN s.calls >= 3 AND s.error_rate + s.timeout_rate >= 0.2 THEN 'failing'
               WHEN s.p95_ms > 0.5 * extract(epoch FROM t.timeout) * 1000 OR s.timeout_rate > 0 THEN 'slow'
               WHEN cardinality(g.never_called_by) > 0 THEN 'over-granted'
               ELSE 'fine'
           END
      FROM @extschema@.tools t
      LEFT JOIN stats s ON s.tool_name = t.name
      LEFT JOIN grants g ON g.tool_name = t.name
      LEFT JOIN views v ON v.tool_name = t.name
     ORDER BY t.name COLLATE "C";
END;
COMMENT ON FUNCTION @extschema@.review_tools(interval) IS 'Every tool with its calls since the given interval ago, last call, error/denial/timeout rates, p95 duration, whether a sandboxed view under it changed after the tool, roles granted it that never called it, and a verdict: unused, failing (>= 20 % errors or timeouts), slow (p95 over half its timeout, or timeouts), over-granted, fine';

CREATE VIEW @extschema@.tool_review AS SELECT * FROM @extschema@.review_tools('30 days');
COMMENT ON VIEW @extschema@.tool_review IS 'mcp.review_tools over the last 30 days: what to remove (unused), fix (failing, slow, view changed) or narrow (over-granted)';

CREATE FUNCTION @extschema@.drop_unused_tools(older_than interval, dry_run boolean DEFAULT true)
RETURNS TABLE (tool text, created_at timestamptz, last_call timestamptz, dropped boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example: mcp.drop_unused_tools(interval ''90 days'')';
    END IF;
    FOR r IN SELECT rv.tool, rv.created_at, rv.last_call FROM @extschema@.review_tools(older_than) rv
              WHERE rv.calls = 0 AND NOT rv.builtin AND rv.created_at < now() - older_than
              ORDER BY rv.tool COLLATE "C"
    LOOP
        IF NOT dry_run THEN
            PERFORM @extschema@.drop_tool(r.tool);
        END IF;
        tool := r.tool;
        created_at := r.created_at;
        last_call := (SELECT max(a.called_at) FROM @extschema@.audit_log a WHERE a.tool_name = r.tool);
        dropped := NOT dry_run;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_unused_tools(interval, boolean)
    IS 'Tools (not built in) older than older_than and not called within it; dry_run (the default) only lists them, otherwise they are dropped with mcp.drop_tool';

REVOKE ALL ON FUNCTION @extschema@.review_tools(interval), @extschema@.drop_unused_tools(interval, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.review_tools(interval), @extschema@.drop_unused_tools(interval, boolean) TO mcp_admin;
REVOKE ALL ON @extschema@.tool_review FROM PUBLIC;
GRANT SELECT ON @extschema@.tool_review TO mcp_admin;

-- Advice: explain each tool's plan with representative arguments and say what would make it
-- cheaper. Arguments are the latest successful call's (from the audit log), else a typed
-- sample per parameter; they are bound as parameters of the EXPLAIN (up to 16), never written
-- into its text.
CREATE FUNCTION @extschema@._sample_argument(parameter jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN CASE
    WHEN parameter ? 'default' THEN parameter->>'default'
    WHEN parameter ? 'enum' THEN parameter->'enum'->>0
    WHEN parameter->>'format' = 'uuid' THEN '00000000-0000-4000-8000-000000000000'
    WHEN parameter->>'format' = 'date' THEN '2024-01-01'
    WHEN parameter->>'format' = 'date-time' THEN '2024-01-01T00:00:00Z'
    WHEN parameter->>'format' = 'email' THEN 'someone@example.com'
    WHEN parameter->>'type' IN ('integer', 'number') THEN '1'
    WHEN parameter->>'type' = 'boolean' THEN 'true'
    WHEN parameter->>'type' = 'array' THEN '{}'
    ELSE 'a' END;
REVOKE ALL ON FUNCTION @extschema@._sample_argument(jsonb) FROM PUBLIC;

CREATE FUNCTION @extschema@.advise_tool(name text, min_rows real DEFAULT 10000)
RETURNS TABLE (tool text, finding text, detail text, suggestion text,
               cost_before double precision, cost_after double precision)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller name := current_user;
    t record;
    sample jsonb;
    sample_source text;
    v text[] := array_fill(NULL::text, ARRAY[16]);
    q text;
    plan jsonb;
    node jsonb;
    rel regclass;
    cols text[];
    hypo_schema name;
    hypo_oid oid;
    after_plan jsonb;
    stats record;
    i integer;
BEGIN
    SELECT * INTO t FROM @extschema@.tools x WHERE x.name = advise_tool.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tool "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    tool := t.name;
    -- What the audit log says about its use.
    SELECT count(*) AS calls, max(a.rows_returned) AS max_rows_returned,
           sum(a.shared_blks_hit + a.shared_blks_read) AS buffers, sum(a.rows_returned) AS rows
      INTO stats FROM @extschema@.audit_log a
     WHERE a.tool_name = t.name AND a.status IN ('ok', 'truncated');
    IF stats.calls >= 5 AND stats.buffers > 100 * greatest(stats.rows, 1) THEN
        finding := 'reads_far_more_than_returns';
        detail := format('%s calls touched %s shared buffers to return %s rows (%s buffers per row)',
                         stats.calls, stats.buffers, coalesce(stats.rows, 0),
                         round(stats.buffers::numeric / greatest(stats.rows, 1), 1));
        suggestion := 'Filter in an index, or pre-aggregate into a (materialized) sandboxed view';
        cost_before := NULL; cost_after := NULL;
        RETURN NEXT;
    END IF;
    IF stats.calls >= 5 AND t.max_rows > 10 * greatest(stats.max_rows_returned, 1) THEN
        finding := 'cap_far_above_use';
        detail := format('max_rows is %s but no call returned more than %s rows', t.max_rows,
                         coalesce(stats.max_rows_returned, 0));
        suggestion := format('SELECT mcp.alter_tool(%L, max_rows => %s);', t.name,
                             greatest(2 * coalesce(stats.max_rows_returned, 1), 1));
        RETURN NEXT;
    END IF;
    IF t.kind <> 'sql' THEN
        RETURN;  -- free-form SQL has no plan of its own
    END IF;
    IF cardinality(t.parameter_types) > 16 THEN
        finding := 'not_explained'; detail := 'more than 16 parameters'; suggestion := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT a.arguments INTO sample FROM @extschema@.audit_log a
     WHERE a.tool_name = t.name AND a.status IN ('ok', 'truncated') AND a.arguments IS NOT NULL
       AND NOT EXISTS (SELECT FROM jsonb_each(a.arguments) e WHERE e.value = '"[redacted]"')
     ORDER BY a.id DESC LIMIT 1;
    sample_source := CASE WHEN sample IS NULL THEN 'typed samples' ELSE 'the latest call''s arguments' END;
    FOR i IN 1 .. cardinality(t.parameter_types) LOOP
        v[i] := coalesce(sample ->> (t.parameters -> (i - 1) ->> 'name'),
                         @extschema@._sample_argument(t.parameters -> (i - 1)));
        IF jsonb_typeof(sample -> (t.parameters -> (i - 1) ->> 'name')) = 'array' THEN
            v[i] := translate(sample ->> (t.parameters -> (i - 1) ->> 'name'), '[]', '{}');
        END IF;
    END LOOP;
    -- Each $n becomes ($n::text::type): the values are passed as text parameters.
    q := t.compiled_sql;
    FOR i IN REVERSE cardinality(t.parameter_types) .. 1 LOOP
        q := regexp_replace(q, '\$' || i || '(?![0-9])',
                            format('($%s::text::%s)', i, t.parameter_types[i]), 'g');
    END LOOP;
    -- Not SECURITY DEFINER: the plan is made as the tool's run_as role, which the DBA must be
    -- able to act as, with the tool's search_path; planning can run immutable functions, so
    -- never as a more privileged role than the tool's own (a tool without run_as runs as its
    -- callers: it is not explained).
    IF t.run_as IS NULL OR NOT pg_has_role(caller, t.run_as, 'MEMBER') THEN
        finding := 'not_explained';
        detail := CASE WHEN t.run_as IS NULL
                       THEN 'the tool runs as its caller: its plan is made only as a run_as role'
                       ELSE format('role %I cannot act as the tool''s run_as role %I', caller, t.run_as) END;
        suggestion := NULL; cost_before := NULL; cost_after := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM set_config('role', t.run_as, true);
    PERFORM set_config('search_path', t.search_path, true);
    EXECUTE 'EXPLAIN (FORMAT JSON, VERBOSE) ' || q INTO plan
        USING v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16];
    SELECT e.extnamespace::regnamespace::name INTO hypo_schema FROM pg_extension e WHERE e.extname = 'hypopg';
    FOR node IN SELECT n FROM jsonb_path_query(plan, 'strict $.**?(@."Node Type" == "Seq Scan")') n LOOP
        CONTINUE WHEN node->>'Schema' IS NULL OR node->>'Relation Name' IS NULL;
        rel := to_regclass(format('%I.%I', node->>'Schema', node->>'Relation Name'));
        CONTINUE WHEN rel IS NULL OR node->>'Filter' IS NULL
                      OR (SELECT c.reltuples FROM pg_class c WHERE c.oid = rel) < min_rows;
        SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND (node->>'Filter') ~ ('(^|[^A-Za-z0-9_"])"?' || regexp_replace(a.attname, '([^A-Za-z0-9_])', '\\\1', 'g') || '"?($|[^A-Za-z0-9_"])');
        CONTINUE WHEN cols IS NULL;
        finding := 'seq_scan';
        detail := format('sequential scan of %s (about %s rows) filtering %s, with %s',
                         rel, (SELECT c.reltuples::bigint FROM pg_class c WHERE c.oid = rel),
                         node->>'Filter', sample_source);
        suggestion := format('CREATE INDEX ON %s (%s);', rel, array_to_string(cols, ', '));
        cost_before := (plan -> 0 -> 'Plan' ->> 'Total Cost')::double precision;
        cost_after := NULL;
        IF hypo_schema IS NOT NULL THEN
            -- What the planner would do with that index (hypothetical: nothing is built).
            hypo_oid := NULL;
            BEGIN
                EXECUTE format('SELECT indexrelid FROM %I.hypopg_create_index($1)', hypo_schema)
                    INTO hypo_oid USING suggestion;
                EXECUTE 'EXPLAIN (FORMAT JSON, VERBOSE) ' || q INTO after_plan
                    USING v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16];
                cost_after := (after_plan -> 0 -> 'Plan' ->> 'Total Cost')::double precision;
            EXCEPTION WHEN OTHERS THEN
                cost_after := NULL;  -- hypopg could not say; the suggestion stands
            END;
            -- Hypothetical indexes outlive a rollback: always dropped here.
            IF hypo_oid IS NOT NULL THEN
                EXECUTE format('SELECT %I.hypopg_drop_index($1)', hypo_schema) USING hypo_oid;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM set_config('role', caller, true);
END
$$;
COMMENT ON FUNCTION @extschema@.advise_tool(text, real)
    IS 'Advice for one tool: sequential scans over relations of at least min_rows rows on the columns its SQL filters by, with a ready CREATE INDEX and, when hypopg is installed, the plan''s estimated cost before and after that hypothetical index; tools reading far more buffers than the rows they return; row caps far above any result';

CREATE FUNCTION @extschema@.advise_tools(min_rows real DEFAULT 10000)
RETURNS TABLE (tool text, finding text, detail text, suggestion text,
               cost_before double precision, cost_after double precision)
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.* FROM @extschema@.tools t, @extschema@.advise_tool(t.name, advise_tools.min_rows) a
     WHERE NOT t.builtin ORDER BY t.name COLLATE "C";
END;
COMMENT ON FUNCTION @extschema@.advise_tools(real) IS 'mcp.advise_tool for every tool that is not built in';
REVOKE ALL ON FUNCTION @extschema@.advise_tool(text, real), @extschema@.advise_tools(real) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.advise_tool(text, real), @extschema@.advise_tools(real) TO mcp_admin;

CREATE VIEW @extschema@.principal_stats_hourly AS
    SELECT date_trunc('hour', a.called_at) AS hour, coalesce(a.principal, a.caller_role::text) AS principal,
           a.principal IS NOT NULL AS is_principal,
           count(*) AS calls,
           count(*) FILTER (WHERE a.status IN ('error', 'refused')) AS errors,
           count(*) FILTER (WHERE a.status IN ('denied', 'not_found')) AS denials,
           count(*) FILTER (WHERE a.status = 'timeout') AS timeouts,
           count(*) FILTER (WHERE a.status = 'rate_limited') AS rate_limited,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.rows_returned) AS p50_rows,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.rows_returned) AS p95_rows
      FROM @extschema@.audit_log a
     WHERE a.status <> 'purge'
     GROUP BY 1, 2, 3;
COMMENT ON VIEW @extschema@.principal_stats_hourly IS 'Per principal (or calling role, when it has none) and hour: calls, errors, denials, timeouts, p50/p95 duration and rows';

-- The auditor's question: which agents accessed PII (columns marked in sandboxed views read by
-- the tools they called), and when.
--@include pii_access.sql

REVOKE ALL ON @extschema@.tool_stats_hourly, @extschema@.principal_stats_hourly, @extschema@.pii_access, @extschema@.tool_costs FROM PUBLIC;
GRANT SELECT ON @extschema@.tool_stats_hourly, @extschema@.principal_stats_hourly, @extschema@.pii_access, @extschema@.tool_costs TO mcp_admin;
