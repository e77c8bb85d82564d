#!/usr/bin/env bash
# The test suite from a fresh clone: install ltr with its [dev] extra into .venv, run pytest.
# Extra arguments go to pytest (e.g. `-m "not slow"` or `-k metrics`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${LTR_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2> >(grep -v "is ignored: it is neither" >&2)
exec "$venv/bin/python" -m pytest "$@"
