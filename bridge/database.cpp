#include "database.hpp"

#include <poll.h>

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "json_rpc.hpp"

namespace pg_mcp::bridge {

const char *const kExtensionVersion = PG_MCP_VERSION;

bool compatible_extension_version(const std::string &installed) {
    // Same major.minor: patch releases change no SQL object the bridge uses.
    auto major_minor = [](const std::string &version) {
        size_t first = version.find('.');
        size_t second = first == std::string::npos ? first : version.find('.', first + 1);
        return version.substr(0, second);
    };
    return major_minor(installed) == major_minor(kExtensionVersion);
}
const char *const kNeedsPrimary = "MCP02";
const char *const kStandbyAuditKey = "pg-mcp/standby_audit";

namespace {

using Clock = std::chrono::steady_clock;

// Reconnection: the first retry after 50 ms, doubling to at most a second (jittered), so that a
// server back from a restart is used within about a second.
constexpr std::chrono::milliseconds kFirstBackoff{50};
constexpr std::chrono::milliseconds kMaxBackoff{1000};

// One round trip per request, each statement prepared once per connection (unless the pool
// goes through a proxy that cannot keep them): the agent context goes to the audit record as
// arguments, and a call's result comes as rows (its head, then its body in pieces, see
// mcp.call_tool_stream), read one at a time so that a large result passes through the bridge
// without being held whole. With a principal's token, mcp.assume_principal sets its role for
// the statement's transaction first (the MATERIALIZED CTE runs before the outer query reads
// a row).
struct Statement {
    const char *name;
    const char *sql;
};
const Statement kCall = {"pg_mcp_call", "SELECT mcp.call_tool_stream($1, $2::jsonb, $3, $4, $5)"};
const Statement kCallAs = {
    "pg_mcp_call_as",
    "WITH principal AS MATERIALIZED (SELECT mcp.assume_principal($6::bytea))"
    " SELECT mcp.call_tool_stream($1, $2::jsonb, $3, $4, $5) FROM principal"};
// The same, returning once the audit record is queued (AuditConfirmer confirms it).
const Statement kCallDeferred = {"pg_mcp_call_deferred",
                                 "SELECT mcp.call_tool_deferred($1, $2::jsonb, $3, $4, $5)"};
const Statement kCallDeferredAs = {
    "pg_mcp_call_deferred_as",
    "WITH principal AS MATERIALIZED (SELECT mcp.assume_principal($6::bytea))"
    " SELECT mcp.call_tool_deferred($1, $2::jsonb, $3, $4, $5) FROM principal"};
const char *const kAuditPendingKey = "pg-mcp/audit_pending";
// A deferred call's result up to this size is held while its record is confirmed (its pool
// connection serves others meanwhile); a larger one keeps its connection and is streamed after.
constexpr size_t kHeldResultBytes = 256 * 1024;
const Statement kList = {"pg_mcp_list",
                         "WITH context AS MATERIALIZED ("
                         " SELECT pg_catalog.set_config('pg_mcp.agent_name', $1, true),"
                         "        pg_catalog.set_config('pg_mcp.client_info', $2, true),"
                         "        pg_catalog.set_config('pg_mcp.request_id', $3, true))"
                         " SELECT mcp.list_tools()::text FROM context"};
const Statement kListAs = {"pg_mcp_list_as",
                           "WITH context AS MATERIALIZED ("
                           " SELECT mcp.assume_principal($4::bytea),"
                           "        pg_catalog.set_config('pg_mcp.agent_name', $1, true),"
                           "        pg_catalog.set_config('pg_mcp.client_info', $2, true),"
                           "        pg_catalog.set_config('pg_mcp.request_id', $3, true))"
                           " SELECT mcp.list_tools()::text FROM context"};
// The agent context as settings (for mcp.list_resources and mcp.read_resource, as for
// mcp.list_tools), the principal's role first when there is a token.
#define PG_MCP_CONTEXT(FIRST)                                 \
    "WITH context AS MATERIALIZED (SELECT " FIRST             \
    " pg_catalog.set_config('pg_mcp.agent_name', $1, true),"  \
    " pg_catalog.set_config('pg_mcp.client_info', $2, true)," \
    " pg_catalog.set_config('pg_mcp.request_id', $3, true))"
const Statement kListResources = {
    "pg_mcp_resources", PG_MCP_CONTEXT("") " SELECT mcp.list_resources()::text FROM context"};
const Statement kListResourcesAs = {
    "pg_mcp_resources_as",
    PG_MCP_CONTEXT(
        "mcp.assume_principal($4::bytea),") " SELECT mcp.list_resources()::text FROM context"};
const Statement kReadResource = {
    "pg_mcp_resource", PG_MCP_CONTEXT("") " SELECT mcp.read_resource($4)::text FROM context"};
const Statement kReadResourceAs = {
    "pg_mcp_resource_as",
    PG_MCP_CONTEXT(
        "mcp.assume_principal($5::bytea),") " SELECT mcp.read_resource($4)::text FROM context"};
const Statement kListPrompts = {"pg_mcp_prompts",
                                PG_MCP_CONTEXT("") " SELECT mcp.list_prompts()::text FROM context"};
const Statement kListPromptsAs = {
    "pg_mcp_prompts_as",
    PG_MCP_CONTEXT(
        "mcp.assume_principal($4::bytea),") " SELECT mcp.list_prompts()::text FROM context"};
const Statement kGetPrompt = {
    "pg_mcp_prompt", PG_MCP_CONTEXT("") " SELECT mcp.get_prompt($4, $5::jsonb)::text FROM context"};
const Statement kGetPromptAs = {
    "pg_mcp_prompt_as",
    PG_MCP_CONTEXT("mcp.assume_principal($6::bytea),") " SELECT mcp.get_prompt($4, $5::jsonb)::text FROM context"};
#undef PG_MCP_CONTEXT
const Statement kAuthenticate = {"pg_mcp_authenticate", "SELECT mcp.assume_principal($1::bytea)"};

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

std::string connection_error(PGconn *conn) {
    return conn == nullptr ? std::string("out of memory") : trim(PQerrorMessage(conn));
}

BackendReply failure(int code, std::string message) {
    BackendReply reply;
    reply.ok = false;
    reply.error_code = code;
    reply.error_message = std::move(message);
    return reply;
}

// Calls reply, containing anything it throws: a worker thread must survive any reply.
void deliver(const ReplyFn &reply, BackendReply value, const Logger &logger) {
    try {
        reply(std::move(value));
    } catch (const std::exception &error) {
        logger.log(LogLevel::Error, std::string("internal error while replying: ") + error.what());
    }
}

}  // namespace

namespace {

const Logger *notice_logger = nullptr;

// libpq's notices and warnings (e.g. "WARNING: terminating connection because of crash of
// another server process") as log lines of the bridge, never raw text on stderr.
void log_notice(void *, const char *message) {
    if (notice_logger == nullptr) return;
    std::string text = message;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    LogLevel level = text.rfind("WARNING:", 0) == 0 ? LogLevel::Warning
                     : text.rfind("ERROR:", 0) == 0 || text.rfind("FATAL:", 0) == 0
                         ? LogLevel::Error
                         : LogLevel::Notice;
    notice_logger->log(level, "PostgreSQL: " + text);
}

}  // namespace

void route_notices_to(const Logger *logger) {
    notice_logger = logger;
}

PGconn *open_connection(const std::string &dsn) {
    // A connect timeout unless the DSN sets one (it is expanded after, and overrides it);
    // application_name after the DSN identifies the bridge.
    // TCP keepalives and a user timeout, unless the DSN sets them: a connection left half-open
    // by a failover is found dead in about half a minute, not after the kernel's hours.
    const char *keywords[] = {
        "connect_timeout",  "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout", "dbname",          "application_name",    nullptr};
    const char *values[] = {
        "10",   "10", "5", "3", "30000", dsn.empty() ? nullptr : dsn.c_str(), "pg_mcp_bridge",
        nullptr};
    PGconn *conn = PQconnectdbParams(keywords, values, 1);
    if (conn != nullptr) PQsetNoticeProcessor(conn, log_notice, nullptr);
    return conn;
}

bool Connection::healthy() {
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return false;
    // An idle connection the server has closed (pg_terminate_backend, restart) has its
    // goodbye or EOF waiting: notice it now rather than fail the next call.
    // A read that returns data does not look further, so the end of file after a FATAL
    // message shows only on the next read: read while there is anything to read.
    for (int reads = 0; reads < 8; ++reads) {
        pollfd fd{PQsocket(conn_), POLLIN, 0};
        if (poll(&fd, 1, 0) <= 0) break;
        if (PQconsumeInput(conn_) == 0) return false;
        while (PGnotify *notify = PQnotifies(conn_)) PQfreemem(notify);
    }
    return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

bool Connection::ensure(std::string &error) {
    if (healthy()) return true;
    close();
    conn_ = open_connection(dsn_);
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        error = connection_error(conn_);
        close();
        return false;
    }
    cancel_ = PQgetCancel(conn_);
    return true;
}

bool Connection::prepare(const char *name, const char *sql, std::string &error) {
    if (prepared_.count(name) != 0) return true;
    PGresult *result = PQprepare(conn_, name, sql, 0, nullptr);
    bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    if (ok)
        prepared_.insert(name);
    else
        error = trim(PQresultErrorMessage(result));
    PQclear(result);
    return ok;
}

void Connection::close() {
    prepared_.clear();
    if (cancel_ != nullptr) PQfreeCancel(cancel_);
    cancel_ = nullptr;
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
}

StartupCheck check_database(const std::string &dsn) {
    StartupCheck check;
    PGconn *conn = open_connection(dsn);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        check.message = "cannot connect to PostgreSQL: " + connection_error(conn);
        PQfinish(conn);
        return check;
    }
    std::string database = PQdb(conn);
    std::string user = PQuser(conn);
    PGresult *result = PQexec(conn,
                              "SELECT e.extversion, n.nspname FROM pg_catalog.pg_extension e"
                              " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
                              " WHERE e.extname = 'pg_mcp'");
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        check.message = "cannot read pg_extension: " + connection_error(conn);
    } else if (PQntuples(result) == 0) {
        check.message = "extension pg_mcp is not installed in database \"" + database +
                        "\": run CREATE EXTENSION pg_mcp there (as a superuser), or point the "
                        "bridge at the right database";
    } else if (!compatible_extension_version(PQgetvalue(result, 0, 0))) {
        check.message = "extension pg_mcp in database \"" + database + "\" is version " +
                        PQgetvalue(result, 0, 0) + ", but this bridge (" + kExtensionVersion +
                        ") needs the same major.minor version: run ALTER EXTENSION pg_mcp UPDATE, "
                        "or use a matching bridge";
    } else if (std::string(PQgetvalue(result, 0, 1)) != "mcp") {
        check.message = "extension pg_mcp is installed in schema \"" +
                        std::string(PQgetvalue(result, 0, 1)) + "\", expected \"mcp\"";
    } else {
        check.ok = true;
        check.message = "connected to database \"" + database + "\" as \"" + user + "\"; pg_mcp " +
                        PQgetvalue(result, 0, 0);
    }
    PQclear(result);
    PQfinish(conn);
    return check;
}

