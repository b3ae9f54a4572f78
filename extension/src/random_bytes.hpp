// Random bytes for ids and boundaries (audit record ids, untrusted-data boundaries): drawn from
// pg_strong_random in blocks, so that a call does not pay OpenSSL's per-request cost twice.
#pragma once

#include "pg_compat.hpp"

namespace pg_mcp {

// Fills `out` with `n` bytes from the system's strong random source (ERROR if it fails). The
// block is this process's own: drawn after the backend started, never shared, and each byte
// handed out once.
void strong_random(uint8 *out, size_t n);

// `n` random bytes (at most kMaxHexBytes) written as 2n lowercase hex digits into `hex`
// (2n + 1 bytes, NUL-ended).
constexpr size_t kMaxHexBytes = 32;
void random_hex(char *hex, size_t n);

}  // namespace pg_mcp
