// The guard of the built-in `query` tool: free-form SQL checked with PostgreSQL's own parser
// and analyzer (never with regular expressions) before it runs. Plain C style: refusals are
// ereport(ERROR) with SQLSTATE MCP01, raised inside the call's subtransaction.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace pg_mcp {

// SQLSTATE of a refused query (class "MC": pg_mcp).
#define ERRCODE_PG_MCP_REFUSED MAKE_SQLSTATE('M', 'C', 'P', '0', '1')
// A writing tool called on a hot standby (the client retries on the primary).
#define ERRCODE_PG_MCP_NEEDS_PRIMARY MAKE_SQLSTATE('M', 'C', 'P', '0', '2')

// Checks sql: exactly one SELECT, VALUES or plain EXPLAIN of one; no data-modifying CTE, no
// SELECT INTO, no locking clause; every function immutable or stable (and not one of the
// few stable functions that dump whole schemas), or on mcp.query_allowed_functions. Returns
// the prepared plan (SPI connected), after checking its estimated cost against max_cost
// (<= 0: no ceiling).
// *is_explain tells the caller the plan is an EXPLAIN (a utility statement for SPI).
SPIPlanPtr prepare_guarded_query(const char *sql, double max_cost, bool *is_explain = nullptr);

// The cost ceiling in effect: the smaller of the tool's own and pg_mcp.query_max_cost.
double query_cost_ceiling(double tool_max_cost);

void define_query_guard_settings(void);

}  // namespace pg_mcp
