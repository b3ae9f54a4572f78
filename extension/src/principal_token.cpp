// mcp.assume_principal(token_sha256): a bridge serving many agents over one login runs each
// call as the principal of the agent's bearer token. The token's principal is looked up as
// the function's owner (agents cannot read the tokens), cached in the backend until the
// catalog changes (a revoke applies to the next call), then its role is set for the rest of
// the transaction, as SET LOCAL ROLE would: PostgreSQL itself checks that the session's login
// role is a member of it. Not SECURITY DEFINER on purpose (a role cannot be set inside one).
#include "boundary.hpp"
#include "catalog_cache.hpp"
#include "identity.hpp"
#include "security.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace {

// The lookup, prepared once per session.
SPIPlanPtr lookup_plan = NULL;

struct Principal {
    char *name;  // NULL: no active token with this hash
    Oid role;
    TimestampTz expires_at;  // DT_NOEND: never
};

// Looks the token up as the function's owner: its principal if it is not revoked (its expiry
// is checked by the caller).
Principal query_principal(FunctionCallInfo fcinfo, Datum hash, MemoryContext result_context) {
    Principal found = {NULL, InvalidOid, DT_NOEND};
    pg_mcp::RoleSwitch as_owner =
        pg_mcp::enter_role(pg_mcp::function_owner(fcinfo), "pg_catalog, pg_temp", false, true);
    if (lookup_plan == NULL) {
        const char *schema =
            quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
        char *sql = psprintf(
            "SELECT p.name, p.role::oid, t.expires_at FROM %s.principal_tokens t"
            "  JOIN %s.principals p ON p.name = t.principal"
            " WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL",
            schema, schema);
        Oid types[1] = {BYTEAOID};
        SPIPlanPtr plan = SPI_prepare(sql, 1, types);
        if (plan == NULL) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "SPI_keepplan failed");
        lookup_plan = plan;
    }
    Datum values[1] = {hash};
    // The latest snapshot, whatever the isolation level: a revoked token is refused at once.
    if (SPI_execute_snapshot(lookup_plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot, true,
                             false, 1) != SPI_OK_SELECT)
        elog(ERROR, "looking up the token failed");
    if (SPI_processed == 1) {
        bool isnull;
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        Datum name = SPI_getbinval(tuple, desc, 1, &isnull);
        MemoryContext spi = MemoryContextSwitchTo(result_context);
        found.name = TextDatumGetCString(name);
        MemoryContextSwitchTo(spi);
        found.role = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
        Datum expires = SPI_getbinval(tuple, desc, 3, &isnull);
        if (!isnull) found.expires_at = DatumGetTimestampTz(expires);
    }
    pg_mcp::leave_role(as_owner);
    return found;
}

// Tokens resolved in this backend, by SHA-256, until the catalog generation changes (a token,
// principal or role changed; catalog_cache.hpp): a call with a known token costs no lookup.
// Unknown and revoked hashes are not kept: each costs a lookup, as before the cache.
using pg_mcp::CatalogCache;

struct TokenEntry {
    uint8 hash[32];  // the key
    Principal principal;
};
CatalogCache tokens = {
    "pg_mcp tokens", sizeof(((TokenEntry *)NULL)->hash), sizeof(TokenEntry), 1024, NULL, NULL, 0};

Principal find_principal(FunctionCallInfo fcinfo, Datum hash_datum) {
    bytea *hash = DatumGetByteaPP(hash_datum);
    Principal found;
    // Only a SHA-256 can be a token's (the column's CHECK); a transaction that changed the
    // catalog reads it uncached for the rest of it.
    if (VARSIZE_ANY_EXHDR(hash) != 32 || pg_mcp::catalog_changed_in_transaction()) {
        found = query_principal(fcinfo, hash_datum, CurrentMemoryContext);
    } else {
        HTAB *cache = pg_mcp::current_catalog_cache(&tokens);
        TokenEntry *entry = (TokenEntry *)hash_search(cache, VARDATA_ANY(hash), HASH_FIND, NULL);
        if (entry != NULL) {
            found = entry->principal;
        } else {
            // Entered only once the lookup succeeded, and only for a token that exists: a failed
            // lookup leaves nothing behind, and unknown hashes cannot crowd out known tokens.
            found = query_principal(fcinfo, hash_datum, tokens.context);
            if (found.name != NULL) {
                entry = (TokenEntry *)hash_search(cache, VARDATA_ANY(hash), HASH_ENTER, NULL);
                entry->principal = found;
            }
        }
    }
    // Expired by now (as of the statement's start, as the lookup's SQL had it).
    if (found.name != NULL && found.expires_at != DT_NOEND &&
        found.expires_at <= GetCurrentStatementStartTimestamp())
        found.name = NULL;
    return found;
}

}  // namespace

PG_MCP_FUNCTION(pg_mcp_assume_principal) {
    // A transaction's OAuth identity (mcp.assume_identity) and a token's principal never mix:
    // the claims and the audit row's person would belong to another principal.
    if (pg_mcp::identity_issuer() != NULL)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("this transaction already has an OAuth identity; a token cannot "
                               "be used in it")));
    Principal principal =
        PG_ARGISNULL(0) ? Principal{NULL, InvalidOid} : find_principal(fcinfo, PG_GETARG_DATUM(0));
    if (principal.name == NULL)
        ereport(ERROR, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
                        errmsg("unknown, expired or revoked token"),
                        errhint("Ask the database administrator for a token (mcp.create_token).")));
    char *role = GetUserNameFromId(principal.role, false);
    if (superuser_arg(principal.role))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("role \"%s\" of principal \"%s\" has become a superuser; refused",
                               role, principal.name)));
    Oid login = GetSessionUserId();
    if (!is_member_of_role(login, principal.role)) {
        char *login_name = GetUserNameFromId(login, false);
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("login role \"%s\" cannot act as principal \"%s\": it is not a member of "
                        "role \"%s\"",
                        login_name, principal.name, role),
                 errhint("As a superuser: GRANT %s TO %s;", quote_identifier(role),
                         quote_identifier(login_name))));
    }
    (void)set_config_option("role", role, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                            false);
    PG_RETURN_TEXT_P(cstring_to_text(principal.name));
}
