// JSON-RPC framing: every message shape and every error class of the specification.
#include <gtest/gtest.h>

#include "json_rpc.hpp"

using namespace pg_mcp::bridge;

namespace {
int error_code_of(const Message &message) {
    return message.error["code"].get<int>();
}
}  // namespace

TEST(JsonRpc, Request) {
    Message m =
        parse_message(R"({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"x"}})");
    ASSERT_EQ(m.kind, Message::Kind::Request);
    EXPECT_EQ(m.id, 7);
    EXPECT_EQ(m.method, "tools/list");
    EXPECT_EQ(m.params["cursor"], "x");
}

TEST(JsonRpc, StringIdsAndMissingParams) {
    Message m = parse_message(R"({"jsonrpc":"2.0","id":"abc","method":"ping"})");
    ASSERT_EQ(m.kind, Message::Kind::Request);
    EXPECT_EQ(m.id, "abc");
    EXPECT_TRUE(m.params.is_object());
    EXPECT_TRUE(m.params.empty());
    EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"method":"ping","params":null})").kind,
              Message::Kind::Request);
}

TEST(JsonRpc, Notification) {
    Message m = parse_message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    EXPECT_EQ(m.kind, Message::Kind::Notification);
    EXPECT_EQ(m.method, "notifications/initialized");
}

TEST(JsonRpc, ResponseFromClient) {
    EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"result":{}})").kind,
              Message::Kind::Response);
    EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}})").kind,
              Message::Kind::Response);
}

TEST(JsonRpc, ParseErrors) {
    for (const char *line : {"", "{", "{\"jsonrpc\":\"2.0\",", "garbage", "\x80\x81\xfe\xff",
                             "{\"jsonrpc\":\"2.0\",\"method\":\"\xc3\x28\"}"}) {
        Message m = parse_message(line);
        EXPECT_EQ(m.kind, Message::Kind::Invalid) << line;
        EXPECT_EQ(error_code_of(m), error_code::kParseError) << line;
        EXPECT_TRUE(m.id.is_null());
    }
}

// A message that cannot be parsed whole answers with its id when the id is readable, wherever
// the bad part is: invalid UTF-8, a lone UTF-16 surrogate, a number out of range, nesting over
// the limit; before or after the id.
TEST(JsonRpc, UnparsableMessagesKeepTheirReadableId) {
    std::string deep = std::string(200, '[') + std::string(200, ']');
    struct Case {
        std::string line;
        json id;
        int code;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc3\x28\"}", 1, error_code::kParseError},
        {R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"s":"\ud800"}})", 2,
         error_code::kParseError},
        {R"({"jsonrpc":"2.0","method":"tools/call","params":{"s":"\ud800"},"id":"s-3"})", "s-3",
         error_code::kParseError},
        {R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"n":1e400}})", 4,
         error_code::kParseError},
        {R"({"jsonrpc":"2.0","method":"tools/call","params":{"n":-1e400},"id":5})", 5,
         error_code::kParseError},
        {R"({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"x":)" + deep + "}}", 6,
         error_code::kInvalidRequest},
        {R"({"jsonrpc":"2.0","method":"tools/call","params":{"x":)" + deep + R"(},"id":7})", 7,
         error_code::kInvalidRequest},
    };
    for (const Case &c : cases) {
        Message m = parse_message(c.line);
        ASSERT_EQ(m.kind, Message::Kind::Invalid) << c.line;
        EXPECT_EQ(error_code_of(m), c.code) << c.line;
        EXPECT_EQ(m.id, c.id) << c.line;
    }
}

TEST(JsonRpc, InvalidRequests) {
    struct Case {
        const char *line;
        int code;
        bool keeps_id;
    } cases[] = {
        {"[]", error_code::kInvalidRequest, false},
        {R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])", error_code::kInvalidRequest, false},
        {"42", error_code::kInvalidRequest, false},
        {R"("text")", error_code::kInvalidRequest, false},
        {R"({"id":1,"method":"ping"})", error_code::kInvalidRequest, true},
        {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", error_code::kInvalidRequest, true},
        {R"({"jsonrpc":2,"id":1,"method":"ping"})", error_code::kInvalidRequest, true},
        {R"({"jsonrpc":"2.0","id":null,"method":"ping"})", error_code::kInvalidRequest, false},
        {R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", error_code::kInvalidRequest, false},
        {R"({"jsonrpc":"2.0","id":{"a":1},"method":"ping"})", error_code::kInvalidRequest, false},
        {R"({"jsonrpc":"2.0","id":[1],"method":"ping"})", error_code::kInvalidRequest, false},
        {R"({"jsonrpc":"2.0","id":1})", error_code::kInvalidRequest, true},
        {R"({"jsonrpc":"2.0","id":1,"method":5})", error_code::kInvalidRequest, true},
        {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]})", error_code::kInvalidParams,
         true},
        {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":"x"})", error_code::kInvalidParams,
         true},
    };
    for (const Case &c : cases) {
        Message m = parse_message(c.line);
        ASSERT_EQ(m.kind, Message::Kind::Invalid) << c.line;
        EXPECT_EQ(error_code_of(m), c.code) << c.line;
        EXPECT_EQ(m.id.is_null(), !c.keeps_id) << c.line;
    }
}

