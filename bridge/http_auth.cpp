// The authentication gate (http_auth.hpp): caches, single flight, budgets, counted refusals.
#include "http_auth.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <map>
#include <vector>

#include "auth.hpp"
#include "json_rpc.hpp"
#include "wakeup.hpp"

namespace pg_mcp::bridge {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// A remembered caller is checked again when this old; until the check answers (for this long
// at most, and never past an OAuth token's expiry) it is served as it was: a re-check never
// fails or delays a request, nor counts against the budgets of unknown tokens.
constexpr auto kFresh = 5s;
constexpr auto kStaleUsable = 60s;
// A refused token is refused again without asking, for this long (a person no mapping named:
// kUnmappedPause, so that a new mapping counts soon).
constexpr auto kRefusedFor = 30s;
constexpr auto kUnmappedPause = 10s;
constexpr size_t kRemembered = 20000;  // entries of each cache at most
// What one client address may ask about tokens the bridge has not seen: a few checks at once,
// at a bounded rate (a burst, then per second); opaque tokens, which the issuer introspects
// with the bridge's credentials, less, also per /24 (IPv4) or /48 (IPv6) prefix.
constexpr size_t kChecksPerAddress = 8;
constexpr double kUnknownRate = 20, kUnknownBurst = 40;
constexpr double kUnknownPrefixRate = 50, kUnknownPrefixBurst = 100;  // per /24 or /48
constexpr size_t kIntrospectionsPerPrefix = 8;  // of the verifier's 16 at once
constexpr size_t kIntrospectionsPerAddress = 4;
constexpr double kIntrospectRate = 5, kIntrospectBurst = 10;
constexpr double kIntrospectPrefixRate = 20, kIntrospectPrefixBurst = 40;
// Refusals are logged as counts, one line per interval.
constexpr auto kLogEvery = 10s;

// pg_mcp's tokens: "pgmcp_" and 43 base64url characters.
bool own_token(const std::string &token) {
    if (token.size() != 49 || token.compare(0, 6, "pgmcp_") != 0) return false;
    for (size_t i = 6; i < token.size(); i++) {
        unsigned char c = static_cast<unsigned char>(token[i]);
        if (!std::isalnum(c) && c != '-' && c != '_') return false;
    }
    return true;
}

// The prefix an address key belongs to: an IPv4 /24, an IPv6 /48 (keys are /64s).
std::string prefix_of(const std::string &address) {
    size_t cut = address.find(':') != std::string::npos ? 0 : address.rfind('.');
    if (address.find(':') != std::string::npos) {
        size_t colons = 0;
        for (cut = 0; cut < address.size() && colons < 3; cut++) colons += address[cut] == ':';
    }
    return address.substr(0, cut) + (address.find(':') != std::string::npos ? "/48" : "/24");
}

struct Bucket {
    double tokens = -1;  // unset: full
    Clock::time_point at;
    bool take(double rate, double burst, Clock::time_point now) {
        if (tokens < 0) tokens = burst;
        tokens = std::min(burst, tokens + rate * std::chrono::duration<double>(now - at).count());
        at = now;
        if (tokens < 1) return false;
        tokens -= 1;
        return true;
    }
    bool full(double rate, double burst, Clock::time_point now) const {
        return tokens < 0 ||
               tokens + rate * std::chrono::duration<double>(now - at).count() >= burst;
    }
};

// A count per key that goes away at zero (checks in progress per address).
struct Counted {
    Counted(std::map<std::string, size_t> &counts, std::string key)
        : counts(counts), key(std::move(key)) {
        counts[this->key]++;
    }
    ~Counted() {
        auto found = counts.find(key);
        if (found != counts.end() && --found->second == 0) counts.erase(found);
    }
    Counted(const Counted &) = delete;
    Counted &operator=(const Counted &) = delete;
    std::map<std::string, size_t> &counts;
    std::string key;
};

}  // namespace

