// The methods that go to the backend (the extension): tools/list and tools/call,
// resources/list and resources/read, prompts/list and prompts/get; lists paged by cursor.
#include <algorithm>

#include "auth.hpp"
#include "mcp_protocol.hpp"
#include "mcp_server.hpp"

namespace pg_mcp::bridge {

void McpServer::list_tools(const Request &request) {
    serve_list(request, "tools/list", "name", "tools",
               [this](const std::string &key, const CallIdentity &who, ReplyFn reply) {
                   backend_.list_tools(key, who, std::move(reply));
               });
}

void McpServer::list_resources(const Request &request) {
    // Paged by name: the order the extension sorts them in (a URI is the name percent-encoded,
    // whose byte order differs for names with characters outside the URI's unreserved set).
    serve_list(request, "resources/list", "name", "resources",
               [this](const std::string &key, const CallIdentity &who, ReplyFn reply) {
                   backend_.list_resources(key, who, std::move(reply));
               });
}

void McpServer::list_prompts(const Request &request) {
    serve_list(request, "prompts/list", "name", "prompts",
               [this](const std::string &key, const CallIdentity &who, ReplyFn reply) {
                   backend_.list_prompts(key, who, std::move(reply));
               });
}

void McpServer::serve_list(const Request &request, const char *method, const char *key,
                           const char *field, const ListFn &list) {
    std::string after;
    auto cursor = request.params.find("cursor");
    if (cursor != request.params.end() && !cursor->is_null()) {
        if (!cursor->is_string() || !read_cursor(cursor->get<std::string>(), after)) {
            send(make_error(request.id, error_code::kInvalidParams,
                            std::string("Invalid params: unknown cursor; use the nextCursor of a "
                                        "previous ") +
                                method + " result"));
            return;
        }
    }
    if (!begin_work(request)) return;
    size_t page_size = std::max<size_t>(1, options_.page_size);
    list(options_.backend_key_prefix + request_key(request.id), identity(request),
         [this, request, after, page_size, key, field](BackendReply reply) {
             if (!end_work(request.id)) return;
             if (!reply.ok) {
                 send(make_error(request.id, reply.error_code, reply.error_message));
                 return;
             }
             // One page, in the backend's order (sorted by `key`), after the cursor's item.
             json page = json::array();
             json result = json::object();
             for (const json &item : reply.value) {
                 std::string value = string_member(item, key);
                 if (!after.empty() && value <= after) continue;
                 if (page.size() == page_size) {
                     result["nextCursor"] = make_cursor(page.back()[key].get<std::string>());
                     break;
                 }
                 page.push_back(item);
             }
             result[field] = std::move(page);
             if (request.modern) {
                 result["ttlMs"] = 60000;
                 result["cacheScope"] = "private";  // the list depends on the caller's role
             }
             send(make_result(request.id, finish_result(request, std::move(result))), &request);
         });
}

void McpServer::read_resource(const Request &request) {
    auto uri = request.params.find("uri");
    if (uri == request.params.end() || !uri->is_string()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: resources/read needs \"uri\" (a string)"));
        return;
    }
    if (!begin_work(request)) return;
    std::string wanted = uri->get<std::string>();
    backend_.read_resource(
        options_.backend_key_prefix + request_key(request.id), identity(request), wanted,
        [this, request, wanted](BackendReply reply) {
            if (!end_work(request.id)) return;
            if (!reply.ok && reply.sqlstate == "42704") {
                // Resource not found: -32602 since 2026-07-28, -32002 before.
                json error =
                    make_error(request.id, request.modern ? error_code::kInvalidParams : -32002,
                               "Resource not found: " + wanted +
                                   " (call resources/list to see the resources you "
                                   "can read)");
                error["error"]["data"] = {{"uri", wanted}};
                send(error);
                return;
            }
            if (!reply.ok) {
                send(make_error(request.id, reply.error_code, reply.error_message));
                return;
            }
            json result = std::move(reply.value);
            if (request.modern && result.is_object()) {
                result["ttlMs"] = 60000;
                result["cacheScope"] = "private";  // what a role may read depends on the role
            }
            send(make_result(request.id, finish_result(request, std::move(result))), &request);
        });
}

