// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "replica.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>

#include "json_rpc.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kBatchRecords = 500;
constexpr size_t kBatchBytes = 4 << 20;

std::string errno_text(const std::string &what) {
    return what + ": " + std::strerror(errno);
}

bool write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

bool read_range(int fd, off_t from, off_t to, std::string &out) {
    out.resize(static_cast<size_t>(to - from));
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd, &out[done], out.size() - done, from + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

AuditSpool::AuditSpool(std::string path, std::string primary_dsn, const Logger &logger)
    : path_(std::move(path)), primary_dsn_(std::move(primary_dsn)), logger_(logger) {}

AuditSpool::~AuditSpool() {
    stop(std::chrono::milliseconds(0));
    if (fd_ >= 0) ::close(fd_);
    if (offset_fd_ >= 0) ::close(offset_fd_);
    if (conn_ != nullptr) PQfinish(conn_);
}

bool AuditSpool::open(std::string &error) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) {
        error = errno_text("cannot open the audit spool " + path_);
        return false;
    }
    // One bridge per spool: a second one would forward and truncate under the first.
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        error = errno_text("the audit spool " + path_ + " is in use by another process");
        return false;
    }
    offset_fd_ = ::open((path_ + ".offset").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (offset_fd_ < 0) {
        error = errno_text("cannot open " + path_ + ".offset");
        return false;
    }
    char text[32] = {};
    ssize_t n = ::pread(offset_fd_, text, sizeof text - 1, 0);
    off_t size = ::lseek(fd_, 0, SEEK_END);
    sent_ = n > 0 ? static_cast<off_t>(std::atoll(text)) : 0;
    if (sent_ < 0 || sent_ > size) sent_ = 0;
    // A record cut short by a crash while it was written (never acknowledged: its call's
    // result was withheld) is dropped, so that the next record starts on a line of its own.
    std::string content;
    if (!read_range(fd_, sent_, size, content)) {
        error = errno_text("cannot read the audit spool " + path_);
        return false;
    }
    size_t whole = content.rfind('\n');
    off_t end = whole == std::string::npos ? sent_ : sent_ + static_cast<off_t>(whole) + 1;
    if (end < size) {
        logger_.log(LogLevel::Warning, "dropping an incomplete last record (" +
                                           std::to_string(size - end) + " bytes) from " + path_);
        if (::ftruncate(fd_, end) != 0) {
            error = errno_text("cannot repair the audit spool " + path_);
            return false;
        }
    }
    size_t lines = 0;
    for (off_t i = 0; i < end - sent_; i++) lines += content[static_cast<size_t>(i)] == '\n';
    pending_ = lines;
    if (lines > 0)
        logger_.log(LogLevel::Notice, std::to_string(lines) +
                                          " audit record(s) of standby-served calls left in " +
                                          path_ + "; forwarding them to the primary");
    thread_ = std::thread([this] { loop(); });
    return true;
}

bool AuditSpool::append(const std::string &record, std::string &error) {
    std::string line = record + "\n";
    std::lock_guard<std::mutex> lock(mutex_);
    off_t before = fd_ < 0 ? -1 : ::lseek(fd_, 0, SEEK_END);
    if (fd_ < 0 || !write_all(fd_, line.data(), line.size()) || ::fdatasync(fd_) != 0) {
        error = errno_text("cannot write the audit spool " + path_);
        if (before >= 0 && ::ftruncate(fd_, before) != 0) {
            // The next record would join a torn line: stop spooling (results are withheld).
            ::close(fd_);
            fd_ = -1;
        }
        return false;
    }
    pending_++;
    wake_.notify_one();
    return true;
}

void AuditSpool::stop(std::chrono::milliseconds grace) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
        drain_until_ = Clock::now() + grace;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (pending_ > 0)
        logger_.log(LogLevel::Warning, std::to_string(pending_.load()) +
                                           " audit record(s) stay in " + path_ +
                                           " until the bridge runs again");
}

