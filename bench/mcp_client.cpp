// mcp_bench_client: a minimal MCP client over stdio for the benchmarks. It starts the server
// command once per agent, does the handshake, and sends tools/call requests one after another
// (each agent waits for its answer before the next), so that the figures are the server's, not a
// client library's. It parses no more JSON than it must: a response is matched by its position
// (each agent has one request in flight) and checked for an error by its text.
//
//   mcp_bench_client calls --agents N --seconds S --call PARAMS [--range R] [--probe CMD] -- CMD...
//   mcp_bench_client cold  --runs K -- CMD...
//   mcp_bench_client once  --call PARAMS -- CMD...
//   mcp_bench_client http  --agents N --seconds S --call PARAMS [--range R]
//                          [--server-pid P] [--postmaster-pid M] -- URL
//
// http: each agent is one MCP session over Streamable HTTP (its own keep-alive connection to
// URL, e.g. http://127.0.0.1:8080/mcp), with the same handshake and call loop; with
// MCP_BENCH_BEARER set in the environment, every request carries it as a bearer token.
// It reports the CPU time per call, over the timed window, of each party (from /proc):
// cpu_client_us (this process), cpu_server_us (process P), cpu_pg_us (the PostgreSQL processes
// under postmaster M, ended ones included, but for the audit writer) and cpu_writer_us (the
// pg_mcp audit writer, while it runs).
//
// PARAMS is the JSON of tools/call's params; each "{N}" in it becomes a random integer in
// [1, R] per call. Output: one line of key=value pairs (times in milliseconds, memory in kB).
// --probe runs CMD through the shell while the agents are still connected and reports its
// output as probe=... (the benchmark uses it to read the database backends' memory).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One server process with its stdin and stdout.
class Server {
  public:
    explicit Server(const std::vector<std::string> &command) {
        int in[2], out[2];
        if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe failed");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0 && std::getenv("MCP_BENCH_STDERR") == nullptr) dup2(devnull, 2);
            for (int fd = 3; fd < 1024; fd++) close(fd);
            std::vector<char *> argv;
            for (const auto &arg : command) argv.push_back(const_cast<char *>(arg.c_str()));
            argv.push_back(nullptr);
            execvp(argv[0], argv.data());
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        to_ = in[1];
        from_ = out[0];
    }
    ~Server() { stop(); }

    void send(const std::string &line) {
        std::string data = line + "\n";
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = write(to_, data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw std::runtime_error("server closed its input");
            done += static_cast<size_t>(n);
        }
    }

    // The next response (a line with "id" that is not a request or notification).
    std::string response() {
        for (;;) {
            std::string line = read_line();
            if (line.find("\"method\"") != std::string::npos &&
                line.find("\"result\"") == std::string::npos &&
                line.find("\"error\"") == std::string::npos)
                continue;  // a notification or a request from the server
            return line;
        }
    }

    long peak_rss_kb() const {
        std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
        std::string line;
        while (std::getline(status, line))
            if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
        return -1;
    }

    void stop() {
        if (pid_ <= 0) return;
        close(to_);
        int status;
        for (int i = 0; i < 200; i++) {  // up to 2 s for a clean exit at end of input
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            usleep(10000);
        }
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
            pid_ = -1;
        }
        close(from_);
    }

  private:
    std::string read_line() {
        for (;;) {
            size_t end = buffer_.find('\n', scanned_);
            if (end != std::string::npos) {
                std::string line = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                scanned_ = 0;
                return line;
            }
            scanned_ = buffer_.size();
            char chunk[65536];
            ssize_t n = read(from_, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw std::runtime_error("server closed its output");
            buffer_.append(chunk, static_cast<size_t>(n));
        }
    }

    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
    std::string buffer_;
    size_t scanned_ = 0;
};

bool is_failure(const std::string &response) {
    return response.find("\"error\":{") != std::string::npos ||
           response.find("\"isError\":true") != std::string::npos;
}

void handshake(Server &server) {
    server.send(
        R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",)"
        R"("capabilities":{},"clientInfo":{"name":"mcp_bench_client","version":"1"}}})");
    std::string reply = server.response();
    if (reply.find("\"result\"") == std::string::npos)
        throw std::runtime_error("initialize failed: " + reply.substr(0, 300));
    server.send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
}

