#include "auth.hpp"
#include "oauth.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace pg_mcp::bridge;

TEST(Auth, Sha256MatchesKnownVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Auth, BearerTokenParsesOnlyTheBearerScheme) {
    EXPECT_EQ(bearer_token("Bearer pgmcp_abc-DEF_123"), "pgmcp_abc-DEF_123");
    EXPECT_EQ(bearer_token("bearer   tok=  "), "tok=");
    EXPECT_EQ(bearer_token("BEARER a.b~c+/"), "a.b~c+/");
    EXPECT_FALSE(bearer_token("Basic dXNlcjpwYXNz"));
    EXPECT_FALSE(bearer_token("Bearer"));
    EXPECT_FALSE(bearer_token("Bearer "));
    EXPECT_FALSE(bearer_token("Bearer a b"));
    EXPECT_FALSE(bearer_token("Bearer tok\"en"));
    EXPECT_FALSE(bearer_token("Bearer " + std::string(5000, 'a')));
}

TEST(OAuth, UrlsAndLoopbackHosts) {
    std::optional<Url> url = parse_url("https://login.example.com/realms/main?x=1");
    ASSERT_TRUE(url);
    EXPECT_TRUE(url->https);
    EXPECT_EQ(url->host, "login.example.com");
    EXPECT_EQ(url->port, "443");
    EXPECT_EQ(url->target, "/realms/main?x=1");
    url = parse_url("http://[::1]:8080");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->host, "::1");
    EXPECT_EQ(url->target, "/");
    for (const char *bad : {"ftp://x", "https://user@host/", "https://host/#frag",
                            "https://h:99999/", "https:///path", "https://host /"})
        EXPECT_FALSE(parse_url(bad)) << bad;
    EXPECT_TRUE(is_loopback_host("localhost"));
    EXPECT_TRUE(is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("::1"));
    EXPECT_FALSE(is_loopback_host("127.evil.example"));
    EXPECT_FALSE(is_loopback_host("10.0.0.1"));
}

TEST(OAuth, Base64UrlIsStrict) {
    EXPECT_EQ(base64url_decode("eyJhIjoxfQ"), std::optional<std::string>("{\"a\":1}"));
    EXPECT_FALSE(base64url_decode("eyJhIjoxfQ=="));  // padding is not base64url (RFC 7515)
    EXPECT_FALSE(base64url_decode("ab+/"));
    EXPECT_FALSE(base64url_decode("a"));
}

