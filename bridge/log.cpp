#include "log.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>

namespace pg_mcp::bridge {

namespace {
const char *const kNames[] = {"debug", "info",     "notice", "warning",
                              "error", "critical", "alert",  "emergency"};
std::mutex stderr_mutex;
}  // namespace

bool parse_log_level(const std::string &name, LogLevel &level) {
    for (int i = 0; i < 8; ++i) {
        if (name == kNames[i]) {
            level = static_cast<LogLevel>(i);
            return true;
        }
    }
    return false;
}

const char *log_level_name(LogLevel level) {
    return kNames[static_cast<int>(level)];
}

void Logger::log(LogLevel level, const std::string &message) const {
    if (!enabled(level)) return;
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::lock_guard<std::mutex> lock(stderr_mutex);
    std::fprintf(stderr, "%s pg_mcp_bridge %s: %s\n", stamp, log_level_name(level),
                 message.c_str());
    std::fflush(stderr);
}

}  // namespace pg_mcp::bridge
