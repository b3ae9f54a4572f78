// The pool's lifecycle, its fair queue, its connections (opened, watched, lost, reopened) and
// the statements sent on them; its metrics and readiness.
// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "pool_internals.hpp"
#include "loop_wait.hpp"

namespace pg_mcp::bridge {

const char *const kNeedsPrimary = "MCP02";

Database::Database(asio::io_context &loop, std::string dsn, size_t pool_size, const Logger &logger,
                   std::chrono::milliseconds queue_timeout, bool prepare_statements)
    : loop_(loop),
      dsn_(std::move(dsn)),
      pool_size_(pool_size == 0 ? 1 : pool_size),
      logger_(logger),
      queue_timeout_(queue_timeout),
      prepare_statements_(prepare_statements),
      helpers_(std::make_unique<Helpers>(loop)) {
    for (size_t i = 0; i < pool_size_; ++i) slots_.push_back(std::make_unique<Slot>(loop, i));
}

Database::~Database() {
    stop();
}

void Database::stop() {
    if (loop_.get_executor().running_in_this_thread()) {
        logger_.log(LogLevel::Error, "internal error: Database::stop called on the loop");
        return;
    }
    if (!loop_.stopped()) {
        auto done = std::make_shared<std::promise<void>>();
        std::future<void> stopped = done->get_future();
        asio::post(loop_, [this, done] {
            if (stopped_) {
                done->set_value();
                return;
            }
            on_stopped_ = [done] { done->set_value(); };
            stop_on_loop();
        });
        if (!wait_for_loop(loop_, stopped, std::chrono::seconds(15)))
            logger_.log(LogLevel::Error, "the database pool did not stop within 15 s");
    }
    // Work on the helper threads ends (a connection being opened is closed by its handler).
    helpers_->connector.join();
    helpers_->consumers.join();
    if (!loop_.stopped()) {
        // What the helpers posted last runs before this returns.
        auto flushed = std::make_shared<std::promise<void>>();
        std::future<void> done = flushed->get_future();
        asio::post(loop_, [flushed] { flushed->set_value(); });
        wait_for_loop(loop_, done, std::chrono::seconds(5));
    }
}

// On the loop: queued work fails, running queries are cancelled; once nothing runs and no answer
// is held, the connections close.
void Database::stop_on_loop() {
    stopping_ = true;
    std::vector<std::shared_ptr<Job>> abandoned = queue_.take_all();
    waiting_ = 0;
    for (auto &job : abandoned) active_.erase(job->key);
    for (auto &job : abandoned)
        deliver(job->reply, failure(error_code::kInternalError, "Server is shutting down"),
                logger_);
    for (auto &slot : slots_)
        if (slot->state == Slot::State::Busy && slot->job) {
            slot->job->cancelled = true;
            send_cancel(*slot);
        }
    // At most 10 s for what runs.
    helpers_->expiry.expires_after(std::chrono::seconds(10));
    helpers_->expiry.async_wait([this](const boost::system::error_code &error) {
        if (error || stopped_) return;
        logger_.log(LogLevel::Warning, "database work still running at shutdown is abandoned");
        for (auto &slot : slots_)
            if (slot->state == Slot::State::Busy) lost(*slot);
        held_ = 0;
        check_stopped();
    });
    check_stopped();
}

void Database::check_stopped() {
    if (!stopping_ || stopped_) return;
    for (auto &slot : slots_)
        if (slot->state == Slot::State::Busy) return;
    if (held_ > 0) return;
    stopped_ = true;
    helpers_->expiry.cancel();
    for (auto &slot : slots_) {
        slot->retry.cancel();
        slot->progress.cancel();
        if (slot->conn != nullptr) close_slot(*slot);
    }
    if (on_stopped_) {
        // After the cancelled waits' completions, which are queued now.
        asio::post(loop_, [done = std::move(on_stopped_)] { done(); });
        on_stopped_ = nullptr;
    }
}

void Database::enqueue(std::shared_ptr<Job> job) {
    asio::post(loop_, [this, job = std::move(job)]() mutable {
        if (stopping_) {
            deliver(job->reply, failure(error_code::kInternalError, "Server is shutting down"),
                    logger_);
            return;
        }
        job->queued_at = Clock::now();
        active_[job->key] = job;
        queue_.push(owner_of(*job), job);
        waiting_ = queue_.size();
        arm_expiry();
        pump();
    });
}

void Database::submit(Work work, ReplyFn reply) {
    // libpq takes text parameters as C strings: one holding NUL would be cut short (the
    // protocol layer refuses such names and ids already; this is the last guard).
    for (const std::string *text : {&work.name, &work.identity.agent_name,
                                    &work.identity.client_info, &work.identity.request_id})
        if (text->find('\0') != std::string::npos) {
            deliver(reply,
                    failure(error_code::kInvalidParams,
                            "Invalid params: text with a NUL character cannot reach the database"),
                    logger_);
            return;
        }
    auto job = std::make_shared<Job>();
    job->key = std::move(work.key);
    job->operation = work.operation;
    job->is_call = work.operation == Operation::CallTool;
    job->is_authenticate = work.operation == Operation::Authenticate;
    job->identity = std::move(work.identity);
    job->name = std::move(work.name);
    job->arguments = std::move(work.arguments);
    job->queued_wall = std::chrono::system_clock::now();
    job->progress = std::move(work.progress);
    job->notice = std::move(work.notice);
    job->confirmation = std::move(work.confirmation);
    job->reply = std::move(reply);
    enqueue(std::move(job));
}

void Database::cancel(const std::string &key) {
    asio::post(loop_, [this, key] {
        auto found = active_.find(key);
        if (found == active_.end()) return;
        std::shared_ptr<Job> job = found->second;
        if (job->cancelled) return;  // one cancel request per job, however often asked
        job->cancelled = true;
        if (job->running_on != nullptr) {
            send_cancel(*job->running_on);
        } else if (queue_.remove(owner_of(*job), job)) {
            // Still waiting: it leaves the queue now (its arguments are not held until a
            // connection frees up), answered as cancelled.
            waiting_ = queue_.size();
            active_.erase(found);
            deliver(job->reply, failure(error_code::kInternalError, "Request cancelled"), logger_);
        }
    });
}

// The cancel request goes out on a helper thread (PQcancel connects to the server). Until it has
// been delivered the connection takes no new work: a late cancel must not hit the next query.
void Database::send_cancel(Slot &slot) {
    std::shared_ptr<PGcancel> handle = slot.cancel;
    if (!handle) return;
    slot.cancels_pending++;
    asio::post(helpers_->connector, [handle, this, &slot] {
        char error[256];
        if (!PQcancel(handle.get(), error, sizeof error))
            logger_.log(LogLevel::Warning, std::string("could not send cancel: ") + error);
        asio::post(loop_, [this, &slot] {
            if (--slot.cancels_pending == 0 && slot.state == Slot::State::Idle) pump();
        });
    });
}

// Answers "busy, retry" to requests that waited longer than the queue timeout for a free
// connection.
void Database::arm_expiry() {
    if (queue_timeout_.count() <= 0 || helpers_->expiry_armed || queue_.empty() || stopping_)
        return;
    helpers_->expiry_armed = true;
    helpers_->expiry.expires_after(std::min(queue_timeout_, std::chrono::milliseconds(20)));
    helpers_->expiry.async_wait([this](const boost::system::error_code &error) {
        helpers_->expiry_armed = false;
        if (error || stopping_) return;
        expire_queued();
        arm_expiry();
    });
}

void Database::expire_queued() {
    std::vector<std::shared_ptr<Job>> expired =
        queue_.take_older_than(Clock::now() - queue_timeout_);
    if (expired.empty()) return;
    waiting_ = queue_.size();
    for (auto &job : expired) active_.erase(job->key);
    for (auto &job : expired) {
        BackendReply busy = failure(error_code::kDatabaseUnavailable,
                                    "Busy: all " + std::to_string(pool_size_) +
                                        " database connections stayed in use for " +
                                        std::to_string(queue_timeout_.count()) +
                                        " ms; the request was not run. Retry shortly.");
        busy.busy = true;
        deliver(job->reply, std::move(busy), logger_);
    }
    busy_ += expired.size();
    logger_.log(LogLevel::Warning,
                std::to_string(expired.size()) + " request(s) refused: connection pool busy");
}

void Database::pump() {
    if (stopping_) return;
    while (!queue_.empty()) {
        Slot *idle = nullptr;
        for (auto &slot : slots_)
            if (slot->state == Slot::State::Idle && slot->cancels_pending == 0) {
                idle = slot.get();
                break;
            }
        if (idle == nullptr) break;
        std::shared_ptr<Job> job = queue_.pop();
        waiting_ = queue_.size();
        if (job->cancelled) {
            active_.erase(job->key);
            deliver(job->reply, failure(error_code::kInternalError, "Request cancelled"), logger_);
            continue;
        }
        start(*idle, std::move(job));
    }
    // Connections to open for what still waits.
    size_t opening = 0;
    for (auto &slot : slots_) opening += slot->state == Slot::State::Connecting;
    for (auto &slot : slots_) {
        if (opening >= queue_.size()) break;
        if (slot->state == Slot::State::Closed) {
            connect(*slot);
            opening++;
        }
    }
}

void Database::connect(Slot &slot) {
    slot.state = Slot::State::Connecting;
    asio::post(helpers_->connector, [this, &slot] {
        PGconn *conn = open_connection(dsn_);
        asio::post(loop_, [this, &slot, conn] { connected(slot, conn); });
    });
}

void Database::connected(Slot &slot, PGconn *conn) {
    if (stopping_) {
        if (conn != nullptr) PQfinish(conn);
        slot.state = Slot::State::Closed;
        return;
    }
    if (conn != nullptr && PQstatus(conn) == CONNECTION_OK && PQsetnonblocking(conn, 1) == 0) {
        slot.conn = conn;
        slot.cancel = std::shared_ptr<PGcancel>(PQgetCancel(conn), [](PGcancel *handle) {
            if (handle != nullptr) PQfreeCancel(handle);
        });
        slot.socket = std::make_unique<asio::posix::stream_descriptor>(loop_, PQsocket(conn));
        slot.on_notice = [this, &slot](const PGresult *result) { notice(slot, result); };
        PQsetNoticeReceiver(
            conn,
            [](void *arg, const PGresult *result) noexcept {
                // libpq's C frames are below: nothing may unwind into them.
                try {
                    static_cast<Slot *>(arg)->on_notice(result);
                } catch (...) {
                }
            },
            &slot);
        slot.state = Slot::State::Idle;
        connected_++;
        if (slot.reconnect.delay.count() != 0) {
            if (failing_ > 0) failing_--;
            logger_.log(LogLevel::Notice, "database connection restored");
        }
        slot.reconnect.succeeded();
        watch(slot);
        pump();
        return;
    }
    std::string error = connection_error(conn);
    if (conn != nullptr) PQfinish(conn);
    bool first = slot.reconnect.delay.count() == 0;
    slot.reconnect.failed();
    if (first) failing_++;
    last_failure_ = error;
    slot.state = Slot::State::Retrying;
    logger_.log(first ? LogLevel::Error : LogLevel::Debug, "database connection failed: " + error);
    slot.retry.expires_at(slot.reconnect.retry_at);
    slot.retry.async_wait([this, &slot](const boost::system::error_code &cancelled) {
        if (cancelled || stopping_ || slot.state != Slot::State::Retrying) return;
        slot.state = Slot::State::Closed;
        pump();
    });
    if (connected_ == 0 && failing_ >= pool_size_) {
        // No connection works and each has tried: what waits fails now (a client learns the
        // database is unavailable within about a second, not after the queue timeout).
        std::vector<std::shared_ptr<Job>> failed = queue_.take_all();
        waiting_ = 0;
        for (auto &job : failed) active_.erase(job->key);
        for (auto &job : failed) {
            BackendReply reply = failure(
                error_code::kDatabaseUnavailable,
                "Database unavailable: " + error + ". The bridge reconnects; retry shortly.");
            if (job->is_call) record_call(reply, Clock::duration::zero());
            deliver(job->reply, std::move(reply), logger_);
        }
        return;
    }
    if (connected_ == 0) {
        // Nothing works yet: every other connection tries now, so that the verdict is quick.
        for (auto &other : slots_)
            if (other->state == Slot::State::Closed && !queue_.empty()) connect(*other);
    }
    pump();
}

void Database::close_slot(Slot &slot) {
    slot.generation++;
    if (slot.socket) {
        boost::system::error_code ignored;
        slot.socket->cancel(ignored);
        slot.socket->release();  // the descriptor is libpq's to close
        slot.socket.reset();
    }
    if (slot.conn != nullptr) {
        PQfinish(slot.conn);
        slot.conn = nullptr;
        if (connected_ > 0) connected_--;
    }
    slot.cancel.reset();
    slot.prepared.clear();
    slot.watching = false;
    slot.progress.cancel();
    slot.state = Slot::State::Closed;
}

void Database::watch(Slot &slot) {
    if (slot.watching || slot.paused || !slot.socket) return;
    slot.watching = true;
    uint64_t generation = slot.generation;
    slot.socket->async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, &slot, generation](const boost::system::error_code &error) {
                                if (generation != slot.generation) return;
                                slot.watching = false;
                                if (error) return;
                                readable(slot);
                            });
}