Database::Database(std::string dsn, size_t pool_size, const Logger &logger,
                   std::chrono::milliseconds queue_timeout, bool prepare_statements)
    : dsn_(std::move(dsn)),
      pool_size_(pool_size == 0 ? 1 : pool_size),
      logger_(logger),
      queue_timeout_(queue_timeout),
      prepare_statements_(prepare_statements) {
    for (size_t i = 0; i < pool_size_; ++i) workers_.emplace_back([this] { worker(); });
    if (queue_timeout_.count() > 0) expirer_ = std::thread([this] { expire_queued(); });
}

// Answers "busy, retry" to requests that waited longer than the queue timeout for a free
// connection (the queue is in arrival order: only its front can be due).
void Database::expire_queued() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        auto limit = Clock::now() - queue_timeout_;
        std::vector<std::shared_ptr<Job>> expired = queue_.take_older_than(limit);
        for (auto &job : expired) active_.erase(job->key);
        if (!expired.empty()) {
            lock.unlock();
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
            logger_.log(LogLevel::Warning, std::to_string(expired.size()) +
                                               " request(s) refused: connection pool busy");
            lock.lock();
            continue;
        }
        expiry_.wait_for(lock, std::chrono::milliseconds(20));
    }
}

Database::~Database() {
    stop();
}

