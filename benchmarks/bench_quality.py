"""Ranking quality on LETOR 4.0 MQ2008: every ltr loss (MLP scorer) against LightGBM lambdarank.

Protocol (5 folds; the test file of a fold is never used to choose anything)::

    .venv/bin/python benchmarks/bench_quality.py --data-dir ../shared/data [--folds 1,2,3,4,5]
        [--seeds 2] [--jobs 2] [--transformer] [--quick] [--out-dir DIR]

1. Tuning. Each loss trains every point of a small grid (:data:`GRID`: learning rate, width,
   dropout, batch size) on every fold with seed 0, through ``ltr.training.run_experiment``
   (early stopping on the fold's vali NDCG@10, default convention, patience 10, at most 100
   epochs). A loss keeps the grid point with the highest *validation* NDCG@10 (of the best
   epoch), averaged over folds. LightGBM ``lambdarank`` gets a grid of the same size
   (:data:`LGB_GRID`: num_leaves x min_data_in_leaf, learning rate 0.05, early stopping on its
   own vali NDCG@10 with 100 rounds of patience, which orders models exactly as ltr's default
   convention does) and the same selection rule, with ltr's vali NDCG@10 of its predictions at
   the best iteration. With ``--transformer`` the context-aware scorer is trained with the loss
   that won on vali (one grid point, :data:`TRANSFORMER_GRID`).
   The grids are small on purpose: 2 cores, about half an hour for the whole script.
2. Final numbers. Each winner trains ``--seeds`` seeds per fold (the seed-0 tuning run is
   reused). Test metrics of a fold are averaged over seeds; tables show mean ± std (ddof=1) of
   those per-fold values over folds. LightGBM gets the same seeds (its ``seed`` drives
   feature_fraction sampling).
3. Evaluation. Every model's test scores (MLP: ``Predictor.load(run).score(test)``; LightGBM:
   ``Booster.predict``) go through ``ltr.evaluation.evaluate_scores``: the default convention
   (gain exp2, no_relevant=zero), ``no_relevant=one`` (LightGBM's own) and the ``letor`` preset
   (Eval-Score-4.0.pl). Score ties keep file order, as in LightGBM and the LETOR script; GBDT
   predictions have many ties, so the JSON records how many test documents share a score.
4. Baseline: the best single feature (and direction) by NDCG@10 on each fold's *train* file.
5. The overall "best ltr configuration" is the loss with the highest mean *validation* NDCG@10;
   its test numbers are what the verdict compares with LightGBM.

Writes ``benchmarks/results/quality_mq2008.json`` (every run, the grid, the selections) and the
winners as ``configs/experiments/mq2008_<loss>.yaml``; ``--quick`` (one fold, two grid points,
few epochs) writes neither. With ``--out-dir`` a rerun reuses the finished runs it finds there
(same job name = same loss, grid point, fold and seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT / "src"))

from ltr.baselines import best_single_feature  # noqa: E402
from ltr.data.letor import LetorData, load_letor  # noqa: E402
from ltr.evaluation import evaluate_scores  # noqa: E402

LOSSES = [
    "mse",
    "ranknet",
    "lambdarank",
    "ndcgloss2pp",
    "listnet",
    "listmle",
    "approx_ndcg",
    "neural_ndcg",
]
DEFAULT_METRICS = ["ndcg@1", "ndcg@5", "ndcg@10", "map", "mrr"]
COLUMNS = [*DEFAULT_METRICS, "ndcg@10[one]", "ndcg@10[letor]"]

# The base every grid point overrides: the shipped defaults, early stopping on vali NDCG@10.
BASE_CONFIG: dict[str, Any] = {
    "data": {"normalization": "standard"},
    "model": {"name": "mlp", "hidden_dims": [256, 128], "dropout": 0.1, "activation": "relu"},
    "training": {
        "batch_size": 32,
        "num_epochs": 100,
        "optimizer": "adamw",
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "grad_clip": 5.0,
        "early_stopping_patience": 10,
        "early_stopping_metric": "ndcg@10",
        "device": "cpu",
    },
    "evaluation": {"metrics": ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr"]},
}
# One grid for every loss (loss parameters stay at their defaults): id -> overrides of BASE.
GRID: dict[str, list[str]] = {
    "A": [],  # the shipped default: lr 1e-3, [256, 128], dropout 0.1, batch 32
    "B": ["training.learning_rate=3e-4"],
    "C": ["training.learning_rate=1e-4"],
    "D": ["training.learning_rate=3e-4", "model.dropout=0.3"],
    "E": ["training.learning_rate=3e-4", "model.hidden_dims=[64]"],
    "F": ["training.learning_rate=3e-4", "training.batch_size=8"],
    "G": ["training.learning_rate=3e-3"],
}
TRANSFORMER_BASE: list[str] = [
    "model={name: transformer, d_model: 64, n_heads: 4, n_layers: 2, dim_feedforward: 128, "
    "dropout: 0.1, activation: gelu}",
]
TRANSFORMER_GRID: dict[str, list[str]] = {"T1": ["training.learning_rate=5e-4"]}
LGB_FIXED: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "ndcg_eval_at": [10],
    "learning_rate": 0.05,
    "feature_fraction": 0.8,
    "min_sum_hessian_in_leaf": 1e-3,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
LGB_GRID: dict[str, dict[str, Any]] = {
    "L1": {"num_leaves": 7, "min_data_in_leaf": 20},
    "L2": {"num_leaves": 15, "min_data_in_leaf": 20},
    "L3": {"num_leaves": 31, "min_data_in_leaf": 20},
    "L4": {"num_leaves": 15, "min_data_in_leaf": 50},
    "L5": {"num_leaves": 7, "min_data_in_leaf": 50},
    "L6": {"num_leaves": 31, "min_data_in_leaf": 50},
    "L7": {"num_leaves": 63, "min_data_in_leaf": 20},
}
LGB_ROUNDS, LGB_PATIENCE = 2000, 100


# --------------------------------------------------------------------------------------------
# Jobs (run in worker processes, one thread each)
# --------------------------------------------------------------------------------------------

_DATA: dict[str, LetorData] = {}


def _data(path: Path, n_features: int | None = None) -> LetorData:
    key = str(path)
    if key not in _DATA:
        _DATA[key] = load_letor(path, n_features=n_features)
    return _DATA[key]


def _fold_files(data_dir: Path, fold: int) -> dict[str, Path]:
    root = data_dir / "mq2008" / f"Fold{fold}"
    return {split: root / f"{split}.txt.gz" for split in ("train", "vali", "test")}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)  # "constant features normalize to 0", once per run


def _test_metrics(test: LetorData, scores: np.ndarray) -> dict[str, float]:
    """The table's metrics of ``scores`` on ``test``, through ltr's evaluation code."""
    out = dict(evaluate_scores(test, scores, DEFAULT_METRICS).means)
    out["ndcg@10[one]"] = evaluate_scores(test, scores, ["ndcg@10"], no_relevant="one").means[
        "ndcg@10"
    ]
    out["ndcg@10[skip]"] = evaluate_scores(test, scores, ["ndcg@10"], no_relevant="skip").means[
        "ndcg@10"
    ]
    out["ndcg@10[letor]"] = evaluate_scores(test, scores, ["ndcg@10"], preset="letor").means[
        "ndcg@10"
    ]
    out["map[letor]"] = evaluate_scores(test, scores, ["map"], preset="letor").means["map"]
    return out


def _tied_docs(data: LetorData, scores: np.ndarray) -> int:
    """Documents that share their score with another document of the same query."""
    owner = np.repeat(np.arange(data.n_queries), data.list_lengths)
    _, inverse, counts = np.unique(
        np.stack([owner.astype(np.float64), scores]),
        axis=1,
        return_inverse=True,
        return_counts=True,
    )
    return int((counts[inverse.ravel()] > 1).sum())


def train_mlp_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one config on one fold with one seed; test metrics of the best epoch."""
    from ltr.config import load_config
    from ltr.inference import Predictor
    from ltr.training import run_experiment

    started = time.perf_counter()
    files = _fold_files(Path(job["data_dir"]), job["fold"])
    overrides = [
        *job["overrides"],
        f"data.root={files['train'].parent}",
        f"training.seed={job['seed']}",
        f"tracking.output_dir={job['out_dir']}",
        "tracking.tensorboard=false",
        "training.num_threads=1",
        f"experiment.name={job['name']}",
    ]
    done = [
        d for d in Path(job["out_dir"]).glob(f"*-{job['name']}") if (d / "metrics.json").is_file()
    ]
    if done:  # the same job finished in an earlier invocation with this --out-dir
        run_dir = done[0]
    else:
        run_dir = run_experiment(load_config(base=BASE_CONFIG, overrides=overrides), quiet=True)
    report = json.loads((run_dir / "metrics.json").read_text())
    train = _data(files["train"])
    test = _data(files["test"], train.n_features)
    scores = Predictor.load(run_dir).score(test)
    test_metrics = _test_metrics(test, scores)
    # the scores we evaluate are the ones run_experiment tested
    assert abs(test_metrics["ndcg@10"] - report["test"]["ndcg@10"]) < 1e-9, run_dir
    return {
        **{k: job[k] for k in ("kind", "loss", "point", "fold", "seed")},
        "valid_ndcg@10": report["valid"]["ndcg@10"],
        "test": test_metrics,
        "best_epoch": report["best_epoch"],
        "epochs": report["epochs"],
        "run_dir": str(run_dir),
        "seconds": time.perf_counter() - started,
    }


