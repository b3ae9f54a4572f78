// The HTTP transport's server state (HttpServer::Impl), shared by its parts: the server
// (http_transport.cpp: accept, phases and deadlines, eviction, housekeeping, metrics), the
// request handlers (http_handlers.cpp: routing, GET streams, DELETE, metadata) and the POST
// handler (http_post.cpp). Everything here runs on the loop. Internal to the HTTP transport.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <deque>
#include <future>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <openssl/evp.h>

#include "auth.hpp"
#include "http_auth.hpp"
#include "http_request.hpp"
#include "http_session.hpp"
#include "json_rpc.hpp"
#include "wakeup.hpp"
#include "loop_wait.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

inline const char *const kEndpoint = "/mcp";
inline constexpr auto kKeepAliveComment = std::chrono::seconds(15);  // on an idle event stream
// A request still unanswered this long has its connection watched: a client that closes it
// cancels the request.
inline constexpr auto kWatchAfter = std::chrono::milliseconds(20);

// Completion token of every asynchronous operation here: the coroutine resumes with the error
// in `error` (never an exception).
inline auto with(beast::error_code &error) {
    return asio::redirect_error(asio::use_awaitable, error);
}

// A cryptographically random session id: 128 bits as hex (visible ASCII only).
inline std::string new_session_id() {
    static std::random_device device;  // used on the loop only
    std::string id;
    for (int i = 0; i < 4; i++) {
        char part[9];
        std::snprintf(part, sizeof part, "%08x", static_cast<unsigned>(device()));
        id += part;
    }
    return id;
}

// Everything below runs on the loop (one thread: the one in run()), except stop() and
// tools_changed(), which post to it.
struct HttpServer::Impl {
    Backend &backend;
    ServerOptions server_options;
    const Logger &logger;
    HttpOptions options;
    ReadinessFn readiness;

    asio::io_context &io;
    tcp::acceptor acceptor{io};
    // Blocking work (the readiness probe waits for the pool) runs here, not on the loop.
    asio::thread_pool blocking{1};
    int tasks = 0;  // coroutines running on the loop (all end before the server is destroyed)
    std::promise<void> finished;
    bool stop_loop_when_finished = false;  // run() drives the loop until finish()
    asio::steady_timer *housekeeping_timer = nullptr;
    std::atomic<bool> stopping{false};
    std::chrono::milliseconds grace{10000};

    std::map<std::string, std::shared_ptr<Session>> sessions;
    std::set<std::shared_ptr<Session>> listeners;      // with an open subscriptions/listen stream
    std::map<std::string, size_t> calls_by_principal;  // requests in progress, by principal
    size_t opening_total = 0;                          // initializes in progress
    std::map<std::string, size_t> opening_by_principal;
    // An open client socket: what it is doing, and since when.
    struct Connection {
        // Waiting: for a request's header; Checking: its bearer token, before its body is read;
        // Body: for its body; Busy: serving it; Writing: a response (or an event) is being
        // written; Streaming: an event stream between events.
        enum class Phase {
            Waiting,
            Checking,
            Body,
            Busy,
            Writing,
            Streaming,
            Draining  // answered and closing: the rest of a request read and dropped
        } phase = Phase::Waiting;
        // A caller the gate let in came on it (without tokens: a request was answered on it).
        bool known = false;
        Clock::time_point since = Clock::now();
        std::string address;
        uint64_t requests = 0;                // served on it so far
        bool closing = false;                 // shut down (eviction, stop): its coroutine is ending
        beast::tcp_stream *stream = nullptr;  // once its coroutine runs
        Wakeup *stream_wakeup = nullptr;      // while an event stream waits for an event
        bool subscription = false;            // a subscriptions/listen stream
    };
    std::map<uint64_t, Connection> connections;  // by number
    uint64_t connections_opened = 0;
    uint64_t connections_timed_out = 0, connections_evicted = 0;
    uint64_t slow_bodies = 0;    // closed for sending a body below options.body_min_rate
    uint64_t stateless_ids = 0;  // names of the one-request sessions (2026-07-28)
    std::map<unsigned, uint64_t> responses_by_status;
    // Ended sessions, kept until their last backend reply has come and gone.
    std::vector<std::shared_ptr<Session>> draining;
    int in_flight = 0;
    int streams = 0;   // open GET event streams
    int refusing = 0;  // 503s that read the request first
    AuthGate gate;     // who sends each request

    Impl(asio::io_context &loop, Backend &b, ServerOptions so, const Logger &l, HttpOptions o,
         ReadinessFn r)
        : backend(b),
          server_options(std::move(so)),
          logger(l),
          options(std::move(o)),
          readiness(std::move(r)),
          io(loop),
          gate(loop, b, l, options.oauth, options.request_timeout) {}

