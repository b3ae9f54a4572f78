-- The extension installs into schema mcp and its library matches the SQL version.
CREATE EXTENSION pg_mcp;
SELECT extname, extversion, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_mcp';
SELECT mcp.library_version() = (SELECT extversion FROM pg_extension WHERE extname = 'pg_mcp') AS versions_match;
