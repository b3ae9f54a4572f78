// The audit confirmer: a coroutine on the event loop, over a LoopConnection of its own.

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "audit_confirm.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <vector>

#include "loop_connection.hpp"
#include "wakeup.hpp"
#include "loop_wait.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct AuditConfirmer::State {
    State(asio::io_context &io, std::string dsn, const Logger &logger)
        : loop(io), logger(logger), connection(io, std::move(dsn)), work(io), nap(io) {}
    // A record whose confirmation a lost connection interrupted is confirmed again on the next
    // connection for this long after it was queued, then failed.
    static constexpr std::chrono::seconds kRetryFor{10};
    struct Pending {
        int slot;
        int64_t seq;
        Done done;
        Clock::time_point deadline;
    };
    asio::io_context &loop;
    const Logger &logger;
    asio::thread_pool connector{1};  // libpq's connect blocks
    std::atomic<bool> stop_asked{false};
    std::promise<void> ended;
    // The loop's side.
    LoopConnection connection;
    std::vector<Pending> pending;
    bool stopping = false;
    // Given up by stop() (it waited long enough): no record is answered any more, for whoever
    // waited may be gone.
    bool detached = false;
    Wakeup work;  // records to confirm, or the stop
    Wakeup nap;   // ends a backoff early: the stop
    // The server instance records were queued on: a queue's (slot, seq) numbers start again
    // when the server restarts (or another one takes over), so a record is confirmed only on
    // the instance it was queued on; after a change, what was pending is failed, not retried.
    std::string instance;
};

namespace {

using State = AuditConfirmer::State;

asio::awaitable<std::string> server_started(State &s) {
    LoopConnection::Answer started =
        co_await s.connection.query("SELECT pg_catalog.pg_postmaster_start_time()::text");
    co_return started.ok ? started.value : std::string();
}

// Connects (again) between batches, and checks the instance then: false when it changed (the
// batch is failed).
asio::awaitable<bool> reconnect(State &s, std::vector<State::Pending> &batch,
                                std::string &connect_error) {
    if (s.connection.is_open()) co_return true;
    bool opened = co_await s.connection.open(s.connector, connect_error);
    if (!opened) co_return true;
    std::string started = co_await server_started(s);
    bool changed = !s.instance.empty() && !started.empty() && started != s.instance;
    if (!started.empty()) s.instance = started;
    if (!changed) co_return true;
    const std::string why =
        "the database server restarted (or another took over) before the record was confirmed "
        "durable; whether it was written is in mcp.audit_log";
    s.logger.log(LogLevel::Error,
                 std::to_string(batch.size()) + " audit records could not be confirmed: " + why);
    for (State::Pending &each : batch)
        if (!s.detached) each.done(false, 0, why);
    co_return false;
}

// Confirms a batch: the newest record of each queue (confirming it confirms every one queued
// before); records a lost connection interrupted go back to `pending` until their deadline.
asio::awaitable<void> confirm(State &s, std::vector<State::Pending> batch,
                              const std::string &connect_error,
                              std::chrono::milliseconds &backoff) {
    std::map<int, int64_t> newest;
    for (const State::Pending &each : batch)
        newest[each.slot] = std::max(newest[each.slot], each.seq);
    std::map<int, int64_t> confirmed_id;  // the newest record's id, per slot
    std::map<int, std::string> failed;
    std::map<int, bool> disconnected;  // the failure was the connection's: retry
    for (const auto &[slot, seq] : newest) {
        if (!s.connection.is_open()) {
            failed[slot] = "cannot reach the database" +
                           (connect_error.empty() ? std::string() : ": " + connect_error);
            disconnected[slot] = true;
            backoff = std::min(std::max(backoff * 2, std::chrono::milliseconds(50)),
                               std::chrono::milliseconds(1000));
            continue;
        }
        backoff = std::chrono::milliseconds(0);
        // A named vector: GCC 12 cannot keep a braced list alive across co_await.
        std::vector<std::string> params;
        params.push_back(std::to_string(slot));
        params.push_back(std::to_string(seq));
        LoopConnection::Answer answer =
            co_await s.connection.query("SELECT mcp.await_audit($1, $2)", params);
        if (answer.ok && answer.connected) {
            confirmed_id[slot] = std::atoll(answer.value.c_str());
            continue;
        }
        failed[slot] = answer.error.empty() ? "the database connection was lost" : answer.error;
        if (!answer.connected || !s.connection.is_open()) {
            s.connection.close();
            disconnected[slot] = true;
            backoff = std::chrono::milliseconds(50);
        }
    }
    std::vector<State::Pending> retry;
    auto now = Clock::now();
    for (State::Pending &each : batch) {
        auto failure = failed.find(each.slot);
        if (failure != failed.end() && disconnected.count(each.slot) && now < each.deadline &&
            !s.stopping) {
            retry.push_back(std::move(each));
            continue;
        }
        if (failure != failed.end()) {
            s.logger.log(LogLevel::Error,
                         "an audit record could not be confirmed durable: " + failure->second);
            if (!s.detached) each.done(false, 0, failure->second);
            continue;
        }
        int64_t newest_id = confirmed_id[each.slot];
        // Records of one queue have consecutive ids in queue order.
        int64_t id = newest_id > 0 ? newest_id - (newest[each.slot] - each.seq) : 0;
        if (!s.detached) each.done(true, id > 0 ? id : 0, std::string());
    }
    if (!failed.empty() && backoff.count() > 0) co_await wait_until(s.nap, Clock::now() + backoff);
    s.pending.insert(s.pending.begin(), std::make_move_iterator(retry.begin()),
                     std::make_move_iterator(retry.end()));
}

asio::awaitable<void> run(std::shared_ptr<State> s) {
    // Connected at once and kept: under load, when the login's connection limit is reached, the
    // confirmer already holds its connection rather than competing for one.
    std::string first_error;
    bool opened = co_await s->connection.open(s->connector, first_error);
    if (!opened)
        s->logger.log(LogLevel::Warning,
                      "the audit confirmer cannot connect yet (it retries): " + first_error);
    else
        s->instance = co_await server_started(*s);
    std::chrono::milliseconds backoff{0};
    for (;;) {
        while (s->pending.empty() && !s->stopping) {
            s->work.fired = false;
            co_await wait_until(s->work, Clock::time_point::max());
        }
        std::vector<State::Pending> batch;
        batch.swap(s->pending);
        if (s->stopping && batch.empty()) break;  // what was pending is answered first
        std::string connect_error;
        bool same_instance = co_await reconnect(*s, batch, connect_error);
        if (!same_instance) continue;
        co_await confirm(*s, std::move(batch), connect_error, backoff);
    }
    s->connection.close();
}

}  // namespace

