#!/usr/bin/env bash
# The Python suite: builds the extension in place (SWIG from Debian, the core
# compiled into it) and runs pytest against real redis-servers the tests
# start. Installs pytest if missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
"$PY" -c "import pytest, pytest_timeout" >/dev/null 2>&1 || \
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    pytest pytest-timeout setuptools wheel
"$PY" setup.py -q build_ext --inplace >/dev/null
# A hung test fails after 120 s instead of hanging CI.
exec "$PY" -m pytest tests/python -q -p no:cacheprovider --timeout=120 "$@"
