#include "security.hpp"

extern "C" {
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "miscadmin.h"
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

RoleSwitch enter_role(Oid role, const char *search_path, bool restricted, bool connect_spi) {
    RoleSwitch saved;
    GetUserIdAndSecContext(&saved.saved_user, &saved.saved_security);
    SetUserIdAndSecContext(role, saved.saved_security | SECURITY_LOCAL_USERID_CHANGE |
                                     (restricted ? SECURITY_RESTRICTED_OPERATION : 0));
    saved.nest_level = search_path != NULL ? enter_search_path(search_path) : -1;
    saved.spi = connect_spi;
    if (connect_spi && SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    return saved;
}

void leave_role(const RoleSwitch &saved) {
    if (saved.spi) SPI_finish();
    if (saved.nest_level >= 0) leave_settings(saved.nest_level);
    SetUserIdAndSecContext(saved.saved_user, saved.saved_security);
}

}  // namespace pg_mcp
