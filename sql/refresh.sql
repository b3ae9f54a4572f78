-- Materialized views refreshed on schedule by the extension's background worker: concurrently
-- when a unique index allows, with the last refresh, its duration, errors and the next one.
\set SHOW_CONTEXT never
CREATE TABLE refresh_sales (id int PRIMARY KEY, region text, amount int);
INSERT INTO refresh_sales SELECT g, 'r' || (g % 3), g FROM generate_series(1, 30) g;
CREATE MATERIALIZED VIEW refresh_by_region AS
    SELECT region, count(*) AS n, sum(amount) AS total FROM refresh_sales GROUP BY region;
CREATE UNIQUE INDEX ON refresh_by_region (region);
CREATE MATERIALIZED VIEW refresh_plain AS SELECT count(*) AS n FROM refresh_sales;
CREATE MATERIALIZED VIEW refresh_failing AS SELECT 100 / count(*) AS x FROM refresh_sales WHERE id > 1000
    WITH NO DATA;  -- its query divides by zero
SELECT mcp.schedule_refresh('refresh_sales', '1 minute');
SELECT mcp.schedule_refresh('refresh_by_region', '0.5 seconds');
SELECT mcp.schedule_refresh('refresh_by_region', '1 second');
SELECT mcp.schedule_refresh('refresh_plain', '1 second');
INSERT INTO refresh_sales SELECT g, 'r' || (g % 3), g FROM generate_series(31, 60) g;
SELECT set_config('regress.inserted_at', clock_timestamp()::text, false) IS NOT NULL AS noted;

-- The refresher catches up on its own (waiting at most 30 s; the wait reads only the schedule,
-- as reading a view would lock it against a non-concurrent refresh until the wait ends).
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT count(*) FROM mcp.refresh_status
                    WHERE last_refresh_at > current_setting('regress.inserted_at')::timestamptz) = 2;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT sum(n) AS rows_seen, (SELECT n FROM refresh_plain) AS plain_rows FROM refresh_by_region;
SELECT count(*) AS one_refresher FROM pg_stat_activity WHERE backend_type = 'pg_mcp refresher' AND datname = current_database();
SELECT view, last_refresh_at IS NOT NULL AS refreshed, last_duration_ms >= 0 AS timed, last_concurrent,
       last_error, refresher_running
  FROM mcp.refresh_status ORDER BY view::text;

-- A refresh that fails is recorded, and the others go on.
SELECT mcp.schedule_refresh('refresh_failing', '1 second');
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT last_error FROM mcp.refresh_status WHERE view = 'refresh_failing'::regclass) IS NOT NULL;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT view, last_error FROM mcp.refresh_status WHERE view = 'refresh_failing'::regclass;

-- For DBAs only; unscheduled, the refresher stops.
CREATE ROLE regress_refresh_other NOLOGIN;
SET ROLE regress_refresh_other;
SELECT mcp.schedule_refresh('refresh_plain', '1 second');
SELECT * FROM mcp.refresh_status;
RESET ROLE;
DROP ROLE regress_refresh_other;
SELECT mcp.unschedule_refresh(v) FROM unnest(ARRAY['refresh_by_region', 'refresh_plain', 'refresh_failing']::regclass[]) v;
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_mcp refresher'
                                AND datname = current_database());
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT count(*) AS refreshers FROM pg_stat_activity WHERE backend_type = 'pg_mcp refresher' AND datname = current_database();
SELECT count(*) AS scheduled FROM mcp.refresh_schedule;

-- No database user can stop the refresher: holding the advisory lock an earlier version used
-- (or any other) changes nothing; it starts and refreshes as usual.
SELECT pg_advisory_lock(hashtext('pg_mcp refresher')) IS NOT NULL AS lock_held;
SELECT pg_try_advisory_lock(k) FROM generate_series(1, 3) k;
SELECT mcp.schedule_refresh('refresh_plain', '1 second');
SELECT set_config('regress.scheduled_at', clock_timestamp()::text, false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT last_refresh_at > current_setting('regress.scheduled_at')::timestamptz
                     FROM mcp.refresh_status WHERE view = 'refresh_plain'::regclass);
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT last_refresh_at > current_setting('regress.scheduled_at')::timestamptz AS refreshed_while_locked,
       refresher_running
  FROM mcp.refresh_status WHERE view = 'refresh_plain'::regclass;
SELECT pg_advisory_unlock_all();
SELECT mcp.unschedule_refresh('refresh_plain');
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_mcp refresher'
                                AND datname = current_database());
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;

-- Scheduled in a transaction that takes its time to commit, with no refresher running: the
-- refresher started for it waits for the commit (it used to find nothing and leave at once).
BEGIN;
SELECT mcp.schedule_refresh('refresh_plain', '1 second');
SELECT pg_sleep(1.5);
SELECT set_config('regress.scheduled_at', clock_timestamp()::text, false) IS NOT NULL AS noted;
COMMIT;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT last_refresh_at > current_setting('regress.scheduled_at')::timestamptz
                     FROM mcp.refresh_status WHERE view = 'refresh_plain'::regclass);
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT last_refresh_at > current_setting('regress.scheduled_at')::timestamptz AS refreshed_after_commit,
       refresher_running
  FROM mcp.refresh_status WHERE view = 'refresh_plain'::regclass;
SELECT mcp.unschedule_refresh('refresh_plain');
DROP MATERIALIZED VIEW refresh_by_region, refresh_plain, refresh_failing;
DROP TABLE refresh_sales;
