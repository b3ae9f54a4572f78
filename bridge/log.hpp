// Logging to stderr (stdout carries MCP messages only). Levels are MCP's (RFC 5424 names).
#pragma once

#include <string>

namespace pg_mcp::bridge {

enum class LogLevel { Debug, Info, Notice, Warning, Error, Critical, Alert, Emergency };

bool parse_log_level(const std::string &name, LogLevel &level);
const char *log_level_name(LogLevel level);

class Logger {
  public:
    explicit Logger(LogLevel threshold = LogLevel::Info) : threshold_(threshold) {}
    void set_threshold(LogLevel level) { threshold_ = level; }
    bool enabled(LogLevel level) const { return level >= threshold_; }
    void log(LogLevel level, const std::string &message) const;

  private:
    LogLevel threshold_;
};

}  // namespace pg_mcp::bridge
