// The MCP protocol: dispatch of requests and notifications for both protocol eras on one
// stream — legacy (initialize handshake: 2025-11-25, 2025-06-18, 2025-03-26) and modern
// (2026-07-28: stateless, per-request _meta, server/discover, subscriptions/listen). It holds
// no policy: tools/list and tools/call go to the Backend, i.e. to the extension.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "backend.hpp"
#include "json_rpc.hpp"
#include "log.hpp"

namespace pg_mcp::bridge {

// Where outgoing messages go (stdout for the stdio transport). Must be thread-safe.
class Output {
  public:
    virtual ~Output() = default;
    virtual void send(const json &message) = 0;
    // Sends `message` (whose last member is the object "result") with the body's raw members
    // appended to that object. This default gathers the body; a transport can stream it.
    virtual void send_streamed(const json &message, BodyStream &body);
    // A notification about request `id` (its progress, a log message for it): a transport that
    // answers that request with a stream of its own sends it there. By default like send().
    virtual void send_related(const json &id, const json &message) {
        (void)id;
        send(message);
    }
};

// The text of `message` up to its "result" object's last member, followed by a comma: what a
// streamed body is appended to (then "}}" closes the result and the message).
std::string streamed_prefix(const json &message);
// The whole message with the body read into it, as text; empty when the body broke off (the
// caller then answers with an error).
std::string streamed_text(const json &message, BodyStream &body);
// A protocol revision this server speaks (2026-07-28 or a legacy one).
bool is_supported_version(const std::string &version);
bool is_legacy_version(const std::string &version);  // one that starts with initialize
json all_versions();                                 // every revision spoken, newest first

struct ServerOptions {
    std::string agent_name;  // --agent: recorded with every call
    size_t page_size = 100;  // tools per tools/list page
    std::string version = PG_MCP_VERSION;
    // Prepended to request ids in the keys given to the backend: servers sharing one backend
    // (HTTP sessions) must not confuse each other's requests.
    std::string backend_key_prefix;
    // SHA-256 (hex) of the bearer token this server's client presented: every database request
    // runs as its principal. Empty: as the bridge's own login role.
    std::string principal_token;
    std::string principal;  // its principal's name, when known
    // For the request spans: the transport (OpenTelemetry network.transport: "pipe" for
    // stdio, "tcp" for HTTP) and the session id (HTTP sessions).
    std::string network_transport = "pipe";
    std::string session_id;
};

extern const char *const kModernVersion;       // "2026-07-28"
extern const char *const kLegacyVersions[3];   // newest first
extern const char *const kProtocolVersionKey;  // _meta key of the modern era

class McpServer {
  public:
    McpServer(Backend &backend, Output &output, ServerOptions options, const Logger &logger);

    // One line from the transport (without its newline).
    void handle_line(std::string_view line);
    // One message the transport has parsed already (it is not parsed again).
    void handle_message(json message);
    // The OAuth identity (CallIdentity::oauth_identity) the next messages run as: the HTTP
    // transport sets it from each request's verified access token.
    void set_oauth_identity(std::string identity);
    // The trace context the transport carried for the next message (HTTP traceparent and
    // tracestate headers); params._meta.traceparent wins over it. Cleared after the message.
    void set_transport_trace(std::string traceparent, std::string tracestate);
    // A line longer than the transport's limit was discarded (head and tail: its first and
    // last bytes, to answer with the request's id when it can be found).
    void handle_oversized_line(size_t limit, std::string_view head = {},
                               std::string_view tail = {});
    // The tool catalog changed (LISTEN/NOTIFY): tell clients that asked to know.
    void tools_changed();
    // A server-side event worth telling the client (legacy logging/setLevel).
    void log_to_client(LogLevel level, const std::string &message);
    // Whether a request method is served in an era (2026-07-28: modern; else after initialize).
    static bool serves_method(const std::string &method, bool modern);
    // Ends open subscriptions gracefully; later replies from the backend are dropped. With
    // answer_in_flight, requests still running are answered with an error first.
    void shutdown(bool answer_in_flight = false);

