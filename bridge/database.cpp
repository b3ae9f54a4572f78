// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "database.hpp"

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

#include "json_rpc.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;

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
// A call's trace context goes with it: pg_mcp.traceparent (its audit row, the tool's SQL) and
// application_name (pg_stat_activity, the server log's %a), both for its transaction only.
#define PG_MCP_TRACE(FIRST, N1, N2)                     \
    "WITH principal AS MATERIALIZED (SELECT " FIRST     \
    " pg_catalog.set_config('pg_mcp.traceparent', $" N1 \
    ", true),"                                          \
    " pg_catalog.set_config('application_name', $" N2 ", true))"
const Statement kCall = {
    "pg_mcp_call",
    PG_MCP_TRACE("", "6",
                 "7") " SELECT mcp.call_tool_stream($1, $2::jsonb, $3, $4, $5) FROM principal"};
const Statement kCallAs = {
    "pg_mcp_call_as",
    PG_MCP_TRACE("mcp.assume_principal($6::bytea),", "7",
                 "8") " SELECT mcp.call_tool_stream($1, $2::jsonb, $3, $4, $5) FROM principal"};
// The same, returning once the audit record is queued (AuditConfirmer confirms it).
const Statement kCallDeferred = {
    "pg_mcp_call_deferred",
    PG_MCP_TRACE("", "6",
                 "7") " SELECT mcp.call_tool_deferred($1, $2::jsonb, $3, $4, $5) FROM principal"};
const Statement kCallDeferredAs = {
    "pg_mcp_call_deferred_as",
    PG_MCP_TRACE("mcp.assume_principal($6::bytea),", "7",
                 "8") " SELECT mcp.call_tool_deferred($1, $2::jsonb, $3, $4, $5) FROM principal"};
#undef PG_MCP_TRACE
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
const Statement kIdentityProviders = {
    "pg_mcp_identity_providers",
    "SELECT coalesce(pg_catalog.json_agg(p ORDER BY p.issuer), '[]')::text"
    " FROM mcp.identity_providers_for($1) p"};
const Statement kPing = {"pg_mcp_ping", "SELECT 1"};

// One row per operation: its statements (without and with a principal's token; a call's also
// deferred), and the parameters it takes after the agent context ($1..$3) — for a call, its
// tool and arguments come first ($1, $2) and the context after.
struct OperationRow {
    Operation operation;
    const Statement *statements[2];
    const Statement *deferred[2];
    bool context;          // agent_name, client_info, request_id
    bool takes_name;       // the tool, uri or prompt name
    bool takes_arguments;  // JSON arguments
};
const OperationRow kOperations[] = {
    {Operation::ListTools, {&kList, &kListAs}, {&kList, &kListAs}, true, false, false},
    {Operation::CallTool, {&kCall, &kCallAs}, {&kCallDeferred, &kCallDeferredAs}, true, true, true},
    {Operation::ListResources,
     {&kListResources, &kListResourcesAs},
     {&kListResources, &kListResourcesAs},
     true,
     false,
     false},
    {Operation::ReadResource,
     {&kReadResource, &kReadResourceAs},
     {&kReadResource, &kReadResourceAs},
     true,
     true,
     false},
    {Operation::ListPrompts,
     {&kListPrompts, &kListPromptsAs},
     {&kListPrompts, &kListPromptsAs},
     true,
     false,
     false},
    {Operation::GetPrompt,
     {&kGetPrompt, &kGetPromptAs},
     {&kGetPrompt, &kGetPromptAs},
     true,
     true,
     true},
    {Operation::Authenticate,
     {&kAuthenticate, &kAuthenticate},
     {&kAuthenticate, &kAuthenticate},
     false,
     false,
     false},
    {Operation::IdentityProviders,
     {&kIdentityProviders, &kIdentityProviders},
     {&kIdentityProviders, &kIdentityProviders},
     false,
     true,
     false},
};

