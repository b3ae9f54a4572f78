-- pg_mcp 0.1.0: governed MCP tools for AI agents.
\echo Use "CREATE EXTENSION pg_mcp" to load this file. \quit

CREATE FUNCTION @extschema@.library_version() RETURNS text
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'pg_mcp_library_version';
COMMENT ON FUNCTION @extschema@.library_version() IS 'Version of the loaded pg_mcp shared library';