void AuditSpool::loop() {
    std::chrono::milliseconds backoff{0};
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            auto wait = backoff.count() > 0 ? backoff : std::chrono::milliseconds(1000);
            wake_.wait_for(lock, wait,
                           [&] { return (stopping_ || pending_ > 0) && backoff.count() == 0; });
            if (stopping_ && (pending_ == 0 || Clock::now() >= drain_until_)) return;
        }
        if (pending_ == 0) continue;
        bool forwarded = false;
        try {
            forwarded = forward();
        } catch (const std::exception &failure) {  // e.g. out of memory: retried later
            logger_.log(LogLevel::Error,
                        std::string("forwarding standby audit records failed: ") + failure.what());
        }
        if (forwarded) {
            backoff = std::chrono::milliseconds(0);
        } else {
            backoff = backoff.count() == 0 ? std::chrono::milliseconds(250)
                                           : std::min(backoff * 2, std::chrono::milliseconds(5000));
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopping_ && Clock::now() >= drain_until_) return;
        }
    }
}

std::string AuditSpool::ingest(const std::string &records, std::string &sqlstate) {
    sqlstate.clear();
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        if (conn_ != nullptr) PQfinish(conn_);
        conn_ = open_connection(primary_dsn_);
        if (PQstatus(conn_) != CONNECTION_OK) return trim(PQerrorMessage(conn_));
    }
    // As mcp_audit_forwarder for this transaction only: a NOINHERIT login (the recommended
    // kind, see the README) holds no privilege of its roles until it sets one, and EXECUTE is
    // checked before a statement runs, so the role is set by a statement of its own.
    PGresult *begun = PQexec(conn_, "BEGIN; SET LOCAL ROLE mcp_audit_forwarder");
    bool in_transaction = PQresultStatus(begun) == PGRES_COMMAND_OK;
    std::string error;
    if (!in_transaction) {
        const char *state = PQresultErrorField(begun, PG_DIAG_SQLSTATE);
        sqlstate = state ? state : "";
        error = trim(PQresultErrorMessage(begun));
        if (error.empty()) error = trim(PQerrorMessage(conn_));
    }
    PQclear(begun);
    if (!error.empty()) {
        PQclear(PQexec(conn_, "ROLLBACK"));
        return error;
    }
    const char *params[1] = {records.c_str()};
    PGresult *result = PQexecParams(conn_, "SELECT mcp.ingest_standby_audit($1::jsonb)", 1, nullptr,
                                    params, nullptr, nullptr, 0);
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        sqlstate = state ? state : "";
        error = trim(PQresultErrorMessage(result));
        if (error.empty()) error = trim(PQerrorMessage(conn_));
    }
    PQclear(result);
    PGresult *ended = PQexec(conn_, error.empty() ? "COMMIT" : "ROLLBACK");
    if (error.empty() && PQresultStatus(ended) != PGRES_COMMAND_OK) {
        error = trim(PQresultErrorMessage(ended));
        if (error.empty()) error = trim(PQerrorMessage(conn_));
    }
    PQclear(ended);
    return error;
}

void AuditSpool::reject(const std::string &line, const std::string &why) {
    rejected_++;
    logger_.log(LogLevel::Error, "the primary refused a spooled audit record (" + why +
                                     "); it is kept in " + path_ + ".rejected");
    int fd = ::open((path_ + ".rejected").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    std::string text = line + "\n";
    (void)write_all(fd, text.data(), text.size());
    (void)::fdatasync(fd);
    ::close(fd);
}

bool AuditSpool::forward() {
    // The spool is append-only; `sent_` (kept durably in FILE.offset) is where the records
    // not yet on the primary begin. Records after it never change until they are sent.
    off_t size;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (fd_ < 0) return false;
        size = ::lseek(fd_, 0, SEEK_END);
    }
    if (size <= sent_) return true;
    std::string content;
    off_t to = std::min(size, sent_ + static_cast<off_t>(kBatchBytes));
    if (!read_range(fd_, sent_, to, content)) return false;
    std::vector<std::string> lines;
    size_t at = 0;
    while (lines.size() < kBatchRecords) {
        size_t end = content.find('\n', at);
        if (end == std::string::npos) break;
        lines.push_back(content.substr(at, end - at));
        at = end + 1;
    }
    if (lines.empty()) {  // one record longer than a batch: read it whole
        if (!read_range(fd_, sent_, size, content)) return false;
        size_t end = content.find('\n');
        if (end == std::string::npos) return false;
        lines.push_back(content.substr(0, end));
        at = end + 1;
    }
    std::string batch = "[";
    for (const std::string &line : lines) {
        json parsed = json::parse(line, nullptr, false);
        if (!parsed.is_object()) {
            reject(line, "not a JSON object");
            continue;
        }
        if (batch.size() > 1) batch += ",";
        batch += line;
    }
    batch += "]";
    std::string sqlstate;
    std::string error = batch == "[]" ? "" : ingest(batch, sqlstate);
    if (!error.empty() && sqlstate.rfind("22", 0) == 0) {
        // A record the primary refuses (invalid data): send them one by one, keep the bad ones.
        error.clear();
        for (const std::string &line : lines) {
            std::string one_state;
            std::string one_error = ingest("[" + line + "]", one_state);
            if (one_error.empty()) continue;
            if (one_state.rfind("22", 0) == 0) {
                reject(line, one_error);
            } else {
                error = one_error;
                break;
            }
        }
    }
    if (!error.empty()) {
        logger_.log(
            LogLevel::Warning,
            "forwarding " + std::to_string(lines.size()) +
                " audit record(s) to the primary failed (kept in the spool, retrying): " + error);
        return false;
    }
    std::string mark_error;
    if (!mark_sent(sent_ + static_cast<off_t>(at), mark_error)) {
        logger_.log(LogLevel::Error, mark_error);
        return false;
    }
    pending_ -= std::min(pending_.load(), lines.size());
    forwarded_ += lines.size();
    return true;
}

