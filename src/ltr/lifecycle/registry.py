"""Staging: promote a training run to a *validated* model, gated, recorded and registered.

``ltr promote RUN --to validated [--version X.Y.Z]`` calls :func:`promote_to_validated`:

0. **Data files**: each one the run recorded in ``metrics.json["data"]`` must still be the
   file at that path (same sha256), else the run is refused naming the file and both hashes:
   its numbers, and ``metadata.json``'s provenance, would describe other bytes. Each file is
   hashed once; runs from before ltr recorded hashes take the files as they are now.
1. **Gate** (:mod:`ltr.lifecycle.gates`) with the run's own ``promotion:`` section (or one
   passed in): floors on test metrics and, optionally, a significant improvement over the most
   recently validated version of the same name. A checkpoint is validated once: the run's
   ``best.pt`` (by sha256, wherever the run lies), validated already under any name and
   version, is refused naming where it is
   (a second validation would gate it against itself, or publish one model as two versions).
   A failing run raises :class:`~ltr.errors.PromotionRefused` listing every failed check, and
   nothing is written.
2. **Re-score** the test file with the best checkpoint: the figures must reproduce
   ``metrics.json`` (else the data or checkpoint changed since training), and give the metrics
   under every convention preset.
3. **Write** ``<validated_dir>/<name>_v<version>/`` atomically (a hidden temp folder, then a
   rename): ``best.pt``, ``config.yaml``, ``preprocessor.json``, ``test_per_query.tsv``,
   ``metadata.json`` and ``model_card.md``. A version is never overwritten; the default version
   is the latest validated one of that name with minor + 1 (``1.0.0`` first).
4. **Register** the version in the MLflow Model Registry under the same name and point the alias
   ``validated`` at it (:mod:`ltr.lifecycle.mlflow_registry`), unless the name's versions
   were registered from another validated folder: the gate above saw only this folder's
   versions, so one gate per name means one folder per registered name. Without MLflow
   installed the step is skipped and ``metadata.json`` says so. ``model_card.md`` comes from
   :mod:`ltr.lifecycle.model_card`.

``metadata.json`` layout::

    model_id         "<name>_v<version>", also the folder name
    name, version    registered model name, X.Y.Z
    experiment_id    the run directory's name (``<YYYYmmdd-HHMMSS>-<experiment>``)
    run_dir          absolute path of the run directory
    mlflow_run_id    the MLflow run that trained it, or null; ``mlflow``: the run's mlflow.json
    metrics          {"default": metrics.json test (configured conventions, ndcg@10 under every
                     no_relevant policy), "letor" | "lightgbm" | "trec_eval": the same metrics
                     under that preset of ltr.metrics.PRESETS (trec_eval = linear gain)}
    conventions      {"default": {gain, no_relevant}, "<preset>": the preset's conventions}
    validated_at     UTC ISO-8601;  status: "ready_for_production"
    code_revision    ``git rev-parse HEAD`` of the ltr source, or null; code_dirty: bool | null
    data             {train | valid | test: {path, sha256, queries, documents} or null}
    training         model, loss, optimizer, learning rate, epochs, best epoch, ...
    gate             {passed, checks: [{name, passed, message, <numbers>}]}
    files            {file name: sha256} of the copied files
    registry         {tracking_uri, name, version, alias, source} or {skipped: reason}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ltr._fs import atomic_write_json, atomic_write_text, file_sha256, read_json
from ltr.config import ExperimentConfig, PromotionConfig, load_config
from ltr.data.summary import describe_data
from ltr.errors import DataFormatError, DataNotFoundError, LtrError, PromotionRefused
from ltr.lifecycle.bundle import fsync_dir, move_dir, parse_version
from ltr.lifecycle.gates import Baseline, GateResult, evaluate_gate, read_per_query
from ltr.lifecycle.mlflow_registry import registered, tracking_uri_of
from ltr.lifecycle.model_card import render_model_card
from ltr.lifecycle.provenance import (
    code_revision,
    describe_file,
    file_changed,
    is_synthetic,
    recorded_file,
)

if TYPE_CHECKING:
    from ltr.training.experiment import DataPaths  # imports torch: only where promotion runs

__all__ = [
    "CONVENTION_PRESETS",
    "STATUS_VALIDATED",
    "ValidatedLookup",
    "ValidatedModel",
    "latest_validated",
    "list_validated",
    "next_version",
    "promote_to_validated",
    "validated_model_exported_as",
    "validated_version_of",
]

STATUS_VALIDATED = "ready_for_production"
CONVENTION_PRESETS = ("letor", "lightgbm", "trec_eval")
METADATA_FILE = "metadata.json"
MODEL_CARD_FILE = "model_card.md"
# run file -> name in the validated folder
COPIED_FILES = {
    "checkpoints/best.pt": "best.pt",
    "config.yaml": "config.yaml",
    "preprocessor.json": "preprocessor.json",
    "test_per_query.tsv": "test_per_query.tsv",
}
# re-scoring must reproduce metrics.json this closely (same code, same batch size; the slack
# covers a run trained on another device)
_REPRODUCE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ValidatedModel:
    """One folder ``<validated_dir>/<name>_v<version>/`` and its ``metadata.json``."""

    path: Path
    metadata: dict[str, Any]

    @property
    def model_id(self) -> str:
        return str(self.metadata["model_id"])

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def validated_at(self) -> str:
        return str(self.metadata["validated_at"])

    def facts(self) -> dict[str, Any]:
        """What a production bundle records of its validated model (``metadata["validated"]``)."""
        return {
            "name": self.name,
            "model_id": self.model_id,
            "validated_at": self.validated_at,
            "status": self.metadata.get("status"),
            "path": str(self.path.resolve()),
        }

    def __str__(self) -> str:
        registry = self.metadata.get("registry") or {}
        if "skipped" in registry:
            registered = f"MLflow registry skipped: {registry['skipped']}"
        else:
            registered = (
                f"MLflow: registered model {registry.get('name')} version "
                f"{registry.get('version')}, alias {registry.get('alias')} "
                f"({registry.get('tracking_uri')})"
            )
        return f"{self.model_id} -> {self.path}\n{registered}"


def list_validated(validated_dir: str | Path, name: str | None = None) -> list[ValidatedModel]:
    """Validated models under ``validated_dir`` (of registered ``name`` only, if given).

    Sorted by version. Hidden folders (a temp folder left by a crash) and folders without a
    readable ``metadata.json`` are not validated models.
    """
    root = Path(validated_dir)
    found: list[ValidatedModel] = []
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        path = folder / METADATA_FILE
        if folder.name.startswith(".") or not path.is_file():
            continue
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
            model = ValidatedModel(folder, metadata)
            parse_version(model.version)
        except (ValueError, KeyError, TypeError, LtrError):
            continue
        if name is None or model.name == name:
            found.append(model)
    return sorted(found, key=lambda model: (model.name, parse_version(model.version)))


def latest_validated(validated_dir: str | Path, name: str) -> ValidatedModel | None:
    """The most recently validated version of ``name`` (by ``validated_at``), or None."""
    return _most_recent(list_validated(validated_dir, name))


def _most_recent(models: list[ValidatedModel]) -> ValidatedModel | None:
    return max(models, key=lambda m: (m.validated_at, parse_version(m.version)), default=None)


def _validations_of(
    run_dir: Path, validated_dir: str | Path, name: str | None = None
) -> list[ValidatedModel]:
    """The validated models made from ``run_dir`` (resolved), of ``name`` only if given."""
    return [model for model in list_validated(validated_dir, name) if _made_from(model, run_dir)]


def _made_from(model: ValidatedModel, run_dir: Path) -> bool:
    """Whether ``model`` was validated from the run directory ``run_dir`` (resolved)."""
    return model.metadata.get("run_dir") == str(run_dir)


def _same_checkpoint(model: ValidatedModel, checkpoint_sha256: str) -> bool:
    """Whether ``model`` is this ``best.pt``: the same bytes, wherever the run lies now (a
    copied or moved run directory holds the same model)."""
    return (model.metadata.get("files") or {}).get("best.pt") == checkpoint_sha256


def next_version(validated_dir: str | Path) -> str:
    """The highest validated version of any name with minor + 1; ``1.0.0`` for the first.

    One sequence for every name, as the model store has one for every bundle: two names'
    first validations are 1.0.0 and 1.1.0, so both can go live in one store.
    """
    return _version_after(list_validated(validated_dir))


def _version_after(models: Iterable[ValidatedModel]) -> str:
    """:func:`next_version` of the validated ``models`` of a folder."""
    versions = [parse_version(model.version) for model in models]
    if not versions:
        return "1.0.0"
    major, minor, _ = max(versions)
    return f"{major}.{minor + 1}.0"


def promote_to_validated(
    run: str | Path,
    *,
    version: str | None = None,
    name: str | None = None,
    promotion: PromotionConfig | None = None,
    validated_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    register: bool = True,
    now: datetime | None = None,
) -> ValidatedModel:
    """Gate a run, then write and register it as a validated model; see the module docstring.

    Args:
        run: the run directory (``experiments/<id>``).
        version: ``X.Y.Z``; default: :func:`next_version`.
        name: the registered name; default: ``promotion.registry_name``, else the experiment's
            name. A run tested on another test file than the name's versions needs its own.
        promotion: the gate; default: the run's own ``promotion:`` section.
        validated_dir: where validated models live; default: ``promotion.validated_dir``.
        tracking_uri: MLflow store; default: the run's ``mlflow.json``, then the run's
            ``tracking.mlflow_uri``, ``$MLFLOW_TRACKING_URI``, ``sqlite:///mlruns.db``.
        register: False skips the MLflow Model Registry (the folder alone is written).
        now: the validation time (tests); default: now, UTC.

    Returns:
        The new validated model.

    Raises:
        PromotionRefused: the gate failed (every failed check, with numbers), the run has no
            test metrics, the version exists, the run's checkpoint is validated already
            (under any name and version), or re-scoring does not reproduce metrics.json.
        DataNotFoundError: the run directory or one of its files, or a data file, is missing.
        ConfigError: ``version`` is not ``X.Y.Z``.
    """
    run_dir, shown = Path(run).resolve(), str(run)  # messages name the run as it was given
    config, report = _read_run(run_dir, shown)
    promotion = promotion or config.promotion
    name = name or promotion.registry_name or config.experiment.name
    root = Path(validated_dir if validated_dir is not None else promotion.validated_dir)
    validated = list_validated(root)  # every name: versions and checkpoints span them all
    _refuse_revalidation(shown, validated, file_sha256(run_dir / "checkpoints" / "best.pt"))
    version = version or _version_after(validated)
    parse_version(version)
    model_id = f"{name}_v{version}"
    target = root / model_id
    if target.exists():
        raise PromotionRefused(
            f"{target} already exists; a validated version is never overwritten "
            f"(next free: {_version_after(validated)})"
        )
    taken = next((m for m in validated if m.version == version), None)
    if taken is not None:  # one sequence across names, so two names never share a store version
        raise PromotionRefused(
            f"version {version} is validated already as {taken.model_id}; versions are one "
            f"sequence across names (next free: {_version_after(validated)})"
        )
    test_metrics = report.get("test")
    if not isinstance(test_metrics, dict):
        raise PromotionRefused(
            f"run {shown}: has no test metrics (trained without a test file); the gate needs them"
        )
    from ltr.training.experiment import resolve_data_paths  # imports torch: promotion only

    paths = resolve_data_paths(config.data)
    if paths.test is None:
        raise DataNotFoundError(f"run {shown}: its config names no test file")
    digests = _data_digests(shown, paths, report)
    test_file = {"path": str(paths.test.resolve()), "sha256": digests["test"]}
    gate = _check_gate(run_dir, shown, report, promotion, root, name, test_file)
    metrics, data = _rescore(run_dir, shown, config, paths, digests, test_metrics)
    metadata: dict[str, Any] = {
        "model_id": model_id,
        "name": name,
        "version": version,
        "experiment_id": run_dir.name,
        "run_dir": str(run_dir),
        **_mlflow_run(run_dir),
        "metrics": metrics,
        "conventions": _conventions(report),
        "validated_at": (now or datetime.now(timezone.utc)).isoformat(timespec="milliseconds"),
        "status": STATUS_VALIDATED,
        **code_revision(),
        "data": data,
        "training": _training_summary(config, report),
        "gate": gate.to_dict(),
    }
    root.mkdir(parents=True, exist_ok=True)
    with _staging(root, model_id) as staging:
        metadata["files"] = _copy_run_files(run_dir, staging)
        uri = tracking_uri or tracking_uri_of(metadata["mlflow"], config.tracking.mlflow_uri)
        with registered(uri, metadata, source_dir=target, enabled=register) as registry:
            metadata["registry"] = registry
            atomic_write_json(staging / METADATA_FILE, metadata)
            atomic_write_text(staging / MODEL_CARD_FILE, render_model_card(metadata))
            fsync_dir(staging)
            move_dir(staging, target)
    return ValidatedModel(target, metadata)


def validated_version_of(
    run: str | Path,
    version: str | None = None,
    *,
    name: str | None = None,
    validated_dir: str | Path | None = None,
) -> ValidatedModel:
    """The validated model of ``run`` that ``ltr promote RUN --to production`` publishes.

    Production takes validated runs only (experiments -> validated -> production), so a run
    never goes live without passing its gate, and the live version is the validated one.

    Args:
        run: the run directory.
        version: one of the run's validated versions; default: the highest.
        name: the name it was validated under; default: as for :func:`promote_to_validated`.
        validated_dir: where validated models live; default: the run's
            ``promotion.validated_dir``.

    Raises:
        PromotionRefused: the run has no validated version (or not ``version``), or its
            checkpoint is not the one that was validated.
        DataNotFoundError: the run directory or one of its files is missing.
    """
    run_dir = Path(run).resolve()
    config, _ = _read_run(run_dir, str(run))
    name_given, name = name, name or config.promotion.registry_name or config.experiment.name
    root = validated_dir if validated_dir is not None else config.promotion.validated_dir
    models = _validations_of(run_dir, root, name)
    if not models:
        others = _validations_of(run_dir, root)
        if others:  # validated under another --name: following "validate it first" would
            # validate it a second time under this name
            validated_as = ", ".join(f"{model.name} {model.version}" for model in others)
            names = " or ".join(f"--name {n}" for n in dict.fromkeys(m.name for m in others))
            raise PromotionRefused(
                f"run {run} is not validated as {name}; it is validated as {validated_as}: "
                f"add {names}"
            )
        models = _moved_validations_of(run_dir, str(run), root, name)
        if not models:
            with_name = f" --name {name_given}" if name_given else ""
            raise PromotionRefused(
                f"run {run} is not validated as {name}; run `ltr promote {run} --to validated"
                f"{with_name}` first"
            )
    chosen = next((m for m in models if m.version == version), None) if version else models[-1]
    if chosen is None:
        versions = ", ".join(model.version for model in models)
        raise PromotionRefused(
            f"run {run}: --version {version} is not one of its validated versions ({versions})"
        )
    # export reads the run's checkpoint: it must be the very one the gate passed
    if file_sha256(run_dir / "checkpoints" / "best.pt") != chosen.metadata["files"]["best.pt"]:
        raise PromotionRefused(
            f"run {run}: checkpoints/best.pt changed since it was validated as "
            f"{chosen.model_id}; validate it again"
        )
    return chosen


def _moved_validations_of(
    run_dir: Path, shown: str, root: str | Path, name: str
) -> list[ValidatedModel]:
    """The validations of ``name`` whose checkpoint ``run_dir`` holds and whose run directory
    is gone: the run was moved, and stands for them. A copy (the validated run still there) is
    refused, naming that run: a checkpoint is validated, and published, once."""
    sha256 = file_sha256(run_dir / "checkpoints" / "best.pt")
    same = [model for model in list_validated(root) if _same_checkpoint(model, sha256)]
    moved = [
        m for m in same if m.name == name and not Path(m.metadata.get("run_dir") or ".").is_dir()
    ]
    if same and not moved:
        model = same[-1]
        raise PromotionRefused(
            f"run {shown}: its checkpoint is validated as {model.name} {model.version} from run "
            f"{model.metadata.get('run_dir')}; promote that run"
        )
    return moved


def validated_model_exported_as(
    run: str | Path, version: str, *, validated_dir: str | Path | None = None
) -> ValidatedModel | None:
    """The validated model of ``run`` at ``version``: the one ``ltr promote RUN --to
    production`` exported as that version, or None.

    For bundles exported before they recorded ``metadata["validated"]``; to look up many
    bundles, use one :class:`ValidatedLookup`.

    Args:
        run: the bundle's source run directory.
        version: the bundle's version (production publishes the validated version as is).
        validated_dir: where validated models live; default, as for promotion: the run's
            ``promotion.validated_dir``, or the config default when the run or its config is
            gone.
    """
    return ValidatedLookup().exported_as(run, version, validated_dir=validated_dir)


class ValidatedLookup:
    """:func:`validated_model_exported_as` for many bundles (``ltr models list``): each run's
    config and each validated folder is read once, however many bundles name them."""

    def __init__(self) -> None:
        self._folders: dict[Path, list[ValidatedModel]] = {}
        self._roots: dict[Path, Path] = {}

    def exported_as(
        self, run: str | Path, version: str, *, validated_dir: str | Path | None = None
    ) -> ValidatedModel | None:
        """The validated model made from ``run`` with ``version``, or None (arguments as
        :func:`validated_model_exported_as`)."""
        run_dir = Path(run).resolve()
        if validated_dir is None:
            if run_dir not in self._roots:
                self._roots[run_dir] = _validated_dir_of(run_dir)
            validated_dir = self._roots[run_dir]
        folder = Path(validated_dir).resolve()
        if folder not in self._folders:
            self._folders[folder] = list_validated(validated_dir)
        models = self._folders[folder]
        return next((m for m in models if _made_from(m, run_dir) and m.version == version), None)


def _validated_dir_of(run_dir: Path) -> Path:
    try:
        return load_config(run_dir / "config.yaml").promotion.validated_dir
    except LtrError:  # deleted or unreadable: a lookup for display must not fail on it
        return PromotionConfig().validated_dir


# ---------------------------------------------------------------------------------------------
# Reading the run and gating it.


def _read_run(run_dir: Path, shown: str) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The run's config and metrics.json; ``shown``: the run as the caller gave it."""
    from ltr.training.checkpoint import refuse_cv_dir
    from ltr.training.experiment import load_run_config

    if not run_dir.is_dir():
        raise DataNotFoundError(f"run {shown} does not exist; give a run directory")
    refuse_cv_dir(run_dir)  # its fold runs are what can be validated
    for name in ("metrics.json", *COPIED_FILES):
        if not (run_dir / name).is_file():
            raise DataNotFoundError(
                f"run {shown} has no {name}; promote a finished `ltr train` run"
            )
    config = load_run_config(run_dir)
    report = read_json(run_dir / "metrics.json")
    if not isinstance(report, dict):
        raise DataFormatError(run_dir / "metrics.json", None, "expected an object")
    return config, report


