// MCP dispatch for both protocol eras, against a scripted backend (the real backend, the
// extension on a real server, is covered by the end-to-end tests).
#include "server_fixture.hpp"

using namespace pg_mcp::bridge;
using namespace pg_mcp::bridge::testing_support;

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
