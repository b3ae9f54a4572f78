// Bearer tokens for the HTTP transport: the bridge never keeps or sends a token itself, only
// its SHA-256, which the database resolves to a principal (mcp.assume_principal).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace pg_mcp::bridge {

// Lower-case hex SHA-256 of the bytes of `text`.
std::string sha256_hex(std::string_view text);

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive,
// RFC 6750 token68 characters only); nullopt when it is not one.
std::optional<std::string> bearer_token(std::string_view header);

// Principals of recently checked token hashes, so that a session's requests are not each a
// database round trip. Tool calls are checked in the database every time regardless; this only
// decides how soon a revoked token's HTTP requests get 401 (at most `ttl` later).
class TokenCache {
  public:
    explicit TokenCache(std::chrono::milliseconds ttl) : ttl_(ttl) {}
    std::optional<std::string> find(const std::string &token_sha256);
    void remember(const std::string &token_sha256, const std::string &principal);
    void forget(const std::string &token_sha256);

  private:
    struct Entry {
        std::string principal;
        std::chrono::steady_clock::time_point until;
    };
    std::chrono::milliseconds ttl_;
    std::mutex mutex_;
    std::map<std::string, Entry> entries_;
};

}  // namespace pg_mcp::bridge