def train_lightgbm_job(job: dict[str, Any]) -> dict[str, Any]:
    """LightGBM lambdarank on one fold: early stopping on vali NDCG@10 (its own metric)."""
    import lightgbm as lgb

    started = time.perf_counter()
    files = _fold_files(Path(job["data_dir"]), job["fold"])
    train = _data(files["train"])
    vali = _data(files["vali"], train.n_features)
    test = _data(files["test"], train.n_features)
    params = {**LGB_FIXED, **LGB_GRID[job["point"]], "seed": job["seed"]}
    dtrain = lgb.Dataset(train.features, train.labels, group=train.list_lengths)
    dvali = lgb.Dataset(vali.features, vali.labels, group=vali.list_lengths, reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=job["rounds"],
        valid_sets=[dvali],
        valid_names=["vali"],
        callbacks=[lgb.early_stopping(job["patience"], verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    vali_scores = np.asarray(booster.predict(vali.features, num_iteration=best), dtype=np.float64)
    test_scores = np.asarray(booster.predict(test.features, num_iteration=best), dtype=np.float64)
    return {
        **{k: job[k] for k in ("kind", "loss", "point", "fold", "seed")},
        "valid_ndcg@10": evaluate_scores(vali, vali_scores, ["ndcg@10"]).means["ndcg@10"],
        "valid_ndcg@10_lightgbm": float(booster.best_score["vali"]["ndcg@10"]),
        "test": _test_metrics(test, test_scores),
        "best_iteration": best,
        "test_tied_docs": _tied_docs(test, test_scores),
        "test_docs": test.n_docs,
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def run_jobs(
    pool: ProcessPoolExecutor, fn: Callable[[dict[str, Any]], dict[str, Any]], jobs: list[dict]
) -> list[dict[str, Any]]:
    results = list(pool.map(fn, jobs))
    return results


def mlp_jobs(
    args: argparse.Namespace, loss: str, point: str, overrides: list[str], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    kind = "transformer" if point.startswith("T") else "mlp"
    return [
        {
            "kind": kind,
            "loss": loss,
            "point": point,
            "fold": fold,
            "seed": seed,
            "overrides": [f"loss.name={loss}", *overrides, *args.extra_overrides],
            "data_dir": str(args.data_dir),
            "out_dir": str(args.out_dir),
            "name": f"{kind}_{loss}_{point}_f{fold}_s{seed}",
        }
        for fold in args.folds
        for seed in seeds
    ]


def lgb_jobs(args: argparse.Namespace, point: str, seeds: Sequence[int]) -> list[dict[str, Any]]:
    return [
        {
            "kind": "lightgbm",
            "loss": "lightgbm",
            "point": point,
            "fold": fold,
            "seed": seed,
            "data_dir": str(args.data_dir),
            "rounds": args.lgb_rounds,
            "patience": LGB_PATIENCE,
        }
        for fold in args.folds
        for seed in seeds
    ]


def select(records: list[dict[str, Any]]) -> tuple[str, dict[str, float]]:
    """The grid point with the highest mean validation NDCG@10 over folds (seed 0 runs)."""
    by_point: dict[str, list[float]] = {}
    for r in records:
        if r["seed"] == 0:
            by_point.setdefault(r["point"], []).append(r["valid_ndcg@10"])
    means = {p: float(np.mean(v)) for p, v in by_point.items()}
    return max(means, key=lambda p: (means[p], -ord(p[-1]))), means


def summarize(records: list[dict[str, Any]], folds: Sequence[int]) -> dict[str, Any]:
    """Per fold: the mean over seeds; then mean and std (ddof=1) of those over folds."""
    keys = [*COLUMNS, "ndcg@10[skip]", "map[letor]"]
    per_fold: dict[str, list[float]] = {k: [] for k in [*keys, "valid_ndcg@10"]}
    for fold in folds:
        runs = [r for r in records if r["fold"] == fold]
        for k in keys:
            per_fold[k].append(float(np.mean([r["test"][k] for r in runs])))
        per_fold["valid_ndcg@10"].append(float(np.mean([r["valid_ndcg@10"] for r in runs])))
    return {
        "per_fold": per_fold,
        "mean": {k: float(np.mean(v)) for k, v in per_fold.items()},
        "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in per_fold.items()},
        "seeds": sorted({r["seed"] for r in records}),
    }


def single_feature(args: argparse.Namespace) -> dict[str, Any]:
    per_fold: list[dict[str, float]] = []
    names = []
    for fold in args.folds:
        files = _fold_files(args.data_dir, fold)
        train = _data(files["train"])
        test = _data(files["test"], train.n_features)
        feature = best_single_feature(train, "ndcg@10")
        names.append(feature.name)
        per_fold.append(_test_metrics(test, feature.scores(test)))
    keys = [*COLUMNS, "ndcg@10[skip]", "map[letor]"]
    values = {k: [m[k] for m in per_fold] for k in keys}
    return {
        "features": names,
        "per_fold": values,
        "mean": {k: float(np.mean(v)) for k, v in values.items()},
        "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()},
    }


def write_config(loss: str, point: str, overrides: list[str], note: str, path: Path) -> None:
    from ltr.config import load_config

    config = load_config(
        base=BASE_CONFIG,
        overrides=[
            f"loss.name={loss}",
            *overrides,
            "data.root=../shared/data/mq2008/Fold1",
            f"experiment.name=mq2008_{loss}",
            f"experiment.description=MLP + {loss} tuned on MQ2008 vali (grid point {point})",
        ],
    )
    raw = config.resolved()
    raw["tracking"] = {"output_dir": "experiments", "tensorboard": True}
    header = (
        f"# MQ2008, {loss}: grid point {point} of benchmarks/bench_quality.py, chosen by mean "
        f"validation NDCG@10\n# over the 5 folds (never by test). {note}\n"
        "# Reproduce one fold: ltr train --config "
        f"configs/experiments/mq2008_{loss}.yaml --set data.root=../shared/data/mq2008/Fold1\n"
    )
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def fmt(summary: dict[str, Any], key: str) -> str:
    return f"{summary['mean'][key]:.4f} ± {summary['std'][key]:.4f}"


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = (
        "| model | vali ndcg@10 | ndcg@1 | ndcg@5 | ndcg@10 | map | mrr | "
        "ndcg@10 no_relevant=one | ndcg@10 letor |"
    )
    lines = [head, "|" + "---|" * 9]
    for label, s in rows:
        vali = fmt(s, "valid_ndcg@10") if "valid_ndcg@10" in s["mean"] else "–"
        cells = [fmt(s, k) for k in COLUMNS]
        lines.append(f"| {label} | {vali} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_table(selections: dict[str, dict[str, Any]], points: Sequence[str]) -> str:
    lines = ["| model | " + " | ".join(points) + " | chosen |", "|" + "---|" * (len(points) + 2)]
    for name, sel in selections.items():
        cells = []
        for p in points:
            value = sel["vali_means"].get(p)
            text = "" if value is None else f"{value:.4f}"
            cells.append(f"**{text}**" if p == sel["point"] else text)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sel['point']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--folds", default="1,2,3,4,5")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per fold for the winners")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (1 thread each)")
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--grid", default=",".join(GRID), help="MLP grid points to try")
    parser.add_argument("--lgb-grid", default=",".join(LGB_GRID), help="LightGBM grid points")
    parser.add_argument("--transformer", action="store_true", help="add the transformer scorer")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 fold, few epochs")
    parser.add_argument("--out-dir", type=Path, default=None, help="run dirs (default: temp)")
    parser.add_argument("--results", type=Path, default=_ROOT / "benchmarks/results")
    parser.add_argument("--configs", type=Path, default=_ROOT / "configs/experiments")
    args = parser.parse_args()
    started = time.perf_counter()
    args.folds = [int(f) for f in args.folds.split(",")]
    losses = args.losses.split(",")
    grid = {p: GRID[p] for p in args.grid.split(",")}
    lgb_grid = {p: LGB_GRID[p] for p in args.lgb_grid.split(",")}
    seeds = list(range(args.seeds))
    args.extra_overrides, args.lgb_rounds = [], LGB_ROUNDS
    if args.quick:
        args.folds = args.folds[:1]
        grid = {p: grid[p] for p in list(grid)[:2]}
        lgb_grid = {p: lgb_grid[p] for p in list(lgb_grid)[:2]}
        seeds = [0]
        args.extra_overrides = ["training.num_epochs=3"]
        args.lgb_rounds = 30
    temp = None
    if args.out_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="bench_quality_")
        args.out_dir = Path(temp.name)
    args.data_dir = args.data_dir.resolve()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"$ {command}\n", flush=True)
    records: list[dict[str, Any]] = []
    selections: dict[str, dict[str, Any]] = {}
    ctx = get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker) as pool:
        # 1. tuning: every grid point, every fold, seed 0
        tune_jobs = [
            j for loss in losses for p, o in grid.items() for j in mlp_jobs(args, loss, p, o, [0])
        ]
        tune_jobs += [j for p in lgb_grid for j in lgb_jobs(args, p, [0])]
        t0 = time.perf_counter()
        tuned = list(pool.map(_dispatch, tune_jobs))
        records += tuned
        print(f"tuning: {len(tune_jobs)} runs in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in [*losses, "lightgbm"]:
            point, means = select([r for r in tuned if r["loss"] == name])
            selections[name] = {"point": point, "vali_means": means}
        # 2. the transformer with the loss that won on vali
        best_loss = max(losses, key=lambda n: selections[n]["vali_means"][selections[n]["point"]])
        if args.transformer:
            t_jobs = [
                j
                for p, o in TRANSFORMER_GRID.items()
                for j in mlp_jobs(args, best_loss, p, [*TRANSFORMER_BASE, *o], [0])
            ]
            t_records = list(pool.map(_dispatch, t_jobs))
            records += t_records
            point, means = select(t_records)
            selections[f"transformer+{best_loss}"] = {"point": point, "vali_means": means}
        # 3. extra seeds for each winner
        extra = [s for s in seeds if s != 0]
        final_jobs: list[dict[str, Any]] = []
        for name, sel in selections.items():
            if name == "lightgbm":
                final_jobs += lgb_jobs(args, sel["point"], extra)
            elif name.startswith("transformer+"):
                over = [*TRANSFORMER_BASE, *TRANSFORMER_GRID[sel["point"]]]
                final_jobs += mlp_jobs(args, best_loss, sel["point"], over, extra)
            else:
                final_jobs += mlp_jobs(args, name, sel["point"], grid[sel["point"]], extra)
        t0 = time.perf_counter()
        records += list(pool.map(_dispatch, final_jobs))
        print(f"final seeds: {len(final_jobs)} runs in {time.perf_counter() - t0:.0f} s")

    def winner_records(name: str) -> list[dict[str, Any]]:
        sel = selections[name]
        kind = "transformer" if name.startswith("transformer+") else None
        loss = best_loss if kind else name
        return [r for r in records if r["loss"] == loss and r["point"] == sel["point"]]

    summaries = {name: summarize(winner_records(name), args.folds) for name in selections}
    baseline = single_feature(args)
    wall = time.perf_counter() - started

    # ---- report
    neural = [n for n in selections if n != "lightgbm"]
    best_name = max(neural, key=lambda n: summaries[n]["mean"]["valid_ndcg@10"])
    rows = [(f"MLP + {n}" if "+" not in n else n, summaries[n]) for n in neural]
    rows.append(("LightGBM lambdarank", summaries["lightgbm"]))
    rows.append(("best single feature (train)", baseline))
    n_seeds = len(seeds)
    print(
        f"\n### MQ2008, {len(args.folds)} folds: test metrics, mean ± std over folds "
        f"(each fold: mean of {n_seeds} seed(s))\n"
    )
    print(
        "Default convention: gain exp2, no_relevant=zero, ties in file order. "
        "`no_relevant=one` is LightGBM's own NDCG; `letor` is the Eval-Score-4.0.pl preset. "
        "vali = validation NDCG@10 of the best epoch (the selection criterion).\n"
    )
    print(table(rows))
    print("\n### Tuning grid: mean validation NDCG@10 over folds, seed 0 (chosen in bold)\n")
    print(
        "MLP base: " + json.dumps(BASE_CONFIG["model"]) + ", " + json.dumps(BASE_CONFIG["training"])
    )
    for p, o in grid.items():
        print(f"- {p}: {', '.join(o) or 'base'}")
    print(grid_table({n: s for n, s in selections.items() if n in losses}, list(grid)))
    print(f"\nLightGBM fixed: {json.dumps(LGB_FIXED)}")
    print(f"rounds {args.lgb_rounds}, early-stopping patience {LGB_PATIENCE} rounds")
    for p, o in lgb_grid.items():
        print(f"- {p}: {json.dumps(o)}")
    print(grid_table({"lightgbm": selections["lightgbm"]}, list(lgb_grid)))
    if args.transformer:
        print(f"\nTransformer ({'; '.join(TRANSFORMER_BASE)}) with {best_loss}:")
        for p, o in TRANSFORMER_GRID.items():
            print(f"- {p}: {', '.join(o)}")
        name = f"transformer+{best_loss}"
        print(grid_table({name: selections[name]}, list(TRANSFORMER_GRID)))
    print(f"\nBest single feature per fold (chosen on train): {', '.join(baseline['features'])}")
    ties = [
        r
        for r in records
        if r["kind"] == "lightgbm" and r["point"] == selections["lightgbm"]["point"]
    ]
    tied = sum(r["test_tied_docs"] for r in ties) / len(ties)
    docs = sum(r["test_docs"] for r in ties) / len(ties)
    print(f"LightGBM test predictions: {tied:.0f} of {docs:.0f} documents per fold share a score")

    print("\n### Verdicts\n")
    lgb = summaries["lightgbm"]
    best = summaries[best_name]
    print(
        f"Best ltr configuration by mean vali NDCG@10: {best_name} "
        f"(vali {best['mean']['valid_ndcg@10']:.4f} vs LightGBM {lgb['mean']['valid_ndcg@10']:.4f})"
    )
    for key, label in [
        ("ndcg@10", "default (exp2, no_relevant=zero)"),
        ("ndcg@10[one]", "no_relevant=one (LightGBM)"),
        ("ndcg@10[letor]", "letor preset"),
    ]:
        ok = best["mean"][key] >= lgb["mean"][key]
        print(
            f"- {'PASS' if ok else 'FAIL'}: {best_name} test NDCG@10 {best['mean'][key]:.4f} "
            f"{'>=' if ok else '<'} LightGBM {lgb['mean'][key]:.4f} under {label}"
        )
    for name in neural:
        bad = [
            k
            for k in ("ndcg@10", "ndcg@10[one]", "ndcg@10[letor]")
            if summaries[name]["mean"][k] <= baseline["mean"][k]
        ]
        verdict = "PASS" if not bad else "FAIL (" + ", ".join(bad) + ")"
        print(
            f"- {verdict}: {name} test NDCG@10 {summaries[name]['mean']['ndcg@10']:.4f} vs best "
            f"single feature {baseline['mean']['ndcg@10']:.4f}"
        )
    print(
        f"\nWall time: {wall:.0f} s ({len(records)} training runs, {args.jobs} workers x 1 thread)"
    )

    if not args.quick:
        args.results.mkdir(parents=True, exist_ok=True)
        out = {
            "command": command,
            "wall_seconds": wall,
            "folds": args.folds,
            "seeds": seeds,
            "base_config": BASE_CONFIG,
            "grid": grid,
            "lightgbm_fixed": LGB_FIXED,
            "lightgbm_grid": lgb_grid,
            "transformer_grid": TRANSFORMER_GRID if args.transformer else None,
            "selections": selections,
            "best_by_vali": best_name,
            "summaries": summaries,
            "best_single_feature": baseline,
            "runs": [{k: v for k, v in r.items() if k != "run_dir"} for r in records],
        }
        path = args.results / "quality_mq2008.json"
        path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"Raw results: {path.relative_to(_ROOT)}")
        for name in losses:
            sel = selections[name]
            note = (
                f"Mean vali NDCG@10 {sel['vali_means'][sel['point']]:.4f}; "
                f"test {fmt(summaries[name], 'ndcg@10')} over folds."
            )
            write_config(
                name, sel["point"], grid[sel["point"]], note, args.configs / f"mq2008_{name}.yaml"
            )
        print(f"Configs: {args.configs.relative_to(_ROOT)}/mq2008_<loss>.yaml")
    if temp is not None:
        temp.cleanup()


def _dispatch(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "lightgbm":
        return train_lightgbm_job(job)
    return train_mlp_job(job)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
