// The HTTP transport's server: accepting connections, each connection's requests with their
// phases and deadlines, eviction when connections run short, housekeeping (expired sessions,
// ended ones), the metrics, and start and stop.

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include "http_server_impl.hpp"

namespace pg_mcp::bridge {

void HttpServer::Impl::spawn(asio::awaitable<void> task) {
    tasks++;
    asio::co_spawn(io, std::move(task), [this](std::exception_ptr failure) {
        tasks--;
        if (failure) logger.log(LogLevel::Error, "internal error in the HTTP transport");
    });
}

Response HttpServer::Impl::reply(const Request &request, http::status status, std::string body,
                                 const char *content_type) {
    Response response{status, request.version()};
    response.set(http::field::server, "pg_mcp_bridge");
    if (!body.empty()) response.set(http::field::content_type, content_type);
    response.keep_alive(request.keep_alive());
    response.body() = std::move(body);
    response.prepare_payload();
    return response;
}

Response HttpServer::Impl::rpc_error(const Request &request, http::status status, int code,
                                     const std::string &message) {
    return reply(request, status, safe_dump(make_error(nullptr, code, message)));
}

Response HttpServer::Impl::too_many(const Request &request, const std::string &message) {
    Response response =
        rpc_error(request, http::status::too_many_requests, error_code::kServerBusy, message);
    response.set(http::field::retry_after, "1");
    return response;
}

size_t HttpServer::Impl::sessions_of(const std::string &principal) const {
    size_t count = 0;
    for (const auto &entry : sessions) count += entry.second->principal == principal;
    return count;
}

std::string HttpServer::Impl::address_of(uint64_t number) const {
    auto found = connections.find(number);
    return found == connections.end() ? std::string() : found->second.address;
}

std::shared_ptr<HttpServer::Session> HttpServer::Impl::find_session(const std::string &id) {
    auto found = sessions.find(id);
    return found == sessions.end() ? nullptr : found->second;
}

void HttpServer::Impl::retire(const std::shared_ptr<Session> &session, const std::string &reason) {
    session->end(reason);
    draining.push_back(session);
}

bool HttpServer::Impl::set_phase(uint64_t number, Connection::Phase phase, bool first_request) {
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
            c.stream->expires_after(first_request ? options.header_timeout : options.idle_timeout);
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

std::string HttpServer::Impl::address_key(const asio::ip::address &address) {
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

void HttpServer::Impl::shut(Connection &c) {
    if (c.closing) return;
    c.closing = true;
    if (c.stream != nullptr) {
        beast::error_code ignored;
        c.stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        c.stream->cancel();
    }
    if (c.stream_wakeup != nullptr) c.stream_wakeup->fire();
}

bool HttpServer::Impl::make_room(const std::string &address) {
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

int HttpServer::Impl::eviction_tier(const Connection &c) {
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

void HttpServer::Impl::reap() {
    draining.erase(std::remove_if(draining.begin(), draining.end(),
                                  [](const std::shared_ptr<Session> &session) {
                                      return session->server.idle();
                                  }),
                   draining.end());
}

void HttpServer::Impl::expire_sessions() {
    // Ended tickets are remembered until they would have expired anyway.
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    while (!ended_by_issue.empty() &&
           ended_by_issue.begin()->first + options.session_lifetime.count() + 60 < now) {
        ended_tickets.erase(ended_by_issue.begin()->second);
        ended_by_issue.erase(ended_by_issue.begin());
    }
    auto limit = Clock::now() - options.session_idle;
    std::vector<std::shared_ptr<Session>> expired;
    for (auto it = sessions.begin(); it != sessions.end();) {
        // Idle, or (a ticket's session) past its lifetime, however busy.
        bool outlived = !it->second->ticket.empty() &&
                        it->second->ticket_issued + options.session_lifetime.count() < now;
        if (outlived || (Clock::time_point(Clock::duration(it->second->last_used.load())) < limit &&
                         it->second->server.in_flight() == 0)) {
            expired.push_back(it->second);
            it = sessions.erase(it);
        } else {
            ++it;
        }
    }
    for (auto &session : expired) retire(session, "session expired");
}

std::string HttpServer::Impl::metrics_text() {
    std::string out = options.metrics ? options.metrics() : std::string();
    out += "# HELP pg_mcp_bridge_http_responses_total HTTP responses, by status code.\n";
    out += "# TYPE pg_mcp_bridge_http_responses_total counter\n";
    for (const auto &entry : responses_by_status)
        out += "pg_mcp_bridge_http_responses_total{code=\"" + std::to_string(entry.first) + "\"} " +
               std::to_string(entry.second) + "\n";
    out += "# HELP pg_mcp_bridge_http_sessions Open MCP sessions.\n";
    out += "# TYPE pg_mcp_bridge_http_sessions gauge\n";
    out += "pg_mcp_bridge_http_sessions " + std::to_string(sessions.size()) + "\n";
    out +=
        "# HELP pg_mcp_bridge_http_sessions_resumed_total Sessions taken up from their "
        "ticket (opened on another bridge, before a restart, or dropped as idle).\n";
    out += "# TYPE pg_mcp_bridge_http_sessions_resumed_total counter\n";
    out += "pg_mcp_bridge_http_sessions_resumed_total " + std::to_string(sessions_resumed) + "\n";
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

asio::awaitable<bool> HttpServer::Impl::write_response(beast::tcp_stream &stream, uint64_t number,
                                                       Response &response) {
    if (!set_phase(number, Connection::Phase::Writing)) co_return false;
    beast::error_code error;
    co_await http::async_write(stream, response, with(error));
    if (error == beast::error::timeout) connections_timed_out++;
    co_return !error;
}

asio::awaitable<void> HttpServer::Impl::serve(tcp::socket socket, uint64_t number) {
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

size_t HttpServer::Impl::field_count(const Request &request) {
    return static_cast<size_t>(std::distance(request.begin(), request.end()));
}

asio::awaitable<beast::error_code> HttpServer::Impl::read_body(
    beast::tcp_stream &stream, beast::flat_buffer &buffer,
    http::request_parser<http::string_body> &parser, std::chrono::milliseconds limit) {
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

asio::awaitable<bool> HttpServer::Impl::answer_before_body(
    beast::tcp_stream &stream, uint64_t number, beast::flat_buffer &buffer,
    http::request_parser<http::string_body> &parser, Response response) {
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

asio::awaitable<void> HttpServer::Impl::linger(beast::tcp_stream &stream, uint64_t number) {
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

asio::awaitable<void> HttpServer::Impl::serve_requests(beast::tcp_stream &stream, uint64_t number) {
    // Bounded: a head, a body and their framing (chunk extensions, which Beast does not
    // limit) cannot make it grow past this.
    beast::flat_buffer buffer(options.max_body_bytes + 64 * 1024);
    for (bool first = true;; first = false) {
        if (!set_phase(number, Connection::Phase::Waiting, first)) co_return;
        http::request_parser<http::string_body> parser;
        parser.body_limit(options.max_body_bytes);
        std::optional<Caller> caller;
        ReadOutcome read = co_await read_request(stream, number, buffer, parser, caller);
        if (read == ReadOutcome::Next) continue;
        if (read == ReadOutcome::Close) co_return;
        // Closed meanwhile (evicted as the request arrived): the request is not served.
        if (!set_phase(number, Connection::Phase::Busy)) co_return;
        bool more =
            co_await serve_request(stream, number, buffer, parser.release(), std::move(caller));
        if (!more) co_return;
    }
}

// One request's head, its caller (from the head alone: a request the gate refuses never gets
// to send a large or slow body) and its body, with what goes wrong answered here.
asio::awaitable<HttpServer::Impl::ReadOutcome> HttpServer::Impl::read_request(
    beast::tcp_stream &stream, uint64_t number, beast::flat_buffer &buffer,
    http::request_parser<http::string_body> &parser, std::optional<Caller> &caller) {
    beast::error_code error;
    co_await http::async_read_header(stream, buffer, parser, with(error));
    if (!error) {
        if (!set_phase(number, Connection::Phase::Body)) co_return ReadOutcome::Close;
        // A body framed two ways, or by a coding other than chunked, is refused:
        // framing it by Content-Length would let a proxy in front see other requests.
        std::string problem = framing_problem(parser.get());
        if (!problem.empty()) {
            Response response = rpc_error(parser.get(), http::status::bad_request,
                                          error_code::kInvalidRequest, problem);
            response.keep_alive(false);
            co_await write_response(stream, number, response);
            co_return ReadOutcome::Close;
        }
        // The caller, from the head alone: a request the gate refuses never gets to
        // send a large or slow body.
        if (needs_caller(parser.get())) {
            if (!set_phase(number, Connection::Phase::Checking)) co_return ReadOutcome::Close;
            Caller who;
            std::optional<Response> refused =
                co_await authenticate(parser.get(), address_of(number), who);
            if (refused) {
                bool more = co_await answer_before_body(stream, number, buffer, parser,
                                                        std::move(*refused));
                co_return more ? ReadOutcome::Next : ReadOutcome::Close;
            }
            caller = std::move(who);
            if (auto found = connections.find(number); found != connections.end())
                found->second.known = true;
            if (!set_phase(number, Connection::Phase::Body)) co_return ReadOutcome::Close;
        }
        size_t head_fields = field_count(parser.get());
        error = co_await read_body(stream, buffer, parser, options.body_timeout);
        // Trailer fields (after a chunked body) would be read as headers the gate, and a
        // proxy in front, never saw: refused.
        if (!error && field_count(parser.get()) != head_fields) {
            Response response =
                rpc_error(parser.get(), http::status::bad_request, error_code::kInvalidRequest,
                          "Bad Request: trailer fields are not accepted");
            response.keep_alive(false);
            co_await write_response(stream, number, response);
            co_return ReadOutcome::Close;
        }
    }
    if (error == beast::error::timeout) {
        connections_timed_out++;
        co_return ReadOutcome::Close;
    }
    if (error == http::error::body_limit) {
        Request request = parser.release();
        Response response =
            rpc_error(request, http::status::payload_too_large, error_code::kInvalidRequest,
                      "Payload Too Large: the body exceeds " +
                          std::to_string(options.max_body_bytes) + " bytes (--max-message-bytes)");
        response.keep_alive(false);
        bool written = co_await write_response(stream, number, response);
        if (!written) co_return ReadOutcome::Close;
        // The rest of the body is drained before closing, so that a client still
        // sending gets the 413 instead of a broken pipe.
        co_await linger(stream, number);
        co_return ReadOutcome::Close;
    }
    if (error) {
        // A request that is not HTTP gets 400 before the connection closes (a client
        // that closed needs nothing).
        if (&error.category() == &http::make_error_code(http::error::bad_target).category() &&
            error != http::error::end_of_stream && error != http::error::partial_message) {
            Response response =
                rpc_error(parser.get(), http::status::bad_request, error_code::kInvalidRequest,
                          "Bad Request: malformed HTTP (" + error.message() + ")");
            response.keep_alive(false);
            co_await write_response(stream, number, response);
        }
        co_return ReadOutcome::Close;
    }
    co_return ReadOutcome::Serve;
}

// One request read whole, answered (a GET stream runs here until it ends); false when the
// connection ends with it.
asio::awaitable<bool> HttpServer::Impl::serve_request(beast::tcp_stream &stream, uint64_t number,
                                                      beast::flat_buffer &buffer, Request request,
                                                      std::optional<Caller> caller) {
    std::string target(request.target());
    bool event_stream = request.method() == http::verb::get &&
                        target.substr(0, target.find('?')) == kEndpoint && host_allowed(request) &&
                        origin_allowed(request);
    std::optional<Response> refusal;
    if (event_stream) {
        std::shared_ptr<Session> session;
        Response refused;
        try {
            std::shared_ptr<Session> opened = co_await open_event_stream(
                request, caller, "address " + address_of(number), refused);
            session = std::move(opened);
        } catch (const std::exception &failure) {
            logger.log(LogLevel::Error,
                       std::string("internal error opening an event stream: ") + failure.what());
            refused = rpc_error(request, http::status::internal_server_error,
                                error_code::kInternalError, "Internal error");
        }
        if (session != nullptr) {
            co_await stream_events(stream, number, request, session);
            co_return false;  // the stream ends the connection
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
        logger.log(LogLevel::Error,
                   std::string("internal error handling an HTTP request: ") + failure.what());
        response = rpc_error(request, http::status::internal_server_error,
                             error_code::kInternalError, "Internal error");
    }
    if (exchange.written) {  // an event stream, written by post()
        if (exchange.close || stopping || !request.keep_alive()) co_return false;
        co_return true;
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
    if (!written || !response.keep_alive()) co_return false;
    // Without tokens, a client that was answered is known (evicted after strangers).
    if (auto found = connections.find(number); found != connections.end())
        found->second.known = found->second.known || !options.require_token;
    co_return true;
}

asio::awaitable<void> HttpServer::Impl::refuse_busy(tcp::socket socket) {
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

asio::awaitable<void> HttpServer::Impl::accept_connections() {
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

asio::awaitable<void> HttpServer::Impl::housekeeping() {
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

asio::awaitable<void> HttpServer::Impl::finish() {
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
    if (stop_loop_when_finished) io.stop();
}

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
    if (!drives_loop(impl->io)) {
        finished.wait();
        return;
    }
    // On the loop's own thread: the loop runs here until finish() stops it.
    impl->stop_loop_when_finished = true;
    while (finished.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        impl->io.restart();
        impl->io.run();
    }
    impl->io.restart();
}

void HttpServer::stop() {
    Impl *impl = impl_.get();
    if (impl->stopping.exchange(true)) return;
    asio::post(impl->io, [impl] { asio::co_spawn(impl->io, impl->finish(), asio::detached); });
}

void HttpServer::session_ended(const std::string &payload) {
    // 32 hex digits, a space, the issue time in seconds (at most 18 digits: no overflow).
    size_t space = payload.find(' ');
    if (space != 32 || payload.size() > 32 + 1 + 18 || payload.size() == 33) return;
    for (size_t i = 0; i < payload.size(); i++) {
        char c = payload[i];
        bool ok = i < 32 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
                         : i == 32 || (c >= '0' && c <= '9');
        if (!ok) return;
    }
    std::string name = payload.substr(0, 32);
    int64_t issued = std::stoll(payload.substr(33));
    Impl *impl = impl_.get();
    asio::post(impl->io, [impl, name, issued] {
        impl->remember_ended(name, issued);
        for (auto it = impl->sessions.begin(); it != impl->sessions.end(); ++it) {
            if (it->second->ticket != name) continue;
            std::shared_ptr<Session> session = it->second;
            impl->sessions.erase(it);
            impl->retire(session, "session deleted by the client (on another bridge)");
            break;
        }
    });
}

void HttpServer::tools_changed() {
    Impl *impl = impl_.get();
    asio::post(impl->io, [impl] {
        for (auto &entry : impl->sessions) entry.second->server.tools_changed();
        for (auto &session : impl->listeners) session->server.tools_changed();
    });
}

}  // namespace pg_mcp::bridge
