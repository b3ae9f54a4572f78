// Checks of an HTTP request's head (http_request.hpp).
#include "http_request.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace pg_mcp::bridge {

namespace http = boost::beast::http;

std::string lower(std::string text) {
    for (char &c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

std::optional<std::string> host_name(std::string_view host) {
    std::string_view name = host, port;
    if (!host.empty() && host[0] == '[') {
        size_t end = host.find(']');
        if (end == std::string_view::npos) return std::nullopt;
        name = host.substr(0, end + 1);
        for (char c : name.substr(1, name.size() - 2))
            if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
                return std::nullopt;
        std::string_view rest = host.substr(end + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') return std::nullopt;
            port = rest.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else {
        size_t colon = host.find(':');
        if (colon != std::string_view::npos) {
            name = host.substr(0, colon);
            port = host.substr(colon + 1);
            if (port.empty()) return std::nullopt;
        }
        if (name.empty()) return std::nullopt;
        // reg-name or IPv4address: unreserved characters (percent-encoding and sub-delims are
        // not used in names a client reaches this server by).
        for (char c : name)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_' &&
                c != '~')
                return std::nullopt;
    }
    if (port.size() > 5) return std::nullopt;
    for (char c : port)
        if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    if (!port.empty() && std::stoul(std::string(port)) > 65535) return std::nullopt;
    return lower(std::string(name));
}

std::string framing_problem(const HttpRequest &request) {
    auto coding = request.find(http::field::transfer_encoding);
    if (coding == request.end()) return {};
    if (request.count(http::field::transfer_encoding) > 1 ||
        !boost::beast::iequals(coding->value(), "chunked"))
        return "Bad Request: Transfer-Encoding \"" + std::string(coding->value()) +
               "\" is not supported (only chunked)";
    if (request.find(http::field::content_length) != request.end())
        return "Bad Request: a request may not carry both Transfer-Encoding and "
               "Content-Length";
    return {};
}

std::string repeated_header(const HttpRequest &request) {
    static const char *const kOnce[] = {"Host",        "Authorization",  "Content-Type",
                                        "Origin",      "MCP-Session-Id", "MCP-Protocol-Version",
                                        "Mcp-Method",  "Mcp-Name",       "Last-Event-ID",
                                        "traceparent", "tracestate"};
    for (const char *name : kOnce)
        if (request.count(name) > 1) return name;
    // Each Mcp-Param-<name> once.
    for (auto it = request.begin(); it != request.end(); ++it) {
        std::string name = lower(std::string(it->name_string()));
        if (name.rfind("mcp-param-", 0) != 0) continue;
        if (request.count(it->name_string()) > 1) return std::string(it->name_string());
    }
    return {};
}

std::optional<std::string> header_value(std::string_view value) {
    constexpr std::string_view kPrefix = "=?base64?", kSuffix = "?=";
    if (value.size() >= kPrefix.size() + kSuffix.size() &&
        value.substr(0, kPrefix.size()) == kPrefix &&
        value.substr(value.size() - kSuffix.size()) == kSuffix) {
        std::string_view encoded =
            value.substr(kPrefix.size(), value.size() - kPrefix.size() - kSuffix.size());
        // Canonical Base64 only (EVP_DecodeBlock would also take spaces and stray padding):
        // the alphabet, then at most two '=' that complete the last quantum.
        if (encoded.size() % 4 != 0 || encoded.size() > 8192) return std::nullopt;
        size_t data = encoded.size();
        while (data > 0 && encoded.size() - data < 2 && encoded[data - 1] == '=') data--;
        for (size_t i = 0; i < data; i++) {
            unsigned char c = static_cast<unsigned char>(encoded[i]);
            if (!std::isalnum(c) && c != '+' && c != '/') return std::nullopt;
        }
        std::string decoded(encoded.size() / 4 * 3, '\0');
        int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(decoded.data()),
                                reinterpret_cast<const unsigned char *>(encoded.data()),
                                static_cast<int>(encoded.size()));
        if (n < 0) return std::nullopt;
        size_t padding = 0;
        for (size_t i = encoded.size(); i > 0 && encoded[i - 1] == '=' && padding < 2; i--)
            padding++;
        decoded.resize(static_cast<size_t>(n) - padding);
        return decoded;
    }
    for (char c : value)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
    return std::string(value);
}

}  // namespace pg_mcp::bridge