std::string fill(const std::string &params, std::mt19937 &random, long range) {
    std::string out = params;
    std::uniform_int_distribution<long> pick(1, range);
    for (size_t at = out.find("{N}"); at != std::string::npos; at = out.find("{N}", at))
        out.replace(at, 3, std::to_string(pick(random)));
    return out;
}

double percentile(std::vector<double> &values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    size_t index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

struct Options {
    std::string mode;
    int agents = 1;
    double seconds = 10;
    int runs = 20;
    long range = 1000000;
    std::string call;
    std::string probe;
    pid_t server_pid = 0, postmaster_pid = 0;
    std::vector<std::string> command;
};

Options parse(int argc, char **argv) {
    Options options;
    if (argc < 2) throw std::runtime_error("usage: mcp_bench_client calls|cold|once ... -- CMD...");
    options.mode = argv[1];
    int i = 2;
    for (; i < argc; i++) {
        std::string arg = argv[i];
        if (arg == "--") {
            i++;
            break;
        }
        if (i + 1 >= argc) throw std::runtime_error("missing value for " + arg);
        std::string value = argv[++i];
        if (arg == "--agents")
            options.agents = std::stoi(value);
        else if (arg == "--seconds")
            options.seconds = std::stod(value);
        else if (arg == "--runs")
            options.runs = std::stoi(value);
        else if (arg == "--range")
            options.range = std::stol(value);
        else if (arg == "--call")
            options.call = value;
        else if (arg == "--probe")
            options.probe = value;
        else if (arg == "--server-pid")
            options.server_pid = static_cast<pid_t>(std::stol(value));
        else if (arg == "--postmaster-pid")
            options.postmaster_pid = static_cast<pid_t>(std::stol(value));
        else
            throw std::runtime_error("unknown option " + arg);
    }
    for (; i < argc; i++) options.command.push_back(argv[i]);
    if (options.command.empty()) throw std::runtime_error("no server command after --");
    return options;
}

// CPU time (seconds) of processes, from /proc/PID/stat: utime and stime, and with `children`
// cutime and cstime (the children that have ended and been waited for).
struct ProcStat {
    pid_t parent = 0;
    double own = 0, children = 0;
};
bool read_stat(pid_t pid, ProcStat &stat) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text)) return false;
    size_t close = text.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return false;
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f;
    std::string field;
    while (fields >> field) f.push_back(field);
    if (f.size() < 15) return false;  // f[0] is field 3 (state)
    double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    stat.parent = static_cast<pid_t>(std::stol(f[1]));
    stat.own = (std::stod(f[11]) + std::stod(f[12])) / tick;
    stat.children = (std::stod(f[13]) + std::stod(f[14])) / tick;
    return true;
}

struct CpuSample {
    double client = 0, server = 0, pg = 0, writer = 0;  // pg: every PostgreSQL process
};
CpuSample sample_cpu(pid_t server, pid_t postmaster) {
    CpuSample cpu;
    ProcStat stat;
    if (read_stat(getpid(), stat)) cpu.client = stat.own;
    if (server > 0 && read_stat(server, stat)) cpu.server = stat.own;
    if (postmaster <= 0) return cpu;
    if (read_stat(postmaster, stat)) cpu.pg = stat.own + stat.children;
    for (const auto &entry : std::filesystem::directory_iterator("/proc")) {
        std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        pid_t pid = static_cast<pid_t>(std::stol(name));
        if (!read_stat(pid, stat) || stat.parent != postmaster) continue;
        std::ifstream cmdline(entry.path() / "cmdline");
        std::string title((std::istreambuf_iterator<char>(cmdline)), {});
        cpu.pg += stat.own;
        if (title.find("pg_mcp audit writer") != std::string::npos) cpu.writer += stat.own;
    }
    return cpu;
}

std::string call_request(long id, const std::string &params) {
    return R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
           R"(,"method":"tools/call","params":)" + params + "}";
}

