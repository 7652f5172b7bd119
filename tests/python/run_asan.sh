#!/usr/bin/env bash
# A subset of the Python suite against the extension built with
# AddressSanitizer + UndefinedBehaviorSanitizer (the core, the SWIG wrapper
# and the typemaps are all instrumented; CPython itself is not).
#
# It builds into build-py-asan/ (never in place, so the regular suite and
# other builds are not touched), then runs pytest with:
#   LD_PRELOAD=libasan  the ASan runtime must come first in a process whose
#                       main program (python) was not built with it;
#   ASAN_OPTIONS=detect_leaks=0  CPython does not free everything at exit,
#                       by design, so LeakSanitizer would report the
#                       interpreter rather than us (leaks of the core are
#                       checked by the C suite under valgrind and ASan);
#   PYTHONMALLOC=malloc  Python objects come from malloc, so ASan sees
#                       overruns of the buffers the typemaps hand over;
#   UBSAN_OPTIONS=halt_on_error=1  undefined behaviour fails the run.
# LD_PRELOAD is dropped from the environment as soon as Python has started
# (a tiny pytest plugin), so the redis-server and openssl processes the
# tests start run without the sanitizer runtime.
#
# Extra arguments go to pytest (default: the pub/sub, queue, client and
# bad-input tests). Exit status: pytest's, or 1 when a sanitizer reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUT=$ROOT/build-py-asan
t0=$SECONDS

"$PY" -m pytest --version >/dev/null 2>&1 || \
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore pytest setuptools wheel
libasan=$(${CC:-gcc} -print-file-name=libasan.so)
[ -e "$libasan" ] || { echo "run_asan.sh: libasan.so not found (gcc with ASan needed)"; exit 1; }

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
mkdir -p "$OUT"
REACTIS_CFLAGS="$SAN -g -O1" REACTIS_LDFLAGS="-fsanitize=address,undefined" \
  "$PY" setup.py -q build --build-base "$OUT" >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
LIB=$(ls -d "$OUT"/lib.*/ | head -1)
[ -n "$LIB" ] && ls "$LIB"/reactis/_cimpl*.so >/dev/null || { echo "run_asan.sh: no extension in $OUT"; exit 1; }
echo "run_asan.sh: built in $((SECONDS - t0)) s: $LIB"

mkdir -p "$OUT/plugin"
cat >"$OUT/plugin/rx_asan_env.py" <<'EOF'
"""Loaded by run_asan.sh: drops LD_PRELOAD once Python runs, so child
processes (redis-server, openssl) start without the ASan runtime."""
import os

os.environ.pop("LD_PRELOAD", None)
EOF

if [ $# -eq 0 ]; then
  set -- tests/python/test_pubsub.py tests/python/test_queue.py tests/python/test_client.py \
         tests/python/test_bad_input.py
fi
log=$OUT/pytest.log
set +e
LD_PRELOAD="$libasan" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:print_summary=1:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
PYTHONMALLOC=malloc REACTIS_TEST_INSTALLED=1 \
PYTHONPATH="$LIB:$OUT/plugin${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" -m pytest -q -p no:cacheprovider -p rx_asan_env "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log"; then
  echo "run_asan.sh: a sanitizer reported (see $log)"
  rc=1
fi
echo "run_asan.sh: pytest exit $rc, $((SECONDS - t0)) s in all"
exit $rc
