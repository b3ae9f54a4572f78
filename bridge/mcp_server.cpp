// The protocol layer's dispatch: messages classified and routed by era, the method table,
// initialize and discover, spans, cancellation, notifications to the client and shutdown.
#include "mcp_server.hpp"

#include "otlp_metrics.hpp"

#include <algorithm>
#include <cstring>

#include "mcp_protocol.hpp"

namespace pg_mcp::bridge {

const char *const kModernVersion = "2026-07-28";
const char *const kLegacyVersions[3] = {"2025-11-25", "2025-06-18", "2025-03-26"};
const char *const kProtocolVersionKey = "io.modelcontextprotocol/protocolVersion";

json all_versions() {
    json versions = json::array({kModernVersion});
    for (const char *version : kLegacyVersions) versions.push_back(version);
    return versions;
}

bool is_legacy_version(const std::string &version) {
    return std::any_of(std::begin(kLegacyVersions), std::end(kLegacyVersions),
                       [&](const char *known) { return version == known; });
}

bool McpServer::serves_method(const std::string &method, bool modern) {
    return find_method(method, modern) != nullptr;
}

bool is_supported_version(const std::string &version) {
    return version == kModernVersion || is_legacy_version(version);
}

McpServer::McpServer(Backend &backend, Output &output, ServerOptions options, const Logger &logger)
    : backend_(backend), output_(output), options_(std::move(options)), logger_(logger) {}

size_t McpServer::in_flight() const {
    return in_flight_.size() + streaming_;
}

std::string streamed_prefix(const json &message) {
    // nlohmann's objects keep their keys sorted: "result" comes after "id" and "jsonrpc", so the
    // dump ends with the result object's and the message's closing braces.
    std::string text = message.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() < 4 || text.compare(text.size() - 2, 2, "}}") != 0 ||
        !message.contains("result") || !message["result"].is_object() || message["result"].empty())
        throw std::logic_error("a streamed message needs a non-empty \"result\" object last");
    text.resize(text.size() - 2);
    text.push_back(',');
    return text;
}

void Output::send_streamed(Reply head, BodyStream &body) {
    std::string chunk;
    while (body.next(chunk)) head.text += chunk;
    if (!body.failed.empty()) return;
    head.text += "}}";
    answer(std::move(head));
}

void McpServer::send(json message, const Request *request) {
    if (!message.is_object() || !(message.contains("result") || message.contains("error"))) {
        output_.send(message);
        return;
    }
    auto id = message.find("id");
    if (id != message.end() && !id->is_null()) end_span(*id, &message);
    output_.answer(make_reply(message, request));
}

Reply McpServer::make_reply(json &message, const Request *request) const {
    Reply reply;
    reply.id = message.value("id", json());
    auto error = message.find("error");
    if (error != message.end()) {
        reply.error_code = error->is_object() ? error->value("code", error_code::kInternalError)
                                              : error_code::kInternalError;
        if (reply.error_code == 0) reply.error_code = error_code::kInternalError;
    }
    auto result = message.find("result");
    if (request != nullptr && result != message.end() && result->is_object()) {
        reply.opens_session = request->method == "initialize";
        const MethodRow *row = request->modern ? find_method(request->method, true) : nullptr;
        json ttl = result->value("ttlMs", json());
        std::string scope = result->value("cacheScope", "");
        if (row != nullptr && row->cacheable && ttl.is_number_integer() &&
            ttl.get<int64_t>() >= 0 && (scope == "public" || scope == "private"))
            reply.cache_control = scope + ", max-age=" + std::to_string(ttl.get<int64_t>() / 1000);
    }
    reply.text = message.dump(-1, ' ', false, json::error_handler_t::replace);
    return reply;
}

