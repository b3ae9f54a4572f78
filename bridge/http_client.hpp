// A small HTTP(S) client on the event loop (Beast, OpenSSL for TLS): what the bridge fetches
// itself (an OAuth issuer's metadata and keys, token introspection, trace export).
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

// Parts of an http(s) URL; nullopt when it is not one (or has userinfo or a fragment).
struct Url {
    bool https = false;
    std::string host;  // without brackets for IPv6
    std::string port;
    std::string target;  // path and query, "/" at least
    std::string origin() const;
};
std::optional<Url> parse_url(const std::string &text);
// Whether a host name or address is the loopback (plain http is allowed only there).
bool is_loopback_host(const std::string &host);

struct FetchResult {
    unsigned status = 0;  // 0: no answer (error says why)
    std::string body;
    std::string error;
};

// One request (a body only with POST), answered within `timeout`; the answer's body is read up
// to 1 MB. HTTPS checks the server's certificate and name against `tls`'s trust anchors.
boost::asio::awaitable<FetchResult> fetch(
    boost::asio::io_context &io, boost::asio::ssl::context &tls, const Url &url,
    boost::beast::http::verb verb, std::string body, std::string authorization,
    std::chrono::milliseconds timeout,
    std::string content_type = "application/x-www-form-urlencoded");

// A client TLS context: the system's trust anchors, `ca_file`'s too, TLS 1.2 at least.
void configure_client_tls(boost::asio::ssl::context &tls, const std::string &ca_file);

}  // namespace pg_mcp::bridge
