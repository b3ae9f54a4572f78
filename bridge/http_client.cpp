// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "http_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace pg_mcp::bridge {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kFetchLimit = 1 << 20;  // an answer's body

auto with(beast::error_code &error) {
    return asio::redirect_error(asio::use_awaitable, error);
}

template <typename Stream>
asio::awaitable<FetchResult> exchange(Stream &stream, http::request<http::string_body> &request) {
    FetchResult result;
    beast::error_code error;
    co_await http::async_write(stream, request, with(error));
    if (error) {
        result.error = "sending the request failed: " + error.message();
        co_return result;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kFetchLimit);
    co_await http::async_read(stream, buffer, parser, with(error));
    if (error) {
        result.error = "reading the answer failed: " + error.message();
        co_return result;
    }
    result.status = parser.get().result_int();
    result.body = std::move(parser.get().body());
    co_return result;
}

// One request to url (http only to the loopback), within timeout.
}  // namespace

asio::awaitable<FetchResult> fetch(asio::io_context &io, ssl::context &tls, const Url &url,
                                   http::verb verb, std::string body, std::string authorization,
                                   std::chrono::milliseconds timeout, std::string content_type) {
    FetchResult result;
    beast::error_code error;
    // Name resolution within the timeout too: the timer cancels it.
    auto resolver = std::make_shared<tcp::resolver>(io);
    asio::steady_timer deadline(io);
    deadline.expires_after(timeout);
    deadline.async_wait([resolver](const boost::system::error_code &expired) {
        if (!expired) resolver->cancel();
    });
    auto found = co_await resolver->async_resolve(url.host, url.port, with(error));
    deadline.cancel();
    if (error) {
        result.error = "resolving " + url.host + " failed: " + error.message();
        co_return result;
    }
    http::request<http::string_body> request{verb, url.target, 11};
    request.set(http::field::host, url.host.find(':') != std::string::npos
                                       ? "[" + url.host + "]:" + url.port
                                       : url.host + ":" + url.port);
    request.set(http::field::user_agent, std::string("pg_mcp_bridge/") + PG_MCP_VERSION);
    request.set(http::field::accept, "application/json");
    if (!authorization.empty()) request.set(http::field::authorization, authorization);
    if (verb == http::verb::post) {
        request.set(http::field::content_type, content_type);
        request.body() = std::move(body);
        request.prepare_payload();
    }
    if (!url.https) {
        beast::tcp_stream stream(io);
        stream.expires_after(timeout);
        co_await stream.async_connect(found, with(error));
        if (error) {
            result.error = "connecting to " + url.origin() + " failed: " + error.message();
            co_return result;
        }
        result = co_await exchange(stream, request);
        stream.socket().shutdown(tcp::socket::shutdown_both, error);
        co_return result;
    }
    beast::ssl_stream<beast::tcp_stream> stream(io, tls);
    beast::get_lowest_layer(stream).expires_after(timeout);
    // The server's name for SNI (not for an address), and checked against its certificate.
    beast::error_code not_address;
    asio::ip::make_address(url.host, not_address);
    if (not_address && !SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
        result.error = "setting the TLS server name failed";
        co_return result;
    }
    stream.set_verify_mode(ssl::verify_peer);
    stream.set_verify_callback(ssl::host_name_verification(url.host));
    co_await beast::get_lowest_layer(stream).async_connect(found, with(error));
    if (error) {
        result.error = "connecting to " + url.origin() + " failed: " + error.message();
        co_return result;
    }
    co_await stream.async_handshake(ssl::stream_base::client, with(error));
    if (error) {
        result.error = "TLS with " + url.origin() + " failed: " + error.message();
        co_return result;
    }
    result = co_await exchange(stream, request);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
    co_await stream.async_shutdown(with(error));
    co_return result;
}

void configure_client_tls(ssl::context &tls, const std::string &ca_file) {
    tls.set_default_verify_paths();
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (!ca_file.empty()) tls.load_verify_file(ca_file);
}

std::string Url::origin() const {
    std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return std::string(https ? "https://" : "http://") + name + ":" + port;
}

std::optional<Url> parse_url(const std::string &text) {
    Url url;
    std::string rest;
    if (text.rfind("https://", 0) == 0) {
        url.https = true;
        rest = text.substr(8);
    } else if (text.rfind("http://", 0) == 0) {
        rest = text.substr(7);
    } else {
        return std::nullopt;
    }
    if (text.find('#') != std::string::npos) return std::nullopt;
    for (char c : text)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;
    size_t slash = rest.find_first_of("/?");
    std::string authority = rest.substr(0, slash);
    url.target = slash == std::string::npos ? "/" : rest.substr(slash);
    if (url.target[0] == '?') url.target = "/" + url.target;
    if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
    if (authority[0] == '[') {
        size_t end = authority.find(']');
        if (end == std::string::npos) return std::nullopt;
        url.host = authority.substr(1, end - 1);
        std::string after = authority.substr(end + 1);
        if (!after.empty() && after[0] != ':') return std::nullopt;
        url.port = after.empty() ? "" : after.substr(1);
    } else {
        size_t colon = authority.find(':');
        url.host = authority.substr(0, colon);
        url.port = colon == std::string::npos ? "" : authority.substr(colon + 1);
    }
    if (url.host.empty()) return std::nullopt;
    if (url.port.empty()) url.port = url.https ? "443" : "80";
    if (url.port.find_first_not_of("0123456789") != std::string::npos || url.port.size() > 5 ||
        std::stoul(url.port) == 0 || std::stoul(url.port) > 65535)
        return std::nullopt;
    return url;
}

bool is_loopback_host(const std::string &host) {
    if (host == "localhost") return true;
    boost::system::error_code error;
    asio::ip::address address = asio::ip::make_address(host, error);
    return !error && address.is_loopback();
}

}  // namespace pg_mcp::bridge
