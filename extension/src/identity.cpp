// mcp.assume_identity(identity jsonb): pg_mcp_bridge --auth oauth verified an access token
// (signature, issuer, audience, expiry, scopes) and hands over its claims in the call's own
// statement. The identity is mapped to a principal by mcp.identity_mappings (looked up as the
// function's owner: callers cannot read the mappings), the principal's role is set for the
// rest of the transaction as SET LOCAL ROLE would (PostgreSQL checks that the login is a
// member of it), and the claims stay readable (mcp.claim) until the transaction ends. Only
// members of mcp_identity_verifier may vouch for claims, once per transaction; an identity
// no mapping matches is refused and audited as denied. Not SECURITY DEFINER on purpose (a
// role cannot be set inside one).
#include "identity.hpp"

#include "audit.hpp"
#include "boundary.hpp"
#include "definition_error.hpp"
#include "security.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <nlohmann/json.hpp>
#include <string>

namespace {

using nlohmann::json;

// The identity of one transaction (its local id), in memory no SQL can reach.
struct Identity {
    LocalTransactionId lxid = InvalidLocalTransactionId;
    int nest_level = 0;  // the (sub)transaction that set it: its abort ends the identity
    std::string issuer, subject, client_id, claims_text;
    json claims;
};
Identity current;

bool active() {
    return current.lxid != InvalidLocalTransactionId && MyProc != NULL &&
           current.lxid == pg_mcp::compat::local_transaction_id();
}

// A subtransaction that set the identity and aborts takes it back (as it takes back the role
// it set): claims never outlive the role they came with.
void forget_on_abort(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB && active() &&
        GetCurrentTransactionNestLevel() <= current.nest_level)
        current.lxid = InvalidLocalTransactionId;
}
bool callback_registered = false;

const char *or_null(const std::string &value) {
    return active() && !value.empty() ? value.c_str() : NULL;
}

// The mapping, prepared once per session.
SPIPlanPtr map_plan = NULL;

struct Mapped {
    char *principal;  // NULL: no mapping matches
    Oid role;
    bool audience_accepted;  // the token's "aud" names an audience accepted for the resource
};

// Plain C style: runs as the function's owner through SPI.
Mapped map_identity(FunctionCallInfo fcinfo, const char *issuer, const char *resource,
                    const char *claims) {
    Mapped found = {NULL, InvalidOid, true};
    MemoryContext caller = CurrentMemoryContext;
    pg_mcp::RoleSwitch as_owner =
        pg_mcp::enter_role(pg_mcp::function_owner(fcinfo), "pg_catalog, pg_temp", false, true);
    if (map_plan == NULL) {
        const char *schema =
            quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
        char *sql = psprintf(
            "SELECT principal, role, audience_accepted"
            " FROM %s._map_identity($1, $2, $3::jsonb)",
            schema);
        Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};
        SPIPlanPtr plan = SPI_prepare(sql, 3, types);
        if (plan == NULL) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "SPI_keepplan failed");
        map_plan = plan;
    }
    Datum values[3] = {CStringGetTextDatum(issuer), CStringGetTextDatum(resource),
                       CStringGetTextDatum(claims)};
    // The latest snapshot, whatever the isolation level: a removed mapping counts at once.
    if (SPI_execute_snapshot(map_plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot, true,
                             false, 1) != SPI_OK_SELECT)
        elog(ERROR, "mapping the identity failed");
    if (SPI_processed == 1) {
        bool isnull;
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        Datum accepted = SPI_getbinval(tuple, desc, 3, &isnull);
        found.audience_accepted = !isnull && DatumGetBool(accepted);
        Datum name = SPI_getbinval(tuple, desc, 1, &isnull);
        if (!isnull && found.audience_accepted) {
            MemoryContext spi = MemoryContextSwitchTo(caller);
            found.principal = TextDatumGetCString(name);
            MemoryContextSwitchTo(spi);
            found.role = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
        }
    }
    pg_mcp::leave_role(as_owner);
    return found;
}

// The identity asked for, checked for shape: what the bridge must send.
struct Asserted {
    std::string resource, issuer, subject, client_id, claims_text;
    json claims;
};

