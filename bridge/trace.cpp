// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "trace.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <future>
#include <random>

#include "http_client.hpp"
#include "loop_wait.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// How long a stop waits for the spans still queued (and for each of those last exports).
constexpr std::chrono::milliseconds kStopBudget{1000};

std::atomic<Tracer *> global_tracer{nullptr};

bool is_lower_hex(std::string_view text) {
    for (char c : text)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string random_hex(size_t bytes) {
    static thread_local std::mt19937_64 random([] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device()};
        return std::mt19937_64(seed);
    }());
    static const char *digits = "0123456789abcdef";
    for (;;) {
        std::string out;
        bool zero = true;
        while (out.size() < bytes * 2) {
            uint64_t value = random();
            for (int i = 0; i < 16 && out.size() < bytes * 2; i++, value >>= 4) {
                out += digits[value & 15];
                zero = zero && (value & 15) == 0;
            }
        }
        if (!zero) return out;  // all zeros is the invalid id
    }
}

std::string nanos(std::chrono::system_clock::time_point at) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
}

}  // namespace

json otlp_any_value(const json &value) {
    if (value.is_boolean()) return {{"boolValue", value.get<bool>()}};
    if (value.is_number_integer()) return {{"intValue", std::to_string(value.get<int64_t>())}};
    if (value.is_number()) return {{"doubleValue", value.get<double>()}};
    if (value.is_string()) return {{"stringValue", value.get<std::string>()}};
    return {{"stringValue", value.dump(-1, ' ', false, json::error_handler_t::replace)}};
}

json otlp_key_values(const std::vector<std::pair<std::string, json>> &attributes) {
    json out = json::array();
    for (const auto &[key, value] : attributes)
        out.push_back({{"key", key}, {"value", otlp_any_value(value)}});
    return out;
}

json otlp_resource() {
    return {{"attributes", otlp_key_values({{"service.name", "pg_mcp_bridge"},
                                            {"service.version", PG_MCP_VERSION},
                                            {"telemetry.sdk.name", "pg_mcp_bridge"},
                                            {"telemetry.sdk.language", "cpp"}})}};
}

std::string TraceContext::traceparent() const {
    return "00-" + trace_id + "-" + span_id + (sampled ? "-01" : "-00");
}

std::optional<TraceContext> parse_traceparent(std::string_view value) {
    // version-traceid-parentid-flags; a later version may append fields after a '-'.
    if (value.size() < 55) return std::nullopt;
    std::string_view version = value.substr(0, 2);
    if (!is_lower_hex(version) || version == "ff" || value[2] != '-' || value[35] != '-' ||
        value[52] != '-')
        return std::nullopt;
    if (version == "00" && value.size() != 55) return std::nullopt;
    if (value.size() > 55 && value[55] != '-') return std::nullopt;
    TraceContext context;
    context.trace_id = std::string(value.substr(3, 32));
    context.span_id = std::string(value.substr(36, 16));
    std::string_view flags = value.substr(53, 2);
    if (!is_lower_hex(context.trace_id) || !is_lower_hex(context.span_id) || !is_lower_hex(flags))
        return std::nullopt;
    if (context.trace_id == std::string(32, '0') || context.span_id == std::string(16, '0'))
        return std::nullopt;
    context.sampled = (std::stoi(std::string(flags), nullptr, 16) & 1) != 0;
    return context;
}

std::string new_trace_id() {
    return random_hex(16);
}

std::string new_span_id() {
    return random_hex(8);
}

json otlp_span(const Span &span) {
    json out = {{"traceId", span.context.trace_id},
                {"spanId", span.context.span_id},
                {"name", span.name},
                {"kind", static_cast<int>(span.kind)},
                {"startTimeUnixNano", nanos(span.start)},
                {"endTimeUnixNano", nanos(span.end)},
                {"attributes", otlp_key_values(span.attributes)}};
    if (!span.parent_span_id.empty()) out["parentSpanId"] = span.parent_span_id;
    if (!span.context.tracestate.empty()) out["traceState"] = span.context.tracestate;
    if (span.error)
        out["status"] = {{"code", 2}, {"message", span.status_message}};
    else
        out["status"] = json::object();
    return out;
}

struct Tracer::Impl : std::enable_shared_from_this<Tracer::Impl> {
    Impl(asio::io_context &io, TraceOptions options, const Logger &logger)
        : io(io), options(std::move(options)), logger(logger), timer(io) {
        configure_client_tls(tls, this->options.ca_file);
    }
    asio::io_context &io;
    TraceOptions options;
    const Logger &logger;
    asio::ssl::context tls{asio::ssl::context::tls_client};
    asio::steady_timer timer;

    mutable std::mutex mutex;
    std::deque<Span> queue;
    std::atomic<uint64_t> recorded{0}, dropped{0}, exported{0}, failed{0}, requests{0};
    std::atomic<bool> stopping{false};
    Clock::time_point complained{};

    void record(Span span) {
        std::lock_guard<std::mutex> lock(mutex);
        if (queue.size() >= options.max_queued) {
            dropped++;
            return;
        }
        recorded++;
        queue.push_back(std::move(span));
    }

    json batch_body(std::vector<Span> &spans) {
        json list = json::array();
        for (const Span &span : spans) list.push_back(otlp_span(span));
        json resource = otlp_resource();
        json scope = {{"name", "pg_mcp_bridge"}, {"version", PG_MCP_VERSION}};
        return {{"resourceSpans",
                 {{{"resource", resource},
                   {"scopeSpans", {{{"scope", scope}, {"spans", std::move(list)}}}}}}}};
    }

