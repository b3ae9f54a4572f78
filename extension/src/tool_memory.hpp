// A tool call's memory limit (pg_mcp.tool_memory_limit): PostgreSQL bounds sorts and hashes by
// work_mem but nothing bounds, say, a string_agg of a large table, so a watchdog samples the
// backend's private resident memory while the tool's SQL runs and cancels the statement once
// it has grown past the limit; the call then knows the cancel was its memory, not the client.
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

void define_tool_memory_settings(void);
// Starts sampling every 20 ms; the first sample (20 ms in) is the baseline.
void arm_tool_memory_watch(void);
// Stops sampling; returns whether the limit was crossed since arm. A cancel it requested and
// that is still pending is withdrawn, so it cannot reach the caller's statement.
bool disarm_tool_memory_watch(void);
// The limit in kB (0: none), for messages.
int tool_memory_limit_kb(void);

}  // namespace pg_mcp
