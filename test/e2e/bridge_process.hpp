// Test harness: pg_mcp_bridge as a child process (Boost.Process), with line-based JSON-RPC
// exchange and bounded waits, and a libpq session for checking the database side.
#pragma once

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/process.hpp>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

namespace e2e {

using nlohmann::json;
namespace bp = boost::process;
using namespace std::chrono_literals;

inline std::string env_or(const char *name, const std::string &fallback) {
    const char *value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : fallback;
}

inline std::string database() {
    return env_or("PG_MCP_E2E_DB", "pg_mcp_e2e");
}
inline std::string conninfo(const std::string &user) {
    return "dbname=" + database() + " user=" + user;
}

class Bridge {
  public:
    explicit Bridge(std::vector<std::string> args, const std::string &stderr_path = "/dev/null",
                    const std::map<std::string, std::string> &env = {}) {
        bp::environment environment = boost::this_process::environment();
        for (const auto &entry : env) {
            if (entry.second.empty())
                environment.erase(entry.first);
            else
                environment[entry.first] = entry.second;
        }
        child_ = std::make_unique<bp::child>(env_or("PG_MCP_BRIDGE", PG_MCP_BRIDGE_PATH),
                                             bp::args(args), bp::std_in<in_, bp::std_out> out_,
                                             bp::std_err > stderr_path, environment);
        reader_ = std::thread([this] {
            std::string line;
            while (std::getline(out_, line)) {
                std::lock_guard<std::mutex> lock(mutex_);
                lines_.push_back(line);
                ready_.notify_all();
            }
            std::lock_guard<std::mutex> lock(mutex_);
            eof_ = true;
            ready_.notify_all();
        });
    }
    ~Bridge() {
        if (child_ && child_->running()) {
            ::kill(child_->id(), SIGKILL);
            child_->wait();
        }
        close_input();
        if (reader_.joinable()) reader_.join();
    }

    void send_raw(const std::string &line) {
        in_ << line << '\n';
        in_.flush();
    }
    void send(const json &message) { send_raw(message.dump()); }
    void close_input() {
        if (input_open_) {
            in_.flush();
            in_.pipe().close();
            input_open_ = false;
        }
    }

    // The next message of any kind (or null after the timeout / at end of output).
    json next(std::chrono::milliseconds timeout = 10s) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!ready_.wait_for(lock, timeout, [this] { return !lines_.empty() || eof_; }))
            return nullptr;
        if (lines_.empty()) return nullptr;
        std::string line = lines_.front();
        lines_.pop_front();
        return json::parse(line);  // everything on stdout must be JSON
    }

    // The response with this id; other messages met on the way are kept in `notifications`.
    json response(const json &id, std::chrono::milliseconds timeout = 15s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (auto it = notifications.begin(); it != notifications.end(); ++it) {
            if (it->contains("id") && (*it)["id"] == id && !it->contains("method")) {
                json found = *it;
                notifications.erase(it);
                return found;
            }
        }
        while (std::chrono::steady_clock::now() < deadline) {
            json message = next(std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now()));
            if (message.is_null()) break;
            if (message.contains("id") && message["id"] == id && !message.contains("method"))
                return message;
            notifications.push_back(message);
        }
        return nullptr;
    }

    // A notification with this method (kept ones first).
    json notification(const std::string &method, std::chrono::milliseconds timeout = 10s) {
        for (auto it = notifications.begin(); it != notifications.end(); ++it) {
            if (it->value("method", "") == method) {
                json found = *it;
                notifications.erase(it);
                return found;
            }
        }
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            json message = next(std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now()));
            if (message.is_null()) break;
            if (message.value("method", "") == method) return message;
            notifications.push_back(message);
        }
        return nullptr;
    }

    json request(const json &id, const std::string &method, json params = json::object()) {
        send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}});
        return response(id);
    }

    json initialize(const std::string &version = "2025-11-25") {
        json r = request(0, "initialize",
                         {{"protocolVersion", version},
                          {"capabilities", json::object()},
                          {"clientInfo", {{"name", "e2e"}, {"version", "1"}}}});
        send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
        return r;
    }

    json call(const json &id, const std::string &tool, json arguments = json::object(),
              json meta = nullptr) {
        json params = {{"name", tool}, {"arguments", std::move(arguments)}};
        if (!meta.is_null()) params["_meta"] = std::move(meta);
        return request(id, "tools/call", std::move(params));
    }

    // Exit code, or -1 if the process did not exit within the timeout.
    int wait_exit(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (child_->running() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
        if (child_->running()) return -1;
        child_->wait();
        return child_->exit_code();
    }
    pid_t pid() const { return child_->id(); }

    std::deque<json> notifications;

  private:
    bp::opstream in_;
    bp::ipstream out_;
    std::unique_ptr<bp::child> child_;
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::string> lines_;
    bool eof_ = false;
    bool input_open_ = true;
};

// A libpq session as the cluster's superuser, for setting up and checking the database side.
class Sql {
  public:
    Sql() : conn_(PQconnectdb(conninfo(env_or("PGUSER", "postgres")).c_str())) {
        if (PQstatus(conn_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn_));
    }
    ~Sql() { PQfinish(conn_); }
    // Runs SQL with text parameters; returns the first column of the first row ("" if none).
    std::string value(const std::string &sql, const std::vector<std::string> &params = {}) {
        std::vector<const char *> values;
        for (const auto &p : params) values.push_back(p.c_str());
        PGresult *result = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                        nullptr, values.data(), nullptr, nullptr, 0);
        ExecStatusType status = PQresultStatus(result);
        if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
            std::string error = PQresultErrorMessage(result);
            PQclear(result);
            throw std::runtime_error(error + " in: " + sql);
        }
        std::string out =
            PQntuples(result) > 0 && PQnfields(result) > 0 ? PQgetvalue(result, 0, 0) : "";
        PQclear(result);
        return out;
    }
    // Polls until the query returns `expected`, or the timeout passes; returns the last value.
    std::string wait_for(const std::string &sql, const std::string &expected,
                         std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string last;
        while (std::chrono::steady_clock::now() < deadline) {
            last = value(sql);
            if (last == expected) break;
            std::this_thread::sleep_for(50ms);
        }
        return last;
    }

  private:
    PGconn *conn_;
};

}  // namespace e2e
