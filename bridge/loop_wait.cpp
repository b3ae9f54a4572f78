// The thread that drives the event loop, and running the loop from a wait on that thread.
#include "loop_wait.hpp"

#include <thread>

namespace pg_mcp::bridge {

namespace {
thread_local boost::asio::io_context *driven = nullptr;
}

LoopDriver::LoopDriver(boost::asio::io_context &loop) : previous_(driven) {
    driven = &loop;
}

LoopDriver::~LoopDriver() {
    driven = previous_;
}

bool drives_loop(boost::asio::io_context &loop) {
    return driven == &loop && !loop.get_executor().running_in_this_thread();
}

void run_loop_once(boost::asio::io_context &loop, std::chrono::steady_clock::time_point until) {
    if (!drives_loop(loop)) {
        std::this_thread::sleep_until(until);
        return;
    }
    // Stopped (told to, or out of work): restarted; with no work at all, the wait goes on by
    // the clock rather than spin.
    if (loop.stopped()) loop.restart();
    if (loop.run_one_until(until) == 0 && loop.stopped()) {
        loop.restart();
        std::this_thread::sleep_until(until);
    }
}

void run_loop_for(boost::asio::io_context &loop, std::chrono::steady_clock::duration span) {
    auto until = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < until) run_loop_once(loop, until);
}

}  // namespace pg_mcp::bridge
