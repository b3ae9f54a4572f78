// What a query returns becomes a reply: rows taken as they come, a result held or streamed to
// its consumer, a deferred call's answer held until its audit record is durable.
// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <utility>

#include "pool_internals.hpp"

namespace pg_mcp::bridge {

void Database::take(Slot &slot, PGresult *result) {
    ExecStatusType status = PQresultStatus(result);
    if (slot.preparing) {
        if (status != PGRES_COMMAND_OK && slot.prepare_error.empty())
            slot.prepare_error = trim(PQresultErrorMessage(result));
    } else if (slot.discard) {
        // dropped
    } else if (status == PGRES_SINGLE_TUPLE) {
        if (!slot.got_value) {
            if (!PQgetisnull(result, 0, 0)) {
                // A call's head: the rest of its rows are the body's pieces.
                slot.text.assign(PQgetvalue(result, 0, 0),
                                 static_cast<size_t>(PQgetlength(result, 0, 0)));
                slot.got_value = true;
            }
        } else {
            std::string piece(PQgetvalue(result, 0, 0),
                              static_cast<size_t>(PQgetlength(result, 0, 0)));
            PQclear(result);
            add_chunk(slot, std::move(piece));
            return;
        }
    } else if (status == PGRES_TUPLES_OK) {
        if (!slot.got_value && PQntuples(result) == 1 && !PQgetisnull(result, 0, 0)) {
            slot.text.assign(PQgetvalue(result, 0, 0),
                             static_cast<size_t>(PQgetlength(result, 0, 0)));
            slot.got_value = true;
        }
    } else if (status == PGRES_FATAL_ERROR) {
        if (!slot.got_value) {
            const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
            slot.sqlstate = state ? state : "";
            slot.error_message = trim(PQresultErrorMessage(result));
        } else if (slot.body_failed.empty()) {
            slot.body_failed = trim(PQresultErrorMessage(result));
        }
    }
    PQclear(result);
}

// A result bigger than this is not held: its consumer reads it as it comes.
constexpr size_t kInlineBodyBytes = 256 * 1024;

void Database::add_chunk(Slot &slot, std::string piece) {
    if (slot.stream) {
        if (!slot.stream->push(std::move(piece))) slot.paused = true;
        return;
    }
    slot.chunk_bytes += piece.size();
    slot.chunks.push_back(std::move(piece));
    if (slot.chunk_bytes <= kInlineBodyBytes || slot.answered) return;
    // Too large to hold: answered now, its body streamed as it comes.
    json pending;
    BackendReply reply = head_reply(slot, pending);
    if (!reply.ok) {
        slot.discard = true;
        answer(slot, std::move(reply));
        return;
    }
    if (!pending.is_null())
        confirm_then_stream(slot, std::move(reply), pending);
    else
        stream_body(slot, std::move(reply));
}

BackendReply Database::head_reply(Slot &slot, json &pending) {
    Job &job = *slot.job;
    BackendReply reply;
    try {
        reply.value = job.is_authenticate ? json(slot.text) : json::parse(slot.text);
        reply.ok = true;
    } catch (const json::parse_error &error) {
        return failure(error_code::kInternalError,
                       std::string("Database returned invalid JSON: ") + error.what());
    }
    if (job.is_call && reply.value.is_object()) {
        auto meta = reply.value.find("_meta");
        if (meta != reply.value.end() && meta->is_object()) {
            // Served by a hot standby: the audit record is not for the agent.
            if (meta->contains(kStandbyAuditKey)) {
                reply.standby_audit = (*meta)[kStandbyAuditKey].dump();
                meta->erase(kStandbyAuditKey);
            }
            if (meta->contains(kAuditPendingKey)) {
                pending = (*meta)[kAuditPendingKey];
                meta->erase(kAuditPendingKey);
                if (confirmer_ == nullptr || !pending.is_array() || pending.size() != 2 ||
                    !pending[0].is_number_integer() || !pending[1].is_number_integer())
                    return failure(error_code::kInternalError,
                                   "Database returned an invalid audit token");
            }
        }
    }
    return reply;
}

void Database::settle(Job &job, bool ok) {
    if (!job.statement_span.empty() && Tracer::global() != nullptr) {
        Span statement;
        statement.name = job.statement_summary;
        statement.kind = Span::Kind::Client;
        statement.context = job.identity.trace;
        statement.context.span_id = job.statement_span;
        statement.parent_span_id = job.identity.trace.span_id;
        statement.start = job.sent;
        statement.end = std::chrono::system_clock::now();
        statement.set("db.system.name", "postgresql");
        statement.set("db.operation.name", "SELECT");
        statement.set("db.query.summary", job.statement_summary);
        if (!job.database.empty()) statement.set("db.namespace", job.database);
        if (!job.host.empty()) statement.set("server.address", job.host);
        if (!job.port.empty()) statement.set("server.port", std::stoll("0" + job.port));
        statement.error = !ok;
        if (!ok) statement.status_message = "the statement failed";
        record_span(std::move(statement));
    }
    job.statement_span.clear();
    job.running_on = nullptr;
    active_.erase(job.key);
    if (ok) last_success_ = Clock::now().time_since_epoch().count();
}

// The reply, with the held body when there is one.
void Database::answer(Slot &slot, BackendReply reply) {
    Job &job = *slot.job;
    slot.answered = true;
    if (!reply.ok && reply.error_code == error_code::kDatabaseUnavailable && !reply.busy)
        last_unavailable_ = Clock::now().time_since_epoch().count();
    settle(job, reply.ok);
    if (job.is_call) record_call(reply, Clock::now() - slot.begun);
    HeldBody held;
    if (reply.ok && job.is_call && slot.got_value && !slot.chunks.empty()) {
        held.pieces = std::move(slot.chunks);
        reply.body = &held.stream;
    } else if (reply.ok && job.is_call && slot.got_value) {
        reply.body = &held.stream;  // an empty body
    }
    deliver(job.reply, std::move(reply), logger_);
}

void Database::stream_body(Slot &slot, BackendReply reply) {
    auto chunks = std::make_shared<Chunks>();
    for (auto &piece : slot.chunks) chunks->push(std::move(piece));
    slot.chunks.clear();
    uint64_t generation = slot.generation;
    std::shared_ptr<Job> owner = slot.job;
    chunks->resume = [this, &slot, generation, owner] {
        asio::post(loop_, [this, &slot, generation, owner] {
            if (generation != slot.generation || slot.job != owner || !slot.paused) return;
            slot.paused = false;
            process(slot);
        });
    };
    {
        std::lock_guard<std::mutex> lock(chunks->mutex);
        chunks->paused = false;
    }
    slot.stream = chunks;
    slot.answered = true;
    Job &job = *slot.job;
    settle(job, true);
    if (job.is_call) record_call(reply, Clock::now() - slot.begun);
    held_++;
    // The reply is given on the loop; whoever reads the body does so on a consumer thread
    // (off_loop), and whatever it read, the rest is drained there (the connection reaches the
    // end of its query).
    struct Streamed {
        BodyStream body;
        bool taken = false;
    };
    auto streamed = std::make_shared<Streamed>();
    std::weak_ptr<Streamed> weak = streamed;
    // Both steps are contained as a reply is (deliver): nothing they throw ends a thread.
    auto contained = [this](const std::function<void()> &step) {
        try {
            if (step) step();
        } catch (const std::exception &error) {
            logger_.log(LogLevel::Error,
                        std::string("internal error while writing a result: ") + error.what());
        }
    };
    auto consume = [this, chunks, contained](std::shared_ptr<Streamed> holder,
                                             std::function<void()> read,
                                             std::function<void()> then) {
        asio::post(helpers_->consumers, [this, chunks, holder, read, then, contained] {
            contained(read);
            std::string ignored;
            while (chunks->next(ignored)) {
            }
            asio::post(loop_, [this, holder, then, contained] {
                contained(then);
                held_--;
                check_stopped();
            });
        });
    };
    streamed->body.next = [body = &streamed->body, chunks](std::string &piece) {
        bool more = chunks->next(piece);
        if (!more) body->failed = chunks->failed;
        return more;
    };
    streamed->body.off_loop = [weak, consume](std::function<void()> read,
                                              std::function<void()> then) {
        std::shared_ptr<Streamed> holder = weak.lock();
        if (holder == nullptr || holder->taken) return;
        holder->taken = true;
        consume(holder, std::move(read), std::move(then));
    };
    reply.body = &streamed->body;
    ReplyFn to = job.reply;
    deliver(to, std::move(reply), logger_);
    if (!streamed->taken) consume(streamed, nullptr, nullptr);
}

// A deferred call whose body is small enough to hold: the connection is free at once, the answer
// leaves when its audit record is confirmed durable.
void Database::hold_until_confirmed(Slot &slot, BackendReply reply, const json &pending) {
    Job &job = *slot.job;
    settle(job, true);
    auto held = std::make_shared<std::deque<std::string>>(std::move(slot.chunks));
    auto answer_later = std::make_shared<BackendReply>(std::move(reply));
    bool streamed = slot.got_value;
    ReplyFn to = job.reply;
    bool is_call = job.is_call;
    auto begun = slot.begun;
    slot.answered = true;
    held_++;
    TraceContext trace = job.identity.trace;
    auto waited_from = std::chrono::system_clock::now();
    confirmer_->await(
        pending[0].get<int>(), pending[1].get<int64_t>(),
        [this, to, held, answer_later, streamed, is_call, begun, trace, waited_from](
            bool ok, int64_t id, const std::string &error) {
            trace_durability(trace, waited_from, ok, id);
            asio::post(loop_, [this, to, held, answer_later, streamed, is_call, begun, ok, id,
                               error] {
                BackendReply out =
                    ok ? std::move(*answer_later)
                       : failure(error_code::kInternalError,
                                 "The call ran, but its audit record was not confirmed durable (" +
                                     error +
                                     "); its result is withheld. Check the pg_mcp audit writer.");
                HeldBody body;
                if (ok && id > 0) out.value["_meta"]["pg-mcp/audit_id"] = id;
                if (ok && streamed) {
                    body.pieces = std::move(*held);
                    out.body = &body.stream;
                }
                if (is_call) record_call(out, Clock::now() - begun);
                deliver(to, std::move(out), logger_);
                held_--;
                check_stopped();
            });
        });
}

// A deferred call too large to hold: the connection stays with it (not reading) until its record
// is confirmed, then the body is streamed as it comes.
void Database::confirm_then_stream(Slot &slot, BackendReply reply, const json &pending) {
    slot.paused = true;
    slot.answered = true;  // taken care of
    uint64_t generation = slot.generation;
    std::shared_ptr<Job> owner = slot.job;
    auto waiting = std::make_shared<BackendReply>(std::move(reply));
    held_++;
    TraceContext trace = owner->identity.trace;
    auto waited_from = std::chrono::system_clock::now();
    confirmer_->await(
        pending[0].get<int>(), pending[1].get<int64_t>(),
        [this, &slot, generation, owner, waiting, trace, waited_from](bool ok, int64_t id,
                                                                      const std::string &error) {
            trace_durability(trace, waited_from, ok, id);
            asio::post(loop_, [this, &slot, generation, owner, waiting, ok, id, error] {
                held_--;
                if (generation != slot.generation || slot.job != owner) {
                    // The connection broke meanwhile: the answer is an error.
                    settle(*owner, false);
                    deliver(owner->reply,
                            failure(error_code::kDatabaseUnavailable,
                                    "Database connection lost while reading the result"),
                            logger_);
                    check_stopped();
                    return;
                }
                slot.paused = false;
                if (!ok) {
                    slot.answered = false;
                    slot.discard = true;
                    slot.chunks.clear();
                    answer(slot, failure(error_code::kInternalError,
                                         "The call ran, but its audit record was not confirmed "
                                         "durable (" +
                                             error +
                                             "); its result is withheld. Check the pg_mcp audit "
                                             "writer."));
                } else {
                    if (id > 0) waiting->value["_meta"]["pg-mcp/audit_id"] = id;
                    stream_body(slot, std::move(*waiting));
                }
                process(slot);
            });
        });
}

void Database::finished(Slot &slot) {
    Job &job = *slot.job;
    if (slot.preparing) {
        slot.preparing = false;
        if (!slot.prepare_error.empty()) {
            logger_.log(LogLevel::Error,
                        "preparing the bridge's statement failed: " + slot.prepare_error);
            answer(slot,
                   failure(error_code::kInternalError,
                           "Database error: " + slot.prepare_error +
                               " (is the pg_mcp extension in the version this bridge needs?)"));
            release(slot);
            return;
        }
        slot.prepared.insert(slot.statement->name);
        send_query(slot);
        return;
    }
    if (slot.stream) {
        if (!slot.body_failed.empty())
            logger_.log(LogLevel::Error, "reading a call's result failed: " + slot.body_failed);
        slot.stream->finish(slot.body_failed);
        release(slot);
        return;
    }
    if (slot.answered) {
        release(slot);
        return;
    }
    if (job.is_ping) {
        BackendReply reply;
        reply.ok = slot.error_message.empty();
        if (!reply.ok) reply = failure(error_code::kDatabaseUnavailable, slot.error_message);
        answer(slot, std::move(reply));
        release(slot);
        return;
    }
    if (!slot.error_message.empty()) {
        const std::string &sqlstate = slot.sqlstate;
        BackendReply reply;
        if (sqlstate == "28000") {
            reply = failure(error_code::kUnauthorized,
                            "Unauthorized: the bearer token is unknown, expired or revoked");
            reply.sqlstate = sqlstate;
            // An OAuth identity that no mapping names: the reason is for the operator's log.
            if (!job.identity.oauth_identity.empty())
                logger_.log(LogLevel::Warning, "refused an OAuth identity: " + slot.error_message);
        } else if (sqlstate == "57014") {
            reply = failure(error_code::kInternalError, "Request cancelled: " + slot.error_message);
        } else {
            // MCP02: a writing tool sent to a hot standby; the caller retries on the primary.
            if (sqlstate != kNeedsPrimary && sqlstate != "42704" && sqlstate != "22023")
                logger_.log(LogLevel::Error,
                            "database error (" + sqlstate + "): " + slot.error_message);
            reply = failure(error_code::kInternalError,
                            "Database error (SQLSTATE " + sqlstate + "): " + slot.error_message);
            reply.sqlstate = sqlstate;
        }
        answer(slot, std::move(reply));
        release(slot);
        return;
    }
    if (!slot.got_value) {
        answer(slot, failure(error_code::kInternalError, "Database returned no result"));
        release(slot);
        return;
    }
    if (!slot.body_failed.empty()) {
        logger_.log(LogLevel::Error, "reading a call's result failed: " + slot.body_failed);
        answer(slot,
               failure(error_code::kDatabaseUnavailable,
                       "Database connection lost while reading the result: " + slot.body_failed));
        release(slot);
        return;
    }
    json pending;
    BackendReply reply = head_reply(slot, pending);
    if (reply.ok && !pending.is_null()) {
        hold_until_confirmed(slot, std::move(reply), pending);
        release(slot);
        return;
    }
    answer(slot, std::move(reply));
    release(slot);
}

}  // namespace pg_mcp::bridge