struct AuthGate::Impl : std::enable_shared_from_this<AuthGate::Impl> {
    Impl(asio::io_context &io, Backend &backend, const Logger &logger,
         std::optional<OAuthOptions> oauth_options, std::chrono::milliseconds request_timeout)
        : io(io), backend(backend), logger(logger), request_timeout(request_timeout) {
        if (oauth_options) {
            std::string resource = oauth_options->resource;
            Backend *db = &backend;
            verifier = std::make_unique<OAuthVerifier>(
                io, *oauth_options,
                [db, resource](auto done) {
                    db->identity_providers("oauth/issuers", resource, [done](BackendReply reply) {
                        if (!reply.ok || !reply.value.is_array()) return done(std::nullopt);
                        std::vector<TrustedIssuer> issuers;
                        for (const json &row : reply.value) {
                            if (!row.is_object() || !row.contains("issuer")) continue;
                            TrustedIssuer issuer;
                            issuer.issuer = row.value("issuer", "");
                            if (row.contains("scopes") && row["scopes"].is_array())
                                for (const json &scope : row["scopes"])
                                    if (scope.is_string())
                                        issuer.scopes.push_back(scope.get<std::string>());
                            if (row.contains("token_audiences") &&
                                row["token_audiences"].is_array())
                                for (const json &audience : row["token_audiences"])
                                    if (audience.is_string())
                                        issuer.audiences.push_back(audience.get<std::string>());
                            if (row.contains("metadata_url") && row["metadata_url"].is_string())
                                issuer.metadata_url = row["metadata_url"].get<std::string>();
                            issuer.introspect = row.value("introspect", false);
                            issuers.push_back(std::move(issuer));
                        }
                        done(std::move(issuers));
                    });
                },
                logger);
        }
    }

    asio::io_context &io;
    Backend &backend;
    const Logger &logger;
    std::chrono::milliseconds request_timeout;
    std::unique_ptr<OAuthVerifier> verifier;

    struct Known {
        Caller caller;
        Clock::time_point fresh_until, usable_until;
    };
    struct Refused {
        Refusal refusal;
        Clock::time_point until;
    };
    // A token's check in progress: every request bringing the token waits for it.
    struct Check {
        bool done = false;
        bool superseded = false;  // the token was revoked while this check ran
        AuthResult result;
        std::vector<std::shared_ptr<Wakeup>> waiters;
    };
    std::map<std::string, Known> known;                    // by token hash
    std::map<std::string, Refused> refused;                // by token hash
    std::map<std::string, Clock::time_point> unmapped;     // people, until asked again
    std::map<std::string, std::shared_ptr<Check>> checks;  // by token hash
    std::map<std::string, size_t> checks_by_address, introspections_by_address,
        introspections_by_prefix;
    std::map<std::string, Bucket> unknown_budget, unknown_prefix_budget, introspect_budget,
        prefix_budget;
    uint64_t checks_started = 0, rechecks_started = 0;
    // Refusals by kind (for /metrics), and by kind and reason since the last log line.
    std::map<std::string, uint64_t> refusals_total;
    std::map<std::string, std::map<std::string, uint64_t>> refusals_unlogged;
    Clock::time_point logged_at = Clock::now();

    // ---- answers

