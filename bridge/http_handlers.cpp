// The HTTP transport's request handlers but POST's: routing (endpoint, Host, Origin, CORS,
// authentication), GET /mcp event streams, DELETE, the readiness and metadata endpoints.

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include "http_server_impl.hpp"

namespace pg_mcp::bridge {

Response HttpServer::Impl::refusal_response(const Request &request, const Refusal &refusal) {
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
    if (!refusal.challenge.empty()) response.set(http::field::www_authenticate, refusal.challenge);
    if (refusal.retry_after) response.set(http::field::retry_after, "1");
    return response;
}

asio::awaitable<std::optional<Response>> HttpServer::Impl::authenticate(const Request &request,
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

asio::awaitable<Response> HttpServer::Impl::resource_metadata(const Request &request) {
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

asio::awaitable<std::string> HttpServer::Impl::probe_readiness() {
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

bool HttpServer::Impl::host_allowed(const Request &request) {
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
    // An address, not a name: DNS rebinding makes a browser send the attacker's name, never an
    // address, so any address is let in (Kubernetes' probes and Prometheus scrape a pod by its
    // address).
    std::string literal = name.size() > 2 && name.front() == '[' && name.back() == ']'
                              ? name.substr(1, name.size() - 2)
                              : name;
    beast::error_code not_an_address;
    auto address = asio::ip::make_address(literal, not_an_address);
    if (!not_an_address && (name.front() == '[') == address.is_v6()) return true;
    for (const auto &allowed : options.allowed_hosts)
        if (name == lower(allowed)) return true;
    return false;
}

bool HttpServer::Impl::origin_allowed(const Request &request) {
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

bool HttpServer::Impl::loopback_listener() const {
    beast::error_code error;
    auto address = asio::ip::make_address(options.address, error);
    return options.address == "localhost" || (!error && address.is_loopback());
}

asio::awaitable<Response> HttpServer::Impl::handle(const Request &request, Exchange &exchange) {
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
                co_return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                                    "Bad Request: DELETE needs an MCP-Session-Id header");
            std::string id(header->value());
            auto found = sessions.find(id);
            if (found != sessions.end() && found->second->owner == caller.owner) {
                std::shared_ptr<Session> session = found->second;
                sessions.erase(found);
                remember_ended(session->ticket, session->ticket_issued);
                announce_ended(session->ticket, session->ticket_issued);
                retire(session, "session deleted by the client");
                co_return reply(request, http::status::no_content);
            }
            // A valid ticket of this caller's that this bridge does not hold: ended here too.
            if (found == sessions.end() && options.session_keys && looks_like_ticket(id)) {
                std::optional<SessionKeys::Ticket> ticket = options.session_keys->open(
                    id, caller.owner, std::chrono::system_clock::now(), options.session_lifetime);
                if (ticket && ended_tickets.count(ticket->name) == 0) {
                    remember_ended(ticket->name, ticket->issued);
                    announce_ended(ticket->name, ticket->issued);
                    co_return reply(request, http::status::no_content);
                }
            }
            co_return rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                                "Session not found");
        }
        default: {
            Response response =
                rpc_error(request, http::status::method_not_allowed, error_code::kInvalidRequest,
                          "Method not allowed: use POST, GET or DELETE");
            response.set(http::field::allow, "GET, POST, DELETE, OPTIONS");
            co_return response;
        }
    }
}

asio::awaitable<std::shared_ptr<HttpServer::Session>> HttpServer::Impl::open_event_stream(
    const Request &request, const std::optional<Caller> &given, const std::string &address,
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
        refusal = rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                            "Bad Request: GET needs an MCP-Session-Id header (initialize first)");
        co_return nullptr;
    }
    std::string id(header->value());
    std::shared_ptr<Session> session = find_session(id);
    if (session == nullptr) {
        std::optional<Response> refused;
        session = resume_session(id, caller, options.require_token ? caller.share : address,
                                 request, refused);
        if (refused) {
            refusal = std::move(*refused);
            co_return nullptr;
        }
    }
    if (session == nullptr || session->owner != caller.owner) {
        refusal = rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                            "Session not found: start a new one with initialize");
        co_return nullptr;
    }
    co_return session;
}

asio::awaitable<void> HttpServer::Impl::stream_events(beast::tcp_stream &stream, uint64_t number,
                                                      const Request &request,
                                                      std::shared_ptr<Session> session) {
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
            text = "id: " + std::to_string(event->id) + "\nevent: message\ndata: " + event->text +
                   "\n\n";
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

bool HttpServer::Impl::needs_caller(const Request &head) {
    if (!options.require_token) return false;
    std::string target(head.target());
    if (target.substr(0, target.find('?')) != kEndpoint) return false;
    http::verb method = head.method();
    return method == http::verb::post || method == http::verb::get || method == http::verb::delete_;
}

Response HttpServer::Impl::no_caller(const Request &request) {
    return rpc_error(request, http::status::unauthorized, error_code::kUnauthorized,
                     "Unauthorized: the request was not authenticated");
}

}  // namespace pg_mcp::bridge
