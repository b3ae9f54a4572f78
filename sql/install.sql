-- The extension installs into schema mcp, and its library matches the SQL version.
CREATE EXTENSION pg_mcp;
SELECT extname, extversion, extnamespace::regnamespace AS schema, extrelocatable
  FROM pg_extension WHERE extname = 'pg_mcp';
SELECT mcp.library_version() = (SELECT extversion FROM pg_extension WHERE extname = 'pg_mcp') AS versions_match;

-- The management role exists (cluster-wide) and cannot log in.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'mcp_admin';

-- Catalog tables and their sequences are dumped by pg_dump (DBA definitions survive restore).
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'pg_mcp' ORDER BY 1;

-- Every object a DBA sees has a comment.
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'mcp'::regnamespace AND p.proname !~ '^_'
   AND obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1;
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'mcp'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL ORDER BY 1;

-- Every SECURITY DEFINER function pins its search_path.
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'mcp'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%');

-- Upgrade-script convention: one install script per released version and an update path from
-- each (test/upgrade.sh proves it); updating to the installed version is a no-op.
SELECT version FROM pg_available_extension_versions WHERE name = 'pg_mcp' ORDER BY 1;
SELECT source, target, path FROM pg_extension_update_paths('pg_mcp') WHERE path IS NOT NULL ORDER BY 1, 2;
ALTER EXTENSION pg_mcp UPDATE TO '0.2.0';

-- Drop removes every object of the schema; the role stays (it is cluster-wide); re-create works
-- and brings back the three built-in tools (query, list_objects, describe_object).
DROP EXTENSION pg_mcp;
SELECT count(*) AS objects_left FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'mcp');
SELECT count(*) AS mcp_schema FROM pg_namespace WHERE nspname = 'mcp';
CREATE EXTENSION pg_mcp;
SELECT count(*) AS tools FROM mcp.tools;