    std::string challenge(const std::string &error, const std::string &description,
                          const std::string &scope = {}) const {
        auto quoted = [](const std::string &text) {
            std::string out = "\"";
            for (char c : text) {
                if (c == '"' || c == '\\') continue;
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
                out += c;
            }
            return out + "\"";
        };
        std::string value = "Bearer realm=\"pg_mcp\"";
        if (verifier) value += ", resource_metadata=" + quoted(verifier->resource_metadata_url());
        if (!error.empty()) value += ", error=" + quoted(error);
        if (!description.empty()) value += ", error_description=" + quoted(description);
        // Every challenge names the scopes a client should ask for (RFC 6750 §3).
        std::string scopes = scope;
        if (scopes.empty() && verifier) scopes = verifier->scopes_hint();
        if (!scopes.empty()) value += ", scope=" + quoted(scopes);
        return value;
    }
    Refusal unauthorized(const std::string &message, const std::string &description) const {
        return Refusal{Refusal::Kind::Unauthorized, message,
                       challenge("invalid_token", description), false};
    }
    Refusal unknown_token() const {
        return unauthorized("Unauthorized: the bearer token is unknown, expired or revoked",
                            "unknown, expired or revoked token");
    }
    Refusal unmapped_identity() const {
        return Refusal{Refusal::Kind::Forbidden,
                       "Forbidden: this identity may not use this server (no identity mapping "
                       "names it); ask the database administrator",
                       {},
                       false};
    }
    static Refusal unavailable(const std::string &message) {
        return Refusal{Refusal::Kind::Unavailable, "Service Unavailable: " + message, {}, true};
    }
    Refusal of_verdict(const Verdict &verdict) const {
        switch (verdict.kind) {
            case Verdict::Kind::InsufficientScope:
                return Refusal{Refusal::Kind::Forbidden, "Forbidden: " + verdict.reason,
                               challenge("insufficient_scope", "the token lacks a required scope",
                                         verdict.scope),
                               false};
            case Verdict::Kind::Unavailable:
                return unavailable("the access token could not be verified now; retry shortly");
            default:
                return unauthorized("Unauthorized: " + verdict.reason, verdict.reason);
        }
    }
    // A token the database could not check: 500 when it refused the question (a missing
    // GRANT, say: the reason is for the operator's log), else 503.
    Refusal check_failed(const BackendReply &reply, const std::string &what) {
        count("database", what + " could not be checked: " + reply.error_message);
        if (reply.error_code != error_code::kDatabaseUnavailable)
            return Refusal{Refusal::Kind::Internal,
                           "Internal Server Error: " + what +
                               " could not be checked (the bridge's log says why)",
                           {},
                           false};
        return unavailable(what + " could not be checked; retry shortly");
    }

    // ---- counted refusals

    void count(const std::string &kind, const std::string &reason) {
        refusals_total[kind]++;
        auto &reasons = refusals_unlogged[kind];
        // Distinct reasons are bounded (they may name what a client sent).
        if (reasons.size() < 20 || reasons.count(reason))
            reasons[reason]++;
        else
            reasons["other reasons"]++;
    }

