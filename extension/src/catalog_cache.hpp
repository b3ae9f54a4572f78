// Invalidation of what backends cache from pg_mcp's catalog (tools, grants, principals, rate
// limits, tokens) and from the role catalogs their grant checks read. Changes to the catalog tables
// fire a trigger (per row, and on TRUNCATE; enabled ALWAYS) that queues a relcache invalidation of
// the table (sent to every backend at commit, applied locally at the next command); role and
// membership changes arrive as syscache invalidations (as do database owner changes). Either bumps
// a per-backend generation number, which caches compare with the one they were filled at. Plain C
// style.
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "utils/hsearch.h"
}

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

// A backend-local hash table of what was read from the catalog (HASH_BLOBS keys), emptied when
// the generation changes or it holds max_entries. Its entries' memory belongs in `context`,
// reset with it. Define one per cache with the first four members; the rest is managed here.
struct CatalogCache {
    const char *name;
    Size keysize;
    Size entrysize;
    long max_entries;
    MemoryContext context;  // NULL until first used
    HTAB *table;
    uint64 generation;
};
// The cache's current table, after applying pending invalidations (catalog_generation).
HTAB *current_catalog_cache(CatalogCache *cache);

}  // namespace pg_mcp
