// How deeply a JSON text nests, measured without parsing it: the bridge (for whole messages) and
// the extension (for tool definitions and arguments) refuse deep nesting before a recursive
// parser or serializer sees it. Pure C++, header-only, shared by both.
#pragma once

#include <cstddef>
#include <string_view>

namespace pg_mcp {

// True when some array or object in text lies more than limit levels deep. Brackets inside
// strings (escapes included) do not count; malformed text is left to the parser.
inline bool json_nests_deeper_than(std::string_view text, int limit) {
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

}  // namespace pg_mcp
