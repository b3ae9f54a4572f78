// A tool as a call needs it, looked up with whether the caller may use it, its principal and
// its rate limits: read from the catalog with the latest snapshot, cached per (caller, tool)
// in the backend until the catalog generation changes (catalog_cache.hpp). Plain C style.
#pragma once

#include "pg_compat.hpp"
#include "rate_limit.hpp"

namespace pg_mcp {

// The tool's catalog row, as call_tool needs it.
struct ToolRow {
    bool found;
    bool granted;
    int64 id;
    TransactionId row_xmin;
    int32 version;
    char *compiled_sql;
    char *parameters_json;
    int nparams;
    Oid *param_types;
    int32 max_rows;
    int32 max_bytes;
    int64 timeout_ms;
    bool read_only;
    char *run_as;  // NULL: the calling role
    char *search_path;
    char *principal;          // the caller's principal, or NULL
    char *principal_context;  // its context (JSON text), or NULL
    RateLimit *limits;        // the limits that apply to this caller and tool
    int nlimits;
    bool is_query;          // the built-in guarded free-form SQL tool
    double max_cost;        // its own cost ceiling (0: none)
    char untrusted_data;    // 'a'uto, 'm'ark or 'p'lain: whether results are marked as data
    bool confirm;           // a person confirms each call before it runs (confirmation.hpp)
    char *confirm_message;  // what the person is shown ({argument} placeholders), or NULL
};

// The tool named `name` as role `caller` sees it, in result_context (also current on return);
// found is false when there is no such tool. The owner's role and SPI must be in effect
// (mcp.call_tool's). A transaction that changed the catalog reads it uncached.
ToolRow load_tool(const char *name, Oid caller, MemoryContext result_context);

}  // namespace pg_mcp
