// The Streamable HTTP transport (MCP 2025-11-25): one endpoint (/mcp) for POST and DELETE, a
// session per initialize (MCP-Session-Id), JSON responses, 202 for notifications and
// responses, Origin and Host validation against DNS rebinding, a body size limit, /healthz and
// /readyz, and a graceful stop that lets in-flight requests finish. Built on Boost.Beast over
// one Asio event loop: every client connection is a coroutine on it, with a deadline on each read
// and write; requests wait for the database without holding a thread; all sessions share one
// database pool.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backend.hpp"
#include "oauth.hpp"
#include "log.hpp"
#include "mcp_server.hpp"
#include "session_ticket.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

struct HttpOptions {
    std::string address = "127.0.0.1";
    unsigned short port = 8080;
    // Origins a browser may send (exact, e.g. "http://localhost:3000"); a request with any
    // other Origin gets 403. Requests without Origin (non-browser clients) are accepted.
    std::vector<std::string> allowed_origins;
    // Host header names accepted (without port); loopback names and the bound address always.
    std::vector<std::string> allowed_hosts;
    size_t max_body_bytes = 1 << 20;
    std::chrono::milliseconds request_timeout{300000};  // longest wait for one response
    std::chrono::minutes session_idle{60};              // sessions unused this long are ended
    // Session tickets (session_ticket.hpp): with keys, a 2025-11-25 session's id carries its
    // state sealed, and any bridge with the same keys serves it for `session_lifetime` after
    // its initialize (an idle session's state is dropped here, and taken up again from its id).
    std::shared_ptr<const SessionKeys> session_keys;
    std::chrono::seconds session_lifetime{86400};
    size_t max_connections = 512;  // open client connections (beyond: the idlest one is closed)
    size_t max_connections_per_address = 256;  // from one client address (the same rule)
    // Every socket has a deadline: the first request's header within header_timeout of the
    // connection, a later one's within idle_timeout of the previous response, a body within
    // body_timeout of its header, each write within write_timeout. A connection past its
    // deadline is closed; under pressure the one waiting longest for a request goes first.
    std::chrono::milliseconds header_timeout{10000};
    std::chrono::milliseconds idle_timeout{60000};
    std::chrono::milliseconds body_timeout{30000};
    size_t body_min_rate = 16 * 1024;  // bytes a second, after a body's first 2 s
    std::chrono::milliseconds write_timeout{30000};
    size_t max_sessions = 4096;  // more sessions: initialize gets 503
    // Without tokens, what the clients of one address may hold of them (beyond: 429).
    size_t max_sessions_per_address = 1024;
    // With tokens, what one principal may hold of what all share: open sessions, and requests
    // in progress (beyond either: 429 with Retry-After, for that principal only).
    size_t max_sessions_per_principal = 64;
    size_t max_calls_per_principal = 256;
    // Every /mcp request must carry "Authorization: Bearer <token>" of a principal (see
    // mcp.create_token); its session then runs as that principal, and only that token may use
    // the session.
    bool require_token = false;
    // --auth oauth (implies require_token: pg_mcp's own tokens keep working): an OAuth 2.1
    // resource server. Access tokens are verified (oauth.hpp) and their identity mapped to a
    // principal by the database; sessions belong to the person (issuer and subject).
    std::optional<OAuthOptions> oauth;
    // Metrics of what serves the sessions (the database pool), in Prometheus text format;
    // /metrics adds the transport's own.
    std::function<std::string()> metrics;
};

// Whether the database is reachable with the right extension: an empty string when ready,
// else why not (for /readyz).
using ReadinessFn = std::function<std::string()>;

class HttpServer {
  public:
    // Everything runs on `loop`, which another thread runs (the database pool's too).
    HttpServer(boost::asio::io_context &loop, Backend &backend, ServerOptions server_options,
               const Logger &logger, HttpOptions options, ReadinessFn readiness);
    ~HttpServer();

    // Binds and listens; false with a message when the address cannot be used.
    bool listen(std::string &error);
    unsigned short port() const { return bound_port_; }
    // Accepts connections until stop(); then waits for in-flight requests (up to `grace`).
    // Blocks the calling thread (not the loop's) until the server has stopped.
    void run(std::chrono::milliseconds grace);
    // From any thread (or a signal's wake-up): stop accepting, end idle connections.
    void stop();
    // The tool catalog changed: every session is told (when it can be).
    void tools_changed();
    // Another bridge (or this one) ended a session ticket: `payload` is "NAME ISSUED" as its
    // NOTIFY pg_mcp_session_ended carried it (checked here: any role may send one). The ticket
    // is refused from then on, and a session held for it ends.
    void session_ended(const std::string &payload);

    class Session;
    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
    unsigned short bound_port_ = 0;
};

}  // namespace pg_mcp::bridge
