// OTLP metrics: requests' durations and tool calls' outcomes, aggregated in memory and sent
// to the collector at an interval (otlp_metrics.hpp).
#include "otlp_metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <vector>

#include "http_client.hpp"
#include "trace.hpp"
#include "loop_wait.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The MCP semantic conventions' advice for mcp.server.operation.duration (seconds).
constexpr std::array<double, 14> kBounds = {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1,
                                            2,    5,    10,   30,  60,  120, 300};
constexpr std::chrono::milliseconds kStopBudget{1000};

std::atomic<Meter *> global_meter{nullptr};

using Attributes = std::vector<std::pair<std::string, std::string>>;

struct Histogram {
    uint64_t count = 0;
    double sum = 0, min = 0, max = 0;
    std::array<uint64_t, kBounds.size() + 1> buckets{};
    void add(double value) {
        min = count == 0 ? value : std::min(min, value);
        max = count == 0 ? value : std::max(max, value);
        count++;
        sum += value;
        size_t bucket = 0;
        while (bucket < kBounds.size() && value > kBounds[bucket]) bucket++;
        buckets[bucket]++;
    }
};

std::string nanos(std::chrono::system_clock::time_point at) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
}

json attributes_json(const Attributes &attributes) {
    std::vector<std::pair<std::string, json>> values;
    for (const auto &[key, value] : attributes)
        values.emplace_back(key, key == "otel.metric.overflow" ? json(true) : json(value));
    return otlp_key_values(values);
}

}  // namespace

std::string metrics_endpoint(const std::string &otlp_endpoint) {
    std::optional<Url> url = parse_url(otlp_endpoint);
    if (!url) return {};
    std::string base = otlp_endpoint;
    const std::string traces = "/v1/traces";
    if (url->target == "/" || url->target.empty()) {
        while (!base.empty() && base.back() == '/') base.pop_back();
    } else if (base.size() >= traces.size() &&
               base.compare(base.size() - traces.size(), traces.size(), traces) == 0) {
        base.resize(base.size() - traces.size());
    } else {
        // Another path names the traces receiver alone: metrics go to the origin's.
        base = base.substr(0, base.find('/', base.find("://") + 3));
    }
    return base + "/v1/metrics";
}

struct Meter::Impl : std::enable_shared_from_this<Meter::Impl> {
    Impl(asio::io_context &io, MeterOptions options, const Logger &logger)
        : io(io), options(std::move(options)), logger(logger), timer(io) {
        configure_client_tls(tls, this->options.ca_file);
    }
    asio::io_context &io;
    MeterOptions options;
    const Logger &logger;
    asio::ssl::context tls{asio::ssl::context::tls_client};
    asio::steady_timer timer;
    const std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

    mutable std::mutex mutex;
    std::map<Attributes, Histogram> durations;
    std::map<Attributes, uint64_t> calls;
    std::atomic<uint64_t> exports{0}, failures{0};
    std::atomic<bool> stopping{false};
    Clock::time_point complained{};
    std::promise<void> drained;

    // A new attribute set beyond the bound counts as the overflow set.
    template <typename Map>
    typename Map::mapped_type &series(Map &map, Attributes attributes) {
        auto found = map.find(attributes);
        if (found != map.end()) return found->second;
        if (map.size() >= options.max_series) attributes = {{"otel.metric.overflow", "true"}};
        return map[attributes];
    }

    void record(const OperationSample &sample) {
        Attributes attributes = {{"mcp.method.name", sample.method}};
        if (!sample.tool.empty()) attributes.emplace_back("gen_ai.tool.name", sample.tool);
        if (!sample.protocol_version.empty())
            attributes.emplace_back("mcp.protocol.version", sample.protocol_version);
        if (!sample.transport.empty())
            attributes.emplace_back("network.transport", sample.transport);
        if (!sample.error_type.empty()) attributes.emplace_back("error.type", sample.error_type);
        std::sort(attributes.begin(), attributes.end());
        std::lock_guard<std::mutex> lock(mutex);
        series(durations, attributes).add(std::max(0.0, sample.seconds));
        if (sample.method == "tools/call") {
            Attributes outcome = {{"pg_mcp.outcome", sample.error_type.empty() ? "ok"
                                                     : sample.error_type == "tool_error"
                                                         ? "tool_error"
                                                         : "error"}};
            if (!sample.tool.empty()) outcome.emplace_back("gen_ai.tool.name", sample.tool);
            std::sort(outcome.begin(), outcome.end());
            series(calls, outcome)++;
        }
    }