    void log_refusals(bool force) {
        Clock::time_point now = Clock::now();
        if (refusals_unlogged.empty() || (!force && now - logged_at < kLogEvery)) return;
        uint64_t all = 0;
        std::string detail;
        bool severe = false;
        for (const auto &[kind, reasons] : refusals_unlogged) {
            std::vector<std::pair<uint64_t, std::string>> sorted;
            uint64_t total = 0;
            for (const auto &[reason, n] : reasons) {
                sorted.emplace_back(n, reason);
                total += n;
            }
            std::sort(sorted.rbegin(), sorted.rend());
            all += total;
            severe = severe || kind == "database" || kind == "unavailable";
            detail += (detail.empty() ? "" : "; ") + std::to_string(total) + " " + kind + " (";
            for (size_t i = 0; i < sorted.size() && i < 3; i++)
                detail +=
                    (i ? ", " : "") + sorted[i].second + ": " + std::to_string(sorted[i].first);
            detail += sorted.size() > 3 ? ", ...)" : ")";
        }
        logger.log(
            severe ? LogLevel::Error : LogLevel::Warning,
            "refused " + std::to_string(all) + " bearer tokens in the last " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::seconds>(now - logged_at).count()) +
                " s: " + detail);
        refusals_unlogged.clear();
        logged_at = now;
    }

    // ---- the check

    asio::awaitable<AuthResult> check(std::optional<std::string> header, std::string address) {
        auto self = shared_from_this();
        // The trusted issuers (and their scopes) are read before the first challenge, so it
        // names the scopes even right after a start (read once, then cached).
        if (!header && verifier) co_await verifier->issuers();
        if (!header)
            co_return Refusal{
                Refusal::Kind::Unauthorized,
                verifier ? "Unauthorized: send \"Authorization: Bearer <token>\" with an OAuth "
                           "access token for this resource (its metadata names the authorization "
                           "servers), or a token from the database administrator"
                         : "Unauthorized: send \"Authorization: Bearer <token>\" with a token "
                           "from the database administrator (mcp.create_token)",
                challenge("", ""), false};
        std::optional<std::string> token = bearer_token(*header);
        if (!token) {
            count("malformed", "not a Bearer token");
            co_return unauthorized(
                "Unauthorized: the Authorization header is not \"Bearer <token>\"",
                "not a Bearer token");
        }
        bool own = own_token(*token);
        // Anything but pg_mcp's own tokens is an OAuth access token (with --auth oauth), or
        // refused without asking the database.
        if (!own && !verifier) {
            count("unknown_token", "not a pg_mcp token");
            co_return unknown_token();
        }
        std::string hash = sha256_hex(*token);
        Clock::time_point now = Clock::now();
        if (auto found = known.find(hash); found != known.end()) {
            if (now < found->second.fresh_until) co_return found->second.caller;
            if (now < found->second.usable_until) {
                if (!checks.count(hash)) start(hash, *token, own, std::string());
                co_return found->second.caller;
            }
            known.erase(found);
        }
        if (auto found = refused.find(hash); found != refused.end()) {
            if (now < found->second.until) {
                count("repeated", "a token refused a moment ago");
                co_return found->second.refusal;
            }
            refused.erase(found);
        }
        std::shared_ptr<Check> running;
        if (auto found = checks.find(hash); found != checks.end()) {
            running = found->second;
        } else {
            if (std::optional<Refusal> busy = admit(address, own, *token, now)) {
                count("throttled", "over the budget for unknown tokens of one address");
                co_return *busy;
            }
            running = start(hash, *token, own, address);
        }
        // A check ends by itself within its own deadline; this one is a backstop.
        auto me = std::make_shared<Wakeup>(io);
        running->waiters.push_back(me);
        if (!running->done) co_await wait_until(*me, Clock::now() + check_timeout(own) + 2s);
        std::erase(running->waiters, me);
        if (!running->done)
            co_return unavailable("the token could not be checked in time; retry shortly");
        co_return running->result;
    }

    std::chrono::milliseconds check_timeout(bool own) const {
        return own ? std::min(request_timeout, std::chrono::milliseconds(5000))
                   : std::chrono::milliseconds(15000);
    }

    // Whether `address` may have one more unknown token checked now; else the 429 to answer.
    std::optional<Refusal> admit(const std::string &address, bool own, const std::string &token,
                                 Clock::time_point now) {
        auto too_many = [](const std::string &why) {
            return Refusal{
                Refusal::Kind::TooMany, "Too Many Requests: " + why + "; retry shortly", {}, true};
        };
        auto count_of = [](const std::map<std::string, size_t> &counts, const std::string &key) {
            auto found = counts.find(key);
            return found == counts.end() ? size_t{0} : found->second;
        };
        if (count_of(checks_by_address, address) >= kChecksPerAddress)
            return too_many(std::to_string(kChecksPerAddress) +
                            " token checks from this address are in progress");
        std::string prefix = prefix_of(address);
        if (!unknown_budget[address].take(kUnknownRate, kUnknownBurst, now) ||
            !unknown_prefix_budget[prefix].take(kUnknownPrefixRate, kUnknownPrefixBurst, now))
            return too_many("too many unknown tokens from this address");
        bool introspected = !own && std::count(token.begin(), token.end(), '.') != 2;
        if (introspected) {
            if (count_of(introspections_by_address, address) >= kIntrospectionsPerAddress ||
                count_of(introspections_by_prefix, prefix) >= kIntrospectionsPerPrefix ||
                !introspect_budget[address].take(kIntrospectRate, kIntrospectBurst, now) ||
                !prefix_budget[prefix].take(kIntrospectPrefixRate, kIntrospectPrefixBurst, now))
                return too_many("too many opaque tokens to introspect from this address");
        }
        return std::nullopt;
    }

    // Starts the check of a token: a first one, counted against `address`, or (address empty)
    // the re-check of a remembered caller.
    std::shared_ptr<Check> start(const std::string &hash, const std::string &token, bool own,
                                 const std::string &address) {
        auto running = std::make_shared<Check>();
        checks.emplace(hash, running);
        (address.empty() ? rechecks_started : checks_started)++;
        std::string key = "auth/" + std::to_string(checks_started + rechecks_started);
        // Counted against the address from now (not when the coroutine first runs: requests of
        // the same turn of the loop must see each other's checks).
        std::vector<std::shared_ptr<Counted>> counts;
        if (!address.empty()) {
            counts.push_back(std::make_shared<Counted>(checks_by_address, address));
            if (!own && std::count(token.begin(), token.end(), '.') != 2) {
                counts.push_back(std::make_shared<Counted>(introspections_by_address, address));
                counts.push_back(
                    std::make_shared<Counted>(introspections_by_prefix, prefix_of(address)));
            }
        }
        asio::co_spawn(io, run(running, hash, token, own, std::move(counts), key),
                       [self = shared_from_this()](std::exception_ptr) {});
        return running;
    }

    asio::awaitable<void> run(std::shared_ptr<Check> running, std::string hash, std::string token,
                              bool own, std::vector<std::shared_ptr<Counted>> counts,
                              std::string key) {
        auto self = shared_from_this();
        AuthResult result;
        {
            auto counted = std::move(counts);  // released when the check is done
            try {
                // (Not one conditional expression: GCC 12 miscompiles co_await inside one.)
                if (own) {
                    AuthResult got = co_await check_own(hash, key);
                    result = std::move(got);
                } else {
                    AuthResult got = co_await check_oauth(hash, token, key);
                    result = std::move(got);
                }
            } catch (const std::exception &error) {
                count("unavailable", std::string("unexpected failure: ") + error.what());
                result = unavailable("the token could not be checked; retry shortly");
            }
        }
        // A revocation seen while this check ran wins over what it found.
        if (running->superseded && std::holds_alternative<Caller>(result)) {
            auto found = refused.find(hash);
            result = found != refused.end() ? found->second.refusal : unknown_token();
        } else {
            remember(hash, result);
        }
        running->result = std::move(result);
        running->done = true;
        if (auto found = checks.find(hash); found != checks.end() && found->second == running)
            checks.erase(found);
        for (auto &waiter : running->waiters) waiter->fire();
    }

    // What a check found, for the next requests with the token.
    void remember(const std::string &hash, const AuthResult &result) {
        Clock::time_point now = Clock::now();
        if (const Caller *caller = std::get_if<Caller>(&result)) {
            if (known.size() >= kRemembered) prune(true);
            Clock::time_point fresh = now + kFresh, usable = fresh + kStaleUsable;
            if (auto until = expiry.find(hash); until != expiry.end()) {
                fresh = std::min(fresh, until->second);
                usable = std::min(usable, until->second);
                expiry.erase(until);
            }
            known[hash] = Known{*caller, fresh, usable};
            refused.erase(hash);
            return;
        }
        const Refusal &refusal = std::get<Refusal>(result);
        // A re-check that could not be made keeps the caller until its entry is too old; one
        // that refused ends it at once.
        if (refusal.kind != Refusal::Kind::Unauthorized && refusal.kind != Refusal::Kind::Forbidden)
            return;
        known.erase(hash);
        if (refused.size() >= kRemembered) prune(true);
        bool person = refusal.message == unmapped_identity().message;
        refused[hash] = Refused{refusal, now + (person ? kUnmappedPause : kRefusedFor)};
    }
    // OAuth: until when a verified token is valid (its known entry never outlives it).
    std::map<std::string, Clock::time_point> expiry;

    // Asks the database (`submit` sends the work with the reply to give) and waits on the loop
    // until `deadline`: the reply, or nothing when it did not come in time (the work is then
    // cancelled). The one join-and-wait of every check the gate makes.
    asio::awaitable<std::optional<BackendReply>> ask(const std::string &key,
                                                     Clock::time_point deadline,
                                                     const std::function<void(ReplyFn)> &submit) {
        auto got = std::make_shared<std::pair<Wakeup, BackendReply>>(Wakeup(io), BackendReply());
        submit([this, self = shared_from_this(), got](BackendReply r) {
            asio::post(io, [got, r = std::move(r)]() mutable {
                got->second = std::move(r);
                got->first.fire();
            });
        });
        bool in_time = co_await wait_until(got->first, deadline);
        if (!in_time) {
            backend.cancel(key);
            co_return std::nullopt;
        }
        co_return std::move(got->second);
    }

    // A pg_mcp token: the database resolves its hash to a principal.
    asio::awaitable<AuthResult> check_own(std::string hash, std::string key) {
        std::function<void(ReplyFn)> submit = [&](ReplyFn reply) {
            backend.authenticate(key, hash, std::move(reply));
        };
        std::optional<BackendReply> answered =
            co_await ask(key, Clock::now() + check_timeout(true), submit);
        if (!answered) {
            count("unavailable", "the database did not answer a token check in time");
            co_return unavailable("the token could not be checked in time");
        }
        const BackendReply &reply = *answered;
        if (reply.ok && reply.value.is_string()) {
            Caller caller;
            caller.owner = caller.token_hash = caller.principal_token = hash;
            caller.principal = caller.share = reply.value.get<std::string>();
            caller.share_name = "principal \"" + caller.principal + "\"";
            co_return caller;
        }
        if (reply.error_code == error_code::kUnauthorized) {
            count("unknown_token", "unknown, expired or revoked pg_mcp token");
            co_return unknown_token();
        }
        co_return check_failed(reply, "the bearer token");
    }

    // An OAuth access token: verified (signature, issuer, audience, expiry, scopes), then its
    // identity mapped to a principal by the database.
    asio::awaitable<AuthResult> check_oauth(std::string hash, std::string token, std::string key) {
        Verdict verdict = co_await verifier->verify(std::move(token));
        if (verdict.kind == Verdict::Kind::Unavailable) {
            count("unavailable", verdict.reason);
            co_return of_verdict(verdict);
        }
        if (verdict.kind != Verdict::Kind::Ok) {
            count(verdict.kind == Verdict::Kind::InsufficientScope ? "insufficient_scope"
                                                                   : "invalid_token",
                  verdict.reason);
            co_return of_verdict(verdict);
        }
        Clock::time_point now = Clock::now();
        // A person no mapping names was refused a moment ago: not asked again for a while,
        // whatever new token they bring (each refusal is an audit row).
        if (auto found = unmapped.find(verdict.owner);
            found != unmapped.end() && now < found->second) {
            count("unmapped", "an identity no mapping names (asked again soon)");
            co_return unmapped_identity();
        }
        // The database's part of the check (the IdP's came first).
        std::function<void(ReplyFn)> submit = [&](ReplyFn reply) {
            backend.authenticate_identity(key, verdict.identity, std::move(reply));
        };
        std::optional<BackendReply> answered = co_await ask(key, now + 10s, submit);
        if (!answered) {
            count("unavailable", "the database did not map an identity in time");
            co_return unavailable("the access token's identity could not be checked in time");
        }
        const BackendReply &reply = *answered;
        if (reply.ok && reply.value.is_string()) {
            Caller caller;
            caller.owner = caller.share = verdict.owner;
            caller.token_hash = hash;
            caller.identity = verdict.identity;
            caller.principal = reply.value.get<std::string>();
            caller.share_name = "person \"" + verdict.subject + "\" of " + verdict.issuer;
            auto left = std::chrono::duration_cast<Clock::duration>(
                verdict.expires - std::chrono::system_clock::now());
            if (expiry.size() >= kRemembered) expiry.clear();
            expiry[hash] = Clock::now() + left;
            co_return caller;
        }
        if (reply.error_code == error_code::kUnauthorized) {
            count("unmapped", "no identity mapping names subject \"" +
                                  verdict.subject.substr(0, 64) + "\" of " + verdict.issuer);
            if (unmapped.size() >= kRemembered) unmapped.clear();
            unmapped[verdict.owner] = Clock::now() + kUnmappedPause;
            co_return unmapped_identity();
        }
        co_return check_failed(reply, "the access token's identity");
    }

    // Expired entries go (all of a full cache when `full`); full budgets are forgotten.
    void prune(bool full) {
        Clock::time_point now = Clock::now();
        std::erase_if(known, [&](const auto &entry) { return now >= entry.second.usable_until; });
        std::erase_if(refused, [&](const auto &entry) { return now >= entry.second.until; });
        std::erase_if(unmapped, [&](const auto &entry) { return now >= entry.second; });
        std::erase_if(expiry, [&](const auto &entry) { return now >= entry.second; });
        std::erase_if(unknown_budget, [&](const auto &entry) {
            return entry.second.full(kUnknownRate, kUnknownBurst, now);
        });
        std::erase_if(unknown_prefix_budget, [&](const auto &entry) {
            return entry.second.full(kUnknownPrefixRate, kUnknownPrefixBurst, now);
        });
        std::erase_if(introspect_budget, [&](const auto &entry) {
            return entry.second.full(kIntrospectRate, kIntrospectBurst, now);
        });
        std::erase_if(prefix_budget, [&](const auto &entry) {
            return entry.second.full(kIntrospectPrefixRate, kIntrospectPrefixBurst, now);
        });
        if (full && known.size() >= kRemembered) known.clear();
        if (full && refused.size() >= kRemembered) refused.clear();
    }
};

