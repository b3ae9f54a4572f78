// Fuzz target: bytes from a client socket as the HTTP server reads them (Beast's parser with the
// server's limits), then every check the server makes of the head before serving it, and the
// body as a JSON-RPC message.
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdint>
#include <string>

#include "auth.hpp"
#include "http_request.hpp"
#include "json_rpc.hpp"

using namespace pg_mcp::bridge;
namespace beast = boost::beast;
namespace http = beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // The server's reads: the head, then the body, from a stream that then ends.
    boost::asio::io_context io;
    beast::test::stream client(io), server(io);
    client.connect(server);
    client.append(beast::string_view(reinterpret_cast<const char *>(data), size));
    client.close();
    beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    beast::error_code error;
    http::read_header(server, buffer, parser, error);
    if (error) return 0;
    http::read(server, buffer, parser, error);
    const HttpRequest &request = parser.get();
    (void)framing_problem(request);
    (void)repeated_header(request);
    for (auto name : {"Host", "Mcp-Name", "Mcp-Method", "Authorization"}) {
        auto field = request.find(name);
        if (field == request.end()) continue;
        std::string_view value(field->value().data(), field->value().size());
        (void)host_name(value);
        (void)header_value(value);
        (void)bearer_token(value);
    }
    if (!error && parser.is_done()) {
        const std::string &body = request.body();
        (void)recover_request_id(body, body);
        if (!nests_too_deep(body)) (void)parse_message(body);
    }
    return 0;
}
