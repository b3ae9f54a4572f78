#include "http_transport.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <optional>
#include <cstdlib>
#include <random>
#include <regex>

#include "auth.hpp"
#include "json_rpc.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

const char *const kEndpoint = "/mcp";

// A cryptographically random session id: 128 bits as hex (visible ASCII only).
std::string new_session_id() {
    static std::mutex mutex;
    static std::random_device device;
    std::lock_guard<std::mutex> lock(mutex);
    std::string id;
    for (int i = 0; i < 4; i++) {
        char part[9];
        std::snprintf(part, sizeof part, "%08x", static_cast<unsigned>(device()));
        id += part;
    }
    return id;
}

std::string lower(std::string text) {
    for (char &c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

// The host name of a Host header: "[::1]:8080" -> "[::1]", "localhost:8080" -> "localhost".
std::string host_name(const std::string &host) {
    if (!host.empty() && host[0] == '[') {
        size_t end = host.find(']');
        return lower(end == std::string::npos ? host : host.substr(0, end + 1));
    }
    return lower(host.substr(0, host.find(':')));
}

}  // namespace

// A session's output: each response goes to the HTTP request waiting for its id.
// Notifications that belong to no request (tools/list_changed, log messages) go to the
// session's event stream (GET) when the client has one open, and are dropped otherwise;
// progress, which belongs to a request answered with JSON, is dropped.
class SessionOutput : public Output {
  public:
    struct Waiter {
        std::string response;
        bool done = false;
    };

    void send(const json &message) override {
        if (message.contains("method")) {
            std::string method = message.value("method", "");
            if (message.contains("id") || method == "notifications/progress" ||
                method == "notifications/cancelled")
                return;
            std::lock_guard<std::mutex> lock(mutex_);
            if (stream_ == 0) return;
            if (events_.size() >= kMaxEvents) events_.pop_front();
            events_.push_back(message.dump(-1, ' ', false, json::error_handler_t::replace));
            ready_.notify_all();
            return;
        }
        if (!message.contains("id")) return;
        deliver(message["id"].dump(), message.dump(-1, ' ', false, json::error_handler_t::replace));
    }

    // Opens the session's event stream (a newer GET replaces an older one, which ends);
    // returns its number for next_event.
    uint64_t open_stream() {
        std::lock_guard<std::mutex> lock(mutex_);
        stream_ = ++streams_;
        events_.clear();
        ready_.notify_all();
        return stream_;
    }

    // The next event of stream `number`: true with `event` set; true with `event` empty when
    // `wait` passed without one; false when the stream is over (replaced, session ended).
    bool next_event(uint64_t number, std::chrono::milliseconds wait, std::string &event) {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait_for(lock, wait,
                        [&] { return stream_ != number || aborted_ || !events_.empty(); });
        event.clear();
        if (stream_ != number || aborted_) return false;
        if (!events_.empty()) {
            event = std::move(events_.front());
            events_.pop_front();
        }
        return true;
    }

    // Ends the event stream, if one is open (the session ends).
    void close_stream() {
        std::lock_guard<std::mutex> lock(mutex_);
        stream_ = 0;
        events_.clear();
        ready_.notify_all();
    }

    // A large result: built as text from its pieces (no JSON tree), and only when a request
    // still waits for it (otherwise the pieces are read and dropped). A body that broke off
    // delivers nothing here: the server answers the request with an error next.
    void send_streamed(const json &message, BodyStream &body) override {
        std::string key = message["id"].dump();
        if (!waiting(key)) {
            std::string chunk;
            while (body.next(chunk)) {
            }
            return;
        }
        std::string text = streamed_text(message, body);
        if (!text.empty()) deliver(key, std::move(text));
    }

    // Registers a wait for the response to `key`; false when one is already waiting.
    bool expect(const std::string &key, std::shared_ptr<Waiter> waiter) {
        std::lock_guard<std::mutex> lock(mutex_);
        return waiting_.emplace(key, std::move(waiter)).second;
    }

    // Waits for the response (true) or the deadline or an abort (false); the wait ends.
    bool wait(const std::string &key, const std::shared_ptr<Waiter> &waiter,
              std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait_for(lock, timeout, [&] { return waiter->done || aborted_; });
        waiting_.erase(key);
        return waiter->done;
    }

    // Stops waiting for `key` (the request could not be handed over).
    void forget(const std::string &key) {
        std::lock_guard<std::mutex> lock(mutex_);
        waiting_.erase(key);
    }

    // Ends the wait for `key`, if any: with a JSON-RPC error when the session ended under the
    // request; without any response when the client cancelled it (as cancellation asks).
    void abandon(const std::string &key, const std::string &reason, bool respond) {
        json id = json::parse(key, nullptr, false);
        deliver(key, respond
                         ? make_error(id.is_discarded() ? json() : id, error_code::kInternalError,
                                      "Request cancelled: " + reason)
                               .dump()
                         : std::string());
    }

    // The ids (as JSON text) of the requests waiting for a response.
    std::vector<std::string> pending() {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::string> keys;
        for (const auto &entry : waiting_) keys.push_back(entry.first);
        return keys;
    }

    // Ends every wait (the server is stopping and its grace period is over).
    void abort() {
        std::lock_guard<std::mutex> lock(mutex_);
        aborted_ = true;
        ready_.notify_all();
    }

  private:
    bool waiting(const std::string &key) {
        std::lock_guard<std::mutex> lock(mutex_);
        return waiting_.count(key) > 0;
    }

    void deliver(const std::string &key, std::string response) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = waiting_.find(key);
        if (found == waiting_.end() || found->second->done) return;  // nobody waits any more
        found->second->response = std::move(response);
        found->second->done = true;
        ready_.notify_all();
    }

    std::mutex mutex_;
    std::condition_variable ready_;
    std::map<std::string, std::shared_ptr<Waiter>> waiting_;
    bool aborted_ = false;
    static constexpr size_t kMaxEvents = 1000;  // events kept for a slow stream reader
    uint64_t streams_ = 0;                      // streams opened so far
    uint64_t stream_ = 0;                       // the open one (0: none)
    std::deque<std::string> events_;
};

class HttpServer::Session {
  public:
    // token_hash: the SHA-256 of the bearer token that opened it (empty without tokens).
    Session(std::string session_id, Backend &backend, const ServerOptions &options,
            const Logger &logger, const std::string &token_hash = {},
            const std::string &principal = {})
        : id(std::move(session_id)),
          token_hash(token_hash),
          principal(principal),
          server(backend, output, session_options(options, id + "/", token_hash, principal),
                 logger) {}

