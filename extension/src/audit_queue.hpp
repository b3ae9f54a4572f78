// The audit queue: audit records pass through shared memory to a background writer, which
// inserts them into mcp.audit_log in its own transactions (many records per commit). A
// record queued is out of the caller's hands: no ROLLBACK, failed statement, swallowed
// exception or terminated session can take it back. Plain C style.
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

enum class AuditMode { Durable, Fast };

// Settings; called from _PG_init (shared memory: shared_memory.hpp).
void define_audit_settings(void);
bool audit_queue_available(void);  // the library was preloaded and shared memory exists

// Reserves room in this database's queue for one record of up to record_bytes
// (audit_record_bound), waiting as queueing would (bounded by pg_mcp.audit_wait_timeout, then
// refusing). Taken before a tool's SQL runs, so that the record of a call that ran can always
// be queued: that record (queued with use_reservation) uses it; a (sub)transaction abort or
// the process's exit gives it back.
void reserve_audit_record(Size record_bytes);

// Queues one record (packed by pack_audit_record) for the current database. Waits for room
// (bounded by pg_mcp.audit_wait_timeout, then errors); in durable mode also waits until the
// row is committed and flushed, and returns its mcp.audit_log id; in fast mode returns 0.
// A record queued without waiting, whose caller confirms durability itself before it answers
// (mcp.await_audit): where it is in the queue. slot -1: none.
struct AuditPending {
    int slot;
    uint64 seq;
};
// A call whose write already happened: a durable wait past pg_mcp.audit_wait_timeout warns
// and returns 0 instead of raising (an ERROR would roll back the write its record says "ok" to).
void set_durable_wait_after_write(bool after_write);
// pending: in durable mode, queue without waiting and say where (the caller awaits it).
int64 queue_audit_record(const char *record, Size len, bool use_reservation,
                         AuditPending *pending = NULL);
// Waits until record `seq` of `slot` is committed and flushed (as a durable call would, bounded
// by pg_mcp.audit_wait_timeout); returns its mcp.audit_log id (0 if no longer known).
int64 await_audit_record(int slot, uint64 seq);
// The same with the wait chosen by the caller (durable: as in durable mode).
int64 enqueue_audit_record(const char *record, Size len, bool durable, bool use_reservation);
// Waits until every record this backend queued is committed and flushed; returns the last
// one's id (0 if it queued none).
int64 await_queued_audit_records();

// Restarts the database's materialized-view refresher if views are scheduled (refresher.cpp);
// called by the writer as it starts. Never raises.
void start_refresher_if_scheduled();
// The background writer's entry point (one per database with queued records).
extern "C" void pg_mcp_audit_writer_main(Datum main_arg);

}  // namespace pg_mcp
