"""Ranking quality on LETOR 4.0 MQ2008: every ltr loss (MLP scorer) against LightGBM lambdarank.

Protocol (5 folds; the test file of a fold is never used to choose anything; it is declared and
printed before any run starts)::

    .venv/bin/python benchmarks/bench_quality.py --data-dir ../shared/data [--jobs 2]
        [--points 10] [--lgb-points 16] [--top 2] [--seeds 3] [--ensemble 5] [--transformer]
        [--pairwise-reduction queries|pairs] [--list-ranks] [--out-dir DIR]

1. Stage 1, coarse random search (seed 0, all folds). Every loss trains ``--points`` points:
   P0 is the shipped default (:data:`BASE_CONFIG`), P1.. are drawn from :data:`SPACE` with a
   fixed generator (:data:`SEARCH_SEED`) in a Latin-hypercube design (each choice of a knob
   equally often); the shared knobs of point Pi are the same for every loss (common random
   numbers), the loss's own parameters (:data:`LOSS_SPACE`) come from a generator seeded by
   the loss name. Training goes through ``ltr.training.run_experiment``: early stopping on the
   fold's vali NDCG@10 (default convention), at most :data:`MAX_EPOCHS` epochs, patience
   :func:`patience_for` (longer for small learning rates). The score of a point is its
   validation NDCG@10 (best epoch) averaged over folds. LightGBM ``lambdarank`` gets the same
   treatment over its standard knobs (:data:`LGB_SPACE`, ``--lgb-points`` points, L0 = the
   previous round's choice), early stopping on its own vali NDCG@10 (which orders models as
   ltr's default convention does), scored with ltr's vali NDCG@10 at the best iteration.
2. Stage 2, re-evaluation: the ``--top`` points of each model by stage-1 score train seeds
   1..``--seeds``-1 as well; each model keeps the point with the highest validation NDCG@10
   averaged over folds and seeds. With ``--transformer`` the context-aware scorer is trained
   with the loss that won stage 2 on vali (:data:`TRANSFORMER_GRID`), same two stages.
3. Final numbers: the kept point's runs with seeds 0..max(``--seeds``, ``--ensemble``)-1 per
   fold (round 3 trains the seeds beyond ``--seeds``; 5 with the defaults); test metrics of a
   fold are averaged over those seeds; tables show mean ± std (ddof=1) of those per-fold values
   over folds, and paired per-fold differences (mean ± std over folds) against LightGBM and
   against the best single feature. Evaluation goes through
   ``ltr.evaluation.evaluate_scores``: the default convention (gain exp2, no_relevant=zero),
   ``no_relevant=one`` (LightGBM's own) and the ``letor`` preset (Eval-Score-4.0.pl). Score
   ties keep file order.
4. Baseline: the best single feature (and direction) by NDCG@10 on each fold's *train* file.
5. "The best ltr configuration" is the model (loss, or transformer) with the highest stage-2
   validation NDCG@10; its test numbers are what the verdict compares with LightGBM.
6. Round 3, seed ensembles (``--ensemble K``, default 5; 0 skips it): each kept point also
   trains seeds ``--seeds``..K-1, and per fold its K runs become one model with ``ltr ensemble``
   (the mean of their scores); LightGBM's K boosters are averaged the same way. The best ltr
   ensemble is chosen on vali (NDCG@10 averaged over the default and letor conventions) and
   compared with LightGBM's K-seed average (equal budget) and with the single LightGBM model.

7. The pairwise losses (RankNet, LambdaRank, NDCG-Loss2++) train with
   ``loss.params.reduction`` = ``--pairwise-reduction``: ``queries`` (the losses' default since
   session 5, round 4) or ``pairs`` (their default before, which rounds 1-3 used). Their job
   names carry ``-queries`` for the former, so one ``--out-dir`` keeps both sets of runs.
8. ``--list-ranks`` (round 5): every loss's stage-1 grid doubles. Point R<i> is P<i> with
   ``model.list_ranks=true`` (the MLP also sees each feature's percentile rank within its list,
   :class:`ltr.models.ListPercentileRanks`), so whether to use list ranks is chosen on vali
   like every other knob. LightGBM and the transformer's grid are unchanged.

Writes ``benchmarks/results/quality_mq2008.json`` (every run, the search space, the points, the
selections; the code's provenance, :func:`provenance`, for the invocation and for each run) and
the winners as ``configs/experiments/mq2008_<loss>.yaml``; ``--quick`` (one fold, two points,
few epochs) writes neither. With ``--out-dir`` a rerun reuses the finished runs it finds there
with the same job name (model, point, fold and seed) and the same resolved config (a hash stored
in the run); a run from before that hash existed is reused with ``provenance: unknown``. A
one-line summary says how many runs were reused, from which commits.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import inspect
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT / "src"))

from _shared_data import add_data_dir_option, require_data  # noqa: E402
from ltr._fs import atomic_write_json  # noqa: E402
from ltr.baselines import best_single_feature  # noqa: E402
from ltr.data.letor import LetorData, load_letor  # noqa: E402
from ltr.evaluation import evaluate_scores  # noqa: E402
from ltr.lifecycle.provenance import code_revision  # noqa: E402
from ltr.losses import LOSSES as LOSS_REGISTRY  # noqa: E402

LOSSES = list(LOSS_REGISTRY)  # every registered loss, in registry order
PAIRWISE = tuple(  # the losses with a `reduction` of their pairs
    name for name, fn in LOSS_REGISTRY.items() if "reduction" in inspect.signature(fn).parameters
)
DEFAULT_METRICS = ["ndcg@1", "ndcg@5", "ndcg@10", "map", "mrr"]
COLUMNS = [*DEFAULT_METRICS, "ndcg@10[one]", "ndcg@10[letor]"]
CONVENTIONS = [
    ("ndcg@10", "default (exp2, no_relevant=zero)"),
    ("ndcg@10[one]", "no_relevant=one (LightGBM)"),
    ("ndcg@10[letor]", "letor preset"),
]
# Conventions that cannot change a comparison. no_relevant=one scores 1 instead of 0 for *both*
# models on each query without a relevant document, so every per-query (and per-fold) difference
# equals the default's: its rows stay in the tables, but it is not a second, independent verdict.
SAME_DIFFERENCES = {"ndcg@10[one]": "ndcg@10"}
SAME_NOTE = (
    "same paired differences as the default convention: it adds 1 to both models on each query "
    "without a relevant document, so it is not a separate comparison"
)


SAME_DIFFERENCES_SHORT = "ndcg@10[one] differs from ndcg@10 by the same amount"


def convention_label(key: str, text: str) -> str:
    """A verdict's convention, saying so when its differences are another convention's."""
    return f"{text} [{SAME_NOTE}]" if key in SAME_DIFFERENCES else text


def distinct_conventions() -> str:
    """E.g. "2 distinct comparisons: default, letor preset", for a target's headline."""
    names = [text.split(" (")[0] for key, text in CONVENTIONS if key not in SAME_DIFFERENCES]
    return f"{len(names)} distinct comparisons: " + ", ".join(names)


