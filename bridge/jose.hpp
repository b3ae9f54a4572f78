// JOSE for access tokens: compact JWS (RFC 7515) parsed strictly, public JWKs (RFC 7517) imported
// and signatures (RFC 7518: RS*, PS*, ES*) verified with OpenSSL's EVP interface. Every input
// is checked here before any library sees it; nothing here throws, asserts or aborts on input.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pg_mcp::bridge::jose {

// Bounds on what is parsed at all: a token, a key's members, a key set.
constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr size_t kMaxKeyIdBytes = 256;

// Strict base64url (RFC 7515 2, RFC 4648 5): only the alphabet, no padding, no whitespace, a
// length that is not 1 modulo 4, and zero bits after the last byte (one text per value), at
// most `limit` characters; nullopt otherwise.
std::optional<std::string> base64url_decode(std::string_view text, size_t limit = kMaxTokenBytes);
std::string base64url_encode(std::string_view bytes);

// A compact JWS, split and decoded. Its header and payload are JSON objects.
struct CompactJws {
    nlohmann::json header;
    nlohmann::json payload;
    std::string signing_input;  // the first two segments as sent, with their dot
    std::string signature;      // decoded
};

// Parses `token` as a compact JWS: three segments, each strict base64url, header and payload
// JSON objects of bounded size and depth whose strings hold no NUL. nullopt with `problem`
// (a short reason for the client: no token text in it) when it is not one.
std::optional<CompactJws> parse_compact(std::string_view token, std::string &problem);

// A public key of an issuer's key set.
class PublicKey {
  public:
    // Imports an RSA (n, e: 2048 to 8192 bits) or EC (P-256, P-384, P-521; the point checked to
    // be on its curve) public JWK. Private members are ignored; symmetric keys are refused.
    static std::optional<PublicKey> from_jwk(const nlohmann::json &jwk, std::string &problem);

    const std::string &kid() const { return kid_; }
    const std::string &kty() const { return kty_; }  // "RSA" or "EC"
    const std::string &alg() const { return alg_; }  // as published ("" when not)
    // Whether this key can check signatures of `alg` (its type, and for EC its curve).
    bool suits(const std::string &alg) const;
    // Whether `signature` is `alg`'s signature of `input` by this key. False for any algorithm
    // outside RS256..ES512 and for a signature of the wrong length.
    bool verify(const std::string &alg, std::string_view input, std::string_view signature) const;

  private:
    std::shared_ptr<void> key_;  // EVP_PKEY, freed with EVP_PKEY_free
    std::string kid_, kty_, alg_, curve_;
};

}  // namespace pg_mcp::bridge::jose
