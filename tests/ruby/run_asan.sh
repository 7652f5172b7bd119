#!/usr/bin/env bash
# A subset of the Ruby suite against the extension built with
# AddressSanitizer + UndefinedBehaviorSanitizer (the core, the SWIG wrapper
# and the typemaps are all instrumented; Ruby itself is not).
#
# It builds into build-ruby-asan/ (never bindings/ruby/lib/reactis/cimpl.so,
# so the regular suite and the other builds are not touched), then runs the
# tests with:
#   LD_PRELOAD=libasan  the ASan runtime must come first in a process whose
#                       main program (ruby) was not built with it;
#   ASAN_OPTIONS=detect_leaks=0  Ruby does not free everything at exit, so
#                       LeakSanitizer would report the interpreter rather
#                       than us (leaks of the core are checked by the C suite
#                       under valgrind and ASan);
#   use_sigaltstack=0   Ruby sets up each thread's alternate signal stack
#                       itself; ASan unmapping it at thread exit fails a CHECK;
#   UBSAN_OPTIONS=halt_on_error=1  undefined behaviour fails the run.
# A bootstrap file (ruby -r) loads reactis with build-ruby-asan/lib first on
# $LOAD_PATH (so the instrumented cimpl.so is the one loaded) and drops
# LD_PRELOAD from the environment, so the redis-server, openssl and ruby
# processes the tests start run without the sanitizer runtime (child Ruby
# processes load the regular extension, built here by `rake compile`).
#
# Extra arguments name the test files (default: the pub/sub, queue and
# bad-input tests). Exit status: the tests', or 1 when a sanitizer reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUBY=${RUBY:-ruby}
OUT=$ROOT/build-ruby-asan
t0=$SECONDS

libasan=$(${CC:-gcc} -print-file-name=libasan.so)
[ -e "$libasan" ] || { echo "run_asan.sh: libasan.so not found (gcc with ASan needed)"; exit 1; }

# The regular extension (for child processes) and the SWIG wrapper.
"$RUBY" -S rake compile >/dev/null

# --param asan-stack=0: no redzones around stack variables. Ruby raises with
# __builtin_longjmp, which ASan does not see, so the redzones of the C frames
# an exception unwinds (rb_raise from the SWIG wrapper) would stay poisoned
# and later calls on that stack would be reported falsely. Heap, globals and
# UBSan checks are all kept.
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer --param asan-stack=0"
# mkmf's Makefile does not track the core's headers: start over when one
# changed since the last build.
if [ -e "$OUT/ext/cimpl.so" ] && [ -n "$(find core bindings -name '*.h' -newer "$OUT/ext/cimpl.so" | head -1)" ]; then
  rm -rf "$OUT/ext"
fi
mkdir -p "$OUT/ext" "$OUT/lib/reactis" "$OUT/boot"
(
  cd "$OUT/ext"
  REACTIS_WRAP_C="$ROOT/build-ruby/swig/reactis_wrap.c" REACTIS_CFLAGS="$SAN -g -O1" \
    REACTIS_LDFLAGS="-fsanitize=address,undefined" \
    "$RUBY" "$ROOT/bindings/ruby/ext/reactis/extconf.rb" >"$OUT/build.log" 2>&1 &&
    make -j"${JOBS:-4}" >>"$OUT/build.log" 2>&1
) || { tail -30 "$OUT/build.log"; exit 1; }
cp "$OUT/ext/cimpl.so" "$OUT/lib/reactis/cimpl.so"
[ "$(nm -D "$OUT/lib/reactis/cimpl.so" | grep -c __asan_)" -gt 0 ] || { echo "run_asan.sh: cimpl.so is not instrumented"; exit 1; }
echo "run_asan.sh: built in $((SECONDS - t0)) s: $OUT/lib/reactis/cimpl.so"

cat >"$OUT/boot/rx_asan_boot.rb" <<EOF
# Loaded by tests/ruby/run_asan.sh before the tests.
ENV.delete("LD_PRELOAD") # child processes start without the ASan runtime
\$LOAD_PATH.unshift("$ROOT/bindings/ruby/lib")
\$LOAD_PATH.unshift("$OUT/lib")
require "reactis"
so = \$LOADED_FEATURES.grep(%r{/reactis/cimpl\\.so\\z})
abort "run_asan.sh: loaded #{so.inspect}, not the ASan build" unless so == ["$OUT/lib/reactis/cimpl.so"]
EOF

if [ $# -eq 0 ]; then
  set -- tests/ruby/test_pubsub.rb tests/ruby/test_queue.rb tests/ruby/test_bad_input.rb
fi
loader=""
for f in "$@"; do loader+="require \"$ROOT/$f\";"; done
log=$OUT/test.log
set +e
LD_PRELOAD="$libasan" \
ASAN_OPTIONS="detect_leaks=0:use_sigaltstack=0:abort_on_error=0:print_summary=1:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
REACTIS_TEST_TIMEOUT="${REACTIS_TEST_TIMEOUT:-120}" \
  "$RUBY" -r "$OUT/boot/rx_asan_boot.rb" -I "$ROOT/tests/ruby" -e "$loader" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log"; then
  echo "run_asan.sh: a sanitizer reported (see $log)"
  rc=1
fi
echo "run_asan.sh: tests exit $rc, $((SECONDS - t0)) s in all"
exit $rc