# The base every point overrides: the shipped defaults, early stopping on vali NDCG@10.
MAX_EPOCHS = 60
BASE_CONFIG: dict[str, Any] = {
    "data": {"normalization": "standard"},
    "model": {"name": "mlp", "hidden_dims": [256, 128], "dropout": 0.1, "activation": "relu"},
    "training": {
        "batch_size": 32,
        "num_epochs": MAX_EPOCHS,
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
SEARCH_SEED = 20240607
# Shared MLP knobs: dotted config key -> choices (drawn uniformly, independently). None = omit.
SPACE: dict[str, list[Any]] = {
    "training.learning_rate": [1e-4, 3e-4, 1e-3, 3e-3],
    "model.hidden_dims": [[64], [128, 64], [256, 128]],
    "model.dropout": [0.0, 0.1, 0.3, 0.5],
    "training.weight_decay": [0.0, 1e-4, 1e-3, 1e-2],
    "training.batch_size": [8, 16, 32, 64],
    "data.normalization": ["standard", "none", "query_zscore"],
    "data.max_list_length": [None, 40],  # with data.list_sampling=sample (the default)
    "training.scheduler.name": ["none", "plateau"],  # plateau: x0.5 after 3 flat epochs
}
# Each loss's own parameters (defaults in brackets in the report); None = the loss's default.
LOSS_SPACE: dict[str, dict[str, list[Any]]] = {
    "mse": {},
    "ranknet": {"loss.params.sigma": [0.5, 1.0, 2.0]},
    "lambdarank": {"loss.params.sigma": [0.5, 1.0, 2.0], "loss.params.k": [None, 10]},
    "ndcgloss2pp": {"loss.params.sigma": [0.5, 1.0, 2.0], "loss.params.mu": [2.0, 5.0, 10.0, 20.0]},
    "listnet": {},
    "listmle": {},
    "approx_ndcg": {"loss.params.alpha": [1.0, 3.0, 10.0, 30.0]},
    "neural_ndcg": {"loss.params.tau": [0.3, 1.0, 3.0], "loss.params.k": [None, 10]},
}
TRANSFORMER_BASE: list[str] = [
    "model={name: transformer, d_model: 64, n_heads: 4, n_layers: 2, dim_feedforward: 128, "
    "dropout: 0.1, activation: gelu}",
]
TRANSFORMER_GRID: dict[str, dict[str, Any]] = {
    "T1": {"training.learning_rate": 5e-4},
    "T2": {"training.learning_rate": 3e-4, "model.dropout": 0.3, "training.weight_decay": 1e-3},
}
LGB_FIXED: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "ndcg_eval_at": [10],
    "min_sum_hessian_in_leaf": 1e-3,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
LGB_SPACE: dict[str, list[Any]] = {
    "num_leaves": [7, 15, 31, 63],
    "min_data_in_leaf": [5, 10, 20, 50, 100],
    "learning_rate": [0.02, 0.05, 0.1],
    "feature_fraction": [0.5, 0.7, 0.9, 1.0],
    "bagging_fraction": [0.7, 0.9, 1.0],  # bagging_freq 1 when < 1
    "lambda_l2": [0.0, 1.0, 10.0],
}
LGB_ANCHOR = {  # the previous round's choice
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "learning_rate": 0.05,
    "feature_fraction": 0.8,
    "bagging_fraction": 1.0,
    "lambda_l2": 0.0,
}
LGB_ROUNDS, LGB_PATIENCE = 2000, 100


PROVENANCE_PACKAGES = ("torch", "lightgbm", "numpy", "ltr")
RUN_PROVENANCE = "bench_provenance.json"  # written into each run directory this script trains


def provenance() -> dict[str, Any]:
    """The code this invocation runs: the repository's git commit and whether its tracked files
    differ from it (:func:`ltr.lifecycle.provenance.code_revision`; None without git), and the
    versions of :data:`PROVENANCE_PACKAGES` (None when one is not installed)."""
    revision = code_revision()
    versions: dict[str, str | None] = {}
    for package in PROVENANCE_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "commit": revision["code_revision"],
        "dirty": revision["code_dirty"],
        "versions": versions,
    }


def patience_for(lr: float) -> int:
    """Early-stopping patience (epochs): 10 at lr >= 1e-3, 20 below (slower progress)."""
    return 10 if lr >= 1e-3 else 20


def _design(rng: np.random.Generator, space: dict[str, list[Any]], n: int) -> list[dict]:
    """``n`` random points, Latin-hypercube style: per knob, every choice appears equally often
    (up to one), in an independent random order; so a 4-choice knob gets every value at least
    twice in 9 points, which plain independent draws do not guarantee."""
    columns = {}
    for key, choices in space.items():
        reps = -(-n // len(choices))
        pool = [choices[i % len(choices)] for i in rng.permutation(len(choices) * reps)]
        columns[key] = pool[:n]
    return [{k: columns[k][i] for k in space} for i in range(n)]


def mlp_points(loss: str, n: int) -> dict[str, dict[str, Any]]:
    """P0 = the shipped default; P1.. random. Shared knobs identical across losses."""
    shared = _design(np.random.default_rng(SEARCH_SEED), SPACE, n - 1)
    own_rng = np.random.default_rng([SEARCH_SEED, zlib.crc32(loss.encode())])
    own = _design(own_rng, LOSS_SPACE[loss], n - 1)
    points: dict[str, dict[str, Any]] = {"P0": {}}
    for i in range(1, n):
        points[f"P{i}"] = {**shared[i - 1], **own[i - 1]}
    return points


def list_rank_twins(points: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Round 5: R<i> = P<i> with ``model.list_ranks`` on (each feature's rank within its list)."""
    return {f"R{p[1:]}": {**d, "model.list_ranks": True} for p, d in points.items()}


def lgb_points(n: int) -> dict[str, dict[str, Any]]:
    points = {"L0": dict(LGB_ANCHOR)}
    for i, d in enumerate(_design(np.random.default_rng([SEARCH_SEED, 7]), LGB_SPACE, n - 1)):
        points[f"L{i + 1}"] = d
    return points


def lgb_params(point: dict[str, Any]) -> dict[str, Any]:
    params = dict(point)
    if params.get("bagging_fraction", 1.0) < 1.0:
        params["bagging_freq"] = 1
    return params


def to_overrides(point: dict[str, Any]) -> list[str]:
    """``--set`` overrides of a point (None = keep the default); patience follows the lr."""
    out = []
    for key, value in point.items():
        if value is not None:
            out.append(f"{key}={json.dumps(value)}")
    lr = point.get("training.learning_rate", BASE_CONFIG["training"]["learning_rate"])
    out.append(f"training.early_stopping_patience={patience_for(lr)}")
    return out


def describe(point: dict[str, Any]) -> str:
    if not point:
        return "shipped default (lr 1e-3, [256, 128], dropout 0.1, wd 0, batch 32, standard)"
    if point == {"model.list_ranks": True}:
        return "shipped default, list ranks"
    short = {
        "training.learning_rate": "lr",
        "model.hidden_dims": "dims",
        "model.dropout": "drop",
        "training.weight_decay": "wd",
        "training.batch_size": "batch",
        "data.normalization": "norm",
        "data.max_list_length": "maxlist",
        "training.scheduler.name": "sched",
        "model.list_ranks": "list_ranks",
    }
    parts = []
    for k, v in point.items():
        if v is None and not k.startswith("data.max"):
            continue
        name = short.get(k, k.replace("loss.params.", ""))
        parts.append(f"{name}={json.dumps(v) if isinstance(v, list) else v}")
    return ", ".join(parts)


def loss_overrides(loss: str, reduction: str) -> list[str]:
    """The loss of a job: its name, and for a pairwise loss the reduction of its pairs."""
    overrides = [f"loss.name={loss}"]
    if loss in PAIRWISE:
        overrides.append(f"loss.params.reduction={reduction}")
    return overrides


def loss_tag(loss: str, reduction: str) -> str:
    """Job-name suffix: ``-queries`` for a pairwise loss reduced per query, else empty (rounds
    1-3's names, so their finished runs are found again)."""
    return "-queries" if loss in PAIRWISE and reduction == "queries" else ""


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


def config_sha256(config: Any) -> str:
    """A stable hash of a run's resolved config (plain JSON data)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def finished_run(out_dir: Path, name: str, config_hash: str) -> Path | None:
    """A run named ``name`` that an earlier invocation with this --out-dir finished with the
    same resolved config (``config_hash``, stored in its :data:`RUN_PROVENANCE`), if any.

    A run from before that file existed has no hash: it is still reused, and its record says
    ``provenance: unknown``. A run whose hash differs is never reused (a new one is trained).
    """
    legacy = None
    for run_dir in sorted(out_dir.glob(f"*-{name}")):
        if not (run_dir / "metrics.json").is_file():
            continue
        stored = run_dir / RUN_PROVENANCE
        if not stored.is_file():
            legacy = legacy or run_dir
        elif json.loads(stored.read_text(encoding="utf-8")).get("config_sha256") == config_hash:
            return run_dir
    return legacy


def reuse_summary(records: list[dict[str, Any]]) -> str:
    """One line: how many runs were trained now and how many reused, from which commits."""
    counts: dict[str, int] = {}
    reused = [r for r in records if r.get("reused")]
    for r in reused:
        prov = r["provenance"]
        key = "provenance unknown" if not isinstance(prov, dict) else describe_commit(prov)
        counts[key] = counts.get(key, 0) + 1
    fresh = len(records) - len(reused)
    text = f"{len(records)} runs: {fresh} trained by this invocation, {len(reused)} reused"
    if counts:
        text += " (" + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) + ")"
    return text


def describe_provenance(prov: dict[str, Any] | str) -> str:
    """One line: ``<commit[:7]>[+dirty]`` (or "unknown commit") and the package versions."""
    if not isinstance(prov, dict):
        return "provenance unknown"
    versions = ", ".join(f"{k} {v or 'unknown'}" for k, v in prov["versions"].items())
    return f"{describe_commit(prov)}; {versions}"


def describe_commit(prov: dict[str, Any]) -> str:
    """``<commit[:7]>``, ``+dirty`` when the tree had changes; "unknown commit" without git."""
    commit = prov["commit"][:7] if prov["commit"] else "unknown commit"
    return commit + {True: "+dirty", False: "", None: " (dirty unknown)"}[prov["dirty"]]


def run_provenance(run_dir: Path, reused: bool) -> dict[str, Any]:
    """A run's ``provenance``: what :func:`provenance` gave the invocation that trained it (read
    from its :data:`RUN_PROVENANCE`), or "unknown" for a run trained before that file was
    written; and whether this invocation ``reused`` it rather than training it."""
    path = run_dir / RUN_PROVENANCE
    stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else "unknown"
    return {"provenance": stored, "reused": reused}


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
        "tracking.mlflow=false",  # no MLflow store in the working directory, and faster
        "training.num_threads=1",
        f"experiment.name={job['name']}",
    ]
    config = load_config(base=BASE_CONFIG, overrides=overrides)
    resolved = config.resolved()
    resolved.pop("tracking", None)  # where the run is written, not what it trains
    config_hash = config_sha256(resolved)
    run_dir = finished_run(Path(job["out_dir"]), job["name"], config_hash)
    reused = run_dir is not None
    if run_dir is None:
        run_dir = run_experiment(config, quiet=True)
        atomic_write_json(
            run_dir / RUN_PROVENANCE, {**job["provenance"], "config_sha256": config_hash}
        )
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
        "test_per_query": _per_query(test, scores),
        "best_epoch": report["best_epoch"],
        "epochs": report["epochs"],
        **run_provenance(run_dir, reused),
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
    params = {**LGB_FIXED, **job["params"], "seed": job["seed"]}
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
    scores_file = Path(job["out_dir"]) / "lightgbm_scores" / f"{job['name']}.npz"
    scores_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(scores_file, vali=vali_scores, test=test_scores)  # for the seed ensembles
    return {
        **{k: job[k] for k in ("kind", "loss", "point", "fold", "seed")},
        "valid_ndcg@10": evaluate_scores(vali, vali_scores, ["ndcg@10"]).means["ndcg@10"],
        "valid_ndcg@10_lightgbm": float(booster.best_score["vali"]["ndcg@10"]),
        "test": _test_metrics(test, test_scores),
        "test_per_query": _per_query(test, test_scores),
        "best_iteration": best,
        "scores_file": str(scores_file),
        "provenance": job["provenance"],
        "reused": False,
        "test_tied_docs": _tied_docs(test, test_scores),
        "test_docs": test.n_docs,
        "seconds": time.perf_counter() - started,
    }


def ensemble_job(job: dict[str, Any]) -> dict[str, Any]:
    """Average the kept point's seeds on one fold; vali (both conventions) and test metrics.

    ltr models go through ``ltr ensemble`` (:func:`ltr.training.ensemble.build_ensemble`) and
    are scored by the resulting run, as a user would; LightGBM averages its boosters' saved
    predictions (same mean of raw scores).
    """
    from ltr.inference import Predictor
    from ltr.training.ensemble import build_ensemble

    started = time.perf_counter()
    files = _fold_files(Path(job["data_dir"]), job["fold"])
    train = _data(files["train"])
    vali = _data(files["vali"], train.n_features)
    test = _data(files["test"], train.n_features)
    if job["kind"] == "lightgbm":
        saved = [np.load(path) for path in job["members"]]
        vali_scores = np.mean([z["vali"] for z in saved], axis=0)
        test_scores = np.mean([z["test"] for z in saved], axis=0)
        run_info = {"provenance": job["provenance"], "reused": False}
    else:
        out = Path(job["out_dir"]) / "ensembles"
        config_hash = config_sha256({"members": job["members"]})  # new members, new ensemble
        run_dir = finished_run(out, job["name"], config_hash)
        reused = run_dir is not None
        if run_dir is None:
            run_dir = build_ensemble(job["members"], name=job["name"], output_dir=out, quiet=True)
            atomic_write_json(
                run_dir / RUN_PROVENANCE, {**job["provenance"], "config_sha256": config_hash}
            )
        run_info = run_provenance(run_dir, reused)
        predictor = Predictor.load(run_dir)
        vali_scores, test_scores = predictor.score(vali), predictor.score(test)
    return {
        **{k: job[k] for k in ("kind", "loss", "point", "fold")},
        "seed": f"ensemble of {len(job['members'])}",
        "valid_ndcg@10": evaluate_scores(vali, vali_scores, ["ndcg@10"]).means["ndcg@10"],
        "valid_ndcg@10[letor]": evaluate_scores(
            vali, vali_scores, ["ndcg@10"], preset="letor"
        ).means["ndcg@10"],
        "test": _test_metrics(test, test_scores),
        "test_per_query": _per_query(test, test_scores),
        **run_info,
        "seconds": time.perf_counter() - started,
    }


def _per_query(test: LetorData, scores: np.ndarray) -> dict[str, list[float]]:
    """Each test query's NDCG@10 under the verdicts' conventions, in file order."""
    presets: dict[str, dict[str, Any]] = {
        "ndcg@10": {},
        "ndcg@10[one]": {"no_relevant": "one"},
        "ndcg@10[letor]": {"preset": "letor"},
    }
    return {
        key: evaluate_scores(test, scores, ["ndcg@10"], **kw).per_query["ndcg@10"].tolist()
        for key, kw in presets.items()
    }


def pooled(
    a: list[dict[str, Any]], b: list[dict[str, Any]], key: str, draws: int = 10_000
) -> tuple[int, float, float, float]:
    """Paired per-query a - b over every fold's test queries: count, mean, 95% bootstrap CI.

    A side with several runs in a fold (seeds of a single model) counts each query's mean over
    those runs, as the tables average a fold's seeds. Every MQ2008 query is in exactly one test
    fold, so this pools the whole dataset; queries, not folds, are resampled (seeded), which
    narrows the interval but ignores fold effects and training variance (the models are fixed).
    """

    def per_fold(runs: list[dict[str, Any]]) -> dict[int, np.ndarray]:
        folds = sorted({r["fold"] for r in runs})
        return {
            f: np.mean([r["test_per_query"][key] for r in runs if r["fold"] == f], axis=0)
            for f in folds
        }

    mine, theirs = per_fold(a), per_fold(b)
    diff = np.concatenate([mine[f] - theirs[f] for f in mine])
    return diff.size, *mean_with_interval(diff, draws)


def interval_reading(low: float, high: float) -> str:
    """The declared reading of a 95% interval of a - b: is the difference distinguishable?"""
    if low <= 0.0 <= high:
        return "difference not distinguishable from 0 at 95%"
    return "ahead (interval above 0)" if low > 0 else "behind (interval below 0)"


def target_verdict(
    a: dict[str, Any],
    b: dict[str, Any],
    a_runs: list[dict[str, Any]],
    b_runs: list[dict[str, Any]],
    key: str,
) -> str:
    """One convention of "a's test NDCG@10 >= b's": the literal verdict (the target as written:
    mean over folds, sign only), the paired per-fold difference, and the pooled per-query
    difference with its 95% bootstrap interval and :func:`interval_reading`."""
    mine, theirs = a["mean"][key], b["mean"][key]
    verdict = (
        f"PASS: {mine:.4f} >= {theirs:.4f}"
        if mine >= theirs
        else (f"FAIL: {mine:.4f} < {theirs:.4f}")
    )
    m, sd, t = paired(a, b, key)
    count, diff, low, high = pooled(a_runs, b_runs, key)
    return (
        f"{verdict}; paired per-fold diff {m:+.4f} ± {sd:.4f} (t={t:+.1f}); pooled over the "
        f"{count} test queries {diff:+.4f}, 95% bootstrap interval [{low:+.4f}, {high:+.4f}]: "
        f"{interval_reading(low, high)}"
    )


def baseline_verdict(
    model: dict[str, Any], model_runs: list[dict[str, Any]], baseline: dict[str, Any]
) -> str:
    """Target 2 for one model: the literal verdict (mean over folds above the best single
    feature's, every convention) and, for each distinct convention, the pooled per-query
    difference with its 95% interval and :func:`interval_reading`."""
    diffs = {c: model["mean"][c] - baseline["mean"][c] for c, _ in CONVENTIONS}
    bad = [c for c, d in diffs.items() if d <= 0]
    verdict = "PASS" if not bad else "FAIL (" + ", ".join(bad) + ")"
    shown = ", ".join(f"{c} {d:+.4f}" for c, d in diffs.items())
    intervals = []
    for key, _ in CONVENTIONS:
        if key not in SAME_DIFFERENCES:
            _, diff, low, high = pooled(model_runs, baseline["runs"], key)
            reading = interval_reading(low, high)
            intervals.append(f"{key} {diff:+.4f} [{low:+.4f}, {high:+.4f}] {reading}")
    return f"{verdict}: {shown}; pooled per query: " + "; ".join(intervals)


def mean_with_interval(diff: np.ndarray, draws: int = 10_000) -> tuple[float, float, float]:
    """Mean of per-query differences and its 95% bootstrap interval (queries resampled, seed 0)."""
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def selection_score(summary: dict[str, Any]) -> float:
    """Round 3's criterion: vali NDCG@10 averaged over the default and letor conventions."""
    return (summary["mean"]["valid_ndcg@10"] + summary["mean"]["valid_ndcg@10[letor]"]) / 2


def summarize(records: list[dict[str, Any]], folds: Sequence[int]) -> dict[str, Any]:
    """Per fold: the mean over seeds; then mean and std (ddof=1) of those over folds."""
    keys = [*COLUMNS, "ndcg@10[skip]", "map[letor]"]
    valid_keys = [k for k in ("valid_ndcg@10", "valid_ndcg@10[letor]") if k in records[0]]
    per_fold: dict[str, list[float]] = {k: [] for k in [*keys, *valid_keys]}
    for fold in folds:
        runs = [r for r in records if r["fold"] == fold]
        for k in keys:
            per_fold[k].append(float(np.mean([r["test"][k] for r in runs])))
        for k in valid_keys:
            per_fold[k].append(float(np.mean([r[k] for r in runs])))
    return {
        "per_fold": per_fold,
        "mean": {k: float(np.mean(v)) for k, v in per_fold.items()},
        "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in per_fold.items()},
        "seeds": sorted({r["seed"] for r in records}),
    }


def single_feature(args: argparse.Namespace) -> dict[str, Any]:
    per_fold: list[dict[str, float]] = []
    runs: list[dict[str, Any]] = []
    names = []
    for fold in args.folds:
        files = _fold_files(args.data_dir, fold)
        train = _data(files["train"])
        test = _data(files["test"], train.n_features)
        feature = best_single_feature(train, "ndcg@10")
        names.append(feature.name)
        scores = feature.scores(test)
        per_fold.append(_test_metrics(test, scores))
        runs.append({"fold": fold, "test_per_query": _per_query(test, scores)})
    keys = [*COLUMNS, "ndcg@10[skip]", "map[letor]"]
    values = {k: [m[k] for m in per_fold] for k in keys}
    return {
        "runs": runs,  # per-query values for the pooled intervals; not written to the json
        "features": names,
        "per_fold": values,
        "mean": {k: float(np.mean(v)) for k, v in values.items()},
        "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()},
    }


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


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def run_jobs(pool: ProcessPoolExecutor, jobs: list[dict[str, Any]], label: str) -> list[dict]:
    """Run ``jobs`` (longest expected first), printing progress; results in job order."""
    if not jobs:
        return []
    t0 = time.perf_counter()
    futures = {pool.submit(_dispatch, j): i for i, j in enumerate(jobs)}
    results: list[Any] = [None] * len(jobs)
    for n, fut in enumerate(as_completed(futures), 1):
        results[futures[fut]] = fut.result()
        if n % 40 == 0 or n == len(jobs):
            print(f"  {label}: {n}/{len(jobs)} runs, {time.perf_counter() - t0:.0f} s", flush=True)
    return results


def _cost(job: dict[str, Any]) -> float:
    """A rough relative cost, to start the longest jobs first."""
    if job["kind"] == "lightgbm":
        return 0.5
    lr = job["point_def"].get("training.learning_rate", 1e-3)
    batch = job["point_def"].get("training.batch_size", 32)
    heavy = 3.0 if job["kind"] == "transformer" or job["loss"] == "neural_ndcg" else 1.0
    return heavy * (1e-3 / lr) ** 0.7 * (32 / batch) ** 0.5


def mlp_jobs(
    args: argparse.Namespace,
    loss: str,
    point: str,
    point_def: dict[str, Any],
    seeds: Sequence[int],
    kind: str = "mlp",
) -> list[dict[str, Any]]:
    base = TRANSFORMER_BASE if kind == "transformer" else []
    tag = loss_tag(loss, args.pairwise_reduction)
    return [
        {
            "kind": kind,
            "loss": loss,
            "point": point,
            "point_def": point_def,
            "fold": fold,
            "seed": seed,
            "overrides": [
                *loss_overrides(loss, args.pairwise_reduction),
                *base,
                *to_overrides(point_def),
                *args.extra,
            ],
            "data_dir": str(args.data_dir),
            "out_dir": str(args.out_dir),
            "provenance": args.provenance,
            "name": f"{kind}_{loss}{tag}_{point}_f{fold}_s{seed}",
        }
        for fold in args.folds
        for seed in seeds
    ]


def lgb_jobs(
    args: argparse.Namespace, point: str, point_def: dict[str, Any], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    return [
        {
            "kind": "lightgbm",
            "loss": "lightgbm",
            "point": point,
            "point_def": point_def,
            "params": lgb_params(point_def),
            "fold": fold,
            "seed": seed,
            "data_dir": str(args.data_dir),
            "rounds": args.lgb_rounds,
            "patience": LGB_PATIENCE,
            "out_dir": str(args.out_dir),
            "provenance": args.provenance,
            "name": f"lightgbm_{point}_f{fold}_s{seed}",
        }
        for fold in args.folds
        for seed in seeds
    ]


def vali_means(records: list[dict[str, Any]], seeds: Sequence[int]) -> dict[str, float]:
    """Point -> validation NDCG@10 averaged over folds (and ``seeds``); complete points only."""
    by_point: dict[str, dict[int, list[float]]] = {}
    for r in records:
        if r["seed"] in seeds:
            by_point.setdefault(r["point"], {}).setdefault(r["seed"], []).append(r["valid_ndcg@10"])
    return {
        p: float(np.mean([np.mean(v) for v in per_seed.values()]))
        for p, per_seed in by_point.items()
        if set(per_seed) == set(seeds)
    }


def ranked(means: dict[str, float]) -> list[str]:
    """Points by decreasing score; ties broken by point number (earlier first)."""
    return sorted(means, key=lambda p: (-means[p], int(p[1:])))


def write_config(name: str, sel: dict[str, Any], note: str, path: Path, reduction: str) -> None:
    from ltr.config import load_config

    loss = sel["loss"]
    base = TRANSFORMER_BASE if sel["kind"] == "transformer" else []
    config = load_config(
        base=BASE_CONFIG,
        overrides=[
            *loss_overrides(loss, reduction),
            *base,
            *to_overrides(sel["point_def"]),
            "data.root=../shared/data/mq2008/Fold1",
            f"experiment.name=mq2008_{name}",
            f"experiment.description={sel['kind']} + {loss} tuned on MQ2008 vali "
            f"(point {sel['point']})",
        ],
    )
    raw = config.resolved()
    raw["tracking"] = {"output_dir": "experiments", "tensorboard": True}
    header = (
        f"# MQ2008, {name}: point {sel['point']} ({describe(sel['point_def'])}) of\n"
        "# benchmarks/bench_quality.py, chosen by validation NDCG@10 averaged over the 5 folds\n"
        f"# and {len(sel['seeds'])} seeds (never by test). {note}\n"
        "# Reproduce one fold: ltr train --config "
        f"configs/experiments/mq2008_{name}.yaml --set data.root=../shared/data/mq2008/Fold1\n"
    )
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def paired(a: dict[str, Any], b: dict[str, Any], key: str) -> tuple[float, float, float]:
    """Mean and std (ddof=1) over folds of a - b, and the paired t statistic."""
    diff = np.subtract(a["per_fold"][key], b["per_fold"][key])
    spread = float(np.std(diff, ddof=1)) if diff.size > 1 else 0.0
    t = float(diff.mean() / (spread / np.sqrt(diff.size))) if spread > 0 else float("nan")
    return float(diff.mean()), spread, t


def protocol_text(args: argparse.Namespace, losses: list[str]) -> str:
    final = max(args.seeds, args.ensemble)  # the kept points' seeds (main's final_seeds)
    lines = [
        "## Protocol (declared before any run; test numbers never select anything)",
        "",
        f"- Folds {args.folds}; selection metric: validation NDCG@10 (default convention, best "
        "epoch / best iteration), averaged over folds.",
        f"- Stage 1: {args.points} points per loss, seed 0. P0 = shipped default; P1..P"
        f"{args.points - 1} random from the space below, Latin-hypercube style (each choice of "
        f"a knob equally often; generator seed {SEARCH_SEED}); the shared knobs of Pi are the "
        "same for every loss.",
        f"- Stage 2: the top {args.top} points of every model by stage 1 also train seeds "
        f"1..{args.seeds - 1}; each model keeps the point with the best validation NDCG@10 "
        f"averaged over folds and {args.seeds} seeds. Final test numbers = that point's "
        f"{final} seeds 0..{final - 1} (max(--seeds, --ensemble)"
        + (f"; seeds {args.seeds}..{final - 1} train in round 3" if final > args.seeds else "")
        + "): mean over seeds per fold, then mean ± std over folds.",
        f"- LightGBM lambdarank: {args.lgb_points} points (L0 = previous round's choice) from "
        f"its space, same two stages, seeds drive feature/bagging sampling; {LGB_ROUNDS} rounds, "
        f"early stopping {LGB_PATIENCE} rounds on its vali NDCG@10.",
        "- Transformer (if enabled): with the loss that wins stage 2, points "
        + ", ".join(f"{k}={v}" for k, v in TRANSFORMER_GRID.items())
        + ", same stages.",
        "- Best ltr configuration = the model with the best stage-2 validation NDCG@10.",
        f"- Pairwise losses ({', '.join(PAIRWISE)}): loss.params.reduction="
        f"{args.pairwise_reduction}.",
        *(
            [
                f"- List ranks: every loss also trains R0..R{args.points - 1}, its points "
                f"P0..P{args.points - 1} with model.list_ranks=true; stage 1 ranks all "
                f"{2 * args.points} points."
            ]
            if args.list_ranks
            else []
        ),
        f"- MLP training: at most {MAX_EPOCHS} epochs, early stopping on vali NDCG@10, patience "
        "10 (lr >= 1e-3) or 20 (lr < 1e-3); AdamW, grad clip 5.",
        "- MLP space (shared): " + json.dumps(SPACE),
        "- Loss parameters: "
        + "; ".join(f"{k}: {json.dumps(v)}" for k, v in LOSS_SPACE.items() if k in losses and v),
        "- LightGBM space: " + json.dumps(LGB_SPACE) + "; fixed " + json.dumps(LGB_FIXED),
        "- Baseline: best single feature (and direction) by NDCG@10 on each fold's train file.",
        "- Verdicts: PASS/FAIL is the target as written (the mean over folds of test NDCG@10 >= "
        "LightGBM's; the sign of the difference only). Beside it: the paired per-fold "
        "difference (mean ± std, t with folds - 1 df) and the paired per-query difference "
        "pooled over every fold's test queries with its 95% bootstrap interval (10,000 "
        "resamples of queries, seed 0; the trained models are held fixed). Declared reading: "
        "'difference not distinguishable from 0 at 95%' when the interval contains 0, else "
        "'ahead' or 'behind'. No other noise rule is applied. The no_relevant=one convention "
        "has the default's paired differences (both models gain 1 on each query without a "
        "relevant document), so the target has 2 distinct comparisons: default and letor. "
        "Target 2 (every loss against the best single feature) is printed the same way.",
    ]
    if args.ensemble:
        k = args.ensemble
        lines += [
            f"- Round 3 (seed ensembles): every kept point also trains seeds {args.seeds}.."
            f"{k - 1}; per fold, its {k} seeds are averaged (ltr models through `ltr ensemble`, "
            f"the mean of raw scores; LightGBM: the mean of its {k} boosters' predictions). The "
            "best ltr ensemble is the one with the highest validation criterion: the mean over "
            "folds of the ensemble's vali NDCG@10 averaged over the default and letor "
            "conventions (the target covers both). The target is judged against LightGBM "
            f"averaged over {k} seeds (equal budget); the single LightGBM model (mean over the "
            f"same {k} seeds' runs) is shown beside it. Single-model rows above use all "
            f"{final} seeds.",
        ]
    return "\n".join(lines)


def ensemble_report(
    args: argparse.Namespace,
    sel: dict[str, dict[str, Any]],
    label: dict[str, str],
    neural: list[str],
    singles: dict[str, dict[str, Any]],
    ensembles: dict[str, dict[str, Any]],
    best: str,
    baseline: dict[str, Any],
    records: dict[str, list[dict[str, Any]]],
    single_lgb_runs: list[dict[str, Any]],
) -> None:
    """The seed-ensemble round's tables and verdicts (rounds 3 and 4): against LightGBM, single
    (``single_lgb_runs``, its kept point's runs) and averaged, and against the best single
    feature."""
    k = args.ensemble
    print(
        f"\n### Seed ensembles: {k} seeds of each kept point averaged, test metrics, mean ± std "
        "over folds\n"
    )
    print(
        "vali = the ensemble's validation NDCG@10 (default | letor preset); the selection "
        "criterion is their mean. Single-model rows: the mean over the same seeds' runs.\n"
    )
    head = (
        "| model | vali ndcg@10 default / letor | ndcg@1 | ndcg@5 | ndcg@10 | map | mrr | "
        "ndcg@10 no_relevant=one | ndcg@10 letor |"
    )
    lines = [head, "|" + "---|" * 9]
    for n in [*neural, "lightgbm"]:
        e = ensembles[n]
        vali = f"{e['mean']['valid_ndcg@10']:.4f} / {e['mean']['valid_ndcg@10[letor]']:.4f}"
        cells = " | ".join(fmt(e, c) for c in COLUMNS)
        lines.append(f"| {label[n]} ({sel[n]['point']}), {k} seeds averaged | {vali} | {cells} |")
    cells = " | ".join(fmt(singles["lightgbm"], c) for c in COLUMNS)
    lines.append(f"| LightGBM lambdarank, single model (mean of {k} seeds) | – | {cells} |")
    cells = " | ".join(fmt(baseline, c) for c in COLUMNS)
    lines.append(f"| best single feature (train) | – | {cells} |")
    print("\n".join(lines))

    references = [
        (f"LightGBM {k}-seed average", ensembles["lightgbm"], records["lightgbm"]),
        ("LightGBM single model", singles["lightgbm"], single_lgb_runs),
    ]
    print(f"\nBest ltr ensemble by the validation criterion: {label[best]} ({sel[best]['point']})")
    print(
        "\nTarget 1 (seed ensembles): the best ltr ensemble's test NDCG@10 >= LightGBM's, every "
        f"convention ({distinct_conventions()}); judged against the equal-budget reference "
        "(LightGBM averaged over as many seeds), the single LightGBM model shown beside it"
    )
    for ref_label, ref, ref_runs in references:
        for key, text in CONVENTIONS:
            line = target_verdict(ensembles[best], ref, records[best], ref_runs, key)
            print(f"- vs {ref_label}, {convention_label(key, text)}: {line}")
    print(
        "\nTarget 2 (seed ensembles): every loss's ensemble beats the best single feature "
        f"({distinct_conventions()}; {SAME_DIFFERENCES_SHORT})"
    )
    for n in neural:
        line = baseline_verdict(ensembles[n], records[n], baseline)
        print(f"- {label[n]}: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_dir_option(parser)
    parser.add_argument("--folds", default="1,2,3,4,5")
    parser.add_argument("--points", type=int, default=10, help="stage-1 points per loss")
    parser.add_argument("--lgb-points", type=int, default=16, help="stage-1 LightGBM points")
    parser.add_argument("--top", type=int, default=2, help="points per model re-run in stage 2")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per fold in stage 2")
    parser.add_argument(
        "--ensemble", type=int, default=5, help="seeds averaged per kept point (0 = no round 3)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (1 thread each)")
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--transformer", action="store_true", help="add the transformer scorer")
    parser.add_argument(
        "--pairwise-reduction",
        choices=("queries", "pairs"),
        default="queries",
        help="loss.params.reduction of ranknet, lambdarank, ndcgloss2pp (rounds 1-3: pairs)",
    )
    parser.add_argument(
        "--list-ranks",
        action="store_true",
        help="round 5: every loss also tries each point with model.list_ranks=true (R0..)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 fold, few epochs")
    parser.add_argument("--out-dir", type=Path, default=None, help="run dirs (default: temp)")
    parser.add_argument("--results", type=Path, default=_ROOT / "benchmarks/results")
    parser.add_argument("--configs", type=Path, default=_ROOT / "configs/experiments")
    args = parser.parse_args()
    started = time.perf_counter()
    args.folds = [int(f) for f in args.folds.split(",")]
    losses = args.losses.split(",")
    args.extra, args.lgb_rounds = [], LGB_ROUNDS
    if args.quick:
        args.folds, args.points, args.lgb_points, args.top, args.seeds = args.folds[:1], 2, 2, 1, 2
        args.ensemble = min(args.ensemble, 3)
        args.extra = ["training.num_epochs=3"]
        args.lgb_rounds = 30
    seeds = list(range(args.seeds))
    final_seeds = list(range(max(args.seeds, args.ensemble)))  # seeds of the kept points
    temp = None
    if args.out_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="bench_quality_")
        args.out_dir = Path(temp.name)
    args.data_dir = args.data_dir.resolve()
    splits = ("train", "vali", "test")
    require_data(args.data_dir, *(f"mq2008/Fold{f}/{s}.txt.gz" for f in args.folds for s in splits))
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    args.provenance = provenance()  # read once; every job trained here records it
    print(f"$ {command}\n", flush=True)
    print(f"Code: {describe_provenance(args.provenance)}\n", flush=True)
    print(protocol_text(args, losses) + "\n", flush=True)

    points = {loss: mlp_points(loss, args.points) for loss in losses}
    if args.list_ranks:
        points = {loss: {**p, **list_rank_twins(p)} for loss, p in points.items()}
    points["lightgbm"] = lgb_points(args.lgb_points)
    records: list[dict[str, Any]] = []
    sel: dict[str, dict[str, Any]] = {}  # model name -> selection
    timing: dict[str, float] = {}

    def jobs_for(name: str, point: str, run_seeds: Sequence[int]) -> list[dict[str, Any]]:
        if name == "lightgbm":
            return lgb_jobs(args, point, points[name][point], run_seeds)
        if name.startswith("transformer+"):
            loss = name.split("+", 1)[1]
            return mlp_jobs(args, loss, point, points[name][point], run_seeds, "transformer")
        return mlp_jobs(args, name, point, points[name][point], run_seeds)

    def model_records(name: str) -> list[dict[str, Any]]:
        if name == "lightgbm":
            return [r for r in records if r["kind"] == "lightgbm"]
        if name.startswith("transformer+"):
            loss = name.split("+", 1)[1]
            return [r for r in records if r["kind"] == "transformer" and r["loss"] == loss]
        return [r for r in records if r["kind"] == "mlp" and r["loss"] == name]

    def two_stages(pool: ProcessPoolExecutor, names: list[str], label: str) -> None:
        t0 = time.perf_counter()
        stage1 = [j for n in names for p in points[n] for j in jobs_for(n, p, [0])]
        records.extend(run_jobs(pool, sorted(stage1, key=_cost, reverse=True), f"{label} stage 1"))
        timing[f"{label} stage 1"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stage2 = []
        for n in names:
            s1 = vali_means(model_records(n), [0])
            sel[n] = {"stage1": s1, "top": ranked(s1)[: args.top]}
            stage2 += [j for p in sel[n]["top"] for j in jobs_for(n, p, seeds[1:])]
        records.extend(run_jobs(pool, sorted(stage2, key=_cost, reverse=True), f"{label} stage 2"))
        timing[f"{label} stage 2"] = time.perf_counter() - t0
        for n in names:
            s2 = vali_means(model_records(n), seeds)
            s2 = {p: v for p, v in s2.items() if p in sel[n]["top"]}
            point = ranked(s2)[0]
            kind = (
                "lightgbm"
                if n == "lightgbm"
                else ("transformer" if n.startswith("transformer+") else "mlp")
            )
            sel[n].update(
                stage2=s2,
                point=point,
                point_def=points[n][point],
                kind=kind,
                loss=n.split("+", 1)[1] if kind == "transformer" else n,
                seeds=seeds,
            )

    ctx = get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker) as pool:
        two_stages(pool, [*losses, "lightgbm"], "MLP + LightGBM")
        best_loss = max(losses, key=lambda n: sel[n]["stage2"][sel[n]["point"]])
        if args.transformer:
            tname = f"transformer+{best_loss}"
            points[tname] = {p: dict(d) for p, d in TRANSFORMER_GRID.items()}
            saved_top = args.top
            args.top = min(args.top, len(TRANSFORMER_GRID))
            two_stages(pool, [tname], "transformer")
            args.top = saved_top

        def winner_records(name: str) -> list[dict[str, Any]]:
            return [r for r in model_records(name) if r["point"] == sel[name]["point"]]

        ens_records: list[dict[str, Any]] = []
        if args.ensemble:  # round 3: more seeds of every kept point, then their average
            t0 = time.perf_counter()
            more = [j for n in sel for j in jobs_for(n, sel[n]["point"], final_seeds[args.seeds :])]
            records.extend(run_jobs(pool, sorted(more, key=_cost, reverse=True), "stage 3 seeds"))
            ens_jobs = []
            for n in sel:
                for fold in args.folds:
                    members = sorted(
                        (r for r in winner_records(n) if r["fold"] == fold),
                        key=lambda r: r["seed"],
                    )[: args.ensemble]
                    ens_jobs.append(
                        {
                            "task": "ensemble",
                            **{k: sel[n][k] for k in ("kind", "loss", "point")},
                            "fold": fold,
                            "data_dir": str(args.data_dir),
                            "out_dir": str(args.out_dir),
                            "provenance": args.provenance,
                            "name": f"ens_{n.replace('+', '_')}"
                            f"{loss_tag(sel[n]['loss'], args.pairwise_reduction)}_"
                            f"{sel[n]['point']}_f{fold}_k{len(members)}",
                            "members": [r.get("run_dir") or r["scores_file"] for r in members],
                        }
                    )
            ens_records = run_jobs(pool, ens_jobs, "stage 3 ensembles")
            timing["stage 3 (seeds + ensembles)"] = time.perf_counter() - t0

    summaries = {name: summarize(winner_records(name), args.folds) for name in sel}
    reuse = reuse_summary([*records, *ens_records])
    print(f"\nRuns: {reuse}", flush=True)
    baseline = single_feature(args)
    wall = time.perf_counter() - started

    # ---- report
    neural = [n for n in sel if n != "lightgbm"]
    best_name = max(neural, key=lambda n: sel[n]["stage2"][sel[n]["point"]])
    label = {n: (f"MLP + {n}" if n in losses else n) for n in neural}
    for n in neural:
        if sel[n]["loss"] in PAIRWISE:
            label[n] += f" [{args.pairwise_reduction}]"
    label["lightgbm"] = "LightGBM lambdarank"
    rows = [(f"{label[n]} ({sel[n]['point']})", summaries[n]) for n in neural]
    rows.append((f"LightGBM lambdarank ({sel['lightgbm']['point']})", summaries["lightgbm"]))
    rows.append(("best single feature (train)", baseline))
    print(
        f"\n### MQ2008, {len(args.folds)} folds: test metrics of the selected points, mean ± std "
        f"over folds (each fold: mean of {len(final_seeds)} seeds)\n"
    )
    print(
        "Default convention: gain exp2, no_relevant=zero, ties in file order. "
        "`no_relevant=one` is LightGBM's own NDCG; `letor` is the Eval-Score-4.0.pl preset. "
        "vali = validation NDCG@10 of the best epoch (the selection criterion).\n"
    )
    print(table(rows))

    lgb = summaries["lightgbm"]
    print(
        "\n### Paired per-fold test differences (model − reference; mean ± std over folds, "
        "ddof=1; t = paired t statistic, 4 df)\n"
    )
    head = "| model | vs | " + " | ".join(lab.split(" (")[0] for _, lab in CONVENTIONS) + " |"
    print(head + "\n|" + "---|" * (2 + len(CONVENTIONS)))
    for n in neural:
        for ref_name, ref in (("LightGBM", lgb), ("single feature", baseline)):
            cells = []
            for key, _ in CONVENTIONS:
                m, s, t = paired(summaries[n], ref, key)
                cells.append(f"{m:+.4f} ± {s:.4f} (t={t:+.1f})")
            print(f"| {label[n]} | {ref_name} | " + " | ".join(cells) + " |")
    cells = []
    for key, _ in CONVENTIONS:
        m, s, t = paired(lgb, baseline, key)
        cells.append(f"{m:+.4f} ± {s:.4f} (t={t:+.1f})")
    print("| LightGBM lambdarank | single feature | " + " | ".join(cells) + " |")
    print(f"\nThe no_relevant=one column has the {SAME_NOTE}.")

    print("\n### Stage 1: validation NDCG@10, mean over folds, seed 0 (top points in bold)\n")
    print("Shared MLP points (the same for every loss; + each loss's own parameters below):")
    shared = mlp_points(losses[0], args.points)
    for p, d in shared.items():
        print(f"- {p}: " + describe({k: v for k, v in d.items() if k in SPACE}))
    for loss in losses:
        own = [
            f"{p}: {describe({k: v for k, v in d.items() if k not in SPACE})}"
            for p, d in points[loss].items()
            if p.startswith("P") and any(k not in SPACE for k in d)
        ]
        if own:
            print(f"- {loss} parameters: " + "; ".join(own))
    if args.list_ranks:
        print("- R<i>: P<i> (with its loss parameters) and model.list_ranks=true")
    pts = list(points[losses[0]])
    lines = ["", "| model | " + " | ".join(pts) + " |", "|" + "---|" * (len(pts) + 1)]
    for n in losses:
        cells = []
        for p in pts:
            v = sel[n]["stage1"].get(p)
            text = "" if v is None else f"{v:.4f}"
            cells.append(f"**{text}**" if p in sel[n]["top"] else text)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print("\nLightGBM points:")
    for p, d in points["lightgbm"].items():
        print(f"- {p}: {json.dumps(d)}")
    lpts = list(points["lightgbm"])
    lines = ["| model | " + " | ".join(lpts) + " |", "|" + "---|" * (len(lpts) + 1)]
    cells = []
    for p in lpts:
        v = sel["lightgbm"]["stage1"].get(p)
        text = "" if v is None else f"{v:.4f}"
        cells.append(f"**{text}**" if p in sel["lightgbm"]["top"] else text)
    lines.append("| lightgbm | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.transformer:
        tname = f"transformer+{best_loss}"
        print(f"\nTransformer ({'; '.join(TRANSFORMER_BASE)}) with {best_loss} (won stage 2):")
        for p, d in points[tname].items():
            s1 = sel[tname]["stage1"].get(p)
            print(f"- {p}: {describe(d)}: stage 1 vali {s1:.4f}")

    print(
        f"\n### Stage 2: top {args.top} per model, validation NDCG@10 mean over folds: "
        f"seed 0 | mean of {len(seeds)} seeds (kept point in bold)\n"
    )
    print("| model | candidates | kept |\n|---|---|---|")
    for n in sel:
        cells = []
        for p in sel[n]["top"]:
            text = f"{p}: {sel[n]['stage1'][p]:.4f} | {sel[n]['stage2'][p]:.4f}"
            cells.append(f"**{text}**" if p == sel[n]["point"] else text)
        print(f"| {label[n]} | " + "; ".join(cells) + f" | {sel[n]['point']} |")
    print("\nKept points:")
    for n in sel:
        d = sel[n]["point_def"]
        print(
            f"- {label[n]}: {sel[n]['point']} = {json.dumps(d) if n == 'lightgbm' else describe(d)}"
        )

    print(f"\nBest single feature per fold (chosen on train): {', '.join(baseline['features'])}")
    ties = winner_records("lightgbm")
    tied = sum(r["test_tied_docs"] for r in ties) / len(ties)
    docs = sum(r["test_docs"] for r in ties) / len(ties)
    print(f"LightGBM test predictions: {tied:.0f} of {docs:.0f} documents per fold share a score")
    epochs = {n: float(np.mean([r["best_epoch"] for r in winner_records(n)])) for n in neural}
    print(
        "Mean best epoch of the kept points: "
        + ", ".join(f"{n} {e:.1f}" for n, e in epochs.items())
        + f"; LightGBM mean best iteration "
        f"{np.mean([r['best_iteration'] for r in ties]):.0f}"
    )

    print("\n### Verdicts\n")
    best = summaries[best_name]
    print(
        f"Best ltr configuration by validation NDCG@10 (stage 2): {label[best_name]} "
        f"{sel[best_name]['point']} (vali {sel[best_name]['stage2'][sel[best_name]['point']]:.4f}"
        f" vs LightGBM {sel['lightgbm']['stage2'][sel['lightgbm']['point']]:.4f})"
    )
    print(
        "\nTarget 1: the best ltr configuration's test NDCG@10 >= LightGBM's, every convention "
        f"({distinct_conventions()})"
    )
    for key, text in CONVENTIONS:
        line = target_verdict(best, lgb, winner_records(best_name), winner_records("lightgbm"), key)
        print(f"- {convention_label(key, text)}: {line}")
    print(
        "\nTarget 2: every loss beats the best single feature (test NDCG@10, every convention; "
        f"{distinct_conventions()}; {SAME_DIFFERENCES_SHORT})"
    )
    for n in neural:
        print(f"- {label[n]}: {baseline_verdict(summaries[n], winner_records(n), baseline)}")
    ens_summaries: dict[str, dict[str, Any]] = {}
    best_ens = None
    if ens_records:
        by_model = {
            n: [
                r for r in ens_records if (r["kind"], r["loss"]) == (sel[n]["kind"], sel[n]["loss"])
            ]
            for n in sel
        }
        ens_summaries = {n: summarize(by_model[n], args.folds) for n in sel}
        best_ens = max(neural, key=lambda n: selection_score(ens_summaries[n]))
        ensemble_report(
            args,
            sel,
            label,
            neural,
            summaries,
            ens_summaries,
            best_ens,
            baseline,
            by_model,
            winner_records("lightgbm"),
        )
    n_runs = len(records)
    run_seconds = sum(r["seconds"] for r in records)
    print(
        f"\nWall time: {wall:.0f} s ({n_runs} training runs, {run_seconds:.0f} worker-seconds, "
        f"{args.jobs} workers x 1 thread; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items())
        + ")"
    )

    if not args.quick:
        args.results.mkdir(parents=True, exist_ok=True)
        out = {
            "command": command,
            "provenance": args.provenance,
            "reuse": reuse,
            "wall_seconds": wall,
            "timing_seconds": timing,
            "folds": args.folds,
            "seeds": seeds,
            "protocol": protocol_text(args, losses),
            "base_config": BASE_CONFIG,
            "search_seed": SEARCH_SEED,
            "space": SPACE,
            "loss_space": LOSS_SPACE,
            "points": points,
            "lightgbm_fixed": LGB_FIXED,
            "lightgbm_space": LGB_SPACE,
            "transformer_base": TRANSFORMER_BASE if args.transformer else None,
            "selections": sel,
            "best_by_vali": best_name,
            "summaries": summaries,
            "best_single_feature": {k: v for k, v in baseline.items() if k != "runs"},
            "ensemble_size": args.ensemble,
            "ensembles": [  # per-query values only feed the pooled intervals printed above
                {k: v for k, v in r.items() if k != "test_per_query"} for r in ens_records
            ],
            "ensemble_summaries": ens_summaries,
            "best_ensemble_by_vali": best_ens,
            "runs": [
                {
                    k: v
                    for k, v in r.items()
                    if k not in ("run_dir", "scores_file", "test_per_query")
                }
                for r in records
            ],
        }
        path = args.results / "quality_mq2008.json"
        path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"Raw results: {path.relative_to(_ROOT)}")
        for name in neural:
            file_name = name.replace("+", "_")
            s = sel[name]
            note = (
                f"Vali NDCG@10 {s['stage2'][s['point']]:.4f}; "
                f"test {fmt(summaries[name], 'ndcg@10')} over folds."
            )
            path = args.configs / f"mq2008_{file_name}.yaml"
            write_config(file_name, s, note, path, args.pairwise_reduction)
        print(f"Configs: {args.configs.relative_to(_ROOT)}/mq2008_<model>.yaml")
    if temp is not None:
        temp.cleanup()


def _dispatch(job: dict[str, Any]) -> dict[str, Any]:
    if job.get("task") == "ensemble":
        return ensemble_job(job)
    if job["kind"] == "lightgbm":
        return train_lightgbm_job(job)
    return train_mlp_job(job)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
