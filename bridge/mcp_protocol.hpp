// What the protocol layer's parts share: the _meta keys and texts of the protocol, request
// keys, cursors, and reading untrusted members. Internal to McpServer (mcp_server.cpp,
// mcp_methods.cpp).
#pragma once

#include <string>

#include "backend.hpp"

namespace pg_mcp::bridge {

inline const char *const kClientCapabilitiesKey = "io.modelcontextprotocol/clientCapabilities";
inline const char *const kClientInfoKey = "io.modelcontextprotocol/clientInfo";
inline const char *const kLogLevelKey = "io.modelcontextprotocol/logLevel";
inline const char *const kServerInfoKey = "io.modelcontextprotocol/serverInfo";
inline const char *const kSubscriptionIdKey = "io.modelcontextprotocol/subscriptionId";
inline const char *const kStatusKey = "pg-mcp/status";
// A call a person must confirm first: what the database asks (in its result's _meta), and the
// key of that elicitation among the request's inputRequests / inputResponses.
inline const char *const kInputRequiredKey = "pg-mcp/input_required";
inline const char *const kConfirmInputKey = "confirm";

inline const char *const kInstructions =
    "This server gives access to a PostgreSQL database through tools that its database "
    "administrator defined with pg_mcp. Each tool runs one reviewed SQL statement with "
    "validated, typed parameters, as a least-privilege role, within row, byte and time limits, "
    "and every call is audited. Call tools/list to see the tools this connection may use; read "
    "each tool's description and inputSchema. Results are JSON rows in structuredContent "
    "(rows, row_count, truncated). If a result is truncated, narrow the arguments rather than "
    "repeating the call. Invalid arguments come back as a tool error explaining each problem.";

inline std::string request_key(const json &id) {
    // An integer id (the common case) is written as dump() would, without its serializer.
    if (id.is_number_unsigned()) return std::to_string(id.get<uint64_t>());
    if (id.is_number_integer()) return std::to_string(id.get<int64_t>());
    return id.dump();
}

inline const char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

inline std::string base64_encode(const std::string &in) {
    std::string out;
    unsigned value = 0;
    int bits = -6;
    for (unsigned char c : in) {
        value = (value << 8) + c;
        bits += 8;
        while (bits >= 0) {
            out.push_back(kBase64[(value >> bits) & 0x3F]);
            bits -= 6;
        }
    }
    if (bits > -6) out.push_back(kBase64[((value << 8) >> (bits + 8)) & 0x3F]);
    return out;
}

inline bool base64_decode(const std::string &in, std::string &out) {
    unsigned value = 0;
    int bits = -8;
    out.clear();
    for (char c : in) {
        const char *found = std::strchr(kBase64, c);
        if (c == '\0' || found == nullptr) return false;
        value = (value << 6) + static_cast<unsigned>(found - kBase64);
        bits += 6;
        if (bits >= 0) {
            out.push_back(static_cast<char>((value >> bits) & 0xFF));
            bits -= 8;
        }
    }
    return true;
}

// Cursors are opaque to clients: "t:" + the last tool name of the previous page.
inline std::string make_cursor(const std::string &last_name) {
    return base64_encode("t:" + last_name);
}

inline bool read_cursor(const std::string &cursor, std::string &after) {
    std::string decoded;
    if (!base64_decode(cursor, decoded) || decoded.rfind("t:", 0) != 0) return false;
    after = decoded.substr(2);
    return true;
}

// A string member of an object, or "" when absent or not a string (input is untrusted).
inline std::string string_member(const json &object, const char *key) {
    if (!object.is_object()) return {};
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

inline std::string describe_client(const json &info) {
    std::string name = string_member(info, "name");
    std::string version = string_member(info, "version");
    return version.empty() ? name : name + "/" + version;
}

}  // namespace pg_mcp::bridge
