// pg_mcp_bridge: serves the tools of a PostgreSQL database with the pg_mcp extension to MCP
// clients over stdio. All policy is in the database; this process speaks the protocol.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include <libpq-fe.h>

#include "auth.hpp"
#include "database.hpp"
#include "http_transport.hpp"
#include "log.hpp"
#include "mcp_server.hpp"
#include "replica.hpp"
#include "stdio_transport.hpp"

using namespace pg_mcp::bridge;

namespace {

const char *const kVersion = PG_MCP_VERSION;
int wake_pipe[2] = {-1, -1};

void on_signal(int) {
    char byte = 1;
    ssize_t ignored = ::write(wake_pipe[1], &byte, 1);
    (void)ignored;
}

struct Options {
    std::string dsn;
    std::string agent;
    size_t pool_size = 2;
    size_t queue_timeout_ms = 30000;
    size_t max_message_bytes = 1 << 20;
    size_t page_size = 100;
    LogLevel log_level = LogLevel::Info;
    bool log_json = false;
    bool check = false;
    bool http = false;  // --http: Streamable HTTP instead of stdio
    bool prepare_statements = true;
    std::string notify_dsn;   // --notify-dsn: LISTEN here (default: dsn)
    ReplicaOptions replicas;  // --replica ...
    std::string audit_spool;  // --audit-spool
    std::string token_env;    // --token-env: stdio runs as the principal of this variable's token
    HttpOptions http_options;
};

void usage(FILE *out) {
    std::fprintf(
        out,
        "Usage: pg_mcp_bridge [OPTIONS] [CONNINFO]\n"
        "\n"
        "Serves the tools of a PostgreSQL database with the pg_mcp extension to MCP clients,\n"
        "over stdio (one JSON-RPC message per line) or Streamable HTTP (--http). Protocol\n"
        "revisions 2026-07-28 and 2025-11-25 (also 2025-06-18 and 2025-03-26).\n"
        "\n"
        "CONNINFO is a libpq connection string or URI (postgresql://user@host/db). Without it,\n"
        "libpq's environment applies exactly as for psql: PGHOST, PGDATABASE, PGUSER, PGSERVICE\n"
        "and service files, ~/.pgpass, PGSSLMODE and certificates.\n"
        "\n"
        "Options:\n"
        "  --dsn CONNINFO            connection string (same as the positional argument)\n"
        "  --agent NAME              agent name recorded with every call in mcp.audit_log\n"
        "  --pool-size N             database connections for concurrent calls (default 2)\n"
        "  --queue-timeout MS        longest wait for a free connection before a call is\n"
        "                            answered \"busy, retry\" (default 30000; 0: no limit)\n"
        "  --max-message-bytes N     longest accepted message line (default 1048576)\n"
        "  --page-size N             tools per tools/list page (default 100)\n"
        "  --log-level LEVEL         stderr log level: debug, info, notice, warning, error\n"
        "                            (default info)\n"
        "  --log-format FORMAT       text (default) or json: one JSON object per line, with\n"
        "                            the request id when a message is about a request\n"
        "  --http [ADDRESS:]PORT     serve Streamable HTTP at http://ADDRESS:PORT/mcp instead\n"
        "                            of stdio (ADDRESS default 127.0.0.1; also /healthz and\n"
        "                            /readyz); port 0 picks a free one (logged)\n"
        "  --max-connections N       HTTP: open client connections beyond N get 503 (512)\n"
        "  --max-sessions N          HTTP: initialize beyond N open sessions gets 503 (4096)\n"
        "  --allowed-origin ORIGIN   an Origin browsers may send (repeatable; default none:\n"
        "                            requests with any Origin header get 403)\n"
        "  --allowed-host NAME       a Host name accepted besides loopback names and the bound\n"
        "                            address (repeatable; against DNS rebinding)\n"
        "  --auth MODE               HTTP: none (default; every session runs as the login\n"
        "                            role) or token: each request needs \"Authorization: Bearer\n"
        "                            TOKEN\" (mcp.create_token) and runs as its principal\n"
        "  --token-env VAR           stdio: run as the principal of the bearer token in\n"
        "                            environment variable VAR (checked at start)\n"
        "  --no-prepared-statements  send statements unnamed, for PgBouncer in transaction\n"
        "                            mode without max_prepared_statements (before 1.21)\n"
        "  --notify-dsn CONNINFO     where to LISTEN for tool catalog changes (default: the\n"
        "                            main connection string; use a direct connection when the\n"
        "                            main one goes through a transaction-pooling proxy)\n"
        "  --replica CONNINFO        a hot standby for read-only work (repeatable): tools/list,\n"
        "                            token checks and read-only tools run there; writing\n"
        "                            tools on the primary\n"
        "  --replica-max-lag MS      a standby further behind is not used (default 30000)\n"
        "  --replica-fallback MODE   primary (default): without a usable standby, read-only\n"
        "                            work runs on the primary; fail: it is refused\n"
        "  --audit-spool FILE        with --replica: where audit records of standby-served\n"
        "                            calls wait (on disk) until the primary has them\n"
        "  --check                   connect, verify the extension, list the tools this role\n"
        "                            can call, and exit 0 (ready) or 1 (not ready)\n"
        "  --version                 print the version and exit\n"
        "  --help                    print this help and exit\n");
}

bool parse_size(const char *text, size_t minimum, size_t &out) {
    char *end = nullptr;
    errno = 0;
    unsigned long long value = std::strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < minimum || text[0] == '-')
        return false;
    out = static_cast<size_t>(value);
    return true;
}