// The statement of an OAuth identity: the principal's form with mcp.assume_identity($n::jsonb)
// in place of mcp.assume_principal($n::bytea), made once for each.
const Statement &identity_form(const Statement &as_principal) {
    struct Derived {
        std::string name, sql;
        Statement statement;
    };
    static const std::map<const Statement *, std::unique_ptr<Derived>> forms = [] {
        std::map<const Statement *, std::unique_ptr<Derived>> made;
        for (const OperationRow &row : kOperations)
            for (const Statement *statement : {row.statements[1], row.deferred[1]}) {
                if (made.count(statement)) continue;
                auto derived = std::make_unique<Derived>();
                derived->name = std::string(statement->name) + "_oauth";
                derived->sql = statement->sql;
                size_t at = derived->sql.find("mcp.assume_principal(");
                if (at != std::string::npos) {
                    derived->sql.replace(at, std::strlen("mcp.assume_principal("),
                                         "mcp.assume_identity(");
                    size_t cast = derived->sql.find("::bytea)", at);
                    if (cast != std::string::npos) derived->sql.replace(cast, 8, "::jsonb)");
                }
                derived->statement = {derived->name.c_str(), derived->sql.c_str()};
                made.emplace(statement, std::move(derived));
            }
        return made;
    }();
    auto found = forms.find(&as_principal);
    return found == forms.end() ? as_principal : found->second->statement;
}

