// What the protocol layer needs from the database, as an asynchronous interface: the real one
// (database.cpp) runs calls on a pool of libpq connections; unit tests use a scripted one.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "trace.hpp"

namespace pg_mcp::bridge {

using nlohmann::json;

// Who is calling, recorded by the extension in the audit log.
struct CallIdentity {
    std::string agent_name;
    std::string client_info;
    std::string request_id;
    // The SHA-256 (hex) of the agent's bearer token when the bridge serves many principals over
    // one login: the call runs as the token's principal (mcp.assume_principal). Empty: the
    // connection's own role.
    std::string principal_token;
    // The token's principal when the transport knows it: whose turn the request is in the
    // pool's queue (several tokens of one principal share its turn).
    std::string principal;
    // With an OAuth access token (--auth oauth): its verified claims and this resource,
    // {"resource": url, "claims": {...}} as JSON text; the call runs as the principal the
    // identity maps to (mcp.assume_identity), its claims readable by SQL. Takes the place of
    // principal_token.
    std::string oauth_identity;
    // The request's span (its trace, and its id as the parent of the database's spans).
    TraceContext trace;
};

// Gives the next piece of a streamed body; false at its end (or when the stream broke: then
// `failed` says why).
struct BodyStream {
    std::function<bool(std::string &chunk)> next;
    std::string failed;
    // The whole body is in memory: next() never waits, and may be called on the loop.
    bool buffered = false;
    // A large body is not in memory: its next() waits for the loop's reads, so it is read
    // elsewhere. off_loop(read, then) runs `read` (which may call next()) on a helper thread,
    // then `then` on the loop; the body lives until `then` has run. Called at most once, while
    // the reply callback runs; a body nobody reads is drained by its backend.
    std::function<void(std::function<void()> read, std::function<void()> then)> off_loop;
};

struct BackendReply {
    bool ok = false;
    // tools/list: the array of tool definitions; tools/call: the CallToolResult, or, when `body`
    // is set, its head ({"_meta":...,"isError":...}) with the other members in `body`.
    json value;
    int error_code = 0;
    std::string error_message;
    std::string sqlstate;  // of a database error, when there was one
    bool busy = false;     // refused after waiting for a free connection (not run)
    // A call served by a hot standby: its audit record (JSON), taken out of the result's
    // _meta; whoever routes to standbys forwards it to the primary.
    std::string standby_audit;
    // A large result's other members as raw JSON text ("content":[...],...), read piece by piece
    // while the reply callback runs (and only then), so that it is never held whole.
    BodyStream *body = nullptr;
};

using ReplyFn = std::function<void(BackendReply)>;
// Called while a call runs, about once a second, with the seconds elapsed.
using ProgressFn = std::function<void(int elapsed_seconds)>;
// A notice or warning the call's SQL raised (RAISE NOTICE, a function's WARNING), as the
// server sent it, each text field cut to a bounded size.
struct ServerNotice {
    std::string severity;  // DEBUG, LOG, INFO, NOTICE or WARNING (not localized)
    std::string sqlstate, message, detail, hint;
};
// Called on the loop for each notice of a running call, in order, before its reply (a bounded
// number per call; the pool logs the rest).
using NoticeFn = std::function<void(const ServerNotice &)>;

// What the protocol asks of the database. Each operation is one row of the table in
// database.cpp (its SQL function, with and without a principal's token, and its parameters).
enum class Operation {
    ListTools,          // tools/list: the array of tool definitions
    CallTool,           // tools/call: the CallToolResult (its head, the body streamed)
    ListResources,      // resources/list: the array of the caller's sandboxed views
    ReadResource,       // resources/read: a ReadResourceResult; unknown uri: sqlstate 42704
    ListPrompts,        // prompts/list: the array of prompt definitions
    GetPrompt,          // prompts/get: a GetPromptResult; unknown: 42704, bad argument: 22023
    Authenticate,       // a bearer token's SHA-256 (hex, in identity.principal_token) or an OAuth
                        // identity (identity.oauth_identity): the principal's name, or
                        // error_code::kUnauthorized (with sqlstate 28000 when not mapped)
    IdentityProviders,  // the OAuth issuers trusted for the resource in `name`: an array of
                        // {"issuer", "scopes", "introspect"}
    EndSession,         // tells every bridge that the session ticket `name` ("NAME ISSUED")
                        // ended (NOTIFY pg_mcp_session_ended, on the primary): true
};

struct Work {
    Operation operation = Operation::ListTools;
    std::string key;  // identifies the work for cancel()
    CallIdentity identity;
    std::string name;       // CallTool: the tool; ReadResource: the uri; GetPrompt: the prompt
    std::string arguments;  // CallTool, GetPrompt: a JSON object, as text
    ProgressFn progress;    // CallTool
    NoticeFn notice;        // CallTool
    // CallTool: what the client brought for a person's confirmation, as JSON text for
    // mcp.serve_call ({"can_ask", "state", "action"}); empty: nothing.
    std::string confirmation;
};

class Backend {
  public:
    virtual ~Backend() = default;
    // Queues work. `reply` is called exactly once, on the loop, also for cancelled work.
    virtual void submit(Work work, ReplyFn reply) = 0;
    // Cancels queued or running work (running: the query is cancelled in the server).
    virtual void cancel(const std::string &key) = 0;

    // The operations, by name.
    void list_tools(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
        submit(work(Operation::ListTools, key, identity), std::move(reply));
    }
    void call_tool(const std::string &key, const CallIdentity &identity, const std::string &name,
                   const json &arguments, ProgressFn progress, NoticeFn notice, ReplyFn reply,
                   std::string confirmation = {}) {
        Work call = work(Operation::CallTool, key, identity, name, arguments.dump());
        call.progress = std::move(progress);
        call.notice = std::move(notice);
        call.confirmation = std::move(confirmation);
        submit(std::move(call), std::move(reply));
    }
    void list_resources(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
        submit(work(Operation::ListResources, key, identity), std::move(reply));
    }
    void read_resource(const std::string &key, const CallIdentity &identity, const std::string &uri,
                       ReplyFn reply) {
        submit(work(Operation::ReadResource, key, identity, uri), std::move(reply));
    }
    void list_prompts(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
        submit(work(Operation::ListPrompts, key, identity), std::move(reply));
    }
    void get_prompt(const std::string &key, const CallIdentity &identity, const std::string &name,
                    const json &arguments, ReplyFn reply) {
        submit(work(Operation::GetPrompt, key, identity, name, arguments.dump()), std::move(reply));
    }
    void authenticate(const std::string &key, const std::string &token_sha256, ReplyFn reply) {
        CallIdentity token;
        token.principal_token = token_sha256;
        submit(work(Operation::Authenticate, key, token), std::move(reply));
    }
    void authenticate_identity(const std::string &key, const std::string &oauth_identity,
                               ReplyFn reply) {
        CallIdentity identity;
        identity.oauth_identity = oauth_identity;
        submit(work(Operation::Authenticate, key, identity), std::move(reply));
    }
    void identity_providers(const std::string &key, const std::string &resource, ReplyFn reply) {
        submit(work(Operation::IdentityProviders, key, CallIdentity(), resource), std::move(reply));
    }

  private:
    static Work work(Operation operation, const std::string &key, const CallIdentity &identity,
                     std::string name = {}, std::string arguments = {}) {
        Work w;
        w.operation = operation;
        w.key = key;
        w.identity = identity;
        w.name = std::move(name);
        w.arguments = std::move(arguments);
        return w;
    }
};

}  // namespace pg_mcp::bridge
