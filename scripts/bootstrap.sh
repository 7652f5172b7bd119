#!/usr/bin/env bash
# Installs what reactis needs to build and test, on Debian 12 as root.
# Idempotent and quick when everything is already there.
set -euo pipefail
DEBS=(build-essential cmake pkg-config libhiredis-dev libssl-dev openssl
      redis-server redis-tools swig ruby ruby-dev rake valgrind clang iproute2
      libclang-rt-14-dev)  # libFuzzer and the sanitizer runtimes: only a Recommends of clang
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts a redis-server service on install; the tests and the demo run
# their own servers on free ports, so the packaged one is not needed.
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
PY=${PYTHON:-python3}
if command -v "$PY" >/dev/null 2>&1; then
  "$PY" -m pip --version >/dev/null 2>&1 && \
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore pytest pytest-timeout setuptools wheel >/dev/null
fi
exit 0
