// Library entry: module magic, settings, and the version function.
#include "boundary.hpp"

extern "C" {
#include "utils/builtins.h"
PG_MODULE_MAGIC;
void _PG_init(void);
}

#define PG_MCP_VERSION "0.1.0"

void _PG_init(void) {}

// mcp.library_version(): the version of the loaded shared library, compared by the bridge with
// the installed extension's version.
PG_MCP_FUNCTION(pg_mcp_library_version) { PG_RETURN_TEXT_P(cstring_to_text(PG_MCP_VERSION)); }