// Returns 0 on success, 2 on a usage error (after printing it), -1 to exit 0 (help/version).
int parse_options(int argc, char **argv, Options &options) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&](const char *name) -> const char * {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "pg_mcp_bridge: %s needs a value\n", name);
                return nullptr;
            }
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return -1;
        } else if (arg == "--version") {
            std::printf("pg_mcp_bridge %s (pg_mcp extension %s)\n", kVersion, kExtensionVersion);
            return -1;
        } else if (arg == "--check") {
            options.check = true;
        } else if (arg == "--dsn") {
            const char *v = value("--dsn");
            if (!v) return 2;
            options.dsn = v;
        } else if (arg == "--agent") {
            const char *v = value("--agent");
            if (!v) return 2;
            options.agent = v;
        } else if (arg == "--pool-size" || arg == "--max-message-bytes" || arg == "--page-size") {
            const char *v = value(arg.c_str());
            if (!v) return 2;
            size_t &target = arg == "--pool-size"   ? options.pool_size
                             : arg == "--page-size" ? options.page_size
                                                    : options.max_message_bytes;
            size_t minimum = arg == "--max-message-bytes" ? 1024 : 1;
            if (!parse_size(v, minimum, target) || (arg == "--pool-size" && target > 100)) {
                std::fprintf(stderr,
                             "pg_mcp_bridge: invalid %s \"%s\" (a whole number, at least %zu%s)\n",
                             arg.c_str(), v, minimum, arg == "--pool-size" ? ", at most 100" : "");
                return 2;
            }
        } else if (arg == "--queue-timeout") {
            const char *v = value("--queue-timeout");
            if (!v) return 2;
            if (!parse_size(v, 0, options.queue_timeout_ms)) {
                std::fprintf(stderr,
                             "pg_mcp_bridge: invalid --queue-timeout \"%s\" (milliseconds, a "
                             "whole number)\n",
                             v);
                return 2;
            }
        } else if (arg == "--http") {
            const char *v = value("--http");
            if (!v) return 2;
            std::string spec = v;
            std::string port = spec;
            size_t colon = spec.rfind(':');
            if (colon != std::string::npos && spec.find(']') != std::string::npos &&
                colon < spec.find(']'))
                colon = std::string::npos;  // "[::1]" without a port
            if (colon != std::string::npos) {
                std::string address = spec.substr(0, colon);
                if (address.size() > 2 && address.front() == '[' && address.back() == ']')
                    address = address.substr(1, address.size() - 2);
                options.http_options.address = address;
                port = spec.substr(colon + 1);
            }
            size_t number = 0;
            if (!parse_size(port.c_str(), 0, number) || number > 65535) {
                std::fprintf(stderr,
                             "pg_mcp_bridge: invalid --http \"%s\" (expected [ADDRESS:]PORT, "
                             "e.g. 127.0.0.1:8080)\n",
                             v);
                return 2;
            }
            options.http = true;
            options.http_options.port = static_cast<unsigned short>(number);
        } else if (arg == "--max-connections" || arg == "--max-sessions") {
            const char *v = value(arg.c_str());
            if (!v) return 2;
            size_t &target = arg == "--max-connections" ? options.http_options.max_connections
                                                        : options.http_options.max_sessions;
            if (!parse_size(v, 1, target)) {
                std::fprintf(stderr, "pg_mcp_bridge: invalid %s \"%s\" (at least 1)\n", arg.c_str(),
                             v);
                return 2;
            }
        } else if (arg == "--allowed-origin" || arg == "--allowed-host") {
            const char *v = value(arg.c_str());
            if (!v) return 2;
            (arg == "--allowed-origin" ? options.http_options.allowed_origins
                                       : options.http_options.allowed_hosts)
                .push_back(v);
        } else if (arg == "--auth") {
            const char *v = value("--auth");
            if (!v) return 2;
            if (std::string(v) != "none" && std::string(v) != "token") {
                std::fprintf(stderr, "pg_mcp_bridge: --auth is none or token, not \"%s\"\n", v);
                return 2;
            }
            options.http_options.require_token = std::string(v) == "token";
        } else if (arg == "--token-env") {
            const char *v = value("--token-env");
            if (!v) return 2;
            options.token_env = v;
        } else if (arg == "--no-prepared-statements") {
            options.prepare_statements = false;
        } else if (arg == "--notify-dsn") {
            const char *v = value("--notify-dsn");
            if (!v) return 2;
            options.notify_dsn = v;
        } else if (arg == "--replica" || arg == "--audit-spool") {
            const char *v = value(arg.c_str());
            if (!v) return 2;
            if (arg == "--replica")
                options.replicas.dsns.push_back(v);
            else
                options.audit_spool = v;
        } else if (arg == "--replica-max-lag") {
            const char *v = value("--replica-max-lag");
            if (!v) return 2;
            size_t lag = 0;
            if (!parse_size(v, 0, lag)) {
                std::fprintf(stderr, "pg_mcp_bridge: invalid --replica-max-lag \"%s\" (ms)\n", v);
                return 2;
            }
            options.replicas.max_lag = std::chrono::milliseconds(lag);
        } else if (arg == "--replica-fallback") {
            const char *v = value("--replica-fallback");
            if (!v) return 2;
            if (std::string(v) != "primary" && std::string(v) != "fail") {
                std::fprintf(stderr,
                             "pg_mcp_bridge: --replica-fallback is primary or fail, not \"%s\"\n",
                             v);
                return 2;
            }
            options.replicas.fallback_to_primary = std::string(v) == "primary";
        } else if (arg == "--log-format") {
            const char *v = value("--log-format");
            if (!v) return 2;
            if (std::string(v) != "text" && std::string(v) != "json") {
                std::fprintf(stderr, "pg_mcp_bridge: --log-format is text or json, not \"%s\"\n",
                             v);
                return 2;
            }
            options.log_json = std::string(v) == "json";
        } else if (arg == "--log-level") {
            const char *v = value("--log-level");
            if (!v) return 2;
            if (!parse_log_level(v, options.log_level)) {
                std::fprintf(stderr, "pg_mcp_bridge: unknown log level \"%s\"\n", v);
                return 2;
            }
        } else if (!arg.empty() && arg[0] == '-') {
            std::fprintf(stderr, "pg_mcp_bridge: unknown option %s (try --help)\n", arg.c_str());
            return 2;
        } else if (options.dsn.empty()) {
            options.dsn = arg;
        } else {
            std::fprintf(stderr, "pg_mcp_bridge: unexpected argument \"%s\"\n", arg.c_str());
            return 2;
        }
    }
    return 0;
}