    ~Impl() {
        blocking.join();
        // Handlers already posted that refer to this (a catalog change) run first.
        if (!io.stopped() && !io.get_executor().running_in_this_thread()) {
            auto flushed = std::make_shared<std::promise<void>>();
            std::future<void> done = flushed->get_future();
            asio::post(io, [flushed] { flushed->set_value(); });
            wait_for_loop(io, done, std::chrono::seconds(5));
        }
    }

    // Runs `task` on the loop, counted in `tasks`.
    void spawn(asio::awaitable<void> task);

    Response reply(const Request &request, http::status status, std::string body = {},
                   const char *content_type = "application/json");

    // An HTTP error whose body is a JSON-RPC error without id (as the transport allows).
    Response rpc_error(const Request &request, http::status status, int code,
                       const std::string &message);

    // 429 with Retry-After: the principal is over one of its caps (others are not affected).
    Response too_many(const Request &request, const std::string &message);

    // Open sessions of a principal.
    size_t sessions_of(const std::string &principal) const;

    // An initialize in progress, counted against the session caps until the session is open or
    // the initialize has failed.
    struct OpeningSession {
        OpeningSession(Impl &impl, std::string principal)
            : impl(impl), principal(std::move(principal)) {
            impl.opening_total++;
            impl.opening_by_principal[this->principal]++;
        }
        ~OpeningSession() {
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
            size_t &running = impl.calls_by_principal[this->principal];
            taken = running < impl.options.max_calls_per_principal;
            if (taken) running++;
        }
        ~CallSlot() {
            if (principal.empty()) return;
            auto found = impl.calls_by_principal.find(principal);
            if (found == impl.calls_by_principal.end()) return;
            if (taken) found->second--;
            if (found->second == 0) impl.calls_by_principal.erase(found);
        }
        Impl &impl;
        std::string principal;
        bool taken = true;
    };

    // The answer to a request the authentication gate did not let in.
    Response refusal_response(const Request &request, const Refusal &refusal);

    // Work handed to another thread, its result posted back to the loop.
    template <typename T>
    struct Pending {
        explicit Pending(asio::io_context &io) : wakeup(io) {}
        T value{};
        Wakeup wakeup;
    };

    // The address a connection counts against (empty once it is gone).
    std::string address_of(uint64_t number) const;

    // The gate's answer for a request: nullopt with `caller` set, or the refusal to send.
    asio::awaitable<std::optional<Response>> authenticate(const Request &request,
                                                          const std::string &address,
                                                          Caller &caller);

    // RFC 9728: this resource's metadata, for clients to find its authorization servers.
    asio::awaitable<Response> resource_metadata(const Request &request);

    // /readyz: the probe waits for the pool, on the blocking thread.
    asio::awaitable<std::string> probe_readiness();

    bool host_allowed(const Request &request);

    // Origins a browser may send: those listed (--allowed-origin), and for a listener on the
    // loopback, pages served from the loopback (localhost, 127.0.0.1, [::1], any port): a page
    // that reached this machine by DNS rebinding carries its own name, which is refused.
    bool origin_allowed(const Request &request);
    bool loopback_listener() const;

    std::shared_ptr<Session> find_session(const std::string &id);

    // Session tickets (HttpOptions::session_keys). Whether one more session fits the caps of
    // `cap_key` (see choose_session): nullopt, or the refusal.
    std::optional<Response> session_caps(const Request &request, const Caller &caller,
                                         const std::string &cap_key);
    // A new session's ticket and name, sealed from its initialize's params.
    SessionKeys::Ticket seal_ticket(const json &message, const Caller &caller);
    // The session a valid ticket of this caller's names, taken up here (it began on another
    // bridge, before a restart, or was dropped as idle); nullptr without one (and nothing
    // changes), or with `refusal` set when the caps leave no room for it.
    std::shared_ptr<Session> resume_session(const std::string &id, const Caller &caller,
                                            const std::string &cap_key, const Request &request,
                                            std::optional<Response> &refusal);
    // A ticket ended by DELETE (its name and issue time): refused here until it expires.
    void remember_ended(const std::string &name, int64_t issued);
    // ... and on every bridge: NOTIFY pg_mcp_session_ended (HttpServer::session_ended).
    void announce_ended(const std::string &name, int64_t issued);
    std::set<std::pair<int64_t, std::string>> ended_by_issue;  // (issued, name)
    std::set<std::string> ended_tickets;                       // names
    static constexpr size_t kMaxEndedTickets = 65536;
    uint64_t sessions_resumed = 0;
    uint64_t session_prefixes = 0;  // keys of resumed sessions' backend work