// The request's span (MCP and OpenTelemetry semantic conventions): a child of the caller's
// span when it sent one (params._meta.traceparent, else the transport's header), else the
// root of a new trace. Its attributes are made only when spans are exported.
void McpServer::begin_span(const Request &request, const MessageContext &context) {
    std::string key = request_key(request.id);
    std::string version;
    {
        if (in_flight_.count(key) > 0) {
            // A request reusing the id of one in flight is refused: it has no span, and its
            // refusal does not end the other's.
            duplicate_errors_[key]++;
            return;
        }
        version = request.modern ? kModernVersion : legacy_version_;
        // A 2026-07-28 request names its version in _meta (checked after the span begins).
        auto meta = request.params.find("_meta");
        if (version.empty() && meta != request.params.end() && meta->is_object() &&
            meta->value(kProtocolVersionKey, json()) == kModernVersion)
            version = kModernVersion;
    }
    std::optional<TraceContext> parent;
    std::string tracestate;
    const json *meta = nullptr;
    auto found = request.params.find("_meta");
    if (found != request.params.end() && found->is_object()) meta = &*found;
    if (meta != nullptr && meta->contains("traceparent") && (*meta)["traceparent"].is_string()) {
        parent = parse_traceparent((*meta)["traceparent"].get<std::string>());
        if (parent && meta->contains("tracestate") && (*meta)["tracestate"].is_string())
            tracestate = (*meta)["tracestate"].get<std::string>();
    }
    if (!parent && !context.traceparent.empty()) {
        parent = parse_traceparent(context.traceparent);
        if (parent) tracestate = context.tracestate;
    }
    Span span;
    span.kind = Span::Kind::Server;
    span.context.trace_id = parent ? parent->trace_id : new_trace_id();
    span.context.span_id = new_span_id();
    span.context.sampled = parent ? parent->sampled : true;
    span.context.tracestate = tracestate.size() <= 512 ? tracestate : std::string();
    if (parent) span.parent_span_id = parent->span_id;
    span.start = std::chrono::system_clock::now();
    if ((Tracer::global() != nullptr && span.context.sampled) || Meter::global() != nullptr) {
        const std::string &method = request.method;
        bool known = method == "initialize" || method == "ping" || find_method(method, true) ||
                     find_method(method, false);
        std::string target;
        if (method == "tools/call" || method == "prompts/get")
            if (request.params.contains("name") && request.params["name"].is_string())
                target = request.params["name"].get<std::string>().substr(0, 256);
        // Span name: method and target; a resource uri is an attribute only (cardinality), and
        // a method the server does not know is named as such.
        span.name =
            !known ? std::string("unknown method") : method + (target.empty() ? "" : " " + target);
        span.set("mcp.method.name", known ? method : method.substr(0, 64));
        span.set("jsonrpc.request.id",
                 (request.id.is_string() ? request.id.get<std::string>() : request.id.dump())
                     .substr(0, 256));
        span.set("network.transport", options_.network_transport);
        if (!context.http_version.empty()) {
            span.set("network.protocol.name", "http");
            span.set("network.protocol.version", context.http_version);
        }
        if (!context.client_address.empty()) {
            span.set("client.address", context.client_address);
            span.set("client.port", context.client_port);
        }
        if (!options_.session_id.empty()) span.set("mcp.session.id", options_.session_id);
        if (version.empty() && method == "initialize" &&
            request.params.contains("protocolVersion") &&
            request.params["protocolVersion"].is_string())
            version = request.params["protocolVersion"].get<std::string>().substr(0, 32);
        if (!version.empty()) span.set("mcp.protocol.version", version);
        if (method == "tools/call" && !target.empty()) {
            span.set("gen_ai.tool.name", target);
            span.set("gen_ai.operation.name", "execute_tool");
        }
        if (method == "prompts/get" && !target.empty()) span.set("gen_ai.prompt.name", target);
        if (method == "resources/read" && request.params.contains("uri") &&
            request.params["uri"].is_string())
            span.set("mcp.resource.uri", request.params["uri"].get<std::string>().substr(0, 1024));
        if (!options_.principal.empty() && options_.principal.find('\n') == std::string::npos)
            span.set("pg_mcp.principal", options_.principal);
    }
    // Bounded: a client that never reads its answers cannot grow this without end (the
    // oldest goes).
    if (spans_.size() >= 10000) {
        auto oldest = spans_.begin();
        for (auto it = spans_.begin(); it != spans_.end(); ++it)
            if (it->second.start < oldest->second.start) oldest = it;
        spans_.erase(oldest);
    }
    spans_[key] = std::move(span);
}

std::optional<Span> McpServer::take_span(const json &id) {
    auto found = spans_.find(request_key(id));
    if (found == spans_.end()) return std::nullopt;
    Span span = std::move(found->second);
    spans_.erase(found);
    return span;
}

