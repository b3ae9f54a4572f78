#include "param_adapter.hpp"

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "boundary.hpp"
#include "definition_error.hpp"
#include "named_params.hpp"
#include "param_schema.hpp"

extern "C" {
#include "catalog/pg_collation.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
}

namespace pg_mcp {

class CompiledParams {
  public:
    std::vector<ParamSpec> specs;
};

namespace {

// palloc that reports exhaustion as std::bad_alloc instead of ereport.
void *alloc_or_throw(size_t size) {
    void *p = MemoryContextAllocExtended(CurrentMemoryContext, size == 0 ? 1 : size,
                                         MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

char *copy_string(const std::string &text) {
    char *out = static_cast<char *>(alloc_or_throw(text.size() + 1));
    std::memcpy(out, text.data(), text.size() + 1);
    return out;
}

template <typename T>
T *alloc_array(size_t count) {
    return static_cast<T *>(alloc_or_throw(sizeof(T) * (count == 0 ? 1 : count)));
}

// PostgreSQL's regular expressions (the same engine as the ~ operator), C collation.
bool postgres_regex_match(const std::string &pattern, const std::string &value) {
    const char *pattern_c = pattern.c_str();
    const char *value_c = value.c_str();
    return pg_guard([&]() -> bool {
        Datum result = DirectFunctionCall2Coll(textregexeq, C_COLLATION_OID,
                                               PointerGetDatum(cstring_to_text(value_c)),
                                               PointerGetDatum(cstring_to_text(pattern_c)));
        return DatumGetBool(result);
    });
}

ParamBinding binding_of(const ParamSpec &spec) {
    BindType type = BindType::Text;
    switch (spec.scalar.type) {
        case ParamType::String:
            type = spec.scalar.format == "uuid"        ? BindType::Uuid
                   : spec.scalar.format == "date"      ? BindType::Date
                   : spec.scalar.format == "date-time" ? BindType::Timestamptz
                                                       : BindType::Text;
            break;
        case ParamType::Integer:
            type = BindType::Bigint;
            break;
        case ParamType::Number:
            type = BindType::Numeric;
            break;
        case ParamType::Boolean:
            type = BindType::Boolean;
            break;
    }
    return ParamBinding{type, spec.is_array};
}

std::string join_quoted(const std::vector<std::string> &names) {
    std::string out;
    for (const auto &name : names) out += (out.empty() ? "\"" : ", \"") + name + "\"";
    return out;
}

}  // namespace

CompiledDefinition compile_tool_definition(const char *sql, const char *parameters_json) {
    std::vector<ParamSpec> specs = parse_param_definitions(parameters_json ? parameters_json : "");
    for (const ParamSpec &spec : specs) {
        if (!spec.scalar.pattern) continue;
        try {
            postgres_regex_match(*spec.scalar.pattern, "");
        } catch (const PgError &error) {
            throw DefinitionError("2201B",
                                  "invalid definition of parameter \"" + spec.name +
                                      "\": \"pattern\" is not a valid regular expression",
                                  error.what(),
                                  "Patterns use PostgreSQL regular expressions (the ~ operator).");
        }
    }
    std::vector<std::string> names;
    for (const ParamSpec &spec : specs) names.push_back(spec.name);
    RewrittenSql rewritten = rewrite_named_parameters(sql, names);
    if (!rewritten.undeclared.empty())
        throw DefinitionError(
            "42P02",
            "tool SQL uses undeclared parameter" +
                std::string(rewritten.undeclared.size() > 1 ? "s " : " ") +
                join_quoted(rewritten.undeclared),
            "Every :name in the SQL must be declared in parameters.",
            "Declare it, e.g. {\"name\": \"" + rewritten.undeclared[0] +
                "\", \"type\": \"string\"}; an array slice like a[lo:hi] is written a[lo : hi].");
    if (!rewritten.unused.empty())
        throw DefinitionError("22023",
                              "declared parameter" +
                                  std::string(rewritten.unused.size() > 1 ? "s " : " ") +
                                  join_quoted(rewritten.unused) + " not used in the tool SQL",
                              "Every declared parameter must appear in the SQL as :name.",
                              "Use it in the SQL, or remove it from parameters.");

    CompiledDefinition out{};
    out.compiled_sql = copy_string(rewritten.sql);
    out.parameters_json = copy_string(definitions_to_json(specs).dump());
    out.input_schema_json = copy_string(input_schema(specs).dump());
    out.nparams = static_cast<int>(specs.size());
    out.bindings = alloc_array<ParamBinding>(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) out.bindings[i] = binding_of(specs[i]);
    return out;
}

CompiledParams *load_compiled_params(const char *parameters_json) {
    auto *params = new CompiledParams();
    try {
        params->specs = parse_param_definitions(parameters_json);
    } catch (...) {
        delete params;
        throw;
    }
    return params;
}

void free_compiled_params(CompiledParams *params) {
    delete params;
}

bool has_sensitive_params(const CompiledParams *params) {
    for (const ParamSpec &spec : params->specs)
        if (spec.sensitive) return true;
    return false;
}

ValidatedArguments validate_call_arguments(const CompiledParams *params, const char *arguments_json,
                                           const char *principal_context, const char *claims) {
    ValidationResult result = validate_arguments(
        params->specs, arguments_json ? arguments_json : "", postgres_regex_match,
        principal_context ? principal_context : "", claims ? claims : "");
    ValidatedArguments out{};
    if (!result.identity_error.empty()) {
        out.identity_error = copy_string(result.identity_error);
        return out;
    }
    if (!result.errors.empty()) {
        std::string text;
        for (const auto &line : result.errors) text += (text.empty() ? "" : "\n") + line;
        out.errors = copy_string(text);
        return out;
    }
    size_t n = result.values.size();
    out.nvalues = static_cast<int>(n);
    out.names = alloc_array<char *>(n);
    out.from_argument = alloc_array<bool>(n);
    out.is_number = alloc_array<bool>(n);
    out.is_null = alloc_array<bool>(n);
    out.text = alloc_array<char *>(n);
    out.nitems = alloc_array<int>(n);
    out.items = alloc_array<char **>(n);
    for (size_t i = 0; i < n; ++i) {
        const BoundValue &value = result.values[i];
        const ParamSpec &spec = params->specs[i];
        out.names[i] = copy_string(spec.name);
        out.from_argument[i] = value.from_argument;
        out.is_number[i] = spec.scalar.type == ParamType::Number;
        out.is_null[i] = value.is_null;
        out.text[i] = nullptr;
        out.nitems[i] = -1;
        out.items[i] = nullptr;
        if (value.is_null) continue;
        if (params->specs[i].is_array) {
            out.nitems[i] = static_cast<int>(value.items.size());
            out.items[i] = alloc_array<char *>(value.items.size());
            for (size_t k = 0; k < value.items.size(); ++k)
                out.items[i][k] = copy_string(value.items[k]);
        } else {
            out.text[i] = copy_string(value.text);
        }
    }
    return out;
}

char *redact_call_arguments(const CompiledParams *params, const char *arguments_json) {
    return copy_string(redact_arguments(params->specs, arguments_json));
}

}  // namespace pg_mcp