    // Ends a session already removed from `sessions`, and keeps it until it is idle.
    void retire(const std::shared_ptr<Session> &session, const std::string &reason);

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

    // Connection `number` moves to `phase`, with that phase's deadline on its socket (the
    // stream's timer: an operation past it fails with beast::error::timeout). False when the
    // connection is being closed (evicted, or the server is stopping and it would wait for
    // another request): stop serving it.
    bool set_phase(uint64_t number, Connection::Phase phase, bool first_request = false);

    // The address a connection counts against: an IPv4 address, or an IPv6 /64 (one client
    // can have a whole one).
    static std::string address_key(const asio::ip::address &address);

    // Closes a connection's socket: its coroutine's pending read or write ends, or its event
    // stream wakes, and the coroutine ends.
    void shut(Connection &c);

    // Room for a new connection from `address`: within the limits, or by closing one that is not
    // serving a request — among all, or among that address's when it is the address that is at
    // its limit. What a connection is doing decides first (see eviction_tier): one that never
    // sent a whole request (or is being drained), then an unknown client's body, then idle
    // keep-alive connections (unknown before known), then event streams; a known caller's body,
    // and connections checking a token, serving or writing are never closed. Among equals, the
    // address holding the most connections goes first, then the one waiting longest. False when no
    // connection may be closed.
    bool make_room(const std::string &address);

    // Which connections go first when room is needed (lower first); -1: never.
    static int eviction_tier(const Connection &c);

    void reap();

    // Ends sessions unused for longer than options.session_idle.
    void expire_sessions();

    // The connection a request came on: a response that is an event stream is written by
    // post() itself (written), which may also end the connection (close: the client left).
    struct Exchange {
        beast::tcp_stream &stream;
        uint64_t number;
        beast::flat_buffer &buffer;
        bool written = false;
        bool close = false;
        // Who sent it, when the gate let its head in before its body was read.
        std::optional<Caller> caller;
    };

    asio::awaitable<Response> handle(const Request &request, Exchange &exchange);

    // 2026-07-28 over HTTP: the headers mirror the body (a proxy may have routed on them), and
    // what the revision refuses gets its status: 400 with HeaderMismatch (-32020) for a missing
    // or mismatching MCP-Protocol-Version, Mcp-Method or Mcp-Name; 400 with
    // UnsupportedProtocolVersion (-32022) and the supported list; 404 with -32601 for a method
    // not served; 400 for missing client capabilities. Nothing runs for a refused request.
    std::optional<Response> check_modern_request(const Request &request, const json &message,
                                                 const std::string &method,
                                                 const std::string &header_version);

    // Whether a request asks for notifications about itself: a progress token, or (2026-07-28)
    // a log level.
    static bool wants_notifications(const json &message);

    // A read kept pending on the connection while its request is served: it ends when the
    // client closes the connection (gone), or when the client sends more (kept for the next
    // request).
    struct ClientWatch {
        bool pending = false;
        bool gone = false;
    };
    void watch_client(Exchange &exchange, std::shared_ptr<SessionOutput::Waiter> waiter,
                      std::shared_ptr<ClientWatch> watch);
    // Stops the watch; returns once its read has completed.
    asio::awaitable<void> end_watch(Exchange &exchange,
                                    std::shared_ptr<SessionOutput::Waiter> waiter,
                                    std::shared_ptr<ClientWatch> watch);

    // The head of a POST's event stream (chunked; the connection stays open after it).
    asio::awaitable<bool> start_event_stream(Exchange &exchange, const Request &request,
                                             const std::string &session_id);
    // One chunk of a POST's event stream, within the write timeout.
    asio::awaitable<bool> write_chunk(Exchange &exchange, const std::string &text);
    asio::awaitable<bool> write_event(Exchange &exchange, const std::string &message);
    asio::awaitable<bool> write_comment(Exchange &exchange);
    asio::awaitable<bool> end_event_stream(Exchange &exchange);
    // One POST in progress: what post()'s steps share.
    struct PostCall {
        PostCall(const Request &request, Exchange &exchange)
            : request(request), exchange(exchange) {}
        const Request &request;
        Exchange &exchange;
        json message;
        std::string method, version;
        bool has_method = false, has_id = false;
        bool json_ok = false, sse_ok = false;  // what the client accepts
        Caller caller;
        std::shared_ptr<Session> session;
        bool created = false;                      // by this initialize
        std::unique_ptr<RetireAfter> one_request;  // a 2026-07-28 request's own server
        std::unique_ptr<OpeningSession> opening;   // counted against the caps until open
        MessageContext context;
        bool listen = false;  // a 2026-07-28 subscriptions/listen
        json id;
        std::string key;  // id as JSON text
        std::shared_ptr<SessionOutput::Waiter> waiter;
        std::shared_ptr<ClientWatch> watch;
        bool streaming = false;  // the answer is an event stream that has begun
    };
    std::optional<Response> read_message(PostCall &call);
    std::optional<Response> choose_session(PostCall &call);
    asio::awaitable<void> await_answer(PostCall &call);
    asio::awaitable<Response> finish_answer(PostCall &call);
    // Cancels a request of the session (its query too), as a client's notifications/cancelled.
    void cancel_request(Session &session, const json &id, const std::string &reason);

