// The memory watchdog of a tool call: a repeating timeout whose handler reads /proc/self/statm
// with async-signal-safe calls only (open, read, close, integer parsing) and requests a query
// cancel when the backend's private resident memory has grown past pg_mcp.tool_memory_limit
// since the first sample (20 ms into the call).
#include "tool_memory.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

#include <climits>
#include <csignal>
#include <fcntl.h>
#include <unistd.h>

namespace pg_mcp {

namespace {

constexpr int kSampleMs = 20;

int limit_kb = 256 * 1024;
volatile sig_atomic_t fired = false;
bool registered = false;
bool armed = false;
TimeoutId watch_id;
long page_kb = 4;
volatile long baseline_kb = -1;

// Private resident memory in kB (resident minus file-backed and shared pages, so shared
// buffers the statement touches do not count), or -1. Safe in a signal handler.
long private_resident_kb() {
    int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char text[128];
    ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return -1;
    long fields[3] = {0, 0, 0};
    int field = 0;
    bool in_number = false;
    for (ssize_t i = 0; i < n && field < 3; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9') {
            fields[field] = fields[field] * 10 + (c - '0');
            in_number = true;
        } else if (in_number) {
            field++;
            in_number = false;
        }
    }
    if (field < 2) return -1;
    return (fields[1] - fields[2]) * page_kb;  // resident - shared
}

void on_memory_sample(void) {
    if (limit_kb <= 0) return;
    long now = private_resident_kb();
    // The first sample sets the baseline: a call that ends within one interval (nearly all)
    // never reads /proc at all.
    if (baseline_kb < 0) {
        baseline_kb = now;
        return;
    }
    // Asked again at every sample while over the limit: SQL that catches one cancel does not
    // escape the watch.
    if (now >= 0 && now - baseline_kb > limit_kb) {
        fired = true;
        InterruptPending = true;
        QueryCancelPending = true;
        SetLatch(MyLatch);
    }
}

}  // namespace

void define_tool_memory_settings(void) {
    DefineCustomIntVariable(
        "pg_mcp.tool_memory_limit",
        "Memory one tool call's SQL may add to its backend while it runs.",
        "Sampled every 20 ms (from 20 ms into the call) while the tool's SQL runs; a call past it "
        "is stopped and audited "
        "as an error (SQLSTATE 53200). Superusers set it, also per role (ALTER ROLE ... SET); "
        "0 disables the watch.",
        &limit_kb, 256 * 1024, 0, INT_MAX / 2, PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
}

int tool_memory_limit_kb(void) {
    return limit_kb;
}

void arm_tool_memory_watch(void) {
    // A call is never nested in another (call_tool refuses it); a watch left armed by an
    // error that escaped the previous call is replaced.
    if (armed) disarm_tool_memory_watch();
    if (limit_kb <= 0) return;
    if (!registered) {
        watch_id = RegisterTimeout(USER_TIMEOUT, on_memory_sample);
        long page = sysconf(_SC_PAGESIZE);
        page_kb = page > 0 ? page / 1024 : 4;
        registered = true;
    }
    fired = false;
    baseline_kb = -1;
    armed = true;
    enable_timeout_every(watch_id, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kSampleMs),
                         kSampleMs);
}

bool disarm_tool_memory_watch(void) {
    if (!armed) return false;
    armed = false;
    disable_timeout(watch_id, false);
    baseline_kb = -1;
    bool was_fired = fired;
    fired = false;
    if (was_fired) QueryCancelPending = false;
    return was_fired;
}

}  // namespace pg_mcp
