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
};

struct BackendReply {
    bool ok = false;
    json value;  // tools/list: the array of tool definitions; tools/call: the CallToolResult
    int error_code = 0;
    std::string error_message;
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
    // Cancels queued or running work (running: the query is cancelled in the server).
    virtual void cancel(const std::string &key) = 0;
};

}  // namespace pg_mcp::bridge
