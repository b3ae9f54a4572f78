// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "oauth.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <map>
#include <set>
#include <sstream>

#include <openssl/evp.h>

#include "http_client.hpp"
#include "jose.hpp"
#include "json_rpc.hpp"
#include "wakeup.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The trusted issuers are read again when this old (a change in the database counts soon).
constexpr auto kIssuersFresh = std::chrono::seconds(30);
// An issuer's metadata and keys are fetched again when this old; a token signed with a key
// not among them refetches its keys at once, at most this often (rotation).
constexpr auto kKeysFresh = std::chrono::minutes(10);
constexpr auto kKeysRefetch = std::chrono::seconds(1);
// A failed fetch is not retried sooner than this (an issuer that is down is not hammered).
constexpr auto kFetchBackoff = std::chrono::seconds(2);

std::string url_encode(const std::string &text) {
    static const char *hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string lower_text(std::string text) {
    for (char &c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

std::string base64(const std::string &text) {
    std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                            reinterpret_cast<const unsigned char *>(text.data()),
                            static_cast<int>(text.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

// A member that is a string, else "" (documents from issuers and tokens are never trusted to
// have the types they should: nlohmann's value() would throw on a mismatch).
std::string text_of(const json &object, const char *name) {
    if (!object.is_object()) return {};
    auto found = object.find(name);
    return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

// An issuer's verifying keys. Each is checked and imported before use (jose.hpp): a key
// that is not a valid RSA or EC public key for signatures is left out.
struct KeySet {
    std::vector<jose::PublicKey> keys;
};

std::shared_ptr<KeySet> parse_key_set(const json &document, std::string &problem) {
    auto set = std::make_shared<KeySet>();
    auto keys = document.find("keys");
    if (!document.is_object() || keys == document.end() || !keys->is_array()) {
        problem = "the key set has no \"keys\" array";
        return nullptr;
    }
    constexpr size_t kMaxKeys = 100;
    for (const json &key : *keys) {
        if (set->keys.size() >= kMaxKeys) break;
        if (!key.is_object()) continue;
        // Keys for encryption only are not for signatures; symmetric keys are never taken from
        // a published key set (from_jwk refuses them).
        if (key.contains("use") && key["use"] != "sig") continue;
        std::string ignored;
        if (std::optional<jose::PublicKey> parsed = jose::PublicKey::from_jwk(key, ignored))
            set->keys.push_back(std::move(*parsed));
    }
    return set;
}

}  // namespace

std::optional<std::string> base64url_decode(const std::string &text) {
    return jose::base64url_decode(text);
}

// An issuer's metadata and keys, fetched on demand, each fetch made once however many tokens
// wait for it.
struct Provider {
    TrustedIssuer trusted;
    bool discovered = false;
    std::string jwks_uri, introspection_endpoint;
    std::shared_ptr<KeySet> keys;
    Clock::time_point fetched{};       // metadata and keys, last success
    Clock::time_point keys_fetched{};  // keys, last attempt
    Clock::time_point failed_at{};     // last failed fetch
    std::string failure;               // why it failed
    std::shared_ptr<std::vector<std::shared_ptr<Wakeup>>> fetching;  // waiters of a fetch
};

struct OAuthVerifier::Impl : std::enable_shared_from_this<OAuthVerifier::Impl> {
    Impl(asio::io_context &io, OAuthOptions options, IssuerLoader load, const Logger &logger)
        : io(io), options(std::move(options)), load(std::move(load)), logger(logger) {
        configure_client_tls(tls, this->options.ca_file);
    }

    asio::io_context &io;
    OAuthOptions options;
    IssuerLoader load;
    const Logger &logger;
    ssl::context tls{ssl::context::tls_client};

    std::optional<std::vector<TrustedIssuer>> trusted;
    Clock::time_point trusted_at{};
    Clock::time_point load_failed_at{};  // the last failed read while none has succeeded
    std::shared_ptr<std::vector<std::shared_ptr<Wakeup>>> loading;
    std::map<std::string, Provider> providers;  // by issuer

    uint64_t verified = 0, refused = 0, scope_refused = 0, unavailable_count = 0;
    uint64_t key_fetches = 0, fetch_failures = 0, introspections = 0;
    static constexpr int kIntrospectionsAtOnce = 16;
    static constexpr int kFailuresBeforePause = 3;
    int introspections_running = 0;
    int introspection_failures = 0;  // in a row
    Clock::time_point introspection_paused_until{};

    // Waits for the fetch in `flight` (started by someone else) to finish, up to the timeout.
    asio::awaitable<void> join(std::shared_ptr<std::vector<std::shared_ptr<Wakeup>>> flight) {
        auto me = std::make_shared<Wakeup>(io);
        flight->push_back(me);
        co_await wait_until(*me, Clock::now() + options.fetch_timeout * 4);
    }
    static void finish(std::shared_ptr<std::vector<std::shared_ptr<Wakeup>>> flight) {
        for (auto &waiter : *flight) waiter->fire();
    }

    asio::awaitable<std::optional<std::vector<TrustedIssuer>>> issuers() {
        auto self = shared_from_this();
        if (trusted && Clock::now() - trusted_at < kIssuersFresh) co_return trusted;
        // A list that could not be read at all is not asked for again for a while: requests
        // (also ones without a token, whose challenge names the scopes) cannot drive reads.
        if (!trusted && Clock::now() - load_failed_at < kFetchBackoff) co_return trusted;
        if (loading) {
            auto flight = loading;
            co_await join(flight);
            co_return trusted;
        }
        auto flight = std::make_shared<std::vector<std::shared_ptr<Wakeup>>>();
        loading = flight;
        auto result = std::make_shared<std::optional<std::optional<std::vector<TrustedIssuer>>>>();
        auto me = std::make_shared<Wakeup>(io);
        load([self, result, me](std::optional<std::vector<TrustedIssuer>> issuers) {
            asio::post(self->io, [result, me, issuers = std::move(issuers)]() mutable {
                *result = std::move(issuers);
                me->fire();
            });
        });
        co_await wait_until(*me, Clock::now() + options.fetch_timeout);
        if (result->has_value() && result->value()) {
            trusted = std::move(**result);
            trusted_at = Clock::now();
            // Providers follow the list: a removed issuer is forgotten with its keys.
            std::map<std::string, Provider> kept;
            for (const TrustedIssuer &issuer : *trusted) {
                auto found = providers.find(issuer.issuer);
                // Keys come from where the metadata says: a new metadata_url starts afresh.
                Provider provider =
                    found != providers.end() &&
                            found->second.trusted.metadata_url == issuer.metadata_url
                        ? std::move(found->second)
                        : Provider();
                provider.trusted = issuer;
                kept.emplace(issuer.issuer, std::move(provider));
            }
            providers = std::move(kept);
        } else if (trusted) {
            logger.log(LogLevel::Warning,
                       "could not read the trusted OAuth issuers; using the list read before");
            trusted_at = Clock::now() - kIssuersFresh + std::chrono::seconds(5);
        } else {
            load_failed_at = Clock::now();
            logger.log(LogLevel::Error,
                       "could not read the trusted OAuth issuers from the database");
        }
        loading = nullptr;
        finish(flight);
        co_return trusted;
    }

    asio::awaitable<FetchResult> get(const std::string &address) {
        std::optional<Url> url = parse_url(address);
        if (!url) co_return FetchResult{0, {}, "not an http(s) URL: " + address};
        if (!url->https && !is_loopback_host(url->host))
            co_return FetchResult{0, {}, "plain http is allowed only on the loopback: " + address};
        FetchResult result =
            co_await fetch(io, tls, *url, http::verb::get, {}, {}, options.fetch_timeout);
        co_return result;
    }

    // Whether `address` is on the issuer's origin, its metadata_url's (configured in the
    // database as the issuer is) or one of options.key_origins.
    bool origin_allowed(const std::string &issuer, const std::string &metadata_url,
                        const std::string &address) const {
        auto origin_of = [](const std::string &text) -> std::string {
            std::optional<Url> url = parse_url(text);
            if (!url) return {};
            return std::string(url->https ? "https" : "http") + "://" + lower_text(url->host) +
                   ":" + url->port;
        };
        std::string wanted = origin_of(address);
        if (wanted.empty()) return false;
        if (wanted == origin_of(issuer)) return true;
        if (!metadata_url.empty() && wanted == origin_of(metadata_url)) return true;
        for (const std::string &allowed : options.key_origins)
            if (wanted == origin_of(allowed)) return true;
        return false;
    }

    // The issuer's authorization server metadata (RFC 8414, then OpenID Connect discovery; or
    // at its metadata_url alone when configured), whose "issuer" must be exactly the issuer:
    // its jwks_uri and introspection_endpoint, or why not.
    struct Discovered {
        std::string problem, jwks_uri, introspection_endpoint;
    };
    asio::awaitable<Discovered> discover(std::string issuer, std::string metadata_url) {
        Discovered out;
        std::optional<Url> url = parse_url(issuer);
        if (!url) {
            out.problem = "the issuer is not an http(s) URL";
            co_return out;
        }
        std::string path = url->target == "/" ? "" : url->target;
        std::string base = issuer.substr(0, issuer.size() - path.size());
        if (!base.empty() && base.back() == '/') base.pop_back();
        if (!path.empty() && path.back() == '/') path.pop_back();
        std::vector<std::string> candidates = {
            base + "/.well-known/oauth-authorization-server" + path,
            base + "/.well-known/openid-configuration" + path,
            base + path + "/.well-known/openid-configuration"};
        if (!metadata_url.empty()) candidates = {metadata_url};
        out.problem = "no metadata document";
        for (const std::string &candidate : candidates) {
            FetchResult got = co_await get(candidate);
            if (got.status == 0) {
                out.problem = got.error;
                continue;
            }
            if (got.status != 200) continue;
            json metadata =
                nests_too_deep(got.body) ? json() : json::parse(got.body, nullptr, false);
            if (text_of(metadata, "issuer") != issuer) {
                out.problem = candidate + " does not describe issuer " + issuer;
                continue;
            }
            auto text = [&](const char *name) {
                auto found = metadata.find(name);
                return found != metadata.end() && found->is_string() ? found->get<std::string>()
                                                                     : std::string();
            };
            out.jwks_uri = text("jwks_uri");
            out.introspection_endpoint = text("introspection_endpoint");
            // Only the issuer's own origin (or one configured): a metadata document cannot send
            // the bridge, with its credentials, to another service or port.
            for (std::string *named : {&out.jwks_uri, &out.introspection_endpoint})
                if (!named->empty() && !origin_allowed(issuer, metadata_url, *named)) {
                    logger.log(LogLevel::Warning,
                               "OAuth issuer " + issuer + " names " + *named +
                                   ", which is not on its own origin; ignored (allow it with "
                                   "--oauth-key-origin)");
                    named->clear();
                }
            out.problem.clear();
            co_return out;
        }
        co_return out;
    }

    // Metadata and keys of an issuer, fetched when missing, stale or (refetch) when a token
    // names a key they lack. On failure the reason is returned (keys kept from before stay).
    // No reference into `providers` is held across a suspension: the map may be replaced.
    asio::awaitable<std::string> refresh(std::string issuer, bool refetch) {
        auto self = shared_from_this();
        auto found = providers.find(issuer);
        if (found == providers.end()) co_return "the issuer is no longer trusted";
        Clock::time_point now = Clock::now();
        std::shared_ptr<std::vector<std::shared_ptr<Wakeup>>> flight;
        bool introspects = false, joining = false;
        std::string metadata_url;
        {
            Provider &provider = found->second;
            bool stale = !provider.discovered || now - provider.fetched > kKeysFresh;
            bool wanted = stale || (refetch && now - provider.keys_fetched >= kKeysRefetch);
            introspects = provider.trusted.introspect;
            metadata_url = provider.trusted.metadata_url;
            // A caller that needs the keys fetched (stale, or a kid not seen) joins a fetch
            // under way even within the refetch interval: its outcome is the answer. Others
            // go on with the keys at hand.
            if (!(provider.fetching && (wanted || refetch))) {
                // Not fetched now: the answer is the last fetch's (a failure stays a failure
                // until a fetch succeeds, so a key not yet seen is "try again", not "invalid").
                if (!wanted) co_return provider.failure;
                if (!provider.failure.empty() && now - provider.failed_at < kFetchBackoff)
                    co_return provider.failure;
            }
            if (provider.fetching) {
                flight = provider.fetching;
                joining = true;
            } else {
                flight = std::make_shared<std::vector<std::shared_ptr<Wakeup>>>();
                provider.fetching = flight;
                provider.keys_fetched = now;
            }
        }
        if (joining) {
            co_await join(flight);
            auto after = providers.find(issuer);
            if (after == providers.end()) co_return "the issuer is no longer trusted";
            co_return after->second.failure;
        }
        key_fetches++;
        // Whatever happens, the flight ends below (its waiters and later tokens depend on it).
        Discovered discovered;
        std::string problem;
        std::shared_ptr<KeySet> keys;
        try {
            Discovered found = co_await discover(issuer, metadata_url);
            discovered = std::move(found);
            problem = discovered.problem;
            if (problem.empty() && discovered.jwks_uri.empty() && !introspects)
                problem = "its metadata names no jwks_uri";
            if (problem.empty() && !discovered.jwks_uri.empty()) {
                FetchResult got = co_await get(discovered.jwks_uri);
                if (got.status != 200) {
                    problem = got.status == 0
                                  ? got.error
                                  : discovered.jwks_uri + " answered " + std::to_string(got.status);
                } else {
                    json document =
                        nests_too_deep(got.body) ? json() : json::parse(got.body, nullptr, false);
                    keys = parse_key_set(document, problem);
                }
            }
        } catch (const std::exception &error) {
            problem = std::string("unexpected failure: ") + error.what();
        }
        auto again = providers.find(issuer);
        // Only into the provider it was fetched for: a metadata_url changed meanwhile made a
        // new entry, which what came from the old location must not fill.
        if (again != providers.end() && again->second.trusted.metadata_url != metadata_url)
            again = providers.end();
        if (again != providers.end()) {
            Provider &current = again->second;
            if (current.fetching == flight) current.fetching = nullptr;
            if (problem.empty()) {
                current.keys = keys;
                current.jwks_uri = discovered.jwks_uri;
                current.introspection_endpoint = discovered.introspection_endpoint;
                current.discovered = true;
                current.fetched = Clock::now();
                current.failure.clear();
            } else {
                current.failed_at = Clock::now();
                current.failure = problem;
            }
        }
        if (!problem.empty()) {
            fetch_failures++;
            logger.log(LogLevel::Warning, "fetching the metadata and keys of OAuth issuer " +
                                              issuer + " failed: " + problem);
        }
        finish(flight);
        co_return problem;
    }

    asio::awaitable<Verdict> verify_jwt(jose::CompactJws jws) {
        const json &header = jws.header;
        std::string alg = text_of(header, "alg");
        if (std::find(options.algorithms.begin(), options.algorithms.end(), alg) ==
            options.algorithms.end())
            co_return invalid("the token's algorithm \"" + alg.substr(0, 16) +
                              "\" is not accepted");
        if (header.contains("crit")) co_return invalid("the token has critical header parameters");
        if (header.contains("typ")) {
            std::string typ = text_of(header, "typ");
            for (char &c : typ) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (typ != "at+jwt" && typ != "application/at+jwt" && typ != "jwt")
                co_return invalid("the token's type \"" + typ.substr(0, 32) +
                                  "\" is not an access token");
        }
        json &claims = jws.payload;
        if (!claims.contains("iss") || !claims["iss"].is_string())
            co_return invalid("the token has no issuer (iss)");
        std::string issuer = claims["iss"].get<std::string>();
        std::optional<std::vector<TrustedIssuer>> trusted_now = co_await issuers();
        if (!trusted_now) co_return unavailable("the trusted issuers could not be read");
        const TrustedIssuer *trusted_issuer = nullptr;
        for (const TrustedIssuer &each : *trusted_now)
            if (each.issuer == issuer) trusted_issuer = &each;
        if (trusted_issuer == nullptr) co_return invalid("the token's issuer is not trusted");
        TrustedIssuer accepted = *trusted_issuer;
        if (header.contains("kid") && !header["kid"].is_string())
            co_return invalid("the token's kid is not a string");
        std::string kid = text_of(header, "kid");
        if (kid.size() > jose::kMaxKeyIdBytes) co_return invalid("the token's kid is too long");
        // The keys that may have signed it: the one its kid names (the key set is fetched
        // again once when it is not there: the issuer rotated its keys), else each of the
        // algorithm's type.
        std::shared_ptr<KeySet> keys;
        for (int attempt = 0; attempt < 2; attempt++) {
            std::string problem = co_await refresh(issuer, attempt == 1);
            auto provider = providers.find(issuer);
            if (provider == providers.end()) co_return invalid("the token's issuer is not trusted");
            keys = provider->second.keys;
            if (!keys) co_return unavailable("the issuer's keys could not be fetched: " + problem);
            bool known = kid.empty();
            for (const jose::PublicKey &key : keys->keys)
                if (!kid.empty() && key.kid() == kid) known = true;
            if (known) break;
            // The keys could not be fetched again (the issuer is down): the token may be good,
            // so the client is told to retry rather than to throw it away.
            if (attempt == 1)
                co_return problem.empty()
                    ? invalid("the token's signing key is unknown (kid)")
                    : unavailable("the issuer's keys could not be fetched: " + problem);
        }
        bool good = false;
        int tried = 0;
        for (const jose::PublicKey &key : keys->keys) {
            if (!kid.empty() && key.kid() != kid) continue;
            if (!key.suits(alg)) continue;
            // Without a kid, a few keys are tried at most (each costs a verification).
            if (++tried > 4) break;
            if (key.verify(alg, jws.signing_input, jws.signature)) {
                good = true;
                break;
            }
        }
        if (!good) co_return invalid("the token's signature does not verify");
        double now =
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        if (std::optional<Verdict> refused =
                check_claims(claims, audiences_of(accepted), accepted.scopes, now, options.leeway))
            co_return *refused;
        co_return accept(std::move(claims));
    }

    // A token that is not a JWT: asked of the trusted issuers that introspect (RFC 7662).
    // A token that is not a JWT: asked of the one trusted issuer that introspects (RFC 7662).
    // An opaque token names no issuer, so it goes to that one alone (the catalog allows one
    // per resource); a few at a time, and not at all for a moment after a failure.
    asio::awaitable<Verdict> introspect(const std::string &token) {
        std::optional<std::vector<TrustedIssuer>> trusted_now = co_await issuers();
        if (!trusted_now) co_return unavailable("the trusted issuers could not be read");
        std::vector<TrustedIssuer> introspecting;
        for (const TrustedIssuer &each : *trusted_now)
            if (each.introspect) introspecting.push_back(each);
        if (introspecting.empty())
            co_return invalid("the token is not a JWT, and no trusted issuer introspects tokens");
        if (introspecting.size() > 1)
            co_return unavailable("several issuers introspect tokens for this resource");
        const TrustedIssuer issuer = introspecting.front();
        // The issuer failed several times in a row (down, or refusing the bridge's credentials):
        // not asked for a moment, so that it is not hammered.
        if (Clock::now() < introspection_paused_until)
            co_return unavailable("token introspection failed a moment ago");
        if (introspections_running >= kIntrospectionsAtOnce)
            co_return unavailable("too many token introspections in progress");
        // The slot is taken before the first suspension and given back however this ends.
        struct Slot {
            int &running;
            explicit Slot(int &running) : running(running) { running++; }
            ~Slot() { running--; }
            Slot(const Slot &) = delete;
            Slot &operator=(const Slot &) = delete;
        } slot(introspections_running);
        std::string problem = co_await refresh(issuer.issuer, false);
        auto provider = providers.find(issuer.issuer);
        if (provider == providers.end()) co_return invalid("the issuer is no longer trusted");
        std::string endpoint = provider->second.introspection_endpoint;
        if (endpoint.empty()) {
            logger.log(LogLevel::Warning,
                       "cannot introspect at " + issuer.issuer + ": " +
                           (problem.empty() ? "it publishes no introspection_endpoint" : problem));
            co_return unavailable("the issuer's introspection endpoint is unknown");
        }
        std::optional<Url> url = parse_url(endpoint);
        if (!url || (!url->https && !is_loopback_host(url->host)))
            co_return unavailable("the introspection endpoint is not an acceptable URL");
        std::string authorization;
        if (!options.introspection_client_id.empty())
            authorization = "Basic " + base64(url_encode(options.introspection_client_id) + ":" +
                                              url_encode(options.introspection_client_secret));
        introspections++;
        FetchResult got =
            co_await fetch(io, tls, *url, http::verb::post,
                           "token=" + url_encode(token) + "&token_type_hint=access_token",
                           authorization, options.fetch_timeout);
        // 400 is about this token (RFC 7662 2.3 answers inactive tokens with 200, but some
        // servers refuse a malformed one): its refusal, not an outage. Anything else that is
        // not a JSON object is the issuer's failure; a few in a row pause introspection.
        if (got.status == 400) {
            introspection_failures = 0;
            co_return invalid("the issuer refused to introspect the token");
        }
        json answer =
            got.status == 200 && got.body.size() <= 256 * 1024 && !nests_too_deep(got.body)
                ? json::parse(got.body, nullptr, false)
                : json();
        if (!answer.is_object()) {
            std::string why = got.status == 0 ? got.error
                              : got.status == 200
                                  ? endpoint + " answered no JSON object"
                                  : endpoint + " answered " + std::to_string(got.status);
            if (++introspection_failures >= kFailuresBeforePause) {
                introspection_paused_until = Clock::now() + kFetchBackoff;
                introspection_failures = 0;
                logger.log(LogLevel::Warning,
                           "token introspection failed " + std::to_string(kFailuresBeforePause) +
                               " times in a row (last: " + why + "); paused for 2 s");
            }
            co_return unavailable("token introspection failed");
        }
        introspection_failures = 0;
        auto active = answer.find("active");
        if (active == answer.end() || *active != true) co_return invalid("the token is not active");
        // An introspected refresh token (or another kind) is not an access token.
        std::string type = text_of(answer, "token_type");
        for (char &c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!type.empty() && type != "access_token" && type != "bearer" && type != "dpop")
            co_return invalid("the token is not an access token (" + type.substr(0, 32) + ")");
        // Keycloak names the kind of token in "typ" ("Bearer", "Refresh", "Offline", "ID").
        std::string typ = text_of(answer, "typ");
        for (char &c : typ) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!typ.empty() && typ != "bearer" && typ != "at+jwt" && typ != "application/at+jwt" &&
            typ != "dpop")
            co_return invalid("the token is not an access token (" + typ.substr(0, 32) + ")");
        if (answer.contains("iss") && answer["iss"] != issuer.issuer)
            co_return invalid("the introspected token is from another issuer");
        answer["iss"] = issuer.issuer;
        answer.erase("active");
        double now =
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        if (std::optional<Verdict> refused =
                check_claims(answer, audiences_of(issuer), issuer.scopes, now, options.leeway))
            co_return *refused;
        co_return accept(std::move(answer));
    }

    // The audiences a token of this issuer may name (the database says; else the resource).
    std::vector<std::string> audiences_of(const TrustedIssuer &issuer) const {
        if (issuer.audiences.empty()) return {options.resource};
        return issuer.audiences;
    }

    Verdict accept(json claims) {
        Verdict verdict;
        verdict.kind = Verdict::Kind::Ok;
        verdict.issuer = claims["iss"].get<std::string>();
        verdict.subject = claims["sub"].get<std::string>();
        verdict.owner = "oauth\n" + verdict.issuer + "\n" + verdict.subject;
        verdict.expires = std::chrono::system_clock::time_point(
            std::chrono::seconds(static_cast<int64_t>(claims["exp"].get<double>())));
        verdict.identity = json{{"resource", options.resource}, {"claims", std::move(claims)}}.dump(
            -1, ' ', false, json::error_handler_t::replace);
        return verdict;
    }

    // Never throws: a document or token of an unexpected shape is refused, not an error.
    asio::awaitable<Verdict> verify(std::string token) {
        auto self = shared_from_this();
        Verdict verdict;
        try {
            Verdict checked = co_await verify_unguarded(std::move(token));
            verdict = std::move(checked);
        } catch (const std::exception &error) {
            logger.log(LogLevel::Error,
                       std::string("verifying an access token failed: ") + error.what());
            verdict = unavailable("the token could not be verified");
        }
        switch (verdict.kind) {
            case Verdict::Kind::Ok:
                verified++;
                break;
            case Verdict::Kind::Invalid:
                refused++;
                break;
            case Verdict::Kind::InsufficientScope:
                scope_refused++;
                break;
            case Verdict::Kind::Unavailable:
                unavailable_count++;
                break;
        }
        co_return verdict;
    }

    asio::awaitable<Verdict> verify_unguarded(std::string token) {
        Verdict verdict;
        if (std::count(token.begin(), token.end(), '.') == 2) {
            std::string problem;
            std::optional<jose::CompactJws> jws = jose::parse_compact(token, problem);
            if (!jws) {
                verdict = invalid(problem);
            } else {
                Verdict checked = co_await verify_jwt(std::move(*jws));
                verdict = std::move(checked);
            }
        } else {
            Verdict checked = co_await introspect(token);
            verdict = std::move(checked);
        }
        co_return verdict;
    }
};

OAuthVerifier::OAuthVerifier(asio::io_context &loop, OAuthOptions options, IssuerLoader load,
                             const Logger &logger)
    : impl_(std::make_shared<Impl>(loop, std::move(options), std::move(load), logger)) {}

OAuthVerifier::~OAuthVerifier() = default;

asio::awaitable<Verdict> OAuthVerifier::verify(std::string token) {
    auto impl = impl_;
    Verdict verdict = co_await impl->verify(std::move(token));
    co_return verdict;
}

asio::awaitable<std::optional<std::vector<TrustedIssuer>>> OAuthVerifier::issuers() {
    auto impl = impl_;
    std::optional<std::vector<TrustedIssuer>> found = co_await impl->issuers();
    co_return found;
}

json OAuthVerifier::resource_metadata(const std::vector<TrustedIssuer> &issuers) const {
    json servers = json::array();
    std::set<std::string> scopes;
    for (const TrustedIssuer &issuer : issuers) {
        servers.push_back(issuer.issuer);
        scopes.insert(issuer.scopes.begin(), issuer.scopes.end());
    }
    return {{"resource", impl_->options.resource},
            {"authorization_servers", servers},
            {"scopes_supported", scopes},
            {"bearer_methods_supported", {"header"}},
            {"resource_name", "pg_mcp"},
            {"resource_documentation", "https://github.com/pg-mcp/pg_mcp#oauth"}};
}

std::string OAuthVerifier::resource_metadata_url() const {
    std::optional<Url> url = parse_url(impl_->options.resource);
    if (!url) return {};
    std::string path = url->target.substr(0, url->target.find('?'));
    if (path == "/") path.clear();
    const std::string &resource = impl_->options.resource;
    size_t authority_end = resource.find('/', resource.find("://") + 3);
    std::string origin = resource.substr(0, authority_end);
    return origin + "/.well-known/oauth-protected-resource" + path;
}

std::vector<std::string> OAuthVerifier::resource_metadata_paths() const {
    std::vector<std::string> paths = {"/.well-known/oauth-protected-resource"};
    std::optional<Url> url = parse_url(impl_->options.resource);
    if (url) {
        std::string path = url->target.substr(0, url->target.find('?'));
        if (path != "/" && !path.empty()) paths.push_back(paths[0] + path);
    }
    return paths;
}

std::string OAuthVerifier::scopes_hint() const {
    if (!impl_->trusted) return {};
    std::set<std::string> scopes;
    for (const TrustedIssuer &issuer : *impl_->trusted)
        scopes.insert(issuer.scopes.begin(), issuer.scopes.end());
    std::string out;
    for (const std::string &scope : scopes) out += (out.empty() ? "" : " ") + scope;
    return out;
}

const OAuthOptions &OAuthVerifier::options() const {
    return impl_->options;
}

std::string OAuthVerifier::metrics() const {
    const Impl &impl = *impl_;
    std::string out;
    auto line = [&](const std::string &text) { out += text + "\n"; };
    line("# HELP pg_mcp_bridge_oauth_tokens_total OAuth access tokens verified, by outcome.");
    line("# TYPE pg_mcp_bridge_oauth_tokens_total counter");
    line("pg_mcp_bridge_oauth_tokens_total{outcome=\"ok\"} " + std::to_string(impl.verified));
    line("pg_mcp_bridge_oauth_tokens_total{outcome=\"invalid\"} " + std::to_string(impl.refused));
    line("pg_mcp_bridge_oauth_tokens_total{outcome=\"insufficient_scope\"} " +
         std::to_string(impl.scope_refused));
    line("pg_mcp_bridge_oauth_tokens_total{outcome=\"unavailable\"} " +
         std::to_string(impl.unavailable_count));
    line("# HELP pg_mcp_bridge_oauth_key_fetches_total Fetches of issuers' metadata and keys.");
    line("# TYPE pg_mcp_bridge_oauth_key_fetches_total counter");
    line("pg_mcp_bridge_oauth_key_fetches_total " + std::to_string(impl.key_fetches));
    line("# HELP pg_mcp_bridge_oauth_fetch_failures_total Failed fetches of metadata and keys.");
    line("# TYPE pg_mcp_bridge_oauth_fetch_failures_total counter");
    line("pg_mcp_bridge_oauth_fetch_failures_total " + std::to_string(impl.fetch_failures));
    line("# HELP pg_mcp_bridge_oauth_introspections_total Token introspection requests.");
    line("# TYPE pg_mcp_bridge_oauth_introspections_total counter");
    line("pg_mcp_bridge_oauth_introspections_total " + std::to_string(impl.introspections));
    return out;
}

}  // namespace pg_mcp::bridge