    asio::awaitable<Response> post(const Request &request, Exchange &exchange);

    // GET /mcp: the session's event stream (text/event-stream), for notifications that belong
    // to no request. Returns the session to stream for, or nullptr with `refusal` set.
    asio::awaitable<std::shared_ptr<Session>> open_event_stream(const Request &request,
                                                                const std::optional<Caller> &given,
                                                                const std::string &address,
                                                                Response &refusal);

    // Writes the stream's events as they come, with a comment every 15 s (which also finds a
    // client that has gone), until the session ends, a newer GET replaces the stream, the
    // server stops, or the client goes away.
    asio::awaitable<void> stream_events(beast::tcp_stream &stream, uint64_t number,
                                        const Request &request, std::shared_ptr<Session> session);

    std::string metrics_text();

    // Writes a response within the write timeout; false when it could not be written.
    asio::awaitable<bool> write_response(beast::tcp_stream &stream, uint64_t number,
                                         Response &response);

    // A client connection: requests one after another (keep-alive) until it closes, a deadline
    // passes, it is evicted, or the server stops.
    asio::awaitable<void> serve(tcp::socket socket, uint64_t number);

    // Whether a request is one the gate must let in: the MCP endpoint's POST, GET and DELETE
    // (by path and method alone: nothing a body or trailer could change).
    bool needs_caller(const Request &head);

    // A request whose gate check could not have run (it must not be served without a caller).
    Response no_caller(const Request &request);

    static size_t field_count(const Request &request);

    // A request's body: within `limit` of its head, and no slower than options.body_min_rate
    // bytes a second after the first kBodyGrace (a client trickling a body cannot hold a
    // connection for the whole limit).
    static constexpr auto kBodyGrace = std::chrono::seconds(2);
    asio::awaitable<beast::error_code> read_body(beast::tcp_stream &stream,
                                                 beast::flat_buffer &buffer,
                                                 http::request_parser<http::string_body> &parser,
                                                 std::chrono::milliseconds limit);

    // The gate's refusal of a request whose body was not read: a small body (sent with its
    // head, as clients do) is read first, briefly, so that the connection stays usable; else
    // the connection is answered and closed, the rest of the body drained for a moment so the
    // client reads the answer rather than a reset. True when the connection goes on.
    static constexpr uint64_t kSmallBody = 64 * 1024;
    asio::awaitable<bool> answer_before_body(beast::tcp_stream &stream, uint64_t number,
                                             beast::flat_buffer &buffer,
                                             http::request_parser<http::string_body> &parser,
                                             Response response);

    // Before closing a connection whose request was not read whole: stop sending, then read
    // and drop what the client still sends (for a moment, a bounded amount).
    asio::awaitable<void> linger(beast::tcp_stream &stream, uint64_t number);

    asio::awaitable<void> serve_requests(beast::tcp_stream &stream, uint64_t number);
    enum class ReadOutcome { Serve, Next, Close };  // the request is read; read the next; end
    asio::awaitable<ReadOutcome> read_request(beast::tcp_stream &stream, uint64_t number,
                                              beast::flat_buffer &buffer,
                                              http::request_parser<http::string_body> &parser,
                                              std::optional<Caller> &caller);
    asio::awaitable<bool> serve_request(beast::tcp_stream &stream, uint64_t number,
                                        beast::flat_buffer &buffer, Request request,
                                        std::optional<Caller> caller);

    // 503 for a connection that cannot be admitted. The request is read first (up to its
    // header, for at most a second) so that closing does not reset the connection under the
    // answer; a few refusals at a time get that care, the rest are answered and closed at once.
    asio::awaitable<void> refuse_busy(tcp::socket socket);

    asio::awaitable<void> accept_connections();

    // Every second: sessions ended and idle are freed; every 30 s, unused sessions end.
    asio::awaitable<void> housekeeping();

    // Stopping: no new connections; idle keep-alive connections and event streams end at
    // once; requests in flight finish (up to the grace period), then are cancelled and
    // abandoned; the loop ends when every connection is closed.
    asio::awaitable<void> finish();
};

}  // namespace pg_mcp::bridge
