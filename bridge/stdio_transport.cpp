// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "stdio_transport.hpp"
#include "loop_wait.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <future>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace pg_mcp::bridge {

namespace asio = boost::asio;

// The writer's state, shared with its thread (which may outlive the LineWriter when a client
// stops reading at exit: it is left to the process's end, and touches only this).
struct LineWriter::Shared {
    explicit Shared(int fd) : fd(fd) {}
    int fd;
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<std::shared_ptr<Entry>> queue;
    size_t queued_bytes = 0;  // of the lines waiting
    bool stopping = false;
    bool held = false;  // the input was told to wait (queued_bytes over kHigh)
    std::function<void()> on_drained;
    std::atomic<bool> broken{false};

    // A write the descriptor cannot take now (it may be non-blocking: stdin and stdout can
    // share one open file) waits for it, up to a minute; a client that reads nothing for that
    // long, or has gone (EPIPE), breaks the output: nothing more is written.
    bool write_all(std::string_view data) {
        if (broken) return false;
        size_t written = 0;
        while (written < data.size()) {
            ssize_t n = ::write(fd, data.data() + written, data.size() - written);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                pollfd out{fd, POLLOUT, 0};
                int ready;
                do {
                    ready = ::poll(&out, 1, 60000);
                } while (ready < 0 && errno == EINTR);
                if (ready > 0) continue;
            }
            if (n <= 0) {
                broken = true;
                return false;
            }
            written += static_cast<size_t>(n);
        }
        return true;
    }

    void run() {
        for (;;) {
            std::shared_ptr<Entry> entry;
            {
                std::unique_lock<std::mutex> lock(mutex);
                changed.wait(lock, [this] { return stopping || !queue.empty(); });
                if (queue.empty()) return;  // stopping, all written
                entry = queue.front();
            }
            bool ok = write_all(entry->text);
            if (entry->body != nullptr) {
                std::string piece;
                BodyStream &body = *entry->body;
                while (body.next(piece))
                    if (ok) ok = write_all(piece);  // keep reading: the connection must drain
                // A stream that broke halfway leaves a line no client can parse; the caller
                // then sends an error for the same request on the next line.
                write_all(body.failed.empty() ? std::string_view("}}\n") : std::string_view("\n"));
            }
            std::function<void()> resume;
            {
                std::lock_guard<std::mutex> lock(mutex);
                entry->written = true;
                queue.pop_front();
                queued_bytes -= entry->text.size();
                if (held && queued_bytes < kLow) {
                    held = false;
                    resume = on_drained;
                }
            }
            changed.notify_all();
            if (resume) resume();
        }
    }

    // A line (no streamed body) written at once by the caller when nothing is queued and the
    // write cannot block: a pipe with room for it, a socket taking it whole without waiting,
    // a regular file. This saves the hand-off to the writer thread for most answers.
    enum class Kind { Other, Pipe, Socket, File } kind = Kind::Other;
    bool write_now(std::string &text) {
        if (kind == Kind::Other || broken) return false;
        if (kind == Kind::Socket) {
            ssize_t n = ::send(fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n == static_cast<ssize_t>(text.size())) return true;
            if (n > 0) text.erase(0, static_cast<size_t>(n));  // the rest: the writer thread's
            return false;
        }
        if (kind == Kind::Pipe) {
            int unread = 0, capacity = fcntl(fd, F_GETPIPE_SZ);
            if (capacity <= 0 || ioctl(fd, FIONREAD, &unread) != 0 ||
                text.size() > static_cast<size_t>(capacity - unread))
                return false;
        }
        return write_all(text);
    }

    void push(std::shared_ptr<Entry> entry) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (entry->body == nullptr && queue.empty() && !stopping && write_now(entry->text))
                return;
            queued_bytes += entry->text.size();
            queue.push_back(std::move(entry));
        }
        changed.notify_all();
    }
};

LineWriter::LineWriter(int fd) : shared_(std::make_shared<Shared>(fd)) {
    struct stat info {};
    if (::fstat(fd, &info) == 0)
        shared_->kind = S_ISFIFO(info.st_mode)   ? Shared::Kind::Pipe
                        : S_ISSOCK(info.st_mode) ? Shared::Kind::Socket
                        : S_ISREG(info.st_mode)  ? Shared::Kind::File
                                                 : Shared::Kind::Other;
    thread_ = std::thread([shared = shared_] { shared->run(); });
}