// Ends a request's span: with its response (an error, or a tool result that is an error,
// sets error.type), or with `outcome` (e.g. "cancelled") when it gets none.
void McpServer::end_span(const json &id, const json *response, const char *outcome) {
    if (response != nullptr && response->contains("error")) {
        auto duplicate = duplicate_errors_.find(request_key(id));
        if (duplicate != duplicate_errors_.end()) {
            if (--duplicate->second == 0) duplicate_errors_.erase(duplicate);
            return;  // the refusal of a reused id: the other request's span goes on
        }
    }
    std::optional<Span> span = take_span(id);
    if (span) finish_span(std::move(*span), response, outcome);
}

void McpServer::finish_span(Span span, const json *response, const char *outcome) {
    span.end = std::chrono::system_clock::now();
    bool traced = Tracer::global() != nullptr && span.context.sampled;
    if (!traced && Meter::global() == nullptr) return;
    std::string error_type;
    if (response != nullptr && response->contains("error") && (*response)["error"].is_object()) {
        const json &error = (*response)["error"];
        error_type = error.contains("code") ? error["code"].dump() : "unknown";
        span.set("rpc.response.status_code", error_type);
        if (error.contains("message") && error["message"].is_string())
            span.status_message = error["message"].get<std::string>().substr(0, 1024);
    } else if (response != nullptr && response->contains("result") &&
               (*response)["result"].is_object() &&
               (*response)["result"].value("isError", false) == true) {
        error_type = "tool_error";
    } else if (outcome != nullptr) {
        error_type = outcome;
        span.status_message = outcome;
    }
    if (!error_type.empty()) {
        span.set("error.type", error_type);
        span.error = true;
    }
    if (Meter::global() != nullptr) {
        OperationSample sample;
        sample.error_type = error_type;
        sample.seconds = std::chrono::duration<double>(span.end - span.start).count();
        for (const auto &[key, value] : span.attributes) {
            if (!value.is_string()) continue;
            if (key == "mcp.method.name")
                sample.method = span.name == "unknown method" ? "_OTHER" : value.get<std::string>();
            if (key == "gen_ai.tool.name") sample.tool = value.get<std::string>();
            if (key == "mcp.protocol.version") sample.protocol_version = value.get<std::string>();
            if (key == "network.transport") sample.transport = value.get<std::string>();
        }
        // A tool name is a series only for a call that reached the tool (ok or a tool error):
        // a refused or cancelled request's is whatever the client sent. Likewise versions.
        if (!error_type.empty() && error_type != "tool_error") sample.tool.clear();
        if (!sample.protocol_version.empty() && !is_supported_version(sample.protocol_version))
            sample.protocol_version = "_OTHER";
        if (!sample.method.empty()) record_operation(sample);
    }
    if (traced) record_span(std::move(span));
}

void McpServer::handle_line(std::string_view line) {
    dispatch(parse_message(line), MessageContext());
}

void McpServer::handle_message(json message, const MessageContext &context) {
    dispatch(classify_message(std::move(message)), context);
}

void McpServer::dispatch(Message message, const MessageContext &context) {
    switch (message.kind) {
        case Message::Kind::Invalid:
            logger_.log(LogLevel::Warning,
                        "rejected message: " + message.error["message"].get<std::string>());
            send(make_error(message.id, message.error["code"], message.error["message"]));
            return;
        case Message::Kind::Response: {
            // The answer to a person's confirmation asked in the session; any other response
            // answers nothing this server asked.
            std::string id = message.id.is_string() ? message.id.get<std::string>() : "";
            if (elicitations_pending_.count(id) == 0) {
                logger_.log(LogLevel::Debug, "ignored a response to no request of this server");
                return;
            }
            std::string action = "cancel";  // an error, or an answer of no known kind
            if (message.result.is_object() && message.result.contains("action") &&
                message.result["action"].is_string()) {
                std::string given = message.result["action"].get<std::string>();
                if (given == "accept" || given == "decline" || given == "cancel") action = given;
            }
            answer_person(id, action);
            return;
        }
        case Message::Kind::Notification:
            handle_notification(message.method, message.params);
            return;
        case Message::Kind::Request: {
            Request request;
            request.id = std::move(message.id);
            request.method = std::move(message.method);
            request.params = std::move(message.params);
            request.oauth_identity = context.oauth_identity;
            handle_request(std::move(request), context);
            return;
        }
    }
}

