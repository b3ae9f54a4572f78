// A tool's own time limit. statement_timeout cannot bound work inside a function (it is armed
// once per top-level statement), so a call arms a timer of its own whose handler requests a
// query cancel; the call then knows the cancel was its timeout, not the client's.
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

void arm_tool_timeout(int64 milliseconds);
// Disarms the timer; returns whether it fired since it was armed. Any cancel it requested
// and that is still pending is withdrawn, so it cannot reach the caller's statement.
bool disarm_tool_timeout();

}  // namespace pg_mcp