LineWriter::~LineWriter() {
    bool drained;
    {
        std::unique_lock<std::mutex> lock(shared_->mutex);
        shared_->stopping = true;
        shared_->on_drained = nullptr;
        shared_->changed.notify_all();
        drained = shared_->changed.wait_for(lock, std::chrono::seconds(5),
                                            [this] { return shared_->queue.empty(); });
    }
    // A client that has stopped reading keeps the writer in write(2): the thread, which owns
    // what it uses, is left to the process's exit.
    if (drained)
        thread_.join();
    else
        thread_.detach();
}

bool LineWriter::broken() const {
    return shared_->broken;
}

bool LineWriter::backlogged() {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->queued_bytes <= kHigh) return false;
    shared_->held = true;
    return true;
}

void LineWriter::on_drained(std::function<void()> resume) {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->on_drained = std::move(resume);
}

void LineWriter::send(const json &message) {
    // Replace rather than throw on invalid UTF-8: nothing may stop the writer.
    auto entry = std::make_shared<Entry>();
    entry->text = message.dump(-1, ' ', false, json::error_handler_t::replace);
    entry->text.push_back('\n');
    shared_->push(std::move(entry));
}

void LineWriter::answer(Reply reply) {
    auto entry = std::make_shared<Entry>();
    entry->text = std::move(reply.text);
    entry->text.push_back('\n');
    shared_->push(std::move(entry));
}

void LineWriter::send_streamed(Reply head, BodyStream &body) {
    if (body.buffered) {
        // In memory already: one line, queued like any other (the caller may be the loop). A
        // body that broke off gives nothing: the caller answers with an error next.
        std::string chunk;
        while (body.next(chunk)) head.text += chunk;
        if (!body.failed.empty()) return;
        auto entry = std::make_shared<Entry>();
        entry->text = std::move(head.text) + "}}\n";
        shared_->push(std::move(entry));
        return;
    }
    // Written as it is read, by the writer thread; the body lives until this returns.
    auto entry = std::make_shared<Entry>();
    entry->text = std::move(head.text);
    entry->body = &body;
    shared_->push(entry);
    std::unique_lock<std::mutex> lock(shared_->mutex);
    shared_->changed.wait(lock, [&] { return entry->written; });
}

void LineWriter::flush() {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    shared_->changed.wait(lock, [this] { return shared_->queue.empty(); });
}

void LineSplitter::keep_tail(const char *data, size_t n) {
    tail_.append(data, n);
    if (tail_.size() > kKeep) tail_.erase(0, tail_.size() - kKeep);
}

void LineSplitter::feed(const char *data, size_t n) {
    size_t start = 0;
    for (size_t i = 0; i < n; ++i) {
        if (data[i] != '\n') continue;
        if (discarding_) {
            keep_tail(data + start, i - start);
            on_oversized_(max_bytes_, head_, tail_);
            discarding_ = false;
        } else {
            line_.append(data + start, i - start);
            if (!line_.empty() && line_.back() == '\r') line_.pop_back();
            if (line_.size() > max_bytes_) {
                on_oversized_(
                    max_bytes_, std::string_view(line_).substr(0, kKeep),
                    std::string_view(line_).substr(line_.size() - std::min(line_.size(), kKeep)));
            } else if (!line_.empty()) {
                on_line_(line_);
            }
        }
        line_.clear();
        start = i + 1;
    }
    if (discarding_) {
        keep_tail(data + start, n - start);
    } else if (start < n) {
        line_.append(data + start, n - start);
        if (line_.size() > max_bytes_) {
            // Reported when the line ends, with its last bytes.
            head_ = line_.substr(0, kKeep);
            tail_ = line_.substr(line_.size() - std::min(line_.size(), kKeep));
            line_.clear();
            line_.shrink_to_fit();
            discarding_ = true;
        }
    }
}

void LineSplitter::end() {
    if (discarding_)
        on_oversized_(max_bytes_, head_, tail_);
    else if (!line_.empty())
        on_line_(line_);
    line_.clear();
    discarding_ = false;
}

