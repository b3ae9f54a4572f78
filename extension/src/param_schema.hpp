// Tool parameters: their definitions (as a DBA writes them), the JSON Schema agents see, and
// validation of an agent's arguments. Pure C++ (nlohmann_json), unit-tested on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pg_mcp {

enum class ParamType { String, Integer, Number, Boolean };

// Constraints on one scalar value (a parameter, or the items of an array parameter).
struct ScalarSpec {
    ParamType type = ParamType::String;
    std::string format;  // "", "email", "uuid", "date", "date-time"
    std::optional<int64_t> min_length, max_length;
    std::optional<std::string> pattern;
    std::optional<double> minimum, maximum;
    std::vector<nlohmann::json> enum_values;
};

struct ParamSpec {
    std::string name;
    std::string description;
    bool required = true;
    std::optional<nlohmann::json> default_value;
    bool sensitive = false;
    std::string from_principal;  // non-empty: bound from this key of the principal's context
    std::string from_claim;      // non-empty: bound from this claim of the caller's OAuth identity
    bool bound() const { return !from_principal.empty() || !from_claim.empty(); }
    bool is_array = false;
    std::optional<int64_t> min_items, max_items;
    ScalarSpec scalar;  // the value's type, or the items' type when is_array
};

// Parses and checks a parameters definition: a JSON array of objects, one per parameter, in
// the order the SQL's positions will use. Throws DefinitionError naming the parameter and key.
std::vector<ParamSpec> parse_param_definitions(const std::string &json_text);

// The definitions in canonical form (defaults filled in), as stored in the catalog.
nlohmann::json definitions_to_json(const std::vector<ParamSpec> &specs);

// MCP inputSchema: JSON Schema 2020-12, type object, additionalProperties false. Parameters
// bound from the principal or a claim are not part of it.
nlohmann::json input_schema(const std::vector<ParamSpec> &specs);

// The PostgreSQL type a parameter is bound as, e.g. "bigint", "date", "text[]".
std::string sql_type_name(const ParamSpec &spec);

// One bound value: NULL, a scalar in PostgreSQL text form, or an array of those.
struct BoundValue {
    bool is_null = true;
    bool from_argument = false;      // false: the default (or NULL) was used
    std::string text;                // scalar, when !is_array
    std::vector<std::string> items;  // array elements, when is_array
};

struct ValidationResult {
    std::vector<std::string> errors;  // one line per broken rule; empty when valid
    std::string identity_error;       // a principal-bound value is missing or invalid
    std::vector<BoundValue> values;   // one per spec, in order, when valid
};

// Tests a value against a pattern; supplied by the caller (the extension uses PostgreSQL's
// regular expressions).
using PatternMatcher = std::function<bool(const std::string &pattern, const std::string &value)>;

// Validates arguments (JSON text of an object, or empty/"null" for none) against specs, and
// binds principal-bound parameters from principal_context (JSON object text; empty when the
// caller has no principal) and claim-bound ones from claims (the verified claims of the
// caller's OAuth identity, JSON object text; empty without one). Arguments can never supply
// a bound parameter.
ValidationResult validate_arguments(const std::vector<ParamSpec> &specs,
                                    const std::string &arguments_json,
                                    const PatternMatcher &matches,
                                    const std::string &principal_context = {},
                                    const std::string &claims = {});

// The arguments with every sensitive parameter's value replaced by "[redacted]".
std::string redact_arguments(const std::vector<ParamSpec> &specs,
                             const std::string &arguments_json);

}  // namespace pg_mcp
