#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer and UndefinedBehaviorSanitizer) and runs
# each from its corpus in test/fuzz/corpus for a bounded time: PG_MCP_FUZZ_SECONDS each (20 in
# the test command; a developer runs longer, e.g. PG_MCP_FUZZ_SECONDS=600 test/fuzz/run.sh).
# New inputs found go to build/fuzz/found/<target>; a crash fails the run and leaves its input
# there (add it to the corpus once fixed).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${PG_MCP_FUZZ_SECONDS:-20}
targets=${PG_MCP_FUZZ_TARGETS:-"token http_request json_rpc"}
cmake -S test/fuzz -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=None >/dev/null
cmake --build build/fuzz -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
for target in $targets; do
  found=build/fuzz/found/$target
  mkdir -p "$found"
  log=build/fuzz/$target.log
  if ! (cd "$found" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$OLDPWD/build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=20000 -print_final_stats=1 . "$OLDPWD/test/fuzz/corpus/$target") >"$log" 2>&1; then
    echo "fuzz_$target failed:" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==" "$log" | head -n 20 >&2
    exit 1
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
  echo "fuzz_$target: $runs inputs in ${seconds} s, no failure"
done
