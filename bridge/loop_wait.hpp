// Waiting for what the event loop does, from outside its handlers: the loop runs on the main
// thread, so a wait there drives the loop until what it waits for is done (elsewhere it blocks).
#pragma once

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <future>

namespace pg_mcp::bridge {

// Marks the calling thread, for the object's lifetime, as the one that runs `loop`.
class LoopDriver {
  public:
    explicit LoopDriver(boost::asio::io_context &loop);
    ~LoopDriver();
    LoopDriver(const LoopDriver &) = delete;
    LoopDriver &operator=(const LoopDriver &) = delete;

  private:
    boost::asio::io_context *previous_;
};

// True on the thread that runs `loop`, outside the loop's handlers.
bool drives_loop(boost::asio::io_context &loop);

// Runs `loop` for about `span` on its driving thread; elsewhere sleeps that long.
void run_loop_for(boost::asio::io_context &loop, std::chrono::steady_clock::duration span);

// On the driving thread: runs one of the loop's handlers, waiting at most until `until`.
void run_loop_once(boost::asio::io_context &loop, std::chrono::steady_clock::time_point until);

// Waits up to `timeout` for `done`; true when it is ready. On the driving thread the loop runs
// meanwhile, a handler at a time (at most 10 ms apart, so a promise kept by another thread is
// seen soon). For start and stop, not for serving: serving is the loop's own run().
template <class T>
bool wait_for_loop(boost::asio::io_context &loop, std::future<T> &done,
                   std::chrono::steady_clock::duration timeout) {
    using Clock = std::chrono::steady_clock;
    Clock::time_point deadline = Clock::now() + timeout;
    if (!drives_loop(loop)) return done.wait_until(deadline) == std::future_status::ready;
    while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        Clock::time_point now = Clock::now();
        if (now >= deadline) return false;
        run_loop_once(loop, std::min(deadline, now + std::chrono::milliseconds(10)));
    }
    return true;
}

// The same without a time limit.
template <class T>
void wait_for_loop(boost::asio::io_context &loop, std::future<T> &done) {
    while (!wait_for_loop(loop, done, std::chrono::hours(1))) {
    }
}

}  // namespace pg_mcp::bridge
