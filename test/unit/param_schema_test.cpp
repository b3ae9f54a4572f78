// Parameter definitions, JSON Schema generation and argument validation.
#include <gtest/gtest.h>

#include "definition_error.hpp"
#include "param_schema.hpp"

using namespace pg_mcp;
using nlohmann::json;

namespace {

bool std_match(const std::string &pattern, const std::string &value) {
    // Enough for the tests: the extension uses PostgreSQL's regular expressions.
    return pattern == "^[a-z]+$"
               ? !value.empty() &&
                     value.find_first_not_of("abcdefghijklmnopqrstuvwxyz") == std::string::npos
               : true;
}

ValidationResult validate(const std::string &definitions, const std::string &arguments) {
    return validate_arguments(parse_param_definitions(definitions), arguments, std_match);
}

std::string first_error(const std::string &definitions, const std::string &arguments) {
    auto result = validate(definitions, arguments);
    return result.errors.empty() ? "" : result.errors.front();
}

std::string definition_error(const std::string &definitions) {
    try {
        parse_param_definitions(definitions);
    } catch (const DefinitionError &error) {
        return error.what();
    }
    return "";
}

}  // namespace

TEST(ParamSchema, InputSchemaIsStrictJsonSchema) {
    auto specs = parse_param_definitions(R"([
        {"name": "email", "type": "string", "format": "email", "description": "Who"},
        {"name": "limit", "type": "integer", "minimum": 1, "maximum": 50, "default": 10},
        {"name": "tags", "type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 2}
    ])");
    json expected = json::parse(R"({
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email", "description": "Who"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 2}
        },
        "required": ["email", "tags"],
        "additionalProperties": false
    })");
    EXPECT_EQ(input_schema(specs), expected);
    EXPECT_EQ(sql_type_name(specs[0]), "text");
    EXPECT_EQ(sql_type_name(specs[1]), "bigint");
    EXPECT_EQ(sql_type_name(specs[2]), "text[]");
}

TEST(ParamSchema, SensitiveIsNotPartOfTheSchema) {
    auto specs =
        parse_param_definitions(R"([{"name": "pin", "type": "string", "sensitive": true}])");
    EXPECT_FALSE(input_schema(specs)["properties"]["pin"].contains("sensitive"));
    EXPECT_EQ(redact_arguments(specs, R"({"pin": "1234"})"), R"({"pin":"[redacted]"})");
    EXPECT_EQ(redact_arguments(specs, R"({"other": 1})"), R"({"other": 1})");
}

TEST(ParamSchema, TypesMapToPostgresTypes) {
    auto specs = parse_param_definitions(R"([
        {"name": "u", "type": "string", "format": "uuid"},
        {"name": "d", "type": "string", "format": "date"},
        {"name": "t", "type": "string", "format": "date-time"},
        {"name": "n", "type": "number"},
        {"name": "b", "type": "boolean"}])");
    EXPECT_EQ(sql_type_name(specs[0]), "uuid");
    EXPECT_EQ(sql_type_name(specs[1]), "date");
    EXPECT_EQ(sql_type_name(specs[2]), "timestamp with time zone");
    EXPECT_EQ(sql_type_name(specs[3]), "numeric");
    EXPECT_EQ(sql_type_name(specs[4]), "boolean");
}

TEST(ParamSchema, ValidArgumentsBindAsText) {
    auto result = validate(R"([{"name": "i", "type": "integer"}, {"name": "n", "type": "number"},
                               {"name": "b", "type": "boolean"}, {"name": "s", "type": "string", "required": false},
                               {"name": "a", "type": "array", "items": {"type": "integer"}}])",
                           R"({"i": 9007199254740993, "n": 0.1, "b": true, "a": [1, 2]})");
    ASSERT_TRUE(result.errors.empty());
    EXPECT_EQ(result.values[0].text, "9007199254740993");  // exact beyond 2^53
    EXPECT_EQ(result.values[1].text, "0.1");
    EXPECT_EQ(result.values[2].text, "true");
    EXPECT_TRUE(result.values[3].is_null);
    EXPECT_EQ(result.values[4].items, (std::vector<std::string>{"1", "2"}));
}

