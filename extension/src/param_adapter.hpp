// Adapters between the pure C++ parameter code (param_schema, named_params) and the
// PostgreSQL side. Everything crossing here is plain data in palloc'd memory, so callers can
// continue in C style. C++ exceptions stay inside these functions or become DefinitionError /
// PgError, which the SQL entry point's boundary turns into ereport(ERROR).
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

class CompiledParams;  // opaque: parsed parameter specs, owned by the tool cache

// The PostgreSQL types a parameter can be bound as.
enum class BindType : int { Text, Bigint, Numeric, Boolean, Uuid, Date, Timestamptz };

struct ParamBinding {
    BindType type;
    bool is_array;
};

// What compile_tool_definition produces, all palloc'd in CurrentMemoryContext.
struct CompiledDefinition {
    char *compiled_sql;
    char *parameters_json;    // canonical definitions
    char *input_schema_json;  // MCP inputSchema
    int nparams;
    ParamBinding *bindings;
};

// Parses the definitions, checks every pattern with PostgreSQL's regular expressions and
// rewrites :name parameters. Throws DefinitionError with the exact problem.
CompiledDefinition compile_tool_definition(const char *sql, const char *parameters_json);

// Parses canonical definitions (from the catalog) into an object the cache keeps.
CompiledParams *load_compiled_params(const char *parameters_json);
void free_compiled_params(CompiledParams *params);
bool has_sensitive_params(const CompiledParams *params);

// Validated arguments of one call, in PostgreSQL text form, palloc'd.
struct ValidatedArguments {
    char *errors;          // NULL when valid, else one line per problem
    char *identity_error;  // NULL, or why a principal-bound parameter has no valid value
    int nvalues;
    char **names;         // parameter names
    bool *from_argument;  // the value came from the arguments (not a default)
    bool *is_number;      // type number: the caller may take the exact value from the jsonb
    bool *is_null;
    char **text;    // scalars
    int *nitems;    // -1 for scalars
    char ***items;  // array elements
};

// principal_context: the calling role's principal context (JSON text), or NULL; claims: the
// verified claims of the call's OAuth identity (JSON text), or NULL.
ValidatedArguments validate_call_arguments(const CompiledParams *params, const char *arguments_json,
                                           const char *principal_context, const char *claims);

// The arguments as JSON text with sensitive values redacted (palloc'd).
char *redact_call_arguments(const CompiledParams *params, const char *arguments_json);

}  // namespace pg_mcp
