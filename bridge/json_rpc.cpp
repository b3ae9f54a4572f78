#include "json_rpc.hpp"

#include "json_nesting.hpp"

namespace pg_mcp::bridge {

namespace {

Message invalid(json id, int code, std::string message) {
    Message out;
    out.kind = Message::Kind::Invalid;
    out.id = std::move(id);
    out.error = {{"code", code}, {"message", std::move(message)}};
    return out;
}

// MCP request ids are strings or integers (never null, never fractional).
bool valid_id(const json &id) {
    return id.is_string() || id.is_number_integer();
}

}  // namespace

// Messages nested deeper than this are refused unparsed: serializing a value recurses once
// per level, and no MCP message needs more than a handful.
constexpr int kMaxNesting = 128;

bool nests_too_deep(std::string_view text) {
    return json_nests_deeper_than(text, kMaxNesting);
}

Message parse_message(std::string_view line) {
    // A message that cannot be parsed whole still answers with its id when the id can be read
    // from the text (its other members may hold the bad part: a lone surrogate, a number out of
    // range, too deep a nesting), so that the client's request fails at once.
    if (nests_too_deep(line))
        return invalid(recover_request_id(line, line), error_code::kInvalidRequest,
                       "Invalid Request: the message nests more than 128 levels deep");
    json value;
    try {
        value = json::parse(line.begin(), line.end());
    } catch (const json::exception &error) {
        return invalid(
            recover_request_id(line, line), error_code::kParseError,
            std::string("Parse error: the message is not valid JSON (") + error.what() + ")");
    }
    return classify_message(std::move(value));
}

Message classify_message(json value) {
    if (value.is_array())
        return invalid(nullptr, error_code::kInvalidRequest,
                       "Invalid Request: JSON-RPC batches are not supported; send one message "
                       "per line");
    if (!value.is_object())
        return invalid(nullptr, error_code::kInvalidRequest,
                       "Invalid Request: a message must be a JSON object");

    json id = nullptr;
    auto id_it = value.find("id");
    bool has_id = id_it != value.end();
    if (has_id && valid_id(*id_it)) id = *id_it;

    auto version = value.find("jsonrpc");
    if (version == value.end() || *version != "2.0")
        return invalid(id, error_code::kInvalidRequest,
                       "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    if (has_id && !valid_id(*id_it))
        return invalid(nullptr, error_code::kInvalidRequest,
                       "Invalid Request: \"id\" must be a string or an integer");

    auto method = value.find("method");
    if (method == value.end()) {
        if (has_id && (value.contains("result") || value.contains("error"))) {
            Message out;
            out.kind = Message::Kind::Response;
            out.id = id;
            if (value.contains("result")) out.result = value["result"];
            if (value.contains("error")) out.error = value["error"];
            return out;
        }
        return invalid(id, error_code::kInvalidRequest, "Invalid Request: \"method\" is missing");
    }
    if (!method->is_string())
        return invalid(id, error_code::kInvalidRequest,
                       "Invalid Request: \"method\" must be a string");

    // Nothing of a message reaches PostgreSQL with a NUL in it: its text cannot hold one (and a
    // C string would end there, making "a\0b" the name "a").
    if (id.is_string() && contains_nul(id))
        return invalid(id, error_code::kInvalidRequest,
                       "Invalid Request: the id contains a NUL character (\\u0000)");
    auto given = value.find("params");  // looked at in place: value() would copy the tree
    if (contains_nul(*method) || (given != value.end() && contains_nul(*given)))
        return invalid(id, error_code::kInvalidParams,
                       "Invalid params: a string in the message contains a NUL character "
                       "(\\u0000), which PostgreSQL text cannot hold");

    Message out;
    out.kind = has_id ? Message::Kind::Request : Message::Kind::Notification;
    out.id = id;
    out.method = method->get<std::string>();
    auto params = value.find("params");
    if (params == value.end() || params->is_null()) {
        out.params = json::object();
    } else if (params->is_object()) {
        out.params = std::move(*params);
    } else {
        return invalid(id, error_code::kInvalidParams,
                       "Invalid params: \"params\" must be an object");
    }
    return out;
}

bool contains_nul(const json &value) {
    switch (value.type()) {
        case json::value_t::string:
            return value.get_ref<const std::string &>().find('\0') != std::string::npos;
        case json::value_t::array:
            for (const json &each : value)
                if (contains_nul(each)) return true;
            return false;
        case json::value_t::object:
            for (const auto &[name, each] : value.items())
                if (name.find('\0') != std::string::npos || contains_nul(each)) return true;
            return false;
        default:
            return false;
    }
}

json make_result(const json &id, json result) {
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json make_error(const json &id, int code, const std::string &message, json data) {
    json error = {{"code", code}, {"message", message}};
    if (!data.is_null()) error["data"] = std::move(data);
    json response = {{"jsonrpc", "2.0"}, {"error", std::move(error)}};
    if (!id.is_null()) response["id"] = id;  // MCP ids are never null: omit an unknown one
    return response;
}

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// An id value (integer, or string without escapes) starting at text[i]; sets end.
json id_at(std::string_view text, size_t i, size_t &end) {
    if (i >= text.size()) return nullptr;
    if (text[i] == '"') {
        size_t close = text.find('"', i + 1);
        if (close == std::string_view::npos ||
            text.substr(i + 1, close - i - 1).find('\\') != std::string_view::npos)
            return nullptr;
        end = close + 1;
        return std::string(text.substr(i + 1, close - i - 1));
    }
    size_t j = i + (text[i] == '-' ? 1 : 0);
    size_t digits = j;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    if (j == digits || j - digits > 18) return nullptr;
    end = j;
    return std::stoll(std::string(text.substr(i, j - i)));
}

}  // namespace

json recover_request_id(std::string_view head, std::string_view tail) {
    // Head: scan members of the outermost object (tracking strings and nesting) for "id".
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < head.size(); ++i) {
        char c = head[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '{' || c == '[')
            ++depth;
        else if (c == '}' || c == ']')
            --depth;
        else if (c == '"') {
            if (depth == 1 && head.substr(i, 4) == "\"id\"") {
                size_t j = i + 4;
                while (j < head.size() && is_space(head[j])) ++j;
                if (j < head.size() && head[j] == ':') {
                    ++j;
                    while (j < head.size() && is_space(head[j])) ++j;
                    size_t end;
                    json id = id_at(head, j, end);
                    // The value ends there: 1e400 or 1.5 is not the id 1.
                    while (end < head.size() && is_space(head[end])) ++end;
                    if (!id.is_null() && end < head.size() &&
                        (head[end] == ',' || head[end] == '}'))
                        return id;
                }
            }
            in_string = true;
        }
    }
    // Tail: the last member before the closing brace, as serializers that put "id" last write it.
    size_t end = tail.size();
    while (end > 0 && is_space(tail[end - 1])) --end;
    if (end == 0 || tail[end - 1] != '}') return nullptr;
    --end;
    while (end > 0 && is_space(tail[end - 1])) --end;
    size_t value_start = end;
    if (value_start > 0 && tail[value_start - 1] == '"') {
        size_t open = tail.rfind('"', value_start - 2 < value_start ? value_start - 2 : 0);
        if (open == std::string_view::npos) return nullptr;
        value_start = open;
    } else {
        while (value_start > 0 && ((tail[value_start - 1] >= '0' && tail[value_start - 1] <= '9') ||
                                   tail[value_start - 1] == '-'))
            --value_start;
    }
    size_t k = value_start;
    while (k > 0 && is_space(tail[k - 1])) --k;
    if (k == 0 || tail[k - 1] != ':') return nullptr;
    --k;
    while (k > 0 && is_space(tail[k - 1])) --k;
    if (k < 4 || tail.substr(k - 4, 4) != "\"id\"") return nullptr;
    k -= 4;
    while (k > 0 && is_space(tail[k - 1])) --k;
    if (k == 0 || (tail[k - 1] != ',' && tail[k - 1] != '{')) return nullptr;
    size_t value_end;
    json id = id_at(tail, value_start, value_end);
    return value_end == end ? id : nullptr;
}

json make_notification(const std::string &method, json params) {
    return json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

}  // namespace pg_mcp::bridge
