// The OAuth identity of the current transaction, set by mcp.assume_identity (the claims an
// OAuth resource server verified) and read by mcp.claim, claim-bound parameters and the
// audit record. It lasts until the end of the transaction that set it. Plain C accessors.
#pragma once

namespace pg_mcp {

// Each NULL when the current transaction has no OAuth identity.
const char *identity_claims_text();  // every claim, as a JSON object
const char *identity_issuer();
const char *identity_subject();
const char *identity_client_id();

}  // namespace pg_mcp
