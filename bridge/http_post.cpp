// POST /mcp: one JSON-RPC message, answered with JSON or an event stream (its notifications,
// then its response), watched while it runs (a client that goes away cancels it).

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include "http_server_impl.hpp"
#include "trace.hpp"

namespace pg_mcp::bridge {

std::optional<Response> HttpServer::Impl::check_modern_request(const Request &request,
                                                               const json &message,
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
    auto refuse = [&](http::status status, int code, const std::string &text, json data = nullptr) {
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
            return refuse(http::status::bad_request, error_code::kInvalidParams,
                          std::string("Invalid params: \"") + field + "\" (a string) is required");
        auto name_header = request.find("Mcp-Name");
        if (name_header == request.end())
            return mismatch("the Mcp-Name header is required for " + method);
        std::optional<std::string> name = header_value(
            std::string_view(name_header->value().data(), name_header->value().size()));
        if (!name) return mismatch("the Mcp-Name header value is not valid");
        if (*name != body_name.get<std::string>())
            return mismatch("Mcp-Name header value '" + *name + "' does not match body value '" +
                            body_name.get<std::string>() + "'");
    }
    auto capabilities = meta->find("io.modelcontextprotocol/clientCapabilities");
    if (capabilities == meta->end() || !capabilities->is_object())
        return refuse(http::status::bad_request, error_code::kInvalidParams,
                      "Invalid params: _meta[\"io.modelcontextprotocol/clientCapabilities\"] "
                      "is required (an object) with protocol " +
                          std::string(kModernVersion));
    return std::nullopt;
}

bool HttpServer::Impl::wants_notifications(const json &message) {
    auto params = message.find("params");
    if (params == message.end() || !params->is_object()) return false;
    auto meta = params->find("_meta");
    if (meta == params->end() || !meta->is_object()) return false;
    return meta->contains("progressToken") || meta->contains("io.modelcontextprotocol/logLevel");
}

void HttpServer::Impl::watch_client(Exchange &exchange,
                                    std::shared_ptr<SessionOutput::Waiter> waiter,
                                    std::shared_ptr<ClientWatch> watch) {
    watch->pending = true;
    beast::flat_buffer *buffer = &exchange.buffer;
    exchange.stream.async_read_some(
        buffer->prepare(4096), [buffer, waiter, watch](const beast::error_code &error, size_t n) {
            watch->pending = false;
            if (n > 0) buffer->commit(n);
            if (error && error != asio::error::operation_aborted) watch->gone = true;
            waiter->wakeup.fire();
        });
}

asio::awaitable<void> HttpServer::Impl::end_watch(Exchange &exchange,
                                                  std::shared_ptr<SessionOutput::Waiter> waiter,
                                                  std::shared_ptr<ClientWatch> watch) {
    if (watch->pending) exchange.stream.cancel();
    while (watch->pending) {
        waiter->wakeup.fired = false;
        co_await wait_until(waiter->wakeup, Clock::now() + std::chrono::seconds(1));
    }
}

asio::awaitable<bool> HttpServer::Impl::start_event_stream(Exchange &exchange,
                                                           const Request &request,
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
        head.set(http::field::access_control_expose_headers, "MCP-Session-Id, WWW-Authenticate");
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

asio::awaitable<bool> HttpServer::Impl::write_chunk(Exchange &exchange, const std::string &text) {
    if (!set_phase(exchange.number, Connection::Phase::Writing)) co_return false;
    beast::error_code error;
    auto chunk = http::make_chunk(asio::buffer(text));
    co_await asio::async_write(exchange.stream, chunk, with(error));
    set_phase(exchange.number, Connection::Phase::Busy);
    co_return !error;
}

asio::awaitable<bool> HttpServer::Impl::write_event(Exchange &exchange,
                                                    const std::string &message) {
    std::string text = "event: message\ndata: " + message + "\n\n";
    bool written = co_await write_chunk(exchange, text);
    co_return written;
}

asio::awaitable<bool> HttpServer::Impl::write_comment(Exchange &exchange) {
    static const std::string kComment = ": keep-alive\n\n";
    bool written = co_await write_chunk(exchange, kComment);
    co_return written;
}

asio::awaitable<bool> HttpServer::Impl::end_event_stream(Exchange &exchange) {
    if (!set_phase(exchange.number, Connection::Phase::Writing)) co_return false;
    beast::error_code error;
    auto last = http::make_chunk_last();
    co_await asio::async_write(exchange.stream, last, with(error));
    co_return !error;
}

// post()'s first step: the message, read and checked with its headers (call.message,
// method, version, what the client accepts); or the refusal.
std::optional<Response> HttpServer::Impl::read_message(PostCall &call) {
    const Request &request = call.request;
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
        return rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                         "Not Acceptable: Accept must list application/json or "
                         "text/event-stream");
    auto content_type = request.find(http::field::content_type);
    if (content_type == request.end() ||
        lower(std::string(content_type->value())).rfind("application/json", 0) != 0)
        return rpc_error(request, http::status::unsupported_media_type, error_code::kInvalidRequest,
                         "Unsupported Media Type: the body must be application/json");
    // A body that cannot be parsed whole is answered with its id when that can be read.
    if (nests_too_deep(request.body()))
        return reply(
            request, http::status::bad_request,
            safe_dump(make_error(recover_request_id(request.body(), request.body()),
                                 error_code::kInvalidRequest,
                                 "Invalid Request: the message nests more than 128 levels deep")));
    json message = json::parse(request.body(), nullptr, false);
    if (message.is_discarded())
        return reply(
            request, http::status::bad_request,
            safe_dump(make_error(recover_request_id(request.body(), request.body()),
                                 error_code::kParseError,
                                 "Parse error: the body is not valid JSON (invalid UTF-8 or "
                                 "escape, a number out of range, or a syntax error)")));
    if (!message.is_object())
        return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                         "Invalid Request: the body must be one JSON-RPC message (no batches)");
    bool has_method = message.contains("method") && message["method"].is_string();
    bool has_id = message.contains("id");
    std::string method = has_method ? message["method"].get<std::string>() : "";
    // A header that must appear once, twice: a proxy may have read the other value.
    if (std::string repeated = repeated_header(request); !repeated.empty()) {
        bool mcp = lower(repeated).rfind("mcp", 0) == 0;
        return reply(
            request, http::status::bad_request,
            safe_dump(make_error(message.value("id", json()),
                                 mcp ? error_code::kHeaderMismatch : error_code::kInvalidRequest,
                                 (mcp ? "Header mismatch: the " : "Bad Request: the ") + repeated +
                                     " header appears more than once")));
    }

