// The one owner of pg_mcp's shared memory. Each part (the audit queues, the rate-limit counters,
// the refresher registry) says how much it needs and initialises its own structure; this module
// requests the space and one LWLock per part through the documented hooks, and calls each part
// at startup. Plain C style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "storage/lwlock.h"
}

namespace pg_mcp {

// The parts, each with its own lock in the "pg_mcp" tranche.
enum class SharedPart { AuditQueue = 0, RateLimits = 1, Refreshers = 2 };
constexpr int kSharedParts = 3;

// Installs the shmem_request and shmem_startup hooks (from _PG_init, while preloading).
void install_shared_memory_hooks(void);

// The lock of a part; valid once shared memory is attached.
LWLock *shared_part_lock(SharedPart part);

// Each part's size (at request time) and its initialisation (at startup, under
// AddinShmemInitLock; `found` when another process made it already).
Size audit_queue_shmem_size(void);
void audit_queue_shmem_init(LWLock *lock);
Size rate_limit_shmem_size(void);
void rate_limit_shmem_init(LWLock *lock);
Size refresher_shmem_size(void);
void refresher_shmem_init(LWLock *lock);

}  // namespace pg_mcp