    static ServerOptions session_options(ServerOptions options, const std::string &prefix,
                                         const std::string &token_hash,
                                         const std::string &principal) {
        options.backend_key_prefix = prefix;
        options.principal_token = token_hash;
        options.principal = principal;
        return options;
    }

    // Ends the session: everything it has running is cancelled (the queries too), waiting
    // HTTP requests get a "cancelled" error, and the protocol state is shut down. The object
    // must then stay alive until server.idle() (backend replies may still arrive).
    void end(const std::string &reason) {
        output.close_stream();
        server.cancel_all();
        for (const std::string &key : output.pending()) output.abandon(key, reason, true);
        server.shutdown();
    }

    std::string id;
    std::string token_hash;
    std::string principal;  // of the token (with --auth token), for the per-principal caps
    SessionOutput output;   // before server, which holds a reference to it
    McpServer server;
    std::atomic<Clock::rep> last_used{Clock::now().time_since_epoch().count()};
};

struct HttpServer::Impl {
    Backend &backend;
    ServerOptions server_options;
    const Logger &logger;
    HttpOptions options;
    ReadinessFn readiness;

    asio::io_context io;
    tcp::acceptor acceptor{io};
    std::atomic<bool> stopping{false};

    std::mutex mutex;  // sessions, connections
    std::map<std::string, std::shared_ptr<Session>> sessions;
    std::map<std::string, size_t> calls_by_principal;  // requests in progress, by principal
    size_t opening_total = 0;                          // initializes in progress
    std::map<std::string, size_t> opening_by_principal;
    // An open client socket: what it is doing, since when, and the deadline of that.
    struct Connection {
        // Waiting: for a request's header; Body: for its body; Busy: serving it; Writing: a
        // response (or an event) is being written; Streaming: an event stream between events.
        enum class Phase { Waiting, Body, Busy, Writing, Streaming } phase = Phase::Waiting;
        Clock::time_point since = Clock::now();
        Clock::time_point deadline = Clock::time_point::max();
        std::string address;
        uint64_t requests = 0;  // served on it so far
        bool closing = false;   // shut down (deadline or eviction); its thread is ending
    };
    std::map<int, Connection> connections;  // by descriptor
    std::atomic<uint64_t> connections_timed_out{0}, connections_evicted{0};
    std::atomic<uint64_t> stateless_ids{0};  // names of the one-request sessions (2026-07-28)
    std::map<unsigned, uint64_t> responses_by_status;  // guarded by mutex
    // Ended sessions, kept until their last backend reply has come and gone.
    std::vector<std::shared_ptr<Session>> draining;
    std::condition_variable connections_done;
    std::atomic<int> in_flight{0};
    int streams = 0;  // open GET event streams (guarded by mutex)
    TokenCache tokens{std::chrono::seconds(5)};
    TokenCache refused_tokens{std::chrono::seconds(2)};
    std::atomic<uint64_t> auth_requests{0};

    Impl(Backend &b, ServerOptions so, const Logger &l, HttpOptions o, ReadinessFn r)
        : backend(b),
          server_options(std::move(so)),
          logger(l),
          options(std::move(o)),
          readiness(std::move(r)) {}

    using Request = http::request<http::string_body>;
    using Response = http::response<http::string_body>;

    Response reply(const Request &request, http::status status, std::string body = {},
                   const char *content_type = "application/json") {
        Response response{status, request.version()};
        response.set(http::field::server, "pg_mcp_bridge");
        if (!body.empty()) response.set(http::field::content_type, content_type);
        response.keep_alive(request.keep_alive());
        response.body() = std::move(body);
        response.prepare_payload();
        return response;
    }

    // Why a request's body framing is refused (RFC 9112 6.1, 6.3): Transfer-Encoding other than
    // exactly "chunked", or together with Content-Length. Empty when acceptable.
    static std::string framing_problem(const Request &request) {
        auto coding = request.find(http::field::transfer_encoding);
        if (coding == request.end()) return {};
        if (!beast::iequals(coding->value(), "chunked"))
            return "Bad Request: Transfer-Encoding \"" + std::string(coding->value()) +
                   "\" is not supported (only chunked)";
        if (request.find(http::field::content_length) != request.end())
            return "Bad Request: a request may not carry both Transfer-Encoding and "
                   "Content-Length";
        return {};
    }

    // An HTTP error whose body is a JSON-RPC error without id (as the transport allows).
    Response rpc_error(const Request &request, http::status status, int code,
                       const std::string &message) {
        return reply(request, status, make_error(nullptr, code, message).dump());
    }

    // 429 with Retry-After: the principal is over one of its caps (others are not affected).
    Response too_many(const Request &request, const std::string &message) {
        Response response =
            rpc_error(request, http::status::too_many_requests, error_code::kServerBusy, message);
        response.set(http::field::retry_after, "1");
        return response;
    }

    // Open sessions of a principal (under `mutex`).
    size_t sessions_of(const std::string &principal) const {
        size_t count = 0;
        for (const auto &entry : sessions) count += entry.second->principal == principal;
        return count;
    }

    // An initialize in progress, counted against the session caps (taken under `mutex`; given
    // back, under it, when the session is open or the initialize has failed).
    struct OpeningSession {
        OpeningSession(Impl &impl, std::string principal)
            : impl(impl), principal(std::move(principal)) {
            impl.opening_total++;
            impl.opening_by_principal[this->principal]++;
        }
        ~OpeningSession() {
            std::lock_guard<std::mutex> lock(impl.mutex);
            impl.opening_total--;
            auto found = impl.opening_by_principal.find(principal);
            if (found != impl.opening_by_principal.end() && --found->second == 0)
                impl.opening_by_principal.erase(found);
        }
        Impl &impl;
        std::string principal;
    };

    // A request in progress for a principal (none without tokens): taken only below
    // options.max_calls_per_principal, given back when the request is answered.
    struct CallSlot {
        CallSlot(Impl &impl, std::string principal) : impl(impl), principal(std::move(principal)) {
            if (this->principal.empty()) return;
            std::lock_guard<std::mutex> lock(impl.mutex);
            size_t &running = impl.calls_by_principal[this->principal];
            taken = running < impl.options.max_calls_per_principal;
            if (taken) running++;
        }
        ~CallSlot() {
            if (principal.empty()) return;
            std::lock_guard<std::mutex> lock(impl.mutex);
            auto found = impl.calls_by_principal.find(principal);
            if (found == impl.calls_by_principal.end()) return;
            if (taken) found->second--;
            if (found->second == 0) impl.calls_by_principal.erase(found);
        }
        Impl &impl;
        std::string principal;
        bool taken = true;
    };

