#!/usr/bin/env bash
# Every test: the C suite (warnings as errors), the C suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer, the parsers and the
# connection layer under valgrind, then the Python and Ruby suites when their
# bindings are present. Each suite starts its own redis-server processes on
# free loopback ports. Prints one summary line at the end; exits non-zero if
# any suite failed.
#   RX_QUICK=1 skips the sanitizer and valgrind passes.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || { echo "bootstrap failed"; exit 1; }
jobs=$(nproc)
passed=0; failed=0; failed_names=()
suite() {  # suite NAME COMMAND...
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then passed=$((passed+1)); echo "=== $name: ok ($((SECONDS-t0)) s)"
  else failed=$((failed+1)); failed_names+=("$name"); echo "=== $name: FAILED ($((SECONDS-t0)) s)"; fi
}
build() {  # build DIR CMAKE-ARGS...
  local dir=$1; shift
  cmake -S . -B "$dir" -DRX_WERROR=ON "$@" >/dev/null && cmake --build "$dir" -j"$jobs" 2>&1 | grep -E "error|warning|Error" ; test "${PIPESTATUS[0]}" -eq 0
}
c_tests() { build build-ci && (cd build-ci && ctest --output-on-failure -j"$jobs" --timeout 300); }
san_tests() {
  build build-san -DRX_ASAN=ON -DRX_UBSAN=ON -DCMAKE_BUILD_TYPE=Debug &&
  (cd build-san && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j"$jobs" --timeout 300)
}
valgrind_tests() {
  local ok=0
  for t in test_url test_keyspace test_template test_conn test_bad_input; do
    [ -x build-ci/tests/$t ] || continue
    echo "--- valgrind $t"
    RX_TEST_TMP=$PWD/build-ci/tests/tmp valgrind -q --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite build-ci/tests/$t >/dev/null || ok=1
  done
  return $ok
}
# The oldest Redis reactis supports, 6.2 (built by scripts/redis62.sh from a
# pinned source on PyPI): the C tests of everything that runs on one server
# (queue, timers, subscriber, notifications, connections, bad input, CLI);
# their Redis 7.0 parts (sharded pub/sub, the n and d flags) are skipped there
# and said so. The cluster tests need 7.0 (cluster-port) and are not run.
redis62_tests() {
  local bin ok=0
  bin=$(bash scripts/redis62.sh) || return 1
  for t in test_queue test_timer test_queue_oom test_sub test_notify test_conn test_bad_input test_cli; do
    [ -x build-ci/tests/$t ] || { echo "--- $t: not built"; ok=1; continue; }
    if (cd build-ci && RX_REDIS_SERVER="$bin" timeout 300 ./tests/$t >"tests/$t.redis62.log" 2>&1); then
      echo "--- $t on Redis 6.2: $(tail -1 "build-ci/tests/$t.redis62.log")"
    else
      ok=1; echo "--- $t on Redis 6.2 FAILED:"; tail -30 "build-ci/tests/$t.redis62.log"
    fi
  done
  return $ok
}
fuzz_tests() {  # each libFuzzer target for RX_FUZZ_SECONDS (default 30), from the seed corpus
  CC=clang build build-fuzz -DRX_FUZZ=ON -DRX_ASAN=ON -DRX_UBSAN=ON -DRX_BUILD_BENCH=OFF || return 1
  local ok=0 secs=${RX_FUZZ_SECONDS:-30} work
  work=$(mktemp -d)
  for t in url keyspace template reply frames; do
    mkdir -p "$work/$t"; cp tests/fuzz/corpus/$t/* "$work/$t/"
    if (cd "$work" && "$OLDPWD/build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=5 \
          -rss_limit_mb=2048 -malloc_limit_mb=512 "$work/$t" >"$work/$t.log" 2>&1); then
      echo "--- fuzz $t: $(grep -E '^#[0-9]+.*DONE' "$work/$t.log" | tail -1)"
    else
      ok=1; echo "--- fuzz $t FAILED (crash input saved in tests/fuzz/found/)"; tail -40 "$work/$t.log"
      mkdir -p tests/fuzz/found; cp "$work"/crash-* "$work"/oom-* "$work"/timeout-* tests/fuzz/found/ 2>/dev/null
    fi
  done
  rm -rf "$work"
  return $ok
}
suite "C tests" c_tests
if [ "${RX_QUICK:-0}" != 1 ]; then
  suite "C tests under ASan+UBSan" san_tests
  suite "C tests under valgrind" valgrind_tests
  suite "C tests on Redis 6.2" redis62_tests
  suite "fuzzing (libFuzzer, bounded)" fuzz_tests
fi
if [ -f setup.py ] && [ -d tests/python ]; then
  [ -x tests/python/run.sh ] && suite "Python tests" timeout 600 bash tests/python/run.sh
  [ "${RX_QUICK:-0}" != 1 ] && [ -x tests/python/run_asan.sh ] && \
    suite "Python tests under ASan+UBSan" timeout 600 bash tests/python/run_asan.sh
  [ "${RX_QUICK:-0}" != 1 ] && [ -x tests/python/run_valgrind.sh ] && \
    suite "Python tests under valgrind (no definite leaks in reactis)" timeout 900 bash tests/python/run_valgrind.sh
fi
if [ -f Rakefile ] && [ -d tests/ruby ]; then
  [ -x tests/ruby/run.sh ] && suite "Ruby tests" timeout 600 bash tests/ruby/run.sh
  [ "${RX_QUICK:-0}" != 1 ] && [ -x tests/ruby/run_asan.sh ] && \
    suite "Ruby tests under ASan+UBSan" timeout 600 bash tests/ruby/run_asan.sh
  [ "${RX_QUICK:-0}" != 1 ] && [ -x tests/ruby/run_valgrind.sh ] && \
    suite "Ruby tests under valgrind (no definite leaks in reactis)" timeout 900 bash tests/ruby/run_valgrind.sh
fi
[ -x tests/bench/test_bench_smoke.sh ] && suite "benchmark harness smoke test" timeout 300 bash tests/bench/test_bench_smoke.sh
echo
[ $failed -gt 0 ] && echo "failed suites: ${failed_names[*]}"
echo "suites: $passed passed, $failed failed"
[ $failed -eq 0 ]
