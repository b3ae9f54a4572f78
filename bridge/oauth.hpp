// The OAuth 2.1 resource server of pg_mcp_bridge --auth oauth: access tokens are verified here
// (JWTs against their issuer's published keys, other tokens by token introspection), then the
// database maps the verified identity to a principal (mcp.assume_identity). Which issuers are
// trusted, for which resource and with which scopes, comes from the database
// (mcp.identity_providers_for). Everything runs on the event loop; the issuers' metadata and
// keys are fetched with Beast (HTTPS through OpenSSL) and cached.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "log.hpp"
#include "token_claims.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

struct OAuthOptions {
    // This protected resource: the URL clients use for the MCP endpoint (RFC 9728 "resource";
    // tokens must name it in "aud", RFC 8707).
    std::string resource;
    // Signature algorithms accepted (asymmetric only: "none" and HMAC are never accepted).
    std::vector<std::string> algorithms = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                           "PS512", "ES256", "ES384", "ES512"};
    std::string ca_file;  // trust anchors for the issuers' HTTPS besides the system's
    // Client credentials for token introspection (RFC 7662), when an issuer introspects.
    std::string introspection_client_id;
    std::string introspection_client_secret;
    // Origins besides each issuer's own that its metadata may send the bridge to for keys and
    // introspection (the bridge fetches nothing else an issuer's documents name).
    std::vector<std::string> key_origins;
    std::chrono::seconds leeway{30};  // clock skew allowed on exp / nbf
    std::chrono::milliseconds fetch_timeout{5000};
};

// An issuer trusted for this resource (a row of mcp.identity_providers_for).
struct TrustedIssuer {
    std::string issuer;
    std::vector<std::string> scopes;     // every token must carry these
    std::vector<std::string> audiences;  // a token's "aud" names one of these
    std::string metadata_url;            // where its metadata is, when not under the issuer
    bool introspect = false;
};

// Loads the trusted issuers; calls done with them, or nullopt when they could not be read.
using IssuerLoader =
    std::function<void(std::function<void(std::optional<std::vector<TrustedIssuer>>)> done)>;

class OAuthVerifier {
  public:
    OAuthVerifier(boost::asio::io_context &loop, OAuthOptions options, IssuerLoader load,
                  const Logger &logger);
    ~OAuthVerifier();

    // On the loop. Verifies a bearer token that is not one of pg_mcp's own.
    boost::asio::awaitable<Verdict> verify(std::string token);
    // The trusted issuers (loaded when older than a short while), for the metadata document.
    boost::asio::awaitable<std::optional<std::vector<TrustedIssuer>>> issuers();
    // RFC 9728 metadata of this resource, and the URL it is served at.
    nlohmann::json resource_metadata(const std::vector<TrustedIssuer> &issuers) const;
    std::string resource_metadata_url() const;
    // The paths (on this bridge's listener) the metadata is served at.
    std::vector<std::string> resource_metadata_paths() const;
    const OAuthOptions &options() const;
    // The scopes the trusted issuers require, space-separated, from the list read last (for the
    // challenge of a request without a token); empty before it was read.
    std::string scopes_hint() const;
    std::string metrics() const;  // Prometheus text

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// base64url without padding (RFC 7515), decoded; nullopt when not valid.
std::optional<std::string> base64url_decode(const std::string &text);

}  // namespace pg_mcp::bridge