AuditConfirmer::AuditConfirmer(asio::io_context &loop, std::string dsn, const Logger &logger)
    : state_(std::make_shared<State>(loop, std::move(dsn), logger)) {
    auto s = state_;
    asio::co_spawn(loop, run(s), [s](std::exception_ptr failure) {
        if (failure) s->logger.log(LogLevel::Error, "internal error in the audit confirmer");
        s->ended.set_value();
    });
}

AuditConfirmer::~AuditConfirmer() {
    stop();
}

void AuditConfirmer::await(int slot, int64_t seq, Done done) {
    State &s = *state_;
    if (s.stopping) {
        done(false, 0, "the bridge is stopping");
        return;
    }
    s.pending.push_back(
        State::Pending{slot, seq, std::move(done), Clock::now() + State::kRetryFor});
    s.work.fire();
}

void AuditConfirmer::stop() {
    auto s = state_;
    if (s->stop_asked.exchange(true)) return;
    asio::post(s->loop, [s] {
        s->stopping = true;
        s->work.fire();
        s->nap.fire();
    });
    // What is pending is confirmed first (a statement in progress is not interrupted); past
    // that, the confirmer is detached: nothing it still holds is answered.
    std::future<void> ended = s->ended.get_future();
    if (!wait_for_loop(s->loop, ended, std::chrono::seconds(15))) {
        auto detached = std::make_shared<std::promise<void>>();
        std::future<void> done = detached->get_future();
        asio::post(s->loop, [s, detached] {
            s->detached = true;
            s->pending.clear();
            s->connection.interrupt();
            detached->set_value();
        });
        wait_for_loop(s->loop, done, std::chrono::seconds(2));
    }
    s->connector.join();
}

}  // namespace pg_mcp::bridge
