#include "log.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

namespace pg_mcp::bridge {

namespace {
const char *const kNames[] = {"debug", "info",     "notice", "warning",
                              "error", "critical", "alert",  "emergency"};
std::mutex stderr_mutex;

// Text lines: control characters escaped, so that no value (a tool name, a server message) can
// end a line or forge another one: ASCII controls, and in UTF-8 the C1 controls (NEL among
// them) and the line and paragraph separators U+2028 and U+2029.
std::string escape_controls(const std::string &text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        unsigned char next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
        unsigned char third = i + 2 < text.size() ? static_cast<unsigned char>(text[i + 2]) : 0;
        if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {  // U+0080..U+009F
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\u%04x", next);
            out += hex;
            i += 1;
        } else if (c == 0xe2 && next == 0x80 && (third == 0xa8 || third == 0xa9)) {
            out += third == 0xa8 ? "\\u2028" : "\\u2029";
            i += 2;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}
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

void Logger::log(LogLevel level, const std::string &message, const std::string &request_id) const {
    if (!enabled(level)) return;
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::string line;
    if (json_) {
        nlohmann::json entry = {{"time", stamp},
                                {"level", log_level_name(level)},
                                {"logger", "pg_mcp_bridge"},
                                {"message", message}};
        if (!request_id.empty()) entry["request_id"] = request_id;
        line = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        line = std::string(stamp) + " pg_mcp_bridge " + log_level_name(level) + ": " +
               escape_controls(message);
        if (!request_id.empty()) line += " (request " + escape_controls(request_id) + ")";
    }
    std::lock_guard<std::mutex> lock(stderr_mutex);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
}

}  // namespace pg_mcp::bridge
