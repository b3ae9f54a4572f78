// The tool catalog's change listener, a coroutine on the event loop.

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "listener.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <future>

#include "loop_connection.hpp"
#include "pg_connection.hpp"
#include "wakeup.hpp"
#include "loop_wait.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Listener::State {
    State(asio::io_context &io, std::string dsn, const Logger &logger,
          std::function<void()> on_change, std::function<void(const std::string &)> on_ended)
        : loop(io),
          logger(logger),
          on_change(std::move(on_change)),
          on_session_ended(std::move(on_ended)),
          connection(io, std::move(dsn)),
          stop_wakeup(io) {}
    asio::io_context &loop;
    const Logger &logger;
    std::function<void()> on_change;
    std::function<void(const std::string &)> on_session_ended;
    asio::thread_pool connector{1};  // libpq's connect blocks (name lookup, TLS)
    std::atomic<bool> stop_asked{false};
    std::promise<void> ended;
    // The loop's side.
    LoopConnection connection;
    bool stopping = false;
    Wakeup stop_wakeup;  // fired by stop(): ends a backoff
};

namespace {

constexpr const char *kSessionChannel = "pg_mcp_session_ended";

// One connection's life: the catalog version, then again after each burst of notifications.
// `seen`: the version known so far (empty before the first connection).
asio::awaitable<void> listen_on(Listener::State &s, std::string &seen) {
    LoopConnection::Answer version = co_await s.connection.query("SELECT mcp.catalog_version()");
    if (!version.connected) co_return;
    if (!seen.empty()) {
        s.logger.log(LogLevel::Notice, "tool change listener reconnected");
        if (version.value != seen) s.on_change();  // changed while disconnected
    }
    seen = version.value;
    while (!s.stopping) {
        bool notified = false;
        while (PGnotify *notify = PQnotifies(s.connection.get())) {
            if (std::string(notify->relname) == kSessionChannel) {
                if (s.on_session_ended && notify->extra != nullptr)
                    s.on_session_ended(notify->extra);
            } else {
                notified = true;
            }
            PQfreemem(notify);
        }
        if (notified) {
            // Notifications that come while this runs are read after it.
            LoopConnection::Answer now =
                co_await s.connection.query("SELECT mcp.catalog_version()");
            if (!now.connected) co_return;
            if (!now.value.empty() && now.value != seen) {
                s.logger.log(LogLevel::Info, "tool catalog changed (version " + now.value + ")");
                seen = now.value;
                s.on_change();
            }
            continue;
        }
        bool more = co_await s.connection.readable();
        if (!more || s.stopping) co_return;
    }
}

asio::awaitable<void> run(std::shared_ptr<Listener::State> s) {
    std::chrono::milliseconds backoff{0};
    std::string seen;
    while (!s->stopping) {
        std::string error;
        bool opened = co_await s->connection.open(s->connector, error);
        if (s->stopping) break;
        LoopConnection::Answer listening;
        if (opened) listening = co_await s->connection.query("LISTEN pg_mcp_tools_changed");
        if (opened && listening.ok && s->on_session_ended)
            listening = co_await s->connection.query("LISTEN pg_mcp_session_ended");
        if (s->stopping) break;
        if (!listening.connected || !listening.ok) {
            if (error.empty()) error = listening.error;
            s->logger.log(LogLevel::Warning, "tool change listener cannot connect: " + error);
            s->connection.close();
            backoff = backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
            co_await wait_until(s->stop_wakeup, Clock::now() + backoff);
            continue;
        }
        backoff = std::chrono::milliseconds(0);
        co_await listen_on(*s, seen);
        s->connection.close();
    }
    s->connection.close();
}

}  // namespace

Listener::Listener(asio::io_context &loop, std::string dsn, const Logger &logger,
                   std::function<void()> on_change,
                   std::function<void(const std::string &)> on_session_ended)
    : state_(std::make_shared<State>(loop, std::move(dsn), logger, std::move(on_change),
                                     std::move(on_session_ended))) {
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
        s->connection.interrupt();
        s->stop_wakeup.fire();
    });
    std::future<void> ended = s->ended.get_future();
    wait_for_loop(s->loop, ended, std::chrono::seconds(5));
    s->connector.join();
}

}  // namespace pg_mcp::bridge
