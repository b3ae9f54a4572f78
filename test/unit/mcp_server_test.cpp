// MCP dispatch for both protocol eras, against a scripted backend (the real backend, the
// extension on a real server, is covered by the end-to-end tests).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <mutex>

#include "mcp_server.hpp"

using namespace pg_mcp::bridge;

namespace {

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
json ok_call_result(const std::string &status = "ok") {
    json meta = {{"pg-mcp/status", status}};
    if (status == "not_found" || status == "denied_tool") meta["pg-mcp/unknown_tool"] = true;
    return {
        {"content", {{{"type", "text"}, {"text", "{}"}}}},
        {"structuredContent", {{"rows", json::array()}, {"row_count", 0}, {"truncated", false}}},
        {"isError", false},
        {"_meta", meta}};
}

const char *kModernMeta =
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

}  // namespace

TEST_F(ServerTest, InitializeEchoesSupportedVersions) {
    json r = request(
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}})");
    EXPECT_EQ(r["id"], 1);
    EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
    EXPECT_EQ(r["result"]["capabilities"]["tools"]["listChanged"], true);
    EXPECT_TRUE(r["result"]["capabilities"].contains("logging"));
    EXPECT_EQ(r["result"]["serverInfo"]["name"], "pg_mcp_bridge");
    EXPECT_FALSE(r["result"]["instructions"].get<std::string>().empty());
    EXPECT_FALSE(r["result"].contains("resultType"));  // legacy results never carry it
}

TEST_F(ServerTest, InitializeOffersLatestForUnknownVersions) {
    json r = request(
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01"}})");
    EXPECT_EQ(r["result"]["protocolVersion"], "2025-11-25");
}

TEST_F(ServerTest, InitializeErrors) {
    EXPECT_EQ(
        request(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})")["error"]["code"],
        error_code::kInvalidParams);
    EXPECT_EQ(
        request(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5}})")
            ["error"]["code"],
        error_code::kInvalidParams);
    initialize();
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})")
            ["error"]["code"],
        error_code::kInvalidRequest);
}

