// Traces: W3C trace context in (HTTP traceparent header, or params._meta.traceparent as the
// MCP semantic conventions place it), a span per MCP request with children for the pool wait,
// the database call and the audit durability wait, and the trace and span ids into the
// database (pg_mcp.traceparent: the audit row, and application_name for pg_stat_activity).
// Spans go out with OTLP/HTTP (JSON) to --otlp-endpoint in batches from a bounded queue: a
// full queue or a dead collector drops spans (counted), never a call.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "log.hpp"

namespace boost::asio {
class io_context;
}

namespace pg_mcp::bridge {

// The trace context of one span.
struct TraceContext {
    std::string trace_id;  // 32 lowercase hex digits; empty: none
    std::string span_id;   // 16 lowercase hex digits
    bool sampled = true;
    std::string tracestate;  // passed on as it came
    bool valid() const { return trace_id.size() == 32 && span_id.size() == 16; }
    // "00-<trace_id>-<span_id>-<flags>"
    std::string traceparent() const;
};

// A traceparent value (W3C Trace Context level 1); nullopt when it is not a valid one.
std::optional<TraceContext> parse_traceparent(std::string_view value);
std::string new_trace_id();
std::string new_span_id();

struct Span {
    enum class Kind { Internal = 1, Server = 2, Client = 3 };
    std::string name;
    Kind kind = Kind::Internal;
    TraceContext context;        // its trace and its own id
    std::string parent_span_id;  // empty: the trace's root here
    std::chrono::system_clock::time_point start, end;
    std::vector<std::pair<std::string, nlohmann::json>> attributes;  // strings, numbers, bools
    bool error = false;
    std::string status_message;
    void set(std::string key, nlohmann::json value) {
        attributes.emplace_back(std::move(key), std::move(value));
    }
};

// A finished span as OTLP/JSON (one element of scopeSpans[].spans).
nlohmann::json otlp_span(const Span &span);
// OTLP/JSON pieces shared with the metrics: attributes (KeyValue list) and this service's
// resource.
nlohmann::json otlp_any_value(const nlohmann::json &value);
nlohmann::json otlp_key_values(
    const std::vector<std::pair<std::string, nlohmann::json>> &attributes);
nlohmann::json otlp_resource();

struct TraceOptions {
    std::string endpoint;      // OTLP/HTTP traces URL (a bare origin gets /v1/traces)
    std::string ca_file;       // for an https endpoint, besides the system's trust anchors
    size_t max_queued = 4096;  // spans waiting; beyond, new ones are dropped (counted)
    size_t batch = 512;        // spans per export request at most
    std::chrono::milliseconds interval{1000};  // an export at least this often while spans wait
    std::chrono::milliseconds timeout{5000};   // one export request
};

// Collects finished spans (from any thread) and exports them from the event loop.
class Tracer {
  public:
    Tracer(boost::asio::io_context &loop, TraceOptions options, const Logger &logger);
    ~Tracer();
    Tracer(const Tracer &) = delete;
    Tracer &operator=(const Tracer &) = delete;

    // The tracer spans go to; null when none is configured (ids are still made and passed on).
    static Tracer *global();
    static void set_global(Tracer *tracer);

    // Any thread; never blocks on the exporter. Unsampled spans are not kept.
    void record(Span span);
    // On the loop: exports until stop(); stop() sends what waits (within the timeout), then ends.
    void start();
    void stop();
    std::string metrics() const;  // Prometheus text

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// Records span if a tracer is configured and the span is sampled.
void record_span(Span span);

}  // namespace pg_mcp::bridge
