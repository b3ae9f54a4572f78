// Database access for the bridge: a small pool of libpq connections, each owned by one worker
// thread, opened lazily and reopened with backoff when lost; one round trip per call; query
// cancellation; and a LISTEN connection that reports catalog changes.
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

#include "audit_confirm.hpp"
#include "backend.hpp"
#include "fair_queue.hpp"
#include "log.hpp"

namespace pg_mcp::bridge {

extern const char *const kExtensionVersion;  // the extension version this bridge was built with
// Whether an installed extension version works with this bridge: the same major.minor.
bool compatible_extension_version(const std::string &installed);
extern const char *const kNeedsPrimary;  // SQLSTATE of a writing tool called on a hot standby

// One libpq connection with its cancel handle. Not thread-safe: one worker uses it.
class Connection {
  public:
    explicit Connection(std::string dsn) : dsn_(std::move(dsn)) {}
    ~Connection() { close(); }
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    // Connects if not connected (or if the server dropped the connection while it was idle).
    // On failure returns false with a message.
    bool ensure(std::string &error);
    void close();
    PGconn *get() const { return conn_; }
    PGcancel *cancel_handle() const { return cancel_; }
    // Prepares a statement on this connection once (until it is closed).
    bool prepare(const char *name, const char *sql, std::string &error);

  private:
    bool healthy();
    std::string dsn_;
    PGconn *conn_ = nullptr;
    PGcancel *cancel_ = nullptr;
    std::set<std::string> prepared_;
};

// Opens a connection with the bridge's settings (application_name) on top of the DSN, which
// may be empty (then PG* variables, service files and .pgpass apply, as for psql).
PGconn *open_connection(const std::string &dsn);
// Where the notices of every connection open_connection makes go (set once, at start-up).
void route_notices_to(const Logger *logger);

struct StartupCheck {
    bool ok = false;
    std::string message;  // what is wrong, for a DBA; or a summary when ok
};

// Connects once and verifies that pg_mcp is installed in the expected version.
StartupCheck check_database(const std::string &dsn);

class Database : public Backend {
  public:
    // queue_timeout: longest wait for a free connection before a request is answered "busy,
    // retry" (0: no limit). prepare_statements: false sends every statement unnamed, for
    // proxies in transaction pooling mode that do not track prepared statements (PgBouncer
    // before 1.21, or without max_prepared_statements).
    Database(std::string dsn, size_t pool_size, const Logger &logger,
             std::chrono::milliseconds queue_timeout = std::chrono::milliseconds(0),
             bool prepare_statements = true);
    ~Database() override;

    void list_tools(const std::string &key, const CallIdentity &identity, ReplyFn reply) override;
    void call_tool(const std::string &key, const CallIdentity &identity, const std::string &name,
                   const json &arguments, ProgressFn progress, ReplyFn reply) override;
    void list_resources(const std::string &key, const CallIdentity &identity,
                        ReplyFn reply) override;
    void read_resource(const std::string &key, const CallIdentity &identity, const std::string &uri,
                       ReplyFn reply) override;
    void list_prompts(const std::string &key, const CallIdentity &identity, ReplyFn reply) override;
    void get_prompt(const std::string &key, const CallIdentity &identity, const std::string &name,
                    const json &arguments, ReplyFn reply) override;
    void authenticate(const std::string &key, const std::string &token_sha256,
                      ReplyFn reply) override;
    void cancel(const std::string &key) override;

    // Cancels running queries, fails queued work, and joins the workers.
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
    // the pool as a call would (reconnecting a dead connection), bounded by `timeout`.
    std::string readiness(std::chrono::milliseconds timeout = std::chrono::milliseconds(1500));

    // Counters and gauges in Prometheus text format (pg_mcp_bridge_*): tool calls by outcome,
    // their latency histogram, pool connections in use, calls waiting, refused as busy.
    std::string metrics_text();

  private:
    struct Job {
        std::string key;
        bool is_call = false;
        bool is_authenticate = false;  // identity.principal_token only
        bool is_ping = false;          // SELECT 1: readiness
        enum class Catalog { Tools, Resources, Resource, Prompts, Prompt };
        Catalog catalog = Catalog::Tools;  // what a job that is no call lists or reads
        std::string uri;                   // Resource: its uri; Prompt: its name
        std::string prompt_arguments;      // Prompt: a JSON object
        CallIdentity identity;
        std::string tool;
        std::string arguments;
        ProgressFn progress;
        ReplyFn reply;
        std::chrono::steady_clock::time_point queued_at;
        bool cancelled = false;             // guarded by mutex_
        PGcancel *cancel_handle = nullptr;  // while running; guarded by mutex_
    };

