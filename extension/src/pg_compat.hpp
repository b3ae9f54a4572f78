// The one place PostgreSQL's headers meet C++, and every difference between the server versions
// pg_mcp supports (15 to 18), each named for what it means; no other file tests PG_VERSION_NUM.
// <libintl.h> comes before postgres.h: a server built without NLS makes gettext() a macro in
// c.h, which would break the declarations of any later include of <libintl.h> (the C++ library
// includes it through <locale>).
#pragma once

#include <libintl.h>

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "nodes/nodeFuncs.h"
#include "storage/proc.h"
}

namespace pg_mcp::compat {

// This backend's local transaction id (17 moved it into the virtual transaction id).
inline LocalTransactionId local_transaction_id() {
#if PG_VERSION_NUM >= 170000
    return MyProc->vxid.lxid;
#else
    return MyProc->lxid;
#endif
}

}  // namespace pg_mcp::compat

// A walker for expression_tree_walker/query_tree_walker, written as
// `bool walker(Node *node, void *context)`. Up to 15 the walkers take `bool (*)()` (a C
// prototype without arguments: the cast goes through `void (*)(void)`, the one function pointer
// type GCC lets any other convert to); from 16 they take that signature as it is.
#if PG_VERSION_NUM >= 160000
#define PG_MCP_TREE_WALKER(walker) (walker)
#else
#define PG_MCP_TREE_WALKER(walker) ((bool (*)())(void (*)(void))(walker))
#endif
