// OTLP metrics beside /metrics (with --otlp-endpoint): mcp.server.operation.duration, the MCP
// semantic conventions' histogram of every request's duration by method, tool, protocol
// version, transport and error type, and pg_mcp.tool.calls, tool calls by outcome; cumulative,
// sent as OTLP/HTTP JSON to /v1/metrics at an interval. Distinct attribute sets are bounded
// (beyond, a sample counts under otel.metric.overflow); a dead collector loses exports
// (counted), never a request.
#pragma once

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "log.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

// One MCP request's outcome, as the server span ends.
struct OperationSample {
    std::string method;            // mcp.method.name ("_OTHER" for one the server does not know)
    std::string tool;              // gen_ai.tool.name, for tools/call
    std::string protocol_version;  // mcp.protocol.version
    std::string transport;         // network.transport: "pipe" (stdio) or "tcp"
    std::string error_type;        // error.type: a JSON-RPC code, "tool_error", ...; empty: ok
    double seconds = 0;
};

struct MeterOptions {
    std::string endpoint;  // OTLP/HTTP metrics URL (derived from --otlp-endpoint)
    std::string ca_file;
    std::chrono::milliseconds interval{10000};  // an export this often
    std::chrono::milliseconds timeout{5000};    // one export request
    size_t max_series = 1000;                   // distinct attribute sets per metric
};

// The --otlp-endpoint's metrics URL: a bare origin or a /v1/traces path gets /v1/metrics.
std::string metrics_endpoint(const std::string &otlp_endpoint);

class Meter {
  public:
    Meter(boost::asio::io_context &loop, MeterOptions options, const Logger &logger);
    ~Meter();
    Meter(const Meter &) = delete;
    Meter &operator=(const Meter &) = delete;

    // The meter samples go to; null when none is configured.
    static Meter *global();
    static void set_global(Meter *meter);

    void record(const OperationSample &sample);  // any thread; never blocks on the exporter
    nlohmann::json export_body() const;  // what the next export sends (ExportMetricsServiceRequest)
    void start();                        // on the loop: exports every interval until stop()
    void stop();                         // sends the last values (within a second), then ends
    std::string metrics() const;         // Prometheus text about the exporter

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// Records the sample if a meter is configured.
void record_operation(const OperationSample &sample);

}  // namespace pg_mcp::bridge
