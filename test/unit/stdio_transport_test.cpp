// Line framing on a real pipe: newlines, CRLF, a final line without newline, blank lines, and
// lines over the limit (discarded without buffering them, reading continues after them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "stdio_transport.hpp"

using namespace pg_mcp::bridge;

namespace {

std::vector<std::string> read_all(const std::string &input, size_t limit,
                                  std::vector<size_t> &oversized) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    std::thread writer([&] {
        size_t written = 0;
        while (written < input.size()) {
            ssize_t n = write(fds[1], input.data() + written,
                              std::min<size_t>(4096, input.size() - written));
            if (n <= 0) break;
            written += static_cast<size_t>(n);
        }
        close(fds[1]);
    });
    std::vector<std::string> lines;
    LineReader reader(fds[0], -1, limit);
    reader.run([&](std::string_view line) { lines.emplace_back(line); },
               [&](size_t max, std::string_view, std::string_view) { oversized.push_back(max); });
    writer.join();
    close(fds[0]);
    return lines;
}

}  // namespace

TEST(StdioTransport, SplitsLines) {
    std::vector<size_t> oversized;
    auto lines = read_all("a\r\n\nb\nlast", 100, oversized);
    EXPECT_EQ(lines, (std::vector<std::string>{"a", "b", "last"}));
    EXPECT_TRUE(oversized.empty());
}

TEST(StdioTransport, DiscardsOversizedLinesAndContinues) {
    std::vector<size_t> oversized;
    std::string huge(10 * 1024 * 1024, 'x');  // 10 MB in one line
    auto lines = read_all("first\n" + huge + "\nafter\n" + std::string(2000, 'y') + "\nend\n", 1024,
                          oversized);
    EXPECT_EQ(lines, (std::vector<std::string>{"first", "after", "end"}));
    EXPECT_EQ(oversized, (std::vector<size_t>{1024, 1024}));
}

TEST(StdioTransport, WriterWritesOneLinePerMessage) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    LineWriter writer(fds[1]);
    writer.send(json{{"a", "line\nbreak"}});
    writer.flush();
    close(fds[1]);
    char buffer[256];
    ssize_t n = read(fds[0], buffer, sizeof buffer);
    close(fds[0]);
    EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "{\"a\":\"line\\nbreak\"}\n");
}

TEST(StdioTransport, OversizedLinesReportTheirEnds) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    std::string big = R"({"method":"tools/call","params":{"arguments":{"x":")" +
                      std::string(200000, 'a') + R"("}},"jsonrpc":"2.0","id":42})";
    std::thread writer([&] {
        std::string all = big + "\n";
        size_t written = 0;
        while (written < all.size())
            written +=
                static_cast<size_t>(write(fds[1], all.data() + written, all.size() - written));
        close(fds[1]);
    });
    std::string head, tail;
    LineReader reader(fds[0], -1, 4096);
    reader.run([](std::string_view) {},
               [&](size_t, std::string_view h, std::string_view t) {
                   head = h;
                   tail = t;
               });
    writer.join();
    close(fds[0]);
    EXPECT_EQ(head.substr(0, 10), big.substr(0, 10));
    EXPECT_EQ(tail, big.substr(big.size() - tail.size()));
    EXPECT_EQ(recover_request_id(head, tail), 42);
}

TEST(StdioTransport, LoopReaderSplitsLinesOnTheLoopAndEndsOnce) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    boost::asio::io_context loop;
    std::vector<std::string> lines;
    std::vector<size_t> oversized;
    int ended = 0;
    {
        LoopLineReader reader(loop, fds[0], 16);
        reader.start(
            [&](std::string_view line) { lines.emplace_back(line); },
            [&](size_t limit, std::string_view, std::string_view) { oversized.push_back(limit); },
            [&] { ended++; });
        std::thread writer([&] {
            std::string input = "one\r\n" + std::string(40, 'x') + "\ntwo\nthree";
            for (char c : input) EXPECT_EQ(write(fds[1], &c, 1), 1);  // a byte at a time
            close(fds[1]);
        });
        loop.run();  // ends when the reader has nothing left to wait for
        writer.join();
    }
    close(fds[0]);
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
    EXPECT_EQ(oversized, std::vector<size_t>{16});
    EXPECT_EQ(ended, 1);
}

// A body streamed from one thread (its pieces arriving as another thread produces them) never
// holds up a message sent meanwhile: the sender only queues (the event loop must never wait
// for the writer), and the message follows the streamed line whole.
TEST(StdioTransport, WriterStreamsABodyWhileOthersSend) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    std::string out;
    std::thread reader([&] {
        char buffer[4096];
        ssize_t n;
        while ((n = read(fds[0], buffer, sizeof buffer)) > 0)
            out.append(buffer, static_cast<size_t>(n));
    });
    {
        LineWriter writer(fds[1]);
        std::mutex mutex;
        std::condition_variable cv;
        bool other_sent = false;
        int pieces = 0;
        BodyStream body;  // not buffered: next() waits for the other sender, as for the loop
        body.next = [&](std::string &piece) {
            if (pieces == 2) return false;
            if (pieces == 1) {
                std::unique_lock<std::mutex> lock(mutex);
                if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return other_sent; }))
                    return false;
            }
            piece = pieces++ == 0 ? "\"a\":1" : ",\"b\":2";
            return true;
        };
        std::thread streamer([&] {
            Reply head;
            head.id = 1;
            head.text = streamed_prefix(json{{"id", 1}, {"result", {{"x", 0}}}});
            writer.send_streamed(std::move(head), body);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the stream has begun
        auto sent = std::async(std::launch::async, [&] { writer.send(json{{"id", 2}}); });
        EXPECT_EQ(sent.wait_for(std::chrono::seconds(2)), std::future_status::ready)
            << "send() waited for the streamed body";
        {
            std::lock_guard<std::mutex> lock(mutex);
            other_sent = true;
        }
        cv.notify_all();
        streamer.join();
        writer.flush();
    }
    close(fds[1]);
    reader.join();
    close(fds[0]);
    EXPECT_EQ(out, "{\"id\":1,\"result\":{\"x\":0,\"a\":1,\"b\":2}}\n{\"id\":2}\n");
}

// While the output is behind (hold_while says so), input is not read; resume() goes on.
TEST(StdioTransport, LoopReaderPausesWhileTheOutputIsBehind) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    boost::asio::io_context loop;
    auto guard = boost::asio::make_work_guard(loop);
    std::vector<std::string> lines;
    std::atomic<bool> behind{true};
    std::atomic<int> ended{0};
    LoopLineReader reader(loop, fds[0], 1024);
    reader.hold_while([&] { return behind.load(); });
    reader.start([&](std::string_view line) { lines.emplace_back(line); },
                 [](size_t, std::string_view, std::string_view) {}, [&] { ended++; });
    std::thread runner([&] { loop.run(); });
    ASSERT_EQ(write(fds[1], "one\n", 4), 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_EQ(write(fds[1], "two\n", 4), 4);
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::vector<std::string> while_behind;
    boost::asio::post(loop, [&] { while_behind = lines; });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(while_behind, std::vector<std::string>{"one"}) << "nothing read while behind";
    behind = false;
    reader.resume();
    for (int i = 0; i < 100 && ended == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    guard.reset();
    loop.stop();
    runner.join();
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
    EXPECT_EQ(ended, 1);
    close(fds[0]);
}
