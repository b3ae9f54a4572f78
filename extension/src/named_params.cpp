#include "named_params.hpp"

#include <algorithm>

#include "definition_error.hpp"

namespace pg_mcp {
namespace {

bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}
bool is_ident_char(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Index just past a quoted run that started at `start` (the opening quote); `quote` doubles
// to escape itself; with backslash_escapes (E'...'), a backslash escapes the next character.
size_t skip_quoted(std::string_view s, size_t start, char quote, bool backslash_escapes) {
    size_t i = start + 1;
    while (i < s.size()) {
        if (backslash_escapes && s[i] == '\\') {
            i += 2;
        } else if (s[i] == quote) {
            if (i + 1 < s.size() && s[i + 1] == quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            ++i;
        }
    }
    return s.size();
}

size_t skip_block_comment(std::string_view s, size_t start) {
    int depth = 0;
    size_t i = start;
    while (i < s.size()) {
        if (s.compare(i, 2, "/*") == 0) {
            ++depth;
            i += 2;
        } else if (s.compare(i, 2, "*/") == 0) {
            i += 2;
            if (--depth == 0) return i;
        } else {
            ++i;
        }
    }
    return s.size();
}

// If a dollar-quote opening tag ($$ or $tag$) starts at i, returns its length, else 0.
size_t dollar_tag_length(std::string_view s, size_t i) {
    size_t j = i + 1;
    if (j < s.size() && s[j] == '$') return 2;
    if (j >= s.size() || !is_ident_start(s[j])) return 0;
    while (j < s.size() && is_ident_char(s[j]) && s[j] != '$') ++j;
    return j < s.size() && s[j] == '$' ? j - i + 1 : 0;
}

}  // namespace

RewrittenSql rewrite_named_parameters(std::string_view sql,
                                      const std::vector<std::string> &declared) {
    RewrittenSql out;
    std::vector<bool> used(declared.size(), false);
    out.sql.reserve(sql.size() + 8);
    size_t i = 0;
    while (i < sql.size()) {
        char c = sql[i];
        size_t next = i + 1;
        bool prev_is_ident = i > 0 && is_ident_char(sql[i - 1]);
        if (c == '\'') {
            bool escapes = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                           !(i > 1 && is_ident_char(sql[i - 2]));
            next = skip_quoted(sql, i, '\'', escapes);
        } else if (c == '"') {
            next = skip_quoted(sql, i, '"', false);
        } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
            next = sql.find('\n', i);
            if (next == std::string_view::npos) next = sql.size();
        } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
            next = skip_block_comment(sql, i);
        } else if (c == '$' && !prev_is_ident) {
            if (i + 1 < sql.size() && is_digit(sql[i + 1])) {
                throw DefinitionError(
                    "42P02", "tool SQL uses a positional parameter",
                    "Found \"" + std::string(sql.substr(i, 2)) + "\" in the SQL.",
                    "Write parameters by name (:email) and declare each one in the parameters "
                    "argument.");
            }
            size_t tag = dollar_tag_length(sql, i);
            if (tag > 0) {
                size_t close = sql.find(sql.substr(i, tag), i + tag);
                next = close == std::string_view::npos ? sql.size() : close + tag;
            }
        } else if (c == ':' && i + 1 < sql.size() && sql[i + 1] == ':') {
            next = i + 2;
        } else if (c == ':' && i + 1 < sql.size() && is_ident_start(sql[i + 1]) &&
                   !(i > 0 && sql[i - 1] == ':')) {
            size_t j = i + 1;
            while (j < sql.size() && is_ident_char(sql[j]) && sql[j] != '$') ++j;
            std::string name(sql.substr(i + 1, j - i - 1));
            auto found = std::find(declared.begin(), declared.end(), name);
            if (found == declared.end()) {
                if (std::find(out.undeclared.begin(), out.undeclared.end(), name) ==
                    out.undeclared.end())
                    out.undeclared.push_back(name);
                out.sql.append(sql.substr(i, j - i));
            } else {
                size_t index = static_cast<size_t>(found - declared.begin());
                used[index] = true;
                out.sql.push_back('$');
                out.sql.append(std::to_string(index + 1));
            }
            i = j;
            continue;
        }
        out.sql.append(sql.substr(i, next - i));
        i = next;
    }
    for (size_t k = 0; k < declared.size(); ++k)
        if (!used[k]) out.unused.push_back(declared[k]);
    return out;
}

}  // namespace pg_mcp
