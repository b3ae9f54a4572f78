// Bearer tokens for the HTTP transport: the bridge never keeps or sends a token itself, only
// its SHA-256, which the database resolves to a principal (mcp.assume_principal; the cache of
// checked tokens is the gate's, http_auth.hpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pg_mcp::bridge {

// Lower-case hex SHA-256 of the bytes of `text`.
std::string sha256_hex(std::string_view text);

// `bytes` as lower-case hex.
std::string hex_encode(std::string_view bytes);

// `bytes` bytes from OpenSSL's generator, as lower-case hex (for names others must not guess);
// empty if the generator fails.
std::string secure_random_hex(size_t bytes);

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive,
// RFC 6750 token68 characters only); nullopt when it is not one.
std::optional<std::string> bearer_token(std::string_view header);

}  // namespace pg_mcp::bridge
