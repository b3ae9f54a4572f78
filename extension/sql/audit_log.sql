------------------------------------------------------------------------------------------
-- Audit log protection: no UPDATE, DELETE or TRUNCATE except through purge_audit.
------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._audit_log_guard() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'pg_mcp_audit_log_guard';
REVOKE ALL ON FUNCTION @extschema@._audit_log_guard() FROM PUBLIC;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON @extschema@.audit_log
    FOR EACH ROW EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();

-- Chain: each row's row_hash = sha256(prev_hash || the row's content), in the order the audit
-- writer (the only writer) committed them. The content is a canonical encoding of every other
-- column (fixed-width numbers big-endian, text as UTF-8, jsonb as its canonical text), so it
-- depends on no setting and no server encoding; the writer and this function share its code.
CREATE FUNCTION @extschema@._audit_row_hash(r @extschema@.audit_log) RETURNS bytea
    LANGUAGE C IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'pg_mcp_audit_row_hash';
REVOKE ALL ON FUNCTION @extschema@._audit_row_hash(@extschema@.audit_log) FROM PUBLIC;

CREATE TABLE @extschema@.audit_anchors (
    last_purged_id  bigint NOT NULL,
    anchor_hash     bytea NOT NULL,
    rows_purged     bigint NOT NULL,
    purged_by       name NOT NULL,
    purged_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.audit_anchors IS 'Where the audit chain starts after each purge: the hash of the last purged row';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_anchors', '');
REVOKE ALL ON @extschema@.audit_anchors FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_anchors TO mcp_admin;
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON @extschema@.audit_anchors
    FOR EACH ROW EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON @extschema@.audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();


CREATE FUNCTION @extschema@.verify_audit()
RETURNS TABLE (verified boolean, rows_checked bigint, first_bad_id bigint, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    expected_prev bytea;
    a @extschema@.audit_log;
    n bigint := 0;
BEGIN
    SELECT x.anchor_hash INTO expected_prev FROM @extschema@.audit_anchors x ORDER BY x.last_purged_id DESC LIMIT 1;
    FOR a IN SELECT * FROM @extschema@.audit_log ORDER BY id LOOP
        n := n + 1;
        IF a.prev_hash IS DISTINCT FROM expected_prev THEN
            RETURN QUERY SELECT false, n, a.id,
                format('row %s does not follow the row before it: a row was deleted, inserted or reordered', a.id);
            RETURN;
        END IF;
        IF @extschema@._audit_row_hash(a) IS DISTINCT FROM a.row_hash THEN
            RETURN QUERY SELECT false, n, a.id, format('row %s was altered after it was written', a.id);
            RETURN;
        END IF;
        expected_prev := a.row_hash;
    END LOOP;
    RETURN QUERY SELECT true, n, NULL::bigint, NULL::text;
END
$$;
COMMENT ON FUNCTION @extschema@.verify_audit() IS 'Walks the audit chain; reports the first row that was altered, deleted, inserted or reordered since the writer wrote it';
REVOKE ALL ON FUNCTION @extschema@.verify_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.verify_audit() TO mcp_admin;

-- Called by purge_audit only (which holds the flag the guard trigger checks): deletes the
-- oldest rows, up to the first one at or after the cutoff, and anchors the chain there.
CREATE FUNCTION @extschema@._purge_audit_prefix(cutoff timestamptz) RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    boundary bigint;
    last_row record;
    deleted bigint;
BEGIN
    -- The ids of forwarded standby records go with the rows' age (a spool never keeps a record
    -- that long).
    DELETE FROM @extschema@.audit_forwarded f WHERE f.ingested_at < cutoff;
    SELECT coalesce(min(l.id), (SELECT max(id) + 1 FROM @extschema@.audit_log)) INTO boundary
      FROM @extschema@.audit_log l WHERE l.called_at >= cutoff;
    SELECT l.id, l.row_hash INTO last_row FROM @extschema@.audit_log l WHERE l.id < boundary ORDER BY l.id DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    DELETE FROM @extschema@.audit_log l WHERE l.id < boundary;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    INSERT INTO @extschema@.audit_anchors (last_purged_id, anchor_hash, rows_purged, purged_by)
    VALUES (last_row.id, last_row.row_hash, deleted, @extschema@._acting_role());
    RETURN deleted;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._purge_audit_prefix(timestamptz) FROM PUBLIC;

CREATE FUNCTION @extschema@.purge_audit(older_than interval) RETURNS bigint
    LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pg_mcp_purge_audit';
COMMENT ON FUNCTION @extschema@.purge_audit(interval) IS 'Retention: deletes the oldest audit rows (those before the first row newer than the given age), anchors the chain so verify_audit still passes, records the purge, and returns how many rows went; the only way rows leave the log';
REVOKE ALL ON FUNCTION @extschema@.purge_audit(interval) FROM PUBLIC;


