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
