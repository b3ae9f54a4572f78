// JSON-RPC 2.0 messages as MCP uses them: parsing one line into a request, notification or
// response, with the standard error for anything else; building responses. Never throws on
// input.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pg_mcp::bridge {

using nlohmann::json;

namespace error_code {
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
// Implementation-defined (-32000..-32019).
constexpr int kServerBusy = -32000;
constexpr int kDatabaseUnavailable = -32001;
// Application-defined, outside the range JSON-RPC and MCP reserve (-32768..-32000).
constexpr int kUnauthorized = -31001;  // the bearer token is unknown, expired or revoked
// MCP 2026-07-28.
constexpr int kHeaderMismatch = -32020;
constexpr int kMissingRequiredClientCapability = -32021;
constexpr int kUnsupportedProtocolVersion = -32022;
}  // namespace error_code

struct Message {
    enum class Kind { Request, Notification, Response, Invalid };
    Kind kind = Kind::Invalid;
    json id;             // requests and responses; null when unknown
    std::string method;  // requests and notifications
    json params;         // an object (empty when absent)
    json error;          // Invalid: the error object to answer with (id in `id`); a Response's
    json result;         // Response: its result (null when it is an error)
};

// Parses one line. Invalid input yields Kind::Invalid with a ready error object.
// Whether a message nests deeper than any MCP message needs (checked before parsing).
bool nests_too_deep(std::string_view text);

Message parse_message(std::string_view line);
// The same for a message already parsed (a transport that had to read it first).
Message classify_message(json value);

// The id of a request that cannot be parsed (too long, or invalid somewhere), from its first and
// last bytes (the whole text when it is at hand), when it is plainly there ("id" as a member of
// the outermost object, an integer or a string without escapes); null otherwise. Lets the
// client's pending request fail at once instead of timing out.
json recover_request_id(std::string_view head, std::string_view tail);

// Whether a JSON value holds a NUL character in any string or member name.
bool contains_nul(const json &value);

json make_result(const json &id, json result);
json make_error(const json &id, int code, const std::string &message, json data = nullptr);
json make_notification(const std::string &method, json params);

}  // namespace pg_mcp::bridge