// The wait for a call's audit record to be durable (group commit at the bridge), as a span.
void trace_durability(const TraceContext &trace, std::chrono::system_clock::time_point from,
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

// What a statement does, for its span (OpenTelemetry db.query.summary: "SELECT <function>").
const char *summary_of(Operation operation, bool deferred) {
    switch (operation) {
        case Operation::ListTools:
            return "mcp.list_tools";
        case Operation::CallTool:
            return deferred ? "mcp.call_tool_deferred" : "mcp.call_tool_stream";
        case Operation::ListResources:
            return "mcp.list_resources";
        case Operation::ReadResource:
            return "mcp.read_resource";
        case Operation::ListPrompts:
            return "mcp.list_prompts";
        case Operation::GetPrompt:
            return "mcp.get_prompt";
        case Operation::Authenticate:
            return "mcp.assume_principal";
        case Operation::IdentityProviders:
            return "mcp.identity_providers_for";
    }
    return "mcp";
}

const OperationRow &operation_row(Operation operation) {
    for (const OperationRow &row : kOperations)
        if (row.operation == operation) return row;
    return kOperations[0];
}

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

namespace {

constexpr int kStartupAnswerMs = 10000;

// Runs one query and waits at most `timeout_ms` for its whole answer; `answered` says whether it
// came (else the result is null and the connection is to be closed).
PGresult *exec_within(PGconn *conn, const char *sql, int timeout_ms, bool &answered) {
    answered = false;
    if (PQsendQuery(conn, sql) == 0) {
        answered = true;  // the failure is the answer (PQerrorMessage)
        return nullptr;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (PQisBusy(conn)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) return nullptr;
        pollfd fd{PQsocket(conn), POLLIN, 0};
        if (poll(&fd, 1, static_cast<int>(left)) < 0 && errno != EINTR) return nullptr;
        if (PQconsumeInput(conn) == 0) break;
    }
    answered = true;
    PGresult *first = PQgetResult(conn);
    while (PGresult *more = PQgetResult(conn)) PQclear(more);
    return first;
}

// Whether a failed connection or start-up query means the server cannot be reached now (down,
// starting, a pooler with no server behind it), rather than a refusal to fix (password,
// pg_hba.conf, a missing database or role), which must stop the start.
bool looks_unreachable(const std::string &message) {
    static const char *const kServerStates[] = {"the database system is starting up",
                                                "the database system is shutting down",
                                                "the database system is in recovery",
                                                "the database system is not yet accepting",
                                                "pgbouncer cannot connect to server",
                                                "server login has been failing",
                                                "query_wait_timeout",
                                                "server conn crashed"};
    for (const char *state : kServerStates)
        if (message.find(state) != std::string::npos) return true;
    return message.find("FATAL:") == std::string::npos &&
           message.find("ERROR:") == std::string::npos;
}

}  // namespace

StartupCheck check_database(const std::string &dsn) {
    StartupCheck check;
    PGconn *conn = open_connection(dsn);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        check.message = "cannot connect to PostgreSQL: " + connection_error(conn);
        check.unreachable = looks_unreachable(check.message);
        PQfinish(conn);
        return check;
    }
    std::string database = PQdb(conn);
    std::string user = PQuser(conn);
    // Bounded: behind a pooler (PgBouncer) a server that is down shows as a query that waits.
    bool answered = false;
    PGresult *result = exec_within(conn,
                                   "SELECT e.extversion, n.nspname FROM pg_catalog.pg_extension e"
                                   " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
                                   " WHERE e.extname = 'pg_mcp'",
                                   kStartupAnswerMs, answered);
    if (!answered) {
        check.message = "cannot reach PostgreSQL: no answer within " +
                        std::to_string(kStartupAnswerMs / 1000) +
                        " s (a pooler in front of a server that is down?)";
        check.unreachable = true;
    } else if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        check.message = "cannot read pg_extension: " + connection_error(conn);
        check.unreachable = looks_unreachable(check.message);
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

namespace {

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

}  // namespace

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
        if (stopped.wait_for(std::chrono::seconds(15)) != std::future_status::ready)
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
        done.wait_for(std::chrono::seconds(5));
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
        // Deferred confirmation frees the connection sooner but costs a second round trip (the
        // confirmer's): worth it only while other requests wait for a connection.
        defer = run.is_call && confirmer_ != nullptr && (defer_always_ || !queue_.empty());
        const Statement *const *pair = defer ? row.deferred : row.statements;
        slot.statement = pair[as_principal ? 1 : 0];
        if (!run.identity.oauth_identity.empty()) slot.statement = &identity_form(*slot.statement);
        if (run.identity.trace.valid()) {
            // The wait for this connection, and the statement from now on (ended by settle()).
            auto now = std::chrono::system_clock::now();
            Span wait;
            wait.name = "pg_mcp pool wait";
            wait.context = run.identity.trace;
            wait.context.span_id = new_span_id();
            wait.parent_span_id = run.identity.trace.span_id;
            wait.start = run.queued_wall;
            wait.end = now;
            wait.set("pg_mcp.pool.connections_in_use", static_cast<int64_t>(in_use_));
            record_span(std::move(wait));
            run.statement_span = new_span_id();
            run.sent = now;
            run.statement_summary = std::string("SELECT ") + summary_of(run.operation, defer);
            run.database = PQdb(slot.conn) ? PQdb(slot.conn) : "";
            run.host = PQhost(slot.conn) ? PQhost(slot.conn) : "";
            run.port = PQport(slot.conn) ? PQport(slot.conn) : "";
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
    // A call's trace context: its statement span in the trace (pg_mcp.traceparent), and its
    // ids in application_name ("pg_mcp_bridge <trace id>-<span id>", 63 bytes: the most
    // PostgreSQL keeps), so that pg_stat_activity and the server log (%a) name the trace.
    std::string traceparent, application_name = "pg_mcp_bridge";
    if (!job.statement_span.empty()) {
        TraceContext statement = job.identity.trace;
        statement.span_id = job.statement_span;
        traceparent = statement.traceparent();
        application_name = "pg_mcp_bridge " + statement.trace_id + "-" + statement.span_id;
    }
    const char *params[8] = {};
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
        if (job.is_call) {
            params[nparams++] = traceparent.c_str();
            params[nparams++] = application_name.c_str();
        }
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

void Database::take(Slot &slot, PGresult *result) {
    ExecStatusType status = PQresultStatus(result);
    if (slot.preparing) {
        if (status != PGRES_COMMAND_OK && slot.prepare_error.empty())
            slot.prepare_error = trim(PQresultErrorMessage(result));
    } else if (slot.discard) {
        // dropped
    } else if (status == PGRES_SINGLE_TUPLE) {
        if (!slot.got_value) {
            if (!PQgetisnull(result, 0, 0)) {
                // A call's head: the rest of its rows are the body's pieces.
                slot.text.assign(PQgetvalue(result, 0, 0),
                                 static_cast<size_t>(PQgetlength(result, 0, 0)));
                slot.got_value = true;
            }
        } else {
            std::string piece(PQgetvalue(result, 0, 0),
                              static_cast<size_t>(PQgetlength(result, 0, 0)));
            PQclear(result);
            add_chunk(slot, std::move(piece));
            return;
        }
    } else if (status == PGRES_TUPLES_OK) {
        if (!slot.got_value && PQntuples(result) == 1 && !PQgetisnull(result, 0, 0)) {
            slot.text.assign(PQgetvalue(result, 0, 0),
                             static_cast<size_t>(PQgetlength(result, 0, 0)));
            slot.got_value = true;
        }
    } else if (status == PGRES_FATAL_ERROR) {
        if (!slot.got_value) {
            const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
            slot.sqlstate = state ? state : "";
            slot.error_message = trim(PQresultErrorMessage(result));
        } else if (slot.body_failed.empty()) {
            slot.body_failed = trim(PQresultErrorMessage(result));
        }
    }
    PQclear(result);
}

// A result bigger than this is not held: its consumer reads it as it comes.
constexpr size_t kInlineBodyBytes = 256 * 1024;

void Database::add_chunk(Slot &slot, std::string piece) {
    if (slot.stream) {
        if (!slot.stream->push(std::move(piece))) slot.paused = true;
        return;
    }
    slot.chunk_bytes += piece.size();
    slot.chunks.push_back(std::move(piece));
    if (slot.chunk_bytes <= kInlineBodyBytes || slot.answered) return;
    // Too large to hold: answered now, its body streamed as it comes.
    json pending;
    BackendReply reply = head_reply(slot, pending);
    if (!reply.ok) {
        slot.discard = true;
        answer(slot, std::move(reply));
        return;
    }
    if (!pending.is_null())
        confirm_then_stream(slot, std::move(reply), pending);
    else
        stream_body(slot, std::move(reply));
}

BackendReply Database::head_reply(Slot &slot, json &pending) {
    Job &job = *slot.job;
    BackendReply reply;
    try {
        reply.value = job.is_authenticate ? json(slot.text) : json::parse(slot.text);
        reply.ok = true;
    } catch (const json::parse_error &error) {
        return failure(error_code::kInternalError,
                       std::string("Database returned invalid JSON: ") + error.what());
    }
    if (job.is_call && reply.value.is_object()) {
        auto meta = reply.value.find("_meta");
        if (meta != reply.value.end() && meta->is_object()) {
            // Served by a hot standby: the audit record is not for the agent.
            if (meta->contains(kStandbyAuditKey)) {
                reply.standby_audit = (*meta)[kStandbyAuditKey].dump();
                meta->erase(kStandbyAuditKey);
            }
            if (meta->contains(kAuditPendingKey)) {
                pending = (*meta)[kAuditPendingKey];
                meta->erase(kAuditPendingKey);
                if (confirmer_ == nullptr || !pending.is_array() || pending.size() != 2 ||
                    !pending[0].is_number_integer() || !pending[1].is_number_integer())
                    return failure(error_code::kInternalError,
                                   "Database returned an invalid audit token");
            }
        }
    }
    return reply;
}

void Database::settle(Job &job, bool ok) {
    if (!job.statement_span.empty()) {
        Span statement;
        statement.name = job.statement_summary;
        statement.kind = Span::Kind::Client;
        statement.context = job.identity.trace;
        statement.context.span_id = job.statement_span;
        statement.parent_span_id = job.identity.trace.span_id;
        statement.start = job.sent;
        statement.end = std::chrono::system_clock::now();
        statement.set("db.system.name", "postgresql");
        statement.set("db.operation.name", "SELECT");
        statement.set("db.query.summary", job.statement_summary);
        if (!job.database.empty()) statement.set("db.namespace", job.database);
        if (!job.host.empty()) statement.set("server.address", job.host);
        if (!job.port.empty()) statement.set("server.port", std::stoll("0" + job.port));
        statement.error = !ok;
        if (!ok) statement.status_message = "the statement failed";
        record_span(std::move(statement));
        job.statement_span.clear();
    }
    job.running_on = nullptr;
    active_.erase(job.key);
    if (ok) last_success_ = Clock::now().time_since_epoch().count();
}

// The reply, with the held body when there is one.
void Database::answer(Slot &slot, BackendReply reply) {
    Job &job = *slot.job;
    slot.answered = true;
    if (!reply.ok && reply.error_code == error_code::kDatabaseUnavailable && !reply.busy)
        last_unavailable_ = Clock::now().time_since_epoch().count();
    settle(job, reply.ok);
    if (job.is_call) record_call(reply, Clock::now() - slot.begun);
    HeldBody held;
    if (reply.ok && job.is_call && slot.got_value && !slot.chunks.empty()) {
        held.pieces = std::move(slot.chunks);
        reply.body = &held.stream;
    } else if (reply.ok && job.is_call && slot.got_value) {
        reply.body = &held.stream;  // an empty body
    }
    deliver(job.reply, std::move(reply), logger_);
}

void Database::stream_body(Slot &slot, BackendReply reply) {
    auto chunks = std::make_shared<Chunks>();
    for (auto &piece : slot.chunks) chunks->push(std::move(piece));
    slot.chunks.clear();
    uint64_t generation = slot.generation;
    std::shared_ptr<Job> owner = slot.job;
    chunks->resume = [this, &slot, generation, owner] {
        asio::post(loop_, [this, &slot, generation, owner] {
            if (generation != slot.generation || slot.job != owner || !slot.paused) return;
            slot.paused = false;
            process(slot);
        });
    };
    {
        std::lock_guard<std::mutex> lock(chunks->mutex);
        chunks->paused = false;
    }
    slot.stream = chunks;
    slot.answered = true;
    Job &job = *slot.job;
    settle(job, true);
    if (job.is_call) record_call(reply, Clock::now() - slot.begun);
    held_++;
    // The reply is given on the loop; whoever reads the body does so on a consumer thread
    // (off_loop), and whatever it read, the rest is drained there (the connection reaches the
    // end of its query).
    struct Streamed {
        BodyStream body;
        bool taken = false;
    };
    auto streamed = std::make_shared<Streamed>();
    std::weak_ptr<Streamed> weak = streamed;
    auto consume = [this, chunks](std::shared_ptr<Streamed> holder, std::function<void()> read,
                                  std::function<void()> then) {
        asio::post(helpers_->consumers, [this, chunks, holder, read, then] {
            if (read) read();
            std::string ignored;
            while (chunks->next(ignored)) {
            }
            asio::post(loop_, [this, holder, then] {
                if (then) then();
                held_--;
                check_stopped();
            });
        });
    };
    streamed->body.next = [body = &streamed->body, chunks](std::string &piece) {
        bool more = chunks->next(piece);
        if (!more) body->failed = chunks->failed;
        return more;
    };
    streamed->body.off_loop = [weak, consume](std::function<void()> read,
                                              std::function<void()> then) {
        std::shared_ptr<Streamed> holder = weak.lock();
        if (holder == nullptr || holder->taken) return;
        holder->taken = true;
        consume(holder, std::move(read), std::move(then));
    };
    reply.body = &streamed->body;
    ReplyFn to = job.reply;
    deliver(to, std::move(reply), logger_);
    if (!streamed->taken) consume(streamed, nullptr, nullptr);
}

// A deferred call whose body is small enough to hold: the connection is free at once, the answer
// leaves when its audit record is confirmed durable.
void Database::hold_until_confirmed(Slot &slot, BackendReply reply, const json &pending) {
    Job &job = *slot.job;
    settle(job, true);
    auto held = std::make_shared<std::deque<std::string>>(std::move(slot.chunks));
    auto answer_later = std::make_shared<BackendReply>(std::move(reply));
    bool streamed = slot.got_value;
    ReplyFn to = job.reply;
    bool is_call = job.is_call;
    auto begun = slot.begun;
    slot.answered = true;
    held_++;
    TraceContext trace = job.identity.trace;
    auto waited_from = std::chrono::system_clock::now();
    confirmer_->await(
        pending[0].get<int>(), pending[1].get<int64_t>(),
        [this, to, held, answer_later, streamed, is_call, begun, trace, waited_from](
            bool ok, int64_t id, const std::string &error) {
            trace_durability(trace, waited_from, ok, id);
            asio::post(loop_, [this, to, held, answer_later, streamed, is_call, begun, ok, id,
                               error] {
                BackendReply out =
                    ok ? std::move(*answer_later)
                       : failure(error_code::kInternalError,
                                 "The call ran, but its audit record was not confirmed durable (" +
                                     error +
                                     "); its result is withheld. Check the pg_mcp audit writer.");
                HeldBody body;
                if (ok && id > 0) out.value["_meta"]["pg-mcp/audit_id"] = id;
                if (ok && streamed) {
                    body.pieces = std::move(*held);
                    out.body = &body.stream;
                }
                if (is_call) record_call(out, Clock::now() - begun);
                deliver(to, std::move(out), logger_);
                held_--;
                check_stopped();
            });
        });
}

// A deferred call too large to hold: the connection stays with it (not reading) until its record
// is confirmed, then the body is streamed as it comes.
void Database::confirm_then_stream(Slot &slot, BackendReply reply, const json &pending) {
    slot.paused = true;
    slot.answered = true;  // taken care of
    uint64_t generation = slot.generation;
    std::shared_ptr<Job> owner = slot.job;
    auto waiting = std::make_shared<BackendReply>(std::move(reply));
    held_++;
    TraceContext trace = owner->identity.trace;
    auto waited_from = std::chrono::system_clock::now();
    confirmer_->await(
        pending[0].get<int>(), pending[1].get<int64_t>(),
        [this, &slot, generation, owner, waiting, trace, waited_from](bool ok, int64_t id,
                                                                      const std::string &error) {
            trace_durability(trace, waited_from, ok, id);
            asio::post(loop_, [this, &slot, generation, owner, waiting, ok, id, error] {
                held_--;
                if (generation != slot.generation || slot.job != owner) {
                    // The connection broke meanwhile: the answer is an error.
                    settle(*owner, false);
                    deliver(owner->reply,
                            failure(error_code::kDatabaseUnavailable,
                                    "Database connection lost while reading the result"),
                            logger_);
                    check_stopped();
                    return;
                }
                slot.paused = false;
                if (!ok) {
                    slot.answered = false;
                    slot.discard = true;
                    slot.chunks.clear();
                    answer(slot, failure(error_code::kInternalError,
                                         "The call ran, but its audit record was not confirmed "
                                         "durable (" +
                                             error +
                                             "); its result is withheld. Check the pg_mcp audit "
                                             "writer."));
                } else {
                    if (id > 0) waiting->value["_meta"]["pg-mcp/audit_id"] = id;
                    stream_body(slot, std::move(*waiting));
                }
                process(slot);
            });
        });
}

void Database::finished(Slot &slot) {
    Job &job = *slot.job;
    if (slot.preparing) {
        slot.preparing = false;
        if (!slot.prepare_error.empty()) {
            logger_.log(LogLevel::Error,
                        "preparing the bridge's statement failed: " + slot.prepare_error);
            answer(slot,
                   failure(error_code::kInternalError,
                           "Database error: " + slot.prepare_error +
                               " (is the pg_mcp extension in the version this bridge needs?)"));
            release(slot);
            return;
        }
        slot.prepared.insert(slot.statement->name);
        send_query(slot);
        return;
    }
    if (slot.stream) {
        if (!slot.body_failed.empty())
            logger_.log(LogLevel::Error, "reading a call's result failed: " + slot.body_failed);
        slot.stream->finish(slot.body_failed);
        release(slot);
        return;
    }
    if (slot.answered) {
        release(slot);
        return;
    }
    if (job.is_ping) {
        BackendReply reply;
        reply.ok = slot.error_message.empty();
        if (!reply.ok) reply = failure(error_code::kDatabaseUnavailable, slot.error_message);
        answer(slot, std::move(reply));
        release(slot);
        return;
    }
    if (!slot.error_message.empty()) {
        const std::string &sqlstate = slot.sqlstate;
        BackendReply reply;
        if (sqlstate == "28000") {
            reply = failure(error_code::kUnauthorized,
                            "Unauthorized: the bearer token is unknown, expired or revoked");
            reply.sqlstate = sqlstate;
            // An OAuth identity that no mapping names: the reason is for the operator's log.
            if (!job.identity.oauth_identity.empty())
                logger_.log(LogLevel::Warning, "refused an OAuth identity: " + slot.error_message);
        } else if (sqlstate == "57014") {
            reply = failure(error_code::kInternalError, "Request cancelled: " + slot.error_message);
        } else {
            // MCP02: a writing tool sent to a hot standby; the caller retries on the primary.
            if (sqlstate != kNeedsPrimary && sqlstate != "42704" && sqlstate != "22023")
                logger_.log(LogLevel::Error,
                            "database error (" + sqlstate + "): " + slot.error_message);
            reply = failure(error_code::kInternalError,
                            "Database error (SQLSTATE " + sqlstate + "): " + slot.error_message);
            reply.sqlstate = sqlstate;
        }
        answer(slot, std::move(reply));
        release(slot);
        return;
    }
    if (!slot.got_value) {
        answer(slot, failure(error_code::kInternalError, "Database returned no result"));
        release(slot);
        return;
    }
    if (!slot.body_failed.empty()) {
        logger_.log(LogLevel::Error, "reading a call's result failed: " + slot.body_failed);
        answer(slot,
               failure(error_code::kDatabaseUnavailable,
                       "Database connection lost while reading the result: " + slot.body_failed));
        release(slot);
        return;
    }
    json pending;
    BackendReply reply = head_reply(slot, pending);
    if (reply.ok && !pending.is_null()) {
        hold_until_confirmed(slot, std::move(reply), pending);
        release(slot);
        return;
    }
    answer(slot, std::move(reply));
    release(slot);
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
