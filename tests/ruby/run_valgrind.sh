#!/usr/bin/env bash
# The Ruby pub/sub and bad-input tests (or the test files given as
# arguments) under valgrind's memcheck. Ruby
# itself produces many reports (its conservative GC reads uninitialised stack
# words; it does not free its heap at exit), so this fails only on reports
# that are reactis's: an error whose innermost frame is reactis code, or a
# definitely-lost block that reactis code allocated (the first frame after
# the allocator is an rx_/rxg_ function or the SWIG wrapper).
set -uo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind missing"; exit 1; }
rake -s compile >/dev/null || exit 1
logs=$(mktemp -d); trap 'rm -rf "$logs"' EXIT
rc=0
[ $# -gt 0 ] || set -- tests/ruby/test_pubsub.rb tests/ruby/test_bad_input.rb
for t in "$@"; do
  timeout 900 valgrind -q --leak-check=full --show-leak-kinds=definite --num-callers=12 \
    --log-file="$logs/vg.%p.log" ruby -Ibindings/ruby/lib -Itests/ruby "$t" | tail -1
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
done
ours=$(awk '
  function ours(f) { return f ~ /(rx_|rxg_|_wrap_|reactis_wrap)/ }
  /^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and destination)/ {inb=1; kind="err"; n=0; hit=0; b=$0; next}
  /definitely lost in/ {inb=1; kind="leak"; n=0; hit=0; decided=0; b=$0; next}
  inb && /^==[0-9]+== $/ { if (hit) print b "\n"; inb=0; next }
  inb {
    b = b "\n" $0; n++
    if (kind == "err" && n == 1 && ours($0)) hit = 1
    if (kind == "leak" && !decided && $0 !~ /(malloc|calloc|realloc|rx__memdup|rx__strdup)/) {
      decided = 1
      if (ours($0)) hit = 1
    }
  }' "$logs"/vg.*.log)
if [ -n "$ours" ]; then
  echo "valgrind found problems in reactis code:"; echo "$ours" | head -120; exit 1
fi
echo "valgrind: no errors and no definite leaks in reactis code"
exit $rc
