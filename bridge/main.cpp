// pg_mcp_bridge: serves the tools of a PostgreSQL database with the pg_mcp extension to MCP
// clients over stdio or Streamable HTTP. All policy is in the database; this process speaks
// the protocol. main wires the parts the options (options.hpp) ask for.
// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

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

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <libpq-fe.h>

#include "auth.hpp"
#include "database.hpp"
#include "listener.hpp"
#include "http_transport.hpp"
#include "log.hpp"
#include "loop_wait.hpp"
#include "mcp_server.hpp"
#include "options.hpp"
#include "otlp_metrics.hpp"
#include "replica.hpp"
#include "stdio_transport.hpp"

using namespace pg_mcp::bridge;

namespace {

const char *const kVersion = PG_MCP_VERSION;
// --check: what a DBA runs to see whether an agent configuration will work.
int run_check(const BridgeOptions &options) {
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

// The event loop everything asynchronous runs on (the database pool, the HTTP transport), run
// by the main thread: while it serves, and in each wait of the start and the stop
// (wait_for_loop). It is kept from running out of work until the process ends.
struct MainLoop {
    LoopDriver driver;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard;
    explicit MainLoop(boost::asio::io_context &io) : driver(io), guard(io.get_executor()) {}
};

// SIGINT and SIGTERM, on the loop: the first runs what wait() was given (once).
struct Signals {
    boost::asio::signal_set set;
    explicit Signals(boost::asio::io_context &loop) : set(loop, SIGINT, SIGTERM) {}
    void wait(std::function<void()> on_signal) {
        set.async_wait(
            [on_signal = std::move(on_signal)](const boost::system::error_code &error, int) {
                if (!error) on_signal();
            });
    }
};

// What serves the transports: the primary's pool, or the replica router in front of it.
struct Service {
    Backend &backend;
    std::function<std::string()> metrics;
    std::function<std::string()> readiness;  // /readyz: empty when calls would be served
    std::function<void()> stop;              // cancels and joins everything, forwards what it can
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

// With --auth oauth: the login must be a member of mcp_identity_verifier, and the resource
// should have a trusted issuer; otherwise every OAuth request would be refused.
void warn_about_oauth(const std::string &dsn, const std::string &resource, const Logger &logger) {
    PGconn *conn = open_connection(dsn);
    const char *values[1] = {resource.c_str()};
    PGresult *result =
        PQexec(conn,
               "SELECT CASE WHEN pg_catalog.to_regrole('mcp_identity_verifier') IS NULL THEN false"
               " ELSE pg_catalog.pg_has_role('mcp_identity_verifier', 'MEMBER') END, current_user");
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1 &&
        std::string(PQgetvalue(result, 0, 0)) != "t") {
        std::string login = PQgetvalue(result, 0, 1);
        logger.log(LogLevel::Warning,
                   "--auth oauth: login role \"" + login +
                       "\" is not a member of mcp_identity_verifier, so every OAuth identity "
                       "will be refused. As a superuser: GRANT mcp_identity_verifier TO " +
                       login + ";");
        PQclear(result);
        PQfinish(conn);
        return;
    }
    PQclear(result);
    result = PQexecParams(conn, "SELECT count(*) FROM mcp.identity_providers_for($1)", 1, nullptr,
                          values, nullptr, nullptr, 0);
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1 &&
        std::string(PQgetvalue(result, 0, 0)) == "0")
        logger.log(LogLevel::Warning,
                   "--auth oauth: no enabled identity provider has audience " + resource +
                       " yet; add one with mcp.create_identity_provider(issuer, '" + resource +
                       "') (only pg_mcp tokens are accepted until then)");
    PQclear(result);
    PQfinish(conn);
}

// Whether the login may confirm audit durability itself (a member of mcp_audit_confirmer): then
// calls free their pool connection at once and one waiter confirms many records together.
bool may_confirm_audit(const std::string &dsn) {
    PGconn *conn = open_connection(dsn);
    PGresult *result =
        PQexec(conn,
               "SELECT CASE WHEN pg_catalog.to_regrole('mcp_audit_confirmer') IS NULL THEN"
               " false ELSE pg_catalog.pg_has_role('mcp_audit_confirmer', 'MEMBER') END");
    bool member = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1 &&
                  std::string(PQgetvalue(result, 0, 0)) == "t";
    PQclear(result);
    PQfinish(conn);
    return member;
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
int serve_http(boost::asio::io_context &loop, Signals &signals, const BridgeOptions &options,
               Service &service, const ServerOptions &server_options, const Logger &logger,
               const StartupCheck &check) {
    HttpOptions http_options = options.http_options;
    http_options.max_body_bytes = options.max_message_bytes;
    http_options.metrics = service.metrics;
    // /readyz: what the pool can do now (Database::readiness).
    HttpServer server(loop, service.backend, server_options, logger, http_options,
                      service.readiness);
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
    // With session tickets, a session one bridge ends is ended on every other (its NOTIFY).
    std::function<void(const std::string &)> on_session_ended;
    if (http_options.session_keys)
        on_session_ended = [&server](const std::string &payload) { server.session_ended(payload); };
    Listener listener(
        loop, options.notify_dsn.empty() ? options.dsn : options.notify_dsn, logger,
        [&server] { server.tools_changed(); }, on_session_ended);
    signals.wait([&server] { server.stop(); });
    server.run(std::chrono::seconds(10));
    logger.log(LogLevel::Info, "signal received; HTTP server stopped");
    service.stop();
    listener.stop();
    return 0;
}

// Traces (spans to an OTLP collector; ids reach the database either way) and metrics to the
// same collector (its /v1/metrics, beside /metrics), when --otlp-endpoint is given. They live
// as long as the process: spans may be recorded by any thread until the very end.
void start_exporters(boost::asio::io_context &loop, const BridgeOptions &options,
                     const Logger &logger, StartupCheck &check, Tracer *&tracer, Meter *&meter) {
    if (options.otlp_endpoint.empty()) return;
    TraceOptions trace_options;
    trace_options.endpoint = options.otlp_endpoint;
    trace_options.ca_file = options.otlp_ca_file;
    tracer = new Tracer(loop, trace_options, logger);
    Tracer::set_global(tracer);
    tracer->start();
    check.message += "; traces to " + options.otlp_endpoint;
    MeterOptions meter_options;
    meter_options.endpoint = metrics_endpoint(options.otlp_endpoint);
    meter_options.ca_file = options.otlp_ca_file;
    meter_options.interval = std::chrono::milliseconds(options.otlp_metrics_interval_ms);
    meter = new Meter(loop, meter_options, logger);
    Meter::set_global(meter);
    meter->start();
    check.message += " and metrics to " + meter_options.endpoint;
}

// --token-env: the principal's token, checked once now (a wrong token should stop the start,
// not fail every call; the database checks it again with each call). False when refused.
bool check_principal_token(boost::asio::io_context &loop, Backend &backend,
                           const BridgeOptions &options, const Logger &logger, StartupCheck &check,
                           ServerOptions &server_options) {
    std::string hash = sha256_hex(std::getenv(options.token_env.c_str()));
    std::promise<BackendReply> checked;
    backend.authenticate("startup", hash,
                         [&checked](BackendReply reply) { checked.set_value(reply); });
    std::future<BackendReply> answered = checked.get_future();
    wait_for_loop(loop, answered);
    BackendReply reply = answered.get();
    if (!reply.ok) {
        logger.log(LogLevel::Error,
                   "the token in " + options.token_env + ": " + reply.error_message);
        return false;
    }
    check.message += "; acting as principal \"" + reply.value.get<std::string>() + "\"";
    server_options.principal_token = hash;
    return true;
}

// Advice at the start: about the primary's login (not given while the bridge starts on a
// standby), and about HTTP served beyond the loopback without tokens.
void warn_at_start(const BridgeOptions &options, const std::string &catalog_dsn,
                   const Logger &logger) {
    if (catalog_dsn == options.dsn) {
        warn_about_login(options.dsn,
                         options.http_options.require_token || !options.token_env.empty(), logger);
        if (options.http_options.oauth)
            warn_about_oauth(options.dsn, options.http_options.oauth->resource, logger);
    }
    if (options.http && !options.http_options.require_token) {
        const std::string &address = options.http_options.address;
        if (address != "127.0.0.1" && address != "::1" && address != "localhost")
            logger.log(LogLevel::Warning, "serving HTTP on " + address +
                                              " without --auth token: every client "
                                              "that reaches it acts as the bridge's login role");
    }
}

}  // namespace

// The start-up check of the primary; with read replicas, a primary that cannot be reached does
// not stop the start: a standby that passes the same check serves read-only tools (and answers
// the catalog questions, which it has replayed); audit records wait in the spool, as in a later
// outage. `catalog_dsn`: the server that passed.
StartupCheck check_start(const BridgeOptions &options, const Logger &logger,
                         std::string &catalog_dsn) {
    StartupCheck check = check_database(options.dsn);
    catalog_dsn = options.dsn;
    if (!check.ok && check.unreachable && !options.replicas.dsns.empty()) {
        for (const std::string &replica : options.replicas.dsns) {
            StartupCheck standby = check_database(replica);
            if (!standby.ok) continue;
            logger.log(LogLevel::Warning,
                       check.message +
                           "; starting with a read replica: read-only tools are served from it, "
                           "audit records wait in the spool and writing tools fail until the "
                           "primary answers");
            check = standby;
            check.message += " (read replica; the primary is unreachable)";
            catalog_dsn = replica;
            break;
        }
    }
    return check;
}

// The login role's CONNECTION LIMIT holds the pool and the bridge's other connections (the
// catalog listener, a readiness probe; with replicas the audit forwarder and the replica
// monitor's probe of the primary): a pool that would not fit is made smaller instead of failing
// under load. False when no pool fits.
bool fit_pool(BridgeOptions &options, const std::string &catalog_dsn, bool confirm_audit,
              const Logger &logger) {
    size_t others = 2 + (options.replicas.dsns.empty() ? 0 : 2) + (confirm_audit ? 1 : 0);
    long limit = role_connection_limit(catalog_dsn);
    if (limit >= 0 && options.pool_size + others > static_cast<size_t>(limit)) {
        if (static_cast<size_t>(limit) <= others) {
            logger.log(LogLevel::Error,
                       "the login role's CONNECTION LIMIT " + std::to_string(limit) +
                           " leaves no room for a pool beside the bridge's " +
                           std::to_string(others) +
                           " other connections: raise it (ALTER ROLE "
                           "... CONNECTION LIMIT n) or use a role without a limit");
            return false;
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
    return true;
}

// Serves MCP on stdin and stdout until the input ends (every request read is answered first)
// or a signal comes.
int serve_stdio(boost::asio::io_context &loop, Signals &signals, const BridgeOptions &options,
                Service &service, const ServerOptions &server_options, const Logger &logger) {
    Backend &backend = service.backend;
    LineWriter writer(STDOUT_FILENO);
    McpServer server(backend, writer, server_options, logger);
    // The server lives on the loop, which this thread runs: asked between the loop's handlers.
    auto on_loop = [&loop](auto ask) {
        auto answered = std::make_shared<std::promise<decltype(ask())>>();
        auto answer = answered->get_future();
        boost::asio::post(loop, [ask, answered] { answered->set_value(ask()); });
        wait_for_loop(loop, answer);
        return answer.get();
    };
    // On the loop, as the server.
    Listener listener(loop, options.notify_dsn.empty() ? options.dsn : options.notify_dsn, logger,
                      [&server] { server.tools_changed(); });

    // Input is read on the loop; this thread waits for its end or a signal.
    auto ended = std::make_shared<std::promise<bool>>();  // true: a signal
    auto once = std::make_shared<std::atomic<bool>>(false);
    auto end = [ended, once, &loop](bool signalled) {
        if (once->exchange(true)) return;
        ended->set_value(signalled);
        loop.stop();  // this thread's run() below returns
    };
    std::future<bool> input_over = ended->get_future();
    auto signal_seen = std::make_shared<std::atomic<bool>>(false);
    signals.wait([end, signal_seen] {
        signal_seen->store(true);
        end(true);
    });
    LoopLineReader reader(loop, STDIN_FILENO, options.max_message_bytes);
    reader.hold_while([&writer] { return writer.backlogged(); });
    writer.on_drained([&reader] { reader.resume(); });
    reader.start(
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
        },
        [end] { end(false); });

    // Serving: the loop runs here until the input ends or a signal comes.
    while (input_over.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        loop.restart();
        loop.run();
    }
    loop.restart();
    // End of input (not a signal): every request already read is answered, as a pipe's user
    // expects (`... | pg_mcp_bridge`), up to 300 s; a signal meanwhile ends the wait.
    bool signalled = input_over.get();
    if (!signalled) {
        auto limit = std::chrono::steady_clock::now() + options.http_options.request_timeout;
        auto in_flight = [&] { return on_loop([&server] { return server.in_flight(); }); };
        while (in_flight() > 0 && !signal_seen->load() && std::chrono::steady_clock::now() < limit)
            run_loop_for(loop, std::chrono::milliseconds(10));
        if (size_t running = in_flight(); running > 0)
            logger.log(LogLevel::Warning, std::to_string(running) +
                                              " requests still running at shutdown are cancelled");
    }
    logger.log(LogLevel::Info,
               signalled ? "signal received; shutting down" : "input closed; shutting down");
    on_loop([&server] {
        server.shutdown(true);
        return true;
    });
    service.stop();
    listener.stop();
    return 0;
}

int main(int argc, char **argv) {
    BridgeOptions options;
    int parsed = parse_bridge_options(argc, argv, options);
    if (parsed != 0) return parsed < 0 ? 0 : parsed;
    if (options.check) return run_check(options);

    Logger logger(options.log_level, options.log_json);
    route_notices_to(&logger);
    signal(SIGPIPE, SIG_IGN);

    std::string catalog_dsn;
    StartupCheck check = check_start(options, logger, catalog_dsn);
    if (!check.ok) {
        logger.log(LogLevel::Error, check.message);
        return 1;
    }
    // Run by one thread (other threads only post to it): posts from its handlers need no wake-up.
    boost::asio::io_context loop(1);
    MainLoop main_loop(loop);
    Signals signals(loop);
    bool confirm_audit = options.confirm_audit != "never" && may_confirm_audit(catalog_dsn);
    if (!fit_pool(options, catalog_dsn, confirm_audit, logger)) return 1;
    std::unique_ptr<AuditConfirmer> confirmer;
    if (confirm_audit)
        confirmer = std::make_unique<AuditConfirmer>(loop, options.dsn, logger);
    else if (options.confirm_audit != "never")
        logger.log(
            LogLevel::Notice,
            "the login is not a member of mcp_audit_confirmer: each durable call holds its pool "
            "connection until its audit row is flushed (GRANT mcp_audit_confirmer TO the login to "
            "let the bridge confirm many at once)");
    Database database(loop, options.dsn, options.pool_size, logger,
                      std::chrono::milliseconds(options.queue_timeout_ms),
                      options.prepare_statements);
    database.confirm_audit_with(confirmer.get(), options.confirm_audit == "always");
    // Read replicas: a router in front of the primary's pool, and the spool that carries the
    // audit records of standby-served calls to the primary.
    std::unique_ptr<AuditSpool> spool;
    std::unique_ptr<ReplicaRouter> router;
    if (!options.replicas.dsns.empty()) {
        std::string problem = check_audit_forwarding(catalog_dsn);
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
            loop, database, options.replicas, *spool, options.pool_size, logger,
            std::chrono::milliseconds(options.queue_timeout_ms), options.prepare_statements);
        check.message += "; " + std::to_string(options.replicas.dsns.size()) +
                         " read replica(s) for read-only work";
    }
    Backend &backend = router ? static_cast<Backend &>(*router) : database;
    Tracer *tracer = nullptr;
    Meter *meter = nullptr;
    start_exporters(loop, options, logger, check, tracer, meter);
    Service service{backend,
                    [&] {
                        return (router ? router->metrics_text() : database.metrics_text()) +
                               (tracer ? tracer->metrics() : std::string()) +
                               (meter ? meter->metrics() : std::string());
                    },
                    [&] { return database.readiness(); },
                    [&] {
                        if (router) router->stop();
                        database.stop();
                        if (confirmer) confirmer->stop();
                        if (spool) spool->stop(std::chrono::seconds(5));
                        if (tracer) tracer->stop();
                        if (meter) meter->stop();
                    }};
    ServerOptions server_options;
    if (!options.token_env.empty() &&
        !check_principal_token(loop, backend, options, logger, check, server_options)) {
        service.stop();
        return 1;
    }
    warn_at_start(options, catalog_dsn, logger);
    server_options.agent_name = options.agent;
    // The wait for a person's answer to a confirmation asked in a 2025-11-25 session.
    server_options.elicitation_timeout = std::chrono::milliseconds(options.elicitation_timeout_ms);
    server_options.schedule = [&loop](std::chrono::milliseconds delay, std::function<void()> fn) {
        auto timer = std::make_shared<boost::asio::steady_timer>(loop, delay);
        timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code &error) {
            if (!error) fn();
        });
    };
    server_options.page_size = options.page_size;
    server_options.version = kVersion;
    if (options.http)
        return serve_http(loop, signals, options, service, server_options, logger, check);
    logger.log(LogLevel::Info, check.message + "; serving MCP on stdio");

    return serve_stdio(loop, signals, options, service, server_options, logger);
}