bool AuditSpool::mark_sent(off_t end, std::string &error) {
    std::lock_guard<std::mutex> lock(mutex_);
    // Everything sent: the file starts over (appends wait on the mutex meanwhile).
    if (::lseek(fd_, 0, SEEK_END) == end) {
        if (::ftruncate(fd_, 0) != 0 || ::fdatasync(fd_) != 0) {
            error = errno_text("cannot truncate the audit spool " + path_);
            return false;
        }
        end = 0;
        sent_ = 0;  // whatever happens to the offset file (read as 0 beyond the end)
    }
    // A crash before this is durable resends the last batch, which the primary skips.
    std::string text = std::to_string(static_cast<long long>(end)) + "\n";
    if (::ftruncate(offset_fd_, 0) != 0 ||
        ::pwrite(offset_fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
        ::fdatasync(offset_fd_) != 0) {
        error = errno_text("cannot write " + path_ + ".offset");
        return false;
    }
    sent_ = end;
    return true;
}

ReplicaRouter::ReplicaRouter(boost::asio::io_context &loop, Database &primary,
                             ReplicaOptions options, AuditSpool &spool, size_t pool_size,
                             const Logger &logger, std::chrono::milliseconds queue_timeout,
                             bool prepare_statements)
    : loop_(loop), primary_(primary), options_(std::move(options)), spool_(spool), logger_(logger) {
    for (const std::string &dsn : options_.dsns) {
        auto replica = std::make_unique<Replica>();
        replica->dsn = dsn;
        replica->pool = std::make_unique<Database>(loop, dsn, pool_size, logger, queue_timeout,
                                                   prepare_statements);
        replica->state = "not checked yet";
        replicas_.push_back(std::move(replica));
    }
    monitor_ = std::thread([this] {
        try {
            monitor();
        } catch (const std::exception &failure) {  // e.g. out of memory: no replica is used
            for (auto &replica : replicas_) replica->usable = false;
            logger_.log(LogLevel::Error,
                        std::string("the read replica monitor stopped: ") + failure.what());
        }
    });
}

ReplicaRouter::~ReplicaRouter() {
    stop();
}

void ReplicaRouter::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (monitor_.joinable()) monitor_.join();
    for (auto &replica : replicas_) replica->pool->stop();
    spooler_.join();  // answers waiting for their record to be stored leave first
}

namespace {

// "16/B374D848" -> a number (0 when it cannot be read).
uint64_t parse_lsn(const char *text) {
    unsigned int high = 0, low = 0;
    if (text == nullptr || std::sscanf(text, "%X/%X", &high, &low) != 2) return 0;
    return (static_cast<uint64_t>(high) << 32) | low;
}

}  // namespace

