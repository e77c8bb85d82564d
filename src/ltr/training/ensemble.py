"""``ltr ensemble``: one run directory whose scorer averages the scores of finished runs.

The usual recipe is a seed ensemble: train one config with several ``training.seed`` values,
then average. :func:`build_ensemble` checks that the members can be averaged (same feature
count, same fitted normalizer, same data settings), builds an
:class:`~ltr.models.EnsembleScorer` from their best checkpoints, and writes a run directory
laid out like ``ltr train``'s, so ``ltr predict``, ``ltr compare``, ``ltr export`` and
``ltr promote`` take it as they take a trained run:

- ``config.yaml``: the first member's config with ``model: {name: ensemble, members: [...]}``
  (each member's ``model`` section) and the ensemble's experiment name;
- ``checkpoints/best.pt``: the ensemble's weights (epoch 0, no optimizer state);
- ``metrics.json``: validation and test metrics of the averaged scores, with the same keys as a
  trained run (``data``: the files the ensemble read and scored), plus ``members`` (each
  member's run, checkpoint sha256, seed and numbers);
- ``test_per_query.tsv`` and ``preprocessor.json`` as a trained run writes them, and an empty
  ``training_history.json`` (no epochs were trained to build it).

A member whose run has no ``metrics.json`` did not finish (interrupted, or still training): it
is refused before any work, with how far it got, rather than averaged in silently.

Members share their data section, so without a validation file they validated on the same
split of the training file (``data.split_seed``), and so does the ensemble.

**Score scaling.** Members trained with different losses score on different scales (an MSE
and a ListNet MLP on synthetic data: one spreads its scores within a query about twice as
wide as the other, which one depends on the data), and a plain mean lets the wider one
dominate. With scaling, each member's weight is divided by the spread of its scores
on the training file (the pooled within-query standard deviation: a query's offset changes no
ranking), so every member moves the mean alike; the scaled weights, normalized to sum 1, are the
ensemble's ``model.weights``, so Python scoring and the ONNX export apply the same ones. On by
default when the members' losses differ, off when they share one (seed ensembles score as plain
means); ``scale_scores`` forces it. ``metrics.json["score_scaling"]`` records the choice, why,
and each member's spread.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ltr._console_log import log_console_to, run_console
from ltr._fs import file_sha256
from ltr.config import dotted_items, load_config
from ltr.data.letor import LetorData
from ltr.data.preprocessing import Normalizer
from ltr.errors import ConfigError, LtrError, ShapeError
from ltr.experiments.cv_record import is_cv_dir
from ltr.experiments.mlflow_tracker import RUN_ARTIFACTS, attach_mlflow, check_mlflow
from ltr.experiments.tracking import Run
from ltr.models import EnsembleScorer
from ltr.training.checkpoint import checkpoint_file, load_checkpoint
from ltr.training.experiment import LOG_FILE, load_splits, report_test_metrics, same_paths
from ltr.training.trainer import evaluate_model, score_data, validation_metrics

__all__ = ["build_ensemble"]


def build_ensemble(
    members: Sequence[str | Path],
    *,
    name: str | None = None,
    output_dir: str | Path | None = None,
    weights: Sequence[float] | None = None,
    scale_scores: bool | None = None,
    quiet: bool = False,
) -> Path:
    """Average the scorers of ``members`` (run directories or checkpoints) into a new run.

    Args:
        members: at least two run directories (their ``checkpoints/best.pt``) or ``.pt`` files.
        name: experiment name of the new run (default ``<first member's name>_ensemble<k>``).
        output_dir: where the run directory goes (default: beside the first member's run
            directory, or its ``tracking.output_dir`` when it is a bare checkpoint).
        weights: one weight per member (default equal).
        scale_scores: divide each member's weight by the spread of its scores on the training
            file; None: when the members' losses differ (module docstring).
        quiet: print nothing; else the run directory and its numbers, on stdout.

    Returns:
        The new run directory.

    Raises:
        ConfigError: fewer than two members, a cv directory (its fold runs are the members), a
            member whose run did not finish (no ``metrics.json``), a member given twice, members
            trained on different data settings or normalized differently, bad weights, or
            (scaling) a member that scores every document of each training query alike.
        ShapeError: members built for different feature counts.
        DataNotFoundError, LtrError: a member that is not a readable run or checkpoint.
    """
    results = run_console(quiet=quiet)  # stdout: what was built (quiet: train.log alone)
    _refuse_cv_dirs(members)  # first: one cv directory given alone is that mistake, not a count
    if len(members) < 2:
        raise ConfigError(f"an ensemble needs at least 2 members; got {len(members)}")
    _refuse_unfinished(members)
    paths = [checkpoint_file(member) for member in members]
    seen: dict[Path, str | Path] = {}
    for given, path in zip(members, paths, strict=True):
        if path.resolve() in seen:  # the same weights twice would only reweight them
            raise ConfigError(
                f"{given} is given twice (also as {seen[path.resolve()]}); give distinct runs"
            )
        seen[path.resolve()] = given
    payloads = [load_checkpoint(path) for path in paths]
    _check_compatible(paths, payloads)
    first = payloads[0]["config"]
    raw = copy.deepcopy(first)
    raw["model"] = {
        "name": "ensemble",
        "members": [payload["config"]["model"] for payload in payloads],
        **({} if weights is None else {"weights": [float(w) for w in weights]}),
    }
    raw["experiment"] = {
        **raw.get("experiment", {}),
        "name": name or f"{first['experiment']['name']}_ensemble{len(paths)}",
        "description": f"mean of the scores of {len(paths)} runs",
    }
    if output_dir is None and paths[0].parent.name == "checkpoints":
        # beside the first run, wherever this runs from (its output_dir may be relative)
        output_dir = paths[0].resolve().parent.parent.parent
    if output_dir is not None:
        raw["tracking"] = {**raw.get("tracking", {}), "output_dir": str(output_dir)}
    config = load_config(base=raw)  # a bad --name is a ConfigError, not a pydantic traceback
    config = config.model_copy(update={"data": config.data.absolute()})  # members' may be relative
    n_features = int(payloads[0]["n_features"])
    scorer = _load_scorer(n_features, config.model.params["members"], weights, paths, payloads)
    normalizer = Normalizer.from_dict(payloads[0]["normalizer"], source=str(paths[0]))
    splits = load_splits(config.data, record_files=True, gain=config.evaluation.gain)
    batch_size = config.training.batch_size
    scaling = _score_scaling(payloads, scale_scores)
    if scaling["scaled"]:
        train_data = normalizer.transform_data(splits.train)
        spreads = [
            _within_query_std(score_data(member, train_data, batch_size=batch_size), train_data)
            for member in scorer.members
        ]
        _refuse_flat_members(paths, spreads)
        chosen = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
        scaled = [w / spread for w, spread in zip(chosen, spreads, strict=True)]
        raw["model"]["weights"] = [w / sum(scaled) for w in scaled]
        config = load_config(base=raw)
        config = config.model_copy(update={"data": config.data.absolute()})
        scorer = _load_scorer(
            n_features, config.model.params["members"], raw["model"]["weights"], paths, payloads
        )
        scaling["train_score_std"] = spreads
    scaling["weights"] = [float(w) for w in scorer.weights]
    valid_data = normalizer.transform_data(splits.valid)
    names = validation_metrics(config.evaluation, config.training)
    conventions: dict[str, Any] = {
        "gain": config.evaluation.gain,
        "no_relevant": config.evaluation.no_relevant,
    }
    valid = dict(
        evaluate_model(scorer, valid_data, names, batch_size=batch_size, **conventions).means
    )
    report: dict[str, Any] = {
        "best_epoch": None,
        "epochs": 0,
        "stopped_early": False,
        "early_stopping_metric": config.training.early_stopping_metric,
        "valid": valid,
        "valid_from_train": splits.valid_from_train,
        "conventions": conventions,
        "test": None,
        "data": splits.files,
        "members": [
            _member_record(path, payload) for path, payload in zip(paths, payloads, strict=True)
        ],
        "score_scaling": scaling,
    }
    meta = {
        "config": config.resolved(),
        "normalizer": normalizer.to_dict(),
        "n_features": n_features,
    }
    check_mlflow(config)  # a bad store fails before the run directory exists
    output = config.tracking.output_dir.resolve()  # printed absolute, as train and cv do
    run = Run.create(output, config.experiment.name, tensorboard=False)
    with run, log_console_to(run.dir / LOG_FILE):  # what the command printed, as train keeps it
        attach_mlflow(run, config)
        run.write_text("config.yaml", config.to_yaml())
        run.write_json("preprocessor.json", normalizer.to_dict())
        run.write_json("training_history.json", [])  # nothing trained here; `ltr compare` reads it
        run.log_params(config.resolved())
        run.save_checkpoint("best", _checkpoint(scorer, meta))
        if splits.test is not None:
            test_data = normalizer.transform_data(splits.test)
            scores = score_data(scorer, test_data, batch_size=batch_size)
            report["test"], per_query = report_test_metrics(test_data, scores, config)
            report["test_queries"] = test_data.n_queries
            run.write_table("test_per_query.tsv", {"qid": test_data.query_ids, **per_query})
        results.print(f"Ensemble of {len(paths)} runs: {run.dir}", highlight=False)
        for part, values in (("Validation", valid), ("Test", report["test"])):
            if values:
                shown = ", ".join(f"{k}={v:.4f}" for k, v in values.items() if "[" not in k)
                results.print(f"{part}: {shown}", highlight=False)
        final = {f"best/valid/{k}": v for k, v in (valid or {}).items()}
        final.update({f"test/{k}": v for k, v in (report["test"] or {}).items()})
        run.finish(report, final, 0, RUN_ARTIFACTS)  # train.log goes with the run's files
    return run.dir


def _load_scorer(
    n_features: int,
    members: Sequence[dict[str, Any]],
    weights: Sequence[float] | None,
    paths: Sequence[Path],
    payloads: Sequence[dict[str, Any]],
) -> EnsembleScorer:
    """The ensemble of ``members`` with their trained weights loaded, in eval mode."""
    scorer = EnsembleScorer(n_features, members, weights)
    for index, (member, payload) in enumerate(zip(scorer.members, payloads, strict=True)):
        try:
            member.load_state_dict(payload["model"])
        except RuntimeError as error:
            raise LtrError(f"{paths[index]}: the weights do not fit its config: {error}") from None
    scorer.eval()
    return scorer


def _score_scaling(payloads: Sequence[dict[str, Any]], forced: bool | None) -> dict[str, Any]:
    """Whether to scale the members' scores, and why: ``forced``, else when losses differ."""
    losses = list(dict.fromkeys(str(p["config"].get("loss", {}).get("name")) for p in payloads))
    if forced is not None:
        why = "asked (scale_scores=" + ("true)" if forced else "false)")
        return {"scaled": forced, "why": why, "losses": losses}
    if len(losses) > 1:
        return {"scaled": True, "why": "the members' losses differ", "losses": losses}
    return {"scaled": False, "why": "the members share one loss", "losses": losses}


def _within_query_std(scores: np.ndarray, data: LetorData) -> float:
    """Pooled within-query standard deviation of ``scores [docs]`` (file order): the spread
    that moves rankings, without the queries' offsets."""
    sizes = np.diff(data.query_offsets)
    means = np.add.reduceat(scores.astype(np.float64), data.query_offsets[:-1]) / sizes
    deviations = scores - np.repeat(means, sizes)
    return float(np.sqrt(np.mean(deviations**2)))


def _refuse_flat_members(paths: Sequence[Path], spreads: Sequence[float]) -> None:
    for path, spread in zip(paths, spreads, strict=True):
        if not spread > 0.0:
            raise ConfigError(
                f"{path} scores every document of each training query alike (within-query "
                "standard deviation 0), so its scores cannot be scaled; leave it out, or build "
                "the ensemble without scaling (scale_scores=False, --no-scale-scores)"
            )


def _refuse_cv_dirs(members: Sequence[str | Path]) -> None:
    """A cv directory holds one run per fold, and those do not average into one model: each was
    trained on other folds' test queries (and on other data, so they are not compatible)."""
    for member in members:
        if is_cv_dir(member):
            raise ConfigError(
                f"{member} is a cv directory of `ltr cv`; its fold runs were trained on "
                "different folds (each on the others' test queries), so they do not average into "
                "one model: ensemble runs trained on the same data (seeds, losses)"
            )


def _refuse_unfinished(members: Sequence[str | Path]) -> None:
    """A run without ``metrics.json`` stopped early (Ctrl-C, a crash) or is still training."""
    unfinished = []
    for member in members:
        path = Path(member)
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path
        if not (run_dir / "config.yaml").is_file():
            continue  # a bare checkpoint: no run to ask
        if not (run_dir / "metrics.json").is_file():
            unfinished.append(f"{member} ({_progress(run_dir)})")
    if unfinished:
        runs = "; ".join(unfinished)
        raise ConfigError(
            f"{len(unfinished)} member(s) did not finish (no metrics.json): {runs}; finish each "
            "with `ltr train --resume <run>` or leave it out of the ensemble"
        )


def _progress(run_dir: Path) -> str:
    """How far an unfinished run got: ``1 of 4 epochs done``, from its history and config."""
    try:
        history = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
        done = len(history) if isinstance(history, list) else 0
    except (OSError, ValueError):  # stopped before its first epoch ended
        done = 0
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        planned = f" of {int(config['training']['num_epochs'])}"
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        planned = ""
    return f"{done}{planned} epochs done" if done else "no epoch done"


def _check_compatible(paths: Sequence[Path], payloads: Sequence[dict[str, Any]]) -> None:
    """Members must read the same features the same way: feature count, normalizer, data."""
    reference, first = payloads[0], paths[0]
    for path, payload in zip(paths[1:], payloads[1:], strict=True):
        if int(payload["n_features"]) != int(reference["n_features"]):
            raise ShapeError(
                f"{path} scores {payload['n_features']} features; {first} scores "
                f"{reference['n_features']}"
            )
        data, expected = (
            same_paths(dotted_items({"data": p["config"].get("data", {})}))
            for p in (payload, reference)
        )
        differing = sorted(
            key for key in set(data) | set(expected) if data.get(key) != expected.get(key)
        )
        if differing:
            raise ConfigError(
                f"{path} was trained with other data settings than {first} "
                f"({', '.join(differing)}); ensemble members must share their data section"
            )
        if payload["normalizer"] != reference["normalizer"]:
            raise ConfigError(
                f"{path} normalizes features differently from {first}; ensemble members must "
                "share the fitted normalizer (same data.normalization and training data)"
            )
        if payload["config"]["model"].get("name") == "ensemble":
            raise ConfigError(f"{path} is an ensemble already; ensembles do not nest")
    if reference["config"]["model"].get("name") == "ensemble":
        raise ConfigError(f"{first} is an ensemble already; ensembles do not nest")


def _member_record(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    state = payload.get("state") or {}
    return {
        "run_dir": None if run_dir is None else str(run_dir.resolve()),
        "checkpoint": str(path.resolve()),
        "sha256": file_sha256(path),
        "model": payload["config"]["model"].get("name"),
        "loss": payload["config"].get("loss", {}).get("name"),
        "seed": payload["config"]["training"]["seed"],
        "best_epoch": state.get("best_epoch"),
        "best_value": state.get("best_value"),
    }


def _checkpoint(scorer: EnsembleScorer, meta: dict[str, Any]) -> dict[str, Any]:
    """An ltr checkpoint of the untrained-as-such ensemble: epoch 0, no optimizer state."""
    return {
        "epoch": 0,
        "model": scorer.state_dict(),
        "optimizer": None,
        "scheduler": None,
        "state": {
            "best_epoch": None,
            "best_value": None,
            "epochs_since_best": 0,
            "stopped_early": False,
            "history": [],
        },
        "rng": None,
        **meta,
    }
