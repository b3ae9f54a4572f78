// The MCP protocol: dispatch of requests and notifications for both protocol eras on one
// stream — legacy (initialize handshake: 2025-11-25, 2025-06-18, 2025-03-26) and modern
// (2026-07-28: stateless, per-request _meta, server/discover, subscriptions/listen). It holds
// no policy: tools/list and tools/call go to the Backend, i.e. to the extension.
#pragma once

#include <functional>
#include <chrono>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "backend.hpp"
#include "json_rpc.hpp"
#include "log.hpp"
#include "session_ticket.hpp"

namespace pg_mcp::bridge {

// A response, made once by the protocol layer: its text and what the transport must know of
// it, so that no transport reads a response back.
struct Reply {
    json id;                     // the request's (null when the message that failed had none)
    std::string text;            // the whole JSON-RPC message
    int error_code = 0;          // a JSON-RPC error's code; 0 for a result
    bool opens_session = false;  // the result of an initialize
    // 2026-07-28 answers of the methods kMethods marks cacheable, as their ttlMs and
    // cacheScope say ("private, max-age=60"); anything else "no-store".
    std::string cache_control = "no-store";
};

// Where outgoing messages go (stdout for the stdio transport). Called on the loop, except
// send_streamed with a body that is not buffered, which is called on a helper thread.
class Output {
  public:
    virtual ~Output() = default;
    // A response.
    virtual void answer(Reply reply) = 0;
    // A notification that belongs to no request (tools/list_changed, a log message).
    virtual void send(const json &message) = 0;
    // A result whose body comes in pieces: `head.text` is streamed_prefix() of the message, the
    // body's raw members follow, then "}}". This default gathers the body; a transport can
    // stream it. A body that broke off answers nothing (the server sends an error next).
    virtual void send_streamed(Reply head, BodyStream &body);
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
    // Runs a function on the server's loop after a delay (the transports give it): the wait for
    // a person's answer in the session. Unset: no timeout.
    std::function<void(std::chrono::milliseconds, std::function<void()>)> schedule;
    std::chrono::milliseconds elicitation_timeout{120000};  // --elicitation-timeout
};

// What the transport knows of one message beyond its text: who sent it and in which trace.
struct MessageContext {
    // The OAuth identity (CallIdentity::oauth_identity) the message runs as: the HTTP
    // transport's, from the request's verified access token.
    std::string oauth_identity;
    // The HTTP traceparent and tracestate headers; params._meta.traceparent wins over them.
    std::string traceparent, tracestate;
    // Over HTTP, for the request's span (set only while spans are exported): the peer's
    // address and port, and the HTTP version ("1.1").
    std::string client_address, http_version;
    uint16_t client_port = 0;
};

extern const char *const kModernVersion;       // "2026-07-28"
extern const char *const kLegacyVersions[3];   // newest first
extern const char *const kProtocolVersionKey;  // _meta key of the modern era

// Lives on the event loop: every call into it, and every backend reply and progress callback,
// runs on the loop's thread (so it needs no lock); what must block elsewhere posts back.
class McpServer {
  public:
    McpServer(Backend &backend, Output &output, ServerOptions options, const Logger &logger);

    // One line from the transport (without its newline).
    void handle_line(std::string_view line);
    // One message the transport has parsed already (it is not parsed again).
    void handle_message(json message, const MessageContext &context = {});
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

    // Requests the backend is working on, and large results still being written.
    size_t in_flight() const;
    // Cancels every request the backend is working on (their replies are dropped).
    void cancel_all();
    // Nothing in flight and no result being written: the server may be destroyed.
    bool idle() const;
    // Whether a call may ask a person within the session (the HTTP transport then answers a
    // tools/call with an event stream, where the request goes).
    bool can_elicit() const { return legacy_can_elicit_; }

    // What initialize settles from its params (the revision, the client, elicitation), for a
    // session ticket; and a server set up from it: restore() as initialize does (the client
    // still sends notifications/initialized), resume() for a session that began on another
    // bridge. False when already initialized or the revision is not one of 2025-11-25's era.
    static SessionState negotiate(const json &params);
    bool restore(const SessionState &state);
    bool resume(const SessionState &state);

