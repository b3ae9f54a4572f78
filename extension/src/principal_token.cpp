// mcp.assume_principal(token_sha256): a bridge serving many agents over one login runs each
// call as the principal of the agent's bearer token. The token's principal is looked up as
// the function's owner (agents cannot read the tokens), then its role is set for the rest of
// the transaction, as SET LOCAL ROLE would: PostgreSQL itself checks that the session's login
// role is a member of it. Not SECURITY DEFINER on purpose (a role cannot be set inside one).
#include "boundary.hpp"
#include "security.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

namespace {

// The lookup, prepared once per session.
SPIPlanPtr lookup_plan = NULL;

struct Principal {
    char *name;  // NULL: no active token with this hash
    Oid role;
};

Principal find_principal(FunctionCallInfo fcinfo, Datum hash) {
    Principal found = {NULL, InvalidOid};
    MemoryContext caller = CurrentMemoryContext;
    pg_mcp::RoleSwitch as_owner =
        pg_mcp::enter_role(pg_mcp::function_owner(fcinfo), "pg_catalog, pg_temp", false, true);
    if (lookup_plan == NULL) {
        const char *schema =
            quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
        char *sql = psprintf(
            "SELECT p.name, p.role::oid FROM %s.principal_tokens t"
            "  JOIN %s.principals p ON p.name = t.principal"
            " WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL"
            "   AND (t.expires_at IS NULL OR t.expires_at > pg_catalog.statement_timestamp())",
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
        MemoryContext spi = MemoryContextSwitchTo(caller);
        found.name = TextDatumGetCString(name);
        MemoryContextSwitchTo(spi);
        found.role = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
    }
    pg_mcp::leave_role(as_owner);
    return found;
}

}  // namespace

PG_MCP_FUNCTION(pg_mcp_assume_principal) {
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
