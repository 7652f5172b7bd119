#!/usr/bin/env bash
# The Ruby suite, as CI runs it: installs what it needs (Debian packages, as
# root, when missing), builds the extension (rake compile), then runs every
# tests/ruby/test_*.rb with minitest against redis-server processes the tests
# start on free loopback ports. Exits non-zero when anything fails.
#   TEST=tests/ruby/test_pubsub.rb   one file
#   REACTIS_SKIP_GEM_TEST=1          skip the gem build + install test
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
  for p in ruby ruby-dev rake swig pkg-config libhiredis-dev libssl-dev gcc make \
           libc6-dev redis-server binutils; do
    have_deb "$p" || need+=("$p")
  done
fi
# minitest ships with Ruby (a bundled gem); Debian's ruby-minitest otherwise.
if command -v ruby >/dev/null 2>&1 && ! ruby -e 'require "minitest"' >/dev/null 2>&1; then
  need+=(ruby-minitest)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ruby tests: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts a redis-server service on install; the tests run their own.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
  else
    echo "ruby tests: missing ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi

echo "ruby tests: $(ruby -v)"
ruby -S rake compile
ruby -S rake test