void Database::readable(Slot &slot) {
    if (PQconsumeInput(slot.conn) == 0 || PQstatus(slot.conn) != CONNECTION_OK) {
        if (slot.state == Slot::State::Busy) {
            lost(slot);
        } else {
            // An idle connection the server closed (pg_terminate_backend, restart): reopened
            // when work needs it.
            close_slot(slot);
            pump();
        }
        return;
    }
    while (PGnotify *notify = PQnotifies(slot.conn)) PQfreemem(notify);
    if (slot.state == Slot::State::Busy)
        process(slot);
    else
        watch(slot);
}

void Database::start(Slot &slot, std::shared_ptr<Job> job) {
    slot.reset_run();
    slot.state = Slot::State::Busy;
    in_use_++;
    slot.job = std::move(job);
    slot.job->running_on = &slot;
    slot.begun = Clock::now();
    Job &run = *slot.job;
    bool defer = false;
    bool as_principal =
        !run.identity.principal_token.empty() || !run.identity.oauth_identity.empty();
    if (run.is_ping) {
        slot.statement = &kPing;
    } else {
        const OperationRow &row = operation_row(run.operation);
        // Deferred confirmation frees the connection sooner and lets one flush confirm many
        // calls, but costs a second round trip (the confirmer's): worth it while other requests
        // wait for a connection or other calls run beside this one (a call alone waits for its
        // own record in its statement: one round trip). Measured at 50 HTTP agents, pool 10,
        // fsync on, against deferring only while requests wait: nearly half the WAL flushes per
        // call, a third less writer CPU per call, about 8 % more durable calls/s.
        defer = run.is_call && confirmer_ != nullptr &&
                (defer_always_ || !queue_.empty() || in_use_ > 1);
        const Statement *const *pair = defer ? row.deferred : row.statements;
        slot.statement = pair[as_principal ? 1 : 0];
        if (!run.identity.oauth_identity.empty()) slot.statement = &identity_form(*slot.statement);
        if (run.identity.trace.valid()) {
            // The statement's span id reaches the database (the audit row, pg_mcp.traceparent)
            // whether or not spans are exported; the spans themselves (the wait for this
            // connection, and the statement from now on, ended by settle()) only for an exporter.
            auto now = std::chrono::system_clock::now();
            run.statement_span = new_span_id();
            run.sent = now;
            if (Tracer::global() != nullptr) {
                Span wait;
                wait.name = "pg_mcp pool wait";
                wait.context = run.identity.trace;
                wait.context.span_id = new_span_id();
                wait.parent_span_id = run.identity.trace.span_id;
                wait.start = run.queued_wall;
                wait.end = now;
                wait.set("pg_mcp.pool.connections_in_use", static_cast<int64_t>(in_use_));
                record_span(std::move(wait));
                run.statement_summary = std::string("SELECT ") + summary_of(run.operation);
                run.database = PQdb(slot.conn) ? PQdb(slot.conn) : "";
                run.host = PQhost(slot.conn) ? PQhost(slot.conn) : "";
                run.port = PQport(slot.conn) ? PQport(slot.conn) : "";
            }
        }
    }
    if (prepare_statements_ && slot.prepared.count(slot.statement->name) == 0) {
        if (!PQsendPrepare(slot.conn, slot.statement->name, slot.statement->sql, 0, nullptr)) {
            lost(slot);
            return;
        }
        slot.preparing = true;
        flush(slot);
        return;
    }
    send_query(slot);
}