TEST_F(ServerTest, LegacyRequestsNeedInitialize) {
    json r = request(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
    EXPECT_EQ(r["error"]["code"], error_code::kInvalidRequest);
    EXPECT_NE(r["error"]["message"].get<std::string>().find("initialize"), std::string::npos);
    EXPECT_EQ(request(R"({"jsonrpc":"2.0","id":2,"method":"ping"})")["result"], json::object());
}

TEST_F(ServerTest, MethodNotFoundAndIgnoredNotifications) {
    initialize();
    EXPECT_EQ(
        request(R"({"jsonrpc":"2.0","id":1,"method":"completion/complete"})")["error"]["code"],
        error_code::kMethodNotFound);
    server.handle_line(R"({"jsonrpc":"2.0","method":"notifications/whatever","params":{}})");
    server.handle_line(R"({"jsonrpc":"2.0","id":5,"result":{}})");  // a response: ignored
    EXPECT_EQ(output.size(), 0u);
}

// The cursor pages by the key the extension sorts by (the name, in byte order), so a walk sees
// every resource once even where the percent-encoded URIs sort differently ("s.vé" after
// "s.vz", but "s.v%C3%A9" before "s.vz").
TEST_F(ServerTest, ResourcesCursorWalksEveryViewOnce) {
    initialize();
    std::vector<std::string> names;
    for (int i = 0; i < 250; ++i)
        names.push_back(std::string("s.v") +
                        (i % 3 == 0   ? "\xc3\xa9"
                         : i % 3 == 1 ? "z"
                                      : "-") +
                        std::to_string(i));
    std::sort(names.begin(), names.end());
    backend.resources = json::array();
    for (const std::string &name : names) {
        std::string uri = "pg-mcp://views/";
        for (unsigned char c : name) {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", c);
            uri += (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~')
                       ? std::string(1, static_cast<char>(c))
                       : std::string(hex);
        }
        backend.resources.push_back({{"uri", uri}, {"name", name}});
    }
    std::vector<std::string> seen;
    json cursor = nullptr;
    for (int page = 0; page < 300; ++page) {
        json params = json::object();
        if (!cursor.is_null()) params["cursor"] = cursor;
        json result = request(json({{"jsonrpc", "2.0"},
                                    {"id", page},
                                    {"method", "resources/list"},
                                    {"params", params}})
                                  .dump())["result"];
        for (const json &resource : result["resources"]) seen.push_back(resource["name"]);
        if (!result.contains("nextCursor")) break;
        cursor = result["nextCursor"];
    }
    EXPECT_EQ(seen, names);  // no gap, no repeat, in order
}

TEST_F(ServerTest, ResourcesAreListedPagedAndRead) {
    initialize();
    backend.resources = json::array();
    for (const char *uri : {"pg-mcp://views/a.one", "pg-mcp://views/a.two", "pg-mcp://views/b.x"})
        backend.resources.push_back({{"uri", uri}, {"name", uri}});
    json first = request(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})")["result"];
    ASSERT_EQ(first["resources"].size(), 2u);
    json second = request(json({{"jsonrpc", "2.0"},
                                {"id", 2},
                                {"method", "resources/list"},
                                {"params", {{"cursor", first["nextCursor"]}}}})
                              .dump())["result"];
    ASSERT_EQ(second["resources"].size(), 1u);
    EXPECT_EQ(second["resources"][0]["uri"], "pg-mcp://views/b.x");
    EXPECT_FALSE(second.contains("nextCursor"));
    json read = request(
        R"({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"pg-mcp://views/a.two"}})");
    EXPECT_EQ(read["result"]["contents"][0]["uri"], "pg-mcp://views/a.two");
    json missing = request(
        R"({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"pg-mcp://views/nope"}})");
    EXPECT_EQ(missing["error"]["code"], -32002);  // 2025-11-25: resource not found
    EXPECT_EQ(missing["error"]["data"]["uri"], "pg-mcp://views/nope");
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{}})")["error"]["code"],
        error_code::kInvalidParams);
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":6,"method":"resources/templates/list"})")["result"]
                                                                              ["resourceTemplates"],
        json::array());
}

TEST_F(ServerTest, ModernResourceResultsCarryCachingHints) {
    backend.resources = json::array({{{"uri", "pg-mcp://views/a.one"}, {"name", "a.one"}}});
    json list = request(modern("1", "resources/list"))["result"];
    EXPECT_EQ(list["cacheScope"], "private");
    json read = request(modern("2", "resources/read", R"("uri":"pg-mcp://views/a.one")"))["result"];
    EXPECT_EQ(read["cacheScope"], "private");
    EXPECT_GE(read["ttlMs"].get<int>(), 0);
    json templates = request(modern("3", "resources/templates/list"))["result"];
    EXPECT_TRUE(templates.contains("ttlMs"));
    json missing = request(modern("4", "resources/read", R"("uri":"pg-mcp://views/none")"));
    EXPECT_EQ(missing["error"]["code"], error_code::kInvalidParams);  // 2026-07-28
    json discover = request(modern("5", "server/discover"))["result"];
    EXPECT_TRUE(discover["capabilities"].contains("prompts"));
}

// What a reply tells the transport is decided where the reply is made (the transport never
// reads a reply back): the cache policy from kMethods and the result's hints, a session opened
// by initialize, an error's code.
TEST_F(ServerTest, RepliesCarryWhatTheTransportNeeds) {
    auto last_reply = [this] { return output.replies.back(); };
    request(modern("1", "tools/list"));
    EXPECT_EQ(last_reply().cache_control, "private, max-age=60");
    EXPECT_FALSE(last_reply().opens_session);
    request(modern("2", "server/discover"));
    EXPECT_EQ(last_reply().cache_control, "public, max-age=3600");
    backend.call_result = {{"content", json::array()}, {"isError", false}};
    request(modern("3", "tools/call", R"("name":"t")"));
    EXPECT_EQ(last_reply().cache_control, "no-store");  // a call is never stored
    request(modern("4", "nope/nope"));
    EXPECT_EQ(last_reply().error_code, error_code::kMethodNotFound);
    EXPECT_EQ(last_reply().cache_control, "no-store");
    EXPECT_EQ(last_reply().id, 4);
    initialize();
    EXPECT_TRUE(last_reply().opens_session);
    EXPECT_EQ(last_reply().error_code, 0);
    request(R"({"jsonrpc":"2.0","id":7,"method":"tools/list"})");
    EXPECT_EQ(last_reply().cache_control, "no-store");  // a legacy answer: no caching hints
    request(R"({"jsonrpc":"2.0","id":8,"method":"initialize","params":{"protocolVersion":"x"}})");
    EXPECT_FALSE(last_reply().opens_session);  // already initialized: an error
    EXPECT_EQ(last_reply().error_code, error_code::kInvalidRequest);
}

TEST_F(ServerTest, PromptsAreListedAndGot) {
    initialize();
    backend.prompts = json::array({{{"name", "draft_tool"}}});
    json list = request(R"({"jsonrpc":"2.0","id":1,"method":"prompts/list"})")["result"];
    EXPECT_EQ(list["prompts"][0]["name"], "draft_tool");
    json got = request(
        R"({"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"draft_tool","arguments":{"request":"x"}}})");
    EXPECT_EQ(got["result"]["messages"][0]["role"], "user");
    EXPECT_EQ(backend.prompt_arguments, json({{"request", "x"}}));
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"nope"}})")["error"]
                                                                                          ["code"],
        error_code::kInvalidParams);
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"draft_tool","arguments":{"request":1}}})")
            ["error"]["code"],
        error_code::kInvalidParams);
}

