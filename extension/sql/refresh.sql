------------------------------------------------------------------------------------------
-- Materialized views refreshed on a schedule by the extension's background worker (one per
-- database, "pg_mcp refresher"), e.g. pre-aggregated views that analytics tools read cheaply.
------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.refresh_schedule (
    view             regclass PRIMARY KEY,
    refresh_every    interval NOT NULL CHECK (refresh_every >= interval '1 second'),
    next_refresh_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_refresh_at  timestamptz,
    last_duration_ms double precision,
    last_concurrent  boolean,
    last_error       text,
    scheduled_by     name NOT NULL,
    scheduled_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.refresh_schedule IS 'Materialized views the pg_mcp refresher keeps fresh; see mcp.refresh_status';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.refresh_schedule', '');
REVOKE ALL ON @extschema@.refresh_schedule FROM PUBLIC;

CREATE VIEW @extschema@.refresh_status AS
    SELECT r.view, r.refresh_every, r.last_refresh_at, r.last_duration_ms, r.last_concurrent,
           r.last_error, r.next_refresh_at,
           EXISTS (SELECT FROM pg_stat_activity a WHERE a.backend_type = 'pg_mcp refresher'
                     AND a.datname = current_database()) AS refresher_running
      FROM @extschema@.refresh_schedule r;
COMMENT ON VIEW @extschema@.refresh_status IS 'Each scheduled materialized view: last refresh, its duration, whether it was concurrent, the last error, the next refresh, and whether the refresher runs';
REVOKE ALL ON @extschema@.refresh_status FROM PUBLIC;
GRANT SELECT ON @extschema@.refresh_status TO mcp_admin;

CREATE FUNCTION @extschema@._start_refresher() RETURNS boolean
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'pg_mcp_start_refresher';
REVOKE ALL ON FUNCTION @extschema@._start_refresher() FROM PUBLIC;

CREATE FUNCTION @extschema@.start_refresher() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_stat_activity a WHERE a.backend_type = 'pg_mcp refresher'
                 AND a.datname = current_database()) THEN
        RETURN false;
    END IF;
    RETURN @extschema@._start_refresher();
END
$$;
COMMENT ON FUNCTION @extschema@.start_refresher() IS 'Starts this database''s refresher if it is not running (mcp.schedule_refresh does; after a server restart, run it once or schedule again)';

CREATE FUNCTION @extschema@.schedule_refresh(view regclass, refresh_every interval) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = view) IS DISTINCT FROM 'm' THEN
        RAISE EXCEPTION '% is not a materialized view', view USING ERRCODE = 'wrong_object_type',
            HINT = 'CREATE MATERIALIZED VIEW ... AS SELECT ...; then schedule it.';
    END IF;
    IF NOT pg_has_role(@extschema@._acting_role(), (SELECT c.relowner FROM pg_class c WHERE c.oid = view), 'MEMBER') THEN
        RAISE EXCEPTION 'only the owner of % may schedule its refresh', view USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF refresh_every IS NULL OR refresh_every < interval '1 second' THEN
        RAISE EXCEPTION 'refresh_every must be at least 1 second' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.refresh_schedule AS s (view, refresh_every, scheduled_by)
    VALUES (schedule_refresh.view, schedule_refresh.refresh_every, @extschema@._acting_role())
    ON CONFLICT ON CONSTRAINT refresh_schedule_pkey DO UPDATE SET refresh_every = excluded.refresh_every, next_refresh_at = now(),
                                     scheduled_by = excluded.scheduled_by, scheduled_at = now();
    PERFORM @extschema@.start_refresher();
END
$$;
COMMENT ON FUNCTION @extschema@.schedule_refresh(regclass, interval) IS 'Has the refresher refresh a materialized view every refresh_every (concurrently when it has a unique index and data), starting now';

CREATE FUNCTION @extschema@.unschedule_refresh(view regclass) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    DELETE FROM @extschema@.refresh_schedule r WHERE r.view = unschedule_refresh.view;
END;
COMMENT ON FUNCTION @extschema@.unschedule_refresh(regclass) IS 'Stops refreshing a materialized view';
REVOKE ALL ON FUNCTION @extschema@.start_refresher(), @extschema@.schedule_refresh(regclass, interval),
                       @extschema@.unschedule_refresh(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.start_refresher(), @extschema@.schedule_refresh(regclass, interval),
                          @extschema@.unschedule_refresh(regclass) TO mcp_admin;

-- For the refresher: refreshes the most overdue view, if any (1), else returns 0. A failure
-- is recorded, not raised.
CREATE FUNCTION @extschema@._refresh_due() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    started timestamptz;
    concurrent boolean;
BEGIN
    SELECT * INTO r FROM @extschema@.refresh_schedule s
     WHERE s.next_refresh_at <= clock_timestamp()
     ORDER BY s.next_refresh_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    started := clock_timestamp();
    concurrent := (SELECT c.relispopulated FROM pg_class c WHERE c.oid = r.view)
                  AND EXISTS (SELECT FROM pg_index i WHERE i.indrelid = r.view AND i.indisunique
                                AND i.indpred IS NULL AND i.indexprs IS NULL);
    BEGIN
        EXECUTE format('REFRESH MATERIALIZED VIEW %s %s', CASE WHEN concurrent THEN 'CONCURRENTLY' ELSE '' END, r.view);
        UPDATE @extschema@.refresh_schedule s SET last_refresh_at = started, last_error = NULL,
               last_duration_ms = extract(epoch FROM clock_timestamp() - started) * 1000,
               last_concurrent = concurrent,
               next_refresh_at = greatest(s.next_refresh_at + s.refresh_every, clock_timestamp())
         WHERE s.view = r.view;
    EXCEPTION WHEN OTHERS THEN
        UPDATE @extschema@.refresh_schedule s SET last_error = SQLERRM,
               next_refresh_at = clock_timestamp() + s.refresh_every
         WHERE s.view = r.view;
    END;
    RETURN 1;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._refresh_due() FROM PUBLIC;