// --check: what a DBA runs to see whether an agent configuration will work.
int run_check(const Options &options) {
    StartupCheck check = check_database(options.dsn);
    if (!check.ok) {
        std::printf("NOT READY: %s\n", check.message.c_str());
        return 1;
    }
    std::printf("ok: %s\n", check.message.c_str());
    PGconn *conn = open_connection(options.dsn);
    std::string role = PQuser(conn);
    if (!options.token_env.empty()) {
        // The principal's view: its role is set for the transaction that lists the tools.
        const char *token = std::getenv(options.token_env.c_str());
        std::string hash = "\\x" + sha256_hex(token ? token : "");
        const char *params[1] = {hash.c_str()};
        PQclear(PQexec(conn, "BEGIN"));
        PGresult *assumed = PQexecParams(conn, "SELECT mcp.assume_principal($1::bytea)", 1, nullptr,
                                         params, nullptr, nullptr, 0);
        if (PQresultStatus(assumed) != PGRES_TUPLES_OK) {
            std::printf("NOT READY: the token in %s: %s", options.token_env.c_str(),
                        PQresultErrorMessage(assumed));
            PQclear(assumed);
            PQfinish(conn);
            return 1;
        }
        std::printf("ok: the token in %s is principal \"%s\"\n", options.token_env.c_str(),
                    PQgetvalue(assumed, 0, 0));
        role = std::string("principal ") + PQgetvalue(assumed, 0, 0);
        PQclear(assumed);
    }
    PGresult *result = PQexec(conn, "SELECT mcp.list_tools()::text");
    int status = 0;
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        std::printf("NOT READY: mcp.list_tools() failed: %s", PQerrorMessage(conn));
        status = 1;
    } else {
        json tools = json::parse(PQgetvalue(result, 0, 0), nullptr, false);
        if (!tools.is_array() || tools.empty()) {
            std::printf(
                "warning: no tools are granted to %s; agents will see an empty list "
                "(SELECT mcp.grant_tool(tool, role))\n",
                role.c_str());
        } else {
            std::printf("tools %s can call (%zu):\n", role.c_str(), tools.size());
            for (const json &tool : tools) {
                std::string name = tool.value("name", "");
                std::string description = tool.value("description", "");
                if (description.size() > 70) description = description.substr(0, 67) + "...";
                std::printf("  %-32s %s\n", name.c_str(), description.c_str());
            }
        }
    }
    PQclear(result);
    PQfinish(conn);
    return status;
}