void ReplicaRouter::monitor() {
    // Twice a second: the primary's WAL position, then each standby's replay position. A
    // standby's lag is how long ago the primary was where the standby has replayed to: it has
    // replayed everything the primary had at the newest sample at or below its position. So a
    // standby cut off from a primary that still commits (a revoked token, a changed tool)
    // falls behind, while one whose primary is simply idle does not. When the primary cannot
    // be reached, no sample is taken: standbys that have replayed all they received serve on.
    struct Sample {
        Clock::time_point at;
        uint64_t lsn;
    };
    std::deque<Sample> samples;
    const char *const kStandbyProbe =
        "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.pg_last_wal_replay_lsn(),"
        " pg_catalog.pg_last_wal_receive_lsn() IS NOT DISTINCT FROM"
        " pg_catalog.pg_last_wal_replay_lsn()";
    PGconn *primary = nullptr;
    std::vector<PGconn *> connections(replicas_.size(), nullptr);
    auto reopen = [](PGconn *&conn, const std::string &dsn) {
        if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
            if (conn != nullptr) PQfinish(conn);
            conn = open_connection(dsn);
        }
        return PQstatus(conn) == CONNECTION_OK;
    };
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        auto now = Clock::now();
        bool primary_known = false;
        if (reopen(primary, options_.primary_dsn)) {
            PGresult *result = PQexec(primary, "SELECT pg_catalog.pg_current_wal_lsn()");
            if (PQresultStatus(result) == PGRES_TUPLES_OK) {
                uint64_t lsn = parse_lsn(PQgetvalue(result, 0, 0));
                if (samples.empty() || samples.back().lsn != lsn) samples.push_back({now, lsn});
                primary_known = true;
            }
            PQclear(result);
        }
        // Samples older than the lag limit only matter as the oldest one.
        while (samples.size() > 1 && now - samples[1].at > options_.max_lag) samples.pop_front();
        for (size_t i = 0; i < replicas_.size(); i++) {
            Replica &replica = *replicas_[i];
            std::string problem;
            long lag = -1;
            if (!reopen(connections[i], replica.dsn)) {
                problem = "unreachable: " + trim(PQerrorMessage(connections[i]));
            } else {
                PGresult *result = PQexec(connections[i], kStandbyProbe);
                if (PQresultStatus(result) != PGRES_TUPLES_OK) {
                    problem = "probe failed: " + trim(PQresultErrorMessage(result));
                } else if (std::string(PQgetvalue(result, 0, 0)) != "t") {
                    problem = "not a hot standby (promoted?)";
                } else if (primary_known) {
                    uint64_t replayed = parse_lsn(PQgetvalue(result, 0, 1));
                    lag = -2;
                    for (auto it = samples.rbegin(); it != samples.rend(); ++it) {
                        if (it->lsn <= replayed) {
                            lag = it == samples.rbegin()
                                      ? 0
                                      : static_cast<long>(
                                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                                now - std::prev(it)->at)
                                                .count());
                            break;
                        }
                    }
                    if (lag == -2)
                        lag =
                            static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  now - samples.front().at)
                                                  .count());
                } else {
                    lag = std::string(PQgetvalue(result, 0, 2)) == "t" ? 0 : -1;
                    if (lag < 0) problem = "still replaying, and the primary is unreachable";
                }
                if (problem.empty() && lag > options_.max_lag.count())
                    problem = "lagging " + std::to_string(lag) + " ms behind the primary (limit " +
                              std::to_string(options_.max_lag.count()) + " ms)";
                PQclear(result);
            }
            replica.lag_ms = lag;
            bool was = replica.usable.exchange(problem.empty());
            std::string previous;
            {
                std::lock_guard<std::mutex> state_lock(mutex_);
                previous = replica.state;
                replica.state = problem;
            }
            if (was != problem.empty())
                logger_.log(
                    problem.empty() ? LogLevel::Notice : LogLevel::Warning,
                    "read replica " + std::to_string(i + 1) +
                        (problem.empty() ? std::string(" in use") : " not used: " + problem));
        }
        lock.lock();
        stop_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; });
    }
    lock.unlock();
    if (primary != nullptr) PQfinish(primary);
    for (PGconn *conn : connections)
        if (conn != nullptr) PQfinish(conn);
}

ReplicaRouter::Replica *ReplicaRouter::pick() {
    size_t n = replicas_.size();
    size_t start = next_++;
    for (size_t i = 0; i < n; i++) {
        Replica &replica = *replicas_[(start + i) % n];
        if (replica.usable) return &replica;
    }
    return nullptr;
}

