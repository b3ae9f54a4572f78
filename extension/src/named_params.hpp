// Named parameters in a tool's SQL: ":email" placeholders rewritten to "$1" positions.
// Pure C++ (no PostgreSQL headers), unit-tested on its own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pg_mcp {

struct RewrittenSql {
    std::string sql;                      // the SQL with $n in place of each :name
    std::vector<std::string> undeclared;  // names used in the SQL but not declared
    std::vector<std::string> unused;      // declared names the SQL never uses
};

// Replaces every :name outside string literals, quoted identifiers, comments and dollar-quoted
// bodies with $k, where k-1 is the index of name in declared. "::" casts are left alone.
// Throws DefinitionError if the SQL uses positional parameters ($1) itself.
RewrittenSql rewrite_named_parameters(std::string_view sql,
                                      const std::vector<std::string> &declared);

}  // namespace pg_mcp