void Database::send_query(Slot &slot) {
    Job &job = *slot.job;
    // As text: bytea's input reads "\x" followed by hex digits.
    std::string token = job.identity.oauth_identity.empty() ? "\\x" + job.identity.principal_token
                                                            : job.identity.oauth_identity;
    bool as_principal =
        !job.identity.principal_token.empty() || !job.identity.oauth_identity.empty();
    // The parameters in the row's order: a call's tool and arguments, or the agent context and
    // then the name and arguments the operation takes; the token last.
    // A call's trace context: its statement span in the trace (mcp.serve_call puts it in
    // pg_mcp.traceparent and application_name for the call's transaction).
    std::string traceparent;
    if (!job.statement_span.empty()) {
        TraceContext statement = job.identity.trace;
        statement.span_id = job.statement_span;
        traceparent = statement.traceparent();
    }
    const char *params[10] = {};
    int nparams = 0;
    if (!job.is_ping) {
        const OperationRow &row = operation_row(job.operation);
        if (job.is_call) {
            params[nparams++] = job.name.c_str();
            params[nparams++] = job.arguments.c_str();
        }
        if (row.context) {
            params[nparams++] = job.identity.agent_name.c_str();
            params[nparams++] = job.identity.client_info.c_str();
            params[nparams++] = job.identity.request_id.c_str();
        }
        if (!job.is_call && row.takes_name) params[nparams++] = job.name.c_str();
        if (!job.is_call && row.takes_arguments) params[nparams++] = job.arguments.c_str();
        if (as_principal || job.is_authenticate) params[nparams++] = token.c_str();
        if (job.is_call) params[nparams++] = traceparent.empty() ? nullptr : traceparent.c_str();
        if (job.is_call)
            params[nparams++] = job.confirmation.empty() ? nullptr : job.confirmation.c_str();
    }
    const Statement &statement = *slot.statement;
    int sent = prepare_statements_ ? PQsendQueryPrepared(slot.conn, statement.name, nparams, params,
                                                         nullptr, nullptr, 0)
                                   : PQsendQueryParams(slot.conn, statement.sql, nparams, nullptr,
                                                       params, nullptr, nullptr, 0);
    if (!sent) {
        std::string error = connection_error(slot.conn);
        slot.answered = true;
        settle(job, false);
        BackendReply reply = failure(
            error_code::kDatabaseUnavailable,
            "Database connection lost before the call was sent: " + error + ". Retry the request.");
        if (job.is_call) record_call(reply, Clock::now() - slot.begun);
        deliver(job.reply, std::move(reply), logger_);
        lost(slot);
        return;
    }
    if (job.is_call && !PQsetSingleRowMode(slot.conn))
        logger_.log(LogLevel::Warning, "single-row mode refused; the result is read whole");
    // A cancel that came while the job moved from the queue to here.
    if (job.cancelled) send_cancel(slot);
    if (job.progress) tick_progress(slot, Clock::now(), slot.generation, slot.job);
    flush(slot);
}

