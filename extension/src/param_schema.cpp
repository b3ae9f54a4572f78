#include "param_schema.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "definition_error.hpp"
#include "json_nesting.hpp"

namespace pg_mcp {

using nlohmann::json;

namespace {

constexpr const char *kInvalidParameterValue = "22023";

const char *type_name(ParamType type) {
    switch (type) {
        case ParamType::String:
            return "string";
        case ParamType::Integer:
            return "integer";
        case ParamType::Number:
            return "number";
        case ParamType::Boolean:
            return "boolean";
    }
    return "string";
}

[[noreturn]] void definition_error(const std::string &param, const std::string &what,
                                   const std::string &hint = {}) {
    throw DefinitionError(kInvalidParameterValue,
                          param.empty()
                              ? "invalid parameter definition: " + what
                              : "invalid definition of parameter \"" + param + "\": " + what,
                          {}, hint);
}

const char *json_kind(const json &value);

// A short rendering of a JSON value for messages: the value and its JSON type.
std::string describe(const json &value) {
    std::string text = value.dump();
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    return text + " (" + json_kind(value) + ")";
}

const char *json_kind(const json &value) {
    return value.is_string()           ? "a string"
           : value.is_boolean()        ? "a boolean"
           : value.is_number_integer() ? "an integer"
           : value.is_number()         ? "a number"
           : value.is_array()          ? "an array"
           : value.is_object()         ? "an object"
                                       : "null";
}

// For sensitive parameters: the JSON type only, never the value.
std::string describe_hidden(const json &value) {
    return std::string(json_kind(value)) + " (value hidden: sensitive parameter)";
}

bool is_identifier(const std::string &name) {
    if (name.empty() || name.size() > 63) return false;
    if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

size_t utf8_length(const std::string &text) {
    return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

bool all_digits(const std::string &s, size_t from, size_t count) {
    if (from + count > s.size()) return false;
    for (size_t i = from; i < from + count; ++i)
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
}

int number_at(const std::string &s, size_t from, size_t count) {
    return std::stoi(s.substr(from, count));
}

bool valid_date(const std::string &s, size_t at = 0) {
    if (!(all_digits(s, at, 4) && s.size() >= at + 10 && s[at + 4] == '-' &&
          all_digits(s, at + 5, 2) && s[at + 7] == '-' && all_digits(s, at + 8, 2)))
        return false;
    int year = number_at(s, at, 4), month = number_at(s, at + 5, 2), day = number_at(s, at + 8, 2);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1) return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= days[month - 1] + (month == 2 && leap ? 1 : 0);
}

// RFC 3339 date-time: 2025-01-31T12:00:00(.fraction)(Z|+hh:mm|-hh:mm)
bool valid_date_time(const std::string &s) {
    if (s.size() < 20 || !valid_date(s, 0) || !(s[10] == 'T' || s[10] == 't')) return false;
    if (!(all_digits(s, 11, 2) && s[13] == ':' && all_digits(s, 14, 2) && s[16] == ':' &&
          all_digits(s, 17, 2)))
        return false;
    if (number_at(s, 11, 2) > 23 || number_at(s, 14, 2) > 59 || number_at(s, 17, 2) > 59)
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        if (i == start) return false;
    }
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == s.size();
    if (i < s.size() && (s[i] == '+' || s[i] == '-'))
        return s.size() == i + 6 && all_digits(s, i + 1, 2) && s[i + 3] == ':' &&
               all_digits(s, i + 4, 2) && number_at(s, i + 1, 2) <= 23 &&
               number_at(s, i + 4, 2) <= 59;
    return false;
}

bool valid_uuid(const std::string &s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

bool valid_email(const std::string &s) {
    if (s.size() > 254) return false;
    size_t at = s.find('@');
    if (at == std::string::npos || at == 0 || s.find('@', at + 1) != std::string::npos)
        return false;
    std::string domain = s.substr(at + 1);
    size_t dot = domain.find('.');
    if (dot == std::string::npos || dot == 0 || domain.back() == '.' ||
        domain.find("..") != std::string::npos)
        return false;
    return std::none_of(s.begin(), s.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) ||
               std::iscntrl(static_cast<unsigned char>(c));
    });
}

const char *format_description(const std::string &format) {
    if (format == "email") return "an email address such as name@example.com";
    if (format == "uuid") return "a UUID such as 123e4567-e89b-12d3-a456-426614174000";
    if (format == "date") return "a date written YYYY-MM-DD";
    return "a date-time in RFC 3339 form such as 2025-01-31T12:00:00Z";
}

bool format_matches(const std::string &format, const std::string &value) {
    if (format == "email") return valid_email(value);
    if (format == "uuid") return valid_uuid(value);
    if (format == "date") return value.size() == 10 && valid_date(value);
    if (format == "date-time") return valid_date_time(value);
    return true;
}

std::optional<int64_t> read_count(const json &object, const char *key, const std::string &param) {
    if (!object.contains(key)) return std::nullopt;
    const json &value = object.at(key);
    if (!value.is_number_integer() || value.get<int64_t>() < 0)
        definition_error(param, std::string("\"") + key +
                                    "\" must be a non-negative integer, got " + describe(value));
    return value.get<int64_t>();
}

std::optional<double> read_bound(const json &object, const char *key, const std::string &param) {
    if (!object.contains(key)) return std::nullopt;
    const json &value = object.at(key);
    if (!value.is_number())
        definition_error(param,
                         std::string("\"") + key + "\" must be a number, got " + describe(value));
    return value.get<double>();
}

// Reads the type and its constraints from `object` (a parameter, or its "items").
ScalarSpec parse_scalar(const json &object, const std::string &param, const std::string &type) {
    ScalarSpec spec;
    if (type == "string")
        spec.type = ParamType::String;
    else if (type == "integer")
        spec.type = ParamType::Integer;
    else if (type == "number")
        spec.type = ParamType::Number;
    else if (type == "boolean")
        spec.type = ParamType::Boolean;
    else
        definition_error(param, "unknown type \"" + type + "\"",
                         "Use one of: string, integer, number, boolean, array.");

    auto only_for = [&](const char *key, bool allowed, const char *types) {
        if (object.contains(key) && !allowed)
            definition_error(param, std::string("\"") + key + "\" applies only to " + types +
                                        ", not to type " + type);
    };
    bool is_string = spec.type == ParamType::String;
    bool is_numeric = spec.type == ParamType::Integer || spec.type == ParamType::Number;
    only_for("format", is_string, "strings");
    only_for("minLength", is_string, "strings");
    only_for("maxLength", is_string, "strings");
    only_for("pattern", is_string, "strings");
    only_for("minimum", is_numeric, "integers and numbers");
    only_for("maximum", is_numeric, "integers and numbers");
    only_for("enum", spec.type != ParamType::Boolean, "strings, integers and numbers");

    if (object.contains("format")) {
        const json &format = object.at("format");
        std::string value = format.is_string() ? format.get<std::string>() : "";
        if (value != "email" && value != "uuid" && value != "date" && value != "date-time")
            definition_error(param, "unknown format " + describe(format),
                             "Use one of: email, uuid, date, date-time.");
        spec.format = value;
    }
    spec.min_length = read_count(object, "minLength", param);
    spec.max_length = read_count(object, "maxLength", param);
    if (spec.min_length && spec.max_length && *spec.min_length > *spec.max_length)
        definition_error(param, "\"minLength\" is greater than \"maxLength\"");
    if (object.contains("pattern")) {
        const json &pattern = object.at("pattern");
        if (!pattern.is_string() || pattern.get<std::string>().empty())
            definition_error(param,
                             "\"pattern\" must be a non-empty string, got " + describe(pattern));
        spec.pattern = pattern.get<std::string>();
    }
    spec.minimum = read_bound(object, "minimum", param);
    spec.maximum = read_bound(object, "maximum", param);
    if (spec.minimum && spec.maximum && *spec.minimum > *spec.maximum)
        definition_error(param, "\"minimum\" is greater than \"maximum\"");
    if (spec.type == ParamType::Integer) {
        for (auto bound : {spec.minimum, spec.maximum})
            if (bound && std::floor(*bound) != *bound)
                definition_error(param,
                                 "\"minimum\" and \"maximum\" of an integer must be integers");
    }
    if (object.contains("enum")) {
        const json &values = object.at("enum");
        if (!values.is_array() || values.empty())
            definition_error(param, "\"enum\" must be a non-empty array, got " + describe(values));
        spec.enum_values.assign(values.begin(), values.end());
    }
    return spec;
}

void put_number(json &schema, const char *key, double value, ParamType type) {
    if (type == ParamType::Integer || std::floor(value) == value)
        schema[key] = static_cast<int64_t>(value);
    else
        schema[key] = value;
}

json scalar_schema(const ScalarSpec &spec) {
    json schema = {{"type", type_name(spec.type)}};
    if (!spec.format.empty()) schema["format"] = spec.format;
    if (spec.min_length) schema["minLength"] = *spec.min_length;
    if (spec.max_length) schema["maxLength"] = *spec.max_length;
    if (spec.pattern) schema["pattern"] = *spec.pattern;
    if (spec.minimum) put_number(schema, "minimum", *spec.minimum, spec.type);
    if (spec.maximum) put_number(schema, "maximum", *spec.maximum, spec.type);
    if (!spec.enum_values.empty()) schema["enum"] = spec.enum_values;
    return schema;
}

// Checks one value against a scalar spec. Returns the error text (without the parameter's
// name) or empty, and sets `text` to the value's PostgreSQL text form. With `hide`, messages
// name the value's JSON type but never the value (sensitive parameters).
std::string check_scalar(const ScalarSpec &spec, const json &value, const PatternMatcher &matches,
                         std::string &text, bool hide = false) {
    auto describe = [hide](const json &v) {
        return hide ? describe_hidden(v) : pg_mcp::describe(v);
    };
    switch (spec.type) {
        case ParamType::String: {
            if (!value.is_string()) return std::string("must be a string, got ") + describe(value);
            text = value.get<std::string>();
            size_t length = utf8_length(text);
            if (spec.min_length && length < static_cast<size_t>(*spec.min_length))
                return "must be at least " + std::to_string(*spec.min_length) +
                       " characters long, got " + std::to_string(length);
            if (spec.max_length && length > static_cast<size_t>(*spec.max_length))
                return "must be at most " + std::to_string(*spec.max_length) +
                       " characters long, got " + std::to_string(length);
            if (text.find('\0') != std::string::npos) return "must not contain NUL characters";
            if (!spec.format.empty() && !format_matches(spec.format, text))
                return std::string("must be ") + format_description(spec.format) + ", got " +
                       describe(value);
            if (spec.pattern && !matches(*spec.pattern, text))
                return "must match the pattern " + json(*spec.pattern).dump() + ", got " +
                       describe(value);
            break;
        }
        case ParamType::Integer: {
            double number = 0;
            if (value.is_number_integer() && !value.is_number_unsigned()) {
                text = std::to_string(value.get<int64_t>());
                number = static_cast<double>(value.get<int64_t>());
            } else if (value.is_number_unsigned()) {
                if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
                    return "is out of range for a 64-bit integer";
                text = std::to_string(value.get<int64_t>());
                number = static_cast<double>(value.get<int64_t>());
            } else if (value.is_number_float() && std::isfinite(value.get<double>()) &&
                       std::floor(value.get<double>()) == value.get<double>() &&
                       std::fabs(value.get<double>()) < 9.2e18) {
                number = value.get<double>();
                text = std::to_string(static_cast<int64_t>(number));
            } else {
                return std::string("must be an integer, got ") + describe(value);
            }
            if (spec.minimum && number < *spec.minimum)
                return "must be at least " + json(static_cast<int64_t>(*spec.minimum)).dump() +
                       (hide ? "" : ", got " + text);
            if (spec.maximum && number > *spec.maximum)
                return "must be at most " + json(static_cast<int64_t>(*spec.maximum)).dump() +
                       (hide ? "" : ", got " + text);
            break;
        }
        case ParamType::Number: {
            if (!value.is_number() || !std::isfinite(value.get<double>()))
                return std::string("must be a number, got ") + describe(value);
            text = value.dump();
            double number = value.get<double>();
            if (spec.minimum && number < *spec.minimum)
                return "must be at least " + json(*spec.minimum).dump() +
                       (hide ? "" : ", got " + text);
            if (spec.maximum && number > *spec.maximum)
                return "must be at most " + json(*spec.maximum).dump() +
                       (hide ? "" : ", got " + text);
            break;
        }
        case ParamType::Boolean:
            if (!value.is_boolean())
                return std::string("must be a boolean, got ") + describe(value);
            text = value.get<bool>() ? "true" : "false";
            break;
    }
    if (!spec.enum_values.empty() &&
        std::none_of(spec.enum_values.begin(), spec.enum_values.end(),
                     [&](const json &allowed) { return allowed == value; })) {
        std::string allowed = json(spec.enum_values).dump();
        return "must be one of " + allowed + ", got " + describe(value);
    }
    return {};
}

// Checks a whole parameter value (scalar or array). Returns the error text or empty.
std::string check_value(const ParamSpec &spec, const json &value, const PatternMatcher &matches,
                        BoundValue &bound) {
    bound.is_null = false;
    bool hide = spec.sensitive;
    if (!spec.is_array) return check_scalar(spec.scalar, value, matches, bound.text, hide);
    if (!value.is_array())
        return std::string("must be an array, got ") +
               (hide ? describe_hidden(value) : describe(value));
    if (spec.min_items && value.size() < static_cast<size_t>(*spec.min_items))
        return "must have at least " + std::to_string(*spec.min_items) + " items, got " +
               std::to_string(value.size());
    if (spec.max_items && value.size() > static_cast<size_t>(*spec.max_items))
        return "must have at most " + std::to_string(*spec.max_items) + " items, got " +
               std::to_string(value.size());
    bound.items.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
        std::string text;
        std::string error = check_scalar(spec.scalar, value[i], matches, text, hide);
        if (!error.empty()) return "item " + std::to_string(i) + " " + error;
        bound.items.push_back(std::move(text));
    }
    return {};
}