int run_calls(const Options &options) {
    struct Agent {
        std::vector<double> latencies;
        std::vector<double> lists;  // warm tools/list round trips, after the timed calls
        long errors = 0;
        long rss_kb = 0;
        std::string first_error;
        std::string failure;
    };
    std::vector<Agent> agents(static_cast<size_t>(options.agents));
    std::vector<std::unique_ptr<Server>> servers;
    for (int a = 0; a < options.agents; a++)
        servers.push_back(std::make_unique<Server>(options.command));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<int> finished{0};
    std::atomic<bool> probed{false};
    std::vector<std::thread> threads;
    for (int a = 0; a < options.agents; a++) {
        threads.emplace_back([&, a] {
            Agent &agent = agents[static_cast<size_t>(a)];
            Server &server = *servers[static_cast<size_t>(a)];
            std::mt19937 random(static_cast<unsigned>(a + 1));
            try {
                handshake(server);
                server.send(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}})");
                std::string list = server.response();
                if (is_failure(list)) throw std::runtime_error("tools/list failed: " + list);
                long id = 2;
                for (int i = 0; i < 20; i++) {  // warm-up: connections, caches, plans
                    server.send(call_request(id++, fill(options.call, random, options.range)));
                    server.response();
                }
                ready++;
                while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                auto deadline =
                    Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(options.seconds));
                while (Clock::now() < deadline) {
                    std::string request = call_request(id++, fill(options.call, random, options.range));
                    auto start = Clock::now();
                    server.send(request);
                    std::string reply = server.response();
                    agent.latencies.push_back(ms_since(start));
                    if (is_failure(reply)) {
                        if (agent.errors++ == 0) agent.first_error = reply.substr(0, 400);
                    }
                }
                for (int i = 0; i < 20; i++) {
                    auto start = Clock::now();
                    server.send(R"({"jsonrpc":"2.0","id":)" + std::to_string(id++) +
                                R"(,"method":"tools/list","params":{}})");
                    server.response();
                    agent.lists.push_back(ms_since(start));
                }
            } catch (const std::exception &error) {
                agent.failure = error.what();
                ready++;
            }
            finished++;
            while (!probed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            agent.rss_kb = server.peak_rss_kb();
        });
    }
    while (ready < options.agents) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto start = Clock::now();
    go = true;
    while (finished < options.agents) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    double elapsed = ms_since(start) / 1000.0;
    std::string probe;
    if (!options.probe.empty()) {
        FILE *pipe = popen(options.probe.c_str(), "r");
        char line[256];
        while (pipe != nullptr && std::fgets(line, sizeof line, pipe) != nullptr) probe += line;
        if (pipe != nullptr) pclose(pipe);
        while (!probe.empty() && (probe.back() == '\n' || probe.back() == ' ')) probe.pop_back();
    }
    probed = true;
    for (auto &thread : threads) thread.join();
    servers.clear();

    std::vector<double> all, lists;
    long errors = 0, rss = 0;
    for (auto &agent : agents) {
        if (!agent.failure.empty()) {
            std::fprintf(stderr, "agent failed: %s\n", agent.failure.c_str());
            return 1;
        }
        all.insert(all.end(), agent.latencies.begin(), agent.latencies.end());
        lists.insert(lists.end(), agent.lists.begin(), agent.lists.end());
        errors += agent.errors;
        rss = std::max(rss, agent.rss_kb);
        if (agent.errors > 0) std::fprintf(stderr, "error reply: %s\n", agent.first_error.c_str());
    }
    double calls = static_cast<double>(all.size());
    std::printf("calls=%.0f errors=%ld calls_per_s=%.0f p50_ms=%.3f p99_ms=%.3f list_p50_ms=%.3f "
                "rss_kb=%ld probe=%s\n",
                calls, errors, calls / elapsed, percentile(all, 0.50), percentile(all, 0.99),
                percentile(lists, 0.50), rss, probe.empty() ? "-" : probe.c_str());
    return errors > 0 ? 1 : 0;
}