void Database::stop() {
    std::vector<std::shared_ptr<Job>> abandoned;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_ && workers_.empty()) return;
        stopping_ = true;
        abandoned = queue_.take_all();
        char error[256];
        for (auto &entry : active_) {
            entry.second->cancelled = true;
            if (entry.second->cancel_handle)
                PQcancel(entry.second->cancel_handle, error, sizeof error);
        }
        for (auto &job : abandoned) active_.erase(job->key);
    }
    ready_.notify_all();
    retry_.notify_all();
    expiry_.notify_all();
    for (auto &job : abandoned)
        deliver(job->reply, failure(error_code::kInternalError, "Server is shutting down"),
                logger_);
    for (auto &thread : workers_)
        if (thread.joinable()) thread.join();
    workers_.clear();
    if (expirer_.joinable()) expirer_.join();
}

void Database::enqueue(std::shared_ptr<Job> job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!stopping_) {
            job->queued_at = Clock::now();
            active_[job->key] = job;
            queue_.push(owner_of(*job), job);
            job = nullptr;
        }
    }
    if (job) {
        deliver(job->reply, failure(error_code::kInternalError, "Server is shutting down"),
                logger_);
        return;
    }
    ready_.notify_one();
}

void Database::enqueue_catalog(Job::Catalog catalog, const std::string &key,
                               const CallIdentity &identity, ReplyFn reply, std::string name,
                               std::string arguments) {
    auto job = std::make_shared<Job>();
    job->key = key;
    job->catalog = catalog;
    job->uri = std::move(name);
    job->prompt_arguments = std::move(arguments);
    job->identity = identity;
    job->reply = std::move(reply);
    enqueue(std::move(job));
}

