#!/usr/bin/env bash
# The Python suite: builds the extension in place (SWIG from Debian, the core
# compiled into it) and runs pytest against real redis-servers the tests
# start. Installs pytest if missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
"$PY" -m pytest --version >/dev/null 2>&1 || \
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore pytest setuptools wheel
"$PY" setup.py -q build_ext --inplace >/dev/null
exec "$PY" -m pytest tests/python -q -p no:cacheprovider "$@"
