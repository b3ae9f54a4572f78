#include "tool_timeout.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timeout.h"
}

#include <csignal>

namespace pg_mcp {

namespace {

volatile sig_atomic_t timeout_fired = false;
bool registered = false;
TimeoutId timeout_id;

void on_tool_timeout(void) {
    timeout_fired = true;
    InterruptPending = true;
    QueryCancelPending = true;
    SetLatch(MyLatch);
}

}  // namespace

void arm_tool_timeout(int64 milliseconds) {
    // Registered lazily in each backend: timeouts registered in the postmaster (when the
    // library is preloaded) are reset when a backend starts.
    if (!registered) {
        timeout_id = RegisterTimeout(USER_TIMEOUT, on_tool_timeout);
        registered = true;
    }
    timeout_fired = false;
    enable_timeout_after(timeout_id, (int)Min(milliseconds, (int64)PG_INT32_MAX));
}

bool disarm_tool_timeout() {
    if (!registered) return false;
    disable_timeout(timeout_id, false);
    bool fired = timeout_fired;
    timeout_fired = false;
    if (fired) QueryCancelPending = false;
    return fired;
}

}  // namespace pg_mcp
