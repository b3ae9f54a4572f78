// OTLP metrics: the metrics URL from --otlp-endpoint, and what an export carries (histogram
// buckets, tool call outcomes, the bound on distinct attribute sets).
#include "otlp_metrics.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace pg_mcp::bridge {
namespace {

using nlohmann::json;

TEST(OtlpMetrics, EndpointFollowsTheTracesEndpoint) {
    EXPECT_EQ(metrics_endpoint("http://collector:4318"), "http://collector:4318/v1/metrics");
    EXPECT_EQ(metrics_endpoint("http://collector:4318/"), "http://collector:4318/v1/metrics");
    EXPECT_EQ(metrics_endpoint("https://c.example/otlp/v1/traces"),
              "https://c.example/otlp/v1/metrics");
    EXPECT_EQ(metrics_endpoint("http://c:4318/custom"), "http://c:4318/v1/metrics");
    EXPECT_EQ(metrics_endpoint("not a url"), "");
}

// The attribute value of `key` in an OTLP KeyValue list, or null.
json attribute(const json &point, const std::string &key) {
    for (const json &each : point["attributes"])
        if (each["key"] == key) return each["value"].begin().value();
    return nullptr;
}

TEST(OtlpMetrics, ExportCarriesDurationsAndOutcomes) {
    boost::asio::io_context loop;
    Logger logger(LogLevel::Emergency);
    MeterOptions options;
    options.max_series = 4;
    Meter meter(loop, options, logger);
    meter.record({"tools/call", "lookup", "2025-11-25", "tcp", "", 0.004});
    meter.record({"tools/call", "lookup", "2025-11-25", "tcp", "", 0.7});
    meter.record({"tools/call", "lookup", "2025-11-25", "tcp", "tool_error", 0.03});
    meter.record({"tools/list", "", "2026-07-28", "tcp", "", 0.001});
    json body = meter.export_body();
    const json &metrics = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    ASSERT_EQ(metrics.size(), 2u);
    EXPECT_EQ(metrics[0]["name"], "mcp.server.operation.duration");
    EXPECT_EQ(metrics[0]["unit"], "s");
    const json &points = metrics[0]["histogram"]["dataPoints"];
    ASSERT_EQ(points.size(), 3u);
    json ok;
    for (const json &point : points)
        if (attribute(point, "gen_ai.tool.name") == "lookup" &&
            attribute(point, "error.type").is_null())
            ok = point;
    ASSERT_FALSE(ok.is_null());
    EXPECT_EQ(ok["count"], "2");
    EXPECT_DOUBLE_EQ(ok["sum"].get<double>(), 0.704);
    EXPECT_EQ(ok["bucketCounts"][0], "1");  // 4 ms: first bucket (<= 10 ms)
    EXPECT_EQ(ok["bucketCounts"][6], "1");  // 700 ms: (0.5, 1]
    EXPECT_EQ(ok["bucketCounts"].size(), ok["explicitBounds"].size() + 1);
    EXPECT_EQ(attribute(ok, "mcp.method.name"), "tools/call");
    EXPECT_EQ(attribute(ok, "mcp.protocol.version"), "2025-11-25");
    const json &calls = metrics[1]["sum"]["dataPoints"];
    ASSERT_EQ(calls.size(), 2u);
    for (const json &point : calls)
        EXPECT_EQ(point["asInt"], attribute(point, "pg_mcp.outcome") == "ok" ? "2" : "1");
    // Beyond the bound, new attribute sets count under the overflow set.
    for (int i = 0; i < 10; i++)
        meter.record({"tools/call", "t" + std::to_string(i), "2025-11-25", "tcp", "", 0.01});
    body = meter.export_body();
    const json &bounded = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
    EXPECT_EQ(bounded["histogram"]["dataPoints"].size(), 5u);
    bool overflow = false;
    for (const json &point : bounded["histogram"]["dataPoints"])
        if (attribute(point, "otel.metric.overflow") == true) overflow = point["count"] == "9";
    EXPECT_TRUE(overflow);
}

}  // namespace
}  // namespace pg_mcp::bridge
