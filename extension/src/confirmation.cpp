// Confirmation of a call by a person (confirmation.hpp): the state is
//   hex(payload) "." hex(HMAC-SHA256(key, payload))
// where payload is JSON the server wrote ({"t": tool, "v": version, "a": SHA-256 of the
// arguments, "c": caller role, "i": person, "s": asked at, "x": expires at, "n": nonce}); the
// key is mcp.confirmation_key's (made on first use). A state is accepted once: its nonce goes
// to mcp.confirmation_uses. Runs as the extension's owner, inside the call's SPI connection.
#include "confirmation.hpp"

#include "audit.hpp"
#include "identity.hpp"
#include "security.hpp"
#include "query_guard.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace {

// How long a person has to answer (pg_mcp.confirmation_timeout).
int confirmation_seconds = 600;
constexpr int kKeyBytes = 32;
constexpr size_t kMaxStateBytes = 4096;
constexpr int kMaxMessageBytes = 1500;
constexpr int kMaxValueBytes = 200;

// What the client brought for the call of the current transaction.
struct Input {
    LocalTransactionId lxid = InvalidLocalTransactionId;
    bool can_ask = false;
    char *state = NULL;   // TopMemoryContext
    char *action = NULL;  // TopMemoryContext
};
Input input;

bool input_current() {
    return input.lxid != InvalidLocalTransactionId && MyProc != NULL &&
           input.lxid == pg_mcp::compat::local_transaction_id();
}

// A string member of a jsonb object, palloc'd in TopMemoryContext; NULL when absent.
char *member_text(Jsonb *object, const char *key, bool *is_true) {
    JsonbValue found;
    if (getKeyJsonValueFromContainer(&object->root, key, strlen(key), &found) == NULL) return NULL;
    if (found.type == jbvBool && is_true != NULL) *is_true = found.val.boolean;
    if (found.type != jbvString) return NULL;
    return MemoryContextStrdup(TopMemoryContext,
                               pnstrdup(found.val.string.val, found.val.string.len));
}

