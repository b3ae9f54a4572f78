// The libpq layer: connections with the bridge's settings, notices as log lines, the start-up
// check of the extension.
#include "pg_connection.hpp"

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstring>

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

std::string trim(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

std::string connection_error(PGconn *conn) {
    return conn == nullptr ? std::string("out of memory") : trim(PQerrorMessage(conn));
}

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

}  // namespace pg_mcp::bridge