// About once a second while a call runs: its progress, the seconds elapsed.
void Database::tick_progress(Slot &slot, Clock::time_point begun, uint64_t generation,
                             std::shared_ptr<Job> owner) {
    slot.progress.expires_after(std::chrono::seconds(1));
    slot.progress.async_wait(
        [this, &slot, begun, generation, owner](const boost::system::error_code &error) {
            if (error || generation != slot.generation || slot.job != owner || slot.answered)
                return;
            int elapsed = static_cast<int>(
                std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - begun).count());
            if (elapsed > slot.reported) {
                slot.reported = elapsed;
                owner->progress(elapsed);
            }
            tick_progress(slot, begun, generation, owner);
        });
}

void Database::flush(Slot &slot) {
    int flushed = PQflush(slot.conn);
    if (flushed < 0) {
        lost(slot);
        return;
    }
    if (flushed == 1) {
        uint64_t generation = slot.generation;
        slot.socket->async_wait(asio::posix::stream_descriptor::wait_write,
                                [this, &slot, generation](const boost::system::error_code &error) {
                                    if (error || generation != slot.generation) return;
                                    flush(slot);
                                });
        return;
    }
    process(slot);
}

void Database::process(Slot &slot) {
    while (!slot.paused && slot.state == Slot::State::Busy && !PQisBusy(slot.conn)) {
        PGresult *result = PQgetResult(slot.conn);
        if (result == nullptr) {
            finished(slot);
            return;
        }
        take(slot, result);
    }
    if (slot.state != Slot::State::Busy) return;
    if (PQstatus(slot.conn) != CONNECTION_OK) {
        lost(slot);
        return;
    }
    watch(slot);
}