void hex(StringInfo out, const uint8 *bytes, size_t len) {
    static const char *digits = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        appendStringInfoChar(out, digits[bytes[i] >> 4]);
        appendStringInfoChar(out, digits[bytes[i] & 15]);
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// Lowercase hex to bytes; false when it is not that.
bool unhex(const char *text, size_t len, StringInfo out) {
    if (len % 2 != 0) return false;
    for (size_t i = 0; i < len; i += 2) {
        int high = hex_value(text[i]), low = hex_value(text[i + 1]);
        if (high < 0 || low < 0) return false;
        appendStringInfoChar(out, (char)(high * 16 + low));
    }
    return true;
}

void sha256(const char *data, size_t len, uint8 digest[PG_SHA256_DIGEST_LENGTH]) {
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    if (pg_cryptohash_init(ctx) < 0 || pg_cryptohash_update(ctx, (const uint8 *)data, len) < 0 ||
        pg_cryptohash_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
        elog(ERROR, "sha256 failed: %s", pg_cryptohash_error(ctx));
    pg_cryptohash_free(ctx);
}

// An argument's value as the person reads it: a string as itself, anything else as JSON.
char *value_text(const JsonbValue *value) {
    switch (value->type) {
        case jbvString:
            return pnstrdup(value->val.string.val, value->val.string.len);
        case jbvNumeric:
            return DatumGetCString(
                DirectFunctionCall1(numeric_out, NumericGetDatum(value->val.numeric)));
        case jbvBool:
            return pstrdup(value->val.boolean ? "true" : "false");
        case jbvBinary:
            return JsonbToCString(NULL, value->val.binary.data, value->val.binary.len);
        default:
            return pstrdup("null");
    }
}

// An argument's value as the person is shown it: JSON (a string quoted, its control characters
// escaped), without Unicode's bidirectional controls (which could make it read otherwise).
char *shown_value(const JsonbValue *value) {
    StringInfoData json;
    initStringInfo(&json);
    if (value->type == jbvString)
        escape_json(&json, value_text(value));
    else
        appendStringInfoString(&json, value_text(value));
    StringInfoData out;
    initStringInfo(&out);
    for (int i = 0; i < json.len; i++) {
        const unsigned char *at = (const unsigned char *)json.data + i;
        // U+202A..U+202E (E2 80 AA..AE) and U+2066..U+2069 (E2 81 A6..A9).
        if (i + 2 < json.len && at[0] == 0xE2 &&
            ((at[1] == 0x80 && at[2] >= 0xAA && at[2] <= 0xAE) ||
             (at[1] == 0x81 && at[2] >= 0xA6 && at[2] <= 0xA9))) {
            i += 2;
            continue;
        }
        appendStringInfoChar(&out, json.data[i]);
    }
    return out.data;
}

// Seconds since 1970 (what the state carries).
int64 unix_now() {
    return (int64)(GetCurrentTimestamp() / USECS_PER_SEC) +
           (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

// The server key, read (or made, the first time) at each use: deleting it takes effect at once,
// and a key made in a transaction that rolled back is never used. SPI leaves its own memory
// current: the caller's is made current again.
uint8 *server_key() {
    static uint8 key[kKeyBytes];
    bool loaded = false;
    MemoryContext caller = CurrentMemoryContext;
    for (int attempt = 0; attempt < 2 && !loaded; attempt++) {
        // Not read-only: the second round must see the key the first one stored.
        int rc = SPI_execute("SELECT key FROM mcp.confirmation_key", false, 1);
        MemoryContextSwitchTo(caller);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "could not read the confirmation key: %s", SPI_result_code_string(rc));
        if (SPI_processed == 1) {
            bool isnull;
            bytea *value = DatumGetByteaPP(
                SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
            if (isnull || VARSIZE_ANY_EXHDR(value) != kKeyBytes)
                elog(ERROR, "mcp.confirmation_key holds no valid key");
            memcpy(key, VARDATA_ANY(value), kKeyBytes);
            loaded = true;
            break;
        }
        uint8 fresh[kKeyBytes];
        if (!pg_strong_random(fresh, sizeof fresh)) elog(ERROR, "could not make a random key");
        StringInfoData sql;
        initStringInfo(&sql);
        appendStringInfoString(&sql, "INSERT INTO mcp.confirmation_key (key) VALUES ('\\x");
        hex(&sql, fresh, sizeof fresh);
        appendStringInfoString(&sql, "') ON CONFLICT DO NOTHING");
        int stored = SPI_execute(sql.data, false, 0);
        MemoryContextSwitchTo(caller);
        if (stored != SPI_OK_INSERT) elog(ERROR, "could not store the confirmation key");
    }
    if (!loaded) elog(ERROR, "could not read the confirmation key");
    return key;
}

void mac(const char *payload, size_t len, uint8 out[PG_SHA256_DIGEST_LENGTH]) {
    pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
    if (ctx == NULL || pg_hmac_init(ctx, server_key(), kKeyBytes) < 0 ||
        pg_hmac_update(ctx, (const uint8 *)payload, len) < 0 ||
        pg_hmac_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
        elog(ERROR, "HMAC failed");
    pg_hmac_free(ctx);
}

// The call's parts the state is bound to.
struct Binding {
    const char *tool;
    int32 version;
    char args_hash[PG_SHA256_DIGEST_LENGTH * 2 + 1];
    Oid caller;
    const char *principal;  // the caller's principal, or ""
    const char *person;     // "issuer subject", or ""
};

Binding bind(const char *tool, int32 version, Datum arguments, Oid caller, const char *principal) {
    Binding b;
    b.tool = tool;
    b.version = version;
    const char *text =
        arguments == (Datum)0 ? "{}" : JsonbToCString(NULL, &DatumGetJsonbP(arguments)->root, 0);
    uint8 digest[PG_SHA256_DIGEST_LENGTH];
    sha256(text, strlen(text), digest);
    StringInfoData out;
    initStringInfo(&out);
    hex(&out, digest, sizeof digest);
    strlcpy(b.args_hash, out.data, sizeof b.args_hash);
    b.caller = caller;
    b.principal = principal != NULL ? principal : "";
    const char *issuer = pg_mcp::identity_issuer(), *subject = pg_mcp::identity_subject();
    b.person = issuer != NULL && subject != NULL ? psprintf("%s %s", issuer, subject) : "";
    return b;
}

// The payload's fields, as written (only the server writes it: the MAC is checked first).
struct Payload {
    char *tool, *args, *principal, *person, *nonce;
    int64 version, caller, asked, expires;
};

// A number or string member of the payload (numbers come back as their text).
char *payload_member(Jsonb *payload, const char *key) {
    JsonbValue found;
    if (getKeyJsonValueFromContainer(&payload->root, key, strlen(key), &found) == NULL) return NULL;
    if (found.type == jbvString) return pnstrdup(found.val.string.val, found.val.string.len);
    if (found.type == jbvNumeric)
        return DatumGetCString(
            DirectFunctionCall1(numeric_out, NumericGetDatum(found.val.numeric)));
    return NULL;
}

// Why the state is not valid for this call, or NULL (then *out holds it).
const char *check_state(const char *state, const Binding &b, Payload *out) {
    size_t len = strlen(state);
    const char *dot = strchr(state, '.');
    if (len > kMaxStateBytes || dot == NULL) return "it is not a state this server issued";
    StringInfoData payload, given;
    initStringInfo(&payload);
    initStringInfo(&given);
    if (!unhex(state, dot - state, &payload) || !unhex(dot + 1, strlen(dot + 1), &given) ||
        given.len != PG_SHA256_DIGEST_LENGTH)
        return "it is not a state this server issued";
    uint8 expected[PG_SHA256_DIGEST_LENGTH];
    mac(payload.data, payload.len, expected);
    uint8 diff = 0;  // constant time
    for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++) diff |= expected[i] ^ (uint8)given.data[i];
    if (diff != 0) return "its signature does not verify (altered or forged)";
    Jsonb *json = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(payload.data)));
    char *version = payload_member(json, "v"), *caller = payload_member(json, "c");
    char *asked = payload_member(json, "s"), *expires = payload_member(json, "x");
    out->tool = payload_member(json, "t");
    out->args = payload_member(json, "a");
    out->principal = payload_member(json, "p");
    out->person = payload_member(json, "i");
    out->nonce = payload_member(json, "n");
    if (!out->tool || !out->args || !out->principal || !out->person || !out->nonce || !version ||
        !caller || !asked || !expires)
        return "it is incomplete";
    out->version = strtoll(version, NULL, 10);
    out->caller = strtoll(caller, NULL, 10);
    out->asked = strtoll(asked, NULL, 10);
    out->expires = strtoll(expires, NULL, 10);
    if (unix_now() > out->expires) return "it has expired";
    if (strcmp(out->tool, b.tool) != 0 || out->version != b.version)
        return "it was issued for another tool or tool version";
    if (strcmp(out->args, b.args_hash) != 0) return "it was issued for other arguments";
    if (out->caller != (int64)b.caller || strcmp(out->principal, b.principal) != 0 ||
        strcmp(out->person, b.person) != 0)
        return "it was issued to another caller";
    return NULL;
}

// Marks the state's nonce used; false when it was already.
bool consume(const Payload &p) {
    Oid types[2] = {TEXTOID, INT8OID};
    Datum values[2] = {CStringGetTextDatum(p.nonce), Int64GetDatum(p.expires)};
    (void)SPI_execute(
        "DELETE FROM mcp.confirmation_uses WHERE expires_at < now() - interval '1 minute'", false,
        0);
    int rc = SPI_execute_with_args(
        "INSERT INTO mcp.confirmation_uses (nonce, expires_at)"
        " VALUES ($1, to_timestamp($2)) ON CONFLICT DO NOTHING",
        2, types, values, NULL, false, 0);
    if (rc != SPI_OK_INSERT) elog(ERROR, "could not record the confirmation's use");
    return SPI_processed == 1;
}

// The message the person sees: the template with each {name} replaced by the argument's
// value (cut), or a default naming the tool, the caller and the arguments.
char *shown_message(const char *tool, const char *template_text, Datum arguments, Oid caller,
                    const char *principal, const char *person) {
    Jsonb *args = arguments == (Datum)0 ? NULL : DatumGetJsonbP(arguments);
    StringInfoData out;
    initStringInfo(&out);
    if (template_text == NULL) {
        appendStringInfo(&out, "Allow tool \"%s\" to run for %s%s%s with these arguments? %s", tool,
                         principal != NULL ? principal : GetUserNameFromId(caller, false),
                         *person ? ", on behalf of " : "", person,
                         args == NULL ? "{}" : JsonbToCString(NULL, &args->root, 0));
    } else {
        for (const char *at = template_text; *at != '\0'; at++) {
            const char *close = *at == '{' ? strchr(at, '}') : NULL;
            if (close == NULL || close - at > 64 || args == NULL) {
                appendStringInfoChar(&out, *at);
                continue;
            }
            char *key = pnstrdup(at + 1, close - at - 1);
            JsonbValue found;
            if (getKeyJsonValueFromContainer(&args->root, key, strlen(key), &found) == NULL) {
                appendStringInfoChar(&out, *at);
                continue;
            }
            char *value = shown_value(&found);
            int cut = pg_mbcliplen(value, strlen(value), kMaxValueBytes);
            appendBinaryStringInfo(&out, value, cut);
            if (cut < (int)strlen(value)) appendStringInfoString(&out, "...");
            at = close;
        }
    }
    if (out.len > kMaxMessageBytes) {
        int cut = pg_mbcliplen(out.data, out.len, kMaxMessageBytes);
        out.data[cut] = '\0';
        out.len = cut;
        appendStringInfoString(&out, "...");
    }
    return out.data;
}

Datum record(const char *decision, int64 asked, const char *message) {
    StringInfoData json;
    initStringInfo(&json);
    appendStringInfoString(&json, "{\"decision\":");
    escape_json(&json, decision);
    if (asked > 0)
        appendStringInfo(
            &json, ",\"asked_at\":\"%s\"",
            timestamptz_to_str(
                (asked - (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
                USECS_PER_SEC));
    if (message != NULL) {
        appendStringInfoString(&json, ",\"message\":");
        escape_json(&json, message);
    }
    appendStringInfoChar(&json, '}');
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data));
}

}  // namespace

namespace pg_mcp {

void define_confirmation_settings(void) {
    DefineCustomIntVariable(
        "pg_mcp.confirmation_timeout",
        "How long a person has to confirm a call of a tool with confirm => 'ask'.",
        "The state the client carries back with the answer expires after it; a later answer is "
        "refused (and audited), and the client asks again.",
        &confirmation_seconds, 600, 1, 86400, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

void set_call_confirmation(Datum confirmation, bool isnull) {
    clear_call_confirmation();
    input.lxid = compat::local_transaction_id();
    if (isnull) return;
    Jsonb *object = DatumGetJsonbP(confirmation);
    if (!JB_ROOT_IS_OBJECT(object)) return;
    (void)member_text(object, "can_ask", &input.can_ask);
    input.state = member_text(object, "state", NULL);
    input.action = member_text(object, "action", NULL);
}

void clear_call_confirmation() {
    if (input.state != NULL) pfree(input.state);
    if (input.action != NULL) pfree(input.action);
    input = Input();
}

// decide_confirmation, with names resolved in pg_catalog (see there).
static ConfirmationDecision decide(const char *tool, int64 tool_id, int32 version, Datum arguments,
                                   Datum shown_arguments, const char *confirm_message, Oid caller,
                                   const char *principal) {
    ConfirmationDecision d = {ConfirmationDecision::Refuse, NULL, NULL, NULL, (Datum)0, NULL};
    bool current = input_current();
    // A tool dropped and made again starts at version 1: its catalog id tells them apart; and
    // its database, as a database made from this one as a template has the same key.
    Binding b = bind(psprintf("%s#" INT64_FORMAT "@%u", tool, tool_id, MyDatabaseId), version,
                     arguments, caller, principal);
    char *message =
        shown_message(tool, confirm_message, shown_arguments, caller, principal, b.person);
    if (RecoveryInProgress())
        ereport(ERROR,
                (errcode(ERRCODE_PG_MCP_NEEDS_PRIMARY),
                 errmsg("tool \"%s\" needs a person's confirmation, which the primary keeps", tool),
                 errhint("Call it on the primary.")));
    if (!current || input.state == NULL) {
        if (!current || !input.can_ask) {
            d.status = "confirmation_unavailable";
            d.audit_message = "the client cannot ask a person (no elicitation capability)";
            d.agent_message = psprintf(
                "Tool \"%s\" runs only after a person confirms it, and this client cannot ask "
                "(it did not declare the MCP elicitation capability). Nothing was done.",
                tool);
            d.record = record("unavailable", 0, message);
            return d;
        }
        uint8 nonce[16];
        if (!pg_strong_random(nonce, sizeof nonce)) elog(ERROR, "could not make a random nonce");
        int64 now = unix_now();
        StringInfoData payload;
        initStringInfo(&payload);
        appendStringInfoString(&payload, "{\"t\":");
        escape_json(&payload, b.tool);
        appendStringInfo(&payload, ",\"v\":%d,\"a\":\"%s\",\"c\":%u,\"p\":", b.version, b.args_hash,
                         b.caller);
        escape_json(&payload, b.principal);
        appendStringInfoString(&payload, ",\"i\":");
        escape_json(&payload, b.person);
        appendStringInfo(&payload, ",\"s\":" INT64_FORMAT ",\"x\":" INT64_FORMAT ",\"n\":\"", now,
                         now + (int64)confirmation_seconds);
        hex(&payload, nonce, sizeof nonce);
        appendStringInfoString(&payload, "\"}");
        uint8 signature[PG_SHA256_DIGEST_LENGTH];
        mac(payload.data, payload.len, signature);
        StringInfoData state;
        initStringInfo(&state);
        hex(&state, (const uint8 *)payload.data, payload.len);
        appendStringInfoChar(&state, '.');
        hex(&state, signature, sizeof signature);
        StringInfoData asked;
        initStringInfo(&asked);
        appendStringInfoString(&asked, "{\"message\":");
        escape_json(&asked, message);
        appendStringInfoString(&asked, ",\"requestState\":");
        escape_json(&asked, state.data);
        appendStringInfoString(
            &asked, ",\"requestedSchema\":{\"type\":\"object\",\"properties\":{}},\"expiresIn\":");
        appendStringInfo(&asked, "%d}", confirmation_seconds);
        d.kind = ConfirmationDecision::Ask;
        d.status = "confirmation_asked";
        d.audit_message = "a person was asked to confirm the call";
        d.agent_message =
            psprintf("Tool \"%s\" is waiting for a person to confirm this call.", tool);
        d.record = record("asked", now, message);
        d.input_required = asked.data;
        return d;
    }
    // A retry with the person's answer, which only a relay (pg_mcp_bridge's login) may bring: a
    // caller cannot answer for the person.
    Payload p = {};
    Oid relay = get_role_oid("mcp_confirmation_relay", true);
    const char *invalid = !OidIsValid(relay) || !is_member_of_role(GetSessionUserId(), relay)
                              ? "this login may not relay a person's answer (it is not a member of "
                                "mcp_confirmation_relay)"
                              : check_state(input.state, b, &p);
    const char *action = input.action != NULL ? input.action : "";
    if (invalid == NULL && strcmp(action, "accept") != 0 && strcmp(action, "decline") != 0 &&
        strcmp(action, "cancel") != 0 && strcmp(action, "timeout") != 0)
        invalid = "the answer is not accept, decline, cancel or timeout";
    if (invalid == NULL && !consume(p)) invalid = "it was used already";
    if (invalid != NULL) {
        d.status = "confirmation_refused";
        d.audit_message = psprintf("the confirmation state was refused: %s", invalid);
        d.agent_message = psprintf(
            "The confirmation sent for tool \"%s\" is not valid: %s. Nothing was done; call the "
            "tool again without it to ask the person anew.",
            tool, invalid);
        d.record = record("refused", 0, NULL);
        return d;
    }
    if (strcmp(action, "accept") == 0) {
        d.kind = ConfirmationDecision::Run;
        d.record = record("accepted", p.asked, message);
        return d;
    }
    bool declined = strcmp(action, "decline") == 0, timed_out = strcmp(action, "timeout") == 0;
    d.status = declined    ? "declined"
               : timed_out ? "confirmation_timeout"
                           : "confirmation_cancelled";
    d.audit_message = declined    ? "the person declined the call"
                      : timed_out ? "the person did not answer in time"
                                  : "the person dismissed the request without deciding";
    d.agent_message = psprintf("The person %s tool \"%s\". Nothing was done.",
                               declined    ? "declined this call of"
                               : timed_out ? "did not answer in time about this call of"
                                           : "dismissed the request to run",
                               tool);
    d.record = record(declined    ? "declined"
                      : timed_out ? "timeout"
                                  : "cancelled",
                      p.asked, message);
    return d;
}

// Runs no name a caller could shadow: its SQL and functions resolve in pg_catalog only (it runs
// as the extension's owner, in the caller's search_path otherwise).
ConfirmationDecision decide_confirmation(const char *tool, int64 tool_id, int32 version,
                                         Datum arguments, Datum shown_arguments,
                                         const char *confirm_message, Oid caller,
                                         const char *principal) {
    int nest_level = enter_search_path("pg_catalog, pg_temp");
    ConfirmationDecision d = decide(tool, tool_id, version, arguments, shown_arguments,
                                    confirm_message, caller, principal);
    leave_settings(nest_level);
    return d;
}

}  // namespace pg_mcp