TEST_F(ServerTest, InvalidMessagesGetErrorsAndServingContinues) {
    EXPECT_EQ(request("{not json")["error"]["code"], error_code::kParseError);
    EXPECT_EQ(request("[1,2]")["error"]["code"], error_code::kInvalidRequest);
    EXPECT_EQ(request(R"({"jsonrpc":"2.0","id":3,"method":"ping","params":[1]})")["error"]["code"],
              error_code::kInvalidParams);
    server.handle_oversized_line(1024);
    json big = output.take();
    EXPECT_EQ(big["error"]["code"], error_code::kInvalidRequest);
    EXPECT_TRUE(big["id"].is_null());
    EXPECT_EQ(request(R"({"jsonrpc":"2.0","id":4,"method":"ping"})")["result"], json::object());
}

TEST_F(ServerTest, ListToolsPaginates) {
    initialize();
    for (const char *name : {"a", "b", "c", "d", "e"}) backend.tools.push_back({{"name", name}});
    json first = request(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
    ASSERT_EQ(first["result"]["tools"].size(), 2u);
    EXPECT_EQ(first["result"]["tools"][0]["name"], "a");
    std::string cursor = first["result"]["nextCursor"];
    json second = request(R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":")" +
                          cursor + "\"}}");
    EXPECT_EQ(second["result"]["tools"][0]["name"], "c");
    json third = request(R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":")" +
                         second["result"]["nextCursor"].get<std::string>() + "\"}}");
    EXPECT_EQ(third["result"]["tools"].size(), 1u);
    EXPECT_FALSE(third["result"].contains("nextCursor"));
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"!!"}})")["error"]
                                                                                         ["code"],
        error_code::kInvalidParams);
    EXPECT_EQ(
        request(R"({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"cursor":7}})")["error"]
                                                                                          ["code"],
        error_code::kInvalidParams);
}

TEST_F(ServerTest, CallToolPassesIdentityAndResult) {
    initialize();
    backend.call_result = ok_call_result();
    json r = request(
        R"({"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"t","arguments":{"x":1}}})");
    EXPECT_EQ(r["id"], "r1");
    EXPECT_EQ(r["result"]["isError"], false);
    EXPECT_FALSE(r["result"].contains("resultType"));
    EXPECT_EQ(backend.last_tool, "t");
    EXPECT_EQ(backend.last_arguments["x"], 1);
    EXPECT_EQ(backend.last_identity.agent_name, "unit-agent");
    EXPECT_EQ(backend.last_identity.client_info, "c1/1.0");
    EXPECT_EQ(backend.last_identity.request_id, "r1");
}

