// Rate limits per role or principal and per tool: calls per window and concurrent calls,
// counted in shared memory so that they hold across every connection and bridge that reaches
// the server (also on a hot standby). Plain C style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

namespace pg_mcp {

// One limit that applies to a call (from mcp.rate_limits).
struct RateLimit {
    int32 id;
    int32 max_calls;  // 0: none
    int64 window_ms;
    int32 max_concurrent;  // 0: none
    const char *describe;  // e.g. role "agent_x", tool "lookup"
};

struct RateDecision {
    bool allowed;
    int64 retry_after_ms;  // when refused
    const char *reason;    // when refused
};

void define_rate_limit_settings(void);

// Counts the call against every limit (all or none); when one is exceeded, counts nothing
// and says when to retry. A call admitted must be finished with release_rate_limits, which
// also happens on transaction abort and process exit.
RateDecision acquire_rate_limits(const RateLimit *limits, int nlimits);
void release_rate_limits(void);

}  // namespace pg_mcp