TEST(JsonRpc, RecoversIdsOfOversizedRequests) {
    EXPECT_EQ(
        recover_request_id(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"a)", ""), 7);
    EXPECT_EQ(recover_request_id(R"({ "id" : "abc", "params":{"x)", ""), "abc");
    EXPECT_EQ(recover_request_id(R"({"method":"x","params":{"id":5,"y":")", ""),
              nullptr);  // nested
    EXPECT_EQ(recover_request_id(R"({"method":"x","params":{"s":"\"id\":3)", ""),
              nullptr);  // inside a string
    EXPECT_EQ(recover_request_id("{\"params\":{\"a", "aaa\"}},\"jsonrpc\":\"2.0\",\"id\":12}"), 12);
    EXPECT_EQ(recover_request_id("", "aaaa\"},\"id\":\"req-9\" }  "), "req-9");
    EXPECT_EQ(recover_request_id("", "aaa\"},\"xid\":12}"), nullptr);
    EXPECT_EQ(recover_request_id("", "aaa\"},\"id\":1.5}"), nullptr);
    // A number that is not an integer id is not cut down to one ({"id":1e400} is not id 1).
    EXPECT_EQ(recover_request_id(R"({"id":1e400,"method":"ping"})", ""), nullptr);
    EXPECT_EQ(recover_request_id(R"({"id":1.5,"method":"ping"})", ""), nullptr);
    EXPECT_EQ(recover_request_id(R"({"id":15 ,"method":"ping")", ""), 15);
    EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1e400,"method":"ping"})").id, nullptr);
    EXPECT_EQ(recover_request_id("", "no json at all"), nullptr);
    EXPECT_EQ(recover_request_id("", ""), nullptr);
}

TEST(JsonRpc, NulCharactersNeverReachTheDatabase) {
    // In arguments, in a member name, in the method: -32602 with the id (an id with one is not
    // a valid id: -32600).
    for (
        const char *line :
        {R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"q","arguments":{"a":"x\u0000y"}}})",
         R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"q\u0000r"}})",
         R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{"a\u0000":1}}})",
         R"({"jsonrpc":"2.0","id":4,"method":"tools\u0000/call"})"}) {
        Message message = parse_message(line);
        ASSERT_EQ(message.kind, Message::Kind::Invalid) << line;
        EXPECT_EQ(message.id, 4) << line;
        EXPECT_EQ(message.error["code"], error_code::kInvalidParams) << line;
    }
    Message id = parse_message(R"({"jsonrpc":"2.0","id":"a\u0000","method":"ping"})");
    EXPECT_EQ(id.kind, Message::Kind::Invalid);
    EXPECT_EQ(id.error["code"], error_code::kInvalidRequest);
    EXPECT_EQ(
        parse_message(R"({"jsonrpc":"2.0","id":4,"method":"ping","params":{"a":"\u0001"}})").kind,
        Message::Kind::Request);
}

TEST(JsonRpc, UnknownIdsAreOmitted) {
    EXPECT_FALSE(make_error(nullptr, -32700, "Parse error").contains("id"));
}

TEST(JsonRpc, DeepNestingIsRefusedUnparsed) {
    std::string deep =
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"x":)" +
        std::string(100000, '[') + std::string(100000, ']') + "}}}";
    Message m = parse_message(deep);
    ASSERT_EQ(m.kind, Message::Kind::Invalid);
    EXPECT_EQ(m.error["code"], error_code::kInvalidRequest);
    // Brackets inside strings do not count.
    std::string bracketed = R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"s":")" +
                            std::string(1000, '[') + R"("}})";
    EXPECT_EQ(parse_message(bracketed).kind, Message::Kind::Request);
}

TEST(JsonRpc, Builders) {
    EXPECT_EQ(make_result(3, {{"a", 1}}).dump(), R"({"id":3,"jsonrpc":"2.0","result":{"a":1}})");
    EXPECT_EQ(make_error("x", -32601, "Method not found").dump(),
              R"({"error":{"code":-32601,"message":"Method not found"},"id":"x","jsonrpc":"2.0"})");
    EXPECT_EQ(make_error(nullptr, -32700, "Parse error", {{"k", 1}})["error"]["data"]["k"], 1);
    EXPECT_EQ(make_notification("notifications/progress", {{"progress", 1}})["params"]["progress"],
              1);
}