void Database::list_tools(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
    enqueue_catalog(Job::Catalog::Tools, key, identity, std::move(reply));
}

void Database::call_tool(const std::string &key, const CallIdentity &identity,
                         const std::string &name, const json &arguments, ProgressFn progress,
                         ReplyFn reply) {
    auto job = std::make_shared<Job>();
    job->key = key;
    job->is_call = true;
    job->identity = identity;
    job->tool = name;
    job->arguments = arguments.dump();
    job->progress = std::move(progress);
    job->reply = std::move(reply);
    enqueue(std::move(job));
}

void Database::list_resources(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
    enqueue_catalog(Job::Catalog::Resources, key, identity, std::move(reply));
}

void Database::read_resource(const std::string &key, const CallIdentity &identity,
                             const std::string &uri, ReplyFn reply) {
    enqueue_catalog(Job::Catalog::Resource, key, identity, std::move(reply), uri);
}

void Database::list_prompts(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
    enqueue_catalog(Job::Catalog::Prompts, key, identity, std::move(reply));
}

void Database::get_prompt(const std::string &key, const CallIdentity &identity,
                          const std::string &name, const json &arguments, ReplyFn reply) {
    enqueue_catalog(Job::Catalog::Prompt, key, identity, std::move(reply), name, arguments.dump());
}

void Database::authenticate(const std::string &key, const std::string &token_sha256,
                            ReplyFn reply) {
    auto job = std::make_shared<Job>();
    job->key = key;
    job->is_authenticate = true;
    job->identity.principal_token = token_sha256;
    job->reply = std::move(reply);
    enqueue(std::move(job));
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
    size_t waiting;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        waiting = queue_.size();
    }
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

void Database::cancel(const std::string &key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = active_.find(key);
    if (found == active_.end()) return;
    Job &job = *found->second;
    job.cancelled = true;
    if (job.cancel_handle != nullptr) {
        char error[256];
        if (!PQcancel(job.cancel_handle, error, sizeof error))
            logger_.log(LogLevel::Warning, std::string("could not send cancel: ") + error);
    }
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

void Database::worker() {
    Connection connection(dsn_);
    Reconnect reconnect;
    for (;;) {
        std::shared_ptr<Job> job;
        bool cancelled;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // A connection waiting to retry takes no work meanwhile (the others serve it), and
            // waits apart from them: a request's wake-up always reaches one that can take it.
            for (;;) {
                if (stopping_ && queue_.empty()) return;
                if (!stopping_ && Clock::now() < reconnect.retry_at) {
                    retry_.wait_until(lock, reconnect.retry_at);
                    continue;
                }
                if (!queue_.empty()) break;
                ready_.wait(lock);
            }
            job = queue_.pop();
            cancelled = job->cancelled;
            if (cancelled) active_.erase(job->key);
        }
        if (cancelled) {
            deliver(job->reply, failure(error_code::kInternalError, "Request cancelled"), logger_);
            continue;
        }
        in_use_++;
        run(job, connection, reconnect);
        in_use_--;
    }
}

void Database::run(std::shared_ptr<Job> job, Connection &connection, Reconnect &reconnect) {
    bool was_connected = connection.get() != nullptr && PQstatus(connection.get()) == CONNECTION_OK;
    std::string error;
    if (connection.ensure(error)) {
        bool restored = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!was_connected) connected_++;
            restored = reconnect.delay.count() != 0;
            if (restored && failing_ > 0) failing_--;
        }
        if (restored) logger_.log(LogLevel::Notice, "database connection restored");
        reconnect.succeeded();
        execute(*job, connection);
        if (connection.get() == nullptr) {  // lost during the request
            std::lock_guard<std::mutex> lock(mutex_);
            if (connected_ > 0) connected_--;
        }
        return;
    }
    // This connection cannot connect: it retries later; the request goes to a connection that
    // works, or, when none does, fails at once with everything queued (a client learns the
    // database is unavailable within about a second, not after the queue timeout).
    bool first = reconnect.delay.count() == 0;
    reconnect.failed();
    std::vector<std::shared_ptr<Job>> failed;
    bool cancelled = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (was_connected && connected_ > 0) connected_--;
        if (first) failing_++;
        last_failure_ = error;
        if (job->cancelled) {
            cancelled = true;  // fails alone: nothing says the others cannot be served
            active_.erase(job->key);
        } else if (connected_ > 0 || failing_ < pool_size_) {
            // Another connection works, or has not tried yet (at start, one refused attempt
            // must not fail everything): the request waits for it.
            queue_.push_front(owner_of(*job), job);
        } else {
            failed = queue_.take_all();
            failed.insert(failed.begin(), job);
            for (auto &each : failed) active_.erase(each->key);
        }
    }
    if (cancelled) {
        deliver(job->reply, failure(error_code::kInternalError, "Request cancelled"), logger_);
        return;
    }
    ready_.notify_all();
    logger_.log(first ? LogLevel::Error : LogLevel::Debug, "database connection failed: " + error);
    for (auto &each : failed) {
        BackendReply reply =
            failure(error_code::kDatabaseUnavailable,
                    "Database unavailable: " + error + ". The bridge reconnects; retry shortly.");
        if (each->is_call) record_call(reply, std::chrono::steady_clock::duration::zero());
        deliver(each->reply, std::move(reply), logger_);
    }
}