const std::set<std::string> kParameterKeys = {
    "name",    "type",     "description", "required", "default",        "sensitive",
    "items",   "minItems", "maxItems",    "format",   "minLength",      "maxLength",
    "pattern", "minimum",  "maximum",     "enum",     "from_principal", "from_claim"};
const std::set<std::string> kItemKeys = {"type",    "format",  "minLength", "maxLength",
                                         "pattern", "minimum", "maximum",   "enum"};

void reject_unknown_keys(const json &object, const std::set<std::string> &known,
                         const std::string &param, const char *where) {
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (known.count(it.key()) == 0) {
            std::string list;
            for (const auto &key : known) list += (list.empty() ? "" : ", ") + key;
            definition_error(param, std::string("unknown key \"") + it.key() + "\" in " + where,
                             "Known keys: " + list + ".");
        }
    }
}

// JSON nesting deeper than this is refused before parsing: serializing or describing a value
// recurses once per level, and nothing a tool takes nests more than a few levels.
constexpr int kMaxNesting = 64;

bool nests_too_deep(const std::string &text) {
    return json_nests_deeper_than(text, kMaxNesting);
}

json parse_json(const std::string &text, const char *what) {
    if (nests_too_deep(text))
        throw DefinitionError("54000", std::string(what) + " nest more than 64 levels deep");
    try {
        return json::parse(text);
    } catch (const json::exception &error) {
        throw DefinitionError("22P02", std::string(what) + " is not valid JSON", error.what());
    }
}

}  // namespace