    // 401 with the Bearer challenge (RFC 6750): `error` is set when a token was presented.
    Response unauthorized(const Request &request, bool presented, const std::string &message) {
        Response response =
            rpc_error(request, http::status::unauthorized, error_code::kUnauthorized, message);
        response.set(http::field::www_authenticate,
                     presented ? "Bearer realm=\"pg_mcp\", error=\"invalid_token\", "
                                 "error_description=\"unknown, expired or revoked token\""
                               : "Bearer realm=\"pg_mcp\"");
        return response;
    }

    // With --auth token: the SHA-256 of the request's bearer token once the database knows it
    // (cached a few seconds), or the response refusing the request. The token itself is never
    // logged, kept or sent anywhere.
    std::optional<Response> authenticate(const Request &request, std::string &token_hash,
                                         std::string &principal) {
        auto header = request.find(http::field::authorization);
        if (header == request.end())
            return unauthorized(request, false,
                                "Unauthorized: send \"Authorization: Bearer <token>\" with a "
                                "token from the database administrator (mcp.create_token)");
        std::optional<std::string> token = bearer_token(std::string(header->value()));
        if (!token)
            return unauthorized(request, true,
                                "Unauthorized: the Authorization header is not \"Bearer "
                                "<token>\"");
        // pg_mcp's tokens are "pgmcp_" and 43 base64url characters: anything else is refused
        // without asking the database.
        static const std::regex kTokenShape("pgmcp_[A-Za-z0-9_-]{43}");
        if (!std::regex_match(*token, kTokenShape))
            return unauthorized(request, true,
                                "Unauthorized: the bearer token is unknown, expired or revoked");
        token_hash = sha256_hex(*token);
        if (std::optional<std::string> known = tokens.find(token_hash)) {
            principal = *known;
            return std::nullopt;
        }
        // A token just refused is refused again for a moment without a database round trip.
        if (refused_tokens.find(token_hash))
            return unauthorized(request, true,
                                "Unauthorized: the bearer token is unknown, expired or revoked");
        auto result = std::make_shared<std::promise<BackendReply>>();
        std::future<BackendReply> answer = result->get_future();
        std::string key = "auth/" + std::to_string(++auth_requests);
        backend.authenticate(key, token_hash,
                             [result](BackendReply reply) { result->set_value(std::move(reply)); });
        // A token check waits a few seconds at most (a flood of unknown tokens cannot hold
        // connections for the request timeout).
        if (answer.wait_for(std::min(options.request_timeout, std::chrono::milliseconds(5000))) !=
            std::future_status::ready) {
            backend.cancel(key);
            return rpc_error(request, http::status::service_unavailable,
                             error_code::kDatabaseUnavailable,
                             "Service Unavailable: the token could not be checked in time");
        }
        BackendReply reply = answer.get();
        if (reply.ok && reply.value.is_string()) {
            principal = reply.value.get<std::string>();
            tokens.remember(token_hash, principal);
            return std::nullopt;
        }
        if (reply.error_code == error_code::kUnauthorized) {
            refused_tokens.remember(token_hash, "");
            logger.log(LogLevel::Warning,
                       "refused a request with an unknown, expired or revoked "
                       "bearer token");
            return unauthorized(request, true,
                                "Unauthorized: the bearer token is unknown, expired or revoked");
        }
        logger.log(LogLevel::Error, "checking a bearer token failed: " + reply.error_message);
        // The reason (a missing GRANT, say) is for the operator's log, not for the client.
        if (reply.error_code != error_code::kDatabaseUnavailable)
            return rpc_error(request, http::status::internal_server_error,
                             error_code::kInternalError,
                             "Internal Server Error: the bearer token could not be checked "
                             "(the bridge's log says why)");
        Response response =
            rpc_error(request, http::status::service_unavailable, error_code::kDatabaseUnavailable,
                      "Service Unavailable: the bearer token could not be "
                      "checked; retry shortly");
        response.set(http::field::retry_after, "1");
        return response;
    }

    bool host_allowed(const Request &request) {
        auto host = request.find(http::field::host);
        if (host == request.end()) return request.version() < 11;  // HTTP/1.1 requires Host
        std::string name = host_name(std::string(host->value()));
        static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
        for (const char *allowed : loopback)
            if (name == allowed) return true;
        if (name == lower(options.address)) return true;
        for (const auto &allowed : options.allowed_hosts)
            if (name == lower(allowed)) return true;
        return false;
    }

    bool origin_allowed(const Request &request) {
        auto origin = request.find(http::field::origin);
        if (origin == request.end()) return true;
        std::string value(origin->value());
        for (const auto &allowed : options.allowed_origins)
            if (value == allowed) return true;
        return false;
    }

    std::shared_ptr<Session> find_session(const std::string &id) {
        std::lock_guard<std::mutex> lock(mutex);
        auto found = sessions.find(id);
        return found == sessions.end() ? nullptr : found->second;
    }

    // Ends a session already removed from `sessions` (outside the lock: ending cancels
    // queries), and keeps it until it is idle.
    void retire(const std::shared_ptr<Session> &session, const std::string &reason) {
        session->end(reason);
        std::lock_guard<std::mutex> lock(mutex);
        draining.push_back(session);
    }

    // Retires a one-request session when the request is done, whichever way it ends.
    struct RetireAfter {
        RetireAfter(Impl &impl, std::shared_ptr<Session> session)
            : impl_(impl), session_(std::move(session)) {}
        ~RetireAfter() {
            try {
                impl_.retire(session_, "request done");
                impl_.reap();
            } catch (const std::exception &error) {
                impl_.logger.log(
                    LogLevel::Error,
                    std::string("ending a one-request session failed: ") + error.what());
            }
        }
        Impl &impl_;
        std::shared_ptr<Session> session_;
    };

