// The tool catalog's change listener: LISTEN pg_mcp_tools_changed on a connection of its own,
// watched by the event loop (non-blocking libpq, like the pool).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "log.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

// Calls on_change (on the loop) when mcp.catalog_version() moves: after a notification (only a
// hint: any role may NOTIFY the channel; a burst is checked once), and after a reconnect when
// it changed meanwhile. A lost connection is reopened with the pool's backoff; connecting, which
// blocks in libpq, runs on a helper thread of its own.
class Listener {
  public:
    // With on_session_ended, it also LISTENs on pg_mcp_session_ended and passes each payload on
    // (as sent: any role may NOTIFY the channel, so the receiver checks it).
    Listener(boost::asio::io_context &loop, std::string dsn, const Logger &logger,
             std::function<void()> on_change,
             std::function<void(const std::string &)> on_session_ended = {});
    ~Listener();
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;
    // Ends the listening (a few seconds at most). Not from the loop's thread.
    void stop();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace pg_mcp::bridge
