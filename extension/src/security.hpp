// Who runs what: the function owner (our definer identity), role switches and the pinned
// search_path around catalog and tool work. Plain C style.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
}

namespace pg_mcp {

// The owner of the SQL function being called (cached in fn_extra): catalog and audit work
// runs as this role, as a SECURITY DEFINER function would.
Oid function_owner(FunctionCallInfo fcinfo);

// Opens a GUC nesting level and sets one setting in it, like a function's SET clause; undo
// with leave_settings (on success), or let (sub)transaction abort undo it.
int enter_setting(const char *name, const char *value);
int enter_search_path(const char *search_path);
void leave_settings(int nest_level);

}  // namespace pg_mcp