    asio::awaitable<void> export_batch(const Url &url) {
        std::vector<Span> spans;
        {
            std::lock_guard<std::mutex> lock(mutex);
            while (!queue.empty() && spans.size() < options.batch) {
                spans.push_back(std::move(queue.front()));
                queue.pop_front();
            }
        }
        if (spans.empty()) co_return;
        std::string body = batch_body(spans).dump(-1, ' ', false, json::error_handler_t::replace);
        requests++;
        FetchResult got =
            co_await fetch(io, tls, url, boost::beast::http::verb::post, std::move(body), {},
                           stopping ? std::min(options.timeout, kStopBudget) : options.timeout,
                           "application/json");
        if (got.status >= 200 && got.status < 300) {
            exported += spans.size();
            co_return;
        }
        failed += spans.size();
        if (Clock::now() - complained > std::chrono::seconds(60)) {
            complained = Clock::now();
            logger.log(LogLevel::Warning,
                       "exporting " + std::to_string(spans.size()) + " spans to " +
                           options.endpoint + " failed (" +
                           (got.status == 0 ? got.error : "HTTP " + std::to_string(got.status)) +
                           "); spans are dropped until it answers (counted in /metrics)");
        }
    }

    size_t waiting() const {
        std::lock_guard<std::mutex> lock(mutex);
        return queue.size();
    }

    // Exports a batch when one is full or the interval has passed, full batches back to back;
    // once stopping, what waits (within one timeout), then ends.
    asio::awaitable<void> run() {
        auto self = shared_from_this();
        std::optional<Url> url = parse_url(options.endpoint);
        Clock::time_point last = Clock::now();
        while (url && !stopping) {
            timer.expires_after(std::chrono::milliseconds(100));
            boost::system::error_code error;
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, error));
            while (!stopping && (waiting() >= options.batch ||
                                 (waiting() > 0 && Clock::now() - last >= options.interval))) {
                last = Clock::now();
                co_await export_batch(*url);
            }
        }
        Clock::time_point until = Clock::now() + kStopBudget;
        while (url && waiting() > 0 && Clock::now() < until) co_await export_batch(*url);
        drained.set_value();
    }
    std::promise<void> drained;
};

Tracer::Tracer(asio::io_context &loop, TraceOptions options, const Logger &logger)
    : impl_(std::make_shared<Impl>(loop, std::move(options), logger)) {
    std::optional<Url> url = parse_url(impl_->options.endpoint);
    if (url && (url->target == "/" || url->target.empty())) {
        impl_->options.endpoint +=
            impl_->options.endpoint.back() == '/' ? "v1/traces" : "/v1/traces";
    }
}

Tracer::~Tracer() {
    Tracer *self = this;
    global_tracer.compare_exchange_strong(self, nullptr);
}

Tracer *Tracer::global() {
    return global_tracer.load();
}

void Tracer::set_global(Tracer *tracer) {
    global_tracer.store(tracer);
}

void Tracer::record(Span span) {
    if (!span.context.sampled) return;
    impl_->record(std::move(span));
}

void Tracer::start() {
    auto impl = impl_;
    asio::co_spawn(impl->io, impl->run(), asio::detached);
}

void Tracer::stop() {
    auto impl = impl_;
    if (impl->stopping.exchange(true)) return;
    asio::post(impl->io, [impl] { impl->timer.cancel(); });
    // What waits is sent before the loop stops (a short-lived stdio bridge's spans too), within
    // kStopBudget (a collector that hangs delays a stop by that much, not by an export timeout),
    // unless this runs on the loop itself.
    if (!impl->io.get_executor().running_in_this_thread() && !impl->io.stopped()) {
        std::future<void> drained = impl->drained.get_future();
        wait_for_loop(impl->io, drained, kStopBudget + std::chrono::milliseconds(500));
    }
}

std::string Tracer::metrics() const {
    const Impl &impl = *impl_;
    size_t waiting;
    {
        std::lock_guard<std::mutex> lock(impl.mutex);
        waiting = impl.queue.size();
    }
    std::string out;
    auto line = [&](const std::string &text) { out += text + "\n"; };
    line(
        "# HELP pg_mcp_bridge_trace_spans_total Spans by what became of them: exported, "
        "dropped (the queue was full) or failed (the collector did not take them).");
    line("# TYPE pg_mcp_bridge_trace_spans_total counter");
    line("pg_mcp_bridge_trace_spans_total{outcome=\"exported\"} " + std::to_string(impl.exported));
    line("pg_mcp_bridge_trace_spans_total{outcome=\"dropped\"} " + std::to_string(impl.dropped));
    line("pg_mcp_bridge_trace_spans_total{outcome=\"failed\"} " + std::to_string(impl.failed));
    line("# HELP pg_mcp_bridge_trace_spans_queued Spans waiting to be exported.");
    line("# TYPE pg_mcp_bridge_trace_spans_queued gauge");
    line("pg_mcp_bridge_trace_spans_queued " + std::to_string(waiting));
    line("# HELP pg_mcp_bridge_trace_export_requests_total OTLP export requests sent.");
    line("# TYPE pg_mcp_bridge_trace_export_requests_total counter");
    line("pg_mcp_bridge_trace_export_requests_total " + std::to_string(impl.requests));
    return out;
}

void record_span(Span span) {
    if (Tracer *tracer = Tracer::global()) tracer->record(std::move(span));
}

}  // namespace pg_mcp::bridge
