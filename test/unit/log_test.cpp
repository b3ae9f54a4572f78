// Text log lines: no value can end a line or forge another one (ASCII controls, C1 controls,
// U+2028 and U+2029 are escaped); JSON lines are one JSON object each.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "log.hpp"

using namespace pg_mcp::bridge;

namespace {

std::string logged(bool json, const std::string &message) {
    Logger logger(LogLevel::Debug, json);
    testing::internal::CaptureStderr();
    logger.log(LogLevel::Warning, message, "id\n1");
    return testing::internal::GetCapturedStderr();
}

}  // namespace

TEST(Log, TextLinesEscapeEveryLineBreak) {
    std::string message = "a\nb\rc\x1b[31m\xc2\x85nel\xc2\x9f\xe2\x80\xa8ls\xe2\x80\xa9ps\xc3\xa9";
    std::string line = logged(false, message);
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
    EXPECT_EQ(line.find('\r'), std::string::npos);
    EXPECT_EQ(line.find("\xc2\x85"), std::string::npos);
    EXPECT_EQ(line.find("\xe2\x80\xa8"), std::string::npos);
    EXPECT_EQ(line.find("\xe2\x80\xa9"), std::string::npos);
    EXPECT_NE(line.find("a\\nb\\rc\\x1b[31m\\u0085nel\\u009f\\u2028ls\\u2029ps\xc3\xa9"),
              std::string::npos)
        << line;
    EXPECT_NE(line.find("(request id\\n1)"), std::string::npos) << line;
}

TEST(Log, JsonLinesAreOneObjectEach) {
    std::string line = logged(true, "a\nb\xe2\x80\xa8");
    ASSERT_EQ(line.find('\n'), line.size() - 1);
    nlohmann::json entry = nlohmann::json::parse(line);
    EXPECT_EQ(entry["message"], "a\nb\xe2\x80\xa8");
    EXPECT_EQ(entry["request_id"], "id\n1");
    EXPECT_EQ(entry["level"], "warning");
}