std::string Database::readiness(std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> probing(readiness_mutex_);
    auto now = Clock::now();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (now - last_success_ < std::chrono::seconds(1)) return {};
    }
    if (now - readiness_at_ < std::chrono::milliseconds(500)) return readiness_;
    auto job = std::make_shared<Job>();
    job->key = "readyz/" + std::to_string(now.time_since_epoch().count());
    job->is_ping = true;
    job->identity.principal_token = "\x01readyz";  // an owner of its own in the fair queue
    auto answer = std::make_shared<std::promise<BackendReply>>();
    std::future<BackendReply> reply = answer->get_future();
    job->reply = [answer](BackendReply r) { answer->set_value(std::move(r)); };
    enqueue(job);
    if (reply.wait_for(timeout) != std::future_status::ready) {
        cancel(job->key);
        readiness_ = "the database did not answer within " + std::to_string(timeout.count()) +
                     " ms (all " + std::to_string(pool_size_) + " connections busy or stuck)";
    } else {
        BackendReply result = reply.get();
        readiness_ = result.ok ? std::string() : result.error_message;
    }
    readiness_at_ = Clock::now();
    return readiness_;
}

void Database::execute(Job &job, Connection &connection) {
    PGconn *conn = connection.get();
    if (job.is_ping) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job.cancel_handle = connection.cancel_handle();  // readiness gives up: cancelled
        }
        PGresult *result = PQexec(conn, "SELECT 1");
        bool ok = PQresultStatus(result) == PGRES_TUPLES_OK;
        std::string error = ok ? std::string() : connection_error(conn);
        PQclear(result);
        if (!ok && PQstatus(conn) != CONNECTION_OK) connection.close();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job.cancel_handle = nullptr;
            active_.erase(job.key);
            if (ok) last_success_ = Clock::now();
        }
        BackendReply reply;
        reply.ok = true;
        deliver(job.reply, ok ? std::move(reply) : failure(error_code::kDatabaseUnavailable, error),
                logger_);
        return;
    }
    // As text: bytea's input reads "\x" followed by hex digits.
    std::string token = "\\x" + job.identity.principal_token;
    bool as_principal = !job.identity.principal_token.empty();
    const char *params[6] = {};  // at most 6
    int nparams;
    const Statement *statement;
    if (job.is_authenticate) {
        statement = &kAuthenticate;
        params[0] = token.c_str();
        nparams = 1;
    } else if (job.is_call) {
        // Deferred confirmation frees the connection sooner but costs a second round trip (the
        // confirmer's): worth it only while other requests wait for a connection.
        bool others_waiting;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            others_waiting = !queue_.empty();
        }
        bool defer = confirmer_ != nullptr && (defer_always_ || others_waiting);
        statement = defer ? (as_principal ? &kCallDeferredAs : &kCallDeferred)
                          : (as_principal ? &kCallAs : &kCall);
        params[0] = job.tool.c_str();
        params[1] = job.arguments.c_str();
        params[2] = job.identity.agent_name.c_str();
        params[3] = job.identity.client_info.c_str();
        params[4] = job.identity.request_id.c_str();
        params[5] = token.c_str();
        nparams = as_principal ? 6 : 5;
    } else {
        params[0] = job.identity.agent_name.c_str();
        params[1] = job.identity.client_info.c_str();
        params[2] = job.identity.request_id.c_str();
        params[3] = token.c_str();
        nparams = as_principal ? 4 : 3;
        if (job.catalog == Job::Catalog::Tools) {
            statement = as_principal ? &kListAs : &kList;
        } else if (job.catalog == Job::Catalog::Resources) {
            statement = as_principal ? &kListResourcesAs : &kListResources;
        } else if (job.catalog == Job::Catalog::Resource) {
            statement = as_principal ? &kReadResourceAs : &kReadResource;
            params[3] = job.uri.c_str();
            params[4] = token.c_str();
            nparams = as_principal ? 5 : 4;
        } else if (job.catalog == Job::Catalog::Prompts) {
            statement = as_principal ? &kListPromptsAs : &kListPrompts;
        } else {
            statement = as_principal ? &kGetPromptAs : &kGetPrompt;
            params[3] = job.uri.c_str();
            params[4] = job.prompt_arguments.c_str();
            params[5] = token.c_str();
            nparams = as_principal ? 6 : 5;
        }
    }
    std::string prepare_error;
    if (prepare_statements_ &&
        !connection.prepare(statement->name, statement->sql, prepare_error)) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            active_.erase(job.key);
        }
        logger_.log(LogLevel::Error, "preparing the bridge's statement failed: " + prepare_error);
        deliver(job.reply,
                failure(error_code::kInternalError,
                        "Database error: " + prepare_error +
                            " (is the pg_mcp extension in the version this bridge needs?)"),
                logger_);
        if (PQstatus(conn) != CONNECTION_OK) connection.close();
        return;
    }
    int sent = prepare_statements_ ? PQsendQueryPrepared(conn, statement->name, nparams, params,
                                                         nullptr, nullptr, 0)
                                   : PQsendQueryParams(conn, statement->sql, nparams, nullptr,
                                                       params, nullptr, nullptr, 0);
    if (sent && job.is_call && !PQsetSingleRowMode(conn))
        logger_.log(LogLevel::Warning, "single-row mode refused; the result is read whole");
    {
        std::lock_guard<std::mutex> lock(mutex_);
        job.cancel_handle = connection.cancel_handle();
        // A cancel that arrived while the job moved from the queue to here.
        if (job.cancelled) {
            char error[256];
            PQcancel(job.cancel_handle, error, sizeof error);
        }
    }
    auto begun = Clock::now();
    auto finish = [&](BackendReply reply) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job.cancel_handle = nullptr;
            active_.erase(job.key);
            if (reply.ok) last_success_ = Clock::now();
        }
        if (job.is_call) record_call(reply, Clock::now() - begun);
        deliver(job.reply, std::move(reply), logger_);
    };
    if (!sent) {
        std::string error = connection_error(conn);
        connection.close();
        finish(failure(error_code::kDatabaseUnavailable,
                       "Database connection lost before the call was sent: " + error +
                           ". Retry the request."));
        return;
    }

    auto started = Clock::now();
    int reported = 0;
    bool lost = false;
    while (PQisBusy(conn)) {
        pollfd fd{PQsocket(conn), POLLIN, 0};
        int ready = poll(&fd, 1, 1000);
        if (ready < 0 && errno != EINTR) {
            lost = true;
            break;
        }
        if (ready > 0 && PQconsumeInput(conn) == 0) {
            lost = true;
            break;
        }
        int elapsed = static_cast<int>(
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count());
        if (job.progress && elapsed > reported) {
            reported = elapsed;
            job.progress(elapsed);
        }
    }

    std::string text;
    std::string error_message;
    std::string sqlstate;
    bool got_value = false;
    while (!lost) {
        PGresult *result = PQgetResult(conn);
        if (result == nullptr) break;
        ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_SINGLE_TUPLE && !got_value && !PQgetisnull(result, 0, 0)) {
            // A call's head: the rest of its rows are streamed from the reply.
            text = PQgetvalue(result, 0, 0);
            got_value = true;
            PQclear(result);
            break;
        } else if (status == PGRES_TUPLES_OK && PQntuples(result) == 1 &&
                   !PQgetisnull(result, 0, 0)) {
            text = PQgetvalue(result, 0, 0);
            got_value = true;
        } else if (status == PGRES_FATAL_ERROR) {
            const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
            sqlstate = state ? state : "";
            error_message = trim(PQresultErrorMessage(result));
        }
        PQclear(result);
    }
    if (lost || PQstatus(conn) != CONNECTION_OK) {
        std::string error = connection_error(conn);
        connection.close();
        logger_.log(LogLevel::Error, "database connection lost during a call: " + error);
        finish(failure(error_code::kDatabaseUnavailable,
                       "Database connection lost during the call (" + error +
                           "); it may not have completed. The bridge reconnects; retry if the "
                           "tool is safe to repeat."));
        return;
    }
    if (!error_message.empty()) {
        if (sqlstate == "28000") {
            finish(failure(error_code::kUnauthorized,
                           "Unauthorized: the bearer token is unknown, expired or revoked"));
            return;
        }
        if (sqlstate == "57014") {
            finish(failure(error_code::kInternalError, "Request cancelled: " + error_message));
            return;
        }
        // MCP02: a writing tool sent to a hot standby; the caller retries on the primary.
        if (sqlstate != kNeedsPrimary && sqlstate != "42704" && sqlstate != "22023")
            logger_.log(LogLevel::Error, "database error (" + sqlstate + "): " + error_message);
        BackendReply reply =
            failure(error_code::kInternalError,
                    "Database error (SQLSTATE " + sqlstate + "): " + error_message);
        reply.sqlstate = sqlstate;
        finish(std::move(reply));
        return;
    }
    // The rest of a call's rows: each a piece of the result's body, until the end of the query.
    bool streaming = got_value && job.is_call;
    bool drained = !streaming;
    BodyStream body;
    body.next = [&](std::string &chunk) {
        while (!drained) {
            PGresult *result = PQgetResult(conn);
            if (result == nullptr) {
                drained = true;
                break;
            }
            ExecStatusType status = PQresultStatus(result);
            if (status == PGRES_SINGLE_TUPLE) {
                chunk.assign(PQgetvalue(result, 0, 0),
                             static_cast<size_t>(PQgetlength(result, 0, 0)));
                PQclear(result);
                if (body.failed.empty()) return true;
            } else {
                if (status != PGRES_TUPLES_OK && body.failed.empty())
                    body.failed = trim(PQresultErrorMessage(result));
                PQclear(result);
            }
        }
        if (streaming && PQstatus(conn) != CONNECTION_OK && body.failed.empty())
            body.failed = connection_error(conn);
        return false;
    };
    if (!got_value) {
        finish(failure(error_code::kInternalError, "Database returned no result"));
        return;
    }
    BackendReply reply;
    try {
        reply.value = job.is_authenticate ? json(text) : json::parse(text);
        reply.ok = true;
        // Served by a hot standby: the audit record is not for the agent.
        if (job.is_call && reply.value.is_object()) {
            auto meta = reply.value.find("_meta");
            if (meta != reply.value.end() && meta->is_object() &&
                meta->contains(kStandbyAuditKey)) {
                reply.standby_audit = (*meta)[kStandbyAuditKey].dump();
                meta->erase(kStandbyAuditKey);
            }
        }
        if (streaming) reply.body = &body;
    } catch (const json::parse_error &error) {
        reply = failure(error_code::kInternalError,
                        std::string("Database returned invalid JSON: ") + error.what());
    }
    bool answered = false;
    if (reply.ok && job.is_call && reply.value.is_object()) {
        auto meta = reply.value.find("_meta");
        if (meta != reply.value.end() && meta->is_object() && meta->contains(kAuditPendingKey)) {
            json pending = (*meta)[kAuditPendingKey];
            meta->erase(kAuditPendingKey);
            answered = confirm_then_answer(job, reply, body, pending, begun);
        }
    }
    if (!answered) finish(std::move(reply));
    // Whatever the reply did with the body (a cancelled request's is not read), the connection
    // must reach the end of the query before its next use.
    std::string ignored;
    while (body.next(ignored)) {
    }
    if (!body.failed.empty()) {
        logger_.log(LogLevel::Error, "reading a call's result failed: " + body.failed);
        if (PQstatus(conn) != CONNECTION_OK) connection.close();
    }
}

