// What a tool call cost the database: the planner's estimated total cost of the tool's
// statement, and the shared buffers its run hit and read. Recorded with the call's audit row.
// Plain C style.
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

struct CallCost {
    bool measured;     // false: the tool's SQL never ran (denied, invalid arguments, ...)
    double plan_cost;  // -1 when the statement never reached the executor
    int64 shared_blks_hit;
    int64 shared_blks_read;
};

// Installs the executor hook that takes the plan's cost (from _PG_init).
void install_cost_hook(void);
// Around the tool's run: begin takes the buffer counters; end the difference.
void begin_call_cost(CallCost *cost);
void end_call_cost(CallCost *cost);
// Right before the tool's statement runs: the next plan to start for this SQL text is the
// one to cost.
void capture_next_plan_cost(const char *sql);

}  // namespace pg_mcp