namespace {

// At most this many notices of one call reach its client, and this many bytes of them; each
// text field is cut to kNoticeFieldBytes (at a character boundary).
constexpr int kNoticesPerCall = 32;
constexpr size_t kNoticeBytesPerCall = 16 * 1024;
constexpr size_t kNoticeFieldBytes = 2048;

std::string notice_field(const PGresult *result, int field) {
    const char *value = PQresultErrorField(result, field);
    std::string text = value == nullptr ? std::string() : std::string(value);
    if (text.size() <= kNoticeFieldBytes) return text;
    size_t cut = kNoticeFieldBytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) cut--;
    return text.substr(0, cut) + "...";
}

}  // namespace

// Runs inside libpq (reading the connection, on the loop). A running call's notices go to its
// client while it has not been answered, bounded per call; any other (a warning about the
// server, a notice after the answer) is a line of the bridge's log.
void Database::notice(Slot &slot, const PGresult *result) {
    std::shared_ptr<Job> job = slot.job;
    if (job && job->notice && !slot.answered) {
        ServerNotice notice;
        notice.severity = notice_field(result, PG_DIAG_SEVERITY_NONLOCALIZED);
        if (notice.severity.empty()) notice.severity = notice_field(result, PG_DIAG_SEVERITY);
        notice.sqlstate = notice_field(result, PG_DIAG_SQLSTATE);
        notice.message = notice_field(result, PG_DIAG_MESSAGE_PRIMARY);
        notice.detail = notice_field(result, PG_DIAG_MESSAGE_DETAIL);
        notice.hint = notice_field(result, PG_DIAG_MESSAGE_HINT);
        size_t bytes = notice.message.size() + notice.detail.size() + notice.hint.size();
        if (job->notices < 0) return;  // over the limit: the client was told once
        if (job->notices >= kNoticesPerCall || job->notice_bytes + bytes > kNoticeBytesPerCall) {
            notice = ServerNotice{"WARNING", "", "", "", ""};
            notice.message = "further notices of this call are not sent (at most " +
                             std::to_string(kNoticesPerCall) + ", " +
                             std::to_string(kNoticeBytesPerCall / 1024) + " kB per call)";
            job->notices = -1;
        } else {
            job->notices++;
            job->notice_bytes += bytes;
        }
        // For the operator at debug level only (the client has it; a busy tool's notices would
        // otherwise fill the log).
        logger_.log(LogLevel::Debug,
                    "PostgreSQL " + notice.severity + " to the client: " + notice.message,
                    job->identity.request_id);
        try {
            job->notice(notice);
        } catch (const std::exception &error) {
            logger_.log(LogLevel::Error,
                        std::string("forwarding a notice failed: ") + error.what());
        }
        return;
    }
    std::string text = PQresultErrorMessage(result);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    std::string severity = notice_field(result, PG_DIAG_SEVERITY_NONLOCALIZED);
    logger_.log(severity == "WARNING" ? LogLevel::Warning : LogLevel::Notice,
                "PostgreSQL: " + text.substr(0, kNoticeFieldBytes));
}

