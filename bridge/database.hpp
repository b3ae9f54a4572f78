// The pool: a small set of non-blocking libpq connections on the event loop, opened when work
// waits and reopened with backoff when lost; one round trip per call; query cancellation.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

namespace boost::asio {
class io_context;
}

#include "audit_confirm.hpp"
#include "pg_connection.hpp"
#include "backend.hpp"
#include "fair_queue.hpp"
#include "log.hpp"

namespace pg_mcp::bridge {

extern const char *const kNeedsPrimary;  // SQLSTATE of a writing tool called on a hot standby

// The pool: libpq connections in non-blocking mode, each socket watched by the bridge's event
// loop (no thread per connection). Work waits in a fair queue (by principal) for a free
// connection; a connection is opened when work waits for one (on a helper thread: connecting
// blocks), watched while idle (a connection the server closes is noticed at once), and
// reopened with a jittered backoff from 50 ms to a second when it cannot connect. Replies are
// given on the loop's thread; a large result's body is read by its consumer on a thread of its
// own while the loop reads the rest (with backpressure).
class Database : public Backend {
  public:
    // queue_timeout: longest wait for a free connection before a request is answered "busy,
    // retry" (0: no limit). prepare_statements: false sends every statement unnamed, for
    // proxies in transaction pooling mode that do not track prepared statements (PgBouncer
    // before 1.21, or without max_prepared_statements).
    Database(boost::asio::io_context &loop, std::string dsn, size_t pool_size, const Logger &logger,
             std::chrono::milliseconds queue_timeout = std::chrono::milliseconds(0),
             bool prepare_statements = true);
    ~Database() override;

    void submit(Work work, ReplyFn reply) override;
    void cancel(const std::string &key) override;

    // Fails queued work, cancels running queries, waits (a few seconds at most) for what runs
    // and for answers held for their audit confirmation, and closes the connections. Not from
    // the loop's thread.
    void stop();

    // While requests wait for a connection, calls are made with mcp.call_tool_deferred, their
    // answers held until `confirmer` says their audit records are durable, so the connection
    // serves the next one at once (the login must be a member of mcp_audit_confirmer; otherwise
    // the extension waits in the call). Without a queue a call waits in its own statement: one
    // round trip. Set before the first call.
    // always: every call is deferred (the connection is free as soon as its statement ends).
    void confirm_audit_with(AuditConfirmer *confirmer, bool always = false) {
        confirmer_ = confirmer;
        defer_always_ = always;
    }

    // What the pool can do now, for /readyz: empty when a call would be served, else why not.
    // A call answered within the last second says so; otherwise a probe (SELECT 1) goes through
    // the pool as a call would (reconnecting a dead connection), bounded by `timeout`. Blocks:
    // not from the loop's thread.
    std::string readiness(std::chrono::milliseconds timeout = std::chrono::milliseconds(1500));

    // Counters and gauges in Prometheus text format (pg_mcp_bridge_*): tool calls by outcome,
    // their latency histogram, pool connections in use, calls waiting, refused as busy.
    std::string metrics_text();

    struct Job;
    struct Slot;
    struct Chunks;

  private:
    // A connection's reconnection state: after a failed attempt the next one waits a jittered,
    // doubling delay, from 50 ms to at most a second; each connection has its own, so the others
    // keep serving while one cannot connect.
    struct Reconnect {
        std::chrono::milliseconds delay{0};
        std::chrono::steady_clock::time_point retry_at{};
        void failed();
        void succeeded() { delay = std::chrono::milliseconds(0), retry_at = {}; }
    };

    // Everything below runs on the loop.
    void enqueue(std::shared_ptr<Job> job);
    static std::string owner_of(const Job &job);
    void pump();               // queued work to idle connections; opens what is needed
    void connect(Slot &slot);  // on the helper thread
    void connected(Slot &slot, PGconn *conn);
    void close_slot(Slot &slot);
    void watch(Slot &slot);  // waits for the socket to be readable
    void readable(Slot &slot);
    void start(Slot &slot, std::shared_ptr<Job> job);
    void send_query(Slot &slot);
    void flush(Slot &slot);
    void tick_progress(Slot &slot, std::chrono::steady_clock::time_point begun, uint64_t generation,
                       std::shared_ptr<Job> owner);
    void process(Slot &slot);                         // reads the results that are in
    void notice(Slot &slot, const PGresult *result);  // a notice or warning the server sent
    void take(Slot &slot, PGresult *result);
    void add_chunk(Slot &slot, std::string chunk);
    void finished(Slot &slot);  // the query's last result is read
    void lost(Slot &slot);      // the connection broke during a request
    void release(Slot &slot);   // the connection serves the next request
    // The reply of a call whose head is read: parsed, the standby audit record taken out;
    // `pending` gets the audit token of a deferred call.
    BackendReply head_reply(Slot &slot, json &pending);
    void answer(Slot &slot, BackendReply reply);  // the job's reply, now, on the loop
    void stream_body(Slot &slot, BackendReply reply);
    void hold_until_confirmed(Slot &slot, BackendReply reply, const json &pending);
    void confirm_then_stream(Slot &slot, BackendReply reply, const json &pending);
    void settle(Job &job, bool ok);
    void send_cancel(Slot &slot);
    void expire_queued();
    void arm_expiry();
    void stop_on_loop();
    void check_stopped();
    void record_call(const BackendReply &reply, std::chrono::steady_clock::duration elapsed);

    boost::asio::io_context &loop_;
    std::string dsn_;
    size_t pool_size_;
    const Logger &logger_;
    AuditConfirmer *confirmer_ = nullptr;
    bool defer_always_ = false;
    std::chrono::milliseconds queue_timeout_;
    bool prepare_statements_;

    struct Helpers;
    std::unique_ptr<Helpers> helpers_;  // the loop's timers and the helper threads
    std::vector<std::unique_ptr<Slot>> slots_;
    FairQueue<Job> queue_;  // by owner: each principal's token hash, "" for the login role
    std::map<std::string, std::shared_ptr<Job>> active_;  // queued or running, by key
    bool stopping_ = false;
    bool stopped_ = false;
    int held_ = 0;  // answers held for their audit confirmation, or being streamed
    std::function<void()> on_stopped_;

    // Metrics (metrics_text), and state readiness() reads from other threads.
    static constexpr double kBucketsMs[] = {1,   2,   5,    10,   25,   50,   100,
                                            250, 500, 1000, 2500, 5000, 10000};
    static constexpr size_t kBuckets = sizeof(kBucketsMs) / sizeof(kBucketsMs[0]);
    std::atomic<uint64_t> calls_ok_{0}, calls_tool_error_{0}, calls_failed_{0}, busy_{0};
    std::atomic<uint64_t> bucket_counts_[kBuckets + 1] = {};  // last: +Inf
    std::atomic<uint64_t> duration_us_{0};
    std::atomic<int> in_use_{0};
    std::atomic<size_t> waiting_{0};
    std::atomic<std::chrono::steady_clock::rep> last_success_{0}, last_unavailable_{0};

    // Connections known to work, connections whose last attempt failed, and why.
    size_t connected_ = 0;
    size_t failing_ = 0;
    std::string last_failure_;
    // /readyz: one probe at a time, its answer kept for half a second.
    std::mutex readiness_mutex_;
    std::chrono::steady_clock::time_point readiness_at_{};
    std::string readiness_;
    std::atomic<uint64_t> probes_{0};
};

}  // namespace pg_mcp::bridge
