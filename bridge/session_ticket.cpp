// Session tickets (session_ticket.hpp): sealing with HMAC-SHA256 and opening with every check
// before the sealed payload is parsed.
#include "session_ticket.hpp"

#include <fstream>
#include <iterator>

#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.hpp"
#include "jose.hpp"

namespace pg_mcp::bridge {

using nlohmann::json;

namespace {

constexpr size_t kMacBytes = 32;
constexpr size_t kMaxClientField = 64;

std::string hmac(const std::string &key, std::string_view data) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char *>(data.data()), data.size(), mac,
             &length) == nullptr ||
        length != kMacBytes)
        return std::string();
    return std::string(reinterpret_cast<const char *>(mac), length);
}

// Whose session it is, as a keyed digest: the ticket shows no token, hash or subject, and
// without the key no one can test a guess of whose it is.
std::string owner_digest(const std::string &key, const std::string &owner) {
    return hex_encode(hmac(key, "pg_mcp session owner\n" + owner)).substr(0, 32);
}

// At most `limit` bytes of `text`, cut at a character boundary of UTF-8.
std::string bounded(const std::string &text, size_t limit) {
    if (text.size() <= limit) return text;
    size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) end--;
    return text.substr(0, end);
}

// What a ticket keeps of clientInfo: its name, version and title when they are strings, each
// bounded.
json client_summary(const json &client_info, size_t limit) {
    json summary = json::object();
    if (!client_info.is_object()) return summary;
    for (const char *field : {"name", "version", "title"}) {
        auto found = client_info.find(field);
        if (found != client_info.end() && found->is_string())
            summary[field] = bounded(found->get<std::string>(), limit);
    }
    return summary;
}

bool is_hex(const std::string &text, size_t length) {
    if (text.size() != length) return false;
    for (char c : text)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

std::optional<SessionKeys> SessionKeys::load(const std::vector<std::string> &files,
                                             std::string &problem) {
    std::vector<std::string> keys;
    for (const std::string &file : files) {
        struct stat info {};
        if (stat(file.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
            problem = "--session-key-file " + file + ": not a readable regular file";
            return std::nullopt;
        }
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            problem = "--session-key-file " + file + ": cannot read it";
            return std::nullopt;
        }
        std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ' ||
                                key.back() == '\t'))
            key.pop_back();
        if (key.size() < kMinKeyBytes) {
            problem = "--session-key-file " + file + ": a key needs at least " +
                      std::to_string(kMinKeyBytes) +
                      " bytes (e.g. head -c 48 /dev/urandom | base64 > " + file + ")";
            return std::nullopt;
        }
        keys.push_back(std::move(key));
    }
    if (keys.empty()) {
        problem = "no session key";
        return std::nullopt;
    }
    return SessionKeys(std::move(keys));
}

SessionKeys::Ticket SessionKeys::seal(const SessionState &state, const std::string &owner,
                                      std::chrono::system_clock::time_point now) const {
    Ticket ticket;
    ticket.state = state;
    ticket.name = secure_random_hex(16);
    ticket.issued =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    // The client's own description is cut shorter until the ticket fits in its bound.
    for (size_t limit : {kMaxClientField, size_t(16), size_t(0)}) {
        ticket.state.client_info = client_summary(state.client_info, limit);
        if (limit == 0) ticket.state.client_info = json::object();
        json payload = {{"v", state.version},    {"c", ticket.state.client_info},
                        {"e", state.can_elicit}, {"o", owner_digest(keys_.front(), owner)},
                        {"t", ticket.issued},    {"n", ticket.name}};
        ticket.text = seal_payload(payload.dump(-1, ' ', true, json::error_handler_t::replace));
        if (ticket.text.size() <= kMaxTicketBytes) break;
    }
    // No randomness or no MAC (OpenSSL failed): no ticket, rather than one that names nothing.
    if (ticket.name.size() != 32 || ticket.text.back() == '.') ticket.text.clear();
    return ticket;
}

std::string SessionKeys::seal_payload(std::string_view payload) const {
    std::string body = std::string(kPrefix) + jose::base64url_encode(payload);
    return body + "." + jose::base64url_encode(hmac(keys_.front(), body));
}

std::optional<SessionKeys::Ticket> SessionKeys::open(std::string_view text,
                                                     const std::string &owner,
                                                     std::chrono::system_clock::time_point now,
                                                     std::chrono::seconds lifetime) const {
    if (text.size() > kMaxTicketBytes || !looks_like_ticket(text)) return std::nullopt;
    size_t dot = text.rfind('.');
    if (dot == std::string_view::npos || dot < kPrefix.size()) return std::nullopt;
    std::string_view body = text.substr(0, dot);
    std::optional<std::string> mac = jose::base64url_decode(text.substr(dot + 1), 64);
    if (!mac || mac->size() != kMacBytes) return std::nullopt;
    const std::string *sealed_with = nullptr;
    for (const std::string &key : keys_) {
        std::string expected = hmac(key, body);
        if (expected.size() == kMacBytes &&
            CRYPTO_memcmp(expected.data(), mac->data(), kMacBytes) == 0 && sealed_with == nullptr)
            sealed_with = &key;
    }
    if (sealed_with == nullptr) return std::nullopt;
    // Sealed by one of these keys: a bridge wrote it. Checked all the same.
    std::optional<std::string> payload_text =
        jose::base64url_decode(body.substr(kPrefix.size()), kMaxTicketBytes);
    if (!payload_text) return std::nullopt;
    json payload = json::parse(*payload_text, nullptr, false);
    if (!payload.is_object()) return std::nullopt;
    auto member = [&](const char *name) -> const json * {
        auto found = payload.find(name);
        return found == payload.end() ? nullptr : &*found;
    };
    const json *version = member("v"), *client = member("c"), *elicit = member("e"),
               *digest = member("o"), *issued = member("t"), *name = member("n");
    if (version == nullptr || !version->is_string() || client == nullptr || !client->is_object() ||
        elicit == nullptr || !elicit->is_boolean() || digest == nullptr || !digest->is_string() ||
        issued == nullptr || !issued->is_number_integer() || name == nullptr ||
        !name->is_string() || !is_hex(name->get<std::string>(), 32))
        return std::nullopt;
    if (digest->get<std::string>() != owner_digest(*sealed_with, owner)) return std::nullopt;
    int64_t at = issued->get<int64_t>();
    int64_t seconds =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    // Not from the future (beyond a minute of clock skew between bridges), not expired.
    if (at > seconds + 60 || seconds - at > lifetime.count()) return std::nullopt;
    Ticket ticket;
    ticket.text = std::string(text);
    ticket.name = name->get<std::string>();
    ticket.issued = at;
    ticket.state.version = version->get<std::string>();
    ticket.state.client_info = client_summary(*client, kMaxClientField);
    ticket.state.can_elicit = elicit->get<bool>();
    return ticket;
}

}  // namespace pg_mcp::bridge