    // The connection on `fd` moves to `phase` (its deadline follows from the options). False
    // when the connection is being closed (evicted or past a deadline): stop serving it.
    bool set_phase(int fd, Connection::Phase phase, bool first_request = false) {
        using Phase = Connection::Phase;
        std::lock_guard<std::mutex> lock(mutex);
        auto found = connections.find(fd);
        if (found == connections.end()) return false;
        Connection &c = found->second;
        if (c.closing) return false;
        if (phase == Phase::Busy) c.requests++;
        c.phase = phase;
        c.since = Clock::now();
        switch (phase) {
            case Phase::Waiting:
                c.deadline =
                    c.since + (first_request ? options.header_timeout : options.idle_timeout);
                break;
            case Phase::Body:
                c.deadline = c.since + options.body_timeout;
                break;
            case Phase::Writing:
                // Asio's blocking write waits without limit for a client that stops reading:
                // the watchdog bounds the whole write.
                c.deadline = c.since + options.write_timeout;
                break;
            case Phase::Busy:
            case Phase::Streaming:
                c.deadline = Clock::time_point::max();
                break;
        }
        return true;
    }

    // The address a connection counts against: an IPv4 address, or an IPv6 /64 (one client
    // can have a whole one).
    static std::string address_key(const asio::ip::address &address) {
        if (address.is_v6() && !address.to_v6().is_v4_mapped()) {
            auto bytes = address.to_v6().to_bytes();
            char key[48];
            std::snprintf(key, sizeof key, "%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", bytes[0],
                          bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]);
            return key;
        }
        if (address.is_v6())
            return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
        return address.to_string();
    }

    // Shuts `fd` down: its thread's blocked read or write returns and the thread ends (it takes
    // the descriptor out of `connections` before closing it). Under `mutex`.
    void shut(int fd, Connection &c) {
        if (c.closing) return;
        c.closing = true;
        ::shutdown(fd, SHUT_RDWR);
    }

    // Closes the connections past their deadline (the watchdog's round).
    void close_expired() {
        auto now = Clock::now();
        std::lock_guard<std::mutex> lock(mutex);
        for (auto &[fd, c] : connections)
            if (!c.closing && now >= c.deadline) {
                shut(fd, c);
                connections_timed_out++;
            }
    }

    // Room for a new connection from `address` (under `mutex`): within the limits, or by closing
    // one that is not serving a request — among all, or among that address's when it is the
    // address that is at its limit. In order: waiting for a request before an event stream;
    // from the address holding the most connections (a flood from one client pays first); one
    // that never sent a whole request before one known to talk; the longest waiting. False when
    // every connection is serving a request.
    bool make_room(const std::string &address) {
        using Phase = Connection::Phase;
        size_t open = 0;
        std::map<std::string, long> per_address;
        for (const auto &[fd, c] : connections)
            if (!c.closing) {
                open++;
                per_address[c.address]++;
            }
        bool address_full =
            per_address[address] >= static_cast<long>(options.max_connections_per_address);
        if (open < options.max_connections && !address_full) return true;
        auto rank = [&](const Connection &c) {
            return std::make_tuple(c.phase == Phase::Waiting ? 0 : 1, -per_address[c.address],
                                   c.requests == 0 ? 0 : 1, c.since);
        };
        Connection *victim = nullptr;
        int victim_fd = -1;
        for (auto &[fd, c] : connections) {
            if (c.closing || (c.phase != Phase::Waiting && c.phase != Phase::Streaming)) continue;
            if (address_full && c.address != address) continue;
            if (victim == nullptr || rank(c) < rank(*victim)) {
                victim = &c;
                victim_fd = fd;
            }
        }
        if (victim == nullptr) return false;
        shut(victim_fd, *victim);
        connections_evicted++;
        return true;
    }

    void reap() {
        std::lock_guard<std::mutex> lock(mutex);
        draining.erase(std::remove_if(draining.begin(), draining.end(),
                                      [](const std::shared_ptr<Session> &session) {
                                          return session->server.idle();
                                      }),
                       draining.end());
    }

    // Ends sessions unused for longer than options.session_idle.
    void expire_sessions() {
        auto limit = Clock::now() - options.session_idle;
        std::vector<std::shared_ptr<Session>> expired;
        {
            std::lock_guard<std::mutex> lock(mutex);
            for (auto it = sessions.begin(); it != sessions.end();) {
                if (Clock::time_point(Clock::duration(it->second->last_used.load())) < limit &&
                    it->second->server.in_flight() == 0) {
                    expired.push_back(it->second);
                    it = sessions.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto &session : expired) retire(session, "session expired");
    }

    Response handle(const Request &request) {
        std::string target(request.target());
        std::string path = target.substr(0, target.find('?'));
        if (!host_allowed(request))
            return rpc_error(request, http::status::forbidden, error_code::kInvalidRequest,
                             "Forbidden: Host header not allowed (add it with --allowed-host)");
        if (!origin_allowed(request))
            return rpc_error(request, http::status::forbidden, error_code::kInvalidRequest,
                             "Forbidden: Origin not allowed (add it with --allowed-origin)");
        if (path == "/healthz") return reply(request, http::status::ok, "ok\n", "text/plain");
        if (path == "/metrics")
            return reply(request, http::status::ok, metrics_text(),
                         "text/plain; version=0.0.4; charset=utf-8");
        if (path == "/readyz") {
            std::string problem = readiness();
            return problem.empty() ? reply(request, http::status::ok, "ready\n", "text/plain")
                                   : reply(request, http::status::service_unavailable,
                                           "not ready: " + problem + "\n", "text/plain");
        }
        if (path != kEndpoint)
            return reply(request, http::status::not_found, "not found\n", "text/plain");
        switch (request.method()) {
            case http::verb::options: {
                // CORS preflight of an allowed browser origin (others got 403 above).
                Response response = reply(request, http::status::no_content);
                response.set(http::field::access_control_allow_methods, "GET, POST, DELETE");
                response.set(http::field::access_control_allow_headers,
                             "Content-Type, Accept, Authorization, MCP-Session-Id, "
                             "MCP-Protocol-Version, Last-Event-ID");
                response.set(http::field::access_control_max_age, "600");
                return response;
            }
            case http::verb::post:
                return post(request);
            case http::verb::delete_: {
                std::string token_hash, principal;
                if (options.require_token)
                    if (auto refused = authenticate(request, token_hash, principal))
                        return *refused;
                auto header = request.find("MCP-Session-Id");
                if (header == request.end())
                    return rpc_error(request, http::status::bad_request,
                                     error_code::kInvalidRequest,
                                     "Bad Request: DELETE needs an MCP-Session-Id header");
                std::shared_ptr<Session> session;
                {
                    std::lock_guard<std::mutex> lock(mutex);
                    auto found = sessions.find(std::string(header->value()));
                    if (found != sessions.end() && found->second->token_hash == token_hash) {
                        session = found->second;
                        sessions.erase(found);
                    }
                }
                if (session == nullptr)
                    return rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                                     "Session not found");
                retire(session, "session deleted by the client");
                return reply(request, http::status::no_content);
            }
            default: {
                Response response = rpc_error(request, http::status::method_not_allowed,
                                              error_code::kInvalidRequest,
                                              "Method not allowed: use POST, GET or DELETE");
                response.set(http::field::allow, "GET, POST, DELETE, OPTIONS");
                return response;
            }
        }
    }

    Response post(const Request &request) {
        auto accept = request.find(http::field::accept);
        std::string accepted = accept == request.end() ? "" : lower(std::string(accept->value()));
        if (accepted.find("application/json") == std::string::npos ||
            accepted.find("text/event-stream") == std::string::npos)
            return rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                             "Not Acceptable: Accept must list application/json and "
                             "text/event-stream");
        auto content_type = request.find(http::field::content_type);
        if (content_type == request.end() ||
            lower(std::string(content_type->value())).rfind("application/json", 0) != 0)
            return rpc_error(request, http::status::unsupported_media_type,
                             error_code::kInvalidRequest,
                             "Unsupported Media Type: the body must be application/json");
        // A body that cannot be parsed whole is answered with its id when that can be read.
        if (nests_too_deep(request.body()))
            return reply(request, http::status::bad_request,
                         make_error(recover_request_id(request.body(), request.body()),
                                    error_code::kInvalidRequest,
                                    "Invalid Request: the message nests more than 128 levels deep")
                             .dump());
        json message = json::parse(request.body(), nullptr, false);
        if (message.is_discarded())
            return reply(request, http::status::bad_request,
                         make_error(recover_request_id(request.body(), request.body()),
                                    error_code::kParseError,
                                    "Parse error: the body is not valid JSON (invalid UTF-8 or "
                                    "escape, a number out of range, or a syntax error)")
                             .dump());
        if (!message.is_object())
            return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                             "Invalid Request: the body must be one JSON-RPC message (no batches)");
        bool has_method = message.contains("method") && message["method"].is_string();
        bool has_id = message.contains("id");
        std::string method = has_method ? message["method"].get<std::string>() : "";

        std::string version;
        auto version_header = request.find("MCP-Protocol-Version");
        if (version_header != request.end()) {
            version = std::string(version_header->value());
            if (!is_supported_version(version))
                return rpc_error(
                    request, http::status::bad_request, error_code::kInvalidRequest,
                    "Bad Request: unsupported MCP-Protocol-Version \"" + version + "\"");
        }

        if (method == "subscriptions/listen")
            return rpc_error(request, http::status::bad_request, error_code::kMethodNotFound,
                             "subscriptions/listen is not served over HTTP yet; use stdio");
        std::string token_hash, principal;
        if (options.require_token)
            if (auto refused = authenticate(request, token_hash, principal)) return *refused;
        std::shared_ptr<Session> session;
        bool created = false;
        std::unique_ptr<RetireAfter> one_request;
        std::unique_ptr<OpeningSession> opening;  // counted against the caps until it is open
        auto session_header = request.find("MCP-Session-Id");
        if (session_header != request.end()) {
            session = find_session(std::string(session_header->value()));
            // A session answers only the token that opened it (others cannot even see it).
            if (session != nullptr && session->token_hash != token_hash) session = nullptr;
            if (session == nullptr)
                return rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                                 "Session not found: start a new one with initialize");
        } else if (method == "initialize") {
            {
                std::lock_guard<std::mutex> lock(mutex);
                if (sessions.size() + opening_total >= options.max_sessions)
                    return rpc_error(request, http::status::service_unavailable,
                                     error_code::kInvalidRequest,
                                     "Too many open sessions; retry later (end unused ones with "
                                     "DELETE)");
                // One principal cannot take the sessions every other principal shares.
                if (options.require_token &&
                    sessions_of(principal) + opening_by_principal[principal] >=
                        options.max_sessions_per_principal)
                    return too_many(request,
                                    "Too Many Requests: principal \"" + principal + "\" has " +
                                        std::to_string(options.max_sessions_per_principal) +
                                        " open sessions (--max-sessions-per-principal); end "
                                        "unused ones with DELETE");
                // Concurrent initializes count too, until each is open or has failed.
                opening = std::make_unique<OpeningSession>(*this, principal);
            }
            session = std::make_shared<Session>(new_session_id(), backend, server_options, logger,
                                                token_hash, principal);
            created = true;
        } else if (version == kModernVersion) {
            // 2026-07-28 has no protocol-level sessions: the request gets a server of its own
            // (kept until its last backend reply, like an ended session).
            session =
                std::make_shared<Session>("stateless-" + std::to_string(++stateless_ids), backend,
                                          server_options, logger, token_hash, principal);
            one_request = std::make_unique<RetireAfter>(*this, session);
        } else {
            return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                             "Bad Request: MCP-Session-Id header required (initialize first)");
        }
        session->last_used = Clock::now().time_since_epoch().count();

        if (!has_method || !has_id) {  // a notification or a response: accepted, no body
            if (!has_method && !message.contains("result") && !message.contains("error"))
                return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                                 "Invalid Request: not a JSON-RPC request, notification or "
                                 "response");
            session->server.handle_line(request.body());
            // A cancelled request gets no response from the server; its POST, if the client
            // still reads it, gets a "cancelled" error.
            if (method == "notifications/cancelled" && message.contains("params") &&
                message["params"].is_object() && message["params"].contains("requestId"))
                session->output.abandon(message["params"]["requestId"].dump(),
                                        "cancelled by the client", false);
            return reply(request, http::status::accepted);
        }
        const json id = message["id"];
        if (!(id.is_string() || id.is_number_integer()))
            return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                             "Invalid Request: id must be a string or an integer");
        const std::string &line = request.body();
        std::string key = id.dump();
        // Nor the calls: beyond its share, a principal's requests are refused (429), not queued
        // in front of everyone else's.
        CallSlot slot(*this, options.require_token ? principal : std::string());
        if (!slot.taken)
            return too_many(request, "Too Many Requests: principal \"" + principal + "\" has " +
                                         std::to_string(options.max_calls_per_principal) +
                                         " requests in progress (--max-calls-per-principal); "
                                         "retry when one finishes");
        auto waiter = std::make_shared<SessionOutput::Waiter>();
        if (!session->output.expect(key, waiter))
            return rpc_error(
                request, http::status::conflict, error_code::kInvalidRequest,
                "Conflict: a request with id " + key + " is already in progress in this session");
        try {
            session->server.handle_line(line);
        } catch (...) {
            session->output.forget(key);
            throw;
        }
        if (!session->output.wait(key, waiter, options.request_timeout)) {
            // Given up: the work is cancelled too, so that it frees its connection and id.
            json cancel = {{"jsonrpc", "2.0"},
                           {"method", "notifications/cancelled"},
                           {"params", {{"requestId", message["id"]}, {"reason", "timed out"}}}};
            session->server.handle_line(cancel.dump());
            return rpc_error(request, http::status::gateway_timeout, error_code::kInternalError,
                             "No response within the bridge's request timeout");
        }
        if (waiter->response.empty()) {
            // Cancelled by the client: an event stream that ends without any message.
            Response response{http::status::ok, request.version()};
            response.set(http::field::server, "pg_mcp_bridge");
            response.set(http::field::content_type, "text/event-stream");
            response.set(http::field::cache_control, "no-cache");
            response.keep_alive(request.keep_alive());
            response.prepare_payload();
            return response;
        }
        // The database refused the token during the request (revoked since it was cached).
        auto unauthorized_answer = [](const std::string &text) {
            if (text.rfind("{\"error\":", 0) != 0) return false;
            json answer = json::parse(text, nullptr, false);
            return answer.is_object() && answer["error"].is_object() &&
                   answer["error"].value("code", 0) == error_code::kUnauthorized;
        };
        if (options.require_token && unauthorized_answer(waiter->response)) {
            tokens.forget(token_hash);
            return unauthorized(request, true,
                                "Unauthorized: the bearer token is unknown, expired or revoked");
        }
        Response response = reply(request, http::status::ok, std::move(waiter->response));
        if (created) {
            json result = json::parse(response.body(), nullptr, false);
            if (result.is_object() && result.contains("result")) {
                std::lock_guard<std::mutex> lock(mutex);
                sessions.emplace(session->id, session);
                response.set("MCP-Session-Id", session->id);
            }
        }
        return response;
    }

    // GET /mcp: the session's event stream (text/event-stream), for notifications that belong
    // to no request. Returns the session to stream for, or nullptr with `refusal` set.
    std::shared_ptr<Session> open_event_stream(const Request &request, Response &refusal) {
        auto accept = request.find(http::field::accept);
        if (accept == request.end() ||
            lower(std::string(accept->value())).find("text/event-stream") == std::string::npos) {
            refusal = rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                                "Not Acceptable: a GET stream needs Accept: text/event-stream");
            return nullptr;
        }
        std::string token_hash, principal;
        if (options.require_token)
            if (auto refused = authenticate(request, token_hash, principal)) {
                refusal = std::move(*refused);
                return nullptr;
            }
        auto header = request.find("MCP-Session-Id");
        if (header == request.end()) {
            refusal =
                rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                          "Bad Request: GET needs an MCP-Session-Id header (initialize first)");
            return nullptr;
        }
        std::shared_ptr<Session> session = find_session(std::string(header->value()));
        if (session == nullptr || session->token_hash != token_hash) {
            refusal = rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                                "Session not found: start a new one with initialize");
            return nullptr;
        }
        return session;
    }

    // Writes the stream's events as they come, with a comment every 15 s (which also finds a
    // client that has gone), until the session ends, a newer GET replaces the stream, the
    // server stops, or the client goes away.
    void stream_events(tcp::socket &socket, const Request &request,
                       const std::shared_ptr<Session> &session) {
        http::response<http::empty_body> head{http::status::ok, request.version()};
        head.set(http::field::server, "pg_mcp_bridge");
        head.set(http::field::content_type, "text/event-stream");
        head.set(http::field::cache_control, "no-cache");
        auto origin = request.find(http::field::origin);
        if (origin != request.end()) {
            head.set(http::field::access_control_allow_origin, origin->value());
            head.set(http::field::vary, "Origin");
        }
        head.chunked(true);
        head.keep_alive(false);
        http::response_serializer<http::empty_body> serializer{head};
        beast::error_code error;
        int fd = socket.native_handle();
        uint64_t number = session->output.open_stream();
        {
            std::lock_guard<std::mutex> lock(mutex);
            responses_by_status[200]++;
            streams++;
        }
        set_phase(fd, Connection::Phase::Writing);
        http::write_header(socket, serializer, error);
        if (!set_phase(fd, Connection::Phase::Streaming)) error = asio::error::operation_aborted;
        auto idle_since = Clock::now();
        while (!error && !stopping) {
            std::string event;
            if (!session->output.next_event(number, std::chrono::milliseconds(500), event)) break;
            std::string text;
            if (!event.empty()) {
                text = "event: message\ndata: " + event + "\n\n";
            } else if (Clock::now() - idle_since >= std::chrono::seconds(15)) {
                text = ": keep-alive\n\n";
            } else {
                continue;
            }
            idle_since = Clock::now();
            // Events keep the session in use; keep-alive comments do not (an idle session with
            // an open stream still expires, and its stream ends).
            if (!event.empty()) session->last_used = Clock::now().time_since_epoch().count();
            if (!set_phase(fd, Connection::Phase::Writing)) break;
            asio::write(socket, http::make_chunk(asio::buffer(text)), error);
            if (!set_phase(fd, Connection::Phase::Streaming)) break;
        }
        if (!error) {
            set_phase(fd, Connection::Phase::Writing);
            asio::write(socket, http::make_chunk_last(), error);
        }
        std::lock_guard<std::mutex> lock(mutex);
        streams--;
    }

    std::string metrics_text() {
        std::string out = options.metrics ? options.metrics() : std::string();
        std::lock_guard<std::mutex> lock(mutex);
        out += "# HELP pg_mcp_bridge_http_responses_total HTTP responses, by status code.\n";
        out += "# TYPE pg_mcp_bridge_http_responses_total counter\n";
        for (const auto &entry : responses_by_status)
            out += "pg_mcp_bridge_http_responses_total{code=\"" + std::to_string(entry.first) +
                   "\"} " + std::to_string(entry.second) + "\n";
        out += "# HELP pg_mcp_bridge_http_sessions Open MCP sessions.\n";
        out += "# TYPE pg_mcp_bridge_http_sessions gauge\n";
        out += "pg_mcp_bridge_http_sessions " + std::to_string(sessions.size()) + "\n";
        out += "# HELP pg_mcp_bridge_http_connections Open client connections.\n";
        out += "# TYPE pg_mcp_bridge_http_connections gauge\n";
        out += "pg_mcp_bridge_http_connections " + std::to_string(connections.size()) + "\n";
        out +=
            "# HELP pg_mcp_bridge_http_connections_closed_total Client connections the bridge "
            "closed: past a deadline (header, idle, body), or evicted as the idlest to admit "
            "another.\n";
        out += "# TYPE pg_mcp_bridge_http_connections_closed_total counter\n";
        out += "pg_mcp_bridge_http_connections_closed_total{reason=\"timeout\"} " +
               std::to_string(connections_timed_out.load()) + "\n";
        out += "pg_mcp_bridge_http_connections_closed_total{reason=\"evicted\"} " +
               std::to_string(connections_evicted.load()) + "\n";
        out += "# HELP pg_mcp_bridge_http_event_streams Open GET event streams.\n";
        out += "# TYPE pg_mcp_bridge_http_event_streams gauge\n";
        out += "pg_mcp_bridge_http_event_streams " + std::to_string(streams) + "\n";
        return out;
    }

    void serve(tcp::socket &socket) {
        beast::flat_buffer buffer;
        beast::error_code error;
        int fd = socket.native_handle();
        // Writes give up after write_timeout (a client that stops reading cannot hold a thread).
        timeval send_timeout{};
        send_timeout.tv_sec = static_cast<time_t>(options.write_timeout.count() / 1000);
        send_timeout.tv_usec =
            static_cast<suseconds_t>((options.write_timeout.count() % 1000) * 1000);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
        for (bool first = true;; first = false) {
            if (!set_phase(fd, Connection::Phase::Waiting, first)) break;
            http::request_parser<http::string_body> parser;
            parser.body_limit(options.max_body_bytes);
            http::read_header(socket, buffer, parser, error);
            if (!error) set_phase(fd, Connection::Phase::Body);
            if (!error) {
                // A body framed two ways, or by a coding other than chunked, is refused:
                // framing it by Content-Length would let a proxy in front see other requests.
                std::string problem = framing_problem(parser.get());
                if (!problem.empty()) {
                    Response response = rpc_error(parser.get(), http::status::bad_request,
                                                  error_code::kInvalidRequest, problem);
                    response.keep_alive(false);
                    set_phase(fd, Connection::Phase::Writing);
                    http::write(socket, response, error);
                    break;
                }
                http::read(socket, buffer, parser, error);
            }
            if (error == http::error::body_limit) {
                Request request = parser.release();
                Response response = rpc_error(
                    request, http::status::payload_too_large, error_code::kInvalidRequest,
                    "Payload Too Large: the body exceeds " +
                        std::to_string(options.max_body_bytes) + " bytes (--max-message-bytes)");
                response.keep_alive(false);
                set_phase(fd, Connection::Phase::Writing);
                http::write(socket, response, error);
                // Read and drop the rest of the body (at most 4 times the limit, for at most
                // 2 s) before closing, so that a client still sending gets the 413 instead of a
                // broken pipe.
                socket.shutdown(tcp::socket::shutdown_send, error);
                auto deadline = Clock::now() + std::chrono::seconds(2);
                char sink[65536];
                size_t drained = 0;
                while (drained < 4 * options.max_body_bytes && Clock::now() < deadline) {
                    int left =
                        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             deadline - Clock::now())
                                             .count());
                    pollfd fd{socket.native_handle(), POLLIN, 0};
                    if (::poll(&fd, 1, std::max(left, 1)) <= 0) break;
                    ssize_t n = ::recv(socket.native_handle(), sink, sizeof sink, 0);
                    if (n <= 0) break;
                    drained += static_cast<size_t>(n);
                }
                break;
            }
            // Closed meanwhile (evicted as the header arrived): the request is not served.
            if (!error && !set_phase(fd, Connection::Phase::Busy)) break;
            if (error) {
                // A request that is not HTTP gets 400 before the connection closes (a client
                // that closed needs nothing).
                if (&error.category() ==
                        &http::make_error_code(http::error::bad_target).category() &&
                    error != http::error::end_of_stream && error != http::error::partial_message) {
                    Response response = rpc_error(
                        parser.get(), http::status::bad_request, error_code::kInvalidRequest,
                        "Bad Request: malformed HTTP (" + error.message() + ")");
                    response.keep_alive(false);
                    set_phase(fd, Connection::Phase::Writing);
                    http::write(socket, response, error);
                }
                break;
            }
            Request request = parser.release();
            std::string target(request.target());
            bool event_stream = request.method() == http::verb::get &&
                                target.substr(0, target.find('?')) == kEndpoint &&
                                host_allowed(request) && origin_allowed(request);
            std::optional<Response> refusal;
            if (event_stream) {
                std::shared_ptr<Session> session;
                Response refused;
                try {
                    session = open_event_stream(request, refused);
                } catch (const std::exception &failure) {
                    logger.log(
                        LogLevel::Error,
                        std::string("internal error opening an event stream: ") + failure.what());
                    refused = rpc_error(request, http::status::internal_server_error,
                                        error_code::kInternalError, "Internal error");
                }
                if (session != nullptr) {
                    stream_events(socket, request, session);
                    break;  // the stream ends the connection
                }
                refusal = std::move(refused);
            }
            in_flight++;
            Response response;
            try {
                response = refusal ? std::move(*refusal) : handle(request);
            } catch (const std::exception &failure) {
                logger.log(
                    LogLevel::Error,
                    std::string("internal error handling an HTTP request: ") + failure.what());
                response = rpc_error(request, http::status::internal_server_error,
                                     error_code::kInternalError, "Internal error");
            }
            if (stopping) response.keep_alive(false);
            auto origin = request.find(http::field::origin);
            if (origin != request.end() && origin_allowed(request)) {
                // An allowed browser origin may read the answer and the session header.
                response.set(http::field::access_control_allow_origin, origin->value());
                response.set(http::field::access_control_expose_headers,
                             "MCP-Session-Id, WWW-Authenticate");
                response.set(http::field::vary, "Origin");
            }
            {
                std::lock_guard<std::mutex> lock(mutex);
                responses_by_status[response.result_int()]++;
            }
            set_phase(fd, Connection::Phase::Writing);
            http::write(socket, response, error);
            in_flight--;
            if (error || !response.keep_alive()) break;
        }
        socket.shutdown(tcp::socket::shutdown_both, error);
    }
};

