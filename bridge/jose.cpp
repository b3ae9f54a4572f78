// Strict compact-JWS parsing, public JWK import and signature verification with OpenSSL EVP.
#include "jose.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <array>

#include "json_rpc.hpp"

namespace pg_mcp::bridge::jose {

using nlohmann::json;

namespace {

// Each header or payload: this many bytes of JSON at most (a token is bounded anyway).
constexpr size_t kMaxSegmentJson = 12 * 1024;
// An RSA modulus of this many bits at least (RFC 7518 3.3) and at most (verification cost).
constexpr int kMinRsaBits = 2048, kMaxRsaBits = 8192;

int alphabet_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

// OpenSSL objects, freed on every path.
struct Free {
    void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
    void operator()(EVP_PKEY_CTX *p) const { EVP_PKEY_CTX_free(p); }
    void operator()(EVP_MD_CTX *p) const { EVP_MD_CTX_free(p); }
    void operator()(OSSL_PARAM_BLD *p) const { OSSL_PARAM_BLD_free(p); }
    void operator()(OSSL_PARAM *p) const { OSSL_PARAM_free(p); }
    void operator()(BIGNUM *p) const { BN_free(p); }
    void operator()(ECDSA_SIG *p) const { ECDSA_SIG_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

// OpenSSL's error queue is per thread and read by TLS: whatever a failed check left there goes.
struct ClearErrors {
    ~ClearErrors() { ERR_clear_error(); }
};

// A JSON object from a decoded segment, or null.
json object_of(const std::string &text) {
    if (text.size() > kMaxSegmentJson || nests_too_deep(text)) return json();
    json value = json::parse(text, nullptr, false);
    return value.is_object() ? value : json();
}

std::string member(const json &object, const char *name) {
    auto found = object.find(name);
    return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

// A base64url member of a JWK, decoded, with leading zero bytes kept (RFC 7518 6.2.1.2 fixes
// EC coordinates' length; RSA's n and e are unsigned big-endian integers).
std::optional<std::string> bytes_member(const json &jwk, const char *name, size_t limit) {
    auto found = jwk.find(name);
    if (found == jwk.end() || !found->is_string()) return std::nullopt;
    return base64url_decode(found->get_ref<const std::string &>(), limit);
}

struct Curve {
    const char *jwk_name, *openssl_name, *alg;
    size_t coordinate;  // bytes of x, y, r and s
};
constexpr std::array<Curve, 3> kCurves = {{{"P-256", "prime256v1", "ES256", 32},
                                           {"P-384", "secp384r1", "ES384", 48},
                                           {"P-521", "secp521r1", "ES512", 66}}};

const Curve *curve_named(const std::string &name) {
    for (const Curve &curve : kCurves)
        if (name == curve.jwk_name) return &curve;
    return nullptr;
}

const EVP_MD *digest_of(const std::string &alg) {
    if (alg.size() != 5) return nullptr;
    std::string bits = alg.substr(2);
    if (bits == "256") return EVP_sha256();
    if (bits == "384") return EVP_sha384();
    if (bits == "512") return EVP_sha512();
    return nullptr;
}

// Builds a public key from OpenSSL parameters.
Owned<EVP_PKEY> key_from(const char *type, OSSL_PARAM *params) {
    Owned<EVP_PKEY_CTX> context(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    if (!context || EVP_PKEY_fromdata_init(context.get()) != 1) return nullptr;
    EVP_PKEY *made = nullptr;
    if (EVP_PKEY_fromdata(context.get(), &made, EVP_PKEY_PUBLIC_KEY, params) != 1) return nullptr;
    Owned<EVP_PKEY> key(made);
    Owned<EVP_PKEY_CTX> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
    return key;
}

// An ECDSA signature as JWS carries it (r and s, fixed length) in the DER form OpenSSL checks.
std::optional<std::string> ecdsa_der(std::string_view raw, size_t coordinate) {
    if (raw.size() != 2 * coordinate) return std::nullopt;
    const auto *bytes = reinterpret_cast<const unsigned char *>(raw.data());
    Owned<BIGNUM> r(BN_bin2bn(bytes, static_cast<int>(coordinate), nullptr));
    Owned<BIGNUM> s(BN_bin2bn(bytes + coordinate, static_cast<int>(coordinate), nullptr));
    Owned<ECDSA_SIG> signature(ECDSA_SIG_new());
    if (!r || !s || !signature) return std::nullopt;
    if (ECDSA_SIG_set0(signature.get(), r.get(), s.get()) != 1) return std::nullopt;
    r.release();  // owned by the signature now
    s.release();
    int length = i2d_ECDSA_SIG(signature.get(), nullptr);
    if (length <= 0) return std::nullopt;
    std::string der(static_cast<size_t>(length), '\0');
    auto *out = reinterpret_cast<unsigned char *>(der.data());
    if (i2d_ECDSA_SIG(signature.get(), &out) != length) return std::nullopt;
    return der;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view text, size_t limit) {
    if (text.size() > limit || text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    uint32_t bits = 0;
    int count = 0;
    for (char c : text) {
        int value = alphabet_value(static_cast<unsigned char>(c));
        if (value < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<uint32_t>(value);
        if (++count == 4) {
            out += static_cast<char>((bits >> 16) & 0xff);
            out += static_cast<char>((bits >> 8) & 0xff);
            out += static_cast<char>(bits & 0xff);
            bits = 0;
            count = 0;
        }
    }
    if (count == 2) {  // one byte: the last character's low 4 bits must be zero
        if (bits & 0xf) return std::nullopt;
        out += static_cast<char>((bits >> 4) & 0xff);
    } else if (count == 3) {  // two bytes: the low 2 bits must be zero
        if (bits & 0x3) return std::nullopt;
        out += static_cast<char>((bits >> 10) & 0xff);
        out += static_cast<char>((bits >> 2) & 0xff);
    }
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                     (static_cast<uint8_t>(bytes[i + 1]) << 8) | static_cast<uint8_t>(bytes[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
    }
    if (bytes.size() - i == 1) {
        uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
    } else if (bytes.size() - i == 2) {
        uint32_t v =
            (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
    }
    return out;
}

std::optional<CompactJws> parse_compact(std::string_view token, std::string &problem) {
    problem = "the token is not a valid JWT";
    if (token.size() > kMaxTokenBytes) {
        problem = "the token is too long";
        return std::nullopt;
    }
    size_t first = token.find('.');
    size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        return std::nullopt;
    std::optional<std::string> header_text = base64url_decode(token.substr(0, first));
    std::optional<std::string> payload_text =
        base64url_decode(token.substr(first + 1, second - first - 1));
    std::optional<std::string> signature = base64url_decode(token.substr(second + 1));
    if (!header_text || !payload_text || !signature) {
        problem = "the token is not a valid JWT (a segment is not base64url)";
        return std::nullopt;
    }
    CompactJws jws;
    jws.header = object_of(*header_text);
    jws.payload = object_of(*payload_text);
    if (jws.header.is_null() || jws.payload.is_null()) return std::nullopt;
    if (pg_mcp::bridge::contains_nul(jws.header) || pg_mcp::bridge::contains_nul(jws.payload)) {
        problem = "the token holds a NUL character";
        return std::nullopt;
    }
    jws.signing_input = std::string(token.substr(0, second));
    jws.signature = std::move(*signature);
    problem.clear();
    return jws;
}

std::optional<PublicKey> PublicKey::from_jwk(const json &jwk, std::string &problem) {
    ClearErrors clear;
    if (!jwk.is_object()) {
        problem = "a key is not an object";
        return std::nullopt;
    }
    PublicKey key;
    key.kty_ = member(jwk, "kty");
    key.kid_ = member(jwk, "kid");
    key.alg_ = member(jwk, "alg");
    if (key.kid_.size() > kMaxKeyIdBytes || key.alg_.size() > 16) {
        problem = "a key's kid or alg is too long";
        return std::nullopt;
    }
    Owned<OSSL_PARAM_BLD> build(OSSL_PARAM_BLD_new());
    if (!build) {
        problem = "out of memory";
        return std::nullopt;
    }
    Owned<EVP_PKEY> made;
    if (key.kty_ == "RSA") {
        std::optional<std::string> n = bytes_member(jwk, "n", kMaxRsaBits / 6 + 4);
        std::optional<std::string> e = bytes_member(jwk, "e", 12);
        if (!n || !e || n->empty() || e->empty()) {
            problem = "an RSA key's n or e is missing or not base64url";
            return std::nullopt;
        }
        Owned<BIGNUM> modulus(BN_bin2bn(reinterpret_cast<const unsigned char *>(n->data()),
                                        static_cast<int>(n->size()), nullptr));
        Owned<BIGNUM> exponent(BN_bin2bn(reinterpret_cast<const unsigned char *>(e->data()),
                                         static_cast<int>(e->size()), nullptr));
        if (!modulus || !exponent) {
            problem = "out of memory";
            return std::nullopt;
        }
        int bits = BN_num_bits(modulus.get());
        if (bits < kMinRsaBits || bits > kMaxRsaBits) {
            problem = "an RSA key has " + std::to_string(bits) + " bits (2048 to 8192 accepted)";
            return std::nullopt;
        }
        if (!BN_is_odd(exponent.get()) || BN_num_bits(exponent.get()) < 2 ||
            BN_num_bits(exponent.get()) > 64) {
            problem = "an RSA key's exponent is not acceptable";
            return std::nullopt;
        }
        if (OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, modulus.get()) != 1 ||
            OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, exponent.get()) != 1) {
            problem = "out of memory";
            return std::nullopt;
        }
        Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(build.get()));
        if (params) made = key_from("RSA", params.get());
    } else if (key.kty_ == "EC") {
        const Curve *curve = curve_named(member(jwk, "crv"));
        if (curve == nullptr) {
            problem = "an EC key's curve is not P-256, P-384 or P-521";
            return std::nullopt;
        }
        std::optional<std::string> x = bytes_member(jwk, "x", 96);
        std::optional<std::string> y = bytes_member(jwk, "y", 96);
        if (!x || !y || x->size() != curve->coordinate || y->size() != curve->coordinate) {
            problem = "an EC key's x or y is missing or of the wrong length";
            return std::nullopt;
        }
        std::string point = "\x04" + *x + *y;  // uncompressed (SEC 1 2.3.3)
        if (OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                            curve->openssl_name, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                             point.size()) != 1) {
            problem = "out of memory";
            return std::nullopt;
        }
        Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(build.get()));
        if (params) made = key_from("EC", params.get());
        key.curve_ = curve->jwk_name;
    } else {
        problem = "a key of type \"" + key.kty_.substr(0, 16) + "\" is not for signatures";
        return std::nullopt;
    }
    if (!made) {
        problem = "a " + key.kty_ + " key is not a valid public key";
        return std::nullopt;
    }
    key.key_ = std::shared_ptr<void>(made.release(),
                                     [](void *p) { EVP_PKEY_free(static_cast<EVP_PKEY *>(p)); });
    return key;
}

bool PublicKey::suits(const std::string &alg) const {
    if (!alg_.empty() && alg_ != alg) return false;
    if (alg == "RS256" || alg == "RS384" || alg == "RS512" || alg == "PS256" || alg == "PS384" ||
        alg == "PS512")
        return kty_ == "RSA";
    for (const Curve &curve : kCurves)
        if (alg == curve.alg) return kty_ == "EC" && curve_ == curve.jwk_name;
    return false;
}

bool PublicKey::verify(const std::string &alg, std::string_view input,
                       std::string_view signature) const {
    ClearErrors clear;
    if (!key_ || !suits(alg)) return false;
    auto *pkey = static_cast<EVP_PKEY *>(key_.get());
    const EVP_MD *digest = digest_of(alg);
    if (digest == nullptr) return false;
    std::string der;
    if (kty_ == "EC") {
        const Curve *curve = curve_named(curve_);
        std::optional<std::string> converted =
            curve ? ecdsa_der(signature, curve->coordinate) : std::nullopt;
        if (!converted) return false;
        der = std::move(*converted);
        signature = der;
    } else if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(pkey))) {
        return false;
    }
    Owned<EVP_MD_CTX> context(EVP_MD_CTX_new());
    EVP_PKEY_CTX *key_context = nullptr;  // owned by `context`
    if (!context || EVP_DigestVerifyInit(context.get(), &key_context, digest, nullptr, pkey) != 1)
        return false;
    if (alg[0] == 'P' &&
        (EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, RSA_PSS_SALTLEN_DIGEST) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(key_context, digest) != 1))
        return false;
    return EVP_DigestVerify(context.get(),
                            reinterpret_cast<const unsigned char *>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char *>(input.data()),
                            input.size()) == 1;
}

}  // namespace pg_mcp::bridge::jose
