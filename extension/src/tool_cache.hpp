// Per-backend cache of what a tool needs at call time: its parsed parameter specs and its
// prepared plan. An entry is valid for one catalog row version (tool id, version and row
// xmin), so any alter_tool — even several in one transaction — or a drop and re-create
// replaces it at the next call. Plain C style.
#pragma once

#include "param_adapter.hpp"

#include "pg_compat.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace pg_mcp {

constexpr int kToolNameMax = 128;

struct CachedTool {
    char name[kToolNameMax + 1];  // hash key
    int64 id;
    int32 version;
    TransactionId row_xmin;
    int nparams;             // of the plan and the specs
    bool loaded;             // params parsed for (id, row_xmin)
    CompiledParams *params;  // owned; freed when the entry is replaced
    bool sensitive;
    SPIPlanPtr plan;  // kept plan, prepared on first execution; NULL until then
};

// The entry for this tool row, (re)loading the parameter specs if the row changed. May throw
// (C++) while parsing specs: call it outside PostgreSQL error handling blocks.
CachedTool *cached_tool(const char *name, int64 id, int32 version, TransactionId row_xmin,
                        int nparams, const char *parameters_json);

}  // namespace pg_mcp
