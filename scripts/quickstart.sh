#!/usr/bin/env bash
# The main job on built-in data, from a fresh clone: install into .venv, make synthetic data,
# inspect it, and score the no-training baselines every learned model must beat.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${LTR_VENV:-.venv}
out=${LTR_QUICKSTART_DIR:-quickstart}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e . 2> >(grep -v "is ignored: it is neither" >&2)
export PATH="$(cd "$venv/bin" && pwd):$PATH"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step ltr data synth --out "$out/data" --queries 600 --features 20 --seed 0
step ltr data inspect "$out/data/train.txt"
step ltr baselines --train "$out/data/train.txt" --test "$out/data/test.txt"
step ltr baselines --train "$out/data/train.txt" --test "$out/data/test.txt" --preset letor