std::vector<ParamSpec> parse_param_definitions(const std::string &json_text) {
    json definitions = json_text.empty() ? json::array() : parse_json(json_text, "parameters");
    if (definitions.is_null()) definitions = json::array();
    if (!definitions.is_array())
        definition_error("",
                         "parameters must be a JSON array of objects, got " + describe(definitions),
                         R"(Example: '[{"name": "email", "type": "string", "format": "email"}]')");
    std::vector<ParamSpec> specs;
    std::set<std::string> names;
    for (const json &definition : definitions) {
        if (!definition.is_object())
            definition_error("",
                             "each parameter must be a JSON object, got " + describe(definition));
        if (!definition.contains("name") || !definition.at("name").is_string())
            definition_error("", "every parameter needs a \"name\" (a string)");
        ParamSpec spec;
        spec.name = definition.at("name").get<std::string>();
        if (!is_identifier(spec.name))
            definition_error(spec.name, "the name is not a valid identifier",
                             "Names start with a letter or underscore, continue with letters, "
                             "digits or underscores, and have at most 63 characters.");
        if (!names.insert(spec.name).second)
            definition_error(spec.name, "the name is declared twice");
        reject_unknown_keys(definition, kParameterKeys, spec.name, "a parameter");
        if (!definition.contains("type") || !definition.at("type").is_string())
            definition_error(spec.name, "\"type\" is missing or not a string",
                             "Use one of: string, integer, number, boolean, array.");
        std::string type = definition.at("type").get<std::string>();
        if (definition.contains("description")) {
            if (!definition.at("description").is_string())
                definition_error(spec.name, "\"description\" must be a string");
            spec.description = definition.at("description").get<std::string>();
        }
        if (definition.contains("from_principal")) {
            const json &key = definition.at("from_principal");
            if (!key.is_string() || !is_identifier(key.get<std::string>()))
                definition_error(spec.name,
                                 "\"from_principal\" must name a key of the principal's context",
                                 R"(For example: "from_principal": "tenant_id")");
            if (definition.contains("default") || definition.contains("required"))
                definition_error(
                    spec.name,
                    "a parameter bound from the principal takes no \"default\" or \"required\"",
                    "Its value always comes from the calling role's principal.");
            spec.from_principal = key.get<std::string>();
        }
        if (definition.contains("from_claim")) {
            const json &claim = definition.at("from_claim");
            if (!claim.is_string() || claim.get<std::string>().empty() ||
                claim.get<std::string>().size() > 256)
                definition_error(spec.name,
                                 "\"from_claim\" must name a claim of the caller's OAuth identity",
                                 R"(For example: "from_claim": "sub")");
            if (!spec.from_principal.empty())
                definition_error(
                    spec.name, "a parameter is bound from the principal or from a claim, not both");
            if (definition.contains("default") || definition.contains("required"))
                definition_error(
                    spec.name,
                    "a parameter bound from a claim takes no \"default\" or \"required\"",
                    "Its value always comes from the caller's verified OAuth identity.");
            spec.from_claim = claim.get<std::string>();
        }
        if (definition.contains("sensitive")) {
            if (!definition.at("sensitive").is_boolean())
                definition_error(spec.name, "\"sensitive\" must be true or false");
            spec.sensitive = definition.at("sensitive").get<bool>();
        }
        if (type == "array") {
            spec.is_array = true;
            if (!definition.contains("items") || !definition.at("items").is_object())
                definition_error(
                    spec.name, "an array parameter needs \"items\", an object with the items' type",
                    R"(Example: "items": {"type": "integer"})");
            const json &items = definition.at("items");
            reject_unknown_keys(items, kItemKeys, spec.name, "\"items\"");
            if (!items.contains("type") || !items.at("type").is_string())
                definition_error(spec.name, "\"items\" needs a \"type\"");
            std::string item_type = items.at("type").get<std::string>();
            if (item_type == "array")
                definition_error(spec.name, "arrays of arrays are not supported");
            spec.scalar = parse_scalar(items, spec.name, item_type);
            spec.min_items = read_count(definition, "minItems", spec.name);
            spec.max_items = read_count(definition, "maxItems", spec.name);
            if (spec.min_items && spec.max_items && *spec.min_items > *spec.max_items)
                definition_error(spec.name, "\"minItems\" is greater than \"maxItems\"");
            for (const char *key :
                 {"format", "minLength", "maxLength", "pattern", "minimum", "maximum", "enum"})
                if (definition.contains(key))
                    definition_error(
                        spec.name, std::string("\"") + key + "\" of an array belongs in \"items\"");
        } else {
            if (definition.contains("items") || definition.contains("minItems") ||
                definition.contains("maxItems"))
                definition_error(spec.name,
                                 "\"items\", \"minItems\" and \"maxItems\" apply only to arrays");
            spec.scalar = parse_scalar(definition, spec.name, type);
        }
        // Each enum value must itself satisfy the other constraints.
        for (const json &allowed : spec.scalar.enum_values) {
            std::string text;
            ScalarSpec without_enum = spec.scalar;
            without_enum.enum_values.clear();
            std::string error = check_scalar(
                without_enum, allowed,
                [](const std::string &, const std::string &) { return true; }, text);
            if (!error.empty()) definition_error(spec.name, "an \"enum\" value " + error);
        }
        if (definition.contains("default")) {
            spec.default_value = definition.at("default");
            BoundValue ignored;
            std::string error = check_value(
                spec, *spec.default_value,
                [](const std::string &, const std::string &) { return true; }, ignored);
            if (!error.empty()) definition_error(spec.name, "the default " + error);
        }
        if (definition.contains("required")) {
            if (!definition.at("required").is_boolean())
                definition_error(spec.name, "\"required\" must be true or false");
            spec.required = definition.at("required").get<bool>();
            if (spec.required && spec.default_value)
                definition_error(spec.name, "a required parameter cannot have a default",
                                 "Remove \"default\", or set \"required\": false.");
        } else {
            spec.required = !spec.default_value;
        }
        specs.push_back(std::move(spec));
    }
    return specs;
}

