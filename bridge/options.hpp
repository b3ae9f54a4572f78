// The command line of pg_mcp_bridge, parsed with Boost.Program_options into one struct; main
// only wires what it says.
#pragma once

#include <cstddef>
#include <string>

#include "http_transport.hpp"
#include "log.hpp"
#include "replica.hpp"

namespace pg_mcp::bridge {

struct BridgeOptions {
    std::string dsn;
    std::string agent;
    size_t pool_size = 2;
    size_t queue_timeout_ms = 30000;
    size_t max_message_bytes = 1 << 20;
    size_t page_size = 100;
    LogLevel log_level = LogLevel::Info;
    bool log_json = false;
    bool check = false;
    bool http = false;  // --http: Streamable HTTP instead of stdio
    bool prepare_statements = true;
    std::string notify_dsn;     // --notify-dsn: LISTEN here (default: dsn)
    ReplicaOptions replicas;    // --replica ...
    std::string audit_spool;    // --audit-spool
    std::string otlp_endpoint;  // --otlp-endpoint: where spans go (OTLP/HTTP); empty: nowhere
    std::string otlp_ca_file;   // --otlp-ca-file
    size_t otlp_metrics_interval_ms = 10000;  // --otlp-metrics-interval
    size_t elicitation_timeout_ms = 120000;   // --elicitation-timeout
    std::string token_env;  // --token-env: stdio runs as the principal of this variable's token
    std::string confirm_audit = "auto";  // --confirm-audit: auto, always or never
    HttpOptions http_options;
};

// Parses argv into options. Returns 0 to run, 2 after printing a usage error to stderr, -1 after
// printing the help or the version (exit 0). Checks each value and the combinations.
int parse_bridge_options(int argc, char **argv, BridgeOptions &options);

}  // namespace pg_mcp::bridge
