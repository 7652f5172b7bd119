#!/usr/bin/env bash
# The Python pub/sub and bad-input tests (or the test files given as
# arguments) under valgrind's memcheck, with the extension built as usual. Fails when valgrind reports an error or a
# definitely-lost block with a frame in reactis's own code (core rx_*
# functions or the SWIG wrapper's glue), except the 24-byte block SWIG's own
# generated module teardown leaks (SWIG_Python_DestroyModule). CPython's own
# reports are ignored: without its suppression file, memcheck flags the
# interpreter's object traversal, which is not ours to fix.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
REAL=$("$PY" -c 'import sys; print(sys.executable)')   # not a pyenv shim: valgrind must see Python
command -v valgrind >/dev/null || { echo "valgrind missing"; exit 1; }
"$PY" setup.py -q build_ext --inplace >/dev/null || exit 1
logs=$(mktemp -d); trap 'rm -rf "$logs"' EXIT
[ $# -gt 0 ] || set -- tests/python/test_pubsub.py tests/python/test_bad_input.py
PYTHONMALLOC=malloc timeout 900 valgrind -q --leak-check=full --show-leak-kinds=definite \
  --num-callers=40 --log-file="$logs/vg.%p.log" \
  "$REAL" -m pytest -q -p no:cacheprovider "$@" -k "not signal and not tls and not TLS"
rc=$?
# One report is a block of lines from its first line to the next blank one.
ours=$(awk '
  /^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and destination)|definitely lost in/ {inb=1; b=$0; next}
  inb && /^==[0-9]+== $/ { if (b ~ /(rx_|rxg_|_wrap_|reactis)/ && b !~ /SWIG_Python_DestroyModule/) print b "\n"; inb=0; next }
  inb { b = b "\n" $0 }' "$logs"/vg.*.log)
if [ -n "$ours" ]; then
  echo "valgrind found problems in reactis code:"; echo "$ours" | head -120; exit 1
fi
echo "valgrind: no errors and no definite leaks in reactis code"
exit $rc
