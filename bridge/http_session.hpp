// A session of the HTTP transport: its protocol server (McpServer) and its output, which hands
// each response to the HTTP request waiting for it and keeps the session's event stream (GET)
// with the events a resumed stream replays. Internal to the HTTP transport.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_transport.hpp"
#include "json_rpc.hpp"
#include "mcp_server.hpp"
#include "wakeup.hpp"

namespace pg_mcp::bridge {

// A message as text, whatever a client put in it (invalid UTF-8 is replaced, never thrown on).
inline std::string safe_dump(const json &message) {
    return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A session's output: each response goes to the HTTP request waiting for its id.
// Notifications that belong to no request (tools/list_changed, log messages) go to the
// session's event stream (GET) when the client has one open, and are dropped otherwise;
// progress, which belongs to a request answered with JSON, is dropped. Everything here runs on
// the loop, but send_streamed with a large body, which a consumer thread calls: it posts what
// it gathered to the loop.
class SessionOutput : public Output {
  public:
    struct Waiter {
        Waiter(boost::asio::io_context &io, json request_id)
            : id(std::move(request_id)), wakeup(io) {}
        json id;
        Reply response;
        bool done = false;  // the response is in (empty text: cancelled by the client)
        Wakeup wakeup;      // fired when done, when an event comes, or when the wait is aborted
        // Answered with an event stream: the request's notifications (progress, log messages)
        // wait here to be written before the response.
        bool sse = false;
        std::deque<std::string> events;
    };

    static constexpr size_t kMaxEvents = 1000;  // events kept for a slow stream reader
    static constexpr size_t kReplayEvents = 100, kReplayBytes = 64 * 1024;  // per session

    // The loop's side, kept alive by what is posted to it.
    struct State {
        std::map<std::string, std::shared_ptr<Waiter>> waiting;
        bool aborted = false;
        uint64_t streams = 0;  // streams opened so far
        uint64_t stream = 0;   // the open one (0: none)
        Wakeup *stream_wakeup = nullptr;
        // The GET stream's events, numbered, kept from the session's first GET on (so that a
        // stream resumed with Last-Event-ID gets what it missed): the newest kReplayEvents,
        // at most kReplayBytes of them.
        struct Event {
            uint64_t id;
            std::string text;
        };
        std::deque<Event> history;
        size_t history_bytes = 0;
        uint64_t last_event = 0;
        bool recording = false;

        void wake_stream() {
            if (stream_wakeup != nullptr) stream_wakeup->fire();
        }
        void push_event(std::string text) {
            if (!recording) return;
            history_bytes += text.size();
            history.push_back({++last_event, std::move(text)});
            while (!history.empty() &&
                   (history.size() > kReplayEvents || history_bytes > kReplayBytes)) {
                history_bytes -= history.front().text.size();
                history.pop_front();
            }
            wake_stream();
        }
        // The first event after `cursor` still kept; nullptr when there is none.
        const Event *after(uint64_t cursor) const {
            if (history.empty() || cursor >= history.back().id) return nullptr;
            uint64_t first = history.front().id;
            return &history[cursor < first ? 0 : cursor - first + 1];
        }
        // A notification about request `key`: on its event stream when it has one; a log
        // message otherwise on the session's GET stream; progress otherwise nowhere.
        void relate(const std::string &key, std::string text, bool progress) {
            auto found = waiting.find(key);
            if (found != waiting.end() && found->second->sse && !found->second->done) {
                Waiter &waiter = *found->second;
                if (waiter.events.size() >= kMaxEvents) waiter.events.pop_front();
                waiter.events.push_back(std::move(text));
                waiter.wakeup.fire();
                return;
            }
            if (!progress) push_event(std::move(text));
        }
        void deliver(const std::string &key, Reply response) {
            auto found = waiting.find(key);
            if (found == waiting.end() || found->second->done) return;  // nobody waits any more
            found->second->response = std::move(response);
            found->second->done = true;
            found->second->wakeup.fire();
        }
    };

    explicit SessionOutput(boost::asio::io_context &io)
        : io_(io), state_(std::make_shared<State>()) {}

    void answer(Reply reply) override {
        if (reply.id.is_null()) return;  // answers no request of this session's
        boost::asio::post(io_, [state = state_, reply = std::move(reply)]() mutable {
            std::string key = reply.id.dump();
            state->deliver(key, std::move(reply));
        });
    }

    void send(const json &message) override {
        std::string method = message.value("method", "");
        if (method.empty() || message.contains("id") || method == "notifications/progress" ||
            method == "notifications/cancelled")
            return;
        boost::asio::dispatch(io_, [state = state_, text = dump(message)]() mutable {
            state->push_event(std::move(text));
        });
    }

    void send_related(const json &id, const json &message) override {
        bool progress = message.value("method", "") == "notifications/progress";
        boost::asio::dispatch(
            io_, [state = state_, key = id.dump(), text = dump(message), progress]() mutable {
                state->relate(key, std::move(text), progress);
            });
    }

    // A large result: built as text from its pieces (no JSON tree). A body that broke off
    // delivers nothing here: the server answers the request with an error next.
    void send_streamed(Reply head, BodyStream &body) override {
        std::string chunk;
        while (body.next(chunk)) head.text += chunk;
        if (!body.failed.empty()) return;
        head.text += "}}";
        boost::asio::dispatch(io_, [state = state_, reply = std::move(head)]() mutable {
            std::string key = reply.id.dump();
            state->deliver(key, std::move(reply));
        });
    }

    // The rest is for the loop only.
    State &state() { return *state_; }

    // Opens the session's event stream (a newer GET replaces an older one, which ends); returns
    // its number. `wakeup` is fired when an event comes or the stream is over.
    // `cursor` is set to the last event the stream has had: `resume_after` (Last-Event-ID) when
    // given, else the newest (a new stream starts with what comes next).
    uint64_t open_stream(Wakeup &wakeup, std::optional<uint64_t> resume_after, uint64_t &cursor) {
        state_->wake_stream();
        state_->stream = ++state_->streams;
        state_->stream_wakeup = &wakeup;
        state_->recording = true;
        cursor = resume_after && *resume_after <= state_->last_event ? *resume_after
                                                                     : state_->last_event;
        return state_->stream;
    }
    // The stream `number` has ended on its side (its events stay for a resumption).
    void stream_ended(uint64_t number) {
        if (state_->stream != number) return;
        state_->stream = 0;
        state_->stream_wakeup = nullptr;
    }
    // Ends the event stream, if one is open (the session ends).
    void close_stream() {
        state_->wake_stream();
        state_->stream = 0;
        state_->stream_wakeup = nullptr;
        state_->recording = false;
        state_->history.clear();
        state_->history_bytes = 0;
    }

    // Registers a wait for the response to `key`; false when one is already waiting.
    bool expect(const std::string &key, std::shared_ptr<Waiter> waiter) {
        return state_->waiting.emplace(key, std::move(waiter)).second;
    }
    void forget(const std::string &key) { state_->waiting.erase(key); }

    // Ends the wait for `key`, if any: with a JSON-RPC error when the session ended under the
    // request; without any response when the client cancelled it (as cancellation asks).
    void abandon(const std::string &key, const std::string &reason, bool respond) {
        auto found = state_->waiting.find(key);
        if (found == state_->waiting.end()) return;
        Reply reply;
        reply.id = found->second->id;
        if (respond) {
            reply.error_code = error_code::kInternalError;
            reply.text = safe_dump(
                make_error(reply.id, error_code::kInternalError, "Request cancelled: " + reason));
        }
        state_->deliver(key, std::move(reply));
    }

    // The ids (as JSON text) of the requests waiting for a response.
    std::vector<std::string> pending() const {
        std::vector<std::string> keys;
        for (const auto &entry : state_->waiting) keys.push_back(entry.first);
        return keys;
    }

    // Ends every wait (the server is stopping and its grace period is over).
    void abort() {
        state_->aborted = true;
        for (auto &entry : state_->waiting) entry.second->wakeup.fire();
        state_->wake_stream();
    }

  private:
    static std::string dump(const json &message) {
        return message.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    boost::asio::io_context &io_;
    std::shared_ptr<State> state_;
};

class HttpServer::Session {
  public:
    // owner: who opened it (see Caller; empty without authentication).
    // name: how logs and traces call it (a ticket's short name; default the id); prefix: what
    // its backend work is keyed by, unique among the sessions of this bridge (default the id).
    Session(boost::asio::io_context &io, std::string session_id, Backend &backend,
            const ServerOptions &options, const Logger &logger, const std::string &owner = {},
            const std::string &principal_token = {}, const std::string &principal = {},
            const std::string &name = {}, const std::string &prefix = {})
        : id(std::move(session_id)),
          owner(owner),
          principal(principal),
          output(io),
          server(backend, output,
                 session_options(options, (prefix.empty() ? id : prefix) + "/",
                                 name.empty() ? id : name, principal_token, principal),
                 logger) {}

    static ServerOptions session_options(ServerOptions options, const std::string &prefix,
                                         const std::string &name, const std::string &token_hash,
                                         const std::string &principal) {
        options.backend_key_prefix = prefix;
        options.network_transport = "tcp";
        if (name.rfind("stateless-", 0) != 0) options.session_id = name;
        options.principal_token = token_hash;
        options.principal = principal;
        return options;
    }

    // Ends the session: everything it has running is cancelled (the queries too), waiting
    // HTTP requests get a "cancelled" error, and the protocol state is shut down. The object
    // must then stay alive until server.idle() (backend replies may still arrive).
    void end(const std::string &reason) {
        output.close_stream();
        server.cancel_all();
        for (const std::string &key : output.pending()) output.abandon(key, reason, true);
        server.shutdown();
    }

    std::string id;
    std::string owner;   // only requests of the same owner may use it
    std::string ticket;  // with session tickets: its short name (empty without)
    int64_t ticket_issued = 0;
    std::string principal;  // whose share of the session caps it takes (a principal, a person or
                            // without tokens a client address)
    SessionOutput output;   // before server, which holds a reference to it
    McpServer server;
    std::atomic<std::chrono::steady_clock::rep> last_used{
        std::chrono::steady_clock::now().time_since_epoch().count()};
};

}  // namespace pg_mcp::bridge