AuthGate::AuthGate(asio::io_context &io, Backend &backend, const Logger &logger,
                   std::optional<OAuthOptions> oauth, std::chrono::milliseconds request_timeout)
    : impl_(std::make_shared<Impl>(io, backend, logger, std::move(oauth), request_timeout)) {}

AuthGate::~AuthGate() {
    impl_->log_refusals(true);
}

asio::awaitable<AuthResult> AuthGate::check(std::optional<std::string> authorization,
                                            std::string address) {
    auto impl = impl_;
    AuthResult result = co_await impl->check(std::move(authorization), std::move(address));
    co_return result;
}

Refusal AuthGate::revoked(const Caller &caller) {
    impl_->known.erase(caller.token_hash);
    if (auto running = impl_->checks.find(caller.token_hash); running != impl_->checks.end())
        running->second->superseded = true;
    Refusal refusal = caller.identity.empty() ? impl_->unknown_token() : impl_->unmapped_identity();
    impl_->count(caller.identity.empty() ? "unknown_token" : "unmapped",
                 "refused by the database during a request");
    impl_->remember(caller.token_hash, refusal);
    return refusal;
}

OAuthVerifier *AuthGate::oauth() const {
    return impl_->verifier.get();
}

void AuthGate::tick() {
    impl_->prune(false);
    impl_->log_refusals(false);
}

