// The tool catalog's change listener, a coroutine on the event loop.

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "listener.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <future>

#include "pg_connection.hpp"
#include "wakeup.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Listener::State {
    State(asio::io_context &io, std::string dsn, const Logger &logger,
          std::function<void()> on_change)
        : loop(io),
          dsn(std::move(dsn)),
          logger(logger),
          on_change(std::move(on_change)),
          stop_wakeup(io) {}
    asio::io_context &loop;
    std::string dsn;
    const Logger &logger;
    std::function<void()> on_change;
    asio::thread_pool connector{1};  // libpq's connect blocks (name lookup, TLS)
    std::atomic<bool> stop_asked{false};
    std::promise<void> ended;
    // The loop's side.
    bool stopping = false;
    Wakeup stop_wakeup;  // fired by stop(): ends a backoff
    PGconn *conn = nullptr;
    std::unique_ptr<asio::posix::stream_descriptor> socket;  // conn's; libpq owns the fd

    void close() {
        if (socket) {
            socket->release();
            socket.reset();
        }
        if (conn != nullptr) PQfinish(conn);
        conn = nullptr;
    }
};

namespace {

auto with(boost::system::error_code &error) {
    return asio::redirect_error(asio::use_awaitable, error);
}

// Opens a connection on the helper thread; resumes on the loop with it (or null).
asio::awaitable<PGconn *> connect(std::shared_ptr<Listener::State> s) {
    struct Box {
        explicit Box(asio::io_context &io) : done(io) {}
        Wakeup done;
        PGconn *conn = nullptr;
    };
    auto box = std::make_shared<Box>(s->loop);
    asio::post(s->connector, [s, box] {
        PGconn *conn = open_connection(s->dsn);
        asio::post(s->loop, [box, conn] {
            box->conn = conn;
            box->done.fire();
        });
    });
    co_await wait_until(box->done, Clock::time_point::max());
    co_return box->conn;
}

struct Answer {
    bool connected = false;  // false: the connection failed (or the listener stops)
    bool ok = false;         // the statement succeeded
    std::string value;       // its first row's first value, if any
};

// Sends `sql` on the (non-blocking) connection and reads its result, waiting on the loop.
asio::awaitable<Answer> query(Listener::State &s, const char *sql) {
    Answer answer;
    if (PQsendQuery(s.conn, sql) == 0) co_return answer;
    boost::system::error_code error;
    for (int flushed = PQflush(s.conn); flushed != 0; flushed = PQflush(s.conn)) {
        if (flushed < 0) co_return answer;
        co_await s.socket->async_wait(asio::posix::stream_descriptor::wait_write, with(error));
        if (error || s.stopping) co_return answer;
    }
    answer.ok = true;
    for (;;) {
        while (PQisBusy(s.conn) != 0) {
            co_await s.socket->async_wait(asio::posix::stream_descriptor::wait_read, with(error));
            if (error || s.stopping || PQconsumeInput(s.conn) == 0) co_return Answer();
        }
        PGresult *result = PQgetResult(s.conn);
        if (result == nullptr) break;
        ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_TUPLES_OK && PQntuples(result) > 0)
            answer.value = PQgetvalue(result, 0, 0);
        else if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
            answer.ok = false;
        PQclear(result);
    }
    answer.connected = PQstatus(s.conn) == CONNECTION_OK;
    co_return answer;
}

// One connection's life: LISTEN, then the catalog version after each burst of notifications.
// `seen`: the version known so far (empty before the first connection).
asio::awaitable<void> listen_on(Listener::State &s, std::string &seen) {
    Answer version = co_await query(s, "SELECT mcp.catalog_version()");
    if (!version.connected) co_return;
    if (!seen.empty()) {
        s.logger.log(LogLevel::Notice, "tool change listener reconnected");
        if (version.value != seen) s.on_change();  // changed while disconnected
    }
    seen = version.value;
    for (;;) {
        bool notified = false;
        while (PGnotify *notify = PQnotifies(s.conn)) {
            PQfreemem(notify);
            notified = true;
        }
        if (notified) {
            // Notifications that come while this runs are read after it.
            Answer now = co_await query(s, "SELECT mcp.catalog_version()");
            if (!now.connected) co_return;
            if (!now.value.empty() && now.value != seen) {
                s.logger.log(LogLevel::Info, "tool catalog changed (version " + now.value + ")");
                seen = now.value;
                s.on_change();
            }
            continue;
        }
        boost::system::error_code error;
        co_await s.socket->async_wait(asio::posix::stream_descriptor::wait_read, with(error));
        if (error || s.stopping) co_return;
        if (PQconsumeInput(s.conn) == 0 || PQstatus(s.conn) != CONNECTION_OK) co_return;
    }
}

asio::awaitable<void> run(std::shared_ptr<Listener::State> s) {
    std::chrono::milliseconds backoff{0};
    std::string seen;
    while (!s->stopping) {
        PGconn *conn = co_await connect(s);
        if (s->stopping) {
            if (conn != nullptr) PQfinish(conn);
            break;
        }
        s->conn = conn;
        bool up =
            conn != nullptr && PQstatus(conn) == CONNECTION_OK && PQsetnonblocking(conn, 1) == 0;
        Answer listening;
        if (up) {
            s->socket = std::make_unique<asio::posix::stream_descriptor>(s->loop, PQsocket(conn));
            listening = co_await query(*s, "LISTEN pg_mcp_tools_changed");
        }
        if (s->stopping) break;
        if (!listening.connected || !listening.ok) {
            s->logger.log(LogLevel::Warning,
                          "tool change listener cannot connect: " + connection_error(s->conn));
            s->close();
            backoff = backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
            co_await wait_until(s->stop_wakeup, Clock::now() + backoff);
            continue;
        }
        backoff = std::chrono::milliseconds(0);
        co_await listen_on(*s, seen);
        s->close();
    }
    s->close();
}

}  // namespace

Listener::Listener(asio::io_context &loop, std::string dsn, const Logger &logger,
                   std::function<void()> on_change)
    : state_(std::make_shared<State>(loop, std::move(dsn), logger, std::move(on_change))) {
    auto s = state_;
    asio::co_spawn(loop, run(s), [s](std::exception_ptr failure) {
        if (failure) s->logger.log(LogLevel::Error, "internal error in the tool change listener");
        s->ended.set_value();
    });
}

Listener::~Listener() {
    stop();
}

void Listener::stop() {
    auto s = state_;
    if (s->stop_asked.exchange(true)) return;
    asio::post(s->loop, [s] {
        s->stopping = true;
        if (s->socket) s->socket->cancel();
        s->stop_wakeup.fire();
    });
    s->ended.get_future().wait_for(std::chrono::seconds(5));
    s->connector.join();
}

}  // namespace pg_mcp::bridge
