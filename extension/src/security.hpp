// Who runs what: the function owner (our definer identity), role switches and the pinned
// search_path around catalog and tool work. Plain C style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
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

// Runs as `role` (restricted: as a security-restricted operation, for SQL the caller did not
// write), with search_path pinned when not NULL and SPI connected when asked: what
// fmgr_security_definer does around a SECURITY DEFINER function with a SET clause. leave_role
// undoes it in reverse order; an ERROR in between is undone by the (sub)transaction's abort.
struct RoleSwitch {
    Oid saved_user;
    int saved_security;
    int nest_level;  // -1: no setting changed
    bool spi;
};
RoleSwitch enter_role(Oid role, const char *search_path, bool restricted, bool connect_spi);
void leave_role(const RoleSwitch &saved);

}  // namespace pg_mcp
