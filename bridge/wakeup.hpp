// What a coroutine on the event loop waits for: fired on the loop (work finished on another
// thread posts its fire()), or given up at a deadline.
#pragma once

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace pg_mcp::bridge {

struct Wakeup {
    explicit Wakeup(boost::asio::io_context &io) : timer(io) {}
    boost::asio::steady_timer timer;
    bool fired = false;
    void fire() {
        fired = true;
        timer.cancel();
    }
};

// Waits until `wakeup` fires (true) or `deadline` passes (false). The loop has one thread: a
// fire() posted meanwhile runs either before the check or while the timer waits.
inline boost::asio::awaitable<bool> wait_until(Wakeup &wakeup,
                                               std::chrono::steady_clock::time_point deadline) {
    wakeup.timer.expires_at(deadline);
    while (!wakeup.fired) {
        boost::system::error_code error;
        co_await wakeup.timer.async_wait(
            boost::asio::redirect_error(boost::asio::use_awaitable, error));
        if (!error) break;  // the deadline passed
    }
    co_return wakeup.fired;
}

}  // namespace pg_mcp::bridge