def _refuse_revalidation(
    shown: str, validated: list[ValidatedModel], checkpoint_sha256: str
) -> None:
    """Refuse validating a checkpoint again (``validated``: every validated model), whatever
    the name or version: under its name the gate would test it against itself, under another
    it would dodge that name's gate (a changed ``best.pt`` is a new model, gated against the
    previous version)."""
    same = [model for model in validated if _same_checkpoint(model, checkpoint_sha256)]
    if same:
        model = same[-1]
        raise PromotionRefused(
            f"run {shown}: already validated as {model.name} {model.version} ({model.path})"
        )


def _check_gate(
    run_dir: Path,
    shown: str,
    report: Mapping[str, Any],
    promotion: PromotionConfig,
    root: Path,
    name: str,
    test_file: Mapping[str, Any],
) -> GateResult:
    baseline = None
    if promotion.compare_to_validated:
        # the run's own checkpoint is not among them (_refuse_revalidation), so no baseline
        # means the name has no validated version at all, as the gate record then says
        current = latest_validated(root, name)
        if current is not None:
            baseline = Baseline(
                model_id=current.model_id,
                per_query=read_per_query(current.path / "test_per_query.tsv"),
                conventions=current.metadata["conventions"]["default"],
                test_file=(current.metadata.get("data") or {}).get("test"),
            )
    gate = evaluate_gate(
        report["test"],
        read_per_query(run_dir / "test_per_query.tsv"),
        _conventions(report)["default"],
        promotion,
        baseline,
        test_file=test_file,
    )
    if not gate.passed:
        raise PromotionRefused(gate.refusal(shown))
    return gate