// What serves the transports: the primary's pool, or the replica router in front of it.
struct Service {
    Backend &backend;
    std::function<std::string()> metrics;
    std::function<void()> stop;  // cancels and joins everything, forwards what it can
};

// Acting as principals: the login should hold none of their privileges itself (NOINHERIT),
// and the main connection should be the primary (a standby's audit records would only reach
// its server log).
void warn_about_login(const std::string &dsn, bool acting_as_principals, const Logger &logger) {
    PGconn *conn = open_connection(dsn);
    PGresult *result = PQexec(conn,
                              "SELECT r.rolinherit, r.rolname, pg_catalog.pg_is_in_recovery()"
                              " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user");
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
        std::string login = PQgetvalue(result, 0, 1);
        if (acting_as_principals && std::string(PQgetvalue(result, 0, 0)) == "t")
            logger.log(LogLevel::Warning,
                       "login role \"" + login +
                           "\" inherits the privileges of the roles it is a member of: without "
                           "a token it could use every principal's tools. ALTER ROLE " +
                           login + " NOINHERIT; (it can still act as them, one call at a time)");
        if (std::string(PQgetvalue(result, 0, 2)) == "t")
            logger.log(LogLevel::Warning,
                       "the main connection is a hot standby: audit records of its calls reach "
                       "only its server log. Connect to the primary and pass the standby with "
                       "--replica");
    }
    PQclear(result);
    PQfinish(conn);
}

