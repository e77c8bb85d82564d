#!/usr/bin/env bash
# The test suite from a fresh clone: install ltr with its [dev] extra into .venv, run pytest
# in one worker process per core (pytest-xdist; LTR_TEST_WORKERS=0 runs it in this process).
# Extra arguments go to pytest (e.g. `-m "not slow"` or `-k metrics`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${LTR_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2> >(grep -v "is ignored: it is neither" >&2)
# most of the suite's time is spent starting `ltr` subprocesses, one core each
exec "$venv/bin/python" -m pytest --numprocesses "${LTR_TEST_WORKERS:-logical}" "$@"
