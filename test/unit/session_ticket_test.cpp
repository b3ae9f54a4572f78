// Session tickets: what a bridge seals opens on any bridge with the same key, for the same
// owner, within its lifetime; anything else opens nowhere.
#include <gtest/gtest.h>

#include <fstream>

#include "jose.hpp"
#include "mcp_server.hpp"
#include "session_ticket.hpp"

using namespace pg_mcp::bridge;
using nlohmann::json;
using std::chrono::seconds;

namespace {

const auto kNow = std::chrono::system_clock::time_point(seconds(1796000000));
const seconds kDay(86400);

SessionState state() {
    return {"2025-11-25", json{{"name", "claude-code"}, {"version", "2.1"}}, true};
}

}  // namespace

TEST(SessionTicket, OpensWhatItSealedForTheSameOwner) {
    SessionKeys keys({std::string(32, 'a')});
    SessionKeys::Ticket ticket = keys.seal(state(), "owner-1", kNow);
    EXPECT_TRUE(looks_like_ticket(ticket.text));
    EXPECT_EQ(ticket.name.size(), 32u);
    for (char c : ticket.text) EXPECT_TRUE(c >= 0x21 && c <= 0x7e) << ticket.text;  // visible ASCII
    // Another bridge with the same key.
    SessionKeys other({std::string(32, 'a')});
    auto opened = other.open(ticket.text, "owner-1", kNow + seconds(3600), kDay);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->name, ticket.name);
    EXPECT_EQ(opened->state.version, "2025-11-25");
    EXPECT_EQ(opened->state.client_info, (json{{"name", "claude-code"}, {"version", "2.1"}}));
    EXPECT_TRUE(opened->state.can_elicit);
    // No token, hash or owner in clear in it.
    auto payload = jose::base64url_decode(ticket.text.substr(3, ticket.text.rfind('.') - 3));
    ASSERT_TRUE(payload);
    EXPECT_EQ(payload->find("owner-1"), std::string::npos);
    // Each ticket is new.
    EXPECT_NE(keys.seal(state(), "owner-1", kNow).name, ticket.name);
}

TEST(SessionTicket, RefusedForAnotherOwnerKeyOrTime) {
    SessionKeys keys({std::string(32, 'a')});
    std::string ticket = keys.seal(state(), "owner-1", kNow).text;
    EXPECT_FALSE(keys.open(ticket, "owner-2", kNow, kDay));
    EXPECT_FALSE(keys.open(ticket, "", kNow, kDay));
    EXPECT_FALSE(SessionKeys({std::string(32, 'b')}).open(ticket, "owner-1", kNow, kDay));
    EXPECT_FALSE(keys.open(ticket, "owner-1", kNow + kDay + seconds(1), kDay));
    EXPECT_TRUE(keys.open(ticket, "owner-1", kNow + kDay, kDay));
    EXPECT_FALSE(keys.open(ticket, "owner-1", kNow - seconds(61), kDay));  // from the future
}

TEST(SessionTicket, RotationOpensWithEveryKeySealsWithTheFirst) {
    SessionKeys old_keys({std::string(32, 'o')});
    SessionKeys both({std::string(32, 'n'), std::string(32, 'o')});
    SessionKeys new_keys({std::string(32, 'n')});
    std::string before = old_keys.seal(state(), "x", kNow).text;
    EXPECT_TRUE(both.open(before, "x", kNow, kDay));
    std::string during = both.seal(state(), "x", kNow).text;
    EXPECT_TRUE(new_keys.open(during, "x", kNow, kDay));
    EXPECT_FALSE(old_keys.open(during, "x", kNow, kDay));
}

TEST(SessionTicket, AnyAlterationIsRefused) {
    SessionKeys keys({std::string(32, 'a')});
    std::string ticket = keys.seal(state(), "o", kNow).text;
    for (size_t i = 0; i < ticket.size(); i++) {
        std::string altered = ticket;
        altered[i] = altered[i] == 'A' ? 'B' : 'A';
        EXPECT_FALSE(keys.open(altered, "o", kNow, kDay)) << i;
    }
    EXPECT_FALSE(keys.open(ticket + "A", "o", kNow, kDay));
    EXPECT_FALSE(keys.open(ticket.substr(0, ticket.size() - 1), "o", kNow, kDay));
    EXPECT_FALSE(keys.open("s1.", "o", kNow, kDay));
    EXPECT_FALSE(keys.open("s1..", "o", kNow, kDay));
    EXPECT_FALSE(keys.open("0123456789abcdef0123456789abcdef", "o", kNow, kDay));
    EXPECT_FALSE(keys.open(std::string(5000, 'a'), "o", kNow, kDay));
}

TEST(SessionTicket, SealedPayloadsAreCheckedAllTheSame) {
    SessionKeys keys({std::string(32, 'a')});
    for (const char *payload :
         {"[]", "null", "{\"v\":1}", "{}", "not json",
          "{\"v\":\"2025-11-25\",\"c\":{},\"e\":true,\"o\":\"x\",\"t\":1796000000,\"n\":\"short\"}",
          "{\"v\":\"2025-11-25\",\"c\":[],\"e\":true,\"o\":\"x\",\"t\":1796000000,"
          "\"n\":\"0123456789abcdef0123456789abcdef\"}"})
        EXPECT_FALSE(keys.open(keys.seal_payload(payload), "o", kNow, kDay)) << payload;
}

TEST(SessionTicket, LongClientDescriptionsAreCutToFit) {
    SessionKeys keys({std::string(32, 'a')});
    SessionState big = state();
    big.client_info = {{"name", std::string(5000, '\x01')},
                       {"version", std::string(5000, 'v')},
                       {"title", "\xc3\xa9t\xc3\xa9"},
                       {"icons", json::array({std::string(5000, 'i')})}};
    SessionKeys::Ticket ticket = keys.seal(big, "o", kNow);
    EXPECT_LE(ticket.text.size(), SessionKeys::kMaxTicketBytes);
    auto opened = keys.open(ticket.text, "o", kNow, kDay);
    ASSERT_TRUE(opened);
    EXPECT_FALSE(opened->state.client_info.contains("icons"));
}

TEST(SessionTicket, KeysShorterThan32BytesAreRefused) {
    std::string problem;
    EXPECT_FALSE(SessionKeys::load({"/nonexistent/key"}, problem));
    EXPECT_NE(problem.find("not a readable regular file"), std::string::npos);
    EXPECT_FALSE(SessionKeys::load({"/dev/urandom"}, problem));  // would never end
    std::string file = testing::TempDir() + "session_ticket_short.key";
    std::ofstream(file) << std::string(31, 'k') << "\n";
    EXPECT_FALSE(SessionKeys::load({file}, problem));
    EXPECT_NE(problem.find("at least 32 bytes"), std::string::npos);
    std::ofstream(file) << std::string(32, 'k') << "\n";
    EXPECT_TRUE(SessionKeys::load({file}, problem));
}

TEST(SessionTicket, ServerResumesWhatInitializeNegotiated) {
    json params = {{"protocolVersion", "2099-01-01"},
                   {"capabilities", {{"elicitation", json::object()}}},
                   {"clientInfo", {{"name", "c"}, {"version", "1"}}}};
    SessionState negotiated = McpServer::negotiate(params);
    EXPECT_EQ(negotiated.version, "2025-11-25");  // an unknown revision: the newest legacy one
    EXPECT_TRUE(negotiated.can_elicit);
    params["capabilities"] = {{"elicitation", {{"url", json::object()}}}};
    EXPECT_FALSE(McpServer::negotiate(params).can_elicit);  // URL mode only
}