json definitions_to_json(const std::vector<ParamSpec> &specs) {
    json out = json::array();
    for (const ParamSpec &spec : specs) {
        json definition = scalar_schema(spec.scalar);
        if (spec.is_array) {
            json items = definition;
            definition = {{"type", "array"}, {"items", items}};
            if (spec.min_items) definition["minItems"] = *spec.min_items;
            if (spec.max_items) definition["maxItems"] = *spec.max_items;
        }
        definition["name"] = spec.name;
        definition["description"] = spec.description;
        if (!spec.from_principal.empty())
            definition["from_principal"] = spec.from_principal;
        else if (!spec.from_claim.empty())
            definition["from_claim"] = spec.from_claim;
        else
            definition["required"] = spec.required;
        definition["sensitive"] = spec.sensitive;
        if (spec.default_value) definition["default"] = *spec.default_value;
        out.push_back(std::move(definition));
    }
    return out;
}

json input_schema(const std::vector<ParamSpec> &specs) {
    json properties = json::object();
    json required = json::array();
    for (const ParamSpec &spec : specs) {
        if (spec.bound()) continue;  // never the model's to choose
        json property = scalar_schema(spec.scalar);
        if (spec.is_array) {
            json items = property;
            property = {{"type", "array"}, {"items", items}};
            if (spec.min_items) property["minItems"] = *spec.min_items;
            if (spec.max_items) property["maxItems"] = *spec.max_items;
        }
        if (!spec.description.empty()) property["description"] = spec.description;
        if (spec.default_value) property["default"] = *spec.default_value;
        properties[spec.name] = std::move(property);
        if (spec.required) required.push_back(spec.name);
    }
    json schema = {{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
    if (!required.empty()) schema["required"] = required;
    return schema;
}

std::string sql_type_name(const ParamSpec &spec) {
    std::string base;
    switch (spec.scalar.type) {
        case ParamType::String:
            base = spec.scalar.format == "uuid"        ? "uuid"
                   : spec.scalar.format == "date"      ? "date"
                   : spec.scalar.format == "date-time" ? "timestamp with time zone"
                                                       : "text";
            break;
        case ParamType::Integer:
            base = "bigint";
            break;
        case ParamType::Number:
            base = "numeric";
            break;
        case ParamType::Boolean:
            base = "boolean";
            break;
    }
    return spec.is_array ? base + "[]" : base;
}

ValidationResult validate_arguments(const std::vector<ParamSpec> &specs,
                                    const std::string &arguments_json,
                                    const PatternMatcher &matches,
                                    const std::string &principal_context,
                                    const std::string &claims_json) {
    ValidationResult result;
    json arguments;
    if (nests_too_deep(arguments_json)) {
        result.errors.push_back("arguments nest more than 64 levels deep");
        return result;
    }
    try {
        arguments = arguments_json.empty() ? json::object() : json::parse(arguments_json);
    } catch (const json::exception &) {
        // Valid JSON from PostgreSQL can still overflow a double (1e400).
        result.errors.push_back("arguments are not valid JSON or hold a number out of range");
        return result;
    }
    if (arguments.is_null()) arguments = json::object();
    if (!arguments.is_object()) {
        result.errors.push_back("arguments must be a JSON object, got " + describe(arguments));
        return result;
    }
    auto spec_named = [&](const std::string &name) -> const ParamSpec * {
        for (const ParamSpec &spec : specs)
            if (spec.name == name) return &spec;
        return nullptr;
    };
    for (auto it = arguments.begin(); it != arguments.end(); ++it) {
        const ParamSpec *spec = spec_named(it.key());
        if (spec != nullptr && spec->bound()) {
            result.errors.push_back("parameter \"" + it.key() +
                                    "\" cannot be supplied: it is taken from this connection's "
                                    "identity");
        } else if (spec == nullptr) {
            std::string accepted;
            for (const ParamSpec &known : specs)
                if (!known.bound()) accepted += (accepted.empty() ? "" : ", ") + known.name;
            result.errors.push_back("unknown parameter \"" + it.key() + "\"; " +
                                    (accepted.empty() ? std::string("this tool takes no parameters")
                                                      : "this tool accepts: " + accepted));
        }
    }
    // The principal's context and the OAuth claims are read only when a parameter binds them.
    bool binds_context = false, binds_claims = false;
    for (const ParamSpec &spec : specs) {
        binds_context = binds_context || !spec.from_principal.empty();
        binds_claims = binds_claims || !spec.from_claim.empty();
    }
    json context;
    if (binds_context && !principal_context.empty()) {
        try {
            context = json::parse(principal_context);
        } catch (const json::exception &) {
            context = nullptr;
        }
    }
    json claims;
    if (binds_claims && !claims_json.empty()) {
        try {
            claims = json::parse(claims_json);
        } catch (const json::exception &) {
            claims = nullptr;
        }
    }
    result.values.resize(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
        const ParamSpec &spec = specs[i];
        if (!spec.from_claim.empty()) {
            if (!claims.is_object()) {
                result.identity_error = "the call has no OAuth identity, and parameter \"" +
                                        spec.name + "\" is bound from its claim \"" +
                                        spec.from_claim + "\"";
            } else if (!claims.contains(spec.from_claim) || claims[spec.from_claim].is_null()) {
                result.identity_error = "the caller's OAuth identity has no claim \"" +
                                        spec.from_claim + "\" for parameter \"" + spec.name + "\"";
            } else {
                std::string error =
                    check_value(spec, claims[spec.from_claim], matches, result.values[i]);
                if (!error.empty())
                    result.identity_error =
                        "the caller's claim \"" + spec.from_claim + "\" " + error;
            }
            continue;
        }
        if (!spec.from_principal.empty()) {
            if (!context.is_object()) {
                result.identity_error = "the calling role is not a principal, and parameter \"" +
                                        spec.name + "\" is bound from the principal's \"" +
                                        spec.from_principal + "\"";
            } else if (!context.contains(spec.from_principal) ||
                       context[spec.from_principal].is_null()) {
                result.identity_error = "the principal's context has no \"" + spec.from_principal +
                                        "\" for parameter \"" + spec.name + "\"";
            } else {
                std::string error =
                    check_value(spec, context[spec.from_principal], matches, result.values[i]);
                if (!error.empty())
                    result.identity_error =
                        "the principal's \"" + spec.from_principal + "\" " + error;
            }
            continue;
        }
        auto found = arguments.find(spec.name);
        if (found == arguments.end()) {
            if (spec.required) {
                result.errors.push_back("missing required parameter \"" + spec.name + "\"");
            } else if (spec.default_value) {
                check_value(spec, *spec.default_value, matches, result.values[i]);
            }
            continue;
        }
        if (found->is_null()) {
            result.errors.push_back("parameter \"" + spec.name + "\" must not be null" +
                                    (spec.required ? "" : "; omit it to use the default"));
            continue;
        }
        std::string error = check_value(spec, *found, matches, result.values[i]);
        result.values[i].from_argument = true;
        if (!error.empty()) result.errors.push_back("parameter \"" + spec.name + "\" " + error);
    }
    if (!result.errors.empty() || !result.identity_error.empty()) result.values.clear();
    return result;
}

std::string redact_arguments(const std::vector<ParamSpec> &specs,
                             const std::string &arguments_json) {
    json arguments;
    try {
        if (nests_too_deep(arguments_json)) throw std::length_error("too deep");
        arguments = json::parse(arguments_json);
    } catch (const std::exception &) {
        // Validation rejects such arguments too; record none of their values.
        return R"({"[unreadable]": "arguments not recorded: not parseable for redaction"})";
    }
    if (!arguments.is_object()) return arguments_json;
    bool changed = false;
    for (const ParamSpec &spec : specs) {
        if (spec.sensitive && arguments.contains(spec.name)) {
            arguments[spec.name] = "[redacted]";
            changed = true;
        }
    }
    return changed ? arguments.dump() : arguments_json;
}

}  // namespace pg_mcp
