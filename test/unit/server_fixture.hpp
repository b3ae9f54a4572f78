// The scripted backend, captured output and fixture the McpServer unit tests share
// (mcp_server_test.cpp, mcp_confirmation_test.cpp).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <mutex>

#include "mcp_server.hpp"

namespace pg_mcp::bridge::testing_support {


class CaptureOutput : public Output {
  public:
    void send(const json &message) override {
        std::lock_guard<std::mutex> lock(mutex);
        messages.push_back(message);
    }
    void answer(Reply reply) override {
        std::lock_guard<std::mutex> lock(mutex);
        messages.push_back(json::parse(reply.text));
        replies.push_back(reply);
    }
    json take() {
        std::lock_guard<std::mutex> lock(mutex);
        if (messages.empty()) return nullptr;
        json front = messages.front();
        messages.pop_front();
        return front;
    }
    size_t size() {
        std::lock_guard<std::mutex> lock(mutex);
        return messages.size();
    }
    std::mutex mutex;
    std::deque<json> messages;
    std::vector<Reply> replies;  // every answer, with what it tells the transport
};

// Replies immediately unless `defer` is set; then replies wait in `pending`.
class ScriptedBackend : public Backend {
  public:
    json tools = json::array();
    json call_result;
    bool defer = false;
    std::map<std::string, ReplyFn> pending;
    std::map<std::string, ProgressFn> progress;
    std::map<std::string, NoticeFn> notices;
    std::string last_confirmation;
    std::vector<std::string> cancelled;
    CallIdentity last_identity;
    std::string last_tool;
    json last_arguments;

    void list_tools(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
        last_identity = identity;
        BackendReply r;
        r.ok = true;
        r.value = tools;
        finish(key, std::move(reply), r);
    }
    void call_tool(const std::string &key, const CallIdentity &identity, const std::string &name,
                   const json &arguments, ProgressFn on_progress, ReplyFn reply) {
        last_identity = identity;
        last_tool = name;
        last_arguments = arguments;
        progress[key] = on_progress;
        BackendReply r;
        r.ok = true;
        r.value = call_result;
        finish(key, std::move(reply), r);
    }
    void authenticate(const std::string &key, const std::string &token_sha256, ReplyFn reply) {
        BackendReply r;
        r.ok = token_sha256 == known_token;
        if (r.ok)
            r.value = "principal-of-" + token_sha256.substr(0, 4);
        else
            r.error_code = error_code::kUnauthorized;
        finish(key, std::move(reply), r);
    }
    std::string known_token;
    json prompts = json::array();
    json prompt_arguments;
    void list_prompts(const std::string &key, const CallIdentity &, ReplyFn reply) {
        BackendReply r;
        r.ok = true;
        r.value = prompts;
        finish(key, std::move(reply), r);
    }
    void get_prompt(const std::string &key, const CallIdentity &, const std::string &name,
                    const json &arguments, ReplyFn reply) {
        prompt_arguments = arguments;
        BackendReply r;
        r.ok = name == "draft_tool";
        if (r.ok)
            r.value = {{"messages",
                        json::array(
                            {{{"role", "user"}, {"content", {{"type", "text"}, {"text", "x"}}}}})}};
        else
            r.sqlstate = "42704";
        finish(key, std::move(reply), r);
    }
    json resources = json::array();
    void list_resources(const std::string &key, const CallIdentity &identity, ReplyFn reply) {
        last_identity = identity;
        BackendReply r;
        r.ok = true;
        r.value = resources;
        finish(key, std::move(reply), r);
    }
    void read_resource(const std::string &key, const CallIdentity &identity, const std::string &uri,
                       ReplyFn reply) {
        last_identity = identity;
        BackendReply r;
        for (const json &resource : resources)
            if (resource.value("uri", "") == uri) {
                r.ok = true;
                r.value = {{"contents", json::array({{{"uri", uri}, {"text", "{}"}}})}};
            }
        if (!r.ok) {
            r.error_code = error_code::kInternalError;
            r.sqlstate = "42704";
            r.error_message = "resource not found";
        }
        finish(key, std::move(reply), r);
    }
    void cancel(const std::string &key) override { cancelled.push_back(key); }
    // Each operation to the method that scripts it.
    void submit(Work work, ReplyFn reply) override {
        json arguments = work.arguments.empty() ? json() : json::parse(work.arguments);
        switch (work.operation) {
            case Operation::ListTools:
                return list_tools(work.key, work.identity, std::move(reply));
            case Operation::CallTool:
                notices[work.key] = work.notice;
                last_confirmation = work.confirmation;
                return call_tool(work.key, work.identity, work.name, arguments, work.progress,
                                 std::move(reply));
            case Operation::ListResources:
                return list_resources(work.key, work.identity, std::move(reply));
            case Operation::ReadResource:
                return read_resource(work.key, work.identity, work.name, std::move(reply));
            case Operation::ListPrompts:
                return list_prompts(work.key, work.identity, std::move(reply));
            case Operation::GetPrompt:
                return get_prompt(work.key, work.identity, work.name, arguments, std::move(reply));
            case Operation::Authenticate:
                return authenticate(work.key, work.identity.principal_token, std::move(reply));
            case Operation::IdentityProviders:
            case Operation::EndSession:
                return reply(BackendReply());
        }
    }
    void finish(const std::string &key, ReplyFn reply, BackendReply r) {
        if (defer) {
            pending[key] = [reply, r](BackendReply) { reply(r); };
        } else {
            reply(r);
        }
    }
    void release(const std::string &key) {
        auto fn = pending[key];
        pending.erase(key);
        fn(BackendReply{});
    }
};

// A CallToolResult as the extension returns it; unknown and ungranted tools carry the
// extension's pg-mcp/unknown_tool flag.
inline json ok_call_result(const std::string &status = "ok") {
    json meta = {{"pg-mcp/status", status}};
    if (status == "not_found" || status == "denied_tool") meta["pg-mcp/unknown_tool"] = true;
    return {
        {"content", {{{"type", "text"}, {"text", "{}"}}}},
        {"structuredContent", {{"rows", json::array()}, {"row_count", 0}, {"truncated", false}}},
        {"isError", false},
        {"_meta", meta}};
}

inline const char *const kModernMeta =
    R"("_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c2","version":"9"}})";

class ServerTest : public ::testing::Test {
  protected:
    ServerTest() : server(backend, output, options(), logger) {}
    static ServerOptions options() {
        ServerOptions o;
        o.agent_name = "unit-agent";
        o.page_size = 2;
        return o;
    }
    json request(const std::string &line) {
        server.handle_line(line);
        return output.take();
    }
    void initialize(const char *version = "2025-11-25") {
        json r = request(
            std::string(
                R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":")") +
            version + R"(","capabilities":{},"clientInfo":{"name":"c1","version":"1.0"}}})");
        ASSERT_TRUE(r.contains("result")) << r;
        server.handle_line(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    }
    std::string modern(const std::string &id, const std::string &method,
                       const std::string &params = "") {
        return R"({"jsonrpc":"2.0","id":)" + id + R"(,"method":")" + method + R"(","params":{)" +
               kModernMeta + (params.empty() ? "" : "," + params) + "}}";
    }
    Logger logger{LogLevel::Emergency};
    ScriptedBackend backend;
    CaptureOutput output;
    McpServer server;
};


}  // namespace pg_mcp::bridge::testing_support