void McpServer::handle_oversized_line(size_t limit, std::string_view head, std::string_view tail) {
    logger_.log(LogLevel::Warning, "discarded a message over " + std::to_string(limit) + " bytes");
    send(make_error(recover_request_id(head, tail), error_code::kInvalidRequest,
                    "Invalid Request: message exceeds the maximum size of " +
                        std::to_string(limit) + " bytes (--max-message-bytes)"));
}

bool McpServer::check_modern_meta(Request &request) {
    const json &meta = request.params["_meta"];
    json version = meta.value(kProtocolVersionKey, json());
    if (!version.is_string() || version.get<std::string>() != kModernVersion) {
        send(make_error(request.id, error_code::kUnsupportedProtocolVersion,
                        "Unsupported protocol version",
                        {{"supported", all_versions()}, {"requested", version}}));
        return false;
    }
    auto capabilities = meta.find(kClientCapabilitiesKey);
    if (capabilities == meta.end() || !capabilities->is_object()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        std::string("Invalid params: _meta[\"") + kClientCapabilitiesKey +
                            "\"] is required (an object) with protocol " + kModernVersion));
        return false;
    }
    auto level = meta.find(kLogLevelKey);
    if (level != meta.end()) {
        LogLevel parsed;
        if (!level->is_string() || !parse_log_level(level->get<std::string>(), parsed)) {
            send(make_error(request.id, error_code::kInvalidParams,
                            std::string("Invalid params: _meta[\"") + kLogLevelKey +
                                "\"] must be a log level such as \"info\""));
            return false;
        }
        request.log_level = parsed;
    }
    request.modern = true;
    return true;
}

// Every request method after initialize, in one table: its handler, and the protocol eras
// that have it (the handlers send their work to the backend, whose table in database.cpp maps
// it to SQL).
const McpServer::MethodRow McpServer::kMethods[] = {
    // name                      handler                              modern legacy cacheable
    {"tools/list", &McpServer::list_tools, true, true, true},
    {"tools/call", &McpServer::call_tool, true, true, false},
    {"resources/list", &McpServer::list_resources, true, true, true},
    {"resources/read", &McpServer::read_resource, true, true, true},
    {"resources/templates/list", &McpServer::list_resource_templates, true, true, true},
    {"prompts/list", &McpServer::list_prompts, true, true, true},
    {"prompts/get", &McpServer::get_prompt, true, true, false},
    {"server/discover", &McpServer::discover, true, false, true},
    {"subscriptions/listen", &McpServer::listen, true, false, false},
    {"logging/setLevel", &McpServer::set_level, false, true, false},
};

const McpServer::MethodRow *McpServer::find_method(const std::string &method, bool modern) {
    for (const MethodRow &row : kMethods)
        if (method == row.name && (modern ? row.modern : row.legacy)) return &row;
    return nullptr;
}

void McpServer::handle_request(Request request, const MessageContext &context) {
    begin_span(request, context);
    const std::string &method = request.method;
    // What reaches the database as text may not hold NUL: libpq would cut it there (a tool
    // other than the one named, a request id shortened in the audit row).
    auto has_nul = [](const json &value) {
        return value.is_string() &&
               value.get_ref<const std::string &>().find('\0') != std::string::npos;
    };
    if (has_nul(request.id)) {
        send(make_error(request.id, error_code::kInvalidRequest,
                        "Invalid Request: the id contains a NUL character"));
        return;
    }
    for (const char *field : {"name", "uri"})
        if (request.params.contains(field) && has_nul(request.params[field])) {
            send(make_error(
                request.id, error_code::kInvalidParams,
                std::string("Invalid params: \"") + field + "\" contains a NUL character"));
            return;
        }
    const json &meta = request.params.contains("_meta") ? request.params["_meta"] : json();
    if (request.params.contains("_meta") && !meta.is_object()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: \"_meta\" must be an object"));
        return;
    }
    bool modern = meta.is_object() && meta.contains(kProtocolVersionKey) &&
                  !(meta[kProtocolVersionKey].is_string() &&
                    is_legacy_version(meta[kProtocolVersionKey].get<std::string>()));

    if (method == "initialize") {
        initialize(request);
        return;
    }
    if (modern || method == "server/discover") {
        if (!meta.is_object() || !meta.contains(kProtocolVersionKey)) {
            send(make_error(request.id, error_code::kInvalidParams,
                            std::string("Invalid params: _meta[\"") + kProtocolVersionKey +
                                "\"] is required for " + method));
            return;
        }
        if (!check_modern_meta(request)) return;
        if (const MethodRow *row = find_method(method, true)) return (this->*row->handler)(request);
        send(make_error(request.id, error_code::kMethodNotFound,
                        "Method not found: " + method + " (protocol " + kModernVersion + ")"));
        return;
    }
    if (method == "ping") {
        send(make_result(request.id, json::object()));
        return;
    }
    {
        if (legacy_version_.empty()) {
            send(make_error(request.id, error_code::kInvalidRequest,
                            "Invalid Request: not initialized; send initialize first, or put \"" +
                                std::string(kProtocolVersionKey) + "\": \"" + kModernVersion +
                                "\" in each request's _meta"));
            return;
        }
    }
    if (const MethodRow *row = find_method(method, false)) return (this->*row->handler)(request);
    send(make_error(request.id, error_code::kMethodNotFound, "Method not found: " + method));
}