TEST_F(ServerTest, CallToolParamErrors) {
    initialize();
    for (const char *params :
         {R"({})", R"({"name":5})", R"({"name":"t","arguments":[1]})",
          R"({"name":"t","arguments":"x"})", R"({"name":"t","_meta":{"progressToken":1.5}})",
          R"({"name":"t","_meta":"x"})"}) {
        json r = request(std::string(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":)") +
                         params + "}");
        EXPECT_EQ(r["error"]["code"], error_code::kInvalidParams) << params;
    }
}

TEST_F(ServerTest, UnknownAndUngrantedToolsAreProtocolErrors) {
    initialize();
    for (const char *status : {"not_found", "denied_tool"}) {
        backend.call_result = ok_call_result(status);
        json r =
            request(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}})");
        EXPECT_EQ(r["error"]["code"], error_code::kInvalidParams);
        EXPECT_EQ(r["error"]["message"], "Unknown tool: secret");
    }
    backend.call_result = ok_call_result("denied");  // e.g. no principal: a tool error
    backend.call_result["isError"] = true;
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t"}})")["result"]
                                                                                      ["isError"],
        true);
    backend.call_result = ok_call_result("invalid_arguments");
    backend.call_result["isError"] = true;
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}})")["result"]
                                                                                      ["isError"],
        true);
}

TEST_F(ServerTest, CancelledCallsGetNoReply) {
    initialize();
    backend.defer = true;
    backend.call_result = ok_call_result();
    server.handle_line(
        R"({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow"}})");
    EXPECT_EQ(server.in_flight(), 1u);
    server.handle_line(
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"user"}})");
    ASSERT_EQ(backend.cancelled.size(), 1u);
    EXPECT_EQ(backend.cancelled[0], "9");
    backend.release("9");
    EXPECT_EQ(output.size(), 0u);
    EXPECT_EQ(server.in_flight(), 0u);
    // Cancelling something unknown or finished is ignored.
    server.handle_line(
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":123}})");
    server.handle_line(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{}})");
    EXPECT_EQ(backend.cancelled.size(), 1u);
}

TEST_F(ServerTest, DuplicateIdInFlightIsRejected) {
    initialize();
    backend.defer = true;
    backend.call_result = ok_call_result();
    server.handle_line(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}})");
    json dup = request(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b"}})");
    EXPECT_EQ(dup["error"]["code"], error_code::kInvalidRequest);
    backend.release("1");
    EXPECT_EQ(output.take()["result"]["isError"], false);
}

TEST_F(ServerTest, PipelinedRepliesArriveInCompletionOrder) {
    initialize();
    backend.defer = true;
    backend.call_result = ok_call_result();
    server.handle_line(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}})");
    server.handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}})");
    backend.release("2");
    backend.release("1");
    EXPECT_EQ(output.take()["id"], 2);
    EXPECT_EQ(output.take()["id"], 1);
}

TEST_F(ServerTest, ProgressNotificationsUseTheToken) {
    initialize();
    backend.defer = true;
    backend.call_result = ok_call_result();
    server.handle_line(
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"progressToken":"tok"}}})");
    ASSERT_TRUE(backend.progress["1"]);
    backend.progress["1"](1);
    backend.progress["1"](2);
    json first = output.take();
    EXPECT_EQ(first["method"], "notifications/progress");
    EXPECT_EQ(first["params"]["progressToken"], "tok");
    EXPECT_EQ(first["params"]["progress"], 1);
    EXPECT_EQ(output.take()["params"]["progress"], 2);
    server.handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a"}})");
    EXPECT_FALSE(backend.progress["2"]);  // no token, no progress
}