    json body() const {
        std::string start = nanos(started), now = nanos(std::chrono::system_clock::now());
        json histogram_points = json::array(), call_points = json::array();
        {
            std::lock_guard<std::mutex> lock(mutex);
            for (const auto &[attributes, histogram] : durations) {
                json buckets = json::array();
                for (uint64_t each : histogram.buckets) buckets.push_back(std::to_string(each));
                histogram_points.push_back({{"attributes", attributes_json(attributes)},
                                            {"startTimeUnixNano", start},
                                            {"timeUnixNano", now},
                                            {"count", std::to_string(histogram.count)},
                                            {"sum", histogram.sum},
                                            {"min", histogram.min},
                                            {"max", histogram.max},
                                            {"bucketCounts", std::move(buckets)},
                                            {"explicitBounds", kBounds}});
            }
            for (const auto &[attributes, count] : calls)
                call_points.push_back({{"attributes", attributes_json(attributes)},
                                       {"startTimeUnixNano", start},
                                       {"timeUnixNano", now},
                                       {"asInt", std::to_string(count)}});
        }
        constexpr int kCumulative = 2;
        json metrics = json::array();
        metrics.push_back({{"name", "mcp.server.operation.duration"},
                           {"description", "Duration of MCP requests handled by the server"},
                           {"unit", "s"},
                           {"histogram",
                            {{"aggregationTemporality", kCumulative},
                             {"dataPoints", std::move(histogram_points)}}}});
        metrics.push_back(
            {{"name", "pg_mcp.tool.calls"},
             {"description", "Tool calls answered, by outcome (ok, tool_error, error)"},
             {"unit", "{call}"},
             {"sum",
              {{"aggregationTemporality", kCumulative},
               {"isMonotonic", true},
               {"dataPoints", std::move(call_points)}}}});
        json scope = {{"name", "pg_mcp_bridge"}, {"version", PG_MCP_VERSION}};
        return {{"resourceMetrics",
                 {{{"resource", otlp_resource()},
                   {"scopeMetrics", {{{"scope", scope}, {"metrics", std::move(metrics)}}}}}}}};
    }

    bool empty() const {
        std::lock_guard<std::mutex> lock(mutex);
        return durations.empty();
    }

    asio::awaitable<void> export_once(const Url &url) {
        if (empty()) co_return;
        std::string text = body().dump(-1, ' ', false, json::error_handler_t::replace);
        exports++;
        FetchResult got =
            co_await fetch(io, tls, url, boost::beast::http::verb::post, std::move(text), {},
                           stopping ? std::min(options.timeout, kStopBudget) : options.timeout,
                           "application/json");
        if (got.status >= 200 && got.status < 300) co_return;
        failures++;
        if (Clock::now() - complained > std::chrono::seconds(60)) {
            complained = Clock::now();
            logger.log(LogLevel::Warning,
                       "exporting metrics to " + options.endpoint + " failed (" +
                           (got.status == 0 ? got.error : "HTTP " + std::to_string(got.status)) +
                           "); the next export sends the totals again");
        }
    }

    asio::awaitable<void> run() {
        auto self = shared_from_this();
        std::optional<Url> url = parse_url(options.endpoint);
        while (url && !stopping) {
            timer.expires_after(options.interval);
            boost::system::error_code error;
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, error));
            if (!stopping) co_await export_once(*url);
        }
        if (url) co_await export_once(*url);  // the last values (cumulative: nothing is lost)
        drained.set_value();
    }
};

Meter::Meter(asio::io_context &loop, MeterOptions options, const Logger &logger)
    : impl_(std::make_shared<Impl>(loop, std::move(options), logger)) {}

Meter::~Meter() {
    Meter *self = this;
    global_meter.compare_exchange_strong(self, nullptr);
}

Meter *Meter::global() {
    return global_meter.load();
}

void Meter::set_global(Meter *meter) {
    global_meter.store(meter);
}

void Meter::record(const OperationSample &sample) {
    impl_->record(sample);
}

json Meter::export_body() const {
    return impl_->body();
}

void Meter::start() {
    auto impl = impl_;
    asio::co_spawn(impl->io, impl->run(), asio::detached);
}

void Meter::stop() {
    auto impl = impl_;
    if (impl->stopping.exchange(true)) return;
    asio::post(impl->io, [impl] { impl->timer.cancel(); });
    if (!impl->io.get_executor().running_in_this_thread() && !impl->io.stopped()) {
        std::future<void> drained = impl->drained.get_future();
        wait_for_loop(impl->io, drained, kStopBudget + std::chrono::milliseconds(500));
    }
}

std::string Meter::metrics() const {
    std::string out;
    auto line = [&](const std::string &text) { out += text + "\n"; };
    line("# HELP pg_mcp_bridge_metric_exports_total OTLP metric export requests, by outcome.");
    line("# TYPE pg_mcp_bridge_metric_exports_total counter");
    uint64_t failed = impl_->failures;
    line("pg_mcp_bridge_metric_exports_total{outcome=\"ok\"} " +
         std::to_string(impl_->exports - failed));
    line("pg_mcp_bridge_metric_exports_total{outcome=\"failed\"} " + std::to_string(failed));
    return out;
}

void record_operation(const OperationSample &sample) {
    if (Meter *meter = Meter::global()) meter->record(sample);
}

}  // namespace pg_mcp::bridge
