// The tool catalog's change listener: LISTEN pg_mcp_tools_changed on a connection of its own.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "log.hpp"

namespace pg_mcp::bridge {

// Listens for pg_mcp_tools_changed on its own connection and calls on_change for each
// notification (and after a reconnect, since changes may have been missed).
class Listener {
  public:
    Listener(std::string dsn, const Logger &logger, std::function<void()> on_change);
    ~Listener();
    void stop();

  private:
    void loop();
    std::string dsn_;
    const Logger &logger_;
    std::function<void()> on_change_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

}  // namespace pg_mcp::bridge