void McpServer::get_prompt(const Request &request) {
    auto name = request.params.find("name");
    if (name == request.params.end() || !name->is_string()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: prompts/get needs \"name\" (a string)"));
        return;
    }
    json arguments = request.params.value("arguments", json::object());
    if (arguments.is_null()) arguments = json::object();
    bool strings = arguments.is_object();
    if (strings)
        for (const auto &entry : arguments.items()) strings = strings && entry.value().is_string();
    if (!strings) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: \"arguments\" must be an object of strings"));
        return;
    }
    if (!begin_work(request)) return;
    std::string wanted = name->get<std::string>();
    backend_.get_prompt(
        options_.backend_key_prefix + request_key(request.id), identity(request), wanted, arguments,
        [this, request, wanted](BackendReply reply) {
            if (!end_work(request.id)) return;
            if (!reply.ok && (reply.sqlstate == "42704" || reply.sqlstate == "22023")) {
                send(make_error(
                    request.id, error_code::kInvalidParams,
                    reply.sqlstate == "42704"
                        ? "Invalid params: unknown prompt \"" + wanted + "\" (call prompts/list)"
                        : "Invalid params: " + reply.error_message));
                return;
            }
            if (!reply.ok) {
                send(make_error(request.id, reply.error_code, reply.error_message));
                return;
            }
            send(make_result(request.id, finish_result(request, reply.value)), &request);
        });
}

void McpServer::call_tool(const Request &request) {
    auto name = request.params.find("name");
    if (name == request.params.end() || !name->is_string()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: tools/call needs \"name\" (a string)"));
        return;
    }
    json arguments = request.params.value("arguments", json::object());
    if (arguments.is_null()) arguments = json::object();
    if (!arguments.is_object()) {
        send(make_error(request.id, error_code::kInvalidParams,
                        "Invalid params: \"arguments\" must be an object"));
        return;
    }
    json token;
    json meta = request.params.value("_meta", json::object());
    if (meta.is_object() && meta.contains("progressToken")) {
        token = meta["progressToken"];
        if (!(token.is_string() || token.is_number_integer())) {
            send(make_error(request.id, error_code::kInvalidParams,
                            "Invalid params: progressToken must be a string or an integer"));
            return;
        }
    }
    // A person's confirmation (tools with confirm => 'ask'): whether this client can ask
    // (2026-07-28: elicitation in the request's capabilities), and on a retry the state and
    // the person's answer (MRTR: requestState, inputResponses).
    std::string confirmation;
    if (!confirmation_input(request, confirmation)) return;
    if (!begin_work(request)) return;
    // The arguments are kept for a second round only where a person may be asked in the
    // session (2025-11-25, a client with elicitation).
    std::shared_ptr<const json> kept;
    if (!request.modern && legacy_can_elicit_) kept = std::make_shared<const json>(arguments);
    submit_call(request, name->get<std::string>(), arguments, token, std::move(confirmation), kept);
}

// Sends the call to the database (again, with the person's answer, after an elicitation).
void McpServer::submit_call(const Request &request, const std::string &tool, const json &arguments,
                            const json &token, std::string confirmation,
                            std::shared_ptr<const json> kept) {
    ProgressFn progress;
    if (!token.is_null()) {
        progress = [this, token, tool, id = request.id](int seconds) {
            output_.send_related(
                id, make_notification("notifications/progress",
                                      {{"progressToken", token},
                                       {"progress", seconds},
                                       {"message", "tool " + tool + " running for " +
                                                       std::to_string(seconds) + " s"}}));
        };
    }
    NoticeFn notice = [this, id = request.id, modern = request.modern, level = request.log_level,
                       tool](const ServerNotice &raised) {
        forward_notice(id, modern, level, tool, raised);
    };
    // What the answer needs of the request: not its params (a copy of the whole tree per call).
    Request answered;
    answered.id = request.id;
    answered.method = request.method;
    answered.modern = request.modern;
    answered.log_level = request.log_level;
    answered.oauth_identity = request.oauth_identity;
    backend_.call_tool(
        options_.backend_key_prefix + request_key(request.id), identity(request), tool, arguments,
        progress, std::move(notice),
        [this, answered = std::move(answered), tool, token, kept](BackendReply reply) {
            answer_call(answered, tool, token, kept, std::move(reply));
        },
        std::move(confirmation));
}

