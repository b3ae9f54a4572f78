// Query cancels held around a tool call (cancel_holdoff.hpp), counted so that every hold taken
// is given back once: on success, after an error, at the transaction's end.
#include "cancel_holdoff.hpp"

#include "pg_compat.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
}

namespace pg_mcp {

namespace {

// Holds of this module counted in QueryCancelHoldoffCount: the current call's (0 or 1), and
// those kept until the transaction ends. An ERROR resets the counter to zero (errfinish);
// holds are then taken again where they must last, and given back only as far as counted.
int call_hold = 0;
int transaction_holds = 0;

void give_back(int count) {
    while (count-- > 0 && QueryCancelHoldoffCount > 0) QueryCancelHoldoffCount--;
}

void at_transaction_end(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            give_back(transaction_holds + call_hold);
            transaction_holds = call_hold = 0;
            break;
        default:
            break;
    }
}

}  // namespace

void call_begins() {
    // An ERROR since the last call (caught by the caller) dropped every hold.
    if (QueryCancelHoldoffCount == 0) transaction_holds = call_hold = 0;
    give_back(call_hold);
    HOLD_CANCEL_INTERRUPTS();
    call_hold = 1;
}

void sql_begins() {
    // Every hold goes while the SQL runs, also those kept for earlier writes of the same
    // statement: a tool's timeout, statement_timeout and a client's cancel always stop it.
    give_back(call_hold + transaction_holds);
    call_hold = 0;
    CHECK_FOR_INTERRUPTS();
}

void sql_ended(bool succeeded) {
    // (After an ERROR the counter was reset: whatever was counted is gone already.)
    if (!succeeded) give_back(call_hold);
    call_hold = 0;
    for (int i = 0; i < transaction_holds; i++) HOLD_CANCEL_INTERRUPTS();
    HOLD_CANCEL_INTERRUPTS();
    call_hold = 1;
}

void call_ends(bool keep_to_commit) {
    if (keep_to_commit)
        transaction_holds += call_hold;
    else
        give_back(call_hold);
    call_hold = 0;
}

void register_cancel_holdoff() {
    RegisterXactCallback(at_transaction_end, nullptr);
}

}  // namespace pg_mcp
