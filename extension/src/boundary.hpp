// The one module where C++ and PostgreSQL error handling meet.
//
// Invariants (every other file relies on them):
//  * No C++ exception reaches PostgreSQL: SQL-callable functions are defined with
//    PG_MCP_FUNCTION, whose wrapper catches everything and raises a single ereport(ERROR)
//    after the C++ body has fully unwound.
//  * No ereport(ERROR) longjmps over a C++ frame that owns resources: C++ code that calls a
//    PostgreSQL function which may error does it through pg_guard(), which turns the error into
//    a PgError exception. Code written in plain C style (palloc'd memory, no destructors) may
//    call PostgreSQL directly.
//  * Errors from a tool's SQL are caught by run_in_subtransaction(), which rolls the
//    subtransaction back and hands the copied error to the caller.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "fmgr.h"
}

#include <exception>
#include <type_traits>
#include <utility>

namespace pg_mcp {

// A PostgreSQL ERROR caught by pg_guard and carried through C++ frames.
class PgError final : public std::exception {
  public:
    explicit PgError(ErrorData *data) : data_(data) {}
    const char *what() const noexcept override;
    ErrorData *data() const noexcept { return data_; }

  private:
    ErrorData *data_;  // copied into the memory context current when pg_guard was entered
};

// Runs fn(arg) under PG_TRY. On ERROR: restores the memory context, copies and flushes the
// error, and throws PgError. fn must not own C++ objects with destructors.
void pg_guard_raw(void (*fn)(void *), void *arg);

template <typename Fn>
auto pg_guard(Fn &&fn) -> decltype(fn()) {
    using Result = decltype(fn());
    if constexpr (std::is_void_v<Result>) {
        pg_guard_raw([](void *p) { (*static_cast<std::remove_reference_t<Fn> *>(p))(); }, &fn);
    } else {
        static_assert(std::is_trivially_destructible_v<Result>,
                      "pg_guard returns only plain values (Datum, pointers, numbers)");
        struct Frame {
            std::remove_reference_t<Fn> *fn;
            Result result;
        } frame{&fn, Result{}};
        pg_guard_raw(
            [](void *p) {
                auto *f = static_cast<Frame *>(p);
                f->result = (*f->fn)();
            },
            &frame);
        return frame.result;
    }
}

// Outcome of run_in_subtransaction: on failure, the error copied into the caller's context.
struct SubtransactionResult {
    bool ok;
    ErrorData *error;
};

// Runs fn(arg) inside an internal subtransaction. On success the subtransaction is released
// (committed into the caller's transaction); on ERROR it is rolled back and the error copied
// out, so the caller's transaction and its audit work continue. Plain C-style fn only.
SubtransactionResult run_in_subtransaction(void (*fn)(void *), void *arg);

// Runs fn(arg), then cleanup(arg) whether fn returned or raised an ERROR (which then
// continues to propagate). Plain C-style fn and cleanup only.
void run_with_cleanup(void (*fn)(void *), void (*cleanup)(void *), void *arg);

// Body of a SQL-callable function. May throw; may call PostgreSQL directly only in C style.
using FunctionBody = Datum (*)(FunctionCallInfo);

// Calls body and converts any C++ exception into ereport(ERROR) once body has unwound.
Datum call_function_body(const char *function_name, FunctionBody body, FunctionCallInfo fcinfo);

}  // namespace pg_mcp

// Declares a SQL-callable function NAME whose C++ body is NAME_body(FunctionCallInfo).
#define PG_MCP_FUNCTION(NAME)                                          \
    static Datum NAME##_body(FunctionCallInfo fcinfo);                 \
    extern "C" {                                                       \
    PG_FUNCTION_INFO_V1(NAME);                                         \
    }                                                                  \
    extern "C" Datum NAME(PG_FUNCTION_ARGS) {                          \
        return pg_mcp::call_function_body(#NAME, NAME##_body, fcinfo); \
    }                                                                  \
    static Datum NAME##_body(FunctionCallInfo fcinfo)