// Notices the tool's SQL raised become log messages of the call (logger: the tool), at the
// level the client asked for, mapped from PostgreSQL's severity.
TEST_F(ServerTest, NoticesOfToolSqlAreLogMessagesOfTheCall) {
    initialize();
    backend.defer = true;
    backend.call_result = ok_call_result();
    server.handle_line(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}})");
    ASSERT_TRUE(backend.notices["1"]);
    backend.notices["1"](ServerNotice{"WARNING", "01000", "careful", "", ""});
    EXPECT_EQ(output.size(), 0u);  // no logging/setLevel: nothing sent
    backend.release("1");
    output.take();
    request(R"({"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"notice"}})");
    server.handle_line(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t1"}})");
    backend.notices["3"](ServerNotice{"INFO", "00000", "below the level", "", ""});
    backend.notices["3"](ServerNotice{"NOTICE", "00000", "step one", "", ""});
    backend.notices["3"](ServerNotice{"WARNING", "01000", "careful", "a detail", "a hint"});
    json first = output.take();
    EXPECT_EQ(first["method"], "notifications/message");
    EXPECT_EQ(first["params"]["level"], "notice");
    EXPECT_EQ(first["params"]["logger"], "t1");
    EXPECT_EQ(first["params"]["data"], json({{"message", "step one"}}));
    json second = output.take();
    EXPECT_EQ(second["params"]["level"], "warning");
    EXPECT_EQ(second["params"]["data"], json({{"message", "careful"},
                                              {"detail", "a detail"},
                                              {"hint", "a hint"},
                                              {"sqlstate", "01000"}}));
    EXPECT_EQ(output.size(), 0u);
    backend.release("3");
    EXPECT_EQ(output.take()["id"], 3);
}

// A call a person must confirm: on 2026-07-28 the database's request (pg-mcp/input_required in
// the result's _meta) becomes an input_required result with an elicitation/create form, and
// the retry's requestState and answer reach the backend; without the elicitation capability
// the backend is told the client cannot ask.
TEST_F(ServerTest, ModernConfirmationIsAskedThroughElicitation) {
    json head = {{"_meta",
                  {{"pg-mcp/status", "confirmation_asked"},
                   {"pg-mcp/input_required",
                    {{"message", "Close account 1?"},
                     {"requestState", "00ff.ab"},
                     {"requestedSchema", {{"type", "object"}, {"properties", json::object()}}}}}}},
                 {"isError", true},
                 {"content", {{{"type", "text"}, {"text", "waiting"}}}}};
    backend.call_result = head;
    const char *with_elicitation =
        R"({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"t","arguments":{"id":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}})";
    json asked = request(with_elicitation);
    EXPECT_EQ(json::parse(backend.last_confirmation), json({{"can_ask", true}}));
    const json &result = asked["result"];
    EXPECT_EQ(result["resultType"], "input_required");
    EXPECT_EQ(result["requestState"], "00ff.ab");
    EXPECT_EQ(result["inputRequests"]["confirm"]["method"], "elicitation/create");
    EXPECT_EQ(result["inputRequests"]["confirm"]["params"]["mode"], "form");
    EXPECT_EQ(result["inputRequests"]["confirm"]["params"]["message"], "Close account 1?");
    EXPECT_FALSE(result.contains("content"));
    EXPECT_FALSE(result["_meta"].contains("pg-mcp/input_required"));
    // The retry: state and answer go to the database, which decides.
    backend.call_result = ok_call_result();
    request(
        R"({"jsonrpc":"2.0","id":"c2","method":"tools/call","params":{"name":"t","arguments":{"id":1},"requestState":"00ff.ab","inputResponses":{"confirm":{"action":"accept","content":{}}},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}})");
    EXPECT_EQ(json::parse(backend.last_confirmation),
              json({{"can_ask", true}, {"state", "00ff.ab"}, {"action", "accept"}}));
    // url-only elicitation cannot show the form; no capability, nothing to say.
    request(
        R"({"jsonrpc":"2.0","id":"c3","method":"tools/call","params":{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}})");
    EXPECT_EQ(backend.last_confirmation, "");
    // A state that is not a string is refused before the database.
    json bad = request(
        R"({"jsonrpc":"2.0","id":"c4","method":"tools/call","params":{"name":"t","requestState":7,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}})");
    EXPECT_EQ(bad["error"]["code"], error_code::kInvalidParams);
}

