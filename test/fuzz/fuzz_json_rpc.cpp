// Fuzz target: one line of the stdio transport (or an HTTP body) as the JSON-RPC layer
// classifies it, and the id recovery used for messages too large or broken to parse.
#include <cstdint>
#include <string_view>

#include "json_rpc.hpp"

using namespace pg_mcp::bridge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view line(reinterpret_cast<const char *>(data), size);
    Message message = parse_message(line);
    if (message.kind == Message::Kind::Invalid && !message.error.is_object()) __builtin_trap();
    // As for an oversized message: its first and last bytes only.
    size_t half = size / 2;
    (void)recover_request_id(line.substr(0, half), line.substr(half));
    (void)recover_request_id(line, line);
    return 0;
}
