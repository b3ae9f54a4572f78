// The pool's inner state, shared by its two halves: database.cpp (lifecycle, queue,
// connections, sending) and pool_results.cpp (what a query returns becomes a reply). Internal
// to the pool.
#pragma once

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "database.hpp"
#include "json_rpc.hpp"
#include "statements.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;

// Where a standby puts a call's audit record in its result's _meta (ReplicaRouter).
inline constexpr const char *kStandbyAuditKey = "pg-mcp/standby_audit";

using Clock = std::chrono::steady_clock;

// The wait for a call's audit record to be durable (group commit at the bridge), as a span.
inline void trace_durability(const TraceContext &trace, std::chrono::system_clock::time_point from,
                             bool ok, int64_t id) {
    if (!trace.valid()) return;
    Span wait;
    wait.name = "pg_mcp audit durability wait";
    wait.context = trace;
    wait.context.span_id = new_span_id();
    wait.parent_span_id = trace.span_id;
    wait.start = from;
    wait.end = std::chrono::system_clock::now();
    if (id > 0) wait.set("pg_mcp.audit_id", id);
    wait.error = !ok;
    if (!ok) wait.status_message = "the audit record was not confirmed durable";
    record_span(std::move(wait));
}

inline BackendReply failure(int code, std::string message) {
    BackendReply reply;
    reply.ok = false;
    reply.error_code = code;
    reply.error_message = std::move(message);
    return reply;
}

// Calls reply, containing anything it throws: a worker thread must survive any reply.
inline void deliver(const ReplyFn &reply, BackendReply value, const Logger &logger) {
    try {
        reply(std::move(value));
    } catch (const std::exception &error) {
        logger.log(LogLevel::Error, std::string("internal error while replying: ") + error.what());
    }
}

struct Database::Job {
    std::string key;
    Operation operation = Operation::ListTools;
    bool is_call = false;          // CallTool
    bool is_authenticate = false;  // Authenticate: identity.principal_token only
    bool is_ping = false;          // SELECT 1: readiness
    CallIdentity identity;
    std::string name;       // the tool, resource uri or prompt
    std::string arguments;  // JSON text
    ProgressFn progress;
    NoticeFn notice;
    std::string confirmation;  // for mcp.serve_call (empty: NULL)
    int notices = 0;           // handed to `notice` so far
    size_t notice_bytes = 0;
    ReplyFn reply;
    std::chrono::steady_clock::time_point queued_at;
    bool cancelled = false;
    Slot *running_on = nullptr;  // while its query runs
    // Its spans (with a trace): queued since, and the statement's span, from `sent` on.
    std::chrono::system_clock::time_point queued_wall, sent;
    std::string statement_span;  // empty: not traced, or already recorded
    std::string statement_summary, database, host, port;
};

// A large body on its way to its consumer: the loop appends the rows it reads, the consumer
// (on a helper thread) takes them; the loop stops reading while the consumer is behind.
struct Database::Chunks {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<std::string> pieces;
    size_t bytes = 0;
    bool done = false;
    std::string failed;
    bool paused = false;           // the loop waits for the consumer to catch up
    std::function<void()> resume;  // posts the loop's resumption
    static constexpr size_t kHigh = 1 << 20, kLow = 256 * 1024;

    // The loop: false when the reader should pause.
    bool push(std::string piece) {
        std::lock_guard<std::mutex> lock(mutex);
        bytes += piece.size();
        pieces.push_back(std::move(piece));
        ready.notify_one();
        if (bytes > kHigh) paused = true;
        return !paused;
    }
    void finish(const std::string &why) {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
        if (failed.empty()) failed = why;
        ready.notify_one();
    }
    // The consumer.
    bool next(std::string &piece) {
        std::function<void()> wake;
        bool more;
        {
            std::unique_lock<std::mutex> lock(mutex);
            ready.wait(lock, [this] { return !pieces.empty() || done; });
            more = !pieces.empty() && failed.empty();
            if (!pieces.empty()) {
                piece = std::move(pieces.front());
                pieces.pop_front();
                bytes -= piece.size();
            }
            if (paused && bytes < kLow) {
                paused = false;
                wake = resume;
            }
        }
        if (wake) wake();
        return more;
    }
};

struct Database::Slot {
    Slot(asio::io_context &io, size_t index) : index(index), retry(io), progress(io) {}
    size_t index;
    enum class State { Closed, Connecting, Idle, Busy, Retrying } state = State::Closed;
    PGconn *conn = nullptr;
    std::shared_ptr<PGcancel> cancel;
    std::unique_ptr<asio::posix::stream_descriptor> socket;
    std::set<std::string> prepared;
    Reconnect reconnect;
    asio::steady_timer retry;
    asio::steady_timer progress;
    bool watching = false;    // a wait for readable is armed
    int cancels_pending = 0;  // cancel requests not yet delivered: no new work meanwhile
    uint64_t generation = 0;  // bumped when the connection closes: older completions are stale
    // The running job, and what its query has returned so far.
    std::shared_ptr<Job> job;
    const Statement *statement = nullptr;
    bool preparing = false;
    std::string prepare_error;
    Clock::time_point begun;
    int reported = 0;
    bool got_value = false;
    std::string text, error_message, sqlstate, body_failed;
    std::deque<std::string> chunks;
    size_t chunk_bytes = 0;
    std::shared_ptr<Chunks> stream;  // the body, handed to its consumer
    bool paused = false;    // not reading (the consumer is behind, or a confirmation is awaited)
    bool answered = false;  // the job's reply is given or taken care of
    bool discard = false;   // the rest of the result is read and dropped
    // The connection's notices (libpq's notice receiver): the running call's, else the log's.
    std::function<void(const PGresult *)> on_notice;

    void reset_run() {
        job.reset();
        statement = nullptr;
        preparing = false;
        prepare_error.clear();
        reported = 0;
        got_value = false;
        text.clear();
        error_message.clear();
        sqlstate.clear();
        body_failed.clear();
        chunks.clear();
        chunk_bytes = 0;
        stream.reset();
        paused = answered = discard = false;
    }
};

struct Database::Helpers {
    explicit Helpers(asio::io_context &io) : expiry(io) {}
    asio::steady_timer expiry;  // the queue timeout's
    bool expiry_armed = false;
    asio::thread_pool connector{2};  // connecting and cancelling block
    asio::thread_pool consumers{2};  // large bodies are read by their consumers here
};

// A body held whole, given piece by piece.
struct HeldBody {
    std::deque<std::string> pieces;
    BodyStream stream;
    HeldBody() {
        stream.buffered = true;
        stream.next = [this](std::string &piece) {
            if (pieces.empty()) return false;
            piece = std::move(pieces.front());
            pieces.pop_front();
            return true;
        };
    }
};

}  // namespace pg_mcp::bridge