// The database's answer to a call, to the client.
void McpServer::answer_call(const Request &request, const std::string &tool, const json &token,
                            std::shared_ptr<const json> kept, BackendReply reply) {
    if (!end_work(request.id)) {
        logger_.log(LogLevel::Info, "tools/call " + tool + " (request " + request.id.dump() +
                                        ") was cancelled; no reply sent");
        return;
    }
    if (!reply.ok) {
        log_for_request(request, LogLevel::Error,
                        "tools/call " + tool + ": " + reply.error_message);
        send(make_error(request.id, reply.error_code, reply.error_message));
        return;
    }
    json result = std::move(reply.value);
    std::string status;
    if (result.contains("_meta")) status = string_member(result["_meta"], kStatusKey);
    bool unknown = result.contains("_meta") && result["_meta"].is_object() &&
                   result["_meta"].value("pg-mcp/unknown_tool", json(false)) == true;
    if (unknown) {
        // Unknown tools are protocol errors; ungranted ones look the same on
        // purpose.
        std::string detail;
        if (reply.body != nullptr && reply.body->buffered) {
            std::string text = "{", chunk;
            while (reply.body->next(chunk)) text += chunk;
            json members = json::parse(text + "}", nullptr, false);
            if (members.is_object()) result.update(members);
        }
        if (result.contains("content") && result["content"].is_array() &&
            !result["content"].empty())
            detail = string_member(result["content"][0], "text");
        send(make_error(request.id, error_code::kInvalidParams, "Unknown tool: " + tool,
                        {{"detail", detail}}));
        return;
    }
    if (result.contains("_meta") && result["_meta"].is_object() &&
        result["_meta"].contains(kInputRequiredKey)) {
        // A person confirms first. 2026-07-28: the client asks them and retries with the
        // answer; 2025-11-25: the server asks within the session and calls again.
        if (request.modern) {
            send(make_result(request.id, input_required_result(result)), &request);
            return;
        }
        if (kept != nullptr) {
            ask_person(request, tool, token, kept, result["_meta"][kInputRequiredKey]);
            return;
        }
    }
    if (status != "ok")
        log_for_request(request, LogLevel::Warning,
                        "tool " + tool + " ended with status " + status);
    json message = make_result(request.id, finish_result(request, std::move(result)));
    if (reply.body == nullptr) {
        send(std::move(message), &request);
        return;
    }
    // The span is the request's until its result is written (its id may be reused once
    // the client has the answer).
    auto span = std::make_shared<std::optional<Span>>(take_span(request.id));
    auto head = std::make_shared<Reply>();
    head->id = request.id;
    head->text = streamed_prefix(message);
    BodyStream *body = reply.body;
    auto written = [this, request, tool, body, span, message] {
        if (*span && body->failed.empty()) finish_span(std::move(**span), &message, nullptr);
        if (*span && !body->failed.empty())
            finish_span(std::move(**span), nullptr, "result cut short");
        if (body->failed.empty()) return;
        log_for_request(request, LogLevel::Error,
                        "tools/call " + tool + ": result cut short: " + body->failed);
        send(make_error(request.id, error_code::kDatabaseUnavailable,
                        "The result was cut short (" + body->failed +
                            "); the call completed and was audited. Retry if the tool "
                            "is safe to repeat."));
    };
    if (body->buffered || !body->off_loop) {
        output_.send_streamed(std::move(*head), *body);
        written();
        return;
    }
    // A large body is written as it is read, off the loop; the server stays busy
    // (not idle()) until it is.
    streaming_++;
    body->off_loop([this, head, body] { output_.send_streamed(std::move(*head), *body); },
                   [this, written] {
                       streaming_--;
                       written();
                   });
}

// What a tools/call brings for a person's confirmation, as JSON text for mcp.serve_call (empty:
// nothing). False when it is malformed (answered here).
bool McpServer::confirmation_input(const Request &request, std::string &out) {
    json input = json::object();
    if (!request.modern && legacy_can_elicit_) input["can_ask"] = true;
    if (request.modern) {
        const json &meta = request.params["_meta"];
        auto capabilities = meta.find(kClientCapabilitiesKey);
        if (capabilities != meta.end() && capabilities->is_object()) {
            auto elicitation = capabilities->find("elicitation");
            // {} means form mode; a client that lists only url mode cannot show the form.
            if (elicitation != capabilities->end() && elicitation->is_object() &&
                (elicitation->empty() || elicitation->contains("form")))
                input["can_ask"] = true;
        }
        auto state = request.params.find("requestState");
        if (state != request.params.end()) {
            if (!state->is_string() || state->get<std::string>().size() > 4096) {
                send(make_error(request.id, error_code::kInvalidParams,
                                "Invalid params: \"requestState\" must be the string the server "
                                "gave (echoed unchanged)"));
                return false;
            }
            input["state"] = *state;
            auto responses = request.params.find("inputResponses");
            if (responses != request.params.end() && responses->is_object()) {
                auto answer = responses->find(kConfirmInputKey);
                // A person's answer is accept, decline or cancel; a timeout is only ever the
                // bridge's own (anything else the database refuses as not an answer).
                if (answer != responses->end() && answer->is_object() &&
                    answer->contains("action") && (*answer)["action"].is_string()) {
                    std::string action = (*answer)["action"].get<std::string>().substr(0, 32);
                    input["action"] = action == "timeout" ? "not an answer" : action;
                }
            }
        }
    }
    if (!input.empty()) out = input.dump(-1, ' ', false, json::error_handler_t::replace);
    return true;
}

