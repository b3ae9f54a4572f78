#include "boundary.hpp"

#include "definition_error.hpp"

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
    { fn(arg); }
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

void run_with_cleanup(void (*fn)(void *), void (*cleanup)(void *), void *arg) {
    PG_TRY();
    { fn(arg); }
    PG_CATCH();
    {
        cleanup(arg);
        PG_RE_THROW();
    }
    PG_END_TRY();
    cleanup(arg);
}

Datum call_function_body(const char *function_name, FunctionBody body, FunctionCallInfo fcinfo) {
    ErrorData *pg_error = nullptr;
    bool out_of_memory = false;
    bool definition_error = false;
    char message[1024] = "";
    char detail[1024] = "";
    char hint[1024] = "";
    char sqlstate[6] = "XX000";
    try {
        return body(fcinfo);
    } catch (const PgError &error) {
        pg_error = error.data();
    } catch (const DefinitionError &error) {
        definition_error = true;
        std::snprintf(message, sizeof message, "%s", error.what());
        std::snprintf(detail, sizeof detail, "%s", error.detail().c_str());
        std::snprintf(hint, sizeof hint, "%s", error.hint().c_str());
        if (error.sqlstate().size() == 5)
            std::snprintf(sqlstate, sizeof sqlstate, "%s", error.sqlstate().c_str());
    } catch (const std::bad_alloc &) {
        out_of_memory = true;
    } catch (const std::exception &error) {
        std::snprintf(message, sizeof message, "%s", error.what());
    } catch (...) {
        std::snprintf(message, sizeof message, "unknown C++ exception");
    }
    // Every C++ frame of the body is gone: raising a PostgreSQL error is safe from here.
    if (pg_error != nullptr) ReThrowError(pg_error);
    if (definition_error)
        ereport(ERROR,
                (errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3],
                                       sqlstate[4])),
                 errmsg_internal("%s", message), detail[0] ? errdetail_internal("%s", detail) : 0,
                 hint[0] ? errhint("%s", hint) : 0));
    if (out_of_memory)
        ereport(ERROR,
                (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory in %s", function_name)));
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("internal error in %s: %s", function_name, message)));
    pg_unreachable();
}

}  // namespace pg_mcp
