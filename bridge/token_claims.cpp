// The checks every access token's claims pass (token_claims.hpp).
#include "token_claims.hpp"

#include <algorithm>
#include <sstream>
#include <tuple>

#include "json_rpc.hpp"

namespace pg_mcp::bridge {

using nlohmann::json;

Verdict invalid(std::string reason) {
    Verdict verdict;
    verdict.kind = Verdict::Kind::Invalid;
    verdict.reason = std::move(reason);
    return verdict;
}
Verdict unavailable(std::string reason) {
    Verdict verdict;
    verdict.kind = Verdict::Kind::Unavailable;
    verdict.reason = std::move(reason);
    return verdict;
}

namespace {

std::string joined(const std::vector<std::string> &words) {
    std::string out;
    for (const std::string &word : words) out += (out.empty() ? "" : " ") + word;
    return out;
}

// At most `limit` bytes of printable ASCII from `text`; any other byte becomes '?'.
std::string printable(const std::string &text, size_t limit) {
    std::string out;
    for (char c : text) {
        if (out.size() >= limit) return out + "...";
        out += c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?';
    }
    return out;
}

}  // namespace

std::set<std::string> scopes_of(const json &claims) {
    std::set<std::string> scopes;
    auto add_words = [&](const std::string &text) {
        std::istringstream words(text);
        std::string word;
        while (words >> word) scopes.insert(word);
    };
    for (const char *name : {"scope", "scp"}) {
        auto found = claims.find(name);
        if (found == claims.end()) continue;
        if (found->is_string()) add_words(found->get<std::string>());
        if (found->is_array())
            for (const json &each : *found)
                if (each.is_string()) scopes.insert(each.get<std::string>());
    }
    return scopes;
}

std::optional<Verdict> check_claims(const json &claims, const std::vector<std::string> &audiences,
                                    const std::vector<std::string> &required_scopes, double now,
                                    std::chrono::seconds leeway) {
    double skew = static_cast<double>(leeway.count());
    // A NumericDate (RFC 7519 2): a finite number of seconds from 1970 to 2255 at most (a larger
    // value could not be turned into a time point of the system clock without overflow).
    constexpr double kLatest = 9.0e9;
    auto time_claim = [&](const char *name, bool required,
                          double &value) -> std::optional<Verdict> {
        auto found = claims.find(name);
        if (found == claims.end()) {
            if (required) return invalid(std::string("the token has no expiry (") + name + ")");
            value = -1;
            return std::nullopt;
        }
        if (!found->is_number() || !(found->get<double>() >= 0) || found->get<double>() > kLatest)
            return invalid(std::string("the token's ") + name + " is not a valid time");
        value = found->get<double>();
        return std::nullopt;
    };
    double exp = 0, nbf = 0, iat = 0;
    for (auto [name, required, into] : {std::tuple<const char *, bool, double *>{"exp", true, &exp},
                                        {"nbf", false, &nbf},
                                        {"iat", false, &iat}})
        if (std::optional<Verdict> refused = time_claim(name, required, *into)) return refused;
    if (now > exp + skew) return invalid("the token has expired");
    if (nbf >= 0 && now + skew < nbf) return invalid("the token is not valid yet (nbf)");
    if (iat >= 0 && now + skew < iat) return invalid("the token was issued in the future (iat)");
    if (contains_nul(claims)) return invalid("the token holds a NUL character");
    // RFC 8707 / RFC 9068: the audience is this resource (or a name its issuer gives it); a
    // token for another is refused. In an array one is enough (RFC 7519 4.1.3).
    auto aud = claims.find("aud");
    auto accepted = [&](const json &value) {
        return value.is_string() && std::find(audiences.begin(), audiences.end(),
                                              value.get<std::string>()) != audiences.end();
    };
    bool meant = false;
    if (aud != claims.end() && aud->is_string()) meant = accepted(*aud);
    if (aud != claims.end() && aud->is_array())
        for (const json &each : *aud)
            if (accepted(each)) meant = true;
    if (!meant) {
        if (aud == claims.end()) return invalid("the token names no audience (aud)");
        // What the token names, so that the operator sees what to configure when the issuer
        // names this resource otherwise (it ignored the resource parameter): printable ASCII,
        // bounded (it ends up in a header and the log).
        std::string named;
        for (const json &each : aud->is_array() ? *aud : json::array({*aud})) {
            if (!each.is_string()) continue;
            named += (named.empty() ? "" : ", ") + printable(each.get<std::string>(), 120);
            if (named.size() > 240) break;
        }
        return invalid("the token is not for this resource (aud: " +
                       (named.empty() ? std::string("not a string") : named) +
                       "); if its issuer names this resource so, add that to the provider's "
                       "token_audiences (mcp.alter_identity_provider)");
    }
    auto sub = claims.find("sub");
    if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty())
        return invalid("the token has no subject (sub)");
    std::set<std::string> granted = scopes_of(claims);
    for (const std::string &scope : required_scopes)
        if (!granted.count(scope)) {
            Verdict verdict;
            verdict.kind = Verdict::Kind::InsufficientScope;
            verdict.reason = "the token lacks the scope \"" + scope + "\"";
            verdict.scope = joined(required_scopes);
            return verdict;
        }
    return std::nullopt;
}

}  // namespace pg_mcp::bridge
