// Per-backend cache of what a tool needs at call time: its parsed parameter specs, its
// prepared plan and its parameters' input functions. An entry is valid for one catalog row version
// (tool id, version and row xmin), so any alter_tool — even several in one transaction — or a drop
// and re-create replaces it at the next call. Plain C style.
#pragma once

#include "param_adapter.hpp"

#include "pg_compat.hpp"

extern "C" {
#include "executor/spi.h"
#include "fmgr.h"
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
    // How a parameter's text becomes its Datum (an array's: each element's), looked up once:
    // binding a call's arguments costs no catalog lookup.
    struct Input {
        bool ready;
        Oid type;  // what `fn` reads: the parameter's type, or its element type
        FmgrInfo fn;
        Oid io_param;
        int16 length;  // of an element
        bool by_value;
        char align;
    };
    Input *inputs;  // nparams entries in CacheMemoryContext; NULL until the first call
};

// The input of parameter i of type `type` (an array type: of its elements), looked up on first
// use. ERRORs as the catalog lookups do.
const CachedTool::Input &parameter_input(CachedTool *tool, int i, Oid type, bool array);

// The entry for this tool row, (re)loading the parameter specs if the row changed. May throw
// (C++) while parsing specs: call it outside PostgreSQL error handling blocks.
CachedTool *cached_tool(const char *name, int64 id, int32 version, TransactionId row_xmin,
                        int nparams, const char *parameters_json);

}  // namespace pg_mcp
