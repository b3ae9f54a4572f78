// The HTTP transport's authentication gate: who sends a request, from its Authorization header
// (pg_mcp's own bearer tokens, checked by the database; with --auth oauth, OAuth access tokens,
// verified by oauth.hpp and mapped by the database), or the refusal to answer with. One cache of
// checked tokens (accepted, refused), one check in flight per token, fair budgets per client
// address for tokens it has not seen, and refusals counted rather than logged one by one. The
// token itself is never logged or kept: only its SHA-256.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "backend.hpp"
#include "log.hpp"
#include "oauth.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

// Who a request comes from, once authenticated: `owner` binds sessions (a pg_mcp token's hash;
// for OAuth the issuer and subject, so that a refreshed token keeps its sessions);
// principal_token or identity is what the database runs the request as.
struct Caller {
    std::string owner;
    std::string token_hash;       // SHA-256 of the bearer token presented
    std::string principal_token;  // a pg_mcp token's hash (empty for OAuth)
    std::string identity;         // an OAuth token's verified identity (JSON text)
    std::string principal;
    // Whose share of the caps a request takes, and how to name it: the principal, or for OAuth
    // the person (issuer and subject).
    std::string share, share_name;
};

// A request that is not let in, as the transport answers it.
struct Refusal {
    enum class Kind {
        Unauthorized,  // 401 with a Bearer challenge
        Forbidden,     // 403 (a scope missing, or an identity no mapping names)
        TooMany,       // 429: this client address's budget for unknown tokens is spent
        Unavailable,   // 503: the database or the issuer could not be asked; retry
        Internal,      // 500: the database refused the question (the log says why)
    } kind = Kind::Unauthorized;
    std::string message;    // the JSON-RPC error's message
    std::string challenge;  // WWW-Authenticate, when not empty
    bool retry_after = false;
};

using AuthResult = std::variant<Caller, Refusal>;

class AuthGate {
  public:
    AuthGate(boost::asio::io_context &io, Backend &backend, const Logger &logger,
             std::optional<OAuthOptions> oauth, std::chrono::milliseconds request_timeout);
    ~AuthGate();

    // On the loop: the caller of a request whose Authorization header is `authorization`
    // (nullopt: none), from client address `address` (its budget for unknown tokens).
    boost::asio::awaitable<AuthResult> check(std::optional<std::string> authorization,
                                             std::string address);
    // The database refused a remembered caller during a request (revoked meanwhile): it is
    // forgotten, and this is what to answer.
    Refusal revoked(const Caller &caller);

    OAuthVerifier *oauth() const;
    // Every second (from the server's housekeeping): expired entries go; counted refusals are
    // logged, one line per interval.
    void tick();
    std::string metrics() const;  // Prometheus text

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pg_mcp::bridge
