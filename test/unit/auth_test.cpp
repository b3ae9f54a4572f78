#include "auth.hpp"

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

TEST(Auth, TokenCacheForgetsAfterItsLifetime) {
    TokenCache cache(std::chrono::milliseconds(50));
    EXPECT_FALSE(cache.find("h1"));
    cache.remember("h1", "acme");
    EXPECT_EQ(cache.find("h1"), "acme");
    cache.forget("h1");
    EXPECT_FALSE(cache.find("h1"));
    cache.remember("h2", "globex");
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    EXPECT_FALSE(cache.find("h2"));
}