void Database::lost(Slot &slot) {
    std::string error = slot.conn != nullptr ? connection_error(slot.conn) : "connection closed";
    std::shared_ptr<Job> job = slot.job;
    std::shared_ptr<Chunks> stream = slot.stream;
    bool answered = slot.answered;
    close_slot(slot);
    if (stream) stream->finish(error.empty() ? "connection lost" : error);
    if (job) job->running_on = nullptr;
    if (job) {
        in_use_--;
        if (!answered) {
            logger_.log(LogLevel::Error, "database connection lost during a call: " + error);
            settle(*job, false);
            BackendReply reply =
                failure(error_code::kDatabaseUnavailable,
                        "Database connection lost during the call (" + error +
                            "); it may not have completed. The bridge reconnects; retry if the "
                            "tool is safe to repeat.");
            if (job->is_call) record_call(reply, Clock::now() - slot.begun);
            deliver(job->reply, std::move(reply), logger_);
        }
    }
    slot.reset_run();
    check_stopped();
    pump();
}

void Database::release(Slot &slot) {
    if (slot.job) slot.job->running_on = nullptr;
    slot.progress.cancel();
    slot.reset_run();
    in_use_--;
    slot.state = Slot::State::Idle;
    if (stopping_) {
        check_stopped();
        return;
    }
    watch(slot);
    pump();
}

