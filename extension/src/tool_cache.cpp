// The per-backend tool cache: entries by name, replaced when the tool's row changes.
#include "tool_cache.hpp"

extern "C" {
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

namespace pg_mcp {

namespace {
HTAB *tool_cache = NULL;

void reset_entry(CachedTool *entry) {
    if (entry->plan != NULL) SPI_freeplan(entry->plan);
    entry->plan = NULL;
    if (entry->inputs != NULL) pfree(entry->inputs);  // their FmgrInfos' extra stays: small
    entry->inputs = NULL;
    CompiledParams *params = entry->params;
    entry->params = NULL;
    entry->loaded = false;
    free_compiled_params(params);
}
}  // namespace

CachedTool *cached_tool(const char *name, int64 id, int32 version, TransactionId row_xmin,
                        int nparams, const char *parameters_json) {
    if (tool_cache == NULL) {
        HASHCTL ctl;
        ctl.keysize = kToolNameMax + 1;
        ctl.entrysize = sizeof(CachedTool);
        ctl.hcxt = CacheMemoryContext;
        tool_cache = hash_create("pg_mcp tools", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
    }
    char key[kToolNameMax + 1] = {0};
    strlcpy(key, name, sizeof key);
    bool found;
    CachedTool *entry = (CachedTool *)hash_search(tool_cache, key, HASH_ENTER, &found);
    if (!found) {
        entry->loaded = false;
        entry->params = NULL;
        entry->plan = NULL;
        entry->inputs = NULL;
    }
    if (entry->loaded && entry->id == id && entry->version == version &&
        entry->row_xmin == row_xmin && entry->nparams == nparams)
        return entry;
    reset_entry(entry);
    entry->params = load_compiled_params(parameters_json);
    entry->sensitive = has_sensitive_params(entry->params);
    entry->id = id;
    entry->version = version;
    entry->row_xmin = row_xmin;
    entry->nparams = nparams;
    entry->loaded = true;
    return entry;
}

const CachedTool::Input &parameter_input(CachedTool *tool, int i, Oid type, bool array) {
    if (tool->inputs == NULL)
        tool->inputs = (CachedTool::Input *)MemoryContextAllocZero(
            CacheMemoryContext, sizeof(CachedTool::Input) * Max(tool->nparams, 1));
    if (i < 0 || i >= tool->nparams) elog(ERROR, "no parameter %d in the tool's cache", i);
    CachedTool::Input &input = tool->inputs[i];
    if (input.ready) return input;
    Oid read = array ? get_element_type(type) : type;
    if (!OidIsValid(read)) elog(ERROR, "type %u of parameter %d is not an array", type, i);
    Oid function;
    getTypeInputInfo(read, &function, &input.io_param);
    get_typlenbyvalalign(read, &input.length, &input.by_value, &input.align);
    fmgr_info_cxt(function, &input.fn, CacheMemoryContext);
    input.type = read;
    input.ready = true;
    return input;
}

}  // namespace pg_mcp
