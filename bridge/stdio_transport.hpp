// The stdio transport: newline-delimited JSON-RPC messages on stdin/stdout, with a bound on
// line length; stdin is read on the event loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <string_view>

#include "mcp_server.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

// Writes one message per line to a file descriptor, from a thread of its own: send() only
// queues (the event loop never waits for a client that reads slowly). A streamed body is
// written as it is read, the messages sent meanwhile after it; a body already in memory is
// queued whole. Safe to call from any thread.
class LineWriter : public Output {
  public:
    explicit LineWriter(int fd);
    ~LineWriter() override;  // writes what is queued (a few seconds at most), then stops
    void answer(Reply reply) override;
    void send(const json &message) override;
    void send_streamed(Reply head, BodyStream &body) override;
    // Waits until everything queued so far is written (or the output broke).
    void flush();
    bool broken() const;
    // Backpressure for the input: true when more than kHigh bytes wait to be written (the
    // reader should pause); `resume` is then called, from the writer's thread, once fewer than
    // kLow do.
    bool backlogged();
    void on_drained(std::function<void()> resume);
    static constexpr size_t kHigh = 8 << 20, kLow = 2 << 20;

  private:
    struct Entry {
        std::string text;
        BodyStream *body = nullptr;  // a streamed body: text is its head, then its pieces
        bool written = false;
    };
    struct Shared;
    std::shared_ptr<Shared> shared_;
    std::thread thread_;
};

// Splits input into lines, bounded: a line longer than max_bytes is discarded (on_oversized is
// called once for it, with its first and last bytes) without ever holding more than max_bytes.
class LineSplitter {
  public:
    using LineFn = std::function<void(std::string_view)>;
    using OversizedFn =
        std::function<void(size_t limit, std::string_view head, std::string_view tail)>;
    LineSplitter(size_t max_bytes, LineFn on_line, OversizedFn on_oversized)
        : max_bytes_(max_bytes),
          on_line_(std::move(on_line)),
          on_oversized_(std::move(on_oversized)) {}
    void feed(const char *data, size_t n);
    // End of input: a last line without its newline still counts.
    void end();

  private:
    void keep_tail(const char *data, size_t n);
    static constexpr size_t kKeep = 512;  // bytes of an oversized line kept to find its id
    size_t max_bytes_;
    LineFn on_line_;
    OversizedFn on_oversized_;
    std::string line_;
    bool discarding_ = false;  // inside a line that exceeded max_bytes_
    std::string head_, tail_;
};

// Reads lines from fd until end of file or until `wake_fd` becomes readable (blocking; for
// input the event loop cannot watch, such as a regular file).
class LineReader {
  public:
    LineReader(int fd, int wake_fd, size_t max_bytes)
        : fd_(fd), wake_fd_(wake_fd), max_bytes_(max_bytes) {}
    using OversizedFn = LineSplitter::OversizedFn;
    void run(const std::function<void(std::string_view)> &on_line, const OversizedFn &on_oversized);

  private:
    int fd_;
    int wake_fd_;
    size_t max_bytes_;
};

// Reads lines from fd on the event loop (lines are handled on the loop's thread); on_end once
// at end of input. Input the loop cannot watch (a regular file) is read by a thread of its own
// instead, its lines posted to the loop.
class LoopLineReader {
  public:
    LoopLineReader(boost::asio::io_context &loop, int fd, size_t max_bytes);
    ~LoopLineReader();
    void start(LineSplitter::LineFn on_line, LineSplitter::OversizedFn on_oversized,
               std::function<void()> on_end);
    // Asked after each read: true pauses reading until resume() (from any thread).
    void hold_while(std::function<bool()> full);
    void resume();

    struct State;

  private:
    std::shared_ptr<State> state_;
    int fd_ = -1;
    std::thread thread_;
};

}  // namespace pg_mcp::bridge