void ReplicaRouter::mark_down(Replica &replica, const std::string &why) {
    if (replica.usable.exchange(false))
        logger_.log(LogLevel::Warning, "read replica not used until it answers again: " + why);
    std::lock_guard<std::mutex> lock(mutex_);
    replica.state = why;
}

void ReplicaRouter::route(ReplyFn reply, const std::function<void(Backend &, ReplyFn)> &work) {
    Replica *replica = pick();
    if (replica == nullptr) {
        if (!options_.fallback_to_primary) {
            refused_++;
            BackendReply refused;
            refused.error_code = error_code::kDatabaseUnavailable;
            refused.error_message =
                "No read replica is usable (down or lagging) and the bridge is configured not to "
                "send read-only work to the primary (--replica-fallback fail). Retry shortly.";
            reply(std::move(refused));
            return;
        }
        on_primary_++;
        work(primary_, std::move(reply));
        return;
    }
    auto self = this;
    work(*replica->pool, [self, replica, reply, work](BackendReply result) mutable {
        if (!result.ok && (result.sqlstate == kNeedsPrimary || result.sqlstate == "28000")) {
            // A writing tool; or a token the standby does not know (yet): the primary decides.
            self->to_primary_writes_++;
            work(self->primary_, std::move(reply));
            return;
        }
        if (!result.ok && result.error_code == error_code::kDatabaseUnavailable && !result.busy) {
            // The standby is unreachable (a busy one is merely busy: its answer stands).
            self->mark_down(*replica, result.error_message);
            if (self->options_.fallback_to_primary) {
                self->fallbacks_++;
                work(self->primary_, std::move(reply));
                return;
            }
            self->refused_++;
            result.error_message =
                "No read replica is usable (" + result.error_message +
                ") and the bridge is configured not to send read-only work to the primary "
                "(--replica-fallback fail). Retry shortly.";
        }
        if (result.ok && !result.standby_audit.empty()) {
            self->store_then_answer(std::move(result), std::move(reply));
            return;
        }
        self->on_replica_++;
        reply(std::move(result));
    });
}

// A standby's call: its audit record goes to disk (fdatasync) on the spool's thread, not the
// loop's, the body read first (a large one off the loop); the answer leaves on the loop once
// the record is stored.
void ReplicaRouter::store_then_answer(BackendReply result, ReplyFn reply) {
    auto held = std::make_shared<BackendReply>(std::move(result));
    auto pieces = std::make_shared<std::deque<std::string>>();
    auto failed = std::make_shared<std::string>();
    BodyStream *source = held->body;
    held->body = nullptr;
    bool streamed = source != nullptr;
    auto read = [source, pieces, failed] {
        std::string piece;
        while (source->next(piece)) pieces->push_back(std::move(piece));
        *failed = source->failed;
    };
    auto answer = [this, reply](BackendReply out, std::shared_ptr<std::deque<std::string>> body) {
        asio::post(loop_, [reply, out = std::move(out), body]() mutable {
            BodyStream stream;
            stream.buffered = true;
            stream.next = [body](std::string &piece) {
                if (body == nullptr || body->empty()) return false;
                piece = std::move(body->front());
                body->pop_front();
                return true;
            };
            if (body != nullptr) out.body = &stream;
            reply(std::move(out));
        });
    };
    auto spool = [this, reply, held, pieces, failed, streamed, answer] {
        if (!failed->empty()) {
            BackendReply broken;
            broken.error_code = error_code::kDatabaseUnavailable;
            broken.error_message = "Database connection lost while reading the result: " + *failed;
            reply(std::move(broken));
            return;
        }
        asio::post(spooler_, [this, held, pieces, streamed, answer] {
            std::string error;
            if (!spool_.append(held->standby_audit, error)) {
                // Without its audit record on disk the result is withheld, as the primary
                // withholds one whose audit row is not durable.
                logger_.log(LogLevel::Error, error);
                BackendReply withheld;
                withheld.error_code = error_code::kInternalError;
                withheld.error_message =
                    "The call ran on a read replica but its audit record could not be stored (" +
                    error + "); its result is withheld.";
                answer(std::move(withheld), nullptr);
                return;
            }
            on_replica_++;
            answer(std::move(*held), streamed ? pieces : nullptr);
        });
    };
    if (streamed && !source->buffered && source->off_loop) {
        source->off_loop(read, spool);
        return;
    }
    if (streamed) read();
    spool();
}