    void enqueue(std::shared_ptr<Job> job);
    // A job that lists or reads the catalog (name: a resource's uri or a prompt's name;
    // arguments: a prompt's, as JSON).
    void enqueue_catalog(Job::Catalog catalog, const std::string &key, const CallIdentity &identity,
                         ReplyFn reply, std::string name = {}, std::string arguments = {});
    // A connection's reconnection state: after a failed attempt the next one waits a jittered,
    // doubling delay, from 50 ms to at most a second; each connection has its own, so the others
    // keep serving while one cannot connect.
    struct Reconnect {
        std::chrono::milliseconds delay{0};
        std::chrono::steady_clock::time_point retry_at{};
        void failed();
        void succeeded() { delay = std::chrono::milliseconds(0), retry_at = {}; }
    };
    // Whose turn a job is in the fair queue.
    static std::string owner_of(const Job &job);
    void worker();
    void expire_queued();  // the queue timeout's thread
    void run(std::shared_ptr<Job> job, Connection &connection, Reconnect &reconnect);
    // A deferred call's answer: held until its audit record (`pending`: [slot, seq]) is
    // confirmed. True when the answer is taken care of; false leaves `reply` to be finished
    // (an error, or no confirmer).
    // A call whose statement finished well: no longer cancellable or listed as active.
    void settle(Job &job);
    bool confirm_then_answer(Job &job, BackendReply &reply, BodyStream &body, const json &pending,
                             std::chrono::steady_clock::time_point begun);
    void execute(Job &job, Connection &connection);

    std::string dsn_;
    size_t pool_size_;
    const Logger &logger_;
    AuditConfirmer *confirmer_ = nullptr;
    bool defer_always_ = false;

    std::mutex mutex_;
    std::condition_variable ready_;  // work queued (workers that may take it wait here)
    std::condition_variable retry_;  // workers whose connection waits to retry (woken at stop)
    FairQueue<Job> queue_;           // by owner: each principal's token hash, "" for the login role
    std::map<std::string, std::shared_ptr<Job>> active_;  // queued or running, by key
    std::vector<std::thread> workers_;
    bool stopping_ = false;
    std::chrono::milliseconds queue_timeout_;
    bool prepare_statements_;

    // Metrics (metrics_text).
    static constexpr double kBucketsMs[] = {1,   2,   5,    10,   25,   50,   100,
                                            250, 500, 1000, 2500, 5000, 10000};
    static constexpr size_t kBuckets = sizeof(kBucketsMs) / sizeof(kBucketsMs[0]);
    std::atomic<uint64_t> calls_ok_{0}, calls_tool_error_{0}, calls_failed_{0}, busy_{0};
    std::atomic<uint64_t> bucket_counts_[kBuckets + 1] = {};  // last: +Inf
    std::atomic<uint64_t> duration_us_{0};
    std::atomic<int> in_use_{0};
    void record_call(const BackendReply &reply, std::chrono::steady_clock::duration elapsed);
    std::condition_variable expiry_;  // wakes the expirer at stop (workers wait on ready_)
    std::thread expirer_;

    // Connections known to work (connected, not yet found lost), the last success of any
    // request, and why the last connection attempt failed (guarded by mutex_).
    size_t connected_ = 0;
    size_t failing_ = 0;  // connections whose last attempt to connect failed
    std::chrono::steady_clock::time_point last_success_{};
    std::string last_failure_;
    // /readyz: one probe at a time, its answer kept for half a second.
    std::mutex readiness_mutex_;
    std::chrono::steady_clock::time_point readiness_at_{};
    std::string readiness_;
};

// Listens for pg_mcp_tools_changed on its own connection and calls on_change for each
// notification (and after a reconnect, since changes may have been missed).
class Listener {
  public:
    Listener(std::string dsn, const Logger &logger, std::function<void()> on_change);
    ~Listener();
    void stop();

  private:
    void loop();
    std::string dsn_;
    const Logger &logger_;
    std::function<void()> on_change_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

}  // namespace pg_mcp::bridge
