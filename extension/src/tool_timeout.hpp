// A tool's own time limit. statement_timeout cannot bound work inside a function (it is armed
// once per top-level statement), so a call arms a timer of its own whose handler requests a
// query cancel; the call then knows the cancel was its timeout, not the client's.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace pg_mcp {

void arm_tool_timeout(int64 milliseconds);
// Disarms the timer; returns whether it fired since it was armed. If it fired after the
// tool's work had finished, the pending cancel it requested is withdrawn.
bool disarm_tool_timeout(bool work_failed);

}  // namespace pg_mcp