    std::string version;
    auto version_header = request.find("MCP-Protocol-Version");
    if (version_header != request.end()) {
        version = std::string(version_header->value());
        if (!is_supported_version(version))
            return reply(request, http::status::bad_request,
                         safe_dump(make_error(
                             message.value("id", json()), error_code::kUnsupportedProtocolVersion,
                             "Unsupported protocol version \"" + version + "\"",
                             {{"supported", all_versions()}, {"requested", version}})));
    }
    if (std::optional<Response> refused = check_modern_request(request, message, method, version))
        return std::move(*refused);

    call.json_ok = json_ok;
    call.sse_ok = sse_ok;
    call.has_method = has_method;
    call.has_id = has_id;
    call.method = std::move(method);
    call.version = std::move(version);
    call.message = std::move(message);
    return std::nullopt;
}

std::optional<Response> HttpServer::Impl::session_caps(const Request &request, const Caller &caller,
                                                       const std::string &cap_key) {
    if (sessions.size() + opening_total >= options.max_sessions)
        return rpc_error(request, http::status::service_unavailable, error_code::kInvalidRequest,
                         "Too many open sessions; retry later (end unused ones with DELETE)");
    // One principal cannot take the sessions every other principal shares.
    if (options.require_token &&
        sessions_of(cap_key) + opening_by_principal[cap_key] >= options.max_sessions_per_principal)
        return too_many(request, "Too Many Requests: " + caller.share_name + " has " +
                                     std::to_string(options.max_sessions_per_principal) +
                                     " open sessions (--max-sessions-per-principal); end "
                                     "unused ones with DELETE");
    // Nor, without tokens, the clients of one address.
    if (!options.require_token &&
        sessions_of(cap_key) + opening_by_principal[cap_key] >= options.max_sessions_per_address)
        return too_many(request, "Too Many Requests: this address has " +
                                     std::to_string(options.max_sessions_per_address) +
                                     " open sessions (--max-sessions-per-address); end unused "
                                     "ones with DELETE");
    return std::nullopt;
}