std::string string_claim(const json &claims, const char *name) {
    auto found = claims.find(name);
    return found != claims.end() && found->is_string() ? found->get<std::string>() : std::string();
}

Asserted parse_identity(const std::string &text) {
    json identity;
    try {
        identity = json::parse(text);
    } catch (const json::exception &) {
        throw pg_mcp::DefinitionError("22023", "the identity is not valid JSON");
    }
    const char *shape =
        R"({"resource": "https://mcp.example.com/mcp", "claims": {"iss": ..., "sub": ..., ...}})";
    if (!identity.is_object() || !identity.contains("resource") ||
        !identity["resource"].is_string() || !identity.contains("claims") ||
        !identity["claims"].is_object())
        throw pg_mcp::DefinitionError("22023",
                                      "the identity must be an object with a resource and claims",
                                      {}, std::string("For example: ") + shape);
    Asserted out;
    out.resource = identity["resource"].get<std::string>();
    out.claims = identity["claims"];
    out.issuer = string_claim(out.claims, "iss");
    out.subject = string_claim(out.claims, "sub");
    // RFC 9068 / RFC 7662 name the client "client_id"; OpenID Connect tokens (Entra v2.0,
    // Auth0, Keycloak) "azp"; Entra v1.0 tokens "appid".
    out.client_id = string_claim(out.claims, "client_id");
    if (out.client_id.empty()) out.client_id = string_claim(out.claims, "azp");
    if (out.client_id.empty()) out.client_id = string_claim(out.claims, "appid");
    if (out.issuer.empty() || out.subject.empty())
        throw pg_mcp::DefinitionError("28000",
                                      "the identity's claims have no \"iss\" or no \"sub\"");
    // Whether the token is meant for this resource (its "aud" against the audiences accepted
    // for it) is checked with the mapping. The resource itself is the bridge's word: any
    // member of mcp_identity_verifier is trusted to name it truthfully, as it is trusted with
    // the claims.
    out.claims_text = out.claims.dump();
    return out;
}

// An identity no mapping matches: audited as denied (the record survives the error).
void audit_unmapped(const Asserted &identity, const char *message) {
    pg_mcp::AuditRecord record;
    pg_mcp::init_audit_record(&record);
    record.called_at = GetCurrentTimestamp();
    record.caller_role = GetUserNameFromId(GetUserId(), false);
    record.tool_name = "mcp.assume_identity";
    record.status = "denied";
    record.duration_ms = 0;
    record.message = message;
    record.auth_issuer = identity.issuer.c_str();
    record.auth_subject = identity.subject.c_str();
    record.auth_client_id = identity.client_id.empty() ? NULL : identity.client_id.c_str();
    pg_mcp::write_audit_record(&record);
}

}  // namespace

namespace pg_mcp {

const char *identity_claims_text() {
    return or_null(current.claims_text);
}
const char *identity_issuer() {
    return or_null(current.issuer);
}
const char *identity_subject() {
    return or_null(current.subject);
}
const char *identity_client_id() {
    return or_null(current.client_id);
}

}  // namespace pg_mcp