HttpServer::HttpServer(Backend &backend, ServerOptions server_options, const Logger &logger,
                       HttpOptions options, ReadinessFn readiness)
    : impl_(std::make_unique<Impl>(backend, std::move(server_options), logger, std::move(options),
                                   std::move(readiness))) {}

HttpServer::~HttpServer() = default;

bool HttpServer::listen(std::string &error) {
    beast::error_code code;
    auto address = asio::ip::make_address(impl_->options.address, code);
    if (code) {
        error = "invalid address \"" + impl_->options.address + "\": " + code.message();
        return false;
    }
    tcp::endpoint endpoint(address, impl_->options.port);
    impl_->acceptor.open(endpoint.protocol(), code);
    if (!code) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), code);
    if (!code) impl_->acceptor.bind(endpoint, code);
    if (!code) impl_->acceptor.listen(asio::socket_base::max_listen_connections, code);
    if (code) {
        error = "cannot listen on " + impl_->options.address + ":" +
                std::to_string(impl_->options.port) + ": " + code.message();
        return false;
    }
    bound_port_ = impl_->acceptor.local_endpoint().port();
    return true;
}

namespace {

// 503 for a connection that cannot be admitted. The request is read first (up to its header,
// for at most a second) so that closing does not reset the connection under the answer; a few
// refusals at a time get that care, the rest are answered and closed at once.
std::atomic<int> refusing{0};

void refuse_busy(tcp::socket socket) {
    static const char kBusy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
        "Retry-After: 1\r\n\r\n";
    auto answer = [](tcp::socket &peer, bool read_first) {
        beast::error_code error;
        int fd = peer.native_handle();
        if (read_first) {
            timeval wait{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
            std::string head;
            char buffer[4096];
            while (head.size() < 16384 && head.find("\r\n\r\n") == std::string::npos) {
                ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
                if (n <= 0) break;
                head.append(buffer, static_cast<size_t>(n));
            }
        }
        asio::write(peer, asio::buffer(kBusy, sizeof kBusy - 1), error);
        peer.shutdown(tcp::socket::shutdown_send, error);
        peer.close(error);
    };
    if (refusing.fetch_add(1) >= 16) {
        answer(socket, false);
        refusing--;
        return;
    }
    auto owned = std::make_shared<tcp::socket>(std::move(socket));
    try {
        std::thread([owned, answer] {
            answer(*owned, true);
            refusing--;
        }).detach();
    } catch (const std::system_error &) {
        answer(*owned, false);
        refusing--;
    }
}

}  // namespace

void HttpServer::run(std::chrono::milliseconds grace) {
    Impl &impl = *impl_;
    auto last_expiry = Clock::now();
    // The watchdog: every connection's deadline, ten times a second.
    std::thread watchdog([&impl] {
        while (!impl.stopping) {
            impl.close_expired();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    });
    // Joined however run() ends (an exception too: a joinable thread would terminate).
    struct JoinWatchdog {
        Impl &impl;
        std::thread &thread;
        ~JoinWatchdog() {
            impl.stopping = true;
            if (thread.joinable()) thread.join();
        }
    } join_watchdog{impl, watchdog};
    while (!impl.stopping) {
        beast::error_code error;
        tcp::socket socket(impl.io);
        impl.acceptor.accept(socket, error);
        if (impl.stopping) break;
        if (error) {  // e.g. out of file descriptors: do not spin
            impl.logger.log(LogLevel::Warning, "accepting a connection failed: " + error.message());
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        impl.reap();
        if (Clock::now() - last_expiry > std::chrono::seconds(30)) {
            impl.expire_sessions();
            last_expiry = Clock::now();
        }
        int fd = socket.native_handle();
        beast::error_code ignored;
        std::string address = Impl::address_key(socket.remote_endpoint(ignored).address());
        bool full;
        {
            std::lock_guard<std::mutex> lock(impl.mutex);
            full = !impl.make_room(address);
            if (!full) {
                Impl::Connection &c = impl.connections[fd];
                c.address = address;
                c.deadline = c.since + impl.options.header_timeout;
            }
        }
        if (full) {  // every connection is serving a request: refuse it
            refuse_busy(std::move(socket));
            continue;
        }
        // One thread per connection, detached; run() waits for all of them before returning.
        // Each takes its descriptor out of `connections` before closing it, so that stop()
        // never shuts down a number that already belongs to something else.
        auto owned = std::make_shared<tcp::socket>(std::move(socket));
        try {
            std::thread([&impl, fd, owned]() mutable {
                impl.serve(*owned);
                std::lock_guard<std::mutex> lock(impl.mutex);
                impl.connections.erase(fd);
                owned.reset();
                impl.connections_done.notify_all();
            }).detach();
        } catch (const std::system_error &failure) {
            impl.logger.log(LogLevel::Error,
                            std::string("cannot start a connection thread: ") + failure.what());
            std::lock_guard<std::mutex> lock(impl.mutex);
            impl.connections.erase(fd);
            owned.reset();
        }
    }
    // Stopped: in-flight requests finish (up to the grace period); idle keep-alive
    // connections are ended at once.
    auto deadline = Clock::now() + grace;
    {
        std::unique_lock<std::mutex> lock(impl.mutex);
        while (!impl.connections.empty() && Clock::now() < deadline) {
            if (impl.in_flight == 0)
                for (auto &entry : impl.connections) ::shutdown(entry.first, SHUT_RD);
            impl.connections_done.wait_for(lock, std::chrono::milliseconds(50));
        }
        for (auto &entry : impl.connections) ::shutdown(entry.first, SHUT_RDWR);
    }
    // Past the grace period: requests still running are cancelled and abandoned (outside
    // the lock: cancelling reaches the database).
    std::vector<std::shared_ptr<Session>> open;
    {
        std::lock_guard<std::mutex> lock(impl.mutex);
        for (auto &entry : impl.sessions) open.push_back(entry.second);
    }
    for (auto &session : open) {
        session->end("the server is stopping");
        session->output.abort();
    }
    std::unique_lock<std::mutex> lock(impl.mutex);
    if (!impl.connections_done.wait_for(lock, std::chrono::seconds(30),
                                        [&] { return impl.connections.empty(); })) {
        // A connection thread is stuck (in a system call): it still uses this object, so
        // the process ends here rather than free it under that thread.
        impl.logger.log(LogLevel::Error, "connections did not finish within 30 s; exiting");
        std::_Exit(1);
    }
}

void HttpServer::stop() {
    impl_->stopping = true;
    // Unblocks accept() (a signal handler may not touch asio objects: this only calls
    // shutdown(2) on the listening socket, which is async-signal-safe).
    ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
}

void HttpServer::tools_changed() {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    for (auto &entry : impl_->sessions) entry.second->server.tools_changed();
}

}  // namespace pg_mcp::bridge
