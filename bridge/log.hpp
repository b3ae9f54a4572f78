// Logging to stderr (stdout carries MCP messages only). Levels are MCP's (RFC 5424 names).
#pragma once

#include <string>

namespace pg_mcp::bridge {

enum class LogLevel { Debug, Info, Notice, Warning, Error, Critical, Alert, Emergency };

bool parse_log_level(const std::string &name, LogLevel &level);
const char *log_level_name(LogLevel level);

class Logger {
  public:
    explicit Logger(LogLevel threshold = LogLevel::Info, bool json = false)
        : threshold_(threshold), json_(json) {}
    void set_threshold(LogLevel level) { threshold_ = level; }
    bool enabled(LogLevel level) const { return level >= threshold_; }
    // One line per message: "TIME pg_mcp_bridge LEVEL: MESSAGE" (control characters escaped),
    // or with json, an object {"time","level","logger","message"} plus "request_id" when the
    // message is about one.
    void log(LogLevel level, const std::string &message, const std::string &request_id = {}) const;

  private:
    LogLevel threshold_;
    bool json_;
};

}  // namespace pg_mcp::bridge
