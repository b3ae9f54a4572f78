// Bearer tokens: their SHA-256 and the strict parse of an Authorization header; hex and
// secure random names (auth.hpp).
#include "auth.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>

namespace pg_mcp::bridge {

std::string sha256_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        return std::string();
    return hex_encode(std::string_view(reinterpret_cast<const char *>(digest), length));
}

std::string hex_encode(std::string_view bytes) {
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        hex += kHex[c >> 4];
        hex += kHex[c & 15];
    }
    return hex;
}

std::string secure_random_hex(size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char *>(raw.data()), static_cast<int>(bytes)) != 1)
        return std::string();
    return hex_encode(raw);
}

std::optional<std::string> bearer_token(std::string_view header) {
    constexpr std::string_view kScheme = "bearer ";
    if (header.size() <= kScheme.size()) return std::nullopt;
    for (size_t i = 0; i < kScheme.size(); i++)
        if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
    std::string_view token = header.substr(kScheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token.empty() || token.size() > 4096) return std::nullopt;
    for (char c : token) {
        bool allowed = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                       c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
        if (!allowed) return std::nullopt;
    }
    return std::string(token);
}

}  // namespace pg_mcp::bridge
