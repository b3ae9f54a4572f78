// What the HTTP server checks of a request's head before it serves it: body framing, the Host
// header's form, headers that must appear once, mirrored header values (2026-07-28). Pure
// functions over Beast's request type: unit-tested and fuzzed alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

namespace pg_mcp::bridge {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

std::string lower(std::string text);

// The host of a Host header value (RFC 9110 7.2: uri-host [":" port]), lower-cased: "[::1]:8080"
// -> "[::1]", "LocalHost:8080" -> "localhost"; nullopt when the value is not of that form
// ("localhost:80@evil.com", a port that is not a number, user info, a path).
std::optional<std::string> host_name(std::string_view host);

// Why a request's body framing is refused (RFC 9112 6.1, 6.3): Transfer-Encoding other than
// exactly "chunked", or together with Content-Length. Empty when acceptable.
std::string framing_problem(const HttpRequest &request);

// The first header that a request carries more than once although it may appear once only
// (Host, Authorization, Content-Type, Origin, the MCP headers and Mcp-Param-*, trace context):
// two values would let a proxy and the bridge each read a different one. Empty when none.
std::string repeated_header(const HttpRequest &request);

// A mirrored header value (Mcp-Name, Mcp-Param-*), decoded from its Base64 sentinel form
// "=?base64?...?=" when it is in it; nullopt when it is not a valid value.
std::optional<std::string> header_value(std::string_view value);

}  // namespace pg_mcp::bridge
