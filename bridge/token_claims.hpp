// An access token's claims (RFC 7519, RFC 9068, RFC 7662 answers): the outcome of verifying a
// token, and the checks every token's claims pass whichever way it was verified (times,
// audience, subject, scopes). Pure functions: unit-tested and fuzzed alone.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pg_mcp::bridge {

// The outcome of verifying one access token.
struct Verdict {
    enum class Kind {
        Ok,
        Invalid,            // 401 invalid_token
        InsufficientScope,  // 403 insufficient_scope
        Unavailable,        // 503: an issuer or the database could not be asked
    } kind = Kind::Invalid;
    std::string reason;  // why, for the challenge's error_description and the log (no token)
    std::string scope;   // InsufficientScope: the scopes needed, space-separated
    // Ok: {"resource": ..., "claims": {...}} for mcp.assume_identity, who it is (issuer and
    // subject: the owner of the sessions it opens), and until when the token is valid.
    std::string identity;
    std::string owner;
    std::string issuer, subject;
    std::chrono::system_clock::time_point expires;
};

Verdict invalid(std::string reason);
Verdict unavailable(std::string reason);

// The scopes a token carries: "scope" (space-separated) or "scp" (an array or a string).
std::set<std::string> scopes_of(const nlohmann::json &claims);

// The checks on a token's claims, given the audiences it may name (the resource, or the names
// its issuer gives it) and the time (seconds since the epoch): nullopt when they pass, else the
// verdict.
std::optional<Verdict> check_claims(const nlohmann::json &claims,
                                    const std::vector<std::string> &audiences,
                                    const std::vector<std::string> &required_scopes, double now,
                                    std::chrono::seconds leeway);

}  // namespace pg_mcp::bridge
