// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include "http_transport.hpp"

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
#include "json_rpc.hpp"
#include "wakeup.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

const char *const kEndpoint = "/mcp";
constexpr auto kKeepAliveComment = std::chrono::seconds(15);  // on an idle event stream
// A request still unanswered this long has its connection watched: a client that closes it
// cancels the request.
constexpr auto kWatchAfter = std::chrono::milliseconds(20);

// Completion token of every asynchronous operation here: the coroutine resumes with the error
// in `error` (never an exception).
auto with(beast::error_code &error) {
    return asio::redirect_error(asio::use_awaitable, error);
}

// A cryptographically random session id: 128 bits as hex (visible ASCII only).
std::string new_session_id() {
    static std::random_device device;  // used on the loop only
    std::string id;
    for (int i = 0; i < 4; i++) {
        char part[9];
        std::snprintf(part, sizeof part, "%08x", static_cast<unsigned>(device()));
        id += part;
    }
    return id;
}

// A message as text, whatever a client put in it (invalid UTF-8 is replaced, never thrown on).
std::string safe_dump(const json &message) {
    return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

// A session's output: each response goes to the HTTP request waiting for its id.
// Notifications that belong to no request (tools/list_changed, log messages) go to the
// session's event stream (GET) when the client has one open, and are dropped otherwise;
// progress, which belongs to a request answered with JSON, is dropped. send() may be called
// from any thread (backend replies come from the pool's): what it carries is posted to the
// loop, where everything else here runs.
class SessionOutput : public Output {
  public:
    struct Waiter {
        Waiter(asio::io_context &io, json request_id) : id(std::move(request_id)), wakeup(io) {}
        json id;
        Reply response;
        bool done = false;  // the response is in (empty text: cancelled by the client)
        Wakeup wakeup;      // fired when done, when an event comes, or when the wait is aborted
        // Answered with an event stream: the request's notifications (progress, log messages)
        // wait here to be written before the response.
        bool sse = false;
        std::deque<std::string> events;
    };

    static constexpr size_t kMaxEvents = 1000;  // events kept for a slow stream reader
    static constexpr size_t kReplayEvents = 100, kReplayBytes = 64 * 1024;  // per session

    // The loop's side, kept alive by what is posted to it.
    struct State {
        std::map<std::string, std::shared_ptr<Waiter>> waiting;
        bool aborted = false;
        uint64_t streams = 0;  // streams opened so far
        uint64_t stream = 0;   // the open one (0: none)
        Wakeup *stream_wakeup = nullptr;
        // The GET stream's events, numbered, kept from the session's first GET on (so that a
        // stream resumed with Last-Event-ID gets what it missed): the newest kReplayEvents,
        // at most kReplayBytes of them.
        struct Event {
            uint64_t id;
            std::string text;
        };
        std::deque<Event> history;
        size_t history_bytes = 0;
        uint64_t last_event = 0;
        bool recording = false;

        void wake_stream() {
            if (stream_wakeup != nullptr) stream_wakeup->fire();
        }
        void push_event(std::string text) {
            if (!recording) return;
            history_bytes += text.size();
            history.push_back({++last_event, std::move(text)});
            while (!history.empty() &&
                   (history.size() > kReplayEvents || history_bytes > kReplayBytes)) {
                history_bytes -= history.front().text.size();
                history.pop_front();
            }
            wake_stream();
        }
        // The first event after `cursor` still kept; nullptr when there is none.
        const Event *after(uint64_t cursor) const {
            if (history.empty() || cursor >= history.back().id) return nullptr;
            uint64_t first = history.front().id;
            return &history[cursor < first ? 0 : cursor - first + 1];
        }
        // A notification about request `key`: on its event stream when it has one; a log
        // message otherwise on the session's GET stream; progress otherwise nowhere.
        void relate(const std::string &key, std::string text, bool progress) {
            auto found = waiting.find(key);
            if (found != waiting.end() && found->second->sse && !found->second->done) {
                Waiter &waiter = *found->second;
                if (waiter.events.size() >= kMaxEvents) waiter.events.pop_front();
                waiter.events.push_back(std::move(text));
                waiter.wakeup.fire();
                return;
            }
            if (!progress) push_event(std::move(text));
        }
        void deliver(const std::string &key, Reply response) {
            auto found = waiting.find(key);
            if (found == waiting.end() || found->second->done) return;  // nobody waits any more
            found->second->response = std::move(response);
            found->second->done = true;
            found->second->wakeup.fire();
        }
    };

    explicit SessionOutput(asio::io_context &io) : io_(io), state_(std::make_shared<State>()) {}

    void answer(Reply reply) override {
        if (reply.id.is_null()) return;  // answers no request of this session's
        asio::post(io_, [state = state_, reply = std::move(reply)]() mutable {
            std::string key = reply.id.dump();
            state->deliver(key, std::move(reply));
        });
    }

    void send(const json &message) override {
        std::string method = message.value("method", "");
        if (method.empty() || message.contains("id") || method == "notifications/progress" ||
            method == "notifications/cancelled")
            return;
        asio::dispatch(io_, [state = state_, text = dump(message)]() mutable {
            state->push_event(std::move(text));
        });
    }

    void send_related(const json &id, const json &message) override {
        bool progress = message.value("method", "") == "notifications/progress";
        asio::dispatch(io_,
                       [state = state_, key = id.dump(), text = dump(message), progress]() mutable {
                           state->relate(key, std::move(text), progress);
                       });
    }

    // A large result: built as text from its pieces (no JSON tree). A body that broke off
    // delivers nothing here: the server answers the request with an error next.
    void send_streamed(Reply head, BodyStream &body) override {
        std::string chunk;
        while (body.next(chunk)) head.text += chunk;
        if (!body.failed.empty()) return;
        head.text += "}}";
        asio::dispatch(io_, [state = state_, reply = std::move(head)]() mutable {
            std::string key = reply.id.dump();
            state->deliver(key, std::move(reply));
        });
    }

    // The rest is for the loop only.
    State &state() { return *state_; }

    // Opens the session's event stream (a newer GET replaces an older one, which ends); returns
    // its number. `wakeup` is fired when an event comes or the stream is over.
    // `cursor` is set to the last event the stream has had: `resume_after` (Last-Event-ID) when
    // given, else the newest (a new stream starts with what comes next).
    uint64_t open_stream(Wakeup &wakeup, std::optional<uint64_t> resume_after, uint64_t &cursor) {
        state_->wake_stream();
        state_->stream = ++state_->streams;
        state_->stream_wakeup = &wakeup;
        state_->recording = true;
        cursor = resume_after && *resume_after <= state_->last_event ? *resume_after
                                                                     : state_->last_event;
        return state_->stream;
    }
    // The stream `number` has ended on its side (its events stay for a resumption).
    void stream_ended(uint64_t number) {
        if (state_->stream != number) return;
        state_->stream = 0;
        state_->stream_wakeup = nullptr;
    }
    // Ends the event stream, if one is open (the session ends).
    void close_stream() {
        state_->wake_stream();
        state_->stream = 0;
        state_->stream_wakeup = nullptr;
        state_->recording = false;
        state_->history.clear();
        state_->history_bytes = 0;
    }

    // Registers a wait for the response to `key`; false when one is already waiting.
    bool expect(const std::string &key, std::shared_ptr<Waiter> waiter) {
        return state_->waiting.emplace(key, std::move(waiter)).second;
    }
    void forget(const std::string &key) { state_->waiting.erase(key); }

    // Ends the wait for `key`, if any: with a JSON-RPC error when the session ended under the
    // request; without any response when the client cancelled it (as cancellation asks).
    void abandon(const std::string &key, const std::string &reason, bool respond) {
        auto found = state_->waiting.find(key);
        if (found == state_->waiting.end()) return;
        Reply reply;
        reply.id = found->second->id;
        if (respond) {
            reply.error_code = error_code::kInternalError;
            reply.text = safe_dump(
                make_error(reply.id, error_code::kInternalError, "Request cancelled: " + reason));
        }
        state_->deliver(key, std::move(reply));
    }

    // The ids (as JSON text) of the requests waiting for a response.
    std::vector<std::string> pending() const {
        std::vector<std::string> keys;
        for (const auto &entry : state_->waiting) keys.push_back(entry.first);
        return keys;
    }

    // Ends every wait (the server is stopping and its grace period is over).
    void abort() {
        state_->aborted = true;
        for (auto &entry : state_->waiting) entry.second->wakeup.fire();
        state_->wake_stream();
    }

  private:
    static std::string dump(const json &message) {
        return message.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    asio::io_context &io_;
    std::shared_ptr<State> state_;
};

class HttpServer::Session {
  public:
    // owner: who opened it (see Caller; empty without authentication).
    Session(asio::io_context &io, std::string session_id, Backend &backend,
            const ServerOptions &options, const Logger &logger, const std::string &owner = {},
            const std::string &principal_token = {}, const std::string &principal = {})
        : id(std::move(session_id)),
          owner(owner),
          principal(principal),
          output(io),
          server(backend, output, session_options(options, id + "/", principal_token, principal),
                 logger) {}

    static ServerOptions session_options(ServerOptions options, const std::string &prefix,
                                         const std::string &token_hash,
                                         const std::string &principal) {
        options.backend_key_prefix = prefix;
        options.network_transport = "tcp";
        if (prefix.rfind("stateless-", 0) != 0)
            options.session_id = prefix.substr(0, prefix.size() - 1);
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
    std::string owner;      // only requests of the same owner may use it
    std::string principal;  // whose share of the session caps it takes (a principal, a person or
                            // without tokens a client address)
    SessionOutput output;   // before server, which holds a reference to it
    McpServer server;
    std::atomic<Clock::rep> last_used{Clock::now().time_since_epoch().count()};
};

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
            done.wait_for(std::chrono::seconds(5));
        }
    }

    // Runs `task` on the loop, counted in `tasks`.
    void spawn(asio::awaitable<void> task) {
        tasks++;
        asio::co_spawn(io, std::move(task), [this](std::exception_ptr failure) {
            tasks--;
            if (failure) logger.log(LogLevel::Error, "internal error in the HTTP transport");
        });
    }

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

    // An HTTP error whose body is a JSON-RPC error without id (as the transport allows).
    Response rpc_error(const Request &request, http::status status, int code,
                       const std::string &message) {
        return reply(request, status, safe_dump(make_error(nullptr, code, message)));
    }

    // 429 with Retry-After: the principal is over one of its caps (others are not affected).
    Response too_many(const Request &request, const std::string &message) {
        Response response =
            rpc_error(request, http::status::too_many_requests, error_code::kServerBusy, message);
        response.set(http::field::retry_after, "1");
        return response;
    }

    // Open sessions of a principal.
    size_t sessions_of(const std::string &principal) const {
        size_t count = 0;
        for (const auto &entry : sessions) count += entry.second->principal == principal;
        return count;
    }

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
    Response refusal_response(const Request &request, const Refusal &refusal) {
        static const std::map<Refusal::Kind, std::pair<http::status, int>> kAnswer = {
            {Refusal::Kind::Unauthorized, {http::status::unauthorized, error_code::kUnauthorized}},
            {Refusal::Kind::Forbidden, {http::status::forbidden, error_code::kUnauthorized}},
            {Refusal::Kind::TooMany, {http::status::too_many_requests, error_code::kServerBusy}},
            {Refusal::Kind::Unavailable,
             {http::status::service_unavailable, error_code::kDatabaseUnavailable}},
            {Refusal::Kind::Internal,
             {http::status::internal_server_error, error_code::kInternalError}}};
        auto [status, code] = kAnswer.at(refusal.kind);
        Response response = rpc_error(request, status, code, refusal.message);
        if (!refusal.challenge.empty())
            response.set(http::field::www_authenticate, refusal.challenge);
        if (refusal.retry_after) response.set(http::field::retry_after, "1");
        return response;
    }

    // Work handed to another thread, its result posted back to the loop.
    template <typename T>
    struct Pending {
        explicit Pending(asio::io_context &io) : wakeup(io) {}
        T value{};
        Wakeup wakeup;
    };

    // The address a connection counts against (empty once it is gone).
    std::string address_of(uint64_t number) const {
        auto found = connections.find(number);
        return found == connections.end() ? std::string() : found->second.address;
    }

    // The gate's answer for a request: nullopt with `caller` set, or the refusal to send.
    asio::awaitable<std::optional<Response>> authenticate(const Request &request,
                                                          const std::string &address,
                                                          Caller &caller) {
        if (request.count(http::field::authorization) > 1)
            co_return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                                "Bad Request: the Authorization header appears more than once");
        auto header = request.find(http::field::authorization);
        std::optional<std::string> value;
        if (header != request.end()) value = std::string(header->value());
        AuthResult result = co_await gate.check(std::move(value), address);
        if (Caller *accepted = std::get_if<Caller>(&result)) {
            caller = std::move(*accepted);
            co_return std::nullopt;
        }
        co_return refusal_response(request, std::get<Refusal>(result));
    }

    // RFC 9728: this resource's metadata, for clients to find its authorization servers.
    asio::awaitable<Response> resource_metadata(const Request &request) {
        std::optional<std::vector<TrustedIssuer>> issuers = co_await gate.oauth()->issuers();
        if (!issuers) {
            Response response = reply(request, http::status::service_unavailable,
                                      "{\"error\":\"temporarily_unavailable\"}");
            response.set(http::field::retry_after, "1");
            co_return response;
        }
        Response response =
            reply(request, http::status::ok, gate.oauth()->resource_metadata(*issuers).dump());
        response.set(http::field::cache_control, "public, max-age=60");
        // Any page may read it (it is public, and browser-based clients discover with it).
        response.set(http::field::access_control_allow_origin, "*");
        co_return response;
    }

    // /readyz: the probe waits for the pool, on the blocking thread.
    asio::awaitable<std::string> probe_readiness() {
        auto probed = std::make_shared<Pending<std::string>>(io);
        asio::post(blocking, [this, probed] {
            std::string problem;
            try {
                problem = readiness();
            } catch (const std::exception &error) {
                problem = std::string("readiness probe failed: ") + error.what();
            }
            asio::post(io, [probed, problem = std::move(problem)]() mutable {
                probed->value = std::move(problem);
                probed->wakeup.fire();
            });
        });
        bool probed_in_time =
            co_await wait_until(probed->wakeup, Clock::now() + std::chrono::seconds(5));
        if (!probed_in_time) co_return "the readiness probe did not finish within 5 s";
        co_return probed->value;
    }

    bool host_allowed(const Request &request) {
        auto host = request.find(http::field::host);
        if (host == request.end()) return request.version() < 11;  // HTTP/1.1 requires Host
        if (request.count(http::field::host) > 1) return false;
        std::optional<std::string> parsed =
            host_name(std::string_view(host->value().data(), host->value().size()));
        if (!parsed) return false;
        const std::string &name = *parsed;
        static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
        for (const char *allowed : loopback)
            if (name == allowed) return true;
        if (name == lower(options.address)) return true;
        for (const auto &allowed : options.allowed_hosts)
            if (name == lower(allowed)) return true;
        return false;
    }

    // Origins a browser may send: those listed (--allowed-origin), and for a listener on the
    // loopback, pages served from the loopback (localhost, 127.0.0.1, [::1], any port): a page
    // that reached this machine by DNS rebinding carries its own name, which is refused.
    bool origin_allowed(const Request &request) {
        auto origin = request.find(http::field::origin);
        if (origin == request.end()) return true;
        std::string value(origin->value());
        for (const auto &allowed : options.allowed_origins)
            if (value == allowed) return true;
        if (!loopback_listener()) return false;
        static const std::regex kLoopbackOrigin(
            R"(https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)", std::regex::icase);
        return std::regex_match(value, kLoopbackOrigin);
    }
    bool loopback_listener() const {
        beast::error_code error;
        auto address = asio::ip::make_address(options.address, error);
        return options.address == "localhost" || (!error && address.is_loopback());
    }

    std::shared_ptr<Session> find_session(const std::string &id) {
        auto found = sessions.find(id);
        return found == sessions.end() ? nullptr : found->second;
    }

    // Ends a session already removed from `sessions`, and keeps it until it is idle.
    void retire(const std::shared_ptr<Session> &session, const std::string &reason) {
        session->end(reason);
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

    // Connection `number` moves to `phase`, with that phase's deadline on its socket (the
    // stream's timer: an operation past it fails with beast::error::timeout). False when the
    // connection is being closed (evicted, or the server is stopping and it would wait for
    // another request): stop serving it.
    bool set_phase(uint64_t number, Connection::Phase phase, bool first_request = false) {
        using Phase = Connection::Phase;
        auto found = connections.find(number);
        if (found == connections.end()) return false;
        Connection &c = found->second;
        if (c.closing || (phase == Phase::Waiting && stopping)) return false;
        if (phase == Phase::Busy) c.requests++;
        c.phase = phase;
        c.since = Clock::now();
        if (phase != Phase::Streaming) c.stream_wakeup = nullptr;
        switch (phase) {
            case Phase::Waiting:
                c.stream->expires_after(first_request ? options.header_timeout
                                                      : options.idle_timeout);
                break;
            case Phase::Body:  // read_body() sets the deadlines of each read
                c.stream->expires_after(options.body_timeout);
                break;
            case Phase::Writing:
                c.stream->expires_after(options.write_timeout);
                break;
            case Phase::Draining:  // linger() sets its own deadline
            case Phase::Checking:  // the gate bounds its own waits
            case Phase::Busy:
            case Phase::Streaming:
                c.stream->expires_never();
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

    // Closes a connection's socket: its coroutine's pending read or write ends, or its event
    // stream wakes, and the coroutine ends.
    void shut(Connection &c) {
        if (c.closing) return;
        c.closing = true;
        if (c.stream != nullptr) {
            beast::error_code ignored;
            c.stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
            c.stream->cancel();
        }
        if (c.stream_wakeup != nullptr) c.stream_wakeup->fire();
    }

    // Room for a new connection from `address`: within the limits, or by closing one that is not
    // serving a request — among all, or among that address's when it is the address that is at
    // its limit. What a connection is doing decides first (see eviction_tier): one that never
    // sent a whole request (or is being drained), then an unknown client's body, then idle
    // keep-alive connections (unknown before known), then event streams; a known caller's body,
    // and connections checking a token, serving or writing are never closed. Among equals, the
    // address holding the most connections goes first, then the one waiting longest. False when no
    // connection may be closed.
    bool make_room(const std::string &address) {
        size_t open = 0;
        std::map<std::string, long> per_address;
        for (const auto &[number, c] : connections)
            if (!c.closing) {
                open++;
                per_address[c.address]++;
            }
        bool address_full =
            per_address[address] >= static_cast<long>(options.max_connections_per_address);
        if (open < options.max_connections && !address_full) return true;
        auto rank = [&](const Connection &c) {
            return std::make_tuple(eviction_tier(c), -per_address[c.address], c.since);
        };
        Connection *victim = nullptr;
        for (auto &[number, c] : connections) {
            if (c.closing || eviction_tier(c) < 0) continue;
            if (address_full && c.address != address) continue;
            if (victim == nullptr || rank(c) < rank(*victim)) victim = &c;
        }
        if (victim == nullptr) return false;
        shut(*victim);
        connections_evicted++;
        return true;
    }

    // Which connections go first when room is needed (lower first); -1: never.
    static int eviction_tier(const Connection &c) {
        using Phase = Connection::Phase;
        switch (c.phase) {
            case Phase::Draining:
                return 0;
            case Phase::Waiting:
                return c.requests == 0 ? 0 : c.known ? 3 : 2;
            case Phase::Body:
                return c.known ? -1 : 1;
            case Phase::Streaming:
                return 4;
            default:
                return -1;
        }
    }

    void reap() {
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
        for (auto it = sessions.begin(); it != sessions.end();) {
            if (Clock::time_point(Clock::duration(it->second->last_used.load())) < limit &&
                it->second->server.in_flight() == 0) {
                expired.push_back(it->second);
                it = sessions.erase(it);
            } else {
                ++it;
            }
        }
        for (auto &session : expired) retire(session, "session expired");
    }

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

    asio::awaitable<Response> handle(const Request &request, Exchange &exchange) {
        std::string target(request.target());
        std::string path = target.substr(0, target.find('?'));
        if (!host_allowed(request))
            co_return rpc_error(request, http::status::forbidden, error_code::kInvalidRequest,
                                "Forbidden: Host header not allowed (add it with --allowed-host)");
        // The resource's metadata is public: any page may read it (browser-based clients
        // discover the authorization server with it).
        if (gate.oauth() && request.method() == http::verb::get)
            for (const std::string &metadata : gate.oauth()->resource_metadata_paths())
                if (path == metadata) {
                    Response response = co_await resource_metadata(request);
                    co_return response;
                }
        if (!origin_allowed(request))
            co_return rpc_error(request, http::status::forbidden, error_code::kInvalidRequest,
                                "Forbidden: Origin not allowed (add it with --allowed-origin)");
        if (path == "/healthz") co_return reply(request, http::status::ok, "ok\n", "text/plain");
        if (path == "/metrics")
            co_return reply(request, http::status::ok, metrics_text(),
                            "text/plain; version=0.0.4; charset=utf-8");
        if (path == "/readyz") {
            std::string problem = co_await probe_readiness();
            co_return problem.empty() ? reply(request, http::status::ok, "ready\n", "text/plain")
                                      : reply(request, http::status::service_unavailable,
                                              "not ready: " + problem + "\n", "text/plain");
        }
        if (path != kEndpoint)
            co_return reply(request, http::status::not_found, "not found\n", "text/plain");
        switch (request.method()) {
            case http::verb::options: {
                // CORS preflight of an allowed browser origin (others got 403 above).
                Response response = reply(request, http::status::no_content);
                response.set(http::field::access_control_allow_methods, "GET, POST, DELETE");
                // The request headers of both revisions, and whatever Mcp-Param-* the page's
                // request will carry (the origin is allowed: its request headers are too).
                std::string allowed =
                    "Content-Type, Accept, Authorization, MCP-Session-Id, MCP-Protocol-Version, "
                    "Last-Event-ID, Mcp-Method, Mcp-Name, traceparent, tracestate";
                auto requested = request.find(http::field::access_control_request_headers);
                if (requested != request.end() && !requested->value().empty())
                    allowed += ", " + std::string(requested->value());
                response.set(http::field::access_control_allow_headers, allowed);
                response.set(http::field::access_control_max_age, "600");
                co_return response;
            }
            case http::verb::post: {
                Response response = co_await post(request, exchange);
                co_return response;
            }
            case http::verb::delete_: {
                if (options.require_token && !exchange.caller) co_return no_caller(request);
                Caller caller = exchange.caller.value_or(Caller());
                auto header = request.find("MCP-Session-Id");
                if (header == request.end())
                    co_return rpc_error(request, http::status::bad_request,
                                        error_code::kInvalidRequest,
                                        "Bad Request: DELETE needs an MCP-Session-Id header");
                std::shared_ptr<Session> session;
                auto found = sessions.find(std::string(header->value()));
                if (found != sessions.end() && found->second->owner == caller.owner) {
                    session = found->second;
                    sessions.erase(found);
                }
                if (session == nullptr)
                    co_return rpc_error(request, http::status::not_found,
                                        error_code::kInvalidRequest, "Session not found");
                retire(session, "session deleted by the client");
                co_return reply(request, http::status::no_content);
            }
            default: {
                Response response = rpc_error(request, http::status::method_not_allowed,
                                              error_code::kInvalidRequest,
                                              "Method not allowed: use POST, GET or DELETE");
                response.set(http::field::allow, "GET, POST, DELETE, OPTIONS");
                co_return response;
            }
        }
    }

    // 2026-07-28 over HTTP: the headers mirror the body (a proxy may have routed on them), and
    // what the revision refuses gets its status: 400 with HeaderMismatch (-32020) for a missing
    // or mismatching MCP-Protocol-Version, Mcp-Method or Mcp-Name; 400 with
    // UnsupportedProtocolVersion (-32022) and the supported list; 404 with -32601 for a method
    // not served; 400 for missing client capabilities. Nothing runs for a refused request.
    std::optional<Response> check_modern_request(const Request &request, const json &message,
                                                 const std::string &method,
                                                 const std::string &header_version) {
        const json *meta = nullptr;
        const json *params = nullptr;
        auto found = message.find("params");
        if (found != message.end() && found->is_object()) {
            params = &*found;
            auto m = params->find("_meta");
            if (m != params->end() && m->is_object()) meta = &*m;
        }
        std::string body_version;
        if (meta != nullptr) {
            auto v = meta->find(kProtocolVersionKey);
            if (v != meta->end() && v->is_string()) body_version = v->get<std::string>();
        }
        bool modern = header_version == kModernVersion ||
                      (!body_version.empty() && !is_legacy_version(body_version));
        if (!modern || !message.contains("id") || method == "initialize") return std::nullopt;
        json id = message["id"];
        auto refuse = [&](http::status status, int code, const std::string &text,
                          json data = nullptr) {
            return reply(request, status, safe_dump(make_error(id, code, text, std::move(data))));
        };
        auto mismatch = [&](const std::string &why) {
            return refuse(http::status::bad_request, error_code::kHeaderMismatch,
                          "Header mismatch: " + why);
        };
        if (header_version.empty()) return mismatch("the MCP-Protocol-Version header is required");
        if (body_version.empty())
            return refuse(
                http::status::bad_request, error_code::kInvalidParams,
                std::string("Invalid params: _meta[\"") + kProtocolVersionKey + "\"] is required");
        if (body_version != header_version)
            return mismatch("MCP-Protocol-Version header value '" + header_version +
                            "' does not match body value '" + body_version + "'");
        if (body_version != kModernVersion)
            return refuse(http::status::bad_request, error_code::kUnsupportedProtocolVersion,
                          "Unsupported protocol version",
                          {{"supported", all_versions()}, {"requested", body_version}});
        auto method_header = request.find("Mcp-Method");
        if (method_header == request.end()) return mismatch("the Mcp-Method header is required");
        if (std::string(method_header->value()) != method)
            return mismatch("Mcp-Method header value '" + std::string(method_header->value()) +
                            "' does not match body value '" + method + "'");
        if (!McpServer::serves_method(method, true))
            return refuse(http::status::not_found, error_code::kMethodNotFound,
                          "Method not found: " + method + " (protocol " + kModernVersion + ")");
        if (method == "tools/call" || method == "prompts/get" || method == "resources/read") {
            const char *field = method == "resources/read" ? "uri" : "name";
            auto body_name = params == nullptr ? json() : params->value(field, json());
            if (!body_name.is_string())
                return refuse(
                    http::status::bad_request, error_code::kInvalidParams,
                    std::string("Invalid params: \"") + field + "\" (a string) is required");
            auto name_header = request.find("Mcp-Name");
            if (name_header == request.end())
                return mismatch("the Mcp-Name header is required for " + method);
            std::optional<std::string> name = header_value(
                std::string_view(name_header->value().data(), name_header->value().size()));
            if (!name) return mismatch("the Mcp-Name header value is not valid");
            if (*name != body_name.get<std::string>())
                return mismatch("Mcp-Name header value '" + *name +
                                "' does not match body value '" + body_name.get<std::string>() +
                                "'");
        }
        auto capabilities = meta->find("io.modelcontextprotocol/clientCapabilities");
        if (capabilities == meta->end() || !capabilities->is_object())
            return refuse(http::status::bad_request, error_code::kInvalidParams,
                          "Invalid params: _meta[\"io.modelcontextprotocol/clientCapabilities\"] "
                          "is required (an object) with protocol " +
                              std::string(kModernVersion));
        return std::nullopt;
    }

    // Whether a request asks for notifications about itself: a progress token, or (2026-07-28)
    // a log level.
    static bool wants_notifications(const json &message) {
        auto params = message.find("params");
        if (params == message.end() || !params->is_object()) return false;
        auto meta = params->find("_meta");
        if (meta == params->end() || !meta->is_object()) return false;
        return meta->contains("progressToken") ||
               meta->contains("io.modelcontextprotocol/logLevel");
    }

    // A read kept pending on the connection while its request is served: it ends when the
    // client closes the connection (gone), or when the client sends more (kept for the next
    // request).
    struct ClientWatch {
        bool pending = false;
        bool gone = false;
    };
    void watch_client(Exchange &exchange, std::shared_ptr<SessionOutput::Waiter> waiter,
                      std::shared_ptr<ClientWatch> watch) {
        watch->pending = true;
        beast::flat_buffer *buffer = &exchange.buffer;
        exchange.stream.async_read_some(
            buffer->prepare(4096),
            [buffer, waiter, watch](const beast::error_code &error, size_t n) {
                watch->pending = false;
                if (n > 0) buffer->commit(n);
                if (error && error != asio::error::operation_aborted) watch->gone = true;
                waiter->wakeup.fire();
            });
    }
    // Stops the watch; returns once its read has completed.
    asio::awaitable<void> end_watch(Exchange &exchange,
                                    std::shared_ptr<SessionOutput::Waiter> waiter,
                                    std::shared_ptr<ClientWatch> watch) {
        if (watch->pending) exchange.stream.cancel();
        while (watch->pending) {
            waiter->wakeup.fired = false;
            co_await wait_until(waiter->wakeup, Clock::now() + std::chrono::seconds(1));
        }
    }

    // The head of a POST's event stream (chunked; the connection stays open after it).
    asio::awaitable<bool> start_event_stream(Exchange &exchange, const Request &request,
                                             const std::string &session_id) {
        http::response<http::empty_body> head{http::status::ok, request.version()};
        head.set(http::field::server, "pg_mcp_bridge");
        head.set(http::field::content_type, "text/event-stream");
        head.set(http::field::cache_control, "no-cache");
        head.set("X-Accel-Buffering", "no");
        if (!session_id.empty()) head.set("MCP-Session-Id", session_id);
        auto origin = request.find(http::field::origin);
        if (origin != request.end() && origin_allowed(request)) {
            head.set(http::field::access_control_allow_origin, origin->value());
            head.set(http::field::access_control_expose_headers,
                     "MCP-Session-Id, WWW-Authenticate");
            head.set(http::field::vary, "Origin");
        }
        head.keep_alive(request.keep_alive() && !stopping);
        head.chunked(true);
        responses_by_status[200]++;
        if (!set_phase(exchange.number, Connection::Phase::Writing)) co_return false;
        http::response_serializer<http::empty_body> serializer{head};
        beast::error_code error;
        co_await http::async_write_header(exchange.stream, serializer, with(error));
        set_phase(exchange.number, Connection::Phase::Busy);
        co_return !error;
    }
    // One chunk of a POST's event stream, within the write timeout.
    asio::awaitable<bool> write_chunk(Exchange &exchange, const std::string &text) {
        if (!set_phase(exchange.number, Connection::Phase::Writing)) co_return false;
        beast::error_code error;
        auto chunk = http::make_chunk(asio::buffer(text));
        co_await asio::async_write(exchange.stream, chunk, with(error));
        set_phase(exchange.number, Connection::Phase::Busy);
        co_return !error;
    }
    asio::awaitable<bool> write_event(Exchange &exchange, const std::string &message) {
        std::string text = "event: message\ndata: " + message + "\n\n";
        bool written = co_await write_chunk(exchange, text);
        co_return written;
    }
    asio::awaitable<bool> write_comment(Exchange &exchange) {
        static const std::string kComment = ": keep-alive\n\n";
        bool written = co_await write_chunk(exchange, kComment);
        co_return written;
    }
    asio::awaitable<bool> end_event_stream(Exchange &exchange) {
        if (!set_phase(exchange.number, Connection::Phase::Writing)) co_return false;
        beast::error_code error;
        auto last = http::make_chunk_last();
        co_await asio::async_write(exchange.stream, last, with(error));
        co_return !error;
    }

    asio::awaitable<Response> post(const Request &request, Exchange &exchange) {
        // The answer is JSON or an event stream, whichever the client accepts (both: a stream
        // when the request asks for progress or log messages, else JSON).
        auto accept = request.find(http::field::accept);
        std::string accepted = accept == request.end() ? "" : lower(std::string(accept->value()));
        bool any = accepted.find("*/*") != std::string::npos;
        bool json_ok = any || accepted.find("application/json") != std::string::npos ||
                       accepted.find("application/*") != std::string::npos;
        bool sse_ok = any || accepted.find("text/event-stream") != std::string::npos ||
                      accepted.find("text/*") != std::string::npos;
        if (!json_ok && !sse_ok)
            co_return rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                                "Not Acceptable: Accept must list application/json or "
                                "text/event-stream");
        auto content_type = request.find(http::field::content_type);
        if (content_type == request.end() ||
            lower(std::string(content_type->value())).rfind("application/json", 0) != 0)
            co_return rpc_error(request, http::status::unsupported_media_type,
                                error_code::kInvalidRequest,
                                "Unsupported Media Type: the body must be application/json");
        // A body that cannot be parsed whole is answered with its id when that can be read.
        if (nests_too_deep(request.body()))
            co_return reply(
                request, http::status::bad_request,
                safe_dump(make_error(
                    recover_request_id(request.body(), request.body()), error_code::kInvalidRequest,
                    "Invalid Request: the message nests more than 128 levels deep")));
        json message = json::parse(request.body(), nullptr, false);
        if (message.is_discarded())
            co_return reply(
                request, http::status::bad_request,
                safe_dump(make_error(recover_request_id(request.body(), request.body()),
                                     error_code::kParseError,
                                     "Parse error: the body is not valid JSON (invalid UTF-8 or "
                                     "escape, a number out of range, or a syntax error)")));
        if (!message.is_object())
            co_return rpc_error(
                request, http::status::bad_request, error_code::kInvalidRequest,
                "Invalid Request: the body must be one JSON-RPC message (no batches)");
        bool has_method = message.contains("method") && message["method"].is_string();
        bool has_id = message.contains("id");
        std::string method = has_method ? message["method"].get<std::string>() : "";
        // A header that must appear once, twice: a proxy may have read the other value.
        if (std::string repeated = repeated_header(request); !repeated.empty()) {
            bool mcp = lower(repeated).rfind("mcp", 0) == 0;
            co_return reply(request, http::status::bad_request,
                            safe_dump(make_error(
                                message.value("id", json()),
                                mcp ? error_code::kHeaderMismatch : error_code::kInvalidRequest,
                                (mcp ? "Header mismatch: the " : "Bad Request: the ") + repeated +
                                    " header appears more than once")));
        }

        std::string version;
        auto version_header = request.find("MCP-Protocol-Version");
        if (version_header != request.end()) {
            version = std::string(version_header->value());
            if (!is_supported_version(version))
                co_return reply(
                    request, http::status::bad_request,
                    safe_dump(make_error(message.value("id", json()),
                                         error_code::kUnsupportedProtocolVersion,
                                         "Unsupported protocol version \"" + version + "\"",
                                         {{"supported", all_versions()}, {"requested", version}})));
        }
        if (std::optional<Response> refused =
                check_modern_request(request, message, method, version))
            co_return std::move(*refused);

        if (options.require_token && !exchange.caller) co_return no_caller(request);
        Caller caller = exchange.caller.value_or(Caller());
        // The share one caller may take of what all share (sessions, requests in progress, turns
        // in the pool's queue): a principal's, or, for OAuth, one person's (people mapped to
        // one principal do not take each other's share).
        const std::string &principal = caller.share;
        // Whose share of the session caps a session takes: the caller's, or without tokens,
        // its client address's.
        const std::string cap_key =
            options.require_token ? principal : "address " + address_of(exchange.number);
        std::shared_ptr<Session> session;
        bool created = false;
        std::unique_ptr<RetireAfter> one_request;
        std::unique_ptr<OpeningSession> opening;  // counted against the caps until it is open
        // 2026-07-28 has no sessions: a session header on such a request is ignored.
        auto session_header =
            version == kModernVersion ? request.end() : request.find("MCP-Session-Id");
        if (session_header != request.end()) {
            session = find_session(std::string(session_header->value()));
            // A session answers only the token that opened it (others cannot even see it).
            if (session != nullptr && session->owner != caller.owner) session = nullptr;
            if (session == nullptr)
                co_return rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                                    "Session not found: start a new one with initialize");
        } else if (method == "initialize") {
            if (sessions.size() + opening_total >= options.max_sessions)
                co_return rpc_error(request, http::status::service_unavailable,
                                    error_code::kInvalidRequest,
                                    "Too many open sessions; retry later (end unused ones with "
                                    "DELETE)");
            // One principal cannot take the sessions every other principal shares.
            if (options.require_token && sessions_of(principal) + opening_by_principal[principal] >=
                                             options.max_sessions_per_principal)
                co_return too_many(request,
                                   "Too Many Requests: " + caller.share_name + " has " +
                                       std::to_string(options.max_sessions_per_principal) +
                                       " open sessions (--max-sessions-per-principal); end "
                                       "unused ones with DELETE");
            // Nor, without tokens, the clients of one address.
            if (!options.require_token && sessions_of(cap_key) + opening_by_principal[cap_key] >=
                                              options.max_sessions_per_address)
                co_return too_many(request,
                                   "Too Many Requests: this address has " +
                                       std::to_string(options.max_sessions_per_address) +
                                       " open sessions (--max-sessions-per-address); end unused "
                                       "ones with DELETE");
            // Concurrent initializes count too, until each is open or has failed.
            opening = std::make_unique<OpeningSession>(*this, cap_key);
            session =
                std::make_shared<Session>(io, new_session_id(), backend, server_options, logger,
                                          caller.owner, caller.principal_token, principal);
            session->principal = cap_key;
            created = true;
        } else if (version == kModernVersion) {
            // 2026-07-28 has no protocol-level sessions: the request gets a server of its own
            // (kept until its last backend reply, like an ended session).
            session = std::make_shared<Session>(io, "stateless-" + std::to_string(++stateless_ids),
                                                backend, server_options, logger, caller.owner,
                                                caller.principal_token, principal);
            one_request = std::make_unique<RetireAfter>(*this, session);
        } else {
            co_return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                                "Bad Request: MCP-Session-Id header required (initialize first)");
        }
        session->last_used = Clock::now().time_since_epoch().count();
        // An OAuth session runs as the identity of the token this request brought (a refreshed
        // token of the same person carries on the session); W3C trace context headers are for
        // this message's span (params._meta wins over them).
        MessageContext context;
        context.oauth_identity = caller.identity;
        if (auto header = request.find("traceparent"); header != request.end())
            context.traceparent = std::string(header->value());
        if (auto header = request.find("tracestate"); header != request.end())
            context.tracestate = std::string(header->value());
        // A 2026-07-28 subscription's notifications come on its response stream, open until
        // either side ends it.
        bool listen = method == "subscriptions/listen" && one_request != nullptr;
        if (listen && !sse_ok)
            co_return rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                                "Not Acceptable: subscriptions/listen is answered with an event "
                                "stream (Accept: text/event-stream)");

        if (!has_method || !has_id) {  // a notification or a response: accepted, no body
            if (!has_method && !message.contains("result") && !message.contains("error"))
                co_return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                                    "Invalid Request: not a JSON-RPC request, notification or "
                                    "response");
            // A cancelled request gets no response from the server; its POST, if the client
            // still reads it, gets a "cancelled" error.
            std::string cancelled;
            if (method == "notifications/cancelled" && message.contains("params") &&
                message["params"].is_object() && message["params"].contains("requestId"))
                cancelled = message["params"]["requestId"].dump();
            session->server.handle_message(std::move(message), context);
            if (!cancelled.empty())
                session->output.abandon(cancelled, "cancelled by the client", false);
            co_return reply(request, http::status::accepted);
        }
        const json id = message["id"];  // a copy: the message goes to the server
        if (!(id.is_string() || id.is_number_integer()))
            co_return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                                "Invalid Request: id must be a string or an integer");
        std::string key = id.dump();
        // Nor the calls: beyond its share, a principal's requests are refused (429), not queued
        // in front of everyone else's.
        CallSlot slot(*this, options.require_token ? principal : std::string());
        if (!slot.taken)
            co_return too_many(request, "Too Many Requests: " + caller.share_name + " has " +
                                            std::to_string(options.max_calls_per_principal) +
                                            " requests in progress (--max-calls-per-principal); "
                                            "retry when one finishes");
        auto waiter = std::make_shared<SessionOutput::Waiter>(io, id);
        waiter->sse = sse_ok && (listen || !json_ok || wants_notifications(message));
        if (!session->output.expect(key, waiter))
            co_return rpc_error(
                request, http::status::conflict, error_code::kInvalidRequest,
                "Conflict: a request with id " + key + " is already in progress in this session");
        try {
            session->server.handle_message(std::move(message), context);
        } catch (...) {
            session->output.forget(key);
            throw;
        }
        // While the answer is prepared: the request's events are written as they come (an
        // event stream), and a client that closes its connection cancels the request.
        // A subscription is reachable by catalog changes (a 2026-07-28 request's server is
        // in no session) while it is open.
        struct Listening {
            Impl &impl;
            std::shared_ptr<Session> session;
            bool on;
            ~Listening() {
                if (on) impl.listeners.erase(session);
            }
        } listening{*this, session, listen};
        if (listen) listeners.insert(session);
        // A request answered within a moment is not watched (a watch costs system calls).
        auto deadline = listen ? Clock::time_point::max() : Clock::now() + options.request_timeout;
        auto next_comment = Clock::now() + kKeepAliveComment;
        auto watch_from = Clock::now() + kWatchAfter;
        auto watch = std::make_shared<ClientWatch>();
        bool watching = false;
        bool streaming = false;
        auto &state = session->output.state();
        for (;;) {
            if (waiter->sse && !waiter->events.empty() && !watch->gone) {
                if (!streaming) {
                    streaming = true;
                    bool started = co_await start_event_stream(exchange, request, {});
                    if (!started) watch->gone = true;
                }
                next_comment = Clock::now() + kKeepAliveComment;
                while (!waiter->events.empty() && !watch->gone) {
                    std::string event = std::move(waiter->events.front());
                    waiter->events.pop_front();
                    bool written = co_await write_event(exchange, event);
                    if (!written) watch->gone = true;
                }
                continue;
            }
            {
                // Closed by the bridge (eviction, or the end of the stop's grace period): as if
                // the client had gone.
                auto connection = connections.find(exchange.number);
                if (connection == connections.end() || connection->second.closing)
                    watch->gone = true;
            }
            if (waiter->done || watch->gone || state.aborted) break;
            if (!watching && Clock::now() >= watch_from) {
                watch_client(exchange, waiter, watch);
                watching = true;
            }
            if (streaming && Clock::now() >= next_comment) {
                // A quiet stream gets a comment now and then (intermediaries keep it open).
                bool written = co_await write_comment(exchange);
                if (!written) watch->gone = true;
                next_comment = Clock::now() + kKeepAliveComment;
                continue;
            }
            waiter->wakeup.fired = false;
            auto until = !watching   ? watch_from
                         : streaming ? std::min(deadline, next_comment)
                                     : deadline;
            // A subscription between events may be evicted like a GET stream (it holds a
            // connection for as long as the client likes).
            bool idle_stream = listen && streaming;
            if (idle_stream) {
                set_phase(exchange.number, Connection::Phase::Streaming);
                connections[exchange.number].stream_wakeup = &waiter->wakeup;
                connections[exchange.number].subscription = true;
            }
            bool woke = co_await wait_until(waiter->wakeup, until);
            if (idle_stream) {
                auto connection = connections.find(exchange.number);
                if (connection != connections.end() && !connection->second.closing) {
                    connection->second.stream_wakeup = nullptr;
                    set_phase(exchange.number, Connection::Phase::Busy);
                }
            }
            if (!woke && watching && Clock::now() >= deadline && !waiter->done &&
                waiter->events.empty() && !watch->gone)
                break;
        }
        co_await end_watch(exchange, waiter, watch);
        session->output.forget(key);
        if (watch->gone && !waiter->done) {
            // The client went away: the request is cancelled (its query too), and nothing more
            // is written for it.
            json cancel = {
                {"jsonrpc", "2.0"},
                {"method", "notifications/cancelled"},
                {"params", {{"requestId", id}, {"reason", "the client closed the connection"}}}};
            session->server.handle_message(std::move(cancel));
            logger.log(LogLevel::Info, "request " + key + " cancelled: the client disconnected");
            exchange.written = exchange.close = true;
            co_return Response{};
        }
        if (streaming && !waiter->done && !state.aborted) {
            // Given up (the request timeout): the work is cancelled too, as for a JSON answer.
            json cancel = {{"jsonrpc", "2.0"},
                           {"method", "notifications/cancelled"},
                           {"params", {{"requestId", id}, {"reason", "timed out"}}}};
            session->server.handle_message(std::move(cancel));
        }
        if (streaming || (waiter->sse && waiter->done)) {
            // The response ends the stream (a request cancelled by the client ends it empty).
            // An initialize answered this way (a client that takes only streams) has nothing
            // before its response: the session header can still go with the stream's head.
            std::string session_id;
            if (created && waiter->done && waiter->response.opens_session) {
                sessions.emplace(session->id, session);
                session_id = session->id;
            }
            bool ok = true;
            if (!streaming) {
                bool started = co_await start_event_stream(exchange, request, session_id);
                ok = started;
            }
            if (ok && !waiter->response.text.empty()) {
                bool written = co_await write_event(exchange, waiter->response.text);
                ok = written;
            }
            if (ok) {
                bool ended = co_await end_event_stream(exchange);
                ok = ended;
            }
            exchange.written = true;
            exchange.close = !ok || !waiter->done;  // timed out: the stream just ends
            co_return Response{};
        }
        if (!waiter->done) {
            // Given up: the work is cancelled too, so that it frees its connection and id.
            json cancel = {{"jsonrpc", "2.0"},
                           {"method", "notifications/cancelled"},
                           {"params", {{"requestId", id}, {"reason", "timed out"}}}};
            session->server.handle_message(std::move(cancel));
            co_return rpc_error(request, http::status::gateway_timeout, error_code::kInternalError,
                                "No response within the bridge's request timeout");
        }
        if (waiter->response.text.empty()) {
            // Cancelled by the client: an event stream that ends without any message.
            Response response{http::status::ok, request.version()};
            response.set(http::field::server, "pg_mcp_bridge");
            response.set(http::field::content_type, "text/event-stream");
            response.set(http::field::cache_control, "no-cache");
            response.keep_alive(request.keep_alive());
            response.prepare_payload();
            co_return response;
        }
        // The database refused the token during the request (revoked since it was cached).
        if (options.require_token && waiter->response.error_code == error_code::kUnauthorized)
            co_return refusal_response(request, gate.revoked(caller));
        Reply &answer = waiter->response;
        Response response = reply(request, http::status::ok, std::move(answer.text));
        if (created && answer.opens_session) {
            sessions.emplace(session->id, session);
            response.set("MCP-Session-Id", session->id);
        }
        if (one_request != nullptr) response.set(http::field::cache_control, answer.cache_control);
        co_return response;
    }

    // GET /mcp: the session's event stream (text/event-stream), for notifications that belong
    // to no request. Returns the session to stream for, or nullptr with `refusal` set.
    asio::awaitable<std::shared_ptr<Session>> open_event_stream(const Request &request,
                                                                const std::optional<Caller> &given,
                                                                Response &refusal) {
        auto accept = request.find(http::field::accept);
        if (accept == request.end() ||
            lower(std::string(accept->value())).find("text/event-stream") == std::string::npos) {
            refusal = rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                                "Not Acceptable: a GET stream needs Accept: text/event-stream");
            co_return nullptr;
        }
        if (options.require_token && !given) {
            refusal = no_caller(request);
            co_return nullptr;
        }
        Caller caller = given.value_or(Caller());
        auto header = request.find("MCP-Session-Id");
        if (header == request.end()) {
            refusal =
                rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                          "Bad Request: GET needs an MCP-Session-Id header (initialize first)");
            co_return nullptr;
        }
        std::shared_ptr<Session> session = find_session(std::string(header->value()));
        if (session == nullptr || session->owner != caller.owner) {
            refusal = rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                                "Session not found: start a new one with initialize");
            co_return nullptr;
        }
        co_return session;
    }

    // Writes the stream's events as they come, with a comment every 15 s (which also finds a
    // client that has gone), until the session ends, a newer GET replaces the stream, the
    // server stops, or the client goes away.
    asio::awaitable<void> stream_events(beast::tcp_stream &stream, uint64_t number,
                                        const Request &request, std::shared_ptr<Session> session) {
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
        Wakeup wakeup(io);
        SessionOutput &output = session->output;
        // A stream resumed after its event N (Last-Event-ID: N) first gets the events after N.
        std::optional<uint64_t> resume_after;
        auto last_event = request.find("Last-Event-ID");
        if (last_event != request.end()) {
            std::string value(last_event->value());
            if (!value.empty() && value.size() <= 19 &&
                value.find_first_not_of("0123456789") == std::string::npos)
                resume_after = std::stoull(value);
        }
        uint64_t cursor = 0;
        uint64_t stream_number = output.open_stream(wakeup, resume_after, cursor);
        responses_by_status[200]++;
        streams++;
        struct Ended {
            Impl &impl;
            SessionOutput &output;
            uint64_t number;
            ~Ended() {
                impl.streams--;
                output.stream_ended(number);
            }
        } ended{*this, output, stream_number};
        if (!set_phase(number, Connection::Phase::Writing)) co_return;
        co_await http::async_write_header(stream, serializer, with(error));
        auto idle_since = Clock::now();
        SessionOutput::State &state = output.state();
        auto over = [&] {
            auto found = connections.find(number);
            return error || stopping || state.stream != stream_number || state.aborted ||
                   found == connections.end() || found->second.closing;
        };
        while (!over()) {
            if (state.after(cursor) == nullptr) {
                if (!set_phase(number, Connection::Phase::Streaming)) break;
                connections[number].stream_wakeup = &wakeup;
                wakeup.fired = false;
                co_await wait_until(wakeup, idle_since + kKeepAliveComment);
                if (over()) break;
            }
            std::string text;
            if (const SessionOutput::State::Event *event = state.after(cursor)) {
                text = "id: " + std::to_string(event->id) +
                       "\nevent: message\ndata: " + event->text + "\n\n";
                cursor = event->id;
                // Events keep the session in use; keep-alive comments do not (an idle session
                // with an open stream still expires, and its stream ends).
                session->last_used = Clock::now().time_since_epoch().count();
            } else if (Clock::now() - idle_since >= kKeepAliveComment) {
                text = ": keep-alive\n\n";
            } else {
                continue;
            }
            idle_since = Clock::now();
            if (!set_phase(number, Connection::Phase::Writing)) break;
            auto chunk = http::make_chunk(asio::buffer(text));
            co_await asio::async_write(stream, chunk, with(error));
        }
        if (!error && set_phase(number, Connection::Phase::Writing)) {
            auto last = http::make_chunk_last();
            co_await asio::async_write(stream, last, with(error));
        }
    }

    std::string metrics_text() {
        std::string out = options.metrics ? options.metrics() : std::string();
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
               std::to_string(connections_timed_out) + "\n";
        out += "pg_mcp_bridge_http_connections_closed_total{reason=\"evicted\"} " +
               std::to_string(connections_evicted) + "\n";
        out +=
            "# HELP pg_mcp_bridge_http_slow_bodies_total Connections closed for sending a "
            "request body below --body-min-rate.\n";
        out += "# TYPE pg_mcp_bridge_http_slow_bodies_total counter\n";
        out += "pg_mcp_bridge_http_slow_bodies_total " + std::to_string(slow_bodies) + "\n";
        out += "# HELP pg_mcp_bridge_http_event_streams Open GET event streams.\n";
        out += "# TYPE pg_mcp_bridge_http_event_streams gauge\n";
        out += "pg_mcp_bridge_http_event_streams " + std::to_string(streams) + "\n";
        if (options.require_token) out += gate.metrics();
        return out;
    }

    // Writes a response within the write timeout; false when it could not be written.
    asio::awaitable<bool> write_response(beast::tcp_stream &stream, uint64_t number,
                                         Response &response) {
        if (!set_phase(number, Connection::Phase::Writing)) co_return false;
        beast::error_code error;
        co_await http::async_write(stream, response, with(error));
        if (error == beast::error::timeout) connections_timed_out++;
        co_return !error;
    }

    // A client connection: requests one after another (keep-alive) until it closes, a deadline
    // passes, it is evicted, or the server stops.
    asio::awaitable<void> serve(tcp::socket socket, uint64_t number) {
        beast::tcp_stream stream(std::move(socket));
        {
            auto found = connections.find(number);
            if (found != connections.end()) found->second.stream = &stream;
        }
        try {
            co_await serve_requests(stream, number);
        } catch (const std::exception &failure) {
            logger.log(LogLevel::Error,
                       std::string("internal error serving a connection: ") + failure.what());
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
        connections.erase(number);
    }

    // Whether a request is one the gate must let in: the MCP endpoint's POST, GET and DELETE
    // (by path and method alone: nothing a body or trailer could change).
    bool needs_caller(const Request &head) {
        if (!options.require_token) return false;
        std::string target(head.target());
        if (target.substr(0, target.find('?')) != kEndpoint) return false;
        http::verb method = head.method();
        return method == http::verb::post || method == http::verb::get ||
               method == http::verb::delete_;
    }

    // A request whose gate check could not have run (it must not be served without a caller).
    Response no_caller(const Request &request) {
        return rpc_error(request, http::status::unauthorized, error_code::kUnauthorized,
                         "Unauthorized: the request was not authenticated");
    }

    static size_t field_count(const Request &request) {
        return static_cast<size_t>(std::distance(request.begin(), request.end()));
    }

    // A request's body: within `limit` of its head, and no slower than options.body_min_rate
    // bytes a second after the first kBodyGrace (a client trickling a body cannot hold a
    // connection for the whole limit).
    static constexpr auto kBodyGrace = std::chrono::seconds(2);
    asio::awaitable<beast::error_code> read_body(beast::tcp_stream &stream,
                                                 beast::flat_buffer &buffer,
                                                 http::request_parser<http::string_body> &parser,
                                                 std::chrono::milliseconds limit) {
        Clock::time_point start = Clock::now(), deadline = start + limit;
        double rate = static_cast<double>(std::max<size_t>(options.body_min_rate, 1));
        uint64_t received = 0;
        beast::error_code error;
        while (!parser.is_done()) {
            auto owed = std::chrono::duration_cast<Clock::duration>(
                std::chrono::duration<double>(static_cast<double>(received) / rate));
            Clock::time_point until = std::min(deadline, start + kBodyGrace + owed);
            if (until <= Clock::now()) {
                slow_bodies++;
                co_return beast::error::timeout;
            }
            stream.expires_at(until);
            size_t n = co_await http::async_read_some(stream, buffer, parser, with(error));
            if (error) {
                if (error == beast::error::timeout) slow_bodies++;
                co_return error;
            }
            received += n;
        }
        co_return error;
    }

    // The gate's refusal of a request whose body was not read: a small body (sent with its
    // head, as clients do) is read first, briefly, so that the connection stays usable; else
    // the connection is answered and closed, the rest of the body drained for a moment so the
    // client reads the answer rather than a reset. True when the connection goes on.
    static constexpr uint64_t kSmallBody = 64 * 1024;
    asio::awaitable<bool> answer_before_body(beast::tcp_stream &stream, uint64_t number,
                                             beast::flat_buffer &buffer,
                                             http::request_parser<http::string_body> &parser,
                                             Response response) {
        auto length = parser.content_length();
        bool small = parser.is_done() || (length && *length <= kSmallBody);
        if (small && set_phase(number, Connection::Phase::Body)) {
            beast::error_code error =
                co_await read_body(stream, buffer, parser, std::chrono::seconds(5));
            if (!error) {
                responses_by_status[response.result_int()]++;
                bool written = co_await write_response(stream, number, response);
                co_return written &&response.keep_alive() && !stopping;
            }
        }
        response.keep_alive(false);
        responses_by_status[response.result_int()]++;
        if (co_await write_response(stream, number, response)) co_await linger(stream, number);
        co_return false;
    }

    // Before closing a connection whose request was not read whole: stop sending, then read
    // and drop what the client still sends (for a moment, a bounded amount).
    asio::awaitable<void> linger(beast::tcp_stream &stream, uint64_t number) {
        if (auto found = connections.find(number); found != connections.end()) {
            found->second.phase = Connection::Phase::Draining;
            found->second.since = Clock::now();
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.expires_after(std::chrono::seconds(2));
        std::vector<char> sink(65536);
        for (size_t drained = 0; drained < 4 * options.max_body_bytes;) {
            size_t n = co_await stream.async_read_some(asio::buffer(sink), with(ignored));
            if (ignored || n == 0) break;
            drained += n;
        }
    }

    asio::awaitable<void> serve_requests(beast::tcp_stream &stream, uint64_t number) {
        // Bounded: a head, a body and their framing (chunk extensions, which Beast does not
        // limit) cannot make it grow past this.
        beast::flat_buffer buffer(options.max_body_bytes + 64 * 1024);
        for (bool first = true;; first = false) {
            if (!set_phase(number, Connection::Phase::Waiting, first)) co_return;
            http::request_parser<http::string_body> parser;
            parser.body_limit(options.max_body_bytes);
            beast::error_code error;
            std::optional<Caller> caller;
            co_await http::async_read_header(stream, buffer, parser, with(error));
            if (!error) {
                if (!set_phase(number, Connection::Phase::Body)) co_return;
                // A body framed two ways, or by a coding other than chunked, is refused:
                // framing it by Content-Length would let a proxy in front see other requests.
                std::string problem = framing_problem(parser.get());
                if (!problem.empty()) {
                    Response response = rpc_error(parser.get(), http::status::bad_request,
                                                  error_code::kInvalidRequest, problem);
                    response.keep_alive(false);
                    co_await write_response(stream, number, response);
                    co_return;
                }
                // The caller, from the head alone: a request the gate refuses never gets to
                // send a large or slow body.
                if (needs_caller(parser.get())) {
                    if (!set_phase(number, Connection::Phase::Checking)) co_return;
                    Caller who;
                    std::optional<Response> refused =
                        co_await authenticate(parser.get(), address_of(number), who);
                    if (refused) {
                        bool more = co_await answer_before_body(stream, number, buffer, parser,
                                                                std::move(*refused));
                        if (more) continue;
                        co_return;
                    }
                    caller = std::move(who);
                    if (auto found = connections.find(number); found != connections.end())
                        found->second.known = true;
                    if (!set_phase(number, Connection::Phase::Body)) co_return;
                }
                size_t head_fields = field_count(parser.get());
                error = co_await read_body(stream, buffer, parser, options.body_timeout);
                // Trailer fields (after a chunked body) would be read as headers the gate, and a
                // proxy in front, never saw: refused.
                if (!error && field_count(parser.get()) != head_fields) {
                    Response response = rpc_error(parser.get(), http::status::bad_request,
                                                  error_code::kInvalidRequest,
                                                  "Bad Request: trailer fields are not accepted");
                    response.keep_alive(false);
                    co_await write_response(stream, number, response);
                    co_return;
                }
            }
            if (error == beast::error::timeout) {
                connections_timed_out++;
                co_return;
            }
            if (error == http::error::body_limit) {
                Request request = parser.release();
                Response response = rpc_error(
                    request, http::status::payload_too_large, error_code::kInvalidRequest,
                    "Payload Too Large: the body exceeds " +
                        std::to_string(options.max_body_bytes) + " bytes (--max-message-bytes)");
                response.keep_alive(false);
                bool written = co_await write_response(stream, number, response);
                if (!written) co_return;
                // The rest of the body is drained before closing, so that a client still
                // sending gets the 413 instead of a broken pipe.
                co_await linger(stream, number);
                co_return;
            }
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
                    co_await write_response(stream, number, response);
                }
                co_return;
            }
            // Closed meanwhile (evicted as the request arrived): the request is not served.
            if (!set_phase(number, Connection::Phase::Busy)) co_return;
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
                    std::shared_ptr<Session> opened =
                        co_await open_event_stream(request, caller, refused);
                    session = std::move(opened);
                } catch (const std::exception &failure) {
                    logger.log(
                        LogLevel::Error,
                        std::string("internal error opening an event stream: ") + failure.what());
                    refused = rpc_error(request, http::status::internal_server_error,
                                        error_code::kInternalError, "Internal error");
                }
                if (session != nullptr) {
                    co_await stream_events(stream, number, request, session);
                    co_return;  // the stream ends the connection
                }
                refusal = std::move(refused);
            }
            in_flight++;
            struct Done {
                int &count;
                ~Done() { count--; }
            } done{in_flight};
            Exchange exchange{stream, number, buffer, false, false, std::move(caller)};
            Response response;
            try {
                if (refusal) {
                    response = std::move(*refusal);
                } else {
                    Response handled = co_await handle(request, exchange);
                    response = std::move(handled);
                }
            } catch (const std::exception &failure) {
                logger.log(
                    LogLevel::Error,
                    std::string("internal error handling an HTTP request: ") + failure.what());
                response = rpc_error(request, http::status::internal_server_error,
                                     error_code::kInternalError, "Internal error");
            }
            if (exchange.written) {  // an event stream, written by post()
                if (exchange.close || stopping || !request.keep_alive()) co_return;
                continue;
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
            responses_by_status[response.result_int()]++;
            bool written = co_await write_response(stream, number, response);
            if (!written || !response.keep_alive()) co_return;
            // Without tokens, a client that was answered is known (evicted after strangers).
            if (auto found = connections.find(number); found != connections.end())
                found->second.known = found->second.known || !options.require_token;
        }
    }

    // 503 for a connection that cannot be admitted. The request is read first (up to its
    // header, for at most a second) so that closing does not reset the connection under the
    // answer; a few refusals at a time get that care, the rest are answered and closed at once.
    asio::awaitable<void> refuse_busy(tcp::socket socket) {
        static const char kBusy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
            "Retry-After: 1\r\n\r\n";
        beast::tcp_stream stream(std::move(socket));
        beast::error_code error;
        bool careful = refusing < 16;
        if (careful) {
            refusing++;
            std::string head;
            stream.expires_after(std::chrono::seconds(1));
            auto into = asio::dynamic_buffer(head, 16384);
            co_await asio::async_read_until(stream, into, "\r\n\r\n", with(error));
            refusing--;
        }
        stream.expires_after(std::chrono::seconds(1));
        co_await asio::async_write(stream, asio::buffer(kBusy, sizeof kBusy - 1), with(error));
        stream.socket().shutdown(tcp::socket::shutdown_send, error);
        stream.close();
    }

    asio::awaitable<void> accept_connections() {
        while (!stopping) {
            tcp::socket socket(io);
            beast::error_code error;
            co_await acceptor.async_accept(socket, with(error));
            if (stopping) break;
            if (error) {  // e.g. out of file descriptors: do not spin
                logger.log(LogLevel::Warning, "accepting a connection failed: " + error.message());
                asio::steady_timer pause(io, std::chrono::milliseconds(100));
                co_await pause.async_wait(with(error));
                continue;
            }
            beast::error_code ignored;
            std::string address = address_key(socket.remote_endpoint(ignored).address());
            if (!make_room(address)) {  // every connection is serving a request: refuse it
                spawn(refuse_busy(std::move(socket)));
                continue;
            }
            socket.set_option(tcp::no_delay(true), ignored);
            uint64_t number = ++connections_opened;
            connections[number].address = address;
            spawn(serve(std::move(socket), number));
        }
    }

    // Every second: sessions ended and idle are freed; every 30 s, unused sessions end.
    asio::awaitable<void> housekeeping() {
        asio::steady_timer timer(io);
        housekeeping_timer = &timer;
        auto last_expiry = Clock::now();
        while (!stopping) {
            timer.expires_after(std::chrono::seconds(1));
            beast::error_code error;
            co_await timer.async_wait(with(error));
            reap();
            gate.tick();
            if (Clock::now() - last_expiry > std::chrono::seconds(30)) {
                expire_sessions();
                last_expiry = Clock::now();
            }
        }
        housekeeping_timer = nullptr;
    }

    // Stopping: no new connections; idle keep-alive connections and event streams end at
    // once; requests in flight finish (up to the grace period), then are cancelled and
    // abandoned; the loop ends when every connection is closed.
    asio::awaitable<void> finish() {
        beast::error_code error;
        acceptor.close(error);
        if (housekeeping_timer != nullptr) housekeeping_timer->cancel();
        auto deadline = Clock::now() + grace;
        asio::steady_timer timer(io);
        // Subscriptions end at once, each with its final result (their streams close once it
        // is written, not before).
        std::vector<std::shared_ptr<Session>> subscribed(listeners.begin(), listeners.end());
        for (auto &session : subscribed) session->server.shutdown();
        auto shut_idle = [&] {
            for (auto &[number, c] : connections)
                if (c.phase == Connection::Phase::Waiting ||
                    (c.phase == Connection::Phase::Streaming && !c.subscription))
                    shut(c);
        };
        shut_idle();
        while (!connections.empty() && Clock::now() < deadline) {
            shut_idle();
            timer.expires_after(std::chrono::milliseconds(50));
            co_await timer.async_wait(with(error));
        }
        // Past the grace period: requests still running are cancelled and abandoned.
        for (auto &[number, c] : connections) shut(c);
        for (auto &[id, session] : sessions) {
            session->end("the server is stopping");
            session->output.abort();
        }
        for (int waited = 0; tasks > 0 && waited < 200; waited++) {
            timer.expires_after(std::chrono::milliseconds(50));
            co_await timer.async_wait(with(error));
        }
        if (tasks > 0) {
            // A coroutine still refers to this server: the process ends here rather than free
            // it under that coroutine.
            logger.log(LogLevel::Error, std::to_string(tasks) +
                                            " HTTP task(s) did not finish within 10 s of the "
                                            "grace period; exiting");
            std::_Exit(1);
        }
        finished.set_value();
    }
};

HttpServer::HttpServer(asio::io_context &loop, Backend &backend, ServerOptions server_options,
                       const Logger &logger, HttpOptions options, ReadinessFn readiness)
    : impl_(std::make_unique<Impl>(loop, backend, std::move(server_options), logger,
                                   std::move(options), std::move(readiness))) {}

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

void HttpServer::run(std::chrono::milliseconds grace) {
    Impl *impl = impl_.get();
    std::future<void> finished = impl->finished.get_future();
    asio::post(impl->io, [impl, grace] {
        impl->grace = grace;
        impl->spawn(impl->accept_connections());
        impl->spawn(impl->housekeeping());
    });
    finished.wait();
}

void HttpServer::stop() {
    Impl *impl = impl_.get();
    if (impl->stopping.exchange(true)) return;
    asio::post(impl->io, [impl] { asio::co_spawn(impl->io, impl->finish(), asio::detached); });
}

void HttpServer::tools_changed() {
    Impl *impl = impl_.get();
    asio::post(impl->io, [impl] {
        for (auto &entry : impl->sessions) entry.second->server.tools_changed();
        for (auto &session : impl->listeners) session->server.tools_changed();
    });
}

}  // namespace pg_mcp::bridge
