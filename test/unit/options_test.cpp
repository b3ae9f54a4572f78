// Where the bridge's options come from: the command line, then PG_MCP_BRIDGE_* environment
// variables, then a --config file; each wins over those after it, and a misspelt name is an
// error rather than ignored.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "options.hpp"

using namespace pg_mcp::bridge;

namespace {

// Parses `args` (after the program name) with `environment` set meanwhile.
int parse(std::vector<std::string> args, BridgeOptions &options,
          const std::vector<std::pair<std::string, std::string>> &environment = {}) {
    for (const auto &[name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
    args.insert(args.begin(), "pg_mcp_bridge");
    std::vector<char *> argv;
    for (std::string &arg : args) argv.push_back(arg.data());
    int status = parse_bridge_options(static_cast<int>(argv.size()), argv.data(), options);
    for (const auto &entry : environment) unsetenv(entry.first.c_str());
    return status;
}

// A file of this test's own (ctest runs tests in parallel processes).
std::string write_config(const std::string &text) {
    static int files = 0;
    std::string file = testing::TempDir() + "bridge_options_" +
                       testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                       std::to_string(++files) + ".conf";
    std::ofstream(file) << text;
    return file;
}

}  // namespace

TEST(BridgeOptions, EnvironmentVariablesNameOptions) {
    BridgeOptions options;
    ASSERT_EQ(parse({}, options,
                    {{"PG_MCP_BRIDGE_POOL_SIZE", "7"},
                     {"PG_MCP_BRIDGE_DSN", "dbname=fromenv"},
                     {"PG_MCP_BRIDGE_NO_PREPARED_STATEMENTS", "true"}}),
              0);
    EXPECT_EQ(options.pool_size, 7u);
    EXPECT_EQ(options.dsn, "dbname=fromenv");
    EXPECT_FALSE(options.prepare_statements);
}

TEST(BridgeOptions, TheCommandLineWinsOverTheEnvironmentAndTheEnvironmentOverTheFile) {
    std::string file =
        write_config("# the file\npool-size = 5\nagent = from-file\npage-size = 9\n");
    BridgeOptions options;
    ASSERT_EQ(parse({"--config", file, "--pool-size", "3", "dbname=positional"}, options,
                    {{"PG_MCP_BRIDGE_POOL_SIZE", "4"},
                     {"PG_MCP_BRIDGE_AGENT", "from-env"},
                     {"PG_MCP_BRIDGE_DSN", "dbname=fromenv"}}),
              0);
    EXPECT_EQ(options.pool_size, 3u);
    EXPECT_EQ(options.agent, "from-env");
    EXPECT_EQ(options.page_size, 9u);
    EXPECT_EQ(options.dsn, "dbname=positional");
}

TEST(BridgeOptions, KubernetesServiceLinksAreNotOptions) {
    // What Kubernetes puts in every pod's environment for a Service named pg-mcp-bridge.
    BridgeOptions options;
    EXPECT_EQ(parse({}, options,
                    {{"PG_MCP_BRIDGE_SERVICE_HOST", "10.0.0.1"},
                     {"PG_MCP_BRIDGE_SERVICE_PORT", "8080"},
                     {"PG_MCP_BRIDGE_SERVICE_PORT_HTTP", "8080"},
                     {"PG_MCP_BRIDGE_PORT", "tcp://10.0.0.1:8080"},
                     {"PG_MCP_BRIDGE_PORT_8080_TCP", "tcp://10.0.0.1:8080"},
                     {"PG_MCP_BRIDGE_PORT_8080_TCP_PROTO", "tcp"},
                     {"PG_MCP_BRIDGE_PORT_8080_TCP_PORT", "8080"},
                     {"PG_MCP_BRIDGE_PORT_8080_TCP_ADDR", "10.0.0.1"},
                     {"PG_MCP_BRIDGE_POOL_SIZE", "6"}}),
              0);
    EXPECT_EQ(options.pool_size, 6u);
    EXPECT_EQ(parse({}, options, {{"PG_MCP_BRIDGE_PORTS", "1"}}), 2);
}

TEST(BridgeOptions, MisspeltOrInvalidSettingsAreErrors) {
    BridgeOptions options;
    EXPECT_EQ(parse({}, options, {{"PG_MCP_BRIDGE_POOL_SIZES", "7"}}), 2);
    EXPECT_EQ(parse({}, options, {{"PG_MCP_BRIDGE_CHECK", "maybe"}}), 2);
    EXPECT_EQ(parse({}, options, {{"PG_MCP_BRIDGE_POOL_SIZE", "many"}}), 2);
    EXPECT_EQ(parse({"--config", write_config("pool-sizes = 5\n")}, options), 2);
    EXPECT_EQ(parse({"--config", "/nonexistent/bridge.conf"}, options), 2);
    EXPECT_EQ(parse({}, options, {{"PG_MCP_BRIDGE_CONFIG", "/nonexistent/bridge.conf"}}), 2);
}

TEST(BridgeOptions, SessionKeysNeedHttpAndALongEnoughKey) {
    std::string key = write_config(std::string(48, 'k'));
    BridgeOptions options;
    EXPECT_EQ(parse({"--session-key-file", key}, options), 2);  // stdio has no sessions to move
    BridgeOptions http;
    ASSERT_EQ(parse({"--http", "0", "--session-key-file", key}, http), 0);
    EXPECT_NE(http.http_options.session_keys, nullptr);
    BridgeOptions short_key;
    EXPECT_EQ(parse({"--http", "0", "--session-key-file", write_config("short")}, short_key), 2);
}
