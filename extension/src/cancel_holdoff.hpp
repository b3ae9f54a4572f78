// Query cancels around a tool call. A cancel (a client's, a statement_timeout) may stop a
// call's own SQL, and nothing else of it: before the SQL starts it waits, and reaches the SQL
// (which then ends "cancelled", audited as such); after a writing tool's SQL succeeded it waits
// until the caller's transaction ends, so that it cannot roll back a write whose audit record
// already says "ok". That last hold is kept only for a statement that is its own transaction:
// in a transaction block the caller holds, its own ROLLBACK can undo the write anyway. While
// any tool's SQL runs, nothing is held (its timeout must always work): in a statement that
// makes several calls, a cancel during a later call's SQL can still undo an earlier write.
#pragma once

namespace pg_mcp {

void call_begins();                   // cancels wait
void sql_begins();                    // cancels act (one that waited acts at once)
void sql_ended(bool succeeded);       // cancels wait again (also after the SQL's error)
void call_ends(bool keep_to_commit);  // cancels act again, or wait for the transaction's end
// _PG_init: the transaction callback that ends the holds kept to the transaction's end.
void register_cancel_holdoff();

}  // namespace pg_mcp