TEST(ParamSchema, DefaultsApplyWhenOmitted) {
    auto result = validate(R"([{"name": "lim", "type": "integer", "default": 7}])", "{}");
    ASSERT_TRUE(result.errors.empty());
    EXPECT_FALSE(result.values[0].is_null);
    EXPECT_EQ(result.values[0].text, "7");
}

TEST(ParamSchema, EveryRuleIsNamed) {
    const char *s =
        R"([{"name": "s", "type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"}])";
    EXPECT_EQ(first_error(s, R"({"s": "a"})"),
              "parameter \"s\" must be at least 2 characters long, got 1");
    EXPECT_EQ(first_error(s, R"({"s": "abcde"})"),
              "parameter \"s\" must be at most 4 characters long, got 5");
    EXPECT_EQ(first_error(s, R"({"s": "AB"})"),
              "parameter \"s\" must match the pattern \"^[a-z]+$\", got \"AB\" (a string)");
    // Lengths count characters, not bytes.
    EXPECT_EQ(first_error(R"([{"name": "s", "type": "string", "maxLength": 2}])", R"({"s": "éé"})"),
              "");
    const char *i = R"([{"name": "i", "type": "integer", "minimum": 1, "maximum": 10}])";
    EXPECT_EQ(first_error(i, R"({"i": 0})"), "parameter \"i\" must be at least 1, got 0");
    EXPECT_EQ(first_error(i, R"({"i": 11})"), "parameter \"i\" must be at most 10, got 11");
    EXPECT_EQ(first_error(i, R"({"i": 1.5})"),
              "parameter \"i\" must be an integer, got 1.5 (a number)");
    EXPECT_EQ(first_error(i, R"({"i": 18446744073709551615})"),
              "parameter \"i\" is out of range for a 64-bit integer");
    EXPECT_EQ(first_error(i, R"({"i": 3.0})"), "");
    EXPECT_EQ(first_error(i, R"({"j": 3})"), "unknown parameter \"j\"; this tool accepts: i");
    EXPECT_EQ(first_error("[]", R"({"j": 3})"),
              "unknown parameter \"j\"; this tool takes no parameters");
    EXPECT_EQ(first_error(i, "[]"), "arguments must be a JSON object, got [] (an array)");
    EXPECT_EQ(first_error(i, "{}"), "missing required parameter \"i\"");
    EXPECT_EQ(first_error(R"([{"name": "s", "type": "string"}])", R"({"s": "a\u0000b"})"),
              "parameter \"s\" must not contain NUL characters");
}

TEST(ParamSchema, DeepNestingIsRefused) {
    std::string deep = R"({"s": )" + std::string(10000, '[') + std::string(10000, ']') + "}";
    EXPECT_EQ(first_error(R"([{"name": "s", "type": "string"}])", deep),
              "arguments nest more than 64 levels deep");
    EXPECT_EQ(redact_arguments(parse_param_definitions(
                                   R"([{"name": "s", "type": "string", "sensitive": true}])"),
                               deep)
                  .find("1234"),
              std::string::npos);
}

TEST(ParamSchema, Formats) {
    auto check = [](const char *format, const char *value) {
        std::string defs =
            std::string(R"([{"name": "v", "type": "string", "format": ")") + format + "\"}]";
        return first_error(defs, json({{"v", value}}).dump()).empty();
    };
    EXPECT_TRUE(check("email", "a.b+c@example.co.uk"));
    EXPECT_FALSE(check("email", "a@b"));
    EXPECT_FALSE(check("email", "a b@example.com"));
    EXPECT_FALSE(check("email", "@example.com"));
    EXPECT_FALSE(check("email", "a@@example.com"));
    EXPECT_TRUE(check("uuid", "123e4567-e89b-12d3-a456-426614174000"));
    EXPECT_FALSE(check("uuid", "123e4567e89b12d3a456426614174000"));
    EXPECT_TRUE(check("date", "2024-02-29"));
    EXPECT_FALSE(check("date", "2023-02-29"));
    EXPECT_FALSE(check("date", "2024-13-01"));
    EXPECT_FALSE(check("date", "0000-01-01"));
    EXPECT_TRUE(check("date-time", "2024-02-29T23:59:59Z"));
    EXPECT_TRUE(check("date-time", "2024-02-29T23:59:59.123+05:30"));
    EXPECT_FALSE(check("date-time", "2024-02-29 23:59:59"));
    EXPECT_FALSE(check("date-time", "2024-02-29T24:00:00Z"));
    EXPECT_FALSE(check("date-time", "2024-02-29T23:59:59"));
}

