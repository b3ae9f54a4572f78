#include "options.hpp"

#include <cstdio>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <regex>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <vector>

#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/program_options.hpp>

#include "database.hpp"
#include "session_ticket.hpp"

namespace pg_mcp::bridge {

namespace po = boost::program_options;

namespace {

const char *const kIntroduction =
    "Usage: pg_mcp_bridge [OPTIONS] [CONNINFO]\n"
    "\n"
    "Serves the tools of a PostgreSQL database with the pg_mcp extension to MCP clients,\n"
    "over stdio (one JSON-RPC message per line) or Streamable HTTP (--http). Protocol\n"
    "revisions 2026-07-28 and 2025-11-25 (also 2025-06-18 and 2025-03-26).\n"
    "\n"
    "CONNINFO is a libpq connection string or URI (postgresql://user@host/db). Without it,\n"
    "libpq's environment applies exactly as for psql: PGHOST, PGDATABASE, PGUSER, PGSERVICE\n"
    "and service files, ~/.pgpass, PGSSLMODE and certificates.\n";

struct UsageError {
    std::string message;
};

// A file of PEM certificates OpenSSL can load (checked here, not when the first fetch needs it).
void check_ca_file(const std::string &option, const std::string &file) {
    if (file.empty()) return;
    if (access(file.c_str(), R_OK) != 0) throw UsageError{option + " " + file + ": cannot read it"};
    boost::asio::ssl::context tls(boost::asio::ssl::context::tls_client);
    boost::system::error_code error;
    tls.load_verify_file(file, error);
    if (error)
        throw UsageError{option + " " + file + ": not PEM certificates (" + error.message() + ")"};
}

// A whole number of at least `minimum` (and at most `maximum`), or a usage error naming the
// option and what it expects.
size_t whole_number(const std::string &option, const std::string &text, size_t minimum,
                    size_t maximum, const char *what) {
    char *end = nullptr;
    errno = 0;
    unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0' || text[0] == '-' || value < minimum ||
        value > maximum)
        throw UsageError{"invalid " + option + " \"" + text + "\" (" + what + ")"};
    return static_cast<size_t>(value);
}

void one_of(const std::string &option, const std::string &value,
            std::initializer_list<const char *> choices) {
    std::string list;
    for (const char *choice : choices) {
        if (value == choice) return;
        list += list.empty() ? choice : std::string(" or ") + choice;
    }
    throw UsageError{option + " is " + list + ", not \"" + value + "\""};
}

// --http [ADDRESS:]PORT, with [IPv6]:PORT.
void http_address(const std::string &spec, HttpOptions &http) {
    std::string port = spec;
    size_t colon = spec.rfind(':');
    if (colon != std::string::npos && spec.find(']') != std::string::npos && colon < spec.find(']'))
        colon = std::string::npos;  // "[::1]" without a port
    if (colon != std::string::npos) {
        std::string address = spec.substr(0, colon);
        if (address.size() > 2 && address.front() == '[' && address.back() == ']')
            address = address.substr(1, address.size() - 2);
        http.address = address;
        port = spec.substr(colon + 1);
    }
    http.port = static_cast<unsigned short>(
        whole_number("--http", port, 0, 65535, "expected [ADDRESS:]PORT, e.g. 127.0.0.1:8080"));
}

// The HTTP transport's options, in --help's order.
void describe_http(po::options_description_easy_init &add);
// Authentication, OAuth, OTLP export, confirmation and --token-env, in --help's order.
void describe_identity(po::options_description_easy_init &add);
// The database connections, replicas, audit confirmation, sessions' keys, --config and the rest.
void describe_rest(po::options_description_easy_init &add);

po::options_description describe() {
    po::options_description options("Options", 100, 50);
    auto add = options.add_options();
    add("dsn", po::value<std::string>()->value_name("CONNINFO"),
        "connection string (same as the positional argument)");
    add("agent", po::value<std::string>()->value_name("NAME"),
        "agent name recorded with every call in mcp.audit_log");
    add("pool-size", po::value<std::string>()->value_name("N"),
        "database connections for concurrent calls (default 2, at most 100)");
    add("queue-timeout", po::value<std::string>()->value_name("MS"),
        "longest wait for a free connection before a call is answered \"busy, retry\" (default "
        "30000; 0: no limit)");
    add("max-message-bytes", po::value<std::string>()->value_name("N"),
        "longest accepted message (default 1048576)");
    add("page-size", po::value<std::string>()->value_name("N"),
        "tools per tools/list page (default 100)");
    add("log-level", po::value<std::string>()->value_name("LEVEL"),
        "stderr log level: debug, info, notice, warning, error (default info)");
    add("log-format", po::value<std::string>()->value_name("FORMAT"),
        "text (default; control characters escaped) or json: one JSON object per line, with the "
        "request id when a message is about a request (PostgreSQL notices too)");
    describe_http(add);
    describe_identity(add);
    describe_rest(add);
    return options;
}

void describe_http(po::options_description_easy_init &add) {
    add("http", po::value<std::string>()->value_name("[ADDRESS:]PORT"),
        "serve Streamable HTTP at http://ADDRESS:PORT/mcp instead of stdio (ADDRESS default "
        "127.0.0.1; also /healthz, /readyz, /metrics); port 0 picks a free one (logged)");
    add("max-connections", po::value<std::string>()->value_name("N"),
        "HTTP: open client connections beyond N get 503 (default 512)");
    add("max-connections-per-address", po::value<std::string>()->value_name("N"),
        "HTTP: open connections from one client address (default 256)");
    add("header-timeout", po::value<std::string>()->value_name("MS"),
        "HTTP: a new connection's first request header must arrive within MS (default 10000)");
    add("idle-timeout", po::value<std::string>()->value_name("MS"),
        "HTTP: a kept-alive connection with no request for MS is closed (default 60000)");
    add("body-timeout", po::value<std::string>()->value_name("MS"),
        "HTTP: a request body must arrive within MS of its header (default 30000)");
    add("body-min-rate", po::value<std::string>()->value_name("BYTES"),
        "HTTP: after its first 2 s, a request body must arrive at BYTES a second at least, or "
        "the connection is closed (default 16384)");
    add("max-sessions-per-address", po::value<std::string>()->value_name("N"),
        "HTTP without tokens: sessions the clients of one address (an IPv6 /64) may hold open; "
        "their next initialize gets 429 (default 1024)");
    add("write-timeout", po::value<std::string>()->value_name("MS"),
        "HTTP: a write the client does not take within MS ends the connection (default 30000)");
    add("max-sessions", po::value<std::string>()->value_name("N"),
        "HTTP: initialize beyond N open sessions gets 503 (default 4096)");
    add("max-sessions-per-principal", po::value<std::string>()->value_name("N"),
        "HTTP with --auth token: sessions one principal may hold open; its next initialize gets "
        "429 (default 64)");
    add("max-calls-per-principal", po::value<std::string>()->value_name("N"),
        "HTTP with --auth token: requests of one principal in progress at once; more get 429 "
        "(default 256; the pool also takes queued work in turn from each principal)");
    add("allowed-origin", po::value<std::vector<std::string>>()->value_name("ORIGIN"),
        "an Origin browsers may send (repeatable; default none: requests with any Origin header "
        "get 403)");
    add("allowed-host", po::value<std::vector<std::string>>()->value_name("NAME"),
        "a Host name accepted besides loopback names and the bound address (repeatable; against "
        "DNS rebinding)");
}

void describe_identity(po::options_description_easy_init &add) {
    add("auth", po::value<std::string>()->value_name("MODE"),
        "HTTP: none (default; every session runs as the login role); token: each request needs "
        "\"Authorization: Bearer TOKEN\" (mcp.create_token) and runs as its principal; oauth: "
        "an OAuth 2.1 resource server (access tokens of the issuers in mcp.identity_providers, "
        "mapped to principals by mcp.identity_mappings), pg_mcp tokens accepted too");
    add("oauth-resource", po::value<std::string>()->value_name("URL"),
        "with --auth oauth: this server's MCP endpoint as clients reach it, e.g. "
        "https://mcp.example.com/mcp (tokens must name it as their audience)");
    add("oauth-ca-file", po::value<std::string>()->value_name("FILE"),
        "with --auth oauth: PEM certificates trusted for the issuers' HTTPS besides the system's");
    add("oauth-client-id", po::value<std::string>()->value_name("ID"),
        "with --auth oauth: this resource server's client id at the issuer, for token "
        "introspection (RFC 7662) of tokens that are not JWTs");
    add("oauth-client-secret-env", po::value<std::string>()->value_name("VAR"),
        "with --oauth-client-id: the environment variable holding its client secret");
    add("oauth-algorithms", po::value<std::string>()->value_name("LIST"),
        "with --auth oauth: JWT signature algorithms accepted, comma-separated (default "
        "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512; none and HMAC never)");
    add("oauth-key-origin", po::value<std::vector<std::string>>()->value_name("ORIGIN"),
        "with --auth oauth: an origin (scheme://host[:port]) besides each issuer's own that its "
        "metadata may name for jwks_uri or introspection_endpoint, e.g. "
        "https://www.googleapis.com (repeatable)");
    add("otlp-endpoint", po::value<std::string>()->value_name("URL"),
        "export traces (a span per MCP request, with the pool wait, database call and audit "
        "durability wait) with OTLP/HTTP to URL, e.g. http://otel-collector:4318 (/v1/traces is "
        "added to a bare origin); trace ids reach the audit log either way");
    add("elicitation-timeout", po::value<std::string>()->value_name("MS"),
        "2025-11-25 sessions: how long a call waits for a person to confirm it (tools with "
        "confirm => 'ask'; default 120000, under HTTP's 300000 wait for a response); then it is "
        "refused as unanswered");
    add("otlp-metrics-interval", po::value<std::string>()->value_name("MS"),
        "with --otlp-endpoint: how often metrics (mcp.server.operation.duration, "
        "pg_mcp.tool.calls) go to its /v1/metrics (default 10000)");
    add("otlp-ca-file", po::value<std::string>()->value_name("FILE"),
        "with an https --otlp-endpoint: PEM certificates trusted besides the system's");
    add("token-env", po::value<std::string>()->value_name("VAR"),
        "stdio: run as the principal of the bearer token in environment variable VAR (checked at "
        "start)");
}

void describe_rest(po::options_description_easy_init &add) {
    add("no-prepared-statements",
        "send statements unnamed, for PgBouncer in transaction mode without "
        "max_prepared_statements (before 1.21)");
    add("notify-dsn", po::value<std::string>()->value_name("CONNINFO"),
        "where to LISTEN for tool catalog changes (default: the main connection string; use a "
        "direct connection when the main one goes through a transaction-pooling proxy)");
    add("replica", po::value<std::vector<std::string>>()->value_name("CONNINFO"),
        "a hot standby for read-only work (repeatable): tools/list, token checks and read-only "
        "tools run there; writing tools on the primary");
    add("replica-max-lag", po::value<std::string>()->value_name("MS"),
        "a standby further behind is not used (default 30000)");
    add("replica-fallback", po::value<std::string>()->value_name("MODE"),
        "primary (default): without a usable standby, read-only work runs on the primary; fail: "
        "it is refused");
    add("audit-spool", po::value<std::string>()->value_name("FILE"),
        "with --replica: where audit records of standby-served calls wait (on disk) until the "
        "primary has them");
    add("confirm-audit", po::value<std::string>()->value_name("MODE"),
        "durable audit with a login in mcp_audit_confirmer: auto (default: while other calls run "
        "or wait for a connection, a call frees its connection when its statement ends and its "
        "answer waits for one shared confirmation), always, or never (each call waits in its "
        "statement)");
    add("session-key-file", po::value<std::vector<std::string>>()->value_name("FILE"),
        "HTTP: a key (at least 32 bytes) sealing 2025-11-25 sessions into their MCP-Session-Id, "
        "so that every bridge given the same key serves every session (behind a load balancer, "
        "across restarts); repeatable: the first seals, all open (key rotation)");
    add("session-lifetime", po::value<std::string>()->value_name("S"),
        "with --session-key-file: how long after its initialize a session can be taken up by a "
        "bridge from its id (default 86400)");
    add("config", po::value<std::string>()->value_name("FILE"),
        "read options from FILE, one \"name = value\" per line (names as the long options, "
        "without --; # starts a comment anywhere, even inside a value: give a connection string "
        "with # in the environment); the command line and PG_MCP_BRIDGE_* environment variables "
        "win over it");
    add("check",
        "connect, verify the extension, list the tools this role can call, and exit 0 (ready) "
        "or 1 (not ready)");
    add("version", "print the version and exit");
    add("help,h", "print this help and exit");
}

// The --oauth-* options (with --auth oauth).
void apply_oauth_options(const po::variables_map &given, OAuthOptions &oauth) {
    auto text = [&](const char *name, std::string &into) {
        if (given.count(name)) into = given[name].as<std::string>();
    };
    auto list = [&](const char *name, std::vector<std::string> &into) {
        if (given.count(name)) into = given[name].as<std::vector<std::string>>();
    };
    text("oauth-resource", oauth.resource);
    if (oauth.resource.empty())
        throw UsageError{
            "--auth oauth needs --oauth-resource URL: this server's MCP endpoint "
            "as clients reach it, e.g. https://mcp.example.com/mcp"};
    std::optional<Url> url = parse_url(oauth.resource);
    if (!url || oauth.resource.find('?') != std::string::npos)
        throw UsageError{"--oauth-resource " + oauth.resource +
                         ": not an absolute http(s) URL without query or fragment"};
    if (!url->https && !is_loopback_host(url->host))
        throw UsageError{"--oauth-resource " + oauth.resource +
                         ": plain http is allowed only on the loopback; use https://"};
    text("oauth-ca-file", oauth.ca_file);
    check_ca_file("--oauth-ca-file", oauth.ca_file);
    text("oauth-client-id", oauth.introspection_client_id);
    std::string secret_env;
    text("oauth-client-secret-env", secret_env);
    if (!secret_env.empty()) {
        const char *secret = std::getenv(secret_env.c_str());
        if (secret == nullptr || *secret == '\0')
            throw UsageError{"--oauth-client-secret-env " + secret_env +
                             ": the variable is not set"};
        oauth.introspection_client_secret = secret;
    }
    if (!secret_env.empty() && oauth.introspection_client_id.empty())
        throw UsageError{"--oauth-client-secret-env needs --oauth-client-id"};
    list("oauth-key-origin", oauth.key_origins);
    for (const std::string &origin : oauth.key_origins) {
        std::optional<Url> url = parse_url(origin);
        if (!url || url->target != "/" || origin.back() == '/')
            throw UsageError{"--oauth-key-origin " + origin +
                             ": not an origin, e.g. https://www.googleapis.com"};
    }
    std::string algorithms;
    text("oauth-algorithms", algorithms);
    if (!algorithms.empty()) {
        const std::vector<std::string> known = OAuthOptions().algorithms;
        oauth.algorithms.clear();
        size_t start = 0;
        while (start <= algorithms.size()) {
            size_t comma = algorithms.find(',', start);
            std::string alg = algorithms.substr(
                start, comma == std::string::npos ? std::string::npos : comma - start);
            if (std::find(known.begin(), known.end(), alg) == known.end())
                throw UsageError{"--oauth-algorithms: \"" + alg +
                                 "\" is not one of the asymmetric algorithms accepted (RS256, "
                                 "RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512)"};
            oauth.algorithms.push_back(alg);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
}

// Reads given options into their fields, with the checks every option of a kind has.
struct Given {
    const po::variables_map &map;
    bool has(const char *name) const { return map.count(name) > 0; }
    std::string value(const char *name) const { return map[name].as<std::string>(); }
    void text(const char *name, std::string &into) const {
        if (has(name)) into = value(name);
    }
    void number(const char *name, size_t &into, size_t minimum, size_t maximum,
                const char *what) const {
        if (has(name))
            into = whole_number(std::string("--") + name, value(name), minimum, maximum, what);
    }
    void list(const char *name, std::vector<std::string> &into) const {
        if (has(name)) into = map[name].as<std::vector<std::string>>();
    }
    void milliseconds(const char *name, std::chrono::milliseconds &into) const {
        size_t given = static_cast<size_t>(into.count());
        number(name, given, 1, 86400000, "milliseconds, from 1 to 86400000");
        into = std::chrono::milliseconds(given);
    }
};

// The HTTP transport's options: address, limits, deadlines, origins, authentication, sessions.
void apply_http_options(const Given &given, BridgeOptions &options) {
    HttpOptions &http = options.http_options;
    if (given.has("http")) {
        http_address(given.value("http"), http);
        options.http = true;
    }
    given.number("max-connections", http.max_connections, 1, SIZE_MAX, "at least 1");
    given.number("max-sessions", http.max_sessions, 1, SIZE_MAX, "at least 1");
    given.number("max-connections-per-address", http.max_connections_per_address, 1, SIZE_MAX,
                 "at least 1");
    given.milliseconds("header-timeout", http.header_timeout);
    given.milliseconds("idle-timeout", http.idle_timeout);
    given.milliseconds("body-timeout", http.body_timeout);
    given.milliseconds("write-timeout", http.write_timeout);
    given.number("body-min-rate", http.body_min_rate, 1, SIZE_MAX, "at least 1");
    given.number("max-sessions-per-address", http.max_sessions_per_address, 1, SIZE_MAX,
                 "at least 1");
    given.number("max-sessions-per-principal", http.max_sessions_per_principal, 1, SIZE_MAX,
                 "at least 1");
    given.number("max-calls-per-principal", http.max_calls_per_principal, 1, SIZE_MAX,
                 "at least 1");
    given.list("allowed-origin", http.allowed_origins);
    given.list("allowed-host", http.allowed_hosts);
    if (given.has("auth")) {
        std::string mode = given.value("auth");
        one_of("--auth", mode, {"none", "token", "oauth"});
        http.require_token = mode == "token" || mode == "oauth";
        if (mode == "oauth") http.oauth = OAuthOptions();
    }
    if (http.oauth) {
        apply_oauth_options(given.map, *http.oauth);
    } else {
        for (const char *name : {"oauth-resource", "oauth-ca-file", "oauth-client-id",
                                 "oauth-client-secret-env", "oauth-algorithms", "oauth-key-origin"})
            if (given.has(name)) throw UsageError{std::string("--") + name + " needs --auth oauth"};
    }
    std::vector<std::string> key_files;
    given.list("session-key-file", key_files);
    if (!key_files.empty()) {
        if (!options.http) throw UsageError{"--session-key-file needs --http"};
        std::string problem;
        std::optional<SessionKeys> keys = SessionKeys::load(key_files, problem);
        if (!keys) throw UsageError{problem};
        http.session_keys = std::make_shared<const SessionKeys>(std::move(*keys));
    }
    size_t lifetime = static_cast<size_t>(http.session_lifetime.count());
    given.number("session-lifetime", lifetime, 60, 31 * 86400, "seconds, from 60 to 2678400");
    if (given.has("session-lifetime") && key_files.empty())
        throw UsageError{"--session-lifetime needs --session-key-file"};
    http.session_lifetime = std::chrono::seconds(lifetime);
}

void apply_options(const po::variables_map &map, BridgeOptions &options) {
    Given given{map};
    given.text("dsn", options.dsn);
    given.text("agent", options.agent);
    given.number("pool-size", options.pool_size, 1, 100, "a whole number from 1 to 100");
    given.number("queue-timeout", options.queue_timeout_ms, 0, SIZE_MAX,
                 "milliseconds, a whole number");
    given.number("max-message-bytes", options.max_message_bytes, 1024, SIZE_MAX,
                 "a whole number, at least 1024");
    given.number("page-size", options.page_size, 1, SIZE_MAX, "a whole number, at least 1");
    if (given.has("log-level") && !parse_log_level(given.value("log-level"), options.log_level))
        throw UsageError{"unknown log level \"" + given.value("log-level") + "\""};
    if (given.has("log-format")) {
        std::string format = given.value("log-format");
        one_of("--log-format", format, {"text", "json"});
        options.log_json = format == "json";
    }
    apply_http_options(given, options);
    given.text("token-env", options.token_env);
    given.text("otlp-endpoint", options.otlp_endpoint);
    given.text("otlp-ca-file", options.otlp_ca_file);
    if (!options.otlp_endpoint.empty() && !parse_url(options.otlp_endpoint))
        throw UsageError{"--otlp-endpoint " + options.otlp_endpoint +
                         ": not an http(s) URL, e.g. http://otel-collector:4318"};
    if (!options.otlp_ca_file.empty() && options.otlp_endpoint.empty())
        throw UsageError{"--otlp-ca-file needs --otlp-endpoint"};
    // Under the HTTP transport's wait for a response (300 s), which would end the call first.
    given.number("elicitation-timeout", options.elicitation_timeout_ms, 100, 280000,
                 "milliseconds, from 100 to 280000");
    given.number("otlp-metrics-interval", options.otlp_metrics_interval_ms, 100, 3600000,
                 "milliseconds, from 100 to 3600000");
    if (given.has("otlp-metrics-interval") && options.otlp_endpoint.empty())
        throw UsageError{"--otlp-metrics-interval needs --otlp-endpoint"};
    check_ca_file("--otlp-ca-file", options.otlp_ca_file);
    options.prepare_statements = !given.has("no-prepared-statements");
    given.text("notify-dsn", options.notify_dsn);
    given.list("replica", options.replicas.dsns);
    size_t lag = static_cast<size_t>(options.replicas.max_lag.count());
    given.number("replica-max-lag", lag, 0, SIZE_MAX, "milliseconds");
    options.replicas.max_lag = std::chrono::milliseconds(lag);
    if (given.has("replica-fallback")) {
        std::string mode = given.value("replica-fallback");
        one_of("--replica-fallback", mode, {"primary", "fail"});
        options.replicas.fallback_to_primary = mode == "primary";
    }
    given.text("audit-spool", options.audit_spool);
    if (given.has("confirm-audit")) {
        options.confirm_audit = given.value("confirm-audit");
        one_of("--confirm-audit", options.confirm_audit, {"auto", "always", "never"});
    }
    options.check = given.has("check");

    // Combinations.
    if (!options.token_env.empty() && options.http)
        throw UsageError{
            "--token-env is for stdio; over HTTP each agent sends its own token (--auth token)"};
    if (options.http_options.require_token && !options.http)
        throw UsageError{"--auth token and --auth oauth need --http (over stdio, use --token-env)"};
    if (!options.token_env.empty()) {
        const char *token = std::getenv(options.token_env.c_str());
        if (token == nullptr || *token == '\0')
            throw UsageError{"--token-env " + options.token_env + ": the variable is not set"};
    }
    if (!options.replicas.dsns.empty() && options.audit_spool.empty())
        throw UsageError{
            "--replica needs --audit-spool FILE (where audit records of standby-served calls "
            "wait for the primary)"};
}

// Whether `name` (after PG_MCP_BRIDGE_) is one of the variables Kubernetes gives every pod for a
// Service named pg-mcp-bridge (PG_MCP_BRIDGE_SERVICE_HOST, _PORT_8080_TCP_ADDR, ...).
bool service_link(const std::string &name) {
    static const std::regex kLink(
        "SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)"
        "?");
    return std::regex_match(name, kLink);
}

// PG_MCP_BRIDGE_POOL_SIZE=10 is --pool-size 10: each PG_MCP_BRIDGE_* variable of the
// environment as the option it names (a switch takes true or false); an unknown name is an
// error, so that a misspelt variable is not silently ignored (but for Kubernetes' service links).
std::vector<std::string> environment_arguments(const po::options_description &named) {
    constexpr std::string_view kPrefix = "PG_MCP_BRIDGE_";
    std::vector<std::string> arguments;
    for (char **entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view text(*entry);
        size_t equals = text.find('=');
        if (text.substr(0, kPrefix.size()) != kPrefix || equals == std::string_view::npos) continue;
        std::string variable(text.substr(0, equals)), value(text.substr(equals + 1));
        if (service_link(variable.substr(kPrefix.size()))) continue;
        std::string name;
        for (char c : variable.substr(kPrefix.size()))
            name += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const po::option_description *option = named.find_nothrow(name, false);
        if (option == nullptr || name == "help" || name == "version")
            throw UsageError{variable +
                             " names no option (PG_MCP_BRIDGE_POOL_SIZE=10 is "
                             "--pool-size 10; see --help)"};
        if (option->semantic()->max_tokens() == 0) {
            if (value == "true" || value == "1") {
                arguments.push_back("--" + name);
            } else if (value != "false" && value != "0") {
                throw UsageError{variable + " is true or false, not \"" + value + "\""};
            }
            continue;
        }
        arguments.push_back("--" + name + "=" + value);
    }
    return arguments;
}

}  // namespace

int parse_bridge_options(int argc, char **argv, BridgeOptions &options) {
    po::options_description named = describe();
    po::options_description hidden;
    hidden.add_options()("conninfo", po::value<std::vector<std::string>>());
    po::options_description all;
    all.add(named).add(hidden);
    po::positional_options_description positional;
    positional.add("conninfo", -1);
    try {
        po::variables_map given;
        po::store(
            po::command_line_parser(argc, argv)
                .options(all)
                .positional(positional)
                .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                .run(),
            given);
        std::string positional_dsn;
        if (given.count("conninfo")) {
            auto conninfo = given["conninfo"].as<std::vector<std::string>>();
            if (conninfo.size() > 1 || (given.count("dsn") && !conninfo.empty()))
                throw UsageError{"unexpected argument \"" + conninfo.back() +
                                 "\" (one connection string)"};
            positional_dsn = conninfo.front();
        }
        // Then the environment, then the file: po::store keeps what is there already.
        po::store(
            po::command_line_parser(environment_arguments(named))
                .options(named)
                .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                .run(),
            given);
        if (given.count("config")) {
            std::string file = given["config"].as<std::string>();
            std::ifstream in(file);
            if (!in) throw UsageError{"--config " + file + ": cannot read it"};
            po::options_description from_file;
            for (const auto &option : named.options())
                if (option->long_name() != "config" && option->long_name() != "help" &&
                    option->long_name() != "version")
                    from_file.add(option);
            try {
                po::store(po::parse_config_file(in, from_file), given);
            } catch (const po::error &error) {
                throw UsageError{"--config " + file + ": " + error.what()};
            }
        }
        if (given.count("help")) {
            std::ostringstream text;
            text << kIntroduction << "\n" << named;
            std::fputs(text.str().c_str(), stdout);
            return -1;
        }
        if (given.count("version")) {
            std::printf("pg_mcp_bridge %s (pg_mcp extension %s)\n", PG_MCP_VERSION,
                        kExtensionVersion);
            return -1;
        }
        apply_options(given, options);
        // The positional connection string is the command line's --dsn: it wins over
        // PG_MCP_BRIDGE_DSN and the file's.
        if (given.count("conninfo")) options.dsn = positional_dsn;
    } catch (const po::error &error) {
        std::fprintf(stderr, "pg_mcp_bridge: %s (try --help)\n", error.what());
        return 2;
    } catch (const UsageError &error) {
        std::fprintf(stderr, "pg_mcp_bridge: %s\n", error.message.c_str());
        return 2;
    }
    return 0;
}

}  // namespace pg_mcp::bridge