SessionKeys::Ticket HttpServer::Impl::seal_ticket(const json &message, const Caller &caller) {
    auto params = message.find("params");
    SessionState state = McpServer::negotiate(
        params != message.end() && params->is_object() ? *params : json::object());
    return options.session_keys->seal(state, caller.owner, std::chrono::system_clock::now());
}

std::shared_ptr<HttpServer::Session> HttpServer::Impl::resume_session(
    const std::string &id, const Caller &caller, const std::string &cap_key, const Request &request,
    std::optional<Response> &refusal) {
    if (!options.session_keys || !looks_like_ticket(id)) return nullptr;
    std::optional<SessionKeys::Ticket> ticket = options.session_keys->open(
        id, caller.owner, std::chrono::system_clock::now(), options.session_lifetime);
    if (!ticket || ended_tickets.count(ticket->name) > 0) return nullptr;
    if ((refusal = session_caps(request, caller, cap_key))) return nullptr;
    // Its backend work is keyed apart from that of an earlier stay here still draining.
    auto session = std::make_shared<Session>(
        io, id, backend, server_options, logger, caller.owner, caller.principal_token, caller.share,
        ticket->name, ticket->name + "." + std::to_string(++session_prefixes));
    session->principal = cap_key;
    session->ticket = ticket->name;
    session->ticket_issued = ticket->issued;
    if (!session->server.resume(ticket->state) || !sessions.emplace(id, session).second)
        return nullptr;
    sessions_resumed++;
    logger.log(LogLevel::Info, "session " + ticket->name + " (" + ticket->state.version +
                                   ") taken up from its ticket");
    return session;
}

void HttpServer::Impl::remember_ended(const std::string &name, int64_t issued) {
    if (name.empty()) return;
    if (ended_tickets.size() >= kMaxEndedTickets) {  // the oldest goes first
        ended_tickets.erase(ended_by_issue.begin()->second);
        ended_by_issue.erase(ended_by_issue.begin());
    }
    if (ended_tickets.insert(name).second) ended_by_issue.emplace(issued, name);
}

void HttpServer::Impl::announce_ended(const std::string &name, int64_t issued) {
    if (name.empty()) return;
    Work work;
    work.operation = Operation::EndSession;
    work.key = "end-session/" + name;
    work.name = name + " " + std::to_string(issued);
    const Logger &log = logger;
    backend.submit(std::move(work), [&log, name](BackendReply reply) {
        if (!reply.ok)
            log.log(LogLevel::Warning, "could not tell the other bridges that session " + name +
                                           " ended (" + reply.error_message +
                                           "); they take it up until it expires");
    });
}

