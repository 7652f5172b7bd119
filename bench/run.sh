#!/usr/bin/env bash
# bench/run.sh — reactis and its peers, side by side, on one local redis-server.
#
#   bash bench/run.sh [--quick] [--tiny] [--case N]... [--runs R] [--only a,b]
#                     [--no-install] [--reactis-only]
#
# Builds the C benchmarks (cmake, build-bench/) and the harness's C driver,
# installs the peers pinned (bench/.venv, bench/node_modules, bench/.gems or
# Debian's ruby packages) unless --no-install, starts its own redis-server on
# a free loopback port, runs the cases, prints one table and writes
# bench/RESULTS.md and bench/plots/*.png. See bench/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
BUILD="$ROOT/build-bench"
VENV="$HERE/.venv"
INSTALL=1
PASS=()
for a in "$@"; do
  case "$a" in
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) PASS+=("$a") ;;
  esac
done

say() { printf '== %s\n' "$*"; }

# ------------------------------------------------------------------ pins
PY_PINS=("redis==5.2.1" "hiredis==3.1.0" "rq==2.1.0" "celery==5.4.0" "kombu==5.4.2" "matplotlib==3.9.2")
NPM_PINS=("bullmq@5.34.0" "ioredis@5.4.1")
GEM_PINS=("redis:4.8.0" "hiredis:0.6.3" "sidekiq:6.4.1")
DEB_PINS=("ruby-redis=4.8.0-1" "ruby-hiredis" "ruby-sidekiq=6.4.1+dfsg-1")

# ------------------------------------------------------------------ build (always)
say "building reactis and the bench drivers (build-bench/)"
mkdir -p "$BUILD"
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRX_BUILD_TESTS=ON >"$BUILD/bench-build.log" 2>&1 &&
       cmake --build "$BUILD" -j2 --target reactis_static queue_bench sub_bench >>"$BUILD/bench-build.log" 2>&1; }; then
  echo "build failed (see $BUILD/bench-build.log); reactis C will be skipped" >&2
fi
if [ -f "$BUILD/libreactis.a" ] && { [ ! -x "$BUILD/rxdrive" ] || [ "$HERE/harness/rxdrive.c" -nt "$BUILD/rxdrive" ] ||
                                     [ "$BUILD/libreactis.a" -nt "$BUILD/rxdrive" ]; }; then
  cc -O2 -Wall -I"$ROOT/core/include" -o "$BUILD/rxdrive" "$HERE/harness/rxdrive.c" \
    "$BUILD/libreactis.a" $(pkg-config --libs hiredis openssl 2>/dev/null || echo -lhiredis -lssl -lcrypto) ||
    echo "rxdrive did not build; reactis C will be skipped" >&2
fi

# ------------------------------------------------------------------ peers
if [ "$INSTALL" = 1 ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating bench/.venv"
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c 'import redis, hiredis, rq, celery, matplotlib' 2>/dev/null ||
     [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("kombu"))')" != "5.4.2" ]; then
    say "installing Python peers: ${PY_PINS[*]}"
    "$VENV/bin/pip" install -q "${PY_PINS[@]}" || echo "pip install failed: Python peers will be skipped" >&2
  fi
  if command -v npm >/dev/null && ! (cd "$HERE" && node -e "require('bullmq'); require('ioredis')" 2>/dev/null); then
    say "installing Node peers: ${NPM_PINS[*]}"
    (cd "$HERE" && npm install --no-save --no-package-lock --no-audit --no-fund "${NPM_PINS[@]}" >/dev/null) ||
      echo "npm install failed: BullMQ and ioredis will be skipped" >&2
  fi
  if command -v ruby >/dev/null && ! GEM_PATH="$HERE/.gems:${GEM_PATH:-}" ruby -e 'require "redis"; require "hiredis"; require "sidekiq"' 2>/dev/null; then
    say "installing Ruby peers: ${GEM_PINS[*]}"
    ok=1
    for g in "${GEM_PINS[@]}"; do
      timeout 120 gem install --no-document --install-dir "$HERE/.gems" "${g%%:*}" -v "${g#*:}" >/dev/null 2>&1 || { ok=0; break; }
    done
    if [ "$ok" = 0 ]; then
      # rubygems.org is not reachable on some machines (this project's):
      # Debian ships the same versions.
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "rubygems.org not reachable: installing Debian's ${DEB_PINS[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${DEB_PINS[@]}" >/dev/null 2>&1 ||
          { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${DEB_PINS[@]}" >/dev/null 2>&1; } ||
          echo "Ruby peers could not be installed: Sidekiq and redis-rb will be skipped" >&2
      else
        echo "Ruby peers could not be installed (no rubygems.org, not root): Sidekiq and redis-rb will be skipped" >&2
      fi
    fi
  fi
fi

# The Python binding: built in place when it does not import yet (not with
# --no-install: then reactis Python is skipped with a note).
PYBIN="$VENV/bin/python"
[ -x "$PYBIN" ] || PYBIN="$(command -v python3)"
if [ "$INSTALL" = 1 ] && ! PYTHONPATH="$ROOT/bindings/python" "$PYBIN" -c 'import reactis.cimpl' 2>/dev/null; then
  say "building the Python binding (setup.py build_ext --inplace)"
  (cd "$ROOT" && python3 setup.py -q build_ext --inplace >/dev/null 2>&1) ||
    echo "the Python binding did not build: reactis Python will be skipped" >&2
fi

# The Ruby binding likewise: rake compile when it does not load yet.
if [ "$INSTALL" = 1 ] && command -v ruby >/dev/null && command -v rake >/dev/null &&
   ! RUBYLIB="$ROOT/bindings/ruby/lib" ruby -e 'require "reactis"' 2>/dev/null; then
  say "building the Ruby binding (rake compile)"
  (cd "$ROOT" && rake compile >/dev/null 2>&1) ||
    echo "the Ruby binding did not build: reactis Ruby will be skipped" >&2
fi

# ------------------------------------------------------------------ run
say "running the cases (setup took ${SECONDS} s)"
rc=0
"$PYBIN" "$HERE/harness/run.py" --args "$(printf ' %s' "$@")" "${PASS[@]+"${PASS[@]}"}" || rc=$?
say "bench/run.sh took ${SECONDS} s in all (build and installs included)"
exit "$rc"
