-- pg_mcp demo: data and tools for the three scenarios (support, analytics, multi-tenant).
CREATE EXTENSION pg_mcp;
