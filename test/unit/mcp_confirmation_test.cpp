// McpServer's messages beside a call's answer: progress, notices of tool SQL as log messages
// of the call, and a person's confirmation of a call in both protocol eras, against the
// scripted backend (server_fixture.hpp).
#include "server_fixture.hpp"

using namespace pg_mcp::bridge;
using namespace pg_mcp::bridge::testing_support;

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
