// JOSE (bridge/jose.cpp): strict base64url, compact JWS parsing, JWK import and signature
// verification against keys made here with OpenSSL, and the hostile inputs that once reached a
// library that aborted on them.
#include <gtest/gtest.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jose.hpp"

using namespace pg_mcp::bridge::jose;
using nlohmann::json;

namespace {

std::string bn_bytes(const BIGNUM *bn, size_t width = 0) {
    size_t size = width ? width : static_cast<size_t>(BN_num_bytes(bn));
    std::string out(size, '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(out.data()), static_cast<int>(size));
    return out;
}

struct TestKey {
    EVP_PKEY *key = nullptr;
    json jwk;
    ~TestKey() { EVP_PKEY_free(key); }
};

void make_rsa(TestKey &made, unsigned bits = 2048) {
    made.key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
    BIGNUM *n = nullptr, *e = nullptr;
    EVP_PKEY_get_bn_param(made.key, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(made.key, OSSL_PKEY_PARAM_RSA_E, &e);
    made.jwk = {{"kty", "RSA"},
                {"kid", "r1"},
                {"n", base64url_encode(bn_bytes(n))},
                {"e", base64url_encode(bn_bytes(e))}};
    BN_free(n);
    BN_free(e);
}

void make_ec(TestKey &made, const char *curve, const char *jwk_curve, size_t width) {
    made.key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve);
    BIGNUM *x = nullptr, *y = nullptr;
    EVP_PKEY_get_bn_param(made.key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(made.key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    made.jwk = {{"kty", "EC"},
                {"kid", "e1"},
                {"crv", jwk_curve},
                {"x", base64url_encode(bn_bytes(x, width))},
                {"y", base64url_encode(bn_bytes(y, width))}};
    BN_free(x);
    BN_free(y);
}

std::string sign(EVP_PKEY *key, const std::string &alg, const std::string &input) {
    const EVP_MD *md = alg.substr(2) == "256"   ? EVP_sha256()
                       : alg.substr(2) == "384" ? EVP_sha384()
                                                : EVP_sha512();
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    EVP_PKEY_CTX *key_context = nullptr;
    EVP_DigestSignInit(context, &key_context, md, nullptr, key);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t length = 0;
    EVP_DigestSign(context, nullptr, &length, reinterpret_cast<const unsigned char *>(input.data()),
                   input.size());
    std::string signature(length, '\0');
    EVP_DigestSign(context, reinterpret_cast<unsigned char *>(signature.data()), &length,
                   reinterpret_cast<const unsigned char *>(input.data()), input.size());
    signature.resize(length);
    EVP_MD_CTX_free(context);
    if (alg[0] != 'E') return signature;
    // DER to JWS's fixed-length r || s.
    size_t width = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
    const auto *der = reinterpret_cast<const unsigned char *>(signature.data());
    ECDSA_SIG *parsed = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size()));
    std::string raw =
        bn_bytes(ECDSA_SIG_get0_r(parsed), width) + bn_bytes(ECDSA_SIG_get0_s(parsed), width);
    ECDSA_SIG_free(parsed);
    return raw;
}

std::string token(EVP_PKEY *key, const std::string &alg, const json &claims) {
    std::string input = base64url_encode(json{{"alg", alg}, {"kid", "k"}}.dump()) + "." +
                        base64url_encode(claims.dump());
    return input + "." + base64url_encode(sign(key, alg, input));
}

}  // namespace

TEST(Base64url, AcceptsExactlyOneSpellingOfEachValue) {
    EXPECT_EQ(base64url_decode("eyJhIjoxfQ"), std::optional<std::string>("{\"a\":1}"));
    EXPECT_EQ(base64url_decode(""), std::optional<std::string>(""));
    EXPECT_EQ(base64url_decode("_-8"), std::optional<std::string>("\xff\xef"));
    EXPECT_EQ(base64url_encode("\xff\xef"), "_-8");
    // AR and AAB have bits set after their last byte: another spelling of AQ and AAA.
    for (const std::string &bad :
         {std::string("A==="), std::string("A"), std::string("AAAAA"), std::string("eyJhIjoxfQ=="),
          std::string("ab+/"), std::string("ab cd"), std::string("AB\n"), std::string("AB="),
          std::string("AB\0C", 4), std::string("AR"), std::string("AAB")})
        EXPECT_FALSE(base64url_decode(bad)) << bad;
    EXPECT_FALSE(base64url_decode(std::string(kMaxTokenBytes + 4, 'A')));
}

TEST(CompactJws, RefusesEveryMalformedSegmentBeforeAnyLibrarySeesIt) {
    std::string header = base64url_encode(R"({"alg":"RS256"})");
    std::string payload = base64url_encode(R"({"iss":"https://issuer.example"})");
    std::string problem;
    ASSERT_TRUE(parse_compact(header + "." + payload + ".AAAA", problem)) << problem;
    // The signature that made a JOSE library abort, and padding appended to a valid one.
    EXPECT_FALSE(parse_compact(header + "." + payload + ".A===", problem));
    EXPECT_NE(problem.find("base64url"), std::string::npos);
    EXPECT_FALSE(parse_compact(header + "." + payload + ".AAAA==", problem));
    EXPECT_FALSE(parse_compact(header + "." + payload, problem));
    EXPECT_FALSE(parse_compact(header + "." + payload + ".AAAA.AAAA", problem));
    EXPECT_FALSE(parse_compact(base64url_encode("[1]") + "." + payload + ".", problem));
    EXPECT_FALSE(parse_compact(header + "." + base64url_encode("{\"a\":") + ".", problem));
    EXPECT_FALSE(
        parse_compact(header + "." + base64url_encode(R"({"sub":"a\u0000b"})") + ".", problem));
    EXPECT_EQ(problem, "the token holds a NUL character");
    EXPECT_FALSE(
        parse_compact(header + "." + base64url_encode(std::string(200, '[')) + ".", problem));
    EXPECT_FALSE(parse_compact(std::string(kMaxTokenBytes + 1, 'A'), problem));
    EXPECT_EQ(problem, "the token is too long");
}

TEST(PublicKey, VerifiesEachAlgorithmAndRefusesWhatIsNotSigned) {
    TestKey rsa, p256, p384, p521;
    make_rsa(rsa);
    make_ec(p256, "P-256", "P-256", 32);
    make_ec(p384, "P-384", "P-384", 48);
    make_ec(p521, "P-521", "P-521", 66);
    json claims = {{"sub", "dana"}};
    struct Case {
        TestKey *key;
        const char *alg;
    };
    for (Case c : {Case{&rsa, "RS256"}, Case{&rsa, "RS384"}, Case{&rsa, "RS512"},
                   Case{&rsa, "PS256"}, Case{&rsa, "PS384"}, Case{&rsa, "PS512"},
                   Case{&p256, "ES256"}, Case{&p384, "ES384"}, Case{&p521, "ES512"}}) {
        std::string problem;
        std::optional<PublicKey> key = PublicKey::from_jwk(c.key->jwk, problem);
        ASSERT_TRUE(key) << c.alg << ": " << problem;
        std::optional<CompactJws> jws = parse_compact(token(c.key->key, c.alg, claims), problem);
        ASSERT_TRUE(jws) << problem;
        EXPECT_TRUE(key->verify(c.alg, jws->signing_input, jws->signature)) << c.alg;
        // Another payload, a flipped bit, a truncated or empty signature: refused.
        EXPECT_FALSE(key->verify(c.alg, jws->signing_input + "x", jws->signature)) << c.alg;
        std::string flipped = jws->signature;
        flipped[flipped.size() / 2] ^= 1;
        EXPECT_FALSE(key->verify(c.alg, jws->signing_input, flipped)) << c.alg;
        EXPECT_FALSE(key->verify(c.alg, jws->signing_input, jws->signature.substr(1))) << c.alg;
        EXPECT_FALSE(key->verify(c.alg, jws->signing_input, "")) << c.alg;
        EXPECT_FALSE(key->verify("HS256", jws->signing_input, jws->signature)) << c.alg;
        EXPECT_FALSE(key->verify("none", jws->signing_input, "")) << c.alg;
    }
    // A key is for its own algorithms only: an ES256 key does not check ES384, RSA not ES256.
    std::string problem;
    EXPECT_FALSE(PublicKey::from_jwk(p256.jwk, problem)->suits("ES384"));
    EXPECT_FALSE(PublicKey::from_jwk(rsa.jwk, problem)->suits("ES256"));
    json pinned = rsa.jwk;
    pinned["alg"] = "RS256";
    EXPECT_FALSE(PublicKey::from_jwk(pinned, problem)->suits("PS256"));
}

TEST(PublicKey, RefusesKeysThatAreNotValidPublicKeys) {
    TestKey rsa, small, p256;
    make_rsa(rsa);
    make_rsa(small, 1024);
    make_ec(p256, "P-256", "P-256", 32);
    std::string problem;
    EXPECT_FALSE(PublicKey::from_jwk(small.jwk, problem));
    EXPECT_NE(problem.find("1024 bits"), std::string::npos) << problem;
    EXPECT_FALSE(PublicKey::from_jwk(json{{"kty", "oct"}, {"k", "AAAA"}}, problem));
    EXPECT_FALSE(PublicKey::from_jwk(json::array(), problem));
    json bad = rsa.jwk;
    bad["n"] = "A===";
    EXPECT_FALSE(PublicKey::from_jwk(bad, problem));
    bad["n"] = 12;
    EXPECT_FALSE(PublicKey::from_jwk(bad, problem));
    bad = rsa.jwk;
    bad["e"] = base64url_encode(std::string("\x02", 1));  // even exponent
    EXPECT_FALSE(PublicKey::from_jwk(bad, problem));
    // A point that is not on the curve, and coordinates of the wrong length.
    json off = p256.jwk;
    std::string y = *base64url_decode(off["y"].get<std::string>());
    y.back() ^= 1;
    off["y"] = base64url_encode(y);
    EXPECT_FALSE(PublicKey::from_jwk(off, problem));
    off = p256.jwk;
    off["x"] = base64url_encode(std::string(31, 'a'));
    EXPECT_FALSE(PublicKey::from_jwk(off, problem));
    off = p256.jwk;
    off["crv"] = "secp256k1";
    EXPECT_FALSE(PublicKey::from_jwk(off, problem));
}