void LineReader::run(const std::function<void(std::string_view)> &on_line,
                     const OversizedFn &on_oversized) {
    LineSplitter splitter(max_bytes_, on_line, on_oversized);
    std::vector<char> buffer(65536);
    for (;;) {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        int ready = poll(fds, wake_fd_ >= 0 ? 2 : 1, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (wake_fd_ >= 0 && (fds[1].revents & POLLIN)) return;
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(fd_, buffer.data(), buffer.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            splitter.end();
            return;
        }
        splitter.feed(buffer.data(), static_cast<size_t>(n));
    }
}

struct LoopLineReader::State {
    State(asio::io_context &io, size_t max_bytes) : loop(io), input(io), max_bytes(max_bytes) {}
    asio::io_context &loop;
    asio::posix::stream_descriptor input;
    size_t max_bytes;
    std::unique_ptr<LineSplitter> splitter;
    std::function<void()> on_end;
    std::function<bool()> full;  // the output is behind: pause
    bool paused = false;
    std::vector<char> buffer = std::vector<char>(65536);
    bool ended = false;

    void read(std::shared_ptr<State> self) {
        input.async_read_some(
            asio::buffer(buffer), [self](const boost::system::error_code &error, size_t n) {
                if (self->ended) return;
                if (n > 0) self->splitter->feed(self->buffer.data(), n);
                if (error && error != asio::error::interrupted && error != asio::error::try_again) {
                    self->finish();
                    return;
                }
                // A client that sends but does not read its answers waits until they are
                // written: memory stays bounded.
                if (self->full && self->full()) {
                    self->paused = true;
                    return;
                }
                self->read(self);
            });
    }
    void finish() {
        if (ended) return;
        ended = true;
        splitter->end();
        if (on_end) on_end();
    }
};

LoopLineReader::LoopLineReader(asio::io_context &loop, int fd, size_t max_bytes)
    : state_(std::make_shared<State>(loop, max_bytes)) {
    // A descriptor of its own: closing it leaves fd open.
    int own = ::dup(fd);
    boost::system::error_code error;
    if (own >= 0) {
        state_->input.assign(own, error);
        if (error) ::close(own);
    }
    if (own < 0 || error) state_->input = asio::posix::stream_descriptor(loop);  // unwatchable
    fd_ = fd;
}

LoopLineReader::~LoopLineReader() {
    asio::io_context &loop = state_->loop;
    if (state_->input.is_open() && !loop.stopped()) {
        // Closed on the loop, which may be reading it.
        std::promise<void> closed;
        std::future<void> done = closed.get_future();
        asio::post(loop, [state = state_, &closed] {
            state->ended = true;
            boost::system::error_code ignored;
            state->input.close(ignored);
            closed.set_value();
        });
        wait_for_loop(loop, done, std::chrono::seconds(5));
    }
    if (thread_.joinable()) thread_.detach();  // blocked in read(2) on input nobody sends
}

void LoopLineReader::hold_while(std::function<bool()> full) {
    state_->full = std::move(full);
}

void LoopLineReader::resume() {
    asio::post(state_->loop, [state = state_] {
        if (!state->paused || state->ended) return;
        state->paused = false;
        state->read(state);
    });
}

void LoopLineReader::start(LineSplitter::LineFn on_line, LineSplitter::OversizedFn on_oversized,
                           std::function<void()> on_end) {
    state_->on_end = std::move(on_end);
    if (state_->input.is_open()) {
        state_->splitter = std::make_unique<LineSplitter>(state_->max_bytes, std::move(on_line),
                                                          std::move(on_oversized));
        asio::post(state_->loop, [state = state_] { state->read(state); });
        return;
    }
    // A regular file (or anything epoll refuses): read by a thread, lines handled on the loop.
    std::shared_ptr<State> state = state_;
    int fd = fd_;
    thread_ = std::thread([state, fd, on_line, on_oversized] {
        asio::io_context &loop = state->loop;
        LineReader reader(fd, -1, state->max_bytes);
        reader.run(
            [&](std::string_view line) {
                asio::post(loop, [on_line, text = std::string(line)] { on_line(text); });
            },
            [&](size_t limit, std::string_view head, std::string_view tail) {
                asio::post(loop, [on_oversized, limit, head = std::string(head),
                                  tail = std::string(tail)] { on_oversized(limit, head, tail); });
            });
        asio::post(loop, [state] {
            if (state->ended) return;
            state->ended = true;
            if (state->on_end) state->on_end();
        });
    });
}

}  // namespace pg_mcp::bridge