void McpServer::handle_notification(const std::string &method, const json &params) {
    if (method == "notifications/initialized") {
        if (!legacy_version_.empty()) legacy_initialized_ = true;
        return;
    }
    if (method == "notifications/cancelled") {
        auto id = params.find("requestId");
        if (id == params.end() || !(id->is_string() || id->is_number_integer())) {
            logger_.log(LogLevel::Warning,
                        "notifications/cancelled without a valid requestId; ignored");
            return;
        }
        std::string key = request_key(*id);
        bool running = false;
        {
            if (subscriptions_.erase(key) > 0) {  // a subscription ends without a reply
                auto span = spans_.find(key);
                if (span != spans_.end()) {
                    Span ended = std::move(span->second);
                    spans_.erase(span);
                    finish_span(std::move(ended), nullptr, nullptr);
                }
                return;
            }
            // Once per request: a repeated cancel asks nothing more of the backend.
            if (in_flight_.count(key) > 0 && cancelled_.insert(key).second) running = true;
        }
        if (running) withdraw_elicitation(key);  // when it waits for a person
        if (running) {
            logger_.log(LogLevel::Info, "cancelling request " + key);
            backend_.cancel(options_.backend_key_prefix + key);
        }
        return;
    }
    logger_.log(LogLevel::Debug, "ignored notification " + method);
}

json McpServer::server_info() const {
    return {{"name", "pg_mcp_bridge"}, {"title", "pg_mcp"}, {"version", options_.version}};
}

json McpServer::capabilities() const {
    return {{"tools", {{"listChanged", true}}},
            {"resources", json::object()},
            {"prompts", json::object()},
            {"logging", json::object()}};
}

void McpServer::list_resource_templates(const Request &request) {
    // Every resource is listed as itself: there are no templates.
    json result = {{"resourceTemplates", json::array()}};
    if (request.modern) {
        result["ttlMs"] = 3600000;
        result["cacheScope"] = "public";  // the same (empty) for everyone
    }
    send(make_result(request.id, finish_result(request, std::move(result))), &request);
}

json McpServer::finish_result(const Request &request, json result) const {
    if (request.modern) {
        result["resultType"] = "complete";
        if (!result.contains("_meta") || !result["_meta"].is_object())
            result["_meta"] = json::object();
        result["_meta"][kServerInfoKey] = server_info();
    }
    return result;
}

void McpServer::initialize(const Request &request) {
    const json &params = request.params;
    auto requested = params.find("protocolVersion");
    if (requested == params.end() || !requested->is_string()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: initialize needs \"protocolVersion\" (a string)"));
        return;
    }
    if (!legacy_version_.empty()) {
        send(make_error(request.id, error_code::kInvalidRequest,
                        "Invalid Request: already initialized (protocol " + legacy_version_ + ")"));
        return;
    }
    SessionState state = negotiate(params);
    std::string version = state.version;
    restore(state);
    logger_.log(LogLevel::Info, "initialized: protocol " + version + ", client " +
                                    describe_client(params.value("clientInfo", json::object())));
    send(make_result(request.id, {{"protocolVersion", version},
                                  {"capabilities", capabilities()},
                                  {"serverInfo", server_info()},
                                  {"instructions", kInstructions}}),
         &request);
}

