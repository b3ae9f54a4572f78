// The tool catalog's change listener (a thread of its own, blocking libpq).
#include "listener.hpp"

#include <poll.h>

#include <chrono>
#include <random>

#include "pg_connection.hpp"

namespace pg_mcp::bridge {

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
