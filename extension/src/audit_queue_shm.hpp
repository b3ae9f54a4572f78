// The audit queue's shared memory as its two sides see it: the backends that queue records
// (audit_queue.cpp) and the background writer that inserts them (audit_writer.cpp).
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "access/xlogdefs.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
}

namespace pg_mcp::audit_shm {

// One database's queue: a ring of length-prefixed packed records (audit_record.hpp).
struct AuditSlot {
    Oid dbid;  // InvalidOid: free
    bool writer_registered;
    pid_t writer_pid;
    Latch *writer_latch;
    uint64 next_seq;           // sequence of the next record (records are numbered from 1)
    uint64 committed_seq;      // last record committed (visible; durable once WAL is flushed to
                               // committed_lsn)
    int64 committed_id;        // its mcp.audit_log id
    XLogRecPtr committed_lsn;  // end of that batch's commit record
    uint64 head;               // bytes ever written
    uint64 tail;               // bytes ever committed (consumed)
    uint64 reserved;           // bytes promised to calls whose SQL is running (see reserve)
    uint64 awaited_seq;        // the last record a backend waits for (durable mode, await_audit)
    // The writer is holding off a batch that nobody awaits (pg_mcp.audit_writer_delay), to
    // write more records per transaction: queueing a record that nobody awaits does not wake it.
    bool writer_gathering;
    ConditionVariable committed_cv;
    ConditionVariable space_cv;
};

struct AuditShared {
    LWLock *lock;  // allocation of slots and every slot's fields
    int nslots;
    Size ring_size;
    AuditSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

extern AuditShared *shared;

// The slot's queue is over a quarter full: its records are written without delay.
inline bool queue_filling(const AuditSlot *s) {
    return s->head - s->tail > shared->ring_size / 4;
}

// Settings the writer reads.
extern bool writer_paused;
extern int writer_idle_ms;
extern int writer_delay_ms;

// Copies len bytes out of the slot's ring from byte `at` (ever written), wrapping around.
void ring_copy_out(int slot, uint64 at, char *data, Size len);

}  // namespace pg_mcp::audit_shm