SessionState McpServer::negotiate(const json &params) {
    SessionState state;
    auto requested = params.find("protocolVersion");
    if (requested != params.end() && requested->is_string())
        state.version = requested->get<std::string>();
    if (!is_legacy_version(state.version)) state.version = kLegacyVersions[0];
    state.client_info = params.value("clientInfo", json::object());
    if (!state.client_info.is_object()) state.client_info = json::object();
    // Elicitation in form mode ({} is form mode): a person can be asked in the session.
    json capabilities = params.value("capabilities", json::object());
    json elicitation =
        capabilities.is_object() ? capabilities.value("elicitation", json()) : json();
    state.can_elicit =
        elicitation.is_object() && (elicitation.empty() || elicitation.contains("form"));
    return state;
}

bool McpServer::restore(const SessionState &state) {
    if (!legacy_version_.empty() || !is_legacy_version(state.version)) return false;
    legacy_version_ = state.version;
    legacy_client_info_ = state.client_info;
    legacy_can_elicit_ = state.can_elicit;
    return true;
}

bool McpServer::resume(const SessionState &state) {
    if (!restore(state)) return false;
    legacy_initialized_ = true;  // the client sent notifications/initialized where it began
    return true;
}

void McpServer::discover(const Request &request) {
    json result = {{"supportedVersions", all_versions()},
                   {"capabilities",
                    {{"tools", {{"listChanged", true}}},
                     {"resources", json::object()},
                     {"prompts", json::object()}}},
                   {"instructions", kInstructions},
                   {"ttlMs", 3600000},
                   {"cacheScope", "public"}};
    send(make_result(request.id, finish_result(request, std::move(result))), &request);
}

CallIdentity McpServer::identity(const Request &request) const {
    CallIdentity who;
    who.agent_name = options_.agent_name;
    who.principal_token = options_.principal_token;
    who.principal = options_.principal;
    who.oauth_identity = request.oauth_identity;
    {
        auto span = spans_.find(request_key(request.id));
        if (span != spans_.end()) who.trace = span->second.context;
    }
    if (request.modern) {
        auto meta = request.params.find("_meta");
        if (meta != request.params.end() && meta->is_object())
            who.client_info = describe_client(meta->value(kClientInfoKey, json::object()));
    } else {
        who.client_info = describe_client(legacy_client_info_);
    }
    who.request_id = request.id.is_string() ? request.id.get<std::string>() : request.id.dump();
    return who;
}

bool McpServer::begin_work(const Request &request) {
    std::string key = request_key(request.id);
    if (shut_down_) {
        send(make_error(request.id, error_code::kInternalError, "Server is shutting down"));
        return false;
    }
    if (!in_flight_.emplace(key, request.id).second) {
        send(make_error(request.id, error_code::kInvalidRequest,
                        "Invalid Request: a request with id " + key + " is already in progress"));
        return false;
    }
    return true;
}

bool McpServer::end_work(const json &id) {
    bool answer;
    {
        std::string key = request_key(id);
        in_flight_.erase(key);
        answer = cancelled_.erase(key) == 0 && !shut_down_;
    }
    // A request whose answer is dropped (cancelled, or the server shut down) ends its span here.
    if (!answer) end_span(id, nullptr, "cancelled");
    return answer;
}

void McpServer::set_level(const Request &request) {
    auto level = request.params.find("level");
    LogLevel parsed;
    if (level == request.params.end() || !level->is_string() ||
        !parse_log_level(level->get<std::string>(), parsed)) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: \"level\" must be one of debug, info, notice, warning, "
                        "error, critical, alert, emergency"));
        return;
    }
    { legacy_log_level_ = parsed; }
    send(make_result(request.id, json::object()));
}

void McpServer::listen(const Request &request) {
    const json &filter = request.params.value("notifications", json::object());
    if (!filter.is_object()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: \"notifications\" must be an object"));
        return;
    }
    json honored = json::object();
    auto tools_changed = filter.find("toolsListChanged");
    if (tools_changed != filter.end() && *tools_changed == true) honored["toolsListChanged"] = true;
    std::string key = request_key(request.id);
    {
        if (subscriptions_.count(key) > 0 || in_flight_.count(key) > 0) {
            send(make_error(
                request.id, error_code::kInvalidRequest,
                "Invalid Request: a request with id " + key + " is already in progress"));
            return;
        }
        subscriptions_[key] = {{"id", request.id}, {"notifications", honored}};
        // Acknowledge under the lock, so no change notification can overtake it.
        output_.send_related(request.id,
                             make_notification("notifications/subscriptions/acknowledged",
                                               {{"_meta", {{kSubscriptionIdKey, request.id}}},
                                                {"notifications", honored}}));
    }
}

