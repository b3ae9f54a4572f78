// Fuzz target: a bearer token as the OAuth verifier takes it apart before any network or
// database work (the header's token, strict compact JWS, signature checks against real keys,
// the claims' checks), the same bytes as a published JWK, and as a session ticket: as sent, and
// as the sealed payload of one (what opening parses once the seal holds).
#include <openssl/evp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "auth.hpp"
#include "jose.hpp"
#include "json_rpc.hpp"
#include "session_ticket.hpp"
#include "token_claims.hpp"

using namespace pg_mcp::bridge;
using nlohmann::json;

namespace {

std::vector<jose::PublicKey> keys;

// Public JWKs of keys made at start: an RSA and a P-256 key.
json public_jwk(EVP_PKEY *key, bool rsa) {
    auto bytes = [](const char *name, EVP_PKEY *k, size_t width) {
        BIGNUM *bn = nullptr;
        EVP_PKEY_get_bn_param(k, name, &bn);
        std::string out(width ? width : static_cast<size_t>(BN_num_bytes(bn)), '\0');
        BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(out.data()),
                     static_cast<int>(out.size()));
        BN_free(bn);
        return jose::base64url_encode(out);
    };
    if (rsa)
        return {{"kty", "RSA"}, {"kid", "r"}, {"n", bytes("n", key, 0)}, {"e", bytes("e", key, 0)}};
    return {{"kty", "EC"},
            {"kid", "e"},
            {"crv", "P-256"},
            {"x", bytes("qx", key, 32)},
            {"y", bytes("qy", key, 32)}};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    for (bool rsa : {true, false}) {
        EVP_PKEY *key = rsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                            : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        std::string problem;
        std::optional<jose::PublicKey> imported =
            jose::PublicKey::from_jwk(public_jwk(key, rsa), problem);
        if (!imported) __builtin_trap();
        keys.push_back(std::move(*imported));
        EVP_PKEY_free(key);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string input(reinterpret_cast<const char *>(data), size);
    std::optional<std::string> token = bearer_token("Bearer " + input);
    std::string problem;
    std::optional<jose::CompactJws> jws = jose::parse_compact(token ? *token : input, problem);
    if (jws) {
        std::string alg = jws->header.value("alg", json()).is_string()
                              ? jws->header["alg"].get<std::string>()
                              : std::string();
        for (const jose::PublicKey &key : keys)
            if (key.suits(alg)) (void)key.verify(alg, jws->signing_input, jws->signature);
        (void)check_claims(jws->payload, {"https://mcp.example.com/mcp"}, {"mcp:tools"}, 1.8e9,
                           std::chrono::seconds(30));
    }
    (void)jose::base64url_decode(input);
    static const SessionKeys tickets({std::string(32, 'k')});
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1796000000));
    (void)tickets.open(input, "owner", now, std::chrono::seconds(86400));
    (void)tickets.open(tickets.seal_payload(input), "owner", now, std::chrono::seconds(86400));
    if (!nests_too_deep(input)) {
        json value = json::parse(input, nullptr, false);
        if (value.is_object()) {
            (void)jose::PublicKey::from_jwk(value, problem);
            (void)check_claims(value, {"https://mcp.example.com/mcp", "api://x"}, {}, 1.8e9,
                               std::chrono::seconds(30));
        }
    }
    return 0;
}
