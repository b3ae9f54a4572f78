-- pg_mcp 0.1.0--0.2.0 (ALTER EXTENSION pg_mcp UPDATE).
\echo Use "ALTER EXTENSION pg_mcp UPDATE" to load this file. \quit
-- Every change to SQL objects since 0.1.0; test/upgrade.sh compares the result with a fresh
-- 0.2.0 install.

-- Audit fields are bounded: which were cut, with the full value's size and SHA-256. Added
-- last, so 0.1.0 rows keep their hash (audit_record.cpp hashes later columns only when set).
ALTER TABLE @extschema@.audit_log ADD COLUMN truncated jsonb;
COMMENT ON COLUMN @extschema@.audit_log.truncated IS 'Fields cut to their limit, each with its full size and the SHA-256 of its full value: {"message": {"bytes": n, "sha256": "hex"}}; NULL when nothing was cut';

-- Forwarded standby records are mapped to the record's fields by name.
DROP FUNCTION @extschema@.ingest_standby_audit(jsonb);
DROP FUNCTION @extschema@._queue_forwarded_audit(timestamptz, name, name, text, text, text, text, integer, jsonb, text, text, double precision, integer, text, text, integer, uuid, double precision, bigint, bigint);
DROP FUNCTION @extschema@._await_forwarded_audit();
CREATE FUNCTION @extschema@._queue_forwarded_audit(record jsonb, queue boolean) RETURNS void
    LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_queue_forwarded_record';
CREATE FUNCTION @extschema@._await_forwarded_audit() RETURNS bigint
    LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pg_mcp_await_forwarded_audit';
REVOKE ALL ON FUNCTION @extschema@._queue_forwarded_audit(jsonb, boolean),
                       @extschema@._await_forwarded_audit() FROM PUBLIC;

CREATE FUNCTION @extschema@.ingest_standby_audit(records jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    added integer := 0;
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'this server is a hot standby; forward audit records to the primary'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    IF records IS NULL OR jsonb_typeof(records) <> 'array' THEN
        RAISE EXCEPTION 'records must be a JSON array of audit records' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every record is checked before any is queued (the queue is outside this transaction):
    -- two passes over the same records. Fields are mapped by name (mcp.audit_log's columns).
    FOR r IN SELECT x.value AS record FROM jsonb_array_elements(records) AS x LOOP
        PERFORM @extschema@._queue_forwarded_audit(r.record, false);
        -- The statuses of mcp.audit_log's CHECK constraint that a call can have.
        IF r.record->>'status' NOT IN ('ok', 'truncated', 'invalid_arguments', 'denied', 'not_found',
                                       'refused', 'error', 'timeout', 'cancelled', 'rate_limited') THEN
            RAISE EXCEPTION 'audit record % has an invalid status "%"', r.record->>'record_id', r.record->>'status'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    -- Each record once: not if the primary has it already (the audit writer notes its id in
    -- mcp.audit_forwarded in the transaction that writes its row), nor twice from one batch.
    FOR r IN SELECT DISTINCT ON ((x.value->>'record_id')::uuid) (x.value->>'record_id')::uuid AS id,
                    x.value AS record
               FROM jsonb_array_elements(records) AS x LOOP
        CONTINUE WHEN EXISTS (SELECT FROM @extschema@.audit_forwarded f WHERE f.record_id = r.id);
        PERFORM @extschema@._queue_forwarded_audit(r.record, true);
        added := added + 1;
    END LOOP;
    IF added > 0 THEN
        PERFORM @extschema@._await_forwarded_audit();  -- durable before the client drops its copy
    END IF;
    RETURN added;
END
$$;
COMMENT ON FUNCTION @extschema@.ingest_standby_audit(jsonb)
    IS 'Adds audit records of calls served by hot standbys (pg_mcp_bridge forwards them) to mcp.audit_log, durably, each once; returns how many were new';
REVOKE ALL ON FUNCTION @extschema@.ingest_standby_audit(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.ingest_standby_audit(jsonb) TO mcp_audit_forwarder;

-- Catalog changes advance a version that the bridge checks before re-listing.
-- Every catalog change an agent can see advances the catalog version, in the changing
-- transaction (a row, so readers see only committed changes); pg_mcp_bridge acts on a
-- notification only when the version moved, so that a NOTIFY on the channel (which any role
-- may send) changes nothing.
CREATE TABLE @extschema@.catalog_state (
    version bigint NOT NULL
);
INSERT INTO @extschema@.catalog_state VALUES (1);
REVOKE ALL ON @extschema@.catalog_state FROM PUBLIC;
COMMENT ON TABLE @extschema@.catalog_state IS 'One row: the catalog version (mcp.catalog_version())';

CREATE FUNCTION @extschema@.catalog_version() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT version FROM @extschema@.catalog_state;
    END;
COMMENT ON FUNCTION @extschema@.catalog_version() IS 'A number that changes whenever tools, grants, views, prompts or drafts an agent can see change: a client re-lists only when it moved';
REVOKE ALL ON FUNCTION @extschema@.catalog_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.catalog_version() TO PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._notify_tools_changed(tool text, change text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        UPDATE @extschema@.catalog_state SET version = version + 1;
        SELECT pg_catalog.pg_notify('pg_mcp_tools_changed',
                                    pg_catalog.jsonb_build_object('tool', tool, 'change', change)::text);
    END;