void McpServer::tools_changed() {
    if (shut_down_) return;
    if (legacy_initialized_ || !legacy_version_.empty())
        send(make_notification("notifications/tools/list_changed", json::object()));
    for (const auto &entry : subscriptions_) {
        if (entry.second["notifications"].value("toolsListChanged", false))
            output_.send_related(
                entry.second["id"],
                make_notification("notifications/tools/list_changed",
                                  {{"_meta", {{kSubscriptionIdKey, entry.second["id"]}}}}));
    }
}

void McpServer::log_to_client(LogLevel level, const std::string &message) {
    logger_.log(level, message);
    if (legacy_log_level_ && level >= *legacy_log_level_)
        send(make_notification(
            "notifications/message",
            {{"level", log_level_name(level)}, {"logger", "pg_mcp_bridge"}, {"data", message}}));
}

void McpServer::log_for_request(const Request &request, LogLevel level,
                                const std::string &message) {
    std::string request_id =
        request.id.is_string() ? request.id.get<std::string>() : request.id.dump();
    logger_.log(level, message, request_id);
    json notification = make_notification(
        "notifications/message",
        {{"level", log_level_name(level)}, {"logger", "pg_mcp_bridge"}, {"data", message}});
    if (!request.modern) {
        if (legacy_log_level_ && level >= *legacy_log_level_)
            output_.send_related(request.id, notification);
        return;
    }
    if (request.log_level && level >= *request.log_level)
        output_.send_related(request.id, notification);
}

void McpServer::forward_notice(const json &id, bool modern, std::optional<LogLevel> request_level,
                               const std::string &tool, const ServerNotice &notice) {
    // PostgreSQL's levels as syslog's (RFC 5424), which MCP's are.
    LogLevel level = notice.severity == "WARNING"                            ? LogLevel::Warning
                     : notice.severity == "NOTICE"                           ? LogLevel::Notice
                     : notice.severity == "INFO" || notice.severity == "LOG" ? LogLevel::Info
                                                                             : LogLevel::Debug;
    std::optional<LogLevel> wanted = modern ? request_level : legacy_log_level_;
    if (!wanted || level < *wanted) return;
    json data = {{"message", notice.message}};
    if (!notice.detail.empty()) data["detail"] = notice.detail;
    if (!notice.hint.empty()) data["hint"] = notice.hint;
    if (!notice.sqlstate.empty() && notice.sqlstate != "00000") data["sqlstate"] = notice.sqlstate;
    output_.send_related(
        id, make_notification(
                "notifications/message",
                {{"level", log_level_name(level)}, {"logger", tool}, {"data", std::move(data)}}));
}

void McpServer::cancel_all() {
    std::vector<std::string> running;
    for (const auto &entry : in_flight_)
        if (cancelled_.insert(entry.first).second) running.push_back(entry.first);
    for (const std::string &key : running) backend_.cancel(options_.backend_key_prefix + key);
}

bool McpServer::idle() const {
    return in_flight_.empty() && streaming_ == 0;
}

void McpServer::shutdown(bool answer_in_flight) {
    if (shut_down_) return;
    shut_down_ = true;
    // Requests still running get an answer rather than silence (stdio: the client may still be
    // reading); their work is cancelled with the pool, and a call's outcome is in its audit row.
    if (answer_in_flight)
        for (const auto &[key, id] : in_flight_) {
            if (cancelled_.count(key)) continue;
            send(make_error(id, error_code::kDatabaseUnavailable,
                            "Server shutting down: the request was stopped before it was "
                            "answered; a tool call's outcome is in its audit row. Retry."));
        }
    for (const auto &entry : subscriptions_) {
        json result = {
            {"resultType", "complete"},
            {"_meta", {{kSubscriptionIdKey, entry.second["id"]}, {kServerInfoKey, server_info()}}}};
        send(make_result(entry.second["id"], std::move(result)));
    }
    subscriptions_.clear();
    elicitations_pending_.clear();  // their calls were answered above (or are dropped)
    *alive_ = false;                // and their timers do nothing
}

}  // namespace pg_mcp::bridge
