-- Successful calls that returned PII-marked columns, with the person behind each (shared by
-- the install script and the upgrade that added the OAuth columns).
CREATE OR REPLACE VIEW @extschema@.pii_access AS
    SELECT a.called_at, a.caller_role, a.principal, a.agent_name, a.tool_name, a.rows_returned,
           array_agg(DISTINCT v.name || '.' || p ORDER BY v.name || '.' || p) AS pii_columns, a.id AS audit_id,
           a.auth_issuer, a.auth_subject, a.auth_client_id
      FROM @extschema@.audit_log a
      JOIN @extschema@.tools t ON t.name = a.tool_name
      JOIN @extschema@.sandbox_views v ON v.view = ANY (t.depends_on)
      CROSS JOIN LATERAL unnest(v.pii_columns) p
     WHERE a.status IN ('ok', 'truncated') AND coalesce(a.rows_returned, 0) > 0
     GROUP BY a.id;
COMMENT ON VIEW @extschema@.pii_access IS 'Successful calls that returned rows from tools reading PII-marked columns of sandboxed views, with the person behind each (OAuth issuer, subject, client); e.g. WHERE called_at > now() - interval ''30 days''';