int run_cold(const Options &options) {
    std::vector<double> times;
    for (int r = 0; r < options.runs; r++) {
        auto start = Clock::now();
        Server server(options.command);
        handshake(server);
        times.push_back(ms_since(start));
    }
    std::vector<double> sorted = times;
    std::printf("cold_p50_ms=%.1f cold_min_ms=%.1f cold_max_ms=%.1f\n", percentile(sorted, 0.5),
                *std::min_element(times.begin(), times.end()),
                *std::max_element(times.begin(), times.end()));
    return 0;
}

int run_once(const Options &options) {
    Server server(options.command);
    handshake(server);
    std::mt19937 random(1);
    auto start = Clock::now();
    server.send(call_request(2, fill(options.call, random, options.range)));
    std::string reply = server.response();
    double elapsed = ms_since(start);
    if (is_failure(reply)) {
        std::fprintf(stderr, "error reply: %s\n", reply.substr(0, 400).c_str());
        return 1;
    }
    std::printf("bytes=%zu ms=%.1f rss_kb=%ld\n", reply.size(), elapsed, server.peak_rss_kb());
    return 0;
}

// One MCP session over Streamable HTTP on a keep-alive connection (HTTP/1.1, JSON or event
// stream answers, Content-Length or chunked bodies).
class HttpAgent {
  public:
    explicit HttpAgent(const std::string &url) {
        // http://HOST:PORT/PATH, HOST an IPv4 address
        std::string rest = url.substr(url.find("//") + 2);
        size_t slash = rest.find('/');
        std::string hostport = rest.substr(0, slash);
        path_ = slash == std::string::npos ? "/" : rest.substr(slash);
        host_ = hostport;
        size_t colon = hostport.rfind(':');
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1))));
        inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &address.sin_addr);
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd_, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0)
            throw std::runtime_error("cannot connect to " + url);
    }
    ~HttpAgent() { close(fd_); }

    // POSTs one message; returns the body (empty for 202).
    std::string post(const std::string &body) {
        std::string request = "POST " + path_ + " HTTP/1.1\r\nHost: " + host_ +
                              "\r\nContent-Type: application/json\r\nAccept: application/json, "
                              "text/event-stream\r\n";
        if (!version_.empty()) request += "MCP-Protocol-Version: " + version_ + "\r\n";
        if (!session_.empty()) request += "Mcp-Session-Id: " + session_ + "\r\n";
        if (const char *token = std::getenv("MCP_BENCH_BEARER"))
            request += std::string("Authorization: Bearer ") + token + "\r\n";
        request += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        size_t done = 0;
        while (done < request.size()) {
            ssize_t n = write(fd_, request.data() + done, request.size() - done);
            if (n <= 0) throw std::runtime_error("HTTP server closed the connection");
            done += static_cast<size_t>(n);
        }
        std::string head = read_until("\r\n\r\n");
        std::string lower_head = head;
        for (char &c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t at = lower_head.find("mcp-session-id:");
        if (at != std::string::npos) {
            size_t start = head.find_first_not_of(' ', at + 15);
            session_ = head.substr(start, head.find("\r\n", start) - start);
        }
        if (lower_head.find("transfer-encoding: chunked") != std::string::npos) {
            std::string out;
            for (;;) {
                size_t size = std::stoul(read_until("\r\n"), nullptr, 16);
                if (size == 0) {
                    read_until("\r\n");
                    return out;
                }
                out += read_exactly(size);
                read_until("\r\n");
            }
        }
        at = lower_head.find("content-length:");
        return at == std::string::npos ? std::string()
                                       : read_exactly(std::stoul(lower_head.substr(at + 15)));
    }

  private:
    void fill() {
        char chunk[65536];
        ssize_t n = read(fd_, chunk, sizeof chunk);
        if (n <= 0) throw std::runtime_error("HTTP server closed the connection");
        buffer_.append(chunk, static_cast<size_t>(n));
    }
    std::string read_until(const std::string &end) {
        size_t at;
        while ((at = buffer_.find(end)) == std::string::npos) fill();
        std::string out = buffer_.substr(0, at);
        buffer_.erase(0, at + end.size());
        return out;
    }
    std::string read_exactly(size_t size) {
        while (buffer_.size() < size) fill();
        std::string out = buffer_.substr(0, size);
        buffer_.erase(0, size);
        return out;
    }

  public:
    std::string version_;  // negotiated by initialize; sent on every later request

  private:
    int fd_ = -1;
    std::string host_, path_, session_, buffer_;
};

