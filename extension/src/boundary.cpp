#include "boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

#include <cstdio>
#include <new>

namespace pg_mcp {

const char *PgError::what() const noexcept {
    return data_ != nullptr && data_->message != nullptr ? data_->message : "PostgreSQL error";
}

void pg_guard_raw(void (*fn)(void *), void *arg) {
    MemoryContext caller_context = CurrentMemoryContext;
    ErrorData *volatile error = nullptr;
    PG_TRY();
    {
        fn(arg);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        error = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    if (error != nullptr) throw PgError(error);
}

SubtransactionResult run_in_subtransaction(void (*fn)(void *), void *arg) {
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    volatile bool ok = true;
    ErrorData *volatile error = nullptr;

    BeginInternalSubTransaction(NULL);
    MemoryContextSwitchTo(caller_context);
    PG_TRY();
    {
        fn(arg);
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller_context);
        CurrentResourceOwner = caller_owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        ok = false;
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller_context);
        CurrentResourceOwner = caller_owner;
    }
    PG_END_TRY();
    return SubtransactionResult{ok, error};
}

Datum call_function_body(const char *function_name, FunctionBody body, FunctionCallInfo fcinfo) {
    ErrorData *pg_error = nullptr;
    bool out_of_memory = false;
    char message[1024] = "";
    try {
        return body(fcinfo);
    } catch (const PgError &error) {
        pg_error = error.data();
    } catch (const std::bad_alloc &) {
        out_of_memory = true;
    } catch (const std::exception &error) {
        std::snprintf(message, sizeof message, "%s", error.what());
    } catch (...) {
        std::snprintf(message, sizeof message, "unknown C++ exception");
    }
    // Every C++ frame of the body is gone: raising a PostgreSQL error is safe from here.
    if (pg_error != nullptr) ReThrowError(pg_error);
    if (out_of_memory)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory in %s", function_name)));
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("internal error in %s: %s", function_name, message)));
    pg_unreachable();
}

}  // namespace pg_mcp
