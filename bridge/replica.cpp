#include "replica.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "json_rpc.hpp"

namespace pg_mcp::bridge {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kBatchRecords = 500;
constexpr size_t kBatchBytes = 4 << 20;
const char *const kStandbyAuditKey = "pg-mcp/standby_audit";

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

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

}  // namespace

AuditSpool::AuditSpool(std::string path, std::string primary_dsn, const Logger &logger)
    : path_(std::move(path)), primary_dsn_(std::move(primary_dsn)), logger_(logger) {}

AuditSpool::~AuditSpool() {
    stop(std::chrono::milliseconds(0));
    if (fd_ >= 0) ::close(fd_);
    if (conn_ != nullptr) PQfinish(conn_);
}

bool AuditSpool::open(std::string &error) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) {
        error = errno_text("cannot open the audit spool " + path_);
        return false;
    }
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
        error = errno_text("cannot read the audit spool " + path_);
        return false;
    }
    std::string content;
    if (!read_range(fd_, 0, info.st_size, content)) {
        error = errno_text("cannot read the audit spool " + path_);
        return false;
    }
    size_t lines = 0;
    for (char c : content) lines += c == '\n';
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
    if (fd_ < 0 || !write_all(fd_, line.data(), line.size()) || ::fdatasync(fd_) != 0) {
        error = errno_text("cannot write the audit spool " + path_);
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
        if (forward()) {
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
    const char *params[1] = {records.c_str()};
    PGresult *result = PQexecParams(conn_, "SELECT mcp.ingest_standby_audit($1::jsonb)", 1, nullptr,
                                    params, nullptr, nullptr, 0);
    std::string error;
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        sqlstate = state ? state : "";
        error = trim(PQresultErrorMessage(result));
        if (error.empty()) error = trim(PQerrorMessage(conn_));
    }
    PQclear(result);
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
    // Records before `size` never change until they are dropped, which only this thread does.
    off_t size;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        size = ::lseek(fd_, 0, SEEK_END);
    }
    std::string content;
    if (size <= 0 || !read_range(fd_, 0, size, content)) return size == 0;
    // Whole lines of the first batch; a torn last line (a crash mid-write) is skipped.
    std::vector<std::string> lines;
    size_t at = 0, bytes = 0;
    while (lines.size() < kBatchRecords && bytes < kBatchBytes) {
        size_t end = content.find('\n', at);
        if (end == std::string::npos) break;
        lines.push_back(content.substr(at, end - at));
        bytes += end - at;
        at = end + 1;
    }
    if (lines.empty()) return true;
    std::string batch = "[";
    for (size_t i = 0; i < lines.size(); i++) {
        json parsed = json::parse(lines[i], nullptr, false);
        if (!parsed.is_object()) {
            reject(lines[i], "not a JSON object");
            continue;
        }
        if (batch.size() > 1) batch += ",";
        batch += lines[i];
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
    std::string drop_error;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!drop_prefix(static_cast<off_t>(at), drop_error)) {
        logger_.log(LogLevel::Error, drop_error);
        return false;
    }
    pending_ -= std::min(pending_.load(), lines.size());
    forwarded_ += lines.size();
    return true;
}

bool AuditSpool::drop_prefix(off_t end, std::string &error) {
    off_t size = ::lseek(fd_, 0, SEEK_END);
    if (size == end) {
        if (::ftruncate(fd_, 0) != 0 || ::fdatasync(fd_) != 0) {
            error = errno_text("cannot truncate the audit spool " + path_);
            return false;
        }
        return true;
    }
    // Records were added meanwhile: the rest goes to a new file that replaces the spool.
    std::string rest;
    if (!read_range(fd_, end, size, rest)) {
        error = errno_text("cannot read the audit spool " + path_);
        return false;
    }
    std::string temporary = path_ + ".tmp";
    int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || !write_all(fd, rest.data(), rest.size()) || ::fdatasync(fd) != 0 ||
        ::rename(temporary.c_str(), path_.c_str()) != 0) {
        error = errno_text("cannot rewrite the audit spool " + path_);
        if (fd >= 0) ::close(fd);
        return false;
    }
    size_t slash = path_.rfind('/');
    std::string directory = slash == std::string::npos ? std::string(".")
                            : slash == 0               ? std::string("/")
                                                       : path_.substr(0, slash);
    int dir = ::open(directory.c_str(), O_RDONLY | O_CLOEXEC);
    if (dir >= 0) {
        (void)::fsync(dir);
        ::close(dir);
    }
    ::close(fd_);
    fd_ = fd;
    return true;
}

ReplicaRouter::ReplicaRouter(Database &primary, ReplicaOptions options, AuditSpool &spool,
                             size_t pool_size, const Logger &logger,
                             std::chrono::milliseconds queue_timeout, bool prepare_statements)
    : primary_(primary), options_(std::move(options)), spool_(spool), logger_(logger) {
    for (const std::string &dsn : options_.dsns) {
        auto replica = std::make_unique<Replica>();
        replica->dsn = dsn;
        replica->pool =
            std::make_unique<Database>(dsn, pool_size, logger, queue_timeout, prepare_statements);
        replica->state = "not checked yet";
        replicas_.push_back(std::move(replica));
    }
    monitor_ = std::thread([this] { monitor(); });
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
}