void Database::record_call(const BackendReply &reply, std::chrono::steady_clock::duration elapsed) {
    if (!reply.ok)
        calls_failed_++;
    else if (reply.value.is_object() && reply.value.value("isError", false) == true)
        calls_tool_error_++;
    else
        calls_ok_++;
    double ms = std::chrono::duration<double, std::milli>(elapsed).count();
    size_t bucket = 0;
    while (bucket < kBuckets && ms > kBucketsMs[bucket]) bucket++;
    bucket_counts_[bucket]++;
    duration_us_ += static_cast<uint64_t>(ms * 1000.0);
}

std::string Database::metrics_text() {
    size_t waiting = waiting_.load();
    std::string out;
    auto line = [&out](const std::string &text) { out += text + "\n"; };
    line(
        "# HELP pg_mcp_bridge_tool_calls_total Tool calls answered, by outcome (ok; tool_error: "
        "the tool's result has isError; failed: no result, e.g. database unavailable).");
    line("# TYPE pg_mcp_bridge_tool_calls_total counter");
    line("pg_mcp_bridge_tool_calls_total{outcome=\"ok\"} " + std::to_string(calls_ok_.load()));
    line("pg_mcp_bridge_tool_calls_total{outcome=\"tool_error\"} " +
         std::to_string(calls_tool_error_.load()));
    line("pg_mcp_bridge_tool_calls_total{outcome=\"failed\"} " +
         std::to_string(calls_failed_.load()));
    line(
        "# HELP pg_mcp_bridge_tool_call_duration_seconds Time from taking a pool connection to the "
        "call's result.");
    line("# TYPE pg_mcp_bridge_tool_call_duration_seconds histogram");
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kBuckets; i++) {
        cumulative += bucket_counts_[i].load();
        char le[32];
        if (i < kBuckets)
            std::snprintf(le, sizeof le, "%g", kBucketsMs[i] / 1000.0);
        else
            std::snprintf(le, sizeof le, "+Inf");
        line(std::string("pg_mcp_bridge_tool_call_duration_seconds_bucket{le=\"") + le + "\"} " +
             std::to_string(cumulative));
    }
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(duration_us_.load()) / 1e6);
    line(std::string("pg_mcp_bridge_tool_call_duration_seconds_sum ") + sum);
    line("pg_mcp_bridge_tool_call_duration_seconds_count " + std::to_string(cumulative));
    line("# HELP pg_mcp_bridge_pool_connections Size of the database connection pool.");
    line("# TYPE pg_mcp_bridge_pool_connections gauge");
    line("pg_mcp_bridge_pool_connections " + std::to_string(pool_size_));
    line("# HELP pg_mcp_bridge_pool_in_use Pool connections running a request now.");
    line("# TYPE pg_mcp_bridge_pool_in_use gauge");
    line("pg_mcp_bridge_pool_in_use " + std::to_string(in_use_.load()));
    line("# HELP pg_mcp_bridge_pool_waiting Requests waiting for a free pool connection.");
    line("# TYPE pg_mcp_bridge_pool_waiting gauge");
    line("pg_mcp_bridge_pool_waiting " + std::to_string(waiting));
    line("# HELP pg_mcp_bridge_pool_busy_total Requests refused after waiting --queue-timeout.");
    line("# TYPE pg_mcp_bridge_pool_busy_total counter");
    line("pg_mcp_bridge_pool_busy_total " + std::to_string(busy_.load()));
    return out;
}

