#include "audit_confirm.hpp"

#include <algorithm>
#include <chrono>
#include <map>

#include <libpq-fe.h>

#include "pg_connection.hpp"

namespace pg_mcp::bridge {

AuditConfirmer::AuditConfirmer(std::string dsn, const Logger &logger)
    : dsn_(std::move(dsn)), logger_(logger) {
    thread_ = std::thread([this] { loop(); });
}

AuditConfirmer::~AuditConfirmer() {
    stop();
}

void AuditConfirmer::await(int slot, int64_t seq, Done done) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!stopping_) {
            pending_.push_back(
                Pending{slot, seq, std::move(done), std::chrono::steady_clock::now() + kRetryFor});
            done = nullptr;
        }
    }
    if (done) {
        done(false, 0, "the bridge is stopping");
        return;
    }
    wake_.notify_one();
}

void AuditConfirmer::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void AuditConfirmer::loop() {
    Connection connection(dsn_);
    // Connected at once and kept: under load, when the login's connection limit is reached, the
    // confirmer already holds its connection rather than competing for one.
    std::string first_error;
    if (!connection.ensure(first_error))
        logger_.log(LogLevel::Warning,
                    "the audit confirmer cannot connect yet (it retries): " + first_error);
    // The server instance records were queued on: a queue's (slot, seq) numbers start again
    // when the server restarts (or another one takes over), so a record is confirmed only on
    // the instance it was queued on; after a change, what was pending is failed, not retried.
    auto server_started = [](PGconn *conn) {
        PGresult *result = PQexec(conn, "SELECT pg_catalog.pg_postmaster_start_time()::text");
        std::string started = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1
                                  ? PQgetvalue(result, 0, 0)
                                  : "";
        PQclear(result);
        return started;
    };
    std::string instance =
        connection.get() != nullptr && PQstatus(connection.get()) == CONNECTION_OK
            ? server_started(connection.get())
            : std::string();
    std::chrono::milliseconds backoff{0};
    for (;;) {
        std::vector<Pending> batch;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
            batch.swap(pending_);
            if (stopping_ && batch.empty()) return;  // what was pending is answered first
        }
        // Connect (again) only here, between batches, and check the instance then.
        bool was_open = connection.get() != nullptr && PQstatus(connection.get()) == CONNECTION_OK;
        std::string connect_error;
        if (!was_open && connection.ensure(connect_error)) {
            std::string started = server_started(connection.get());
            bool changed = !instance.empty() && !started.empty() && started != instance;
            if (!started.empty()) instance = started;
            if (changed) {
                const std::string why =
                    "the database server restarted (or another took over) before the record "
                    "was confirmed durable; whether it was written is in mcp.audit_log";
                logger_.log(LogLevel::Error, std::to_string(batch.size()) +
                                                 " audit records could not be confirmed: " + why);
                for (Pending &each : batch) each.done(false, 0, why);
                continue;
            }
        }
        // Records whose confirmation was interrupted by a lost connection are confirmed again
        // on the next one (until their deadline), not failed.
        std::vector<Pending> retry;
        // The newest record of each queue: confirming it confirms every one queued before.
        std::map<int, int64_t> newest;
        for (const Pending &each : batch) newest[each.slot] = std::max(newest[each.slot], each.seq);
        std::map<int, int64_t> confirmed_id;  // the newest record's id, per slot
        std::map<int, std::string> failed;
        std::map<int, bool> disconnected;  // the failure was the connection's: retry
        for (const auto &[slot, seq] : newest) {
            if (connection.get() == nullptr || PQstatus(connection.get()) != CONNECTION_OK) {
                failed[slot] = "cannot reach the database" +
                               (connect_error.empty() ? std::string() : ": " + connect_error);
                disconnected[slot] = true;
                backoff = std::min(std::max(backoff * 2, std::chrono::milliseconds(50)),
                                   std::chrono::milliseconds(1000));
                continue;
            }
            backoff = std::chrono::milliseconds(0);
            std::string slot_text = std::to_string(slot), seq_text = std::to_string(seq);
            const char *params[2] = {slot_text.c_str(), seq_text.c_str()};
            PGresult *result = PQexecParams(connection.get(), "SELECT mcp.await_audit($1, $2)", 2,
                                            nullptr, params, nullptr, nullptr, 0);
            if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
                confirmed_id[slot] = std::atoll(PQgetvalue(result, 0, 0));
            } else {
                std::string message = PQresultErrorMessage(result);
                while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
                    message.pop_back();
                failed[slot] = message.empty() ? "the database connection was lost" : message;
                if (PQstatus(connection.get()) != CONNECTION_OK) {
                    connection.close();
                    disconnected[slot] = true;
                    backoff = std::chrono::milliseconds(50);
                }
            }
            PQclear(result);
        }
        auto now = std::chrono::steady_clock::now();
        for (Pending &each : batch) {
            auto failure = failed.find(each.slot);
            if (failure != failed.end() && disconnected.count(each.slot) && now < each.deadline &&
                !stopping()) {
                retry.push_back(std::move(each));
                continue;
            }
            if (failure != failed.end()) {
                logger_.log(LogLevel::Error,
                            "an audit record could not be confirmed durable: " + failure->second);
                each.done(false, 0, failure->second);
                continue;
            }
            int64_t newest_id = confirmed_id[each.slot];
            // Records of one queue have consecutive ids in queue order.
            int64_t id = newest_id > 0 ? newest_id - (newest[each.slot] - each.seq) : 0;
            each.done(true, id > 0 ? id : 0, std::string());
        }
        if (!failed.empty() && backoff.count() > 0) std::this_thread::sleep_for(backoff);
        if (!retry.empty()) {
            std::lock_guard<std::mutex> lock(mutex_);
            pending_.insert(pending_.begin(), std::make_move_iterator(retry.begin()),
                            std::make_move_iterator(retry.end()));
        }
    }
}

bool AuditConfirmer::stopping() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_;
}

}  // namespace pg_mcp::bridge
