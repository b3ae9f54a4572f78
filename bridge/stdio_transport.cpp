#include "stdio_transport.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace pg_mcp::bridge {

bool LineWriter::write_all(std::string_view data) {
    if (broken_) return false;
    size_t written = 0;
    while (written < data.size()) {
        ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            broken_ = true;  // the client went away (EPIPE): stop writing
            return false;
        }
        written += static_cast<size_t>(n);
    }
    return true;
}

void LineWriter::send(const json &message) {
    // Replace rather than throw on invalid UTF-8: nothing may stop the writer.
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
    line.push_back('\n');
    std::lock_guard<std::mutex> lock(mutex_);
    write_all(line);
}

void LineWriter::send_streamed(const json &message, BodyStream &body) {
    std::string head = streamed_prefix(message);
    std::string chunk;
    std::lock_guard<std::mutex> lock(mutex_);
    bool ok = write_all(head);
    while (body.next(chunk))
        if (ok) ok = write_all(chunk);  // keep reading: the connection must be drained
    // A stream that broke halfway leaves a line no client can parse; the caller then sends an
    // error for the same request on the next line.
    write_all(body.failed.empty() ? std::string_view("}}\n") : std::string_view("\n"));
}

void LineReader::run(const std::function<void(std::string_view)> &on_line,
                     const OversizedFn &on_oversized) {
    constexpr size_t kKeep = 512;  // bytes of an oversized line kept to find its id
    std::string line;
    bool discarding = false;  // inside a line that exceeded max_bytes_
    std::string head, tail;
    auto keep_tail = [&](const char *data, size_t n) {
        tail.append(data, n);
        if (tail.size() > kKeep) tail.erase(0, tail.size() - kKeep);
    };
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
            // End of input: a last line without its newline still counts.
            if (discarding)
                on_oversized(max_bytes_, head, tail);
            else if (!line.empty())
                on_line(line);
            return;
        }
        size_t start = 0;
        for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
            if (buffer[i] != '\n') continue;
            if (discarding) {
                keep_tail(buffer.data() + start, i - start);
                on_oversized(max_bytes_, head, tail);
                discarding = false;
            } else {
                line.append(buffer.data() + start, i - start);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (line.size() > max_bytes_) {
                    on_oversized(
                        max_bytes_, std::string_view(line).substr(0, kKeep),
                        std::string_view(line).substr(line.size() - std::min(line.size(), kKeep)));
                } else if (!line.empty()) {
                    on_line(line);
                }
            }
            line.clear();
            start = i + 1;
        }
        if (discarding) {
            keep_tail(buffer.data() + start, static_cast<size_t>(n) - start);
        } else if (start < static_cast<size_t>(n)) {
            line.append(buffer.data() + start, static_cast<size_t>(n) - start);
            if (line.size() > max_bytes_) {
                // Reported when the line ends, with its last bytes.
                head = line.substr(0, kKeep);
                tail = line.substr(line.size() - std::min(line.size(), kKeep));
                line.clear();
                line.shrink_to_fit();
                discarding = true;
            }
        }
    }
}

}  // namespace pg_mcp::bridge