// The login role's CONNECTION LIMIT (-1: none, or unknown).
long role_connection_limit(const std::string &dsn) {
    PGconn *conn = open_connection(dsn);
    long limit = -1;
    PGresult *result = PQexec(conn,
                              "SELECT rolconnlimit FROM pg_catalog.pg_roles"
                              " WHERE rolname = current_user");
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1)
        limit = std::atol(PQgetvalue(result, 0, 0));
    PQclear(result);
    PQfinish(conn);
    return limit;
}

// Unless the bridge's login may forward standby audit records to the primary: why not.
std::string check_audit_forwarding(const std::string &dsn) {
    PGconn *conn = open_connection(dsn);
    std::string problem;
    PGresult *result = PQexec(conn,
                              "SELECT pg_catalog.pg_has_role('mcp_audit_forwarder', "
                              "'MEMBER'), current_user");
    if (PQresultStatus(result) != PGRES_TUPLES_OK)
        problem =
            std::string("cannot check the audit forwarding role: ") + PQresultErrorMessage(result);
    else if (std::string(PQgetvalue(result, 0, 0)) != "t")
        problem = std::string(
                      "with --replica the bridge forwards the audit records of "
                      "standby-served calls to the primary, but role \"") +
                  PQgetvalue(result, 0, 1) +
                  "\" may not: as a superuser, GRANT mcp_audit_forwarder TO " +
                  PQgetvalue(result, 0, 1) + ";";
    PQclear(result);
    PQfinish(conn);
    return problem;
}

