// The stdio transport: newline-delimited JSON-RPC messages on stdin/stdout, with a bound on
// line length, and a wake-up pipe so that signals end the read loop promptly.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "mcp_server.hpp"

namespace pg_mcp::bridge {

// Writes one message per line to a file descriptor; safe to call from any thread.
class LineWriter : public Output {
  public:
    explicit LineWriter(int fd) : fd_(fd) {}
    void send(const json &message) override;
    // Writes the body as it is read, holding the output meanwhile: a large result is never in
    // memory whole.
    void send_streamed(const json &message, BodyStream &body) override;
    bool broken() const { return broken_; }

  private:
    bool write_all(std::string_view data);  // under mutex_
    int fd_;
    std::mutex mutex_;
    std::atomic<bool> broken_{false};
};

// Reads lines from fd until end of file or until `wake_fd` becomes readable. Lines longer
// than max_bytes are discarded (on_oversized is called once per such line, with the line's
// first and last bytes) without ever holding more than max_bytes in memory. Returns when the
// input ends or on wake-up.
class LineReader {
  public:
    LineReader(int fd, int wake_fd, size_t max_bytes)
        : fd_(fd), wake_fd_(wake_fd), max_bytes_(max_bytes) {}
    using OversizedFn =
        std::function<void(size_t limit, std::string_view head, std::string_view tail)>;
    void run(const std::function<void(std::string_view)> &on_line, const OversizedFn &on_oversized);

  private:
    int fd_;
    int wake_fd_;
    size_t max_bytes_;
};

}  // namespace pg_mcp::bridge
