"""Method development on MQ2008 without the test files: compare ideas on vali, honestly.

``bench_quality.py`` selects on vali and reports test, so every idea tried there costs a look at
the test set. This script never opens a test file. Per fold, the training file is split by query
(80/20, seeded with the run's seed, ``data.valid_fraction``); training early-stops on the 20%
split, and the fold's *vali* file measures the result, which nothing was fitted or selected on.
LightGBM gets the same split (its early stopping on the 20%) for a like-for-like reference.

    .venv/bin/python benchmarks/dev_quality.py --data-dir ../shared/data \\
        --candidate listmle:P9 --candidate ranknet:P3 \\
        --candidate "ranknet:P3:data.max_list_length=null" [--blend "listmle:P9+ranknet:P3"] \\
        [--seeds 5] [--lgb-seeds 5] [--jobs 2] [--out-dir DIR]

A candidate is ``LOSS:POINT[:key=value,...]``: a loss, one of ``bench_quality``'s shared points
(``P0``..``P9``, with that loss's own parameters), and optional config overrides (a comma inside
``[...]`` or ``{...}`` belongs to the value). Reported per candidate, mean over folds: vali NDCG@10
under the default convention and the letor preset, for single models (mean over seeds) and for the
seed average (``ltr ensemble``'s mean of scores), split by list length (queries with < 10 and >= 10
documents, where the letor preset differs), and the paired difference to LightGBM
(``bench_quality``'s kept point L0), per fold and pooled over every fold's queries with a
bootstrap interval. A row gives the best single feature (chosen on the training
file, as ``bench_quality`` does) for the "every loss beats the best single feature" target.

An extra ``ple=B`` (not a config key) trains that candidate on piecewise-linear encoded
features (Gorishniy et al. 2022, "On Embeddings for Numerical Features in Tabular Deep
Learning"): each feature becomes B columns, one per quantile bin of the fold's training file,
holding how far the value has passed through that bin. It is the MLP's answer to the thresholds
trees split on; the encoded files are written once into ``--out-dir``.

An extra ``fsub=F`` (not a config key) trains each seed on its own seeded random fraction F of
the features, the others zeroed in its train and vali files (the random subspace method, Ho
1998): seed averages then mix members that differ in what they see, as LightGBM's trees do
with ``feature_fraction``.

A blend (``--blend A+B+...``, each part a candidate) averages every seed of every part: models
trained with different losses, which err less alike than seeds of one loss. Each member's scores
are divided by their standard deviation over its own training file first (losses leave scores
on different scales; a fixed per-member factor, as ``ltr ensemble --weights`` can carry). Its
"single" row is the blend of seed 0 of each part. Compare a blend of N models with LightGBM
averaged over as many seeds (``--lgb-seeds``); the table prints LightGBM's average over
``--lgb-seeds`` seeds as a row of its own.

With ``--out-dir`` every job's scores are kept (``scores/``) and reused by later invocations
with the same candidate, fold and seed, so blends of earlier candidates cost nothing.

The pairwise losses (``ranknet``, ``lambdarank``, ``ndcgloss2pp``) reduce their pairs per query
by default since session 5 (``loss.params.reduction=queries``); the tables of earlier sessions
were measured with ``reduction=pairs``, which a candidate can still set. A pairwise job that
leaves the reduction to the default is cached under a key of its own, never under an earlier
session's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared_data import add_data_dir_option, require_data
from bench_quality import (
    BASE_CONFIG,
    LGB_ANCHOR,
    LGB_FIXED,
    PAIRWISE,
    _init_worker,
    lgb_params,
    mean_with_interval,
    mlp_points,
    to_overrides,
)

if TYPE_CHECKING:
    from ltr.data.letor import LetorData

LONG = 10  # the letor preset scores NDCG@10 only on lists this long


def parse_candidate(text: str) -> dict[str, Any]:
    loss, point, *rest = text.split(":", 2)
    extra = [kv for kv in re.split(r",(?![^\[{]*[\]}])", rest[0]) if kv] if rest else []
    bins = [int(kv.removeprefix("ple=")) for kv in extra if kv.startswith("ple=")]
    kept = [float(kv.removeprefix("fsub=")) for kv in extra if kv.startswith("fsub=")]
    if bins and kept:
        raise SystemExit(f"{text}: ple= and fsub= do not combine")
    return {
        "label": text,
        "loss": loss,
        "point": point,
        "extra": extra,
        "ple": max(bins or [0]),
        "fsub": min(kept or [1.0]),
    }


def piecewise_linear(features: np.ndarray, edges: list[np.ndarray], bins: int) -> np.ndarray:
    """Piecewise-linear encoding (Gorishniy et al. 2022): ``bins`` columns per feature.

    Column t of feature f is 0 below edge t, 1 above edge t + 1 and linear in between, so a
    value becomes the fraction of each quantile bin it has passed; features with fewer distinct
    edges get zero columns to fill up to ``bins``.
    """
    columns = []
    for f, edge in enumerate(edges):
        low, high = edge[:-1], edge[1:]
        columns.append(np.clip((features[:, f : f + 1] - low) / (high - low), 0.0, 1.0))
        columns.append(np.zeros((features.shape[0], bins - low.size)))
    return np.hstack(columns).astype(np.float32)


def _write_fold(
    train: LetorData, source: Path, target: Path, features_of: Callable[[LetorData], np.ndarray]
) -> None:
    """The fold's train and vali files under ``target``, each with ``features_of(data)`` as its
    features (``train`` is the fold's training file, already loaded by the caller)."""
    import dataclasses

    from ltr.data.letor import load_letor, write_letor

    target.mkdir(parents=True, exist_ok=True)
    for name in ("train.txt.gz", "vali.txt.gz"):  # vali last: its presence marks a finished fold
        width = train.n_features
        data = train if name == "train.txt.gz" else load_letor(source / name, n_features=width)
        partial = target / f"partial-{os.getpid()}-{name}"  # candidates may share a fold
        write_letor(partial, dataclasses.replace(data, features=features_of(data)))
        partial.replace(target / name)


def write_encoded(data_dir: Path, fold: int, bins: int, out: Path) -> None:
    """The fold's train and vali files, piecewise-linear encoded on train's quantiles."""
    from ltr.data.letor import load_letor

    target = out / "mq2008" / f"Fold{fold}"
    if (target / "vali.txt.gz").exists():
        return
    source = data_dir / "mq2008" / f"Fold{fold}"
    train = load_letor(source / "train.txt.gz")
    edges = []
    for column in train.features.T.astype(np.float64):
        edge = np.unique(np.quantile(column, np.linspace(0.0, 1.0, bins + 1)))
        edges.append(edge if edge.size > 1 else np.array([edge[0], edge[0] + 1.0]))

    def encode(data: LetorData) -> np.ndarray:
        return piecewise_linear(data.features.astype(np.float64), edges, bins)

    _write_fold(train, source, target, encode)


def write_subspace(data_dir: Path, fold: int, seed: int, kept: float, out: Path) -> Path:
    """The fold's train and vali files with a seeded random ``1 - kept`` of the features zeroed.

    The random subspace method (Ho 1998): each ensemble member sees its own feature subset, the
    network's counterpart of LightGBM's per-tree ``feature_fraction``. Returns the data root.
    """
    from ltr.data.letor import load_letor

    root = out / f"fsub{kept}" / f"s{seed}"
    target = root / "mq2008" / f"Fold{fold}"
    if (target / "vali.txt.gz").exists():
        return root
    source = data_dir / "mq2008" / f"Fold{fold}"
    train = load_letor(source / "train.txt.gz")
    rng = np.random.default_rng([seed, fold, 11])
    mask = np.zeros(train.n_features, dtype=np.float32)
    mask[rng.permutation(train.n_features)[: round(kept * train.n_features)]] = 1.0
    _write_fold(train, source, target, lambda d: d.features * mask)
    return root


def train_candidate(job: dict[str, Any]) -> np.ndarray:
    """Scores of one candidate on one fold and seed (early stopping on a train split).

    Returns ``[vali scores, training-file scores]`` concatenated (the latter give each model's
    score scale for blends).
    """
    from ltr.config import load_config
    from ltr.data.letor import load_letor
    from ltr.inference import Predictor
    from ltr.training import run_experiment

    root = Path(job["out_dir"]) / f"ple{job['ple']}" if job["ple"] else Path(job["data_dir"])
    if job["fsub"] < 1.0:
        root = write_subspace(root, job["fold"], job["seed"], job["fsub"], Path(job["out_dir"]))
    fold = root / "mq2008" / f"Fold{job['fold']}"
    point = mlp_points(job["loss"], 10)[job["point"]]
    overrides = [
        f"loss.name={job['loss']}",
        *to_overrides(point),
        *(kv for kv in job["extra"] if not kv.startswith(("ple=", "fsub="))),
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
    predictor = Predictor.load(run_dir)
    return np.concatenate(
        [predictor.score(load_letor(fold / name)) for name in ("vali.txt.gz", "train.txt.gz")]
    )


def train_lightgbm(job: dict[str, Any]) -> np.ndarray:
    """LightGBM's scores of vali and of the whole training file (as :func:`train_candidate`),
    early stopping on the same 80/20 split of the training file."""
    import lightgbm as lgb

    from ltr.data.dataset import split_by_query
    from ltr.data.letor import load_letor

    fold = Path(job["data_dir"]) / "mq2008" / f"Fold{job['fold']}"
    whole = load_letor(fold / "train.txt.gz")
    train, stop = split_by_query(whole, 0.2, seed=job["seed"])
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
    return np.concatenate(
        [booster.predict(d.features, num_iteration=booster.best_iteration) for d in (vali, whole)]
    )


def _dispatch(job: dict[str, Any]) -> np.ndarray:
    cache = Path(job["out_dir"]) / "scores" / f"{_job_key(job)}.npy"
    if cache.exists():
        return np.asarray(np.load(cache), dtype=np.float64)
    scores = train_lightgbm(job) if job["loss"] == "lightgbm" else train_candidate(job)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".tmp.npy")
    np.save(partial, np.asarray(scores, dtype=np.float64))
    partial.replace(cache)
    return scores


def _job_key(job: dict[str, Any]) -> str:
    """A file name for one job's scores: what was trained, on which fold, with which seed."""
    parts = [job["loss"], job["point"], job["extra"], job["fold"], job["seed"]]
    if job["loss"] in PAIRWISE and not any("reduction=" in kv for kv in job["extra"]):
        parts.append("reduction=queries")  # the default changed in session 5: a new key
    what = json.dumps(parts)
    return hashlib.sha1(what.encode()).hexdigest()[:16]


def _split_scores(scores: np.ndarray, n_vali: int) -> np.ndarray:
    """Vali scores over the standard deviation of the training-file scores (the member's scale)."""
    scale = float(np.std(scores[n_vali:]))
    return scores[:n_vali] / (scale if scale > 0 else 1.0)


@functools.cache
def _vali(data_dir: Path, fold: int) -> Any:
    from ltr.data.letor import load_letor

    return load_letor(data_dir / "mq2008" / f"Fold{fold}" / "vali.txt.gz")


def vali_metrics(data_dir: Path, fold: int, scores: np.ndarray) -> dict[str, Any]:
    """Means over the fold's vali queries, and (key ``per_query``) each query's two NDCG@10s."""
    from ltr.evaluation import evaluate_scores

    vali = _vali(data_dir, fold)
    default = evaluate_scores(vali, scores, ["ndcg@10"]).per_query["ndcg@10"]
    letor = evaluate_scores(vali, scores, ["ndcg@10"], preset="letor").per_query["ndcg@10"]
    long = vali.list_lengths >= LONG
    return {
        "ndcg@10": float(default.mean()),
        "ndcg@10[letor]": float(letor.mean()),
        "ndcg@10 short lists": float(default[~long].mean()),
        "ndcg@10 long lists": float(default[long].mean()),
        "per_query": {"ndcg@10": default, "ndcg@10[letor]": letor},
    }


def pooled_difference(
    rows: list[dict[str, Any]], reference: list[dict[str, Any]], key: str, draws: int = 10_000
) -> tuple[float, float, float]:
    """Paired per-query difference pooled over the folds' vali queries: mean, 95% bootstrap CI.

    Each MQ2008 query is in exactly one vali fold, so this pools the whole dataset; resampling
    queries (seeded) ignores fold effects, so the interval is somewhat narrow.
    """
    diff = np.concatenate(
        [
            r["per_query"][key] - ref["per_query"][key]
            for r, ref in zip(rows, reference, strict=True)
        ]
    )
    return mean_with_interval(diff, draws)


def _best_feature_scores(data_dir: Path, fold: int) -> np.ndarray:
    """Vali scores of the fold's best single feature, chosen on its whole training file."""
    from ltr.baselines import best_single_feature
    from ltr.data.letor import load_letor

    train = load_letor(data_dir / "mq2008" / f"Fold{fold}" / "train.txt.gz")
    return best_single_feature(train, "ndcg@10").scores(_vali(data_dir, fold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_dir_option(parser)
    parser.add_argument("--candidate", action="append", default=[], type=parse_candidate)
    parser.add_argument("--blend", action="append", default=[], help="A+B+...: candidates")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lgb-seeds", type=int, default=None, help="default: --seeds")
    parser.add_argument("--folds", default="1,2,3,4,5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    folds = [int(f) for f in args.folds.split(",")]
    splits = ("train", "vali")  # dev_quality never opens a test file
    require_data(data_dir, *(f"mq2008/Fold{f}/{s}.txt.gz" for f in folds for s in splits))
    lgb_seeds = max(args.seeds, args.lgb_seeds or args.seeds)
    blends = [[parse_candidate(part) for part in b.split("+")] for b in args.blend]
    candidates = {c["label"]: c for c in [*args.candidate, *(p for b in blends for p in b)]}
    if not candidates:
        parser.error("give at least one --candidate or --blend")
    temp = tempfile.TemporaryDirectory(prefix="dev_quality_") if args.out_dir is None else None
    out_dir = Path(temp.name) if temp is not None else args.out_dir
    lgb: dict[str, Any] = {
        "label": "LightGBM L0",
        "loss": "lightgbm",
        "point": "L0",
        "extra": [],
        "ple": 0,
        "fsub": 1.0,
    }
    for bins in sorted({c["ple"] for c in candidates.values()} - {0}):
        for f in folds:
            write_encoded(data_dir, f, bins, out_dir / f"ple{bins}")
    jobs = [
        {**m, "fold": f, "seed": s, "data_dir": str(data_dir), "out_dir": str(out_dir)}
        for m, n_seeds in [(lgb, lgb_seeds), *((c, args.seeds) for c in candidates.values())]
        for f in folds
        for s in range(n_seeds)
    ]
    with ProcessPoolExecutor(
        args.jobs, mp_context=get_context("spawn"), initializer=_init_worker
    ) as pool:
        scores = list(pool.map(_dispatch, jobs))

    def runs(label: str, fold: int, n_seeds: int, scaled: bool = False) -> list[np.ndarray]:
        n_vali = len(_vali(data_dir, fold).labels)
        found = [
            s
            for j, s in zip(jobs, scores, strict=True)
            if j["label"] == label and j["fold"] == fold and j["seed"] < n_seeds
        ]
        return [_split_scores(s, n_vali) if scaled else s[:n_vali] for s in found]

    def per_fold(members: list[str], n_seeds: int, scaled: bool) -> list[dict[str, float]]:
        return [
            vali_metrics(
                data_dir,
                f,
                np.mean([r for m in members for r in runs(m, f, n_seeds, scaled)], axis=0),
            )
            for f in folds
        ]

    def single(label: str) -> list[dict[str, float]]:
        out = []
        for f in folds:
            each = [vali_metrics(data_dir, f, r) for r in runs(label, f, args.seeds)]
            mean = {k: float(np.mean([e[k] for e in each])) for k in each[0] if k != "per_query"}
            mean["per_query"] = {  # each query's mean over the seeds
                k: np.mean([e["per_query"][k] for e in each], axis=0) for k in each[0]["per_query"]
            }
            out.append(mean)
        return out

    lgb_average = {n: per_fold([lgb["label"]], n, False) for n in range(1, lgb_seeds + 1)}
    feature_rows = [vali_metrics(data_dir, f, _best_feature_scores(data_dir, f)) for f in folds]
    # (row name, per-fold metrics, models per fold); each row is judged against LightGBM
    # averaged over as many seeds (up to --lgb-seeds)
    rows: list[tuple[str, list[dict[str, float]], int]] = [
        ("LightGBM L0 (single)", single(lgb["label"]), 1),
        *(
            (f"LightGBM L0 ({n}-seed average)", lgb_average[n], n)
            for n in sorted({args.seeds, lgb_seeds})
            if n > 1
        ),
    ]
    rows.append(("best single feature (train file)", feature_rows, 1))
    for label in (c["label"] for c in args.candidate):
        rows.append((f"{label} (single)", single(label), 1))
        rows.append(
            (
                f"{label} ({args.seeds}-seed average)",
                per_fold([label], args.seeds, False),
                args.seeds,
            )
        )
    for parts in blends:
        labels = [p["label"] for p in parts]
        name = " + ".join(labels)
        rows.append((f"blend {name} (seed 0)", per_fold(labels, 1, True), len(labels)))
        rows.append(
            (
                f"blend {name} ({args.seeds} seeds each)",
                per_fold(labels, args.seeds, True),
                len(labels) * args.seeds,
            )
        )
    keys = [k for k in rows[0][1][0] if k != "per_query"]
    compared = ("ndcg@10", "ndcg@10[letor]")
    print(f"vali NDCG@10, mean over folds {folds}; {args.seeds} seeds; never the test files")
    print("Δ: paired per-fold difference to LightGBM averaged over as many seeds as the row has")
    print(f"models (at most {lgb_seeds}), mean ± std over folds; pooled: the paired per-query")
    print("difference over every fold's vali queries with its 95% bootstrap interval\n")
    headers = [f"Δ {k} vs LightGBM" for k in compared] + [f"pooled Δ {k}" for k in compared]
    print("| model | " + " | ".join([*keys, *headers]) + " |")
    print("|" + "---|" * (len(keys) + len(headers) + 1))
    for name, folds_metrics, n_models in rows:
        ref = lgb_average[min(n_models, lgb_seeds)] if n_models > 1 else rows[0][1]
        cells = [f"{np.mean([r[k] for r in folds_metrics]):.4f}" for k in keys]
        for k in compared:
            d = np.subtract([r[k] for r in folds_metrics], [r[k] for r in ref])
            cells.append(f"{d.mean():+.4f} ± {d.std(ddof=1) if d.size > 1 else 0:.4f}")
        for k in compared:
            mean, low, high = pooled_difference(folds_metrics, ref, k)
            cells.append(f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json is not None:
        table = {
            name: [{k: v for k, v in r.items() if k != "per_query"} for r in folds_metrics]
            for name, folds_metrics, _ in rows
        }
        args.json.write_text(json.dumps({"command": sys.argv, "table": table}, indent=1) + "\n")
    if temp is not None:
        temp.cleanup()


if __name__ == "__main__":
    main()
