#include "auth.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace pg_mcp::bridge {

std::string sha256_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        return std::string();
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; i++) {
        hex += kHex[digest[i] >> 4];
        hex += kHex[digest[i] & 15];
    }
    return hex;
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

std::optional<std::string> TokenCache::find(const std::string &token_sha256) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = entries_.find(token_sha256);
    if (found == entries_.end()) return std::nullopt;
    if (found->second.until <= std::chrono::steady_clock::now()) {
        entries_.erase(found);
        return std::nullopt;
    }
    return found->second.principal;
}

void TokenCache::remember(const std::string &token_sha256, const std::string &principal) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    // Bounded: expired entries go whenever the cache grows large.
    if (entries_.size() >= 10000)
        for (auto it = entries_.begin(); it != entries_.end();)
            it = it->second.until <= now ? entries_.erase(it) : std::next(it);
    if (entries_.size() >= 10000) entries_.clear();
    entries_[token_sha256] = Entry{principal, now + ttl_};
}

void TokenCache::forget(const std::string &token_sha256) {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.erase(token_sha256);
}

}  // namespace pg_mcp::bridge