void Database::settle(Job &job) {
    std::lock_guard<std::mutex> lock(mutex_);
    job.cancel_handle = nullptr;
    active_.erase(job.key);
    last_success_ = Clock::now();
}

bool Database::confirm_then_answer(Job &job, BackendReply &reply, BodyStream &body,
                                   const json &pending, Clock::time_point begun) {
    if (confirmer_ == nullptr || !pending.is_array() || pending.size() != 2 ||
        !pending[0].is_number_integer() || !pending[1].is_number_integer()) {
        reply = failure(error_code::kInternalError, "Database returned an invalid audit token");
        return false;
    }
    int slot = pending[0].get<int>();
    int64_t seq = pending[1].get<int64_t>();
    // The result, held whole when it is small enough.
    auto held = std::make_shared<std::string>();
    bool whole = true;
    if (reply.body != nullptr) {
        std::string chunk;
        while (body.next(chunk)) {
            *held += chunk;
            if (held->size() > kHeldResultBytes) {
                whole = false;
                break;
            }
        }
        if (!body.failed.empty()) {
            reply = failure(error_code::kDatabaseUnavailable,
                            "Database connection lost while reading the result: " + body.failed);
            return false;
        }
    }
    auto withheld = [](const std::string &error) {
        return failure(error_code::kInternalError,
                       "The call ran, but its audit record was not confirmed durable (" + error +
                           "); its result is withheld. Check the pg_mcp audit writer.");
    };
    bool streamed = reply.body != nullptr;
    if (whole) {
        // The connection is free for the next call; the answer leaves once the record is durable.
        settle(job);
        auto answer = std::make_shared<BackendReply>(std::move(reply));
        answer->body = nullptr;
        ReplyFn deliver_to = job.reply;
        bool is_call = job.is_call;
        confirmer_->await(slot, seq,
                          [this, deliver_to, answer, held, streamed, is_call, begun, withheld](
                              bool ok, int64_t id, const std::string &error) {
                              BackendReply out = ok ? std::move(*answer) : withheld(error);
                              BodyStream stream;
                              bool given = false;
                              stream.next = [&](std::string &chunk) {
                                  if (given) return false;
                                  given = true;
                                  chunk = std::move(*held);
                                  return true;
                              };
                              if (ok && id > 0) out.value["_meta"]["pg-mcp/audit_id"] = id;
                              if (ok && streamed) out.body = &stream;
                              if (is_call) record_call(out, Clock::now() - begun);
                              deliver(deliver_to, std::move(out), logger_);
                          });
        return true;
    }
    // Too large to hold: the connection stays with the call until the record is confirmed, then
    // the held part and the rest are streamed as they come.
    std::promise<std::pair<bool, std::pair<int64_t, std::string>>> confirmed;
    confirmer_->await(slot, seq, [&confirmed](bool ok, int64_t id, const std::string &error) {
        confirmed.set_value({ok, {id, error}});
    });
    auto [ok, detail] = confirmed.get_future().get();
    if (!ok) {
        reply = withheld(detail.second);
        return false;
    }
    if (detail.first > 0) reply.value["_meta"]["pg-mcp/audit_id"] = detail.first;
    BodyStream rest;
    bool first = true;
    rest.next = [&](std::string &chunk) {
        if (first) {
            first = false;
            chunk = std::move(*held);
            return true;
        }
        bool more = body.next(chunk);
        rest.failed = body.failed;
        return more;
    };
    reply.body = &rest;
    settle(job);
    record_call(reply, Clock::now() - begun);
    deliver(job.reply, std::move(reply), logger_);
    return true;
}

