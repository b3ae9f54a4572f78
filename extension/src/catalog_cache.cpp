#include "catalog_cache.hpp"

#include "boundary.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "storage/proc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace pg_mcp {

namespace {

const char *const kWatchedTables[] = {"tools",       "tool_grants",      "principals",
                                      "rate_limits", "principal_tokens", "confirmation_policies"};
// Tables a catalog not yet updated from 0.1.0 (ALTER EXTENSION UPDATE) lacks: from this one on.
constexpr int kFirstOptional = 5;
constexpr int kWatchedCount = sizeof kWatchedTables / sizeof kWatchedTables[0];

uint64 generation = 1;
LocalTransactionId changed_in = InvalidLocalTransactionId;  // last transaction that changed one
bool watched_known = false;  // watched[] resolved for the installed extension
Oid watched[kWatchedCount];

void forget_all(void) {
    generation++;
    watched_known = false;
}

void on_relcache(Datum, Oid relid) {
    if (relid == InvalidOid) {  // everything (e.g. after an invalidation queue overflow)
        forget_all();
        return;
    }
    if (!watched_known) return;  // nothing cached relies on them yet
    for (int i = 0; i < kWatchedCount; i++)
        if (watched[i] == relid) {
            // The table changed, or was dropped (then it is resolved again at the next use).
            forget_all();
            return;
        }
}

void on_syscache(Datum, int, uint32) {
    generation++;
}

}  // namespace

void note_catalog_change(void) {
    changed_in = pg_mcp::compat::local_transaction_id();
}

void register_catalog_cache_callbacks(void) {
    CacheRegisterRelcacheCallback(on_relcache, (Datum)0);
    CacheRegisterSyscacheCallback(AUTHOID, on_syscache, (Datum)0);
    CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, on_syscache, (Datum)0);
    // Membership in pg_database_owner follows the database's owner.
    CacheRegisterSyscacheCallback(DATABASEOID, on_syscache, (Datum)0);
}

bool catalog_changed_in_transaction(void) {
    return changed_in != InvalidLocalTransactionId &&
           changed_in == pg_mcp::compat::local_transaction_id();
}

uint64 catalog_generation(void) {
    // Within a transaction that already holds its locks, nothing else would read the queue.
    AcceptInvalidationMessages();
    if (!watched_known) {
        Oid schema = get_namespace_oid("mcp", false);
        for (int i = 0; i < kWatchedCount; i++) {
            watched[i] = get_relname_relid(kWatchedTables[i], schema);
            if (!OidIsValid(watched[i]) && i < kFirstOptional)
                elog(ERROR, "pg_mcp catalog table mcp.%s is missing", kWatchedTables[i]);
        }
        watched_known = true;
        generation++;
    }
    return generation;
}

HTAB *current_catalog_cache(CatalogCache *cache) {
    uint64 generation = catalog_generation();
    if (cache->table != NULL && generation == cache->generation &&
        hash_get_num_entries(cache->table) < cache->max_entries)
        return cache->table;
    if (cache->context == NULL)
        // (The macro form takes only literal names; cache->name is a static string too.)
        cache->context =
            AllocSetContextCreateInternal(CacheMemoryContext, cache->name, ALLOCSET_DEFAULT_SIZES);
    else {
        cache->table = NULL;                 // not left dangling should hash_create fail below
        MemoryContextReset(cache->context);  // frees the table and every entry
    }
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = cache->keysize;
    ctl.entrysize = cache->entrysize;
    ctl.hcxt = cache->context;
    cache->table = hash_create(cache->name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    cache->generation = generation;
    return cache->table;
}

}  // namespace pg_mcp

// mcp._catalog_changed(): row (and TRUNCATE) trigger on the catalog tables; queues an invalidation
// of the table, so that every backend's cached lookups are dropped once the change commits.
PG_MCP_FUNCTION(pg_mcp_catalog_changed) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "_catalog_changed must be called as a trigger");
    TriggerData *trigger = (TriggerData *)fcinfo->context;
    CacheInvalidateRelcache(trigger->tg_relation);
    pg_mcp::note_catalog_change();
    return PointerGetDatum(NULL);
}