int run_http(const Options &options) {
    const std::string &url = options.command[0];
    std::vector<std::vector<double>> latencies(static_cast<size_t>(options.agents));
    std::vector<long> errors(static_cast<size_t>(options.agents), 0);
    std::vector<std::string> failures(static_cast<size_t>(options.agents));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int a = 0; a < options.agents; a++) {
        threads.emplace_back([&, a] {
            std::mt19937 random(static_cast<unsigned>(a + 1));
            try {
                HttpAgent agent(url);
                std::string init = agent.post(
                    R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",)"
                    R"("capabilities":{},"clientInfo":{"name":"mcp_bench_client","version":"1"}}})");
                if (init.find("\"result\"") == std::string::npos)
                    throw std::runtime_error("initialize failed: " + init.substr(0, 300));
                size_t at = init.find("\"protocolVersion\":\"");
                if (at != std::string::npos) {
                    at += 19;
                    agent.version_ = init.substr(at, init.find('"', at) - at);
                }
                agent.post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
                long id = 1;
                for (int i = 0; i < 20; i++)
                    agent.post(call_request(id++, fill(options.call, random, options.range)));
                ready++;
                while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(options.seconds));
                while (Clock::now() < deadline) {
                    std::string request = call_request(id++, fill(options.call, random, options.range));
                    auto start = Clock::now();
                    std::string reply = agent.post(request);
                    latencies[static_cast<size_t>(a)].push_back(ms_since(start));
                    if (is_failure(reply) || reply.empty()) {
                        if (errors[static_cast<size_t>(a)]++ == 0)
                            failures[static_cast<size_t>(a)] = "error reply: " + reply.substr(0, 300);
                    }
                }
            } catch (const std::exception &error) {
                failures[static_cast<size_t>(a)] = error.what();
                errors[static_cast<size_t>(a)]++;
                ready++;
            }
        });
    }
    while (ready < options.agents) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CpuSample before = sample_cpu(options.server_pid, options.postmaster_pid);
    auto start = Clock::now();
    go = true;
    for (auto &thread : threads) thread.join();
    double elapsed = ms_since(start) / 1000.0;
    CpuSample after = sample_cpu(options.server_pid, options.postmaster_pid);
    std::vector<double> all;
    long total_errors = 0;
    for (int a = 0; a < options.agents; a++) {
        all.insert(all.end(), latencies[static_cast<size_t>(a)].begin(),
                   latencies[static_cast<size_t>(a)].end());
        total_errors += errors[static_cast<size_t>(a)];
        if (!failures[static_cast<size_t>(a)].empty())
            std::fprintf(stderr, "agent %d: %s\n", a, failures[static_cast<size_t>(a)].c_str());
    }
    double calls = static_cast<double>(all.size());
    auto per_call = [calls](double seconds) { return calls > 0 ? seconds * 1e6 / calls : 0.0; };
    // A writer that ended in the window moved its time to the postmaster's children: it is
    // counted with PostgreSQL's other processes then, never as a negative writer figure.
    double writer = std::max(0.0, after.writer - before.writer);
    std::printf("calls=%.0f errors=%ld calls_per_s=%.0f p50_ms=%.3f p99_ms=%.3f cpu_client_us=%.1f "
                "cpu_server_us=%.1f cpu_pg_us=%.1f cpu_writer_us=%.1f\n",
                calls, total_errors, calls / elapsed, percentile(all, 0.50), percentile(all, 0.99),
                per_call(after.client - before.client), per_call(after.server - before.server),
                per_call(after.pg - before.pg - writer), per_call(writer));
    return total_errors > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    try {
        Options options = parse(argc, argv);
        if (options.mode == "calls") return run_calls(options);
        if (options.mode == "cold") return run_cold(options);
        if (options.mode == "once") return run_once(options);
        if (options.mode == "http") return run_http(options);
        throw std::runtime_error("unknown mode " + options.mode);
    } catch (const std::exception &error) {
        std::fprintf(stderr, "mcp_bench_client: %s\n", error.what());
        return 2;
    }
}