// post()'s second step: the caller and the session the message goes to (found, opened by an
// initialize, or one of its own for a 2026-07-28 request), within the caps; or the refusal.
std::optional<Response> HttpServer::Impl::choose_session(PostCall &call) {
    const Request &request = call.request;
    Exchange &exchange = call.exchange;
    const std::string &method = call.method;
    const std::string &version = call.version;
    if (options.require_token && !exchange.caller) return no_caller(request);
    call.caller = exchange.caller.value_or(Caller());
    const Caller &caller = call.caller;
    // The share one caller may take of what all share (sessions, requests in progress, turns
    // in the pool's queue): a principal's, or, for OAuth, one person's (people mapped to
    // one principal do not take each other's share).
    const std::string &principal = caller.share;
    // Whose share of the session caps a session takes: the caller's, or without tokens,
    // its client address's.
    const std::string cap_key =
        options.require_token ? principal : "address " + address_of(exchange.number);
    std::shared_ptr<Session> &session = call.session;
    // 2026-07-28 has no sessions: a session header on such a request is ignored.
    auto session_header =
        version == kModernVersion ? request.end() : request.find("MCP-Session-Id");
    if (session_header != request.end()) {
        std::string id(session_header->value());
        session = find_session(id);
        // A session this bridge does not hold may be one of its tickets.
        std::optional<Response> refused;
        if (session == nullptr) session = resume_session(id, caller, cap_key, request, refused);
        if (refused) return refused;
        // A session answers only the token that opened it (others cannot even see it).
        if (session != nullptr && session->owner != caller.owner) session = nullptr;
        if (session == nullptr)
            return rpc_error(request, http::status::not_found, error_code::kInvalidRequest,
                             "Session not found: start a new one with initialize");
    } else if (method == "initialize") {
        if (std::optional<Response> refused = session_caps(request, caller, cap_key))
            return refused;
        // Concurrent initializes count too, until each is open or has failed.
        call.opening = std::make_unique<OpeningSession>(*this, cap_key);
        if (options.session_keys) {
            SessionKeys::Ticket ticket = seal_ticket(call.message, caller);
            if (ticket.text.empty())
                return rpc_error(request, http::status::internal_server_error,
                                 error_code::kInternalError,
                                 "Internal error: the session could not be sealed; retry");
            session = std::make_shared<Session>(io, ticket.text, backend, server_options, logger,
                                                caller.owner, caller.principal_token, principal,
                                                ticket.name, ticket.name);
            session->ticket = ticket.name;
            session->ticket_issued = ticket.issued;
        } else {
            session =
                std::make_shared<Session>(io, new_session_id(), backend, server_options, logger,
                                          caller.owner, caller.principal_token, principal);
        }
        session->principal = cap_key;
        call.created = true;
    } else if (version == kModernVersion) {
        // 2026-07-28 has no protocol-level sessions: the request gets a server of its own
        // (kept until its last backend reply, like an ended session).
        session = std::make_shared<Session>(io, "stateless-" + std::to_string(++stateless_ids),
                                            backend, server_options, logger, caller.owner,
                                            caller.principal_token, principal);
        call.one_request = std::make_unique<RetireAfter>(*this, session);
    } else {
        return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                         "Bad Request: MCP-Session-Id header required (initialize first)");
    }
    session->last_used = Clock::now().time_since_epoch().count();
    // An OAuth session runs as the identity of the token this request brought (a refreshed
    // token of the same person carries on the session); W3C trace context headers are for
    // this message's span (params._meta wins over them).
    MessageContext &context = call.context;
    context.oauth_identity = caller.identity;
    if (auto header = request.find("traceparent"); header != request.end())
        context.traceparent = std::string(header->value());
    if (auto header = request.find("tracestate"); header != request.end())
        context.tracestate = std::string(header->value());
    if (Tracer::global() != nullptr) {  // the span's network attributes
        boost::system::error_code ignored;
        auto peer = call.exchange.stream.socket().remote_endpoint(ignored);
        if (!ignored) {
            context.client_address = peer.address().to_string();
            context.client_port = peer.port();
        }
        context.http_version =
            std::to_string(request.version() / 10) + "." + std::to_string(request.version() % 10);
    }
    // A 2026-07-28 subscription's notifications come on its response stream, open until
    // either side ends it.
    call.listen = method == "subscriptions/listen" && call.one_request != nullptr;
    if (call.listen && !call.sse_ok)
        return rpc_error(request, http::status::not_acceptable, error_code::kInvalidRequest,
                         "Not Acceptable: subscriptions/listen is answered with an event "
                         "stream (Accept: text/event-stream)");

    return std::nullopt;
}