// 2025-11-25: a client that declared elicitation is asked within the session
// (elicitation/create, while the call stays in progress); its answer, or the timeout, sends the
// call to the database again with the state; a cancelled call is not answered.
TEST_F(ServerTest, LegacyConfirmationAsksInTheSession) {
    ServerOptions o = options();
    std::vector<std::function<void()>> scheduled;
    o.schedule = [&](std::chrono::milliseconds, std::function<void()> fn) {
        scheduled.push_back(std::move(fn));
    };
    McpServer s(backend, output, o, logger);
    s.handle_line(
        R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"c","version":"1"}}})");
    output.take();
    json head = {{"_meta",
                  {{"pg-mcp/status", "confirmation_asked"},
                   {"pg-mcp/input_required",
                    {{"message", "Close account 7?"},
                     {"requestState", "00ff.ab"},
                     {"requestedSchema", {{"type", "object"}, {"properties", json::object()}}}}}}},
                 {"isError", true},
                 {"content", {{{"type", "text"}, {"text", "waiting"}}}}};
    backend.call_result = head;
    s.handle_line(
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"id":7}}})");
    EXPECT_EQ(json::parse(backend.last_confirmation), json({{"can_ask", true}}));
    json ask = output.take();
    EXPECT_EQ(ask["method"], "elicitation/create");
    EXPECT_EQ(ask["params"]["message"], "Close account 7?");
    EXPECT_EQ(ask["params"]["mode"], "form");
    EXPECT_EQ(output.size(), 0u);  // the call waits for the person
    backend.call_result = ok_call_result();
    std::string answer = json({{"jsonrpc", "2.0"},
                               {"id", ask["id"]},
                               {"result", {{"action", "accept"}, {"content", json::object()}}}})
                             .dump();
    s.handle_line(answer);
    EXPECT_EQ(json::parse(backend.last_confirmation),
              json({{"can_ask", true}, {"state", "00ff.ab"}, {"action", "accept"}}));
    EXPECT_EQ(backend.last_arguments, json({{"id", 7}}));
    EXPECT_EQ(output.take()["id"], 1);
    s.handle_line(answer);  // answered already: nothing happens
    EXPECT_EQ(output.size(), 0u);

    // No answer in time: the request is withdrawn, and the database audits the timeout.
    backend.call_result = head;
    s.handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}})");
    json ask2 = output.take();
    ASSERT_EQ(scheduled.size(), 2u);
    backend.call_result = ok_call_result("confirmation_timeout");
    backend.call_result["isError"] = true;
    scheduled.back()();
    json withdrawn = output.take();
    EXPECT_EQ(withdrawn["method"], "notifications/cancelled");
    EXPECT_EQ(withdrawn["params"]["requestId"], ask2["id"]);
    EXPECT_EQ(json::parse(backend.last_confirmation)["action"], "timeout");
    EXPECT_EQ(output.take()["id"], 2);

    // The client cancels the call while the person is asked: no answer, no second round.
    backend.call_result = head;
    s.handle_line(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t"}})");
    json ask3 = output.take();
    s.handle_line(
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}})");
    json withdrawn3 = output.take();  // the request to the person is withdrawn at once
    EXPECT_EQ(withdrawn3["method"], "notifications/cancelled");
    EXPECT_EQ(withdrawn3["params"]["requestId"], ask3["id"]);
    backend.last_confirmation.clear();
    s.handle_line(
        json({{"jsonrpc", "2.0"}, {"id", ask3["id"]}, {"result", {{"action", "accept"}}}}).dump());
    EXPECT_EQ(backend.last_confirmation, "");
    EXPECT_EQ(output.size(), 0u);
    // An error from the client counts as dismissed.
    backend.call_result = head;
    s.handle_line(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"t"}})");
    json ask4 = output.take();
    backend.call_result = ok_call_result("confirmation_cancelled");
    s.handle_line(json({{"jsonrpc", "2.0"},
                        {"id", ask4["id"]},
                        {"error", {{"code", -32600}, {"message", "no"}}}})
                      .dump());
    EXPECT_EQ(json::parse(backend.last_confirmation)["action"], "cancel");
    EXPECT_EQ(output.take()["id"], 4);
}