void ReplicaRouter::monitor() {
    // One connection per standby, reopened when lost. Lag: none when everything received is
    // replayed, else the age of the last replayed transaction.
    const char *const kProbe =
        "SELECT pg_catalog.pg_is_in_recovery(),"
        " CASE WHEN pg_catalog.pg_last_wal_receive_lsn() IS NOT DISTINCT FROM"
        "           pg_catalog.pg_last_wal_replay_lsn() THEN 0"
        "      ELSE coalesce((extract(epoch FROM pg_catalog.now() -"
        "                     pg_catalog.pg_last_xact_replay_timestamp()) * 1000)::bigint, 0)"
        " END";
    std::vector<PGconn *> connections(replicas_.size(), nullptr);
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        for (size_t i = 0; i < replicas_.size(); i++) {
            Replica &replica = *replicas_[i];
            PGconn *&conn = connections[i];
            if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
                if (conn != nullptr) PQfinish(conn);
                conn = open_connection(replica.dsn);
            }
            std::string problem;
            long lag = -1;
            if (PQstatus(conn) != CONNECTION_OK) {
                problem = "unreachable: " + trim(PQerrorMessage(conn));
            } else {
                PGresult *result = PQexec(conn, kProbe);
                if (PQresultStatus(result) != PGRES_TUPLES_OK) {
                    problem = "probe failed: " + trim(PQresultErrorMessage(result));
                } else if (std::string(PQgetvalue(result, 0, 0)) != "t") {
                    problem = "not a hot standby (promoted?)";
                } else {
                    lag = std::atol(PQgetvalue(result, 0, 1));
                    if (lag > options_.max_lag.count())
                        problem = "lagging " + std::to_string(lag) + " ms behind (limit " +
                                  std::to_string(options_.max_lag.count()) + " ms)";
                }
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
            if (was != problem.empty() ||
                (!problem.empty() && previous != problem && previous.rfind("lagging", 0) != 0))
                logger_.log(
                    problem.empty() ? LogLevel::Notice : LogLevel::Warning,
                    "read replica " + std::to_string(i + 1) +
                        (problem.empty() ? std::string(" in use") : " not used: " + problem));
        }
        lock.lock();
        stop_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; });
    }
    lock.unlock();
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

void ReplicaRouter::route(ReplyFn reply, const std::function<void(Backend &, ReplyFn)> &work,
                          bool strip_audit) {
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
    work(*replica->pool, [self, replica, reply, work, strip_audit](BackendReply result) mutable {
        if (!result.ok && result.sqlstate == kNeedsPrimary) {
            self->to_primary_writes_++;
            work(self->primary_, std::move(reply));
            return;
        }
        if (!result.ok && result.error_code == error_code::kDatabaseUnavailable) {
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
        if (result.ok && strip_audit && result.value.is_object()) {
            auto meta = result.value.find("_meta");
            if (meta != result.value.end() && meta->is_object() &&
                meta->contains(kStandbyAuditKey)) {
                std::string record = (*meta)[kStandbyAuditKey].dump();
                meta->erase(kStandbyAuditKey);
                std::string error;
                if (!self->spool_.append(record, error)) {
                    // Without its audit record on disk the result is withheld, as the
                    // primary withholds one whose audit row is not durable.
                    self->logger_.log(LogLevel::Error, error);
                    BackendReply withheld;
                    withheld.error_code = error_code::kInternalError;
                    withheld.error_message =
                        "The call ran on a read replica but its audit record could not be "
                        "stored (" +
                        error + "); its result is withheld.";
                    reply(std::move(withheld));
                    return;
                }
            }
        }
        self->on_replica_++;
        reply(std::move(result));
    });
}

void ReplicaRouter::list_tools(const std::string &key, const CallIdentity &identity,
                               ReplyFn reply) {
    route(
        std::move(reply),
        [key, identity](Backend &backend, ReplyFn done) {
            backend.list_tools(key, identity, std::move(done));
        },
        false);
}

void ReplicaRouter::call_tool(const std::string &key, const CallIdentity &identity,
                              const std::string &name, const json &arguments, ProgressFn progress,
                              ReplyFn reply) {
    route(
        std::move(reply),
        [key, identity, name, arguments, progress](Backend &backend, ReplyFn done) {
            backend.call_tool(key, identity, name, arguments, progress, std::move(done));
        },
        true);
}

void ReplicaRouter::authenticate(const std::string &key, const std::string &token_sha256,
                                 ReplyFn reply) {
    route(
        std::move(reply),
        [key, token_sha256](Backend &backend, ReplyFn done) {
            backend.authenticate(key, token_sha256, std::move(done));
        },
        false);
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
