// Read replicas: read-only work goes to a hot standby, writing tools to the primary, and the
// audit records of standby-served calls reach the primary's mcp.audit_log through a local
// spool, so that a primary that is briefly down loses none of them.
#pragma once

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend.hpp"
#include "database.hpp"
#include "log.hpp"

namespace pg_mcp::bridge {

// Audit records of standby-served calls, appended durably (fdatasync) to a file before the
// call's result is released, and forwarded in batches to the primary by a thread
// (mcp.ingest_standby_audit, which skips records it already has): the offset up to which the
// primary has them durably is kept in FILE.offset, and the file starts over once everything
// in it is sent. The file is locked (flock) by one bridge at a time.
class AuditSpool {
  public:
    AuditSpool(std::string path, std::string primary_dsn, const Logger &logger);
    ~AuditSpool();
    AuditSpool(const AuditSpool &) = delete;
    AuditSpool &operator=(const AuditSpool &) = delete;

    // Opens (or creates) the file and starts forwarding, leftovers of an earlier run first.
    bool open(std::string &error);
    // One record (a JSON object on one line); true once it is on disk.
    bool append(const std::string &record, std::string &error);
    // Stops the forwarder after trying to empty the spool for up to `grace`.
    void stop(std::chrono::milliseconds grace);

    size_t pending() const { return pending_.load(); }
    uint64_t forwarded() const { return forwarded_.load(); }
    uint64_t rejected() const { return rejected_.load(); }

  private:
    void loop();
    // Forwards the spooled records once; false when the primary could not take them.
    bool forward();
    // Sends a JSON array of records; "" on success, else the error (sqlstate set if any).
    std::string ingest(const std::string &records, std::string &sqlstate);
    // Records before `end` are on the primary: remember it durably (FILE.offset), and start
    // the file over when it holds nothing else.
    bool mark_sent(off_t end, std::string &error);
    void reject(const std::string &line, const std::string &why);

    std::string path_;
    std::string primary_dsn_;
    const Logger &logger_;
    int fd_ = -1;
    int offset_fd_ = -1;
    off_t sent_ = 0;          // records before this offset are on the primary (forwarder only)
    PGconn *conn_ = nullptr;  // the forwarder's own connection to the primary
    std::mutex mutex_;        // the file
    std::condition_variable wake_;
    bool stopping_ = false;
    std::chrono::steady_clock::time_point drain_until_{};
    std::atomic<size_t> pending_{0};
    std::atomic<uint64_t> forwarded_{0}, rejected_{0};
    std::thread thread_;
};

struct ReplicaOptions {
    std::string primary_dsn;  // to compare the standbys' positions with
    std::vector<std::string> dsns;
    std::chrono::milliseconds max_lag{30000};  // a standby further behind is not used
    bool fallback_to_primary = true;           // false: fail read-only calls instead
};

// Routes work between the primary and its hot standbys: tools/list, token checks and tool
// calls go to a usable standby (replaying, within max_lag, reachable), writing tools (which the
// standby refuses with SQLSTATE MCP02) and everything when no standby is usable to the
// primary — or fail clearly, as configured.
class ReplicaRouter : public Backend {
  public:
    ReplicaRouter(boost::asio::io_context &loop, Database &primary, ReplicaOptions options,
                  AuditSpool &spool, size_t pool_size, const Logger &logger,
                  std::chrono::milliseconds queue_timeout, bool prepare_statements);
    ~ReplicaRouter() override;

    void submit(Work work, ReplyFn reply) override;
    void cancel(const std::string &key) override;

    void stop();
    std::string metrics_text();

  private:
    struct Replica {
        std::string dsn;
        std::unique_ptr<Database> pool;
        std::atomic<bool> usable{false};
        std::atomic<long> lag_ms{-1};
        std::string state;  // why not usable (guarded by ReplicaRouter::mutex_)
    };
    Replica *pick();
    void monitor();  // polls each standby's recovery state and lag
    void mark_down(Replica &replica, const std::string &why);
    // Runs `work` on a usable standby; on the primary when none is usable, when the standby
    // cannot be reached, or when the work writes (SQLSTATE MCP02) or needs a token the standby
    // does not know. A result's standby audit record is spooled before it is released.
    void route(ReplyFn reply, const std::function<void(Backend &, ReplyFn)> &work);
    void store_then_answer(BackendReply result, ReplyFn reply);

    boost::asio::io_context &loop_;
    Database &primary_;
    ReplicaOptions options_;
    AuditSpool &spool_;
    const Logger &logger_;
    std::vector<std::unique_ptr<Replica>> replicas_;
    std::atomic<size_t> next_{0};
    std::mutex mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    std::thread monitor_;
    boost::asio::thread_pool spooler_{1};  // stores standby audit records (fdatasync)
    std::atomic<uint64_t> on_replica_{0}, on_primary_{0}, to_primary_writes_{0}, fallbacks_{0},
        refused_{0};
};

}  // namespace pg_mcp::bridge
