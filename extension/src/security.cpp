#include "security.hpp"

extern "C" {
#include "catalog/pg_proc.h"
#include "utils/guc.h"
#include "utils/syscache.h"
}

namespace pg_mcp {

Oid function_owner(FunctionCallInfo fcinfo) {
    FmgrInfo *flinfo = fcinfo->flinfo;
    if (flinfo->fn_extra == NULL) {
        HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(flinfo->fn_oid));
        if (!HeapTupleIsValid(tuple))
            elog(ERROR, "cache lookup failed for function %u", flinfo->fn_oid);
        Oid owner = ((Form_pg_proc)GETSTRUCT(tuple))->proowner;
        ReleaseSysCache(tuple);
        Oid *cached = (Oid *)MemoryContextAlloc(flinfo->fn_mcxt, sizeof(Oid));
        *cached = owner;
        flinfo->fn_extra = cached;
    }
    return *(Oid *)flinfo->fn_extra;
}

int enter_setting(const char *name, const char *value) {
    int nest_level = NewGUCNestLevel();
    (void)set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
    return nest_level;
}

int enter_search_path(const char *search_path) {
    return enter_setting("search_path", search_path);
}

void leave_settings(int nest_level) {
    AtEOXact_GUC(true, nest_level);
}

}  // namespace pg_mcp
