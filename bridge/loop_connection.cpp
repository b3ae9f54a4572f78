// A libpq connection driven by the event loop.

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "loop_connection.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

#include "pg_connection.hpp"
#include "wakeup.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using Descriptor = asio::posix::stream_descriptor;

namespace {

auto with(boost::system::error_code &error) {
    return asio::redirect_error(asio::use_awaitable, error);
}

}  // namespace

asio::awaitable<bool> LoopConnection::open(asio::thread_pool &helper, std::string &error) {
    close();
    interrupted_ = false;
    struct Box {
        explicit Box(asio::io_context &io) : done(io) {}
        Wakeup done;
        PGconn *conn = nullptr;
    };
    auto box = std::make_shared<Box>(loop_);
    asio::post(helper, [&loop = loop_, dsn = dsn_, box] {
        PGconn *conn = open_connection(dsn);
        asio::post(loop, [box, conn] {
            box->conn = conn;
            box->done.fire();
        });
    });
    co_await wait_until(box->done, std::chrono::steady_clock::time_point::max());
    conn_ = box->conn;
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK || PQsetnonblocking(conn_, 1) != 0) {
        error = connection_error(conn_);
        close();
        co_return false;
    }
    socket_ = std::make_unique<Descriptor>(loop_, PQsocket(conn_));
    co_return true;
}

void LoopConnection::close() {
    if (socket_) {
        socket_->release();
        socket_.reset();
    }
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
}

void LoopConnection::interrupt() {
    interrupted_ = true;
    if (socket_) socket_->cancel();
}

asio::awaitable<LoopConnection::Answer> LoopConnection::query(const char *sql,
                                                              std::vector<std::string> params) {
    Answer answer;
    if (!is_open() || !socket_ || interrupted_) co_return answer;
    std::vector<const char *> values;
    for (const std::string &param : params) values.push_back(param.c_str());
    int sent = params.empty() ? PQsendQuery(conn_, sql)
                              : PQsendQueryParams(conn_, sql, static_cast<int>(values.size()),
                                                  nullptr, values.data(), nullptr, nullptr, 0);
    if (sent == 0) co_return answer;
    boost::system::error_code error;
    for (int flushed = PQflush(conn_); flushed != 0; flushed = PQflush(conn_)) {
        // What the server sends meanwhile is read first, so that neither side waits for the
        // other to read (libpq's rule for a non-blocking send).
        if (flushed < 0 || PQconsumeInput(conn_) == 0) co_return answer;
        co_await socket_->async_wait(Descriptor::wait_write, with(error));
        if (error || interrupted_) co_return answer;
    }
    answer.ok = true;
    for (;;) {
        while (PQisBusy(conn_) != 0) {
            co_await socket_->async_wait(Descriptor::wait_read, with(error));
            if (error || interrupted_ || PQconsumeInput(conn_) == 0) co_return Answer();
        }
        PGresult *result = PQgetResult(conn_);
        if (result == nullptr) break;
        ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) {
            answer.value = PQgetvalue(result, 0, 0);
        } else if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
            answer.ok = false;
            answer.error = trim(PQresultErrorMessage(result));
        }
        PQclear(result);
    }
    answer.connected = PQstatus(conn_) == CONNECTION_OK;
    if (!answer.connected && answer.error.empty()) answer.error = connection_error(conn_);
    co_return answer;
}

asio::awaitable<bool> LoopConnection::readable() {
    if (!is_open() || !socket_ || interrupted_) co_return false;
    boost::system::error_code error;
    co_await socket_->async_wait(Descriptor::wait_read, with(error));
    co_return !error && !interrupted_ && PQconsumeInput(conn_) != 0 &&
        PQstatus(conn_) == CONNECTION_OK;
}

}  // namespace pg_mcp::bridge
