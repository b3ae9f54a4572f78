#include "shared_memory.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
}

namespace pg_mcp {

namespace {

shmem_request_hook_type previous_request_hook = NULL;
shmem_startup_hook_type previous_startup_hook = NULL;
LWLockPadded *locks = NULL;

void request_shmem(void) {
    if (previous_request_hook) previous_request_hook();
    Size size = add_size(audit_queue_shmem_size(),
                         add_size(rate_limit_shmem_size(), refresher_shmem_size()));
    RequestAddinShmemSpace(size);
    RequestNamedLWLockTranche("pg_mcp", kSharedParts);
}

void startup_shmem(void) {
    if (previous_startup_hook) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    locks = GetNamedLWLockTranche("pg_mcp");
    audit_queue_shmem_init(&locks[(int)SharedPart::AuditQueue].lock);
    rate_limit_shmem_init(&locks[(int)SharedPart::RateLimits].lock);
    refresher_shmem_init(&locks[(int)SharedPart::Refreshers].lock);
    LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void install_shared_memory_hooks(void) {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shmem;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = startup_shmem;
}

LWLock *shared_part_lock(SharedPart part) {
    return locks == NULL ? NULL : &locks[(int)part].lock;
}

}  // namespace pg_mcp
