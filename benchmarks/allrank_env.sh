#!/usr/bin/env bash
# Build .venv-allrank, the benchmark-only environment of benchmarks/bench_losses.py: torch, numpy
# and allRank 1.4.3 to time ltr's losses against allRank's. Idempotent: rerunning installs only
# what is missing. Never used by the package, its tests or CI.
#
#   bash benchmarks/allrank_env.sh && .venv-allrank/bin/python benchmarks/bench_losses.py
#
# allRank pins torch<=1.8 and torchvision/gcsfs/google-auth for its training CLI, so it is
# installed with --no-deps next to the torch ltr uses. `import allrank.models.losses` still
# imports, through allrank.data.dataset_loading and allrank.utils.file_utils:
#   scikit-learn     sklearn.datasets.load_svmlight_file   installed here
#   attrs            attr.attrs                             installed here
#   setuptools < 81  pkg_resources (removed in setuptools 81)
#   torchvision      transforms.Compose                     stand-in in benchmarks/stubs
#   gcsfs            (module only)                          stand-in in benchmarks/stubs
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-allrank"
python="${PYTHON:-python3.11}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
# The CPU wheel of torch 2.13.0 comes from pip's configured find-links when present.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0" numpy scikit-learn attrs "setuptools<81"
"$venv/bin/python" -m pip install --quiet --no-deps "allrank==1.4.3"

# Fail here rather than in the benchmark if an import-time dependency is missing.
PYTHONPATH="$root/src:$root/benchmarks/stubs" "$venv/bin/python" -W ignore -c \
    "import allrank.models.losses, ltr.losses, torch; print('ok: torch', torch.__version__)"