  private:
    struct Request {
        json id;
        std::string method;
        json params;
        bool modern = false;
        std::optional<LogLevel> log_level;  // modern: per-request logging opt-in
        std::string oauth_identity;         // MessageContext's
    };

    struct MethodRow {
        const char *name;
        void (McpServer::*handler)(const Request &);
        bool modern;     // served in the 2026-07-28 era
        bool legacy;     // served after initialize
        bool cacheable;  // a 2026-07-28 answer may be stored (as its ttlMs and cacheScope say)
    };
    static const MethodRow kMethods[];
    static const MethodRow *find_method(const std::string &method, bool modern);

    void dispatch(Message message, const MessageContext &context);
    void handle_request(Request request, const MessageContext &context);
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
    // A response (a result or an error), with what its request tells the transport (`request`:
    // the request it answers, when it got that far).
    void send(json message, const Request *request = nullptr);
    Reply make_reply(json &message, const Request *request) const;
    void log_for_request(const Request &request, LogLevel level, const std::string &message);
    bool confirmation_input(const Request &request, std::string &out);
    void submit_call(const Request &request, const std::string &tool, const json &arguments,
                     const json &token, std::string confirmation, std::shared_ptr<const json> kept);
    void answer_call(const Request &request, const std::string &tool, const json &token,
                     std::shared_ptr<const json> kept, BackendReply reply);
    void ask_person(const Request &request, const std::string &tool, const json &token,
                    std::shared_ptr<const json> kept, const json &asked);
    void answer_person(const std::string &id, const std::string &action);
    void withdraw_elicitation(const std::string &request_key_text);
    static constexpr size_t kMaxPendingElicitations = 16;
    json input_required_result(const json &head) const;
    // A notice the tool's SQL raised, as a log message of the call (logger: the tool), when
    // the client asked for that level (logging/setLevel, or the request's log level).
    void forward_notice(const json &id, bool modern, std::optional<LogLevel> request_level,
                        const std::string &tool, const ServerNotice &notice);

    // A span per request: begun when it arrives, ended with its response (or its cancel).
    void begin_span(const Request &request, const MessageContext &context);
    void end_span(const json &id, const json *response, const char *outcome = nullptr);
    std::optional<Span> take_span(const json &id);
    static void finish_span(Span span, const json *response, const char *outcome);
    bool begin_work(const Request &request);  // false if the id is already in flight
    bool end_work(const json &id);            // false if cancelled meanwhile (drop the reply)

    Backend &backend_;
    Output &output_;
    ServerOptions options_;
    const Logger &logger_;

    std::string legacy_version_;  // empty until initialize
    bool legacy_initialized_ = false;
    json legacy_client_info_;
    // Open request spans by request key.
    std::map<std::string, Span> spans_;
    // Refusals of a request reusing the id of one in flight, whose error must not end the
    // other's span.
    std::map<std::string, int> duplicate_errors_;
    std::optional<LogLevel> legacy_log_level_;
    // 2025-11-25: the client declared elicitation (form mode): a person can be asked in the
    // session to confirm a call; the calls waiting for their answer, by the request's id.
    bool legacy_can_elicit_ = false;
    struct Elicitation {
        Request request;
        std::string tool;
        json token;
        std::shared_ptr<const json> arguments;
        std::string state;
    };
    std::map<std::string, Elicitation> elicitations_pending_;
    uint64_t elicitations_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for scheduled functions
    // Requests the backend is working on: their ids, by id as JSON text.
    std::map<std::string, json> in_flight_;
    std::set<std::string> cancelled_;  // in flight but cancelled: their replies are dropped
    std::map<std::string, json> subscriptions_;  // modern subscriptions/listen, by id (dumped)
    bool shut_down_ = false;
    // Large results being written off the loop (BodyStream::off_loop): the server is not idle.
    size_t streaming_ = 0;
};

}  // namespace pg_mcp::bridge
