// Named parameter rewriting: what is and is not a :name in PostgreSQL SQL.
#include <gtest/gtest.h>

#include "definition_error.hpp"
#include "named_params.hpp"

using pg_mcp::DefinitionError;
using pg_mcp::rewrite_named_parameters;

TEST(NamedParams, RewritesInDeclarationOrder) {
    auto out =
        rewrite_named_parameters("SELECT * FROM t WHERE b = :b AND a = :a OR b = :b", {"a", "b"});
    EXPECT_EQ(out.sql, "SELECT * FROM t WHERE b = $2 AND a = $1 OR b = $2");
    EXPECT_TRUE(out.undeclared.empty());
    EXPECT_TRUE(out.unused.empty());
}

TEST(NamedParams, CastsAreNotParameters) {
    auto out = rewrite_named_parameters("SELECT :x::int, a::text, :x :: int", {"x"});
    EXPECT_EQ(out.sql, "SELECT $1::int, a::text, $1 :: int");
}

TEST(NamedParams, QuotedTextIsLeftAlone) {
    auto out = rewrite_named_parameters(
        "SELECT ':a', \"col:a\", E'\\':a', $$ :a $$, $tag$ :a $tag$, 'it''s :a' -- :a\n, :a /* :a "
        "/* :a */ */",
        {"a"});
    EXPECT_EQ(out.sql,
              "SELECT ':a', \"col:a\", E'\\':a', $$ :a $$, $tag$ :a $tag$, 'it''s :a' -- :a\n, $1 "
              "/* :a /* :a */ */");
}

TEST(NamedParams, BackslashIsOrdinaryOutsideEStrings) {
    // In a standard string a backslash does not escape the closing quote.
    auto out = rewrite_named_parameters("SELECT 'a\\' , :a", {"a"});
    EXPECT_EQ(out.sql, "SELECT 'a\\' , $1");
}

TEST(NamedParams, DollarInIdentifierIsNotAQuote) {
    auto out = rewrite_named_parameters("SELECT a$b FROM t WHERE x = :x", {"x"});
    EXPECT_EQ(out.sql, "SELECT a$b FROM t WHERE x = $1");
}

TEST(NamedParams, ReportsUndeclaredAndUnused) {
    auto out = rewrite_named_parameters("SELECT :a, :typo, :typo", {"a", "spare"});
    EXPECT_EQ(out.undeclared, std::vector<std::string>{"typo"});
    EXPECT_EQ(out.unused, std::vector<std::string>{"spare"});
}

TEST(NamedParams, ArraySliceNeedsSpaces) {
    EXPECT_EQ(rewrite_named_parameters("SELECT a[1:2]", {}).undeclared.size(), 0u);
    EXPECT_EQ(rewrite_named_parameters("SELECT a[lo : hi]", {}).undeclared.size(), 0u);
    EXPECT_EQ(rewrite_named_parameters("SELECT a[lo:hi]", {}).undeclared,
              std::vector<std::string>{"hi"});
}

TEST(NamedParams, PositionalParametersAreRejected) {
    try {
        rewrite_named_parameters("SELECT * FROM t WHERE id = $1", {});
        FAIL() << "expected DefinitionError";
    } catch (const DefinitionError &error) {
        EXPECT_EQ(error.sqlstate(), "42P02");
        EXPECT_NE(std::string(error.hint()).find(":email"), std::string::npos);
    }
}

TEST(NamedParams, UnterminatedQuotesDoNotOverrun) {
    EXPECT_EQ(rewrite_named_parameters("SELECT 'abc", {}).sql, "SELECT 'abc");
    EXPECT_EQ(rewrite_named_parameters("SELECT $$abc", {}).sql, "SELECT $$abc");
    EXPECT_EQ(rewrite_named_parameters("SELECT /* abc", {}).sql, "SELECT /* abc");
    EXPECT_EQ(rewrite_named_parameters("SELECT E'\\", {}).sql, "SELECT E'\\");
    EXPECT_EQ(rewrite_named_parameters(":", {}).sql, ":");
}