def _data_digests(shown: str, paths: DataPaths, report: Mapping[str, Any]) -> dict[str, str | None]:
    """sha256 of each data file now, by split, each read once.

    Raises:
        PromotionRefused: a file differs from the one the run recorded at training.
    """
    digests: dict[str, str | None] = {}
    for split in ("train", "valid", "test"):
        path: Path | None = getattr(paths, split)
        digests[split] = None if path is None else file_sha256(path)
        recorded = recorded_file(report, split)
        if recorded is not None and digests[split] != recorded["sha256"]:
            raise PromotionRefused(
                f"run {file_changed(shown, split, recorded, digests[split] or 'missing')}; "
                "its metrics describe the file it read: restore that file or train again"
            )
    return digests


def _conventions(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from ltr.metrics import PRESETS

    default = dict(report.get("conventions") or {"gain": "exp2", "no_relevant": "zero"})
    return {"default": default, **{preset: dict(PRESETS[preset]) for preset in CONVENTION_PRESETS}}


# ---------------------------------------------------------------------------------------------
# Re-scoring the test file; data provenance.


def _rescore(
    run_dir: Path,
    shown: str,
    config: ExperimentConfig,
    paths: DataPaths,
    digests: Mapping[str, str | None],
    test_metrics: Mapping[str, float],
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Metrics under every preset, checked against metrics.json; the data files' facts
    (``digests``: their sha256, from :func:`_data_digests`)."""
    from ltr.data.letor import load_letor
    from ltr.evaluation import evaluate_scores
    from ltr.inference import Predictor
    from ltr.training.experiment import TEST_METRICS

    assert paths.test is not None  # promote_to_validated refuses a run without one
    predictor = Predictor.load(run_dir)
    test = load_letor(paths.test, n_features=predictor.n_features)
    scores = predictor.score(test, source=str(paths.test))
    names = [name for name in TEST_METRICS if name in test_metrics]
    conventions = {"gain": config.evaluation.gain, "no_relevant": config.evaluation.no_relevant}
    again = evaluate_scores(test, scores, names, **conventions).means
    for metric in names:
        if not abs(again[metric] - test_metrics[metric]) <= _REPRODUCE_TOLERANCE:
            raise PromotionRefused(
                f"run {shown}: re-scoring {paths.test} gives {metric} = "
                f"{again[metric]:.6f}, metrics.json says {test_metrics[metric]:.6f}; the test "
                "file or the checkpoint changed since training"
            )
    metrics = {"default": dict(test_metrics)}
    for preset in CONVENTION_PRESETS:
        metrics[preset] = evaluate_scores(test, scores, names, preset=preset).means
    width = predictor.n_features
    data: dict[str, Any] = {
        split: None if path is None else describe_file(path, width, sha256=digests[split])
        for split, path in (("train", paths.train), ("valid", paths.valid))
    }
    data["test"] = describe_data(paths.test, test, sha256=digests["test"])
    data["test"]["queries_without_relevant"] = int(
        np.count_nonzero(np.maximum.reduceat(test.labels, test.query_offsets[:-1]) < 1)
    )
    data["synthetic"] = is_synthetic(paths.train)
    return metrics, data


def _training_summary(config: ExperimentConfig, report: Mapping[str, Any]) -> dict[str, Any]:
    resolved = config.resolved()
    training = config.training
    return {
        "experiment": config.experiment.name,
        "description": config.experiment.description,
        "model": resolved["model"],
        "loss": resolved["loss"],
        "optimizer": training.optimizer,
        "learning_rate": training.learning_rate,
        "weight_decay": training.weight_decay,
        "batch_size": training.batch_size,
        "max_epochs": training.num_epochs,
        "epochs": report.get("epochs"),
        "best_epoch": report.get("best_epoch"),
        "stopped_early": report.get("stopped_early"),
        "early_stopping_metric": training.early_stopping_metric,
        "valid": report.get("valid"),
        "valid_from_train": report.get("valid_from_train"),
        "normalization": config.data.normalization,
        "max_list_length": config.data.max_list_length,
        "seed": training.seed,
    }


# ---------------------------------------------------------------------------------------------
# Writing the folder.


@contextlib.contextmanager
def _staging(root: Path, model_id: str) -> Iterator[Path]:
    """A hidden temp folder in ``root``; removed unless the body renamed it away."""
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.", suffix=".tmp", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_run_files(run_dir: Path, folder: Path) -> dict[str, str]:
    files = {}
    for source, name in COPIED_FILES.items():
        shutil.copyfile(run_dir / source, folder / name)
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())
        files[name] = file_sha256(folder / name)
    return files


def _mlflow_run(run_dir: Path) -> dict[str, Any]:
    """``mlflow_run_id`` and ``mlflow`` (the run's ``mlflow.json``), both null when untracked."""
    from ltr.experiments.mlflow_tracker import read_run_file

    tracked = read_run_file(run_dir)
    if tracked is None:
        return {"mlflow_run_id": None, "mlflow": None}
    return {"mlflow_run_id": tracked.get("run_id"), "mlflow": tracked}
