#!/usr/bin/env bash
# Smoke test of the benchmark harness: `bench/run.sh --tiny --case 1` with no
# installs (peers that are not installed already are skipped with a note),
# into a temporary RESULTS.md and plots folder, so bench/RESULTS.md is left
# alone. Checks that reactis C produced figures. Takes ~15-40 s (mostly the
# cmake build of build-bench/).
#   bash tests/bench/test_bench_smoke.sh
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi; }

timeout 120 bash "$ROOT/bench/run.sh" --no-install --tiny --case 1 \
  --results "$TMP/RESULTS.md" --plots "$TMP/plots" >"$TMP/out.log" 2>&1
rc=$?
check "run.sh exits 0" '[ "$rc" = 0 ]'
check "RESULTS.md written" '[ -s "$TMP/RESULTS.md" ]'
check "reactis C schedule figure" 'grep -Eq "^\| schedule, one call each \(msg/s\) \| reactis C [^|]*\| [0-9,]+ \|" "$TMP/RESULTS.md"'
check "reactis C batch figure" 'grep -Eq "^\| schedule, batches of 1000 \(msg/s\) \| reactis C [^|]*\| [0-9,]+ \|" "$TMP/RESULTS.md"'
check "machine and versions printed" 'grep -q "^- machine: " "$TMP/RESULTS.md" && grep -q "redis-server" "$TMP/RESULTS.md"'
if [ "$fail" != 0 ]; then tail -40 "$TMP/out.log"; fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