TEST(ParamSchema, DefinitionErrorsNameTheProblem) {
    EXPECT_EQ(definition_error(R"({"name": "a"})"),
              "invalid parameter definition: parameters must be a JSON array of objects, got "
              "{\"name\":\"a\"} (an object)");
    EXPECT_EQ(
        definition_error(R"([{"name": "a", "type": "string", "minLength": 5, "maxLength": 1}])"),
        "invalid definition of parameter \"a\": \"minLength\" is greater than \"maxLength\"");
    EXPECT_EQ(definition_error(R"([{"name": "a", "type": "integer", "minimum": 0.5}])"),
              "invalid definition of parameter \"a\": \"minimum\" and \"maximum\" of an integer "
              "must be integers");
    EXPECT_EQ(definition_error(R"([{"name": "a", "type": "string", "enum": []}])"),
              "invalid definition of parameter \"a\": \"enum\" must be a non-empty array, got [] "
              "(an array)");
    EXPECT_EQ(
        definition_error(
            R"([{"name": "a", "type": "string", "format": "email", "enum": ["nope"]}])"),
        "invalid definition of parameter \"a\": an \"enum\" value must be an email address such as "
        "name@example.com, got \"nope\" (a string)");
    EXPECT_EQ(definition_error("not json"), "parameters is not valid JSON");
    EXPECT_EQ(definition_error("[]"), "");
    EXPECT_EQ(definition_error(""), "");
}

TEST(ParamSchema, CanonicalDefinitionsRoundTrip) {
    auto specs = parse_param_definitions(
        R"([{"name": "x", "type": "array", "items": {"type": "number", "minimum": 0.5},
                                              "sensitive": true, "required": false}])");
    json canonical = definitions_to_json(specs);
    auto again = parse_param_definitions(canonical.dump());
    EXPECT_EQ(definitions_to_json(again), canonical);
    EXPECT_EQ(canonical[0]["required"], false);
    EXPECT_EQ(canonical[0]["sensitive"], true);
}

TEST(ParamSchema, ClaimBoundParametersComeOnlyFromTheClaims) {
    auto specs = parse_param_definitions(
        R"([{"name": "me", "type": "string", "from_claim": "sub"},
            {"name": "limit", "type": "integer", "required": false, "default": 10}])");
    EXPECT_FALSE(input_schema(specs)["properties"].contains("me"));
    EXPECT_EQ(definitions_to_json(specs)[0]["from_claim"], "sub");
    // Bound from the verified claims.
    auto bound = validate_arguments(specs, "{}", std_match, "", R"({"sub": "alice"})");
    ASSERT_TRUE(bound.errors.empty());
    ASSERT_TRUE(bound.identity_error.empty());
    EXPECT_EQ(bound.values[0].text, "alice");
    // Arguments cannot supply it, whatever the claims say.
    auto overridden =
        validate_arguments(specs, R"({"me": "bob"})", std_match, "", R"({"sub": "alice"})");
    ASSERT_EQ(overridden.errors.size(), 1u);
    EXPECT_NE(overridden.errors[0].find("cannot be supplied"), std::string::npos);
    // No identity, or no such claim: an identity error, never the model's value.
    EXPECT_NE(validate_arguments(specs, "{}", std_match).identity_error.find("no OAuth identity"),
              std::string::npos);
    EXPECT_NE(validate_arguments(specs, "{}", std_match, "", R"({"iss": "x"})")
                  .identity_error.find("no claim \"sub\""),
              std::string::npos);
    // A claim of the wrong type is refused like a wrong argument.
    auto typed =
        parse_param_definitions(R"([{"name": "n", "type": "integer", "from_claim": "level"}])");
    EXPECT_FALSE(validate_arguments(typed, "{}", std_match, "", R"({"level": "high"})")
                     .identity_error.empty());
    EXPECT_NE(definition_error(
                  R"([{"name": "me", "type": "string", "from_claim": "sub", "required": true}])")
                  .find("takes no"),
              std::string::npos);
}