TEST(OAuth, ClaimChecksRefuseEachBrokenRule) {
    const std::string resource = "https://mcp.example.com/mcp";
    const double now = 1'800'000'000;
    nlohmann::json good = {{"iss", "https://idp"},
                           {"sub", "alice"},
                           {"aud", resource},
                           {"exp", now + 60},
                           {"scope", "openid mcp:tools"}};
    const std::vector<std::string> scopes = {"mcp:tools"};
    const auto leeway = std::chrono::seconds(30);
    EXPECT_FALSE(check_claims(good, {resource}, scopes, now, leeway));
    auto refused = [&](nlohmann::json claims) {
        return check_claims(claims, {resource}, scopes, now, leeway);
    };
    nlohmann::json claims = good;
    claims["exp"] = now - 31;
    EXPECT_EQ(refused(claims)->kind, Verdict::Kind::Invalid);
    claims["exp"] = now - 29;  // within the leeway
    EXPECT_FALSE(refused(claims));
    claims = good;
    claims.erase("exp");
    EXPECT_EQ(refused(claims)->kind, Verdict::Kind::Invalid);
    claims = good;
    claims["nbf"] = now + 60;
    EXPECT_EQ(refused(claims)->kind, Verdict::Kind::Invalid);
    claims = good;
    claims["aud"] = {"https://other.example.com/mcp"};
    EXPECT_EQ(refused(claims)->kind, Verdict::Kind::Invalid);
    claims["aud"] = {"https://other.example.com/mcp", resource};
    EXPECT_FALSE(refused(claims));
    claims.erase("aud");
    EXPECT_EQ(refused(claims)->reason, "the token names no audience (aud)");
    claims["aud"] = 7;
    EXPECT_NE(refused(claims)->reason.find("aud: not a string"), std::string::npos);
    claims = good;
    claims["sub"] = "";
    EXPECT_EQ(refused(claims)->kind, Verdict::Kind::Invalid);
    claims = good;
    claims["scope"] = "openid";
    std::optional<Verdict> scope = refused(claims);
    ASSERT_TRUE(scope);
    EXPECT_EQ(scope->kind, Verdict::Kind::InsufficientScope);
    EXPECT_EQ(scope->scope, "mcp:tools");
    claims.erase("scope");
    claims["scp"] = {"mcp:tools"};  // as some providers name it
    EXPECT_FALSE(refused(claims));
    // Times that cannot be a time point: huge, negative, not a number (an expiry of 1e300
    // once overflowed when turned into one).
    for (nlohmann::json bad : {nlohmann::json(1e300), nlohmann::json(-1),
                               nlohmann::json("9999999999"), nlohmann::json(9.0e9 + 1)})
        for (const char *name : {"exp", "nbf", "iat"}) {
            claims = good;
            claims[name] = bad;
            std::optional<Verdict> verdict = refused(claims);
            ASSERT_TRUE(verdict) << name << " " << bad;
            EXPECT_NE(verdict->reason.find("not a valid time"), std::string::npos)
                << verdict->reason;
        }
    // A NUL in any claim (an introspection answer can carry one): refused, not passed on.
    claims = good;
    claims["name"] = std::string("a\0b", 3);
    EXPECT_EQ(refused(claims)->reason, "the token holds a NUL character");
}

// A provider that names the resource otherwise (Microsoft Entra v2.0: the API's client ID, a
// GUID): accepted only when configured, compared exactly, one match enough in an array.
TEST(OAuth, AudiencesAreTheConfiguredNamesExactly) {
    const std::string guid = "5e1bd7a1-2c8e-4b9a-9d55-0c1f4b1e6d20";
    const double now = 1'800'000'000;
    nlohmann::json claims = {{"iss", "https://login.microsoftonline.com/tenant/v2.0"},
                             {"sub", "pairwise-subject"},
                             {"aud", guid},
                             {"exp", now + 60},
                             {"scp", "mcp.tools User.Read"}};
    const auto leeway = std::chrono::seconds(30);
    std::optional<Verdict> refused =
        check_claims(claims, {"https://mcp.example.com/mcp"}, {"mcp.tools"}, now, leeway);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->kind, Verdict::Kind::Invalid);
    // The operator learns what the token names and what to configure.
    EXPECT_NE(refused->reason.find("aud: " + guid), std::string::npos) << refused->reason;
    EXPECT_NE(refused->reason.find("token_audiences"), std::string::npos) << refused->reason;
    EXPECT_FALSE(check_claims(claims, {guid, "api://pg-mcp"}, {"mcp.tools"}, now, leeway));
    for (const char *near : {"5E1BD7A1-2C8E-4B9A-9D55-0C1F4B1E6D20", "5e1bd7a1", "api://pg-mcp/"})
        EXPECT_TRUE(check_claims(claims, {near}, {"mcp.tools"}, now, leeway)) << near;
    claims["aud"] = {"https://other", "api://pg-mcp"};
    EXPECT_FALSE(check_claims(claims, {guid, "api://pg-mcp"}, {"mcp.tools"}, now, leeway));
    // What a token names reaches a header and the log as printable ASCII, bounded.
    claims["aud"] = std::string(500, 'a') + "\"\r\n";
    refused = check_claims(claims, {guid}, {}, now, leeway);
    ASSERT_TRUE(refused);
    EXPECT_LT(refused->reason.size(), 400u);
    EXPECT_EQ(refused->reason.find_first_of("\"\r\n"), std::string::npos);
}