PG_MCP_FUNCTION(pg_mcp_assume_identity) {
    if (PG_ARGISNULL(0)) throw pg_mcp::DefinitionError("22004", "the identity must not be NULL");
    // The login must be a member of mcp_identity_verifier (membership, not inherited
    // privileges: a bridge's login is usually NOINHERIT), and calling as itself or as another
    // member: a tool's SQL, running as a principal's or a tool's role, cannot vouch.
    Oid login = GetSessionUserId();
    Oid verifier = pg_mcp::pg_guard([] { return get_role_oid("mcp_identity_verifier", false); });
    if (!pg_mcp::pg_guard([&] {
            return is_member_of_role(login, verifier) && is_member_of_role(GetUserId(), verifier);
        }))
        throw pg_mcp::DefinitionError(
            "42501",
            "only logins that are members of mcp_identity_verifier may vouch for OAuth identities",
            {},
            "As a superuser: GRANT mcp_identity_verifier TO the login of pg_mcp_bridge --auth "
            "oauth.");
    if (active())
        throw pg_mcp::DefinitionError("42501",
                                      "this transaction already has an OAuth identity; it cannot "
                                      "be changed");
    char *text = pg_mcp::pg_guard([&] {
        return JsonbToCString(NULL, &PG_GETARG_JSONB_P(0)->root, VARSIZE(PG_GETARG_JSONB_P(0)));
    });
    Asserted identity = parse_identity(text);
    std::string unmapped;
    Mapped mapped = pg_mcp::pg_guard([&] {
        return map_identity(fcinfo, identity.issuer.c_str(), identity.resource.c_str(),
                            identity.claims_text.c_str());
    });
    if (!mapped.audience_accepted)
        throw pg_mcp::DefinitionError(
            "28000",
            "the token's audience (aud) is not one accepted for the resource \"" +
                identity.resource + "\"",
            {},
            "See token_audiences in mcp.identity_providers; mcp.alter_identity_provider sets "
            "them.");
    if (mapped.principal == NULL) {
        unmapped = "no identity mapping for subject \"" + identity.subject + "\" of issuer \"" +
                   identity.issuer + "\" (resource " + identity.resource + ")";
        pg_mcp::pg_guard([&] { audit_unmapped(identity, unmapped.c_str()); });
        std::string issuer_literal =
            pg_mcp::pg_guard([&] { return quote_literal_cstr(identity.issuer.c_str()); });
        std::string subject_literal =
            pg_mcp::pg_guard([&] { return quote_literal_cstr(identity.subject.c_str()); });
        throw pg_mcp::DefinitionError("28000", unmapped, {},
                                      "A database administrator maps it: SELECT mcp.map_identity(" +
                                          issuer_literal + ", '<principal>', 'sub', " +
                                          subject_literal + ");");
    }
    char *role = pg_mcp::pg_guard([&] { return GetUserNameFromId(mapped.role, false); });
    if (pg_mcp::pg_guard([&] { return superuser_arg(mapped.role); }))
        throw pg_mcp::DefinitionError("42501", std::string("role \"") + role +
                                                   "\" of principal \"" + mapped.principal +
                                                   "\" has become a superuser; refused");
    if (!pg_mcp::pg_guard([&] { return is_member_of_role(login, mapped.role); })) {
        char *login_name = pg_mcp::pg_guard([&] { return GetUserNameFromId(login, false); });
        throw pg_mcp::DefinitionError(
            "42501",
            std::string("login role \"") + login_name + "\" cannot act as principal \"" +
                mapped.principal + "\": it is not a member of role \"" + role + "\"",
            {},
            std::string("As a superuser: GRANT ") + quote_identifier(role) + " TO " +
                quote_identifier(login_name) + ";");
    }
    pg_mcp::pg_guard([&] {
        (void)set_config_option("role", role, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                false);
    });
    current.issuer = identity.issuer;
    current.subject = identity.subject;
    current.client_id = identity.client_id;
    current.claims_text = identity.claims_text;
    current.claims = std::move(identity.claims);
    current.lxid = pg_mcp::compat::local_transaction_id();
    current.nest_level = GetCurrentTransactionNestLevel();
    if (!callback_registered) {
        pg_mcp::pg_guard([] { RegisterSubXactCallback(forget_on_abort, NULL); });
        callback_registered = true;
    }
    return pg_mcp::pg_guard([&] { return PointerGetDatum(cstring_to_text(mapped.principal)); });
}

// mcp.claim(name): a string claim as itself, any other as its JSON text, NULL without one.
PG_MCP_FUNCTION(pg_mcp_claim) {
    if (PG_ARGISNULL(0) || !active()) PG_RETURN_NULL();
    char *name = pg_mcp::pg_guard([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
    auto found = current.claims.find(name);
    if (found == current.claims.end() || found->is_null()) PG_RETURN_NULL();
    std::string value = found->is_string() ? found->get<std::string>() : found->dump();
    return pg_mcp::pg_guard([&] { return PointerGetDatum(cstring_to_text(value.c_str())); });
}

PG_MCP_FUNCTION(pg_mcp_claims) {
    if (!active()) PG_RETURN_NULL();
    return pg_mcp::pg_guard(
        [] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(current.claims_text.c_str())); });
}