TEST_F(ServerTest, LegacyListChangedAndLogging) {
    server.tools_changed();
    EXPECT_EQ(output.size(), 0u);  // nobody to tell before initialize
    initialize();
    server.tools_changed();
    EXPECT_EQ(output.take()["method"], "notifications/tools/list_changed");
    server.log_to_client(LogLevel::Warning, "before setLevel");
    EXPECT_EQ(output.size(), 0u);
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"warning"}})")
            ["result"],
        json::object());
    server.log_to_client(LogLevel::Info, "below");
    server.log_to_client(LogLevel::Error, "above");
    json log = output.take();
    EXPECT_EQ(log["method"], "notifications/message");
    EXPECT_EQ(log["params"]["level"], "error");
    EXPECT_EQ(log["params"]["data"], "above");
    EXPECT_EQ(output.size(), 0u);
    EXPECT_EQ(
        request(R"({"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"loud"}})")
            ["error"]["code"],
        error_code::kInvalidParams);
}

TEST_F(ServerTest, ModernRequestsAreStateless) {
    backend.tools = json::array({{{"name", "a"}}});
    json r = request(modern("1", "tools/list"));
    EXPECT_EQ(r["result"]["resultType"], "complete");
    EXPECT_EQ(r["result"]["cacheScope"], "private");
    EXPECT_TRUE(r["result"]["ttlMs"].is_number_integer());
    EXPECT_EQ(r["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "pg_mcp_bridge");
    EXPECT_EQ(backend.last_identity.client_info, "c2/9");
    backend.call_result = ok_call_result();
    json call = request(modern("2", "tools/call", R"("name":"a")"));
    EXPECT_EQ(call["result"]["resultType"], "complete");
    EXPECT_EQ(call["result"]["_meta"]["pg-mcp/status"], "ok");  // our _meta is kept
}

TEST_F(ServerTest, ModernDiscover) {
    json r = request(modern("\"d\"", "server/discover"));
    EXPECT_EQ(r["id"], "d");
    EXPECT_EQ(r["result"]["supportedVersions"][0], "2026-07-28");
    EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
    EXPECT_EQ(r["result"]["resultType"], "complete");
    EXPECT_EQ(
        request(
            R"({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}})")["error"]["code"],
        error_code::kInvalidParams);
}

TEST_F(ServerTest, ModernVersionAndCapabilityErrors) {
    json r = request(
        R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}})");
    EXPECT_EQ(r["error"]["code"], error_code::kUnsupportedProtocolVersion);
    EXPECT_EQ(r["error"]["data"]["requested"], "2099-01-01");
    EXPECT_EQ(r["error"]["data"]["supported"][0], "2026-07-28");
    r = request(
        R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":7,"io.modelcontextprotocol/clientCapabilities":{}}}})");
    EXPECT_EQ(r["error"]["code"], error_code::kUnsupportedProtocolVersion);
    r = request(
        R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}})");
    EXPECT_EQ(r["error"]["code"], error_code::kInvalidParams);
    EXPECT_EQ(request(modern("4", "ping"))["error"]["code"], error_code::kMethodNotFound);
    EXPECT_EQ(request(modern("5", "logging/setLevel", R"("level":"info")"))["error"]["code"],
              error_code::kMethodNotFound);
    r = request(
        R"({"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"loud"}}})");
    EXPECT_EQ(r["error"]["code"], error_code::kInvalidParams);
}

