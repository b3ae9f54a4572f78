// Random bytes drawn from pg_strong_random a block at a time, for this backend only.
#include "random_bytes.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/builtins.h"
}

#include <cstring>

namespace pg_mcp {

namespace {

constexpr size_t kBlock = 512;
uint8 block[kBlock];
size_t used = kBlock;  // nothing drawn yet
int drawn_by = 0;      // the process that drew the block (a fork never inherits its bytes)

}  // namespace

void strong_random(uint8 *out, size_t n) {
    if (drawn_by != MyProcPid) {
        used = kBlock;
        drawn_by = MyProcPid;
    }
    while (n > 0) {
        if (used == kBlock) {
            if (!pg_strong_random(block, kBlock))
                ereport(ERROR, (errmsg("could not generate random bytes")));
            used = 0;
        }
        size_t take = Min(n, kBlock - used);
        memcpy(out, block + used, take);
        memset(block + used, 0, take);  // handed out once
        used += take;
        out += take;
        n -= take;
    }
}

void random_hex(char *hex, size_t n) {
    uint8 bytes[kMaxHexBytes];
    if (n > sizeof bytes) elog(ERROR, "random_hex: at most %zu bytes at once", sizeof bytes);
    strong_random(bytes, n);
    hex[hex_encode((const char *)bytes, n, hex)] = '\0';
}

}  // namespace pg_mcp
