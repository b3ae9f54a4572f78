// A libpq connection driven by the event loop, for the bridge's own connections beside the pool
// (the catalog listener, the audit confirmer): non-blocking, its socket watched by the loop, its
// statements awaited by coroutines; opening it, which blocks in libpq, runs on a helper thread.
#pragma once

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <string>
#include <vector>

#include <libpq-fe.h>

namespace pg_mcp::bridge {

class LoopConnection {
  public:
    LoopConnection(boost::asio::io_context &loop, std::string dsn)
        : loop_(loop), dsn_(std::move(dsn)) {}
    ~LoopConnection() { close(); }
    LoopConnection(const LoopConnection &) = delete;
    LoopConnection &operator=(const LoopConnection &) = delete;

    // Opens the connection (closing one still open); the connect runs on `helper`. False, with
    // `error` set, when it failed.
    boost::asio::awaitable<bool> open(boost::asio::thread_pool &helper, std::string &error);
    bool is_open() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }
    void close();
    // Ends any wait in progress and every later one until the next open() (its statement
    // reports the connection as lost): for stopping.
    void interrupt();

    struct Answer {
        bool connected = false;  // false: the connection failed (or was interrupted)
        bool ok = false;         // the statement succeeded
        std::string value;       // its first row's first value, if any
        std::string error;       // why not ok
    };
    // Sends `sql` with its parameters (text, bound) and reads its result.
    boost::asio::awaitable<Answer> query(const char *sql, std::vector<std::string> params = {});
    // Waits until the server sends something (e.g. a notification), then reads it. False when the
    // connection ended (or the wait was interrupted).
    boost::asio::awaitable<bool> readable();
    PGconn *get() const { return conn_; }

  private:
    boost::asio::io_context &loop_;
    std::string dsn_;
    PGconn *conn_ = nullptr;
    std::unique_ptr<boost::asio::posix::stream_descriptor> socket_;  // conn_'s; libpq owns the fd
    bool interrupted_ = false;
};

}  // namespace pg_mcp::bridge