TEST_F(ServerTest, ModernSubscriptions) {
    json ack =
        request(modern("\"listen:0\"", "subscriptions/listen",
                       R"("notifications":{"toolsListChanged":true,"promptsListChanged":true})"));
    EXPECT_EQ(ack["method"], "notifications/subscriptions/acknowledged");
    EXPECT_EQ(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen:0");
    EXPECT_EQ(ack["params"]["notifications"], json({{"toolsListChanged", true}}));
    server.tools_changed();
    json change = output.take();
    EXPECT_EQ(change["method"], "notifications/tools/list_changed");
    EXPECT_EQ(change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen:0");
    EXPECT_EQ(output.size(), 0u);  // no legacy notification: nobody initialized

    EXPECT_EQ(request(modern("7", "subscriptions/listen", R"("notifications":{})"))["method"],
              "notifications/subscriptions/acknowledged");
    server.handle_line(
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"listen:0"}})");
    server.tools_changed();
    EXPECT_EQ(output.size(), 0u);  // the cancelled one is gone; the other did not ask for tools
    server.shutdown();
    json closing = output.take();
    EXPECT_EQ(closing["id"], 7);
    EXPECT_EQ(closing["result"]["resultType"], "complete");
}

TEST_F(ServerTest, ModernLoggingOnlyForRequestsThatAskForIt) {
    backend.call_result = ok_call_result("error");
    backend.call_result["isError"] = true;
    request(modern("1", "tools/call", R"("name":"a")"));
    EXPECT_EQ(output.size(), 0u);
    server.handle_line(
        R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"debug"}}})");
    EXPECT_EQ(output.take()["method"], "notifications/message");
    EXPECT_EQ(output.take()["id"], 2);
}

TEST_F(ServerTest, WrongTypesInEveryFieldNeverThrow) {
    // Every field of every method, replaced by every JSON type: each request gets exactly one
    // reply with its id, and nothing throws.
    const char *values[] = {"null", "true", "0", "-1.5", "\"s\"", "[]", "{}", "[{}]", "{\"a\":{}}"};
    const char *templates[] = {
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":V,"capabilities":V,"clientInfo":V}})",
        R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":V}})",
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":V,"arguments":V,"_meta":V}})",
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"progressToken":V}}})",
        R"({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":V}})",
        R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":V,"io.modelcontextprotocol/clientCapabilities":V,"io.modelcontextprotocol/clientInfo":V,"io.modelcontextprotocol/logLevel":V}}})",
        R"({"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"notifications":V}})",
        R"({"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"notifications":{"toolsListChanged":V}}})",
        R"({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":V}})",
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":V,"reason":V}})",
    };
    backend.call_result = ok_call_result();
    backend.tools = json::array({{{"name", "t"}}});
    for (const char *templ : templates) {
        for (const char *value : values) {
            std::string line = templ;
            for (size_t at = line.find('V'); at != std::string::npos; at = line.find('V', at)) {
                if (line[at - 1] != ':') {
                    ++at;
                    continue;
                }
                line.replace(at, 1, value);
            }
            McpServer fresh(backend, output, options(), logger);
            fresh.handle_line(
                R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
            output.take();
            ASSERT_NO_THROW(fresh.handle_line(line)) << line;
            fresh.shutdown();
            for (json reply = output.take(); !reply.is_null(); reply = output.take()) {
                if (reply.contains("method")) continue;  // acknowledgements, notifications
                EXPECT_TRUE(reply.contains("result") != reply.contains("error"))
                    << line << " -> " << reply;
            }
        }
    }
}

// A NUL in a name, uri or id would be cut off where the text reaches libpq (a tool other than
// the one named would run, the audit row would get a shortened id): refused before the backend.
TEST_F(ServerTest, NamesUrisAndIdsWithNulAreRefused) {
    initialize();
    backend.call_result = ok_call_result();
    backend.last_tool.clear();
    json call = request(
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"drop_all\u0000x","arguments":{}}})");
    EXPECT_EQ(call["error"]["code"], error_code::kInvalidParams) << call;
    EXPECT_EQ(call["id"], 1);
    EXPECT_EQ(backend.last_tool, "") << "the backend was not asked";
    json read = request(
        R"({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"pg://a\u0000b"}})");
    EXPECT_EQ(read["error"]["code"], error_code::kInvalidParams) << read;
    json id = request(
        R"({"jsonrpc":"2.0","id":"a\u0000b","method":"tools/call","params":{"name":"t","arguments":{}}})");
    EXPECT_EQ(id["error"]["code"], error_code::kInvalidRequest) << id;
    EXPECT_EQ(backend.last_tool, "");
}
