// Group commit at the bridge: a call made with mcp.call_tool_deferred returns as soon as its
// audit record is queued, so its pool connection is free at once; its answer waits here until
// mcp.await_audit confirms the record is committed and flushed. One waiter, on its own
// connection (a coroutine on the event loop), confirms every record pending at once (awaiting
// the newest confirms all before it), so durable calls are not limited by pool size / flush
// latency. No answer leaves before its audit row is durable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "log.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

class AuditConfirmer {
  public:
    // ok: the record is durable, with its mcp.audit_log id (0 when unknown); else why not.
    using Done = std::function<void(bool ok, int64_t id, const std::string &error)>;

    AuditConfirmer(boost::asio::io_context &loop, std::string dsn, const Logger &logger);
    ~AuditConfirmer();
    AuditConfirmer(const AuditConfirmer &) = delete;
    AuditConfirmer &operator=(const AuditConfirmer &) = delete;

    // On the loop: calls done (on the loop) once record `seq` of queue `slot` is durable, or
    // could not be confirmed.
    void await(int slot, int64_t seq, Done done);
    // Confirms what is pending, refuses what comes after, and ends. Not from the loop's thread.
    void stop();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace pg_mcp::bridge