    size_t in_flight() const;
    // Cancels every request the backend is working on (their replies are dropped).
    void cancel_all();
    // Nothing in flight and no backend callback running: the server may be destroyed.
    bool idle() const;

  private:
    struct Request {
        json id;
        std::string method;
        json params;
        bool modern = false;
        std::optional<LogLevel> log_level;  // modern: per-request logging opt-in
    };

    struct MethodRow {
        const char *name;
        void (McpServer::*handler)(const Request &);
        bool modern;  // served in the 2026-07-28 era
        bool legacy;  // served after initialize
    };
    static const MethodRow kMethods[];
    static const MethodRow *find_method(const std::string &method, bool modern);

    void dispatch(Message message);
    void handle_request(Request request);
    void handle_notification(const std::string &method, const json &params);
    bool check_modern_meta(Request &request);

    void initialize(const Request &request);
    void discover(const Request &request);
    void list_tools(const Request &request);
    void call_tool(const Request &request);
    void list_resources(const Request &request);
    void read_resource(const Request &request);
    void list_resource_templates(const Request &request);
    void list_prompts(const Request &request);
    void get_prompt(const Request &request);
    // tools/list, resources/list, prompts/list: the cursor, the backend's list (`list`), one
    // page of it by `key` as {field: [...], nextCursor?}, and the caching hints.
    using ListFn = std::function<void(const std::string &key, const CallIdentity &, ReplyFn)>;
    void serve_list(const Request &request, const char *method, const char *key, const char *field,
                    const ListFn &list);
    void set_level(const Request &request);
    void listen(const Request &request);

    CallIdentity identity(const Request &request) const;
    json server_info() const;
    json capabilities() const;
    // Completes a result for the request's era (resultType and serverInfo for modern).
    json finish_result(const Request &request, json result) const;
    void reply(const Request &request, json message);
    void send(json message);
    void log_for_request(const Request &request, LogLevel level, const std::string &message);

    // A span per request: begun when it arrives, ended with its response (or its cancel).
    void begin_span(const Request &request);
    void end_span(const json &id, const json *response, const char *outcome = nullptr);
    std::optional<Span> take_span(const json &id);
    static void finish_span(Span span, const json *response, const char *outcome);
    bool begin_work(const Request &request);  // false if the id is already in flight
    bool end_work(const json &id);            // false if cancelled meanwhile (drop the reply)

    Backend &backend_;
    Output &output_;
    ServerOptions options_;
    const Logger &logger_;

    mutable std::mutex mutex_;
    std::string legacy_version_;  // empty until initialize
    bool legacy_initialized_ = false;
    json legacy_client_info_;
    std::string oauth_identity_;  // guarded by mutex_
    // Open request spans by request key, and the transport's trace context for the next
    // message; their own mutex (send() may run with mutex_ held).
    mutable std::mutex spans_mutex_;
    std::map<std::string, Span> spans_;
    // Refusals of a request reusing the id of one in flight, whose error must not end the
    // other's span.
    std::map<std::string, int> duplicate_errors_;
    std::string transport_traceparent_, transport_tracestate_;
    std::optional<LogLevel> legacy_log_level_;
    std::set<std::string> in_flight_;  // ids (dumped) of requests the backend is working on
    std::set<std::string> cancelled_;  // in flight but cancelled: their replies are dropped
    std::map<std::string, json> subscriptions_;  // modern subscriptions/listen, by id (dumped)
    bool shut_down_ = false;
    // Backend callbacks executing now: each holds a CallbackGuard while it runs.
    mutable std::atomic<int> callbacks_running_{0};
    struct CallbackGuard {
        explicit CallbackGuard(std::atomic<int> &count) : count_(count) { ++count_; }
        ~CallbackGuard() { --count_; }
        std::atomic<int> &count_;
    };
};

}  // namespace pg_mcp::bridge
