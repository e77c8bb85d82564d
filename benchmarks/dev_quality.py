"""Method development on MQ2008 without the test files: compare ideas on vali, honestly.

``bench_quality.py`` selects on vali and reports test, so every idea tried there costs a look at
the test set. This script never opens a test file. Per fold, the training file is split by query
(80/20, seeded with the run's seed, ``data.valid_fraction``); training early-stops on the 20%
split, and the fold's *vali* file measures the result, which nothing was fitted or selected on.
LightGBM gets the same split (its early stopping on the 20%) for a like-for-like reference.

    .venv/bin/python benchmarks/dev_quality.py --data-dir ../shared/data \\
        --candidate listmle:P9 --candidate ranknet:P3 \\
        --candidate "ranknet:P3:data.max_list_length=null" [--seeds 5] [--jobs 2] [--out-dir DIR]

A candidate is ``LOSS:POINT[:key=value,...]``: a loss, one of ``bench_quality``'s shared points
(``P0``..``P9``, with that loss's own parameters), and optional config overrides. Reported per
candidate, mean over folds: vali NDCG@10 under the default convention and the letor preset, for
single models (mean over seeds) and for the seed average (``ltr ensemble``'s mean of scores),
split by list length (queries with < 10 and >= 10 documents, where the letor preset differs),
and the paired per-fold difference to LightGBM (``bench_quality``'s kept point L0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import (
    BASE_CONFIG,
    LGB_ANCHOR,
    LGB_FIXED,
    _init_worker,
    lgb_params,
    mlp_points,
    to_overrides,
)

LONG = 10  # the letor preset scores NDCG@10 only on lists this long


def parse_candidate(text: str) -> dict[str, Any]:
    loss, point, *rest = text.split(":", 2)
    extra = [kv for kv in rest[0].split(",") if kv] if rest else []
    return {"label": text, "loss": loss, "point": point, "extra": extra}


def train_candidate(job: dict[str, Any]) -> np.ndarray:
    """Vali scores of one candidate on one fold and seed (early stopping on a train split)."""
    from ltr.config import load_config
    from ltr.data.letor import load_letor
    from ltr.inference import Predictor
    from ltr.training import run_experiment

    fold = Path(job["data_dir"]) / "mq2008" / f"Fold{job['fold']}"
    point = mlp_points(job["loss"], 10)[job["point"]]
    overrides = [
        f"loss.name={job['loss']}",
        *to_overrides(point),
        *job["extra"],
        f"data.train={fold / 'train.txt.gz'}",  # no data.valid: a seeded 20% split validates
        f"training.seed={job['seed']}",
        f"data.split_seed={job['seed']}",  # each seed its own split, as LightGBM's below
        f"tracking.output_dir={job['out_dir']}",
        "tracking.tensorboard=false",
        "tracking.mlflow=false",
        "training.num_threads=1",
        f"experiment.name=dev_f{job['fold']}_s{job['seed']}",
    ]
    run_dir = run_experiment(load_config(base=BASE_CONFIG, overrides=overrides), quiet=True)
    return Predictor.load(run_dir).score(load_letor(fold / "vali.txt.gz"))


def train_lightgbm(job: dict[str, Any]) -> np.ndarray:
    """LightGBM's vali scores, early stopping on the same 80/20 split of the training file."""
    import lightgbm as lgb

    from ltr.data.dataset import split_by_query
    from ltr.data.letor import load_letor

    fold = Path(job["data_dir"]) / "mq2008" / f"Fold{job['fold']}"
    train, stop = split_by_query(load_letor(fold / "train.txt.gz"), 0.2, seed=job["seed"])
    vali = load_letor(fold / "vali.txt.gz", n_features=train.n_features)
    dtrain = lgb.Dataset(train.features, train.labels, group=train.list_lengths)
    dstop = lgb.Dataset(stop.features, stop.labels, group=stop.list_lengths, reference=dtrain)
    booster = lgb.train(
        {**LGB_FIXED, **lgb_params(LGB_ANCHOR), "seed": job["seed"]},
        dtrain,
        num_boost_round=2000,
        valid_sets=[dstop],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    return np.asarray(booster.predict(vali.features, num_iteration=booster.best_iteration))


def _dispatch(job: dict[str, Any]) -> np.ndarray:
    return train_lightgbm(job) if job["loss"] == "lightgbm" else train_candidate(job)


def vali_metrics(data_dir: Path, fold: int, scores: np.ndarray) -> dict[str, float]:
    from ltr.data.letor import load_letor
    from ltr.evaluation import evaluate_scores

    vali = load_letor(data_dir / "mq2008" / f"Fold{fold}" / "vali.txt.gz")
    default = evaluate_scores(vali, scores, ["ndcg@10"]).per_query["ndcg@10"]
    letor = evaluate_scores(vali, scores, ["ndcg@10"], preset="letor").means["ndcg@10"]
    long = vali.list_lengths >= LONG
    return {
        "ndcg@10": float(default.mean()),
        "ndcg@10[letor]": float(letor),
        "ndcg@10 short lists": float(default[~long].mean()),
        "ndcg@10 long lists": float(default[long].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--candidate", action="append", required=True, type=parse_candidate)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", default="1,2,3,4,5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    folds = [int(f) for f in args.folds.split(",")]
    temp = tempfile.TemporaryDirectory(prefix="dev_quality_") if args.out_dir is None else None
    out_dir = Path(temp.name) if temp is not None else args.out_dir
    models = [{"label": "LightGBM L0", "loss": "lightgbm", "point": "L0", "extra": []}]
    models += args.candidate
    jobs = [
        {**m, "fold": f, "seed": s, "data_dir": str(data_dir), "out_dir": str(out_dir)}
        for m in models
        for f in folds
        for s in range(args.seeds)
    ]
    with ProcessPoolExecutor(
        args.jobs, mp_context=get_context("spawn"), initializer=_init_worker
    ) as pool:
        scores = list(pool.map(_dispatch, jobs))
    table: dict[str, dict[str, list[dict[str, float]]]] = {}
    for m in models:
        single, averaged = [], []
        for f in folds:
            runs = [s for j, s in zip(jobs, scores, strict=True) if j["label"] == m["label"]
                    and j["fold"] == f]  # fmt: skip
            per_seed = [vali_metrics(data_dir, f, s) for s in runs]
            single.append({k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]})
            averaged.append(vali_metrics(data_dir, f, np.mean(runs, axis=0)))
        table[m["label"]] = {"single": single, "average": averaged}
    keys = list(table["LightGBM L0"]["single"][0])
    print(f"vali NDCG@10, mean over folds {folds}; {args.seeds} seeds; never the test files\n")
    print("| model | " + " | ".join(keys) + " | Δ ndcg@10 vs LightGBM | Δ letor vs LightGBM |")
    print("|" + "---|" * (len(keys) + 3))
    for label, rows in table.items():
        for kind in ("single", "average"):
            ref = table["LightGBM L0"][kind]
            cells = [f"{np.mean([r[k] for r in rows[kind]]):.4f}" for k in keys]
            for k in ("ndcg@10", "ndcg@10[letor]"):
                d = np.subtract([r[k] for r in rows[kind]], [r[k] for r in ref])
                cells.append(f"{d.mean():+.4f} ± {d.std(ddof=1) if d.size > 1 else 0:.4f}")
            name = f"{label} ({'single' if kind == 'single' else f'{args.seeds}-seed average'})"
            print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps({"command": sys.argv, "table": table}, indent=1) + "\n")
    if temp is not None:
        temp.cleanup()


if __name__ == "__main__":
    main()