void ReplicaRouter::submit(Work work, ReplyFn reply) {
    if (work.operation == Operation::EndSession) {  // NOTIFY: the primary only
        primary_.submit(std::move(work), std::move(reply));
        return;
    }
    if (work.operation == Operation::Authenticate) {
        // The primary first: a standby may not have replayed a new token or a revocation yet.
        // Only when the primary cannot be reached does a standby answer.
        auto self = this;
        primary_.submit(work, [self, work, reply](BackendReply result) {
            if (result.ok || result.error_code != error_code::kDatabaseUnavailable || result.busy) {
                reply(std::move(result));
                return;
            }
            Replica *replica = self->pick();
            if (replica == nullptr) {
                reply(std::move(result));
                return;
            }
            replica->pool->submit(work, reply);
        });
        return;
    }
    // Everything else reads first on a standby (a writing tool is refused there and sent on).
    route(std::move(reply), [work = std::move(work)](Backend &backend, ReplyFn done) {
        backend.submit(work, std::move(done));
    });
}

void ReplicaRouter::cancel(const std::string &key) {
    for (auto &replica : replicas_) replica->pool->cancel(key);
    primary_.cancel(key);
}

std::string ReplicaRouter::metrics_text() {
    std::string out = primary_.metrics_text();
    auto line = [&out](const std::string &text) { out += text + "\n"; };
    line(
        "# HELP pg_mcp_bridge_routed_total Requests by where they ran: replica, primary (no "
        "replica usable), write (a writing tool sent on to the primary), fallback (a replica "
        "failed), refused (no replica and --replica-fallback fail).");
    line("# TYPE pg_mcp_bridge_routed_total counter");
    line("pg_mcp_bridge_routed_total{to=\"replica\"} " + std::to_string(on_replica_.load()));
    line("pg_mcp_bridge_routed_total{to=\"primary\"} " + std::to_string(on_primary_.load()));
    line("pg_mcp_bridge_routed_total{to=\"write\"} " + std::to_string(to_primary_writes_.load()));
    line("pg_mcp_bridge_routed_total{to=\"fallback\"} " + std::to_string(fallbacks_.load()));
    line("pg_mcp_bridge_routed_total{to=\"refused\"} " + std::to_string(refused_.load()));
    line("# HELP pg_mcp_bridge_replica_usable Whether each read replica is in use (1) or not.");
    line("# TYPE pg_mcp_bridge_replica_usable gauge");
    line("# HELP pg_mcp_bridge_replica_lag_ms Replay lag of each read replica (-1: unknown).");
    line("# TYPE pg_mcp_bridge_replica_lag_ms gauge");
    for (size_t i = 0; i < replicas_.size(); i++) {
        std::string label = "{replica=\"" + std::to_string(i + 1) + "\"}";
        line("pg_mcp_bridge_replica_usable" + label + " " + (replicas_[i]->usable ? "1" : "0"));
        line("pg_mcp_bridge_replica_lag_ms" + label + " " +
             std::to_string(replicas_[i]->lag_ms.load()));
    }
    line(
        "# HELP pg_mcp_bridge_standby_audit_spooled Audit records of replica-served calls not "
        "yet on the primary.");
    line("# TYPE pg_mcp_bridge_standby_audit_spooled gauge");
    line("pg_mcp_bridge_standby_audit_spooled " + std::to_string(spool_.pending()));
    line(
        "# HELP pg_mcp_bridge_standby_audit_forwarded_total Audit records forwarded to the "
        "primary.");
    line("# TYPE pg_mcp_bridge_standby_audit_forwarded_total counter");
    line("pg_mcp_bridge_standby_audit_forwarded_total " + std::to_string(spool_.forwarded()));
    line(
        "# HELP pg_mcp_bridge_standby_audit_rejected_total Spooled records the primary refused "
        "(kept in the spool's .rejected file).");
    line("# TYPE pg_mcp_bridge_standby_audit_rejected_total counter");
    line("pg_mcp_bridge_standby_audit_rejected_total " + std::to_string(spool_.rejected()));
    return out;
}

}  // namespace pg_mcp::bridge
