#!/usr/bin/env bash
# The main job on built-in data, from a fresh clone: install into .venv, make synthetic data,
# inspect it, train a ranker, score the test file offline, evaluate it, compare it with the
# no-training baselines, and export it to an ONNX bundle (parity and latency checked).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${LTR_VENV:-.venv}
out=${LTR_QUICKSTART_DIR:-quickstart}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[tracking,export]" 2> >(grep -v "is ignored: it is neither" >&2)
export PATH="$(cd "$venv/bin" && pwd):$PATH"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step() { say "$@"; "$@"; }

step ltr data synth --out "$out/data" --queries 600 --features 20 --seed 0
step ltr data inspect "$out/data/train.txt"
# train's stdout names its run directory ("Run directory: ..."); tee shows the output as well
train=(ltr train --config configs/default.yaml --set "data.root=$out/data"
  --set "tracking.output_dir=$out/experiments" --set training.num_epochs=30)
say "${train[@]}"
run=$("${train[@]}" | tee /dev/stderr | sed -n 's/^Run directory: //p')
step ltr predict --model "$run" --data "$out/data/test.txt" --out "$out/test.scores"
step ltr evaluate --data "$out/data/test.txt" --scores "$out/test.scores"
step ltr evaluate --data "$out/data/test.txt" --scores "$out/test.scores" --preset letor
step ltr baselines --train "$out/data/train.txt" --test "$out/data/test.txt" --model "$run"
rm -rf "$out/bundle"  # a re-run exports afresh; export never overwrites a bundle
step ltr export --model "$run" --output "$out/bundle" --version 1.0.0
