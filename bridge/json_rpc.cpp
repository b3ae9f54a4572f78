#include "json_rpc.hpp"

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

Message parse_message(std::string_view line) {
    json value;
    try {
        value = json::parse(line.begin(), line.end());
    } catch (const json::parse_error &error) {
        return invalid(
            nullptr, error_code::kParseError,
            std::string("Parse error: the message is not valid JSON (") + error.what() + ")");
    }
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
            return out;
        }
        return invalid(id, error_code::kInvalidRequest, "Invalid Request: \"method\" is missing");
    }
    if (!method->is_string())
        return invalid(id, error_code::kInvalidRequest,
                       "Invalid Request: \"method\" must be a string");

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

json make_result(const json &id, json result) {
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json make_error(const json &id, int code, const std::string &message, json data) {
    json error = {{"code", code}, {"message", message}};
    if (!data.is_null()) error["data"] = std::move(data);
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

json make_notification(const std::string &method, json params) {
    return json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

}  // namespace pg_mcp::bridge
