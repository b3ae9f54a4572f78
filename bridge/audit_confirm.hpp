// Group commit at the bridge: a call made with mcp.call_tool_deferred returns as soon as its
// audit record is queued, so its pool connection is free at once; its answer waits here until
// mcp.await_audit confirms the record is committed and flushed. One waiter, on its own
// connection, confirms every record pending at once (awaiting the newest confirms all before
// it), so durable calls are not limited by pool size / flush latency. No answer leaves before
// its audit row is durable.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "log.hpp"

namespace pg_mcp::bridge {

class AuditConfirmer {
  public:
    // ok: the record is durable, with its mcp.audit_log id (0 when unknown); else why not.
    using Done = std::function<void(bool ok, int64_t id, const std::string &error)>;

    AuditConfirmer(std::string dsn, const Logger &logger);
    ~AuditConfirmer();
    AuditConfirmer(const AuditConfirmer &) = delete;
    AuditConfirmer &operator=(const AuditConfirmer &) = delete;

    // Calls done (from the waiter's thread) once record `seq` of queue `slot` is durable, or
    // could not be confirmed.
    void await(int slot, int64_t seq, Done done);
    // Confirms what is pending, refuses what comes after, and joins the waiter.
    void stop();

  private:
    // A record whose confirmation a lost connection interrupted is confirmed again on the next
    // connection for this long after it was queued, then failed.
    static constexpr std::chrono::seconds kRetryFor{10};
    struct Pending {
        int slot;
        int64_t seq;
        Done done;
        std::chrono::steady_clock::time_point deadline;
    };
    void loop();
    bool stopping();

    std::string dsn_;
    const Logger &logger_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<Pending> pending_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace pg_mcp::bridge
