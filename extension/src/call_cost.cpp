#include "call_cost.hpp"

extern "C" {
#include "executor/executor.h"
#include "executor/instrument.h"
#include "nodes/plannodes.h"
}

namespace pg_mcp {

namespace {

ExecutorStart_hook_type previous_executor_start = NULL;
bool capturing = false;           // set until the tool's statement starts
const char *expected_sql = NULL;  // its text (valid while the tool runs)
double captured = -1;             // its plan's total cost
BufferUsage started_with;

// The first executor start after capture_next_plan_cost is the tool's statement (queries it
// runs in turn, in functions it calls, start later and are not its plan).
void cost_executor_start(QueryDesc *query, int eflags) {
    // Only the tool's own statement: planning it may run other queries first (a SQL function
    // folded as a constant), whose plans must not pass for its own.
    if (capturing && query->plannedstmt != NULL && query->plannedstmt->planTree != NULL &&
        query->sourceText != NULL && expected_sql != NULL &&
        strcmp(query->sourceText, expected_sql) == 0) {
        captured = query->plannedstmt->planTree->total_cost;
        capturing = false;
    }
    if (previous_executor_start)
        previous_executor_start(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
}

}  // namespace

void install_cost_hook(void) {
    previous_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = cost_executor_start;
}

void begin_call_cost(CallCost *cost) {
    cost->measured = true;
    cost->plan_cost = -1;
    capturing = false;
    expected_sql = NULL;
    captured = -1;
    started_with = pgBufferUsage;
}

void end_call_cost(CallCost *cost) {
    capturing = false;
    expected_sql = NULL;
    cost->plan_cost = captured;
    cost->shared_blks_hit = pgBufferUsage.shared_blks_hit - started_with.shared_blks_hit;
    cost->shared_blks_read = pgBufferUsage.shared_blks_read - started_with.shared_blks_read;
}

void capture_next_plan_cost(const char *sql) {
    capturing = true;
    expected_sql = sql;
    captured = -1;
}

}  // namespace pg_mcp