// Streamable HTTP until SIGTERM/SIGINT; then in-flight requests get up to 10 s to finish.
int serve_http(const Options &options, Service &service, const ServerOptions &server_options,
               const Logger &logger, const StartupCheck &check) {
    HttpOptions http_options = options.http_options;
    http_options.max_body_bytes = options.max_message_bytes;
    http_options.metrics = service.metrics;
    // /readyz: one check at a time, its answer reused for 2 s (probes cannot pile up
    // connections on the database).
    struct Readiness {
        std::mutex mutex;
        std::chrono::steady_clock::time_point checked{};
        std::string answer;
    };
    auto ready = std::make_shared<Readiness>();
    std::string dsn = options.dsn;
    HttpServer server(service.backend, server_options, logger, http_options, [dsn, ready] {
        std::lock_guard<std::mutex> lock(ready->mutex);
        auto now = std::chrono::steady_clock::now();
        if (ready->checked == std::chrono::steady_clock::time_point() ||
            now - ready->checked > std::chrono::seconds(2)) {
            StartupCheck check = check_database(dsn);
            ready->answer = check.ok ? std::string() : check.message;
            ready->checked = now;
        }
        return ready->answer;
    });
    std::string error;
    if (!server.listen(error)) {
        logger.log(LogLevel::Error, error);
        service.stop();
        return 1;
    }
    std::string address = http_options.address.find(':') != std::string::npos
                              ? "[" + http_options.address + "]"
                              : http_options.address;
    logger.log(LogLevel::Notice, check.message + "; serving MCP on http://" + address + ":" +
                                     std::to_string(server.port()) + "/mcp");
    Listener listener(options.notify_dsn.empty() ? options.dsn : options.notify_dsn, logger,
                      [&server] { server.tools_changed(); });
    std::thread waker([&server] {
        pollfd fd{wake_pipe[0], POLLIN, 0};
        while (::poll(&fd, 1, -1) < 0 && errno == EINTR) {
        }
        server.stop();
    });
    server.run(std::chrono::seconds(10));
    logger.log(LogLevel::Info, "signal received; HTTP server stopped");
    waker.join();
    service.stop();
    listener.stop();
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    Options options;
    int parsed = parse_options(argc, argv, options);
    if (parsed != 0) return parsed < 0 ? 0 : parsed;
    if (!options.token_env.empty() && options.http) {
        std::fprintf(stderr,
                     "pg_mcp_bridge: --token-env is for stdio; over HTTP each agent sends "
                     "its own token (--auth token)\n");
        return 2;
    }
    if (options.http_options.require_token && !options.http) {
        std::fprintf(stderr,
                     "pg_mcp_bridge: --auth token needs --http (over stdio, use "
                     "--token-env)\n");
        return 2;
    }
    if (!options.token_env.empty()) {
        const char *token = std::getenv(options.token_env.c_str());
        if (token == nullptr || *token == '\0') {
            std::fprintf(stderr, "pg_mcp_bridge: --token-env %s: the variable is not set\n",
                         options.token_env.c_str());
            return 2;
        }
    }
    if (!options.replicas.dsns.empty() && options.audit_spool.empty()) {
        std::fprintf(stderr,
                     "pg_mcp_bridge: --replica needs --audit-spool FILE (where audit "
                     "records of standby-served calls wait for the primary)\n");
        return 2;
    }
    if (options.check) return run_check(options);

    Logger logger(options.log_level, options.log_json);
    if (::pipe(wake_pipe) != 0) {
        logger.log(LogLevel::Error, std::string("cannot create a pipe: ") + std::strerror(errno));
        return 1;
    }
    fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK);
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    signal(SIGPIPE, SIG_IGN);

    StartupCheck check = check_database(options.dsn);
    if (!check.ok) {
        logger.log(LogLevel::Error, check.message);
        return 1;
    }
    // The login role's CONNECTION LIMIT holds the pool and the bridge's other connections
    // (the catalog listener, a readiness probe; with replicas the audit forwarder and the
    // replica monitor's probe of the primary): a pool that would not fit is made smaller
    // instead of failing under load.
    size_t others = 2 + (options.replicas.dsns.empty() ? 0 : 2);
    long limit = role_connection_limit(options.dsn);
    if (limit >= 0 && options.pool_size + others > static_cast<size_t>(limit)) {
        if (static_cast<size_t>(limit) <= others) {
            logger.log(LogLevel::Error,
                       "the login role's CONNECTION LIMIT " + std::to_string(limit) +
                           " leaves no room for a pool beside the bridge's " +
                           std::to_string(others) +
                           " other connections: raise it (ALTER ROLE "
                           "... CONNECTION LIMIT n) or use a role without a limit");
            return 1;
        }
        size_t fitting = static_cast<size_t>(limit) - others;
        logger.log(LogLevel::Warning, "--pool-size " + std::to_string(options.pool_size) +
                                          " and the bridge's " + std::to_string(others) +
                                          " other connections exceed the login role's "
                                          "CONNECTION LIMIT " +
                                          std::to_string(limit) + "; using a pool of " +
                                          std::to_string(fitting));
        options.pool_size = fitting;
    }
    Database database(options.dsn, options.pool_size, logger,
                      std::chrono::milliseconds(options.queue_timeout_ms),
                      options.prepare_statements);
    // Read replicas: a router in front of the primary's pool, and the spool that carries the
    // audit records of standby-served calls to the primary.
    std::unique_ptr<AuditSpool> spool;
    std::unique_ptr<ReplicaRouter> router;
    if (!options.replicas.dsns.empty()) {
        std::string problem = check_audit_forwarding(options.dsn);
        if (!problem.empty()) {
            logger.log(LogLevel::Error, problem);
            database.stop();
            return 1;
        }
        spool = std::make_unique<AuditSpool>(options.audit_spool, options.dsn, logger);
        std::string error;
        if (!spool->open(error)) {
            logger.log(LogLevel::Error, error);
            database.stop();
            return 1;
        }
        options.replicas.primary_dsn = options.dsn;
        router = std::make_unique<ReplicaRouter>(
            database, options.replicas, *spool, options.pool_size, logger,
            std::chrono::milliseconds(options.queue_timeout_ms), options.prepare_statements);
        check.message += "; " + std::to_string(options.replicas.dsns.size()) +
                         " read replica(s) for read-only work";
    }
    Backend &backend = router ? static_cast<Backend &>(*router) : database;
    Service service{backend,
                    [&] { return router ? router->metrics_text() : database.metrics_text(); },
                    [&] {
                        if (router) router->stop();
                        database.stop();
                        if (spool) spool->stop(std::chrono::seconds(5));
                    }};
    ServerOptions server_options;
    if (!options.token_env.empty()) {
        // Checked once now (a wrong token should stop the start, not fail every call); the
        // database checks it again with each call.
        std::string hash = sha256_hex(std::getenv(options.token_env.c_str()));
        std::promise<BackendReply> checked;
        backend.authenticate("startup", hash,
                             [&checked](BackendReply reply) { checked.set_value(reply); });
        BackendReply reply = checked.get_future().get();
        if (!reply.ok) {
            logger.log(LogLevel::Error,
                       "the token in " + options.token_env + ": " + reply.error_message);
            service.stop();
            return 1;
        }
        check.message += "; acting as principal \"" + reply.value.get<std::string>() + "\"";
        server_options.principal_token = hash;
    }
    warn_about_login(options.dsn, options.http_options.require_token || !options.token_env.empty(),
                     logger);
    if (options.http && !options.http_options.require_token) {
        const std::string &address = options.http_options.address;
        if (address != "127.0.0.1" && address != "::1" && address != "localhost")
            logger.log(LogLevel::Warning, "serving HTTP on " + address +
                                              " without --auth token: every client "
                                              "that reaches it acts as the bridge's login role");
    }
    server_options.agent_name = options.agent;
    server_options.page_size = options.page_size;
    server_options.version = kVersion;
    if (options.http) return serve_http(options, service, server_options, logger, check);
    logger.log(LogLevel::Info, check.message + "; serving MCP on stdio");

    LineWriter writer(STDOUT_FILENO);
    McpServer server(backend, writer, server_options, logger);
    Listener listener(options.notify_dsn.empty() ? options.dsn : options.notify_dsn, logger,
                      [&server] { server.tools_changed(); });

    LineReader reader(STDIN_FILENO, wake_pipe[0], options.max_message_bytes);
    reader.run(
        [&](std::string_view line) {
            try {
                server.handle_line(line);
            } catch (const std::exception &error) {
                // Last line of defence: a bug in handling one message must not end the process.
                logger.log(LogLevel::Error,
                           std::string("internal error handling a message: ") + error.what());
                writer.send(make_error(nullptr, error_code::kInternalError, "Internal error"));
            }
        },
        [&](size_t limit, std::string_view head, std::string_view tail) {
            server.handle_oversized_line(limit, head, tail);
        });

    // End of input (not a signal): answer what is already running if it finishes within a
    // moment, since the client may still be reading; then cancel whatever remains.
    char byte;
    bool signalled = ::read(wake_pipe[0], &byte, 1) > 0;
    if (!signalled) {
        for (int waited = 0; waited < 1000 && server.in_flight() > 0; waited += 10) ::usleep(10000);
    }
    logger.log(LogLevel::Info,
               signalled ? "signal received; shutting down" : "input closed; shutting down");
    server.shutdown();
    service.stop();
    listener.stop();
    return 0;
}
