// End-to-end: pg_mcp_bridge as a child process against a real throwaway cluster with the
// extension and the demo data (scripts/test.sh loads demo/demo.sql into $PG_MCP_E2E_DB).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bridge_process.hpp"

using namespace e2e;

namespace {

const char *kModernKey = "io.modelcontextprotocol/protocolVersion";

json modern_meta() {
    return {{kModernKey, "2026-07-28"},
            {"io.modelcontextprotocol/clientCapabilities", json::object()},
            {"io.modelcontextprotocol/clientInfo", {{"name", "e2e-modern"}, {"version", "2"}}}};
}

std::vector<std::string> tool_names(const json &list_result) {
    std::vector<std::string> names;
    for (const json &tool : list_result["result"]["tools"]) names.push_back(tool["name"]);
    return names;
}

std::string read_file(const std::string &path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

// A tool created for one test and dropped afterwards.
struct ScratchTool {
    ScratchTool(Sql &sql, std::string tool_name, const std::string &create_args,
                const std::string &role)
        : sql_(sql), name(std::move(tool_name)) {
        sql_.value("SELECT mcp.create_tool('" + name + "', " + create_args + ")");
        sql_.value("SELECT mcp.grant_tool($1, $2)", {name, role});
    }
    ~ScratchTool() {
        try {
            sql_.value("SELECT mcp.drop_tool($1, if_exists => true)", {name});
        } catch (...) {
        }
    }
    Sql &sql_;
    std::string name;
};

}  // namespace

TEST(Handshake, NegotiatesLegacyVersions) {
    for (const char *version : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
        Bridge bridge({conninfo("agent_support")});
        json r = bridge.initialize(version);
        EXPECT_EQ(r["result"]["protocolVersion"], version);
        EXPECT_EQ(r["result"]["serverInfo"]["name"], "pg_mcp_bridge");
        EXPECT_EQ(r["result"]["capabilities"]["tools"]["listChanged"], true);
        EXPECT_EQ(bridge.request(1, "ping")["result"], json::object());
    }
}

TEST(Handshake, UnknownVersionGetsOurs) {
    Bridge bridge({conninfo("agent_support")});
    EXPECT_EQ(bridge.initialize("2024-02-30")["result"]["protocolVersion"], "2025-11-25");
}

TEST(Handshake, ModernDiscoverAndStatelessRequests) {
    Bridge bridge({conninfo("agent_support")});
    json discover = bridge.request("d", "server/discover", {{"_meta", modern_meta()}});
    EXPECT_EQ(discover["result"]["supportedVersions"][0], "2026-07-28");
    EXPECT_EQ(discover["result"]["resultType"], "complete");
    json list = bridge.request("l", "tools/list", {{"_meta", modern_meta()}});
    EXPECT_EQ(tool_names(list), std::vector<std::string>{"get_customer_info"});
    EXPECT_EQ(list["result"]["cacheScope"], "private");
    json unsupported = bridge.request("u", "tools/list", {{"_meta", {{kModernKey, "2030-01-01"}}}});
    EXPECT_EQ(unsupported["error"]["code"], -32022);
}

TEST(ToolsList, EachRoleSeesItsOwnTools) {
    struct Case {
        const char *role;
        std::vector<std::string> tools;
    } cases[] = {{"agent_support", {"get_customer_info"}},
                 {"agent_analytics", {"get_customer_analytics"}},
                 {"agent_acme", {"get_tenant_customers"}}};
    for (const Case &c : cases) {
        Bridge bridge({conninfo(c.role)});
        bridge.initialize();
        json list = bridge.request(1, "tools/list");
        EXPECT_EQ(tool_names(list), c.tools) << c.role;
        EXPECT_EQ(list["result"]["tools"][0]["inputSchema"]["additionalProperties"], false);
    }
}

TEST(ToolsList, Paginates) {
    Bridge bridge({conninfo(env_or("PGUSER", "postgres")), "--page-size", "1"});
    bridge.initialize();
    std::vector<std::string> names;
    json cursor;
    int pages = 0;
    do {
        json params = cursor.is_null() ? json::object() : json{{"cursor", cursor}};
        json page = bridge.request(100 + pages, "tools/list", params);
        ASSERT_TRUE(page.contains("result")) << page;
        for (const auto &name : tool_names(page)) names.push_back(name);
        cursor = page["result"].value("nextCursor", json());
        ++pages;
    } while (!cursor.is_null() && pages < 20);
    // Every tool granted in the demo (a superuser is a member of every role), in name order.
    std::vector<std::string> expected = {
        "cancel_subscription",  "describe_object", "get_customer_analytics", "get_customer_info",
        "get_tenant_customers", "list_objects",    "propose_tool",           "query"};
    EXPECT_EQ(pages, static_cast<int>(expected.size()));
    EXPECT_EQ(names, expected);
}

TEST(ToolsCall, EveryDemoTool) {
    {
        Bridge bridge({conninfo("agent_support"), "--agent", "e2e-support"});
        bridge.initialize();
        json r = bridge.call(1, "get_customer_info", {{"email", "customer5@example.com"}});
        ASSERT_EQ(r["result"]["isError"], false) << r;
        EXPECT_EQ(r["result"]["structuredContent"]["rows"][0]["email"], "customer5@example.com");
        EXPECT_FALSE(r["result"]["structuredContent"]["rows"][0].contains("phone"));
    }
    {
        Bridge bridge({conninfo("agent_analytics")});
        bridge.initialize();
        json all = bridge.call(1, "get_customer_analytics");
        ASSERT_EQ(all["result"]["isError"], false) << all;
        EXPECT_GT(all["result"]["structuredContent"]["row_count"].get<int>(), 4);
        json pro = bridge.call(2, "get_customer_analytics", {{"plan_name", "pro"}});
        for (const json &row : pro["result"]["structuredContent"]["rows"]) {
            EXPECT_EQ(row["plan_name"], "pro");
            EXPECT_GE(row["customer_count"].get<int>(), 10);  // small groups suppressed
        }
    }
    {
        // The tenant comes from the principal of the role the bridge logs in as.
        Bridge bridge({conninfo("agent_globex")});
        bridge.initialize();
        json r = bridge.call(1, "get_tenant_customers", {{"plan_name", "pro"}});
        ASSERT_EQ(r["result"]["isError"], false) << r;
        EXPECT_EQ(r["result"]["structuredContent"]["row_count"], 25);
        EXPECT_EQ(r["result"]["structuredContent"]["truncated"], true);
        Sql sql;
        std::string expected = sql.value(
            "SELECT string_agg(id::text, ',' ORDER BY id DESC) FROM (SELECT id FROM "
            "app.tenant_customer_view "
            "WHERE tenant_id = '22222222-2222-4222-8222-222222222222' AND plan_name = 'pro' "
            "ORDER BY id DESC LIMIT 25) s");
        std::string got;
        for (const json &row : r["result"]["structuredContent"]["rows"]) {
            EXPECT_EQ(row["plan_name"], "pro");
            got += (got.empty() ? "" : ",") + std::to_string(row["id"].get<int>());
        }
        EXPECT_EQ(got, expected);
    }
    Sql sql;
    EXPECT_EQ(sql.value("SELECT agent_name || ' ' || client_info FROM mcp.audit_log "
                        "WHERE tool_name = 'get_customer_info' ORDER BY id DESC LIMIT 1"),
              "e2e-support e2e/1");
}

TEST(ToolsCall, InvalidArgumentsAreToolErrors) {
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    json r = bridge.call(1, "get_customer_info", {{"email", "not-an-email"}, {"extra", 1}});
    ASSERT_EQ(r["result"]["isError"], true) << r;
    std::string text = r["result"]["content"][0]["text"];
    EXPECT_NE(text.find("parameter \"email\""), std::string::npos) << text;
    EXPECT_NE(text.find("unknown parameter \"extra\""), std::string::npos) << text;
    json unknown = bridge.call(2, "get_customer_analytics");  // not granted to this role
    EXPECT_EQ(unknown["error"]["code"], -32602);
}

TEST(ToolsCall, PipelinedRequestsAllAnswered) {
    Bridge bridge({conninfo("agent_support"), "--pool-size", "2"});
    bridge.initialize();
    for (int i = 1; i <= 6; ++i)
        bridge.send(
            {{"jsonrpc", "2.0"},
             {"id", i},
             {"method", "tools/call"},
             {"params",
              {{"name", "get_customer_info"},
               {"arguments", {{"email", "customer" + std::to_string(i) + "@example.com"}}}}}});
    for (int i = 1; i <= 6; ++i) {
        json r = bridge.response(i);
        ASSERT_TRUE(r.contains("result")) << i;
        EXPECT_EQ(r["result"]["structuredContent"]["rows"][0]["email"],
                  "customer" + std::to_string(i) + "@example.com");
    }
}

// A result far larger than one streamed piece (64 kB) arrives whole and intact, in the same
// order as the database produced it, with other responses before and after it on their own lines.
TEST(ToolsCall, LargeResultIsStreamedIntact) {
    Sql sql;
    sql.value(
        "SELECT mcp.create_tool('e2e_many_rows', 'SELECT id, name, email, plan_name, "
        "subscription_status, last_login_date, active_users_30d FROM "
        "app.customer_support_view ORDER BY id LIMIT :n', 'Many rows', "
        "'[{\"name\": \"n\", \"type\": \"integer\"}]', max_rows => 1000, "
        "max_bytes => 10000000, run_as => 'mcp_support_reader')");
    sql.value("SELECT mcp.grant_tool('e2e_many_rows', 'agent_support')");
    struct Drop {
        ~Drop() { Sql().value("SELECT mcp.drop_tool('e2e_many_rows')"); }
    } drop;
    Bridge bridge({conninfo("agent_support"), "--pool-size", "2"});
    bridge.initialize();
    bridge.send({{"jsonrpc", "2.0"},
                 {"id", 1},
                 {"method", "tools/call"},
                 {"params", {{"name", "e2e_many_rows"}, {"arguments", {{"n", 1000}}}}}});
    bridge.send(
        {{"jsonrpc", "2.0"},
         {"id", 2},
         {"method", "tools/call"},
         {"params",
          {{"name", "get_customer_info"}, {"arguments", {{"email", "customer1@example.com"}}}}}});
    json big = bridge.response(1);
    json small = bridge.response(2);
    ASSERT_TRUE(big.contains("result")) << big.dump().substr(0, 300);
    const json &rows = big["result"]["structuredContent"]["rows"];
    std::string expected = sql.value(
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM "
        "app.customer_support_view ORDER BY id LIMIT 1000) s");
    std::string got;
    for (const json &row : rows)
        got += (got.empty() ? "" : ",") + std::to_string(row["id"].get<int>());
    EXPECT_EQ(got, expected);
    EXPECT_GT(big.dump().size(), 2u * 65536u);  // at least three pieces
    // The text block holds the same rows between the call's untrusted-data boundaries.
    std::string text = big["result"]["content"][0]["text"];
    size_t open = text.find(">\n", text.find("\n<untrusted-data-"));
    size_t close = text.rfind("\n</untrusted-data-");
    ASSERT_TRUE(open != std::string::npos && close != std::string::npos && close > open) << text;
    EXPECT_EQ(json::parse(text.substr(open + 2, close - open - 2)),
              big["result"]["structuredContent"]);
    EXPECT_EQ(big["result"]["_meta"]["pg-mcp/status"], "ok");
    EXPECT_EQ(small["result"]["structuredContent"]["rows"][0]["email"], "customer1@example.com");
}

TEST(ToolsCall, ProgressForLongCalls) {
    Sql sql;
    ScratchTool tool(sql, "e2e_progress",
                     "'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'Sleeps', "
                     "'[{\"name\": \"s\", \"type\": \"number\"}]'",
                     "agent_support");
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    json r = bridge.call(1, tool.name, {{"s", 2.5}}, {{"progressToken", "p1"}});
    ASSERT_EQ(r["result"]["isError"], false) << r;
    int progress = 0;
    for (const json &n : bridge.notifications)
        if (n.value("method", "") == "notifications/progress" &&
            n["params"]["progressToken"] == "p1")
            ++progress;
    EXPECT_GE(progress, 2);
}

TEST(Cancellation, CancelStopsTheQueryAndIsAudited) {
    Sql sql;
    ScratchTool tool(sql, "e2e_sleep",
                     "'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'Sleeps', "
                     "'[{\"name\": \"s\", \"type\": \"number\"}]', timeout => '60 seconds'",
                     "agent_support");
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    bridge.send({{"jsonrpc", "2.0"},
                 {"id", 7},
                 {"method", "tools/call"},
                 {"params", {{"name", tool.name}, {"arguments", {{"s", 30}}}}}});
    const std::string active =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg_mcp_bridge%' "
        "AND state = 'active' AND query LIKE '%mcp.serve_call%'";
    // Cancel once the tool's SQL is running (a cancel before that cancels the call itself).
    ASSERT_EQ(sql.wait_for(active + " AND wait_event = 'PgSleep'", "1", 10s), "1");
    bridge.send({{"jsonrpc", "2.0"},
                 {"method", "notifications/cancelled"},
                 {"params", {{"requestId", 7}, {"reason", "test"}}}});
    EXPECT_EQ(sql.wait_for(active, "0", 5s), "0");
    EXPECT_TRUE(bridge.response(7, 1500ms).is_null());  // a cancelled request gets no response
    EXPECT_EQ(sql.wait_for("SELECT status FROM mcp.audit_log WHERE tool_name = 'e2e_sleep' ORDER "
                           "BY id DESC LIMIT 1",
                           "cancelled", 5s),
              "cancelled");
    EXPECT_EQ(bridge.call(8, "get_customer_info",
                          {{"email", "customer1@example.com"}})["result"]["isError"],
              false);
}

TEST(ListChanged, NotifiedWhenAnotherSessionCreatesATool) {
    Bridge legacy({conninfo("agent_support")});
    legacy.initialize();
    Bridge modern({conninfo("agent_support")});
    json ack_request = {
        {"jsonrpc", "2.0"},
        {"id", "listen:1"},
        {"method", "subscriptions/listen"},
        {"params", {{"_meta", modern_meta()}, {"notifications", {{"toolsListChanged", true}}}}}};
    modern.send(ack_request);
    json ack = modern.notification("notifications/subscriptions/acknowledged");
    ASSERT_FALSE(ack.is_null());
    EXPECT_EQ(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen:1");
    std::this_thread::sleep_for(300ms);  // the bridges' LISTEN connections are up by now

    Sql sql;
    ScratchTool tool(sql, "e2e_new_tool", "'SELECT 1 AS one', 'A new tool'", "agent_support");
    json legacy_change = legacy.notification("notifications/tools/list_changed");
    EXPECT_FALSE(legacy_change.is_null());
    json modern_change = modern.notification("notifications/tools/list_changed");
    ASSERT_FALSE(modern_change.is_null());
    EXPECT_EQ(modern_change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
              "listen:1");
    auto names = tool_names(legacy.request(5, "tools/list"));
    EXPECT_NE(std::find(names.begin(), names.end(), "e2e_new_tool"), names.end());
}

TEST(Recovery, AfterTheConnectionIsTerminated) {
    Sql sql;
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    ASSERT_EQ(bridge.call(1, "get_customer_info",
                          {{"email", "customer1@example.com"}})["result"]["isError"],
              false);
    const std::string kill =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name LIKE 'pg_mcp_bridge%' AND usename = 'agent_support' AND pid <> "
        "pg_backend_pid()";
    EXPECT_NE(sql.value(kill), "0");
    std::this_thread::sleep_for(200ms);
    // The idle connection was closed by the server: the next call reconnects and succeeds.
    json after = bridge.call(2, "get_customer_info", {{"email", "customer2@example.com"}});
    EXPECT_EQ(after["result"]["isError"], false) << after;

    // A connection killed during a call: that call gets a clear error, the next one works.
    ScratchTool tool(sql, "e2e_sleep_kill",
                     "'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'Sleeps', '[{\"name\": \"s\", "
                     "\"type\": \"number\"}]'",
                     "agent_support");
    bridge.send({{"jsonrpc", "2.0"},
                 {"id", 3},
                 {"method", "tools/call"},
                 {"params", {{"name", tool.name}, {"arguments", {{"s", 20}}}}}});
    ASSERT_EQ(
        sql.wait_for(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg_mcp_bridge%' "
            "AND state = 'active' AND query LIKE '%mcp.serve_call%'",
            "1", 10s),
        "1")
        << bridge.response(3, 100ms);
    sql.value(kill);
    json lost = bridge.response(3);
    ASSERT_TRUE(lost.contains("error")) << lost;
    EXPECT_NE(lost["error"]["message"].get<std::string>().find("connection lost"),
              std::string::npos)
        << lost;
    json later;
    for (int attempt = 0; attempt < 20; ++attempt) {  // backoff may ask for a moment
        later =
            bridge.call(10 + attempt, "get_customer_info", {{"email", "customer3@example.com"}});
        if (later.contains("result")) break;
        std::this_thread::sleep_for(250ms);
    }
    EXPECT_EQ(later["result"]["isError"], false) << later;
}

TEST(Shutdown, ExitsCleanlyOnEndOfInput) {
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    bridge.close_input();
    EXPECT_EQ(bridge.wait_exit(5s), 0);
}

TEST(Shutdown, ExitsCleanlyOnSigtermCancellingWork) {
    Sql sql;
    ScratchTool tool(sql, "e2e_sleep_term",
                     "'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'Sleeps', '[{\"name\": \"s\", "
                     "\"type\": \"number\"}]'",
                     "agent_support");
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    bridge.send({{"jsonrpc", "2.0"},
                 {"id", 1},
                 {"method", "tools/call"},
                 {"params", {{"name", tool.name}, {"arguments", {{"s", 30}}}}}});
    const std::string active =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg_mcp_bridge%' "
        "AND state = 'active' AND query LIKE '%mcp.serve_call%'";
    ASSERT_EQ(sql.wait_for(active, "1", 10s), "1");
    ::kill(bridge.pid(), SIGTERM);
    EXPECT_EQ(bridge.wait_exit(5s), 0);
    EXPECT_EQ(sql.wait_for(active, "0", 5s), "0");
}

TEST(MalformedInput, AnswersErrorsAndKeepsServing) {
    Bridge bridge({conninfo("agent_support")});
    bridge.initialize();
    bridge.send_raw("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/l");  // truncated
    EXPECT_EQ(bridge.next()["error"]["code"], -32700);
    bridge.send_raw(std::string("\x00\x01\x02\xff\xfe binary \x80", 14));
    EXPECT_EQ(bridge.next()["error"]["code"], -32700);
    bridge.send_raw(std::string(10 * 1024 * 1024, '{'));  // a 10 MB line
    json big = bridge.next();
    EXPECT_EQ(big["error"]["code"], -32600);
    EXPECT_NE(big["error"]["message"].get<std::string>().find("maximum size"), std::string::npos);
    bridge.send_raw("[]");
    EXPECT_EQ(bridge.next()["error"]["code"], -32600);
    bridge.send_raw(R"({"jsonrpc":"2.0","id":{"x":1},"method":"ping"})");
    EXPECT_EQ(bridge.next()["error"]["code"], -32600);
    bridge.send_raw(
        R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":["x"],"arguments":7}})");
    EXPECT_EQ(bridge.next()["error"]["code"], -32602);
    bridge.send_raw(R"({"jsonrpc":"2.0","id":3,"method":"no/such/method"})");
    EXPECT_EQ(bridge.next()["error"]["code"], -32601);
    // Still serving.
    EXPECT_EQ(bridge.request(4, "ping")["result"], json::object());
    EXPECT_EQ(bridge.call(5, "get_customer_info",
                          {{"email", "customer4@example.com"}})["result"]["isError"],
              false);
}

TEST(Startup, MissingExtensionIsOneClearMessage) {
    std::string log = ::testing::TempDir() + "bridge_startup.log";
    Bridge bridge({"dbname=postgres user=" + env_or("PGUSER", "postgres")}, log);
    EXPECT_EQ(bridge.wait_exit(10s), 1);
    std::string text = read_file(log);
    EXPECT_NE(text.find("extension pg_mcp is not installed in database \"postgres\""),
              std::string::npos)
        << text;
}

TEST(Connection, UsesLibpqServiceFilesAndEnvironment) {
    // No connection string at all: PGSERVICE and a service file say where and who.
    std::string service_file = ::testing::TempDir() + "pg_mcp_e2e_service.conf";
    {
        std::ofstream out(service_file);
        out << "[e2e_analytics]\ndbname=" << database() << "\nuser=agent_analytics\n";
    }
    Bridge bridge({}, "/dev/null",
                  {{"PGSERVICEFILE", service_file},
                   {"PGSERVICE", "e2e_analytics"},
                   {"PGDATABASE", ""},
                   {"PGUSER", ""}});
    bridge.initialize();
    EXPECT_EQ(tool_names(bridge.request(1, "tools/list")),
              std::vector<std::string>{"get_customer_analytics"});
    Sql sql;
    EXPECT_EQ(
        sql.wait_for("SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'agent_analytics' "
                     "AND application_name LIKE 'pg_mcp_bridge%'",
                     "t", 5s),
        "t");
}

TEST(Startup, CheckReportsReadinessForADba) {
    std::string bridge = env_or("PG_MCP_BRIDGE", PG_MCP_BRIDGE_PATH);
    auto run = [&](const std::string &dsn, int &status) {
        bp::ipstream out;
        bp::child child(bridge, "--check", dsn, bp::std_out > out, bp::std_err > bp::null);
        std::string text, line;
        while (std::getline(out, line)) text += line + "\n";
        child.wait();
        status = child.exit_code();
        return text;
    };
    int status = -1;
    std::string ready = run(conninfo("agent_support"), status);
    EXPECT_EQ(status, 0);
    EXPECT_NE(ready.find("get_customer_info"), std::string::npos) << ready;
    std::string missing = run("dbname=postgres", status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(missing.find("NOT READY: extension pg_mcp is not installed"), std::string::npos)
        << missing;
    std::string bad_user = run("dbname=" + database() + " user=no_such_role_e2e", status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(bad_user.find("cannot connect"), std::string::npos) << bad_user;
}

TEST(Principals, ATenantCannotReachAnotherTenantsRows) {
    const std::string other_tenant = "22222222-2222-4222-8222-222222222222";
    Bridge bridge({conninfo("agent_acme")});
    bridge.initialize();
    json list = bridge.request(1, "tools/list");
    json schema = list["result"]["tools"][0]["inputSchema"];
    EXPECT_FALSE(schema["properties"].contains("tenant_id")) << schema;  // not the model's to set
    // Another tenant's id in every argument the tool has, and in one it does not show.
    json with_tenant = bridge.call(2, "get_tenant_customers", {{"tenant_id", other_tenant}});
    ASSERT_EQ(with_tenant["result"]["isError"], true) << with_tenant;
    EXPECT_NE(
        with_tenant["result"]["content"][0]["text"].get<std::string>().find("cannot be supplied"),
        std::string::npos);
    json in_plan = bridge.call(3, "get_tenant_customers", {{"plan_name", other_tenant}});
    EXPECT_EQ(in_plan["result"]["isError"], true) << in_plan;
    // What it can see is its own tenant's, and only that.
    json own = bridge.call(4, "get_tenant_customers", json::object());
    ASSERT_EQ(own["result"]["isError"], false) << own;
    Sql sql;
    for (const json &row : own["result"]["structuredContent"]["rows"])
        EXPECT_EQ(sql.value("SELECT tenant_id FROM app.customers WHERE id = $1",
                            {std::to_string(row["id"].get<int>())}),
                  "11111111-1111-4111-8111-111111111111");
    EXPECT_EQ(
        sql.wait_for("SELECT principal FROM mcp.audit_log WHERE tool_name = 'get_tenant_customers' "
                     "ORDER BY id DESC LIMIT 1",
                     "acme-support", 2s),
        "acme-support");
    // Setting the agent context cannot claim another principal: identity is the role.
    Bridge spoof({conninfo("agent_acme"), "--agent", "globex-support"});
    spoof.initialize();
    json spoofed = spoof.call(5, "get_tenant_customers", json::object());
    for (const json &row : spoofed["result"]["structuredContent"]["rows"])
        EXPECT_EQ(sql.value("SELECT tenant_id FROM app.customers WHERE id = $1",
                            {std::to_string(row["id"].get<int>())}),
                  "11111111-1111-4111-8111-111111111111");
}

namespace {

// Tables, roles, the demo's customers, large objects and sessions: what no attack may change.
const char *kFingerprint =
    "SELECT md5(concat_ws('|',"
    " (SELECT string_agg(c.oid::regclass::text || ':' || c.relkind::text, ',' ORDER BY c.oid) FROM "
    "pg_class c"
    "   WHERE c.relnamespace::regnamespace::text IN ('app', 'mcp', 'public')),"
    " (SELECT string_agg(rolname || rolsuper::text, ',' ORDER BY rolname) FROM pg_roles),"
    " (SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM app.customers c),"
    " (SELECT count(*) FROM pg_largeobject_metadata)))";

std::string tool_text(const json &response) {
    if (response.contains("error")) return "error: " + response["error"].value("message", "");
    return response["result"]["content"][0].value("text", "");
}

}  // namespace

TEST(QueryTool, GuardedSqlThroughTheBridge) {
    Bridge bridge({conninfo("agent_analyst")});
    bridge.initialize();
    auto names = tool_names(bridge.request(1, "tools/list"));
    EXPECT_EQ(names, (std::vector<std::string>{"describe_object", "list_objects", "query"}));
    json objects = bridge.call(2, "list_objects");
    ASSERT_EQ(objects["result"]["isError"], false) << objects;
    EXPECT_EQ(objects["result"]["structuredContent"]["rows"].size(),
              1u);  // only the analytics view
    EXPECT_EQ(objects["result"]["structuredContent"]["rows"][0]["name"], "customer_analytics_view");
    json columns = bridge.call(3, "describe_object", {{"name", "app.customer_analytics_view"}});
    EXPECT_EQ(columns["result"]["structuredContent"]["rows"][0]["column"], "plan_name");
    json answer = bridge.call(4, "query",
                              {{"sql",
                                "SELECT plan_name, sum(customer_count) AS customers FROM "
                                "app.customer_analytics_view GROUP BY 1 ORDER BY 1"}});
    ASSERT_EQ(answer["result"]["isError"], false) << answer;
    EXPECT_EQ(answer["result"]["structuredContent"]["row_count"], 4);
    json base_table = bridge.call(5, "query", {{"sql", "SELECT email FROM app.customers"}});
    EXPECT_EQ(base_table["result"]["isError"], true);
    EXPECT_NE(tool_text(base_table).find("permission denied"), std::string::npos) << base_table;
}

TEST(Security, AttacksThroughTheBridgeChangeNothing) {
    Sql sql;
    std::string before = sql.value(kFingerprint);
    Bridge bridge({conninfo("agent_analyst")});
    bridge.initialize();
    const char *attacks[] = {
        "SELECT 1; DROP TABLE app.customers",
        "COMMIT; DROP TABLE app.customers",
        "SELECT set_config('role', 'postgres', false)",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "WITH gone AS (DELETE FROM app.customers RETURNING 1) SELECT count(*) FROM gone",
        "SELECT * INTO app.stolen FROM app.customer_analytics_view",
        "COPY app.customers TO PROGRAM 'cat > /tmp/stolen'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT pg_sleep(30)",
        "SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        "SELECT 1 /* ; */ ; DROP TABLE app.customers",
        "SELECT U&\"\\0070g_sleep\"(1)",
        "SELECT * FROM app.customer_analytics_view FOR UPDATE",
        "EXPLAIN ANALYZE SELECT 1",
    };
    int id = 100;
    for (const char *attack : attacks) {
        json r = bridge.call(id++, "query", {{"sql", attack}});
        ASSERT_TRUE(r.contains("result")) << attack << " -> " << r;
        EXPECT_EQ(r["result"]["isError"], true) << attack << " -> " << r;
        std::string status = r["result"]["_meta"].value("pg-mcp/status", "");
        EXPECT_TRUE(status == "refused" || status == "error") << attack << " -> " << status;
    }
    // Malformed arguments and bytes: errors, and the bridge keeps serving.
    json nul = bridge.call(id++, "query", {{"sql", std::string("SELECT 1\0 OR 1=1", 16)}});
    EXPECT_TRUE(nul.contains("error") || nul["result"]["isError"] == true) << nul;
    bridge.send_raw(
        "{\"jsonrpc\":\"2.0\",\"id\":900,\"method\":\"tools/call\",\"params\":{\"name\":\"query\","
        "\"arguments\":{\"sql\":\"SELECT '\xff\xfe'\"}}}");
    EXPECT_EQ(bridge.next()["error"]["code"], -32700);
    std::string deep =
        "{\"jsonrpc\":\"2.0\",\"id\":901,\"method\":\"tools/call\",\"params\":{\"name\":\"query\","
        "\"arguments\":{\"sql\":" +
        std::string(5000, '[') + std::string(5000, ']') + "}}}";
    bridge.send_raw(deep);
    EXPECT_EQ(bridge.next()["error"]["code"], -32600);
    // A tenant agent passing another tenant's id in its arguments gets a refusal, not rows.
    Bridge tenant({conninfo("agent_acme")});
    tenant.initialize();
    json spoof = tenant.call(1, "get_tenant_customers",
                             {{"tenant_id", "22222222-2222-4222-8222-222222222222"}});
    EXPECT_EQ(spoof["result"]["isError"], true) << spoof;
    EXPECT_EQ(bridge.request(id++, "ping")["result"], json::object());
    EXPECT_EQ(sql.value(kFingerprint), before);
}

TEST(RateLimits, HoldAcrossTwoBridgeProcesses) {
    Sql sql;
    sql.value(
        "SELECT mcp.set_rate_limit('agent_support', 'get_customer_info', max_calls => 4, per => '1 "
        "hour')");
    struct Cleanup {
        Sql &sql;
        ~Cleanup() {
            try {
                sql.value("SELECT mcp.drop_rate_limit('agent_support', 'get_customer_info')");
            } catch (...) {
            }
        }
    } cleanup{sql};
    Bridge first({conninfo("agent_support")});
    Bridge second({conninfo("agent_support")});
    first.initialize();
    second.initialize();
    int ok = 0, limited = 0;
    for (int i = 0; i < 3; ++i) {
        for (Bridge *bridge : {&first, &second}) {
            json r =
                bridge->call(10 + i, "get_customer_info", {{"email", "customer1@example.com"}});
            ASSERT_TRUE(r.contains("result")) << r;
            std::string status = r["result"]["_meta"].value("pg-mcp/status", "");
            if (status == "ok") ++ok;
            if (status == "rate_limited") {
                ++limited;
                EXPECT_EQ(r["result"]["isError"], true);
                EXPECT_GT(r["result"]["_meta"].value("pg-mcp/retry_after_ms", 0), 0);
                EXPECT_NE(tool_text(r).find("Retry in"), std::string::npos) << r;
            }
        }
    }
    EXPECT_EQ(ok, 4);
    EXPECT_EQ(limited, 2);
}

TEST(RateLimits, ConcurrentCallsAcrossBridges) {
    Sql sql;
    ScratchTool tool(sql, "e2e_slow_limited",
                     "'SELECT pg_sleep(:s) IS NOT NULL AS slept', 'Sleeps', '[{\"name\": \"s\", "
                     "\"type\": \"number\"}]'",
                     "agent_support");
    sql.value(
        "SELECT mcp.set_rate_limit('agent_support', 'e2e_slow_limited', max_concurrent => 1)");
    Bridge first({conninfo("agent_support")});
    Bridge second({conninfo("agent_support")});
    first.initialize();
    second.initialize();
    first.send({{"jsonrpc", "2.0"},
                {"id", 1},
                {"method", "tools/call"},
                {"params", {{"name", tool.name}, {"arguments", {{"s", 2}}}}}});
    ASSERT_EQ(
        sql.wait_for(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg_mcp_bridge%' "
            "AND wait_event = 'PgSleep'",
            "1", 10s),
        "1");
    json busy = second.call(2, tool.name, {{"s", 0}});
    EXPECT_EQ(busy["result"]["_meta"].value("pg-mcp/status", ""), "rate_limited") << busy;
    EXPECT_NE(tool_text(busy).find("concurrent"), std::string::npos) << busy;
    EXPECT_EQ(first.response(1)["result"]["isError"], false);
    json after = second.call(3, tool.name, {{"s", 0}});
    EXPECT_EQ(after["result"]["_meta"].value("pg-mcp/status", ""), "ok") << after;
}