std::string AuthGate::metrics() const {
    const Impl &impl = *impl_;
    std::string out;
    out +=
        "# HELP pg_mcp_bridge_auth_refusals_total Requests refused by the authentication "
        "gate, by reason.\n";
    out += "# TYPE pg_mcp_bridge_auth_refusals_total counter\n";
    for (const char *kind : {"malformed", "unknown_token", "invalid_token", "insufficient_scope",
                             "unmapped", "repeated", "throttled", "unavailable", "database"}) {
        auto found = impl.refusals_total.find(kind);
        out += std::string("pg_mcp_bridge_auth_refusals_total{reason=\"") + kind + "\"} " +
               std::to_string(found == impl.refusals_total.end() ? 0 : found->second) + "\n";
    }
    out +=
        "# HELP pg_mcp_bridge_auth_checks_total Token checks made: first checks of tokens the "
        "bridge had not seen, and re-checks of remembered ones.\n";
    out += "# TYPE pg_mcp_bridge_auth_checks_total counter\n";
    out += "pg_mcp_bridge_auth_checks_total{kind=\"first\"} " +
           std::to_string(impl.checks_started) + "\n";
    out += "pg_mcp_bridge_auth_checks_total{kind=\"recheck\"} " +
           std::to_string(impl.rechecks_started) + "\n";
    if (impl.verifier) out += impl.verifier->metrics();
    return out;
}

}  // namespace pg_mcp::bridge