std::string Database::owner_of(const Job &job) {
    // Token checks take one turn together: unknown tokens cannot crowd out principals.
    if (job.is_authenticate) return std::string("\x02auth");
    if (!job.identity.principal.empty()) return "principal " + job.identity.principal;
    return job.identity.principal_token;
}

void Database::Reconnect::failed() {
    delay = delay.count() == 0 ? kFirstBackoff : std::min(delay * 2, kMaxBackoff);
    // Jitter (half to all of the delay): connections do not retry in lockstep.
    static thread_local std::minstd_rand random(
        static_cast<unsigned>(std::hash<std::thread::id>()(std::this_thread::get_id())));
    auto jittered = delay / 2 + std::chrono::milliseconds(random() % (delay.count() / 2 + 1));
    retry_at = Clock::now() + jittered;
}

std::string Database::readiness(std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> probing(readiness_mutex_);
    auto now = Clock::now();
    // A call that just succeeded answers for the database, unless one has found it unreachable
    // since (a load balancer then sees the outage at once, not after the window).
    auto succeeded = Clock::time_point(Clock::duration(last_success_.load()));
    auto unreachable = Clock::time_point(Clock::duration(last_unavailable_.load()));
    if (now - succeeded < std::chrono::milliseconds(250) && succeeded > unreachable) return {};
    if (unreachable > readiness_at_) readiness_at_ = {};  // probe again now
    if (now - readiness_at_ < std::chrono::milliseconds(500)) return readiness_;
    auto job = std::make_shared<Job>();
    job->key = "readyz/" + std::to_string(++probes_);
    job->is_ping = true;
    job->identity.principal_token = "\x01readyz";  // an owner of its own in the fair queue
    auto answer = std::make_shared<std::promise<BackendReply>>();
    std::future<BackendReply> reply = answer->get_future();
    job->reply = [answer](BackendReply r) { answer->set_value(std::move(r)); };
    std::string key = job->key;
    enqueue(job);
    if (reply.wait_for(timeout) != std::future_status::ready) {
        cancel(key);
        readiness_ = "the database did not answer within " + std::to_string(timeout.count()) +
                     " ms (all " + std::to_string(pool_size_) + " connections busy or stuck)";
    } else {
        BackendReply result = reply.get();
        readiness_ = result.ok ? std::string() : result.error_message;
    }
    readiness_at_ = Clock::now();
    return readiness_;
}

}  // namespace pg_mcp::bridge
