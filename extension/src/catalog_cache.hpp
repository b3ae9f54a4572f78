// Invalidation of what backends cache from pg_mcp's catalog (tools, grants, principals, rate
// limits, tokens) and from the role catalogs their grant checks read. Changes to the catalog tables
// fire a trigger (per row, and on TRUNCATE; enabled ALWAYS) that queues a relcache invalidation of
// the table (sent to every backend at commit, applied locally at the next command); role and
// membership changes arrive as syscache invalidations (as do database owner changes). Either bumps
// a per-backend generation number, which caches compare with the one they were filled at. Plain C
// style.
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

// Called by the catalog tables' trigger.
void note_catalog_change(void);

// Registers the invalidation callbacks (once per process, from _PG_init).
void register_catalog_cache_callbacks(void);

// The current generation, after applying any pending invalidation messages.
uint64 catalog_generation(void);

// Whether this transaction changed a catalog table: its own invalidations apply only at its next
// command, so within the same statement a cache could still answer from before the change.
bool catalog_changed_in_transaction(void);

}  // namespace pg_mcp
