// What the protocol layer needs from the database, as an asynchronous interface: the real one
// (database.cpp) runs calls on a pool of libpq connections; unit tests use a scripted one.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

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
};

// Gives the next piece of a streamed body; false at its end (or when the stream broke: then
// `failed` says why).
struct BodyStream {
    std::function<bool(std::string &chunk)> next;
    std::string failed;
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

class Backend {
  public:
    virtual ~Backend() = default;
    // Queue work. `reply` is called exactly once, from any thread, also for cancelled work.
    // `key` identifies the work for cancel().
    virtual void list_tools(const std::string &key, const CallIdentity &identity,
                            ReplyFn reply) = 0;
    virtual void call_tool(const std::string &key, const CallIdentity &identity,
                           const std::string &name, const json &arguments, ProgressFn progress,
                           ReplyFn reply) = 0;
    // resources/list: the array of resource definitions (the sandboxed views the caller can
    // read). resources/read: the ReadResourceResult of one; an unknown or unreadable uri is an
    // error with sqlstate 42704.
    virtual void list_resources(const std::string &key, const CallIdentity &identity,
                                ReplyFn reply) = 0;
    virtual void read_resource(const std::string &key, const CallIdentity &identity,
                               const std::string &uri, ReplyFn reply) = 0;
    // prompts/list: the array of prompt definitions for the caller. prompts/get: the
    // GetPromptResult of one; an unknown prompt is an error with sqlstate 42704, a missing or
    // invalid argument one with 22023.
    virtual void list_prompts(const std::string &key, const CallIdentity &identity,
                              ReplyFn reply) = 0;
    virtual void get_prompt(const std::string &key, const CallIdentity &identity,
                            const std::string &name, const json &arguments, ReplyFn reply) = 0;
    // Checks a bearer token's SHA-256 (hex) in the database: ok with the principal's name in
    // `value`, or an error (error_code::kUnauthorized for an unknown, expired or revoked token).
    virtual void authenticate(const std::string &key, const std::string &token_sha256,
                              ReplyFn reply) = 0;
    // Cancels queued or running work (running: the query is cancelled in the server).
    virtual void cancel(const std::string &key) = 0;
};

}  // namespace pg_mcp::bridge
