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
