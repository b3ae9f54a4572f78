-- The current version of each sandboxed view. Its relation is found in the catalog by name, not
-- with to_regclass, which needs USAGE on the view's schema: an auditor (a plain mcp_admin
-- member) reads this view, and mcp.pii_access over it, without any grant on the agents' schemas.
CREATE OR REPLACE VIEW @extschema@.sandbox_views AS
    SELECT DISTINCT ON (v.view_name) v.view_name AS name, v.version, v.source, v.columns, v.pii_columns,
           v.row_filter, v.description, v.changed_by, v.changed_at,
           CASE WHEN v.change <> 'dropped' THEN
               (SELECT c.oid::pg_catalog.regclass
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = (pg_catalog.parse_ident(v.view_name))[1]
                   AND c.relname = (pg_catalog.parse_ident(v.view_name))[2]) END AS view
      FROM @extschema@.sandbox_view_versions v
     ORDER BY v.view_name, v.version DESC;
COMMENT ON VIEW @extschema@.sandbox_views IS 'The current version of each sandboxed view (dropped ones have view = NULL)';