// The 2026-07-28 answer to a call a person must confirm first (MRTR): the elicitation the
// client shows, and the state it brings back with the answer.
json McpServer::input_required_result(const json &head) const {
    const json &asked = head["_meta"][kInputRequiredKey];
    json meta = head["_meta"];
    meta.erase(kInputRequiredKey);
    meta[kServerInfoKey] = server_info();
    return {{"resultType", "input_required"},
            {"inputRequests",
             {{kConfirmInputKey,
               {{"method", "elicitation/create"},
                {"params",
                 {{"mode", "form"},
                  {"message", asked.value("message", "")},
                  {"requestedSchema", asked.value("requestedSchema", json::object())}}}}}}},
            {"requestState", asked.value("requestState", "")},
            {"_meta", std::move(meta)}};
}

// 2025-11-25: asks the person within the session (elicitation/create, related to the call),
// keeping the call in progress; their answer, or the timeout, sends it to the database again.
void McpServer::ask_person(const Request &request, const std::string &tool, const json &token,
                           std::shared_ptr<const json> kept, const json &asked) {
    // Bounded per session: a client that never answers cannot pile calls up.
    if (elicitations_pending_.size() >= kMaxPendingElicitations) {
        send(make_error(request.id, error_code::kInvalidRequest,
                        "Too many calls are waiting for a person's confirmation in this session "
                        "(at most " +
                            std::to_string(kMaxPendingElicitations) +
                            "); answer or cancel them first. Nothing was done."));
        return;
    }
    if (!begin_work(request)) return;  // in progress again (a cancel ends it)
    // Unique across bridges and sessions: a session taken up by another bridge (a ticket) never
    // mistakes an answer meant for one bridge's question for its own.
    std::string id =
        "pg-mcp-confirm-" + secure_random_hex(8) + "-" + std::to_string(++elicitations_);
    Elicitation pending;
    pending.request = request;
    pending.tool = tool;
    pending.token = token;
    pending.arguments = kept;
    pending.state = asked.value("requestState", "");
    elicitations_pending_[id] = std::move(pending);
    output_.send_related(request.id,
                         {{"jsonrpc", "2.0"},
                          {"id", id},
                          {"method", "elicitation/create"},
                          {"params",
                           {{"mode", "form"},
                            {"message", asked.value("message", "")},
                            {"requestedSchema", asked.value("requestedSchema", json::object())}}}});
    if (options_.schedule)
        options_.schedule(options_.elicitation_timeout,
                          [this, alive = std::weak_ptr<bool>(alive_), id] {
                              // Not after the server has shut down (nor been destroyed).
                              std::shared_ptr<bool> live = alive.lock();
                              if (live && *live) answer_person(id, "timeout");
                          });
}

// A call waiting for a person that its client cancelled: the request to the person is withdrawn
// and the call ends unanswered (nothing ran).
void McpServer::withdraw_elicitation(const std::string &request_key_text) {
    for (auto it = elicitations_pending_.begin(); it != elicitations_pending_.end(); ++it) {
        if (request_key(it->second.request.id) != request_key_text) continue;
        json request_id = it->second.request.id;
        output_.send_related(request_id, make_notification("notifications/cancelled",
                                                           {{"requestId", it->first},
                                                            {"reason", "the call was cancelled"}}));
        elicitations_pending_.erase(it);
        (void)end_work(request_id);
        return;
    }
}

// The person's answer (accept, decline, cancel; or timeout) to elicitation `id`: the call goes
// to the database again with it, which decides. Unknown ids (answered already) are ignored.
void McpServer::answer_person(const std::string &id, const std::string &action) {
    auto found = elicitations_pending_.find(id);
    if (found == elicitations_pending_.end()) return;
    Elicitation pending = std::move(found->second);
    elicitations_pending_.erase(found);
    if (action == "timeout")
        output_.send_related(
            pending.request.id,
            make_notification("notifications/cancelled",
                              {{"requestId", id}, {"reason", "no answer in time"}}));
    // A call cancelled while the person was asked ends here, unanswered.
    if (!end_work(pending.request.id)) return;
    if (!begin_work(pending.request)) return;
    json confirmation = {{"can_ask", true}, {"state", pending.state}, {"action", action}};
    submit_call(pending.request, pending.tool, *pending.arguments, pending.token,
                confirmation.dump(-1, ' ', false, json::error_handler_t::replace), nullptr);
}

}  // namespace pg_mcp::bridge