asio::awaitable<Response> HttpServer::Impl::post(const Request &request, Exchange &exchange) {
    PostCall call(request, exchange);
    if (std::optional<Response> refused = read_message(call)) co_return std::move(*refused);
    if (std::optional<Response> refused = choose_session(call)) co_return std::move(*refused);
    json &message = call.message;
    const std::string &method = call.method;
    std::shared_ptr<Session> &session = call.session;
    const MessageContext &context = call.context;
    const Caller &caller = call.caller;
    bool listen = call.listen;
    if (!call.has_method || !call.has_id) {  // a notification or a response: accepted, no body
        if (!call.has_method && !message.contains("result") && !message.contains("error"))
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
    call.id = message["id"];   // a copy: the message goes to the server
    const json &id = call.id;  // a copy: the message goes to the server
    if (!(id.is_string() || id.is_number_integer()))
        co_return rpc_error(request, http::status::bad_request, error_code::kInvalidRequest,
                            "Invalid Request: id must be a string or an integer");
    call.key = id.dump();
    const std::string &key = call.key;
    // Nor the calls: beyond its share, a principal's requests are refused (429), not queued
    // in front of everyone else's.
    CallSlot slot(*this, options.require_token ? caller.share : std::string());
    if (!slot.taken)
        co_return too_many(request, "Too Many Requests: " + caller.share_name + " has " +
                                        std::to_string(options.max_calls_per_principal) +
                                        " requests in progress (--max-calls-per-principal); "
                                        "retry when one finishes");
    call.waiter = std::make_shared<SessionOutput::Waiter>(io, id);
    auto &waiter = call.waiter;
    // An event stream also where a call may ask a person first (elicitation/create goes on it).
    waiter->sse = call.sse_ok && (listen || !call.json_ok || wants_notifications(message) ||
                                  (call.method == "tools/call" && session->server.can_elicit()));
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
    co_await await_answer(call);
    Response response = co_await finish_answer(call);
    co_return response;
}

// post()'s wait for the answer: the request's events written as they come (an event stream),
// the client watched (one that goes away: call.watch->gone), until the answer is in, the
// request timeout, or the server's stop.
asio::awaitable<void> HttpServer::Impl::await_answer(PostCall &call) {
    const Request &request = call.request;
    Exchange &exchange = call.exchange;
    auto &waiter = call.waiter;
    bool listen = call.listen;
    bool &streaming = call.streaming;
    // A request answered within a moment is not watched (a watch costs system calls).
    auto deadline = listen ? Clock::time_point::max() : Clock::now() + options.request_timeout;
    auto next_comment = Clock::now() + kKeepAliveComment;
    auto watch_from = Clock::now() + kWatchAfter;
    call.watch = std::make_shared<ClientWatch>();
    auto &watch = call.watch;
    bool watching = false;
    auto &state = call.session->output.state();
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
            if (connection == connections.end() || connection->second.closing) watch->gone = true;
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
}

// post()'s answer, once the wait is over: the response (JSON, or the end of the event
// stream), or nothing for a client that has gone; a request given up is cancelled.
asio::awaitable<Response> HttpServer::Impl::finish_answer(PostCall &call) {
    const Request &request = call.request;
    Exchange &exchange = call.exchange;
    auto &waiter = call.waiter;
    auto &watch = call.watch;
    auto &session = call.session;
    const json &id = call.id;
    const std::string &key = call.key;
    bool streaming = call.streaming;
    bool created = call.created;
    auto &state = session->output.state();
    co_await end_watch(exchange, waiter, watch);
    session->output.forget(key);
    if (watch->gone && !waiter->done) {
        // The client went away: the request is cancelled (its query too), and nothing more
        // is written for it.
        cancel_request(*session, id, "the client closed the connection");
        logger.log(LogLevel::Info, "request " + key + " cancelled: the client disconnected");
        exchange.written = exchange.close = true;
        co_return Response{};
    }
    if (streaming && !waiter->done && !state.aborted) {
        // Given up (the request timeout): the work is cancelled too, as for a JSON answer.
        cancel_request(*session, id, "timed out");
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
        cancel_request(*session, id, "timed out");
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
        co_return refusal_response(request, gate.revoked(call.caller));
    Reply &answer = waiter->response;
    Response response = reply(request, http::status::ok, std::move(answer.text));
    if (created && answer.opens_session) {
        sessions.emplace(session->id, session);
        response.set("MCP-Session-Id", session->id);
    }
    if (call.one_request != nullptr) response.set(http::field::cache_control, answer.cache_control);
    co_return response;
}

void HttpServer::Impl::cancel_request(Session &session, const json &id, const std::string &reason) {
    json cancel = {{"jsonrpc", "2.0"},
                   {"method", "notifications/cancelled"},
                   {"params", {{"requestId", id}, {"reason", reason}}}};
    session.server.handle_message(std::move(cancel));
}

}  // namespace pg_mcp::bridge