Listener::Listener(std::string dsn, const Logger &logger, std::function<void()> on_change)
    : dsn_(std::move(dsn)), logger_(logger), on_change_(std::move(on_change)) {
    thread_ = std::thread([this] { loop(); });
}

Listener::~Listener() {
    stop();
}

void Listener::stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
}

namespace {

// The extension's catalog version (mcp.catalog_version()); empty when it cannot be read.
std::string catalog_version(PGconn *conn) {
    PGresult *result = PQexec(conn, "SELECT mcp.catalog_version()");
    std::string version;
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1)
        version = PQgetvalue(result, 0, 0);
    PQclear(result);
    return version;
}

}  // namespace

// A notification is only a hint (any role may NOTIFY the channel): the catalog changed when its
// version moved. A burst of notifications is read at once and checked once.
void Listener::loop() {
    std::chrono::milliseconds backoff{0};
    std::string seen_version;
    while (!stopping_) {
        PGconn *conn = open_connection(dsn_);
        PGresult *result = nullptr;
        if (conn != nullptr && PQstatus(conn) == CONNECTION_OK) {
            result = PQexec(conn, "LISTEN pg_mcp_tools_changed");
        }
        if (result == nullptr || PQresultStatus(result) != PGRES_COMMAND_OK) {
            logger_.log(LogLevel::Warning,
                        "tool change listener cannot connect: " + connection_error(conn));
            PQclear(result);
            PQfinish(conn);
            backoff = backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
            for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stopping_;
                 waited += std::chrono::milliseconds(50))
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        PQclear(result);
        backoff = std::chrono::milliseconds(0);
        std::string version = catalog_version(conn);
        if (!seen_version.empty()) {
            logger_.log(LogLevel::Notice, "tool change listener reconnected");
            if (version != seen_version) on_change_();  // changed while disconnected
        }
        seen_version = version;
        while (!stopping_) {
            pollfd fd{PQsocket(conn), POLLIN, 0};
            int ready = poll(&fd, 1, 200);
            if (ready < 0 && errno != EINTR) break;
            if (ready > 0 && PQconsumeInput(conn) == 0) break;
            bool notified = false;
            while (PGnotify *notify = PQnotifies(conn)) {
                PQfreemem(notify);
                notified = true;
            }
            if (notified) {
                std::string now = catalog_version(conn);
                if (!now.empty() && now != seen_version) {
                    logger_.log(LogLevel::Info, "tool catalog changed (version " + now + ")");
                    seen_version = now;
                    on_change_();
                }
            }
            if (PQstatus(conn) != CONNECTION_OK) break;
        }
        PQfinish(conn);
    }
}

}  // namespace pg_mcp::bridge
