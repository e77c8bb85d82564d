"""Experiment configuration: one YAML file, validated by pydantic, errors that name the field.

The file has the sections ``experiment``, ``data``, ``model``, ``loss``, ``training``,
``evaluation``, ``tracking`` and ``promotion`` (see ``configs/default.yaml``). Every default
lives here; the scorer's and the loss's own parameters are checked against their signatures
(their defaults live with them and are filled into the resolved config). Any field can be
overridden from the command line with ``--set training.learning_rate=3e-4``: overrides are
applied to the raw YAML before validation, so they obey the same rules as the file. A key that
itself holds dots (an entry of ``tune.space``) goes in brackets:
``--set 'tune.space[model.dropout].low=0.1'``; error messages name such fields the same way.
``ltr train --model NAME`` / ``--loss NAME`` switch the scorer or the loss of a file before the
overrides, keeping the parameters the new one takes (:func:`switch_components`), so one
experiment file serves every scorer and loss.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ltr._messages import closest_hint, not_one_of, pydantic_problem
from ltr.errors import ConfigError, UsageError

logger = logging.getLogger(__name__)

_PROBE_FEATURES = 3  # the feature count scorers are built for while a config is checked
# experiment and registry names: they become folder names and MLflow names
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
# the devices ltr trains and scores on, one rule for training.device and the Python API: other
# torch backends (mps, xpu, meta) are refused up front instead of failing deep inside torch
DEVICE_PATTERN = r"cpu|cuda|cuda:[0-9]+|auto"
DEVICE_RULE = "must be cpu, cuda, cuda:N or auto"

__all__ = [
    "DEVICE_PATTERN",
    "DEVICE_RULE",
    "NAME_PATTERN",
    "TRAINABLE_MODELS",
    "DataConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "ExperimentInfo",
    "LossConfig",
    "ModelConfig",
    "PromotionConfig",
    "SchedulerConfig",
    "SearchDimension",
    "SignificanceConfig",
    "TrackingConfig",
    "TrainingConfig",
    "TuneConfig",
    "apply_overrides",
    "dotted_items",
    "load_config",
    "switch_components",
]

LossName = Literal[
    "mse",
    "ranknet",
    "lambdarank",
    "ndcgloss2pp",
    "listnet",
    "listmle",
    "approx_ndcg",
    "neural_ndcg",
]
ModelName = Literal["linear", "mlp", "transformer", "ensemble"]
# what --model may switch to: an ensemble averages trained runs (ltr ensemble), nothing to train
TRAINABLE_MODELS = tuple(name for name in get_args(ModelName) if name != "ensemble")
Normalization = Literal[
    "none", "standard", "minmax", "log1p_standard", "query_minmax", "query_zscore"
]


class _NamedFieldError(ValueError):
    """A validator's error about a dotted ``field`` deeper than pydantic's location.

    ``key`` is the dotted key that wrote the offending value, when it is not ``field`` itself:
    ``'terms' is not a parameter of lambdarank`` is about ``loss.params`` but was written as
    ``loss.params.terms``, which is the ``--set`` to blame.
    """

    def __init__(self, field: str, problem: str, *, key: str | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem, self.key = field, problem, key or field

    @classmethod
    def from_config_error(cls, error: ConfigError) -> _NamedFieldError:
        """A scorer's own ``ConfigError`` (``model.members: ...``), which names its field."""
        field, _, problem = str(error).partition(": ")
        return cls(field, problem)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # typos fail; nobody mutates it


class ExperimentInfo(_Strict):
    """The ``experiment`` section: what the run is called and why.

    ``name`` starts the run directory's name (``experiments/<date>-<time>-<name>``) and names
    the MLflow experiment, so it holds letters, digits, ``_``, ``.`` and ``-`` only.
    ``description`` is free text kept in the resolved config.
    """

    name: str = Field("experiment", min_length=1, pattern=NAME_PATTERN)
    description: str = ""


class DataConfig(_Strict):
    """Where the data is and how it is shaped into slates.

    Give ``root`` (a fold folder holding ``train``, ``vali`` and ``test`` as ``.txt`` or
    ``.txt.gz``) or explicit paths; explicit paths win over ``root``. Without a validation file,
    ``valid_fraction`` of the training queries (split by query, seeded with ``split_seed``, not
    ``training.seed``: every seed of a config validates on the same queries, so seed runs compare
    and average) validate; the test file is
    never used for model selection.
    """

    root: Path | None = None
    train: Path | None = None
    valid: Path | None = None
    test: Path | None = None
    normalization: Normalization = "standard"
    max_list_length: int | None = Field(None, ge=1)
    list_sampling: Literal["truncate", "sample"] = "sample"
    valid_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _needs_training_data(self) -> DataConfig:
        if self.root is None and self.train is None:
            raise ValueError("give data.root (a fold folder) or data.train (a file)")
        return self

    def absolute(self) -> DataConfig:
        """The same section with its paths resolved, so a run records the files it trained on
        (and resumes from any working directory)."""
        paths = {key: getattr(self, key) for key in ("root", "train", "valid", "test")}
        return self.model_copy(
            update={key: path.resolve() for key, path in paths.items() if path is not None}
        )


class ModelConfig(BaseModel):
    """``name`` picks the scorer; every other key is a parameter of its constructor."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: ModelName = "mlp"

    @model_validator(mode="after")
    def _params_fit_the_scorer(self) -> ModelConfig:
        from ltr.models import MODELS

        _check_params("model", self.name, MODELS[self.name], self.params, skip=("n_features",))
        _probe_model(MODELS[self.name], self.params)
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class LossConfig(_Strict):
    """The ``loss`` section: a loss of :data:`ltr.losses.LOSSES` by name, and its parameters.

    ``params`` are keyword arguments of that loss function (``{sigma: 1.0, k: 10}`` for
    lambdarank), checked against its signature when the config is read; left out, they take
    the function's defaults, which the resolved config spells out.
    """

    name: LossName = "lambdarank"
    params: dict[str, Any] = {}

    @field_validator("params")
    @classmethod
    def _params_fit_the_loss(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from ltr.losses import LOSSES

        if "name" in info.data:  # else the name itself failed and is reported
            name = info.data["name"]
            skip = ("scores", "labels", "mask")
            _check_params("loss.params", name, LOSSES[name], params, skip=skip)
            _probe_loss(name, params)
        return params


class SchedulerConfig(_Strict):
    """Learning-rate schedule, stepped once per epoch.

    ``plateau`` watches the early-stopping metric (``factor``, ``patience``); ``cosine`` decays
    to ``min_lr`` after ``warmup_epochs`` of linear warm-up; ``step`` multiplies by ``gamma``
    every ``step_size`` epochs.
    """

    name: Literal["none", "plateau", "cosine", "step"] = "none"
    warmup_epochs: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.5, gt=0, le=1)
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(3, ge=0)


class TrainingConfig(_Strict):
    """The ``training`` section: optimization, early stopping, seed and device.

    Training stops after ``num_epochs`` or once ``early_stopping_metric`` (on validation,
    higher is better) has not improved for more than ``early_stopping_patience`` epochs;
    ``checkpoints/best.pt`` keeps the best epoch. ``device`` is ``cpu``, ``cuda``, ``cuda:N``
    or ``auto`` (cuda when a GPU is visible); an unavailable cuda fails when the run starts.
    ``num_threads`` None leaves torch's CPU thread count alone.
    """

    batch_size: int = Field(32, ge=1)  # queries per step; the global batch under torchrun
    num_epochs: int = Field(50, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    # above 1e30 the optimizers' float32 arithmetic overflows (Adam's first step is 10x the rate)
    learning_rate: float = Field(1e-3, gt=0, le=1e30)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    grad_clip: float | None = Field(5.0, gt=0)
    feature_noise: float = Field(0.0, ge=0)  # std of Gaussian noise on normalized train features
    weight_averaging: float | None = Field(None, gt=0, lt=1)  # EMA decay per step; None = off
    early_stopping_patience: int = Field(10, ge=0)
    early_stopping_metric: str = "ndcg@10"
    bucket_by_length: bool = True
    seed: int = 0
    device: str = "auto"  # DEVICE_PATTERN: cpu, cuda, cuda:N, auto (cuda when available)
    num_threads: int | None = Field(None, ge=1)

    @field_validator("device")
    @classmethod
    def _known_device(cls, name: str) -> str:
        if re.fullmatch(DEVICE_PATTERN, name) is None:
            raise ValueError(f"{DEVICE_RULE}; got {name!r}")
        return name

    @field_validator("early_stopping_metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        from ltr.metrics import parse_metric_name

        parse_metric_name(name)
        return name


class EvaluationConfig(_Strict):
    """Metrics reported on validation (every epoch) and test (best epoch), and conventions."""

    metrics: list[str] = ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr"]
    gain: Literal["exp2", "linear"] = "exp2"
    no_relevant: Literal["zero", "one", "skip"] = "zero"

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        from ltr.metrics import parse_metric_name

        for name in names:
            parse_metric_name(name)
        return names


class TrackingConfig(_Strict):
    """Where runs go and which trackers mirror them.

    ``mlflow``: every run is also an MLflow run. Its store is the first of ``mlflow_uri``, the
    ``MLFLOW_TRACKING_URI`` environment variable, ``sqlite:///mlruns.db`` (a SQLite file in the
    working directory, artifacts in ``mlartifacts/`` beside it; no server needed). Point a team
    at a server with ``mlflow_uri: http://mlflow.internal:5000``.
    """

    output_dir: Path = Path("experiments")
    tensorboard: bool = True
    mlflow: bool = True
    mlflow_uri: str | None = None


class SearchDimension(_Strict):
    """One searched field of ``ltr tune``.

    ``loguniform`` and ``uniform`` draw floats in ``[low, high]``; ``int`` draws integers in
    ``[low, high]`` (every ``step``); ``categorical`` picks one of ``choices`` (any YAML value,
    lists included, e.g. hidden-layer sizes). A field the type does not use is refused.
    """

    type: Literal["loguniform", "uniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: int | None = Field(None, ge=1)
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds_or_choices(self) -> SearchDimension:
        own = {"categorical": ("choices",), "int": ("low", "high", "step")}
        foreign = [
            name
            for name in ("low", "high", "step", "choices")
            if getattr(self, name) is not None and name not in own.get(self.type, ("low", "high"))
        ]
        if foreign:  # a choices list on a uniform dimension would be ignored silently
            article = "an" if self.type == "int" else "a"
            raise ValueError(f"{article} {self.type} dimension takes no {', '.join(foreign)}")
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty list of choices")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            got = f"{self.low}, {self.high}"
            raise ValueError(f"a {self.type} dimension needs low < high; got {got}")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"a loguniform dimension needs low > 0; got {self.low}")
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError(f"an int dimension needs whole bounds; got {self.low}, {self.high}")
        return self


class TuneConfig(_Strict):
    """The search of ``ltr tune``: what to maximize, how to prune, where to look.

    ``space`` maps dotted config fields (``training.learning_rate``, ``model.hidden_dims``,
    ``loss.params.sigma``) to a :class:`SearchDimension`; a trial's values are applied as
    ``--set`` overrides and validated like the file. The objective is the validation ``metric``
    (default: ``training.early_stopping_metric``) of the trial's best epoch, higher is better.
    ``pruner``: ``median`` stops a trial whose epoch value falls below the median of earlier
    trials at the same epoch; ``hyperband`` runs successive halving over epochs, its first rung
    the epoch after the warmup; ``none`` never prunes. Either prunes no trial before
    ``pruner_startup_trials`` trials completed, nor in its first ``pruner_warmup_epochs``
    epochs.
    ``seed`` seeds the TPE sampler's draws of each trial together with the trial's number
    (null: random): one worker draws the same trials again, workers sharing a study draw apart.
    """

    metric: str | None = None
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: int = Field(2, ge=0)
    pruner_warmup_epochs: int = Field(1, ge=0)
    seed: int | None = 0
    space: dict[str, SearchDimension] = Field(min_length=1)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str | None) -> str | None:
        from ltr.metrics import parse_metric_name

        if name is not None:
            parse_metric_name(name)
        return name


class SignificanceConfig(_Strict):
    """Paired test on per-query test values (:mod:`ltr.experiments.significance`).

    Two-sided at level ``alpha``; the gate also needs the difference to favour the new run.
    """

    test: Literal["randomization", "t"] = "randomization"
    alpha: float = Field(0.05, gt=0, lt=1)
    n_resamples: int = Field(10_000, ge=100)  # randomization test only
    seed: int = 0


class PromotionConfig(_Strict):
    """The gate of ``ltr promote RUN --to validated`` (:mod:`ltr.lifecycle.registry`).

    ``min_metrics`` are floors on the run's test metrics (names as in ``metrics.json``, e.g.
    ``ndcg@10`` or ``ndcg@10[no_relevant=one]``). With ``compare_to_validated``, the run must
    also beat the most recently validated version of the same registered name on ``metric``,
    paired per test query: by at least ``min_improvement`` and, unless ``significance`` is null,
    significantly. ``registry_name`` defaults to ``experiment.name``; validated versions live in
    ``validated_dir/<name>_v<version>/``.
    """

    min_metrics: dict[str, float] = {}
    metric: str = "ndcg@10"
    compare_to_validated: bool = True
    min_improvement: float = 0.0
    significance: SignificanceConfig | None = Field(default_factory=SignificanceConfig)
    registry_name: str | None = Field(None, min_length=1, pattern=NAME_PATTERN)
    validated_dir: Path = Path("validated")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        split_report_name(name)
        return name

    @field_validator("min_metrics")
    @classmethod
    def _known_metrics(cls, floors: dict[str, float]) -> dict[str, float]:
        for name in floors:
            split_report_name(name)  # "ndcg@10[no_relevant=one]" is fine
        return floors

    @property
    def metric_names(self) -> list[str]:
        """The test metrics the gate reads: ``metric`` and each floor's (a run reports them)."""
        return list(dict.fromkeys([self.metric, *self.min_metrics]))


def split_report_name(name: str) -> tuple[str, dict[str, str]]:
    """A ``metrics.json`` name as its metric and the conventions its brackets set:
    ``"ndcg@10[no_relevant=one]"`` -> ``("ndcg@10", {"no_relevant": "one"})``; brackets may set
    ``no_relevant`` (a policy of ltr.metrics) or ``preset`` (one of ltr.metrics.PRESETS).

    Raises:
        ConfigError: an unknown metric, or brackets that set anything else.
    """
    from ltr.metrics import PRESETS, NoRelevant, parse_metric_name

    no_relevant = get_args(NoRelevant)
    base, bracket, rest = name.partition("[")
    parse_metric_name(base)
    if not bracket:
        return base, {}
    key, equals, value = rest.removesuffix("]").partition("=")
    choices = {"no_relevant": no_relevant, "preset": tuple(PRESETS)}.get(key, ())
    if not rest.endswith("]") or not equals or value not in choices:
        raise ConfigError(
            f"{name!r}: a metric's brackets set no_relevant ({', '.join(no_relevant)}) or preset "
            f"({', '.join(PRESETS)}), e.g. ndcg@10[no_relevant=one]"
        )
    return base, {key: value}


class ExperimentConfig(_Strict):
    """One experiment file, validated: what :func:`ltr.training.run_experiment` trains.

    Build it with :func:`load_config` (a YAML file plus ``--set``-style overrides), which turns
    the first invalid field into one :class:`~ltr.errors.ConfigError` naming it. Frozen: to
    change a field, load again with an override. :meth:`resolved` / :meth:`to_yaml` give it
    with every default spelled out, as the run directory's ``config.yaml`` stores it.
    """

    experiment: ExperimentInfo = Field(default_factory=ExperimentInfo)
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    tune: TuneConfig | None = None  # only `ltr tune` reads it

    def resolved(self) -> dict[str, Any]:
        """Plain data with every default spelled out, including the scorer's and the loss's."""
        from ltr.losses import LOSSES
        from ltr.models import MODELS

        raw = self.model_dump(mode="json")
        raw["model"] = {
            "name": self.model.name,
            **_defaults(MODELS[self.model.name], skip=("n_features",)),
            **self.model.params,
        }
        skip = ("scores", "labels", "mask")
        raw["loss"]["params"] = {**_defaults(LOSSES[self.loss.name], skip=skip), **self.loss.params}
        if self.tune is None:  # training runs without a search keep their config.yaml as before
            del raw["tune"]
        return raw

    def to_yaml(self) -> str:
        """:meth:`resolved` as YAML, in section order; :func:`load_config` reads it back."""
        return yaml.safe_dump(self.resolved(), sort_keys=False)


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    base: Mapping[str, Any] | None = None,
    model: str | None = None,
    loss: str | None = None,
) -> ExperimentConfig:
    """Read a YAML experiment (or start from ``base``), switch the scorer or loss to ``model`` /
    ``loss`` if given (:func:`switch_components`), apply ``key=value`` overrides, validate.

    Raises:
        ConfigError: ``<file>: <dotted.field>: <problem>`` for the first invalid field
            (``<dotted.field>: <problem>`` for a config from ``base``, which has no file).
        UsageError: ``--model: <problem>`` / ``--loss: <problem>`` for a name that is not a
            scorer that trains (:data:`TRAINABLE_MODELS`) or a loss.
    """
    if model is not None:  # before the file is read: the option alone is wrong
        _check_model_option(model)
    source = str(path) if path is not None else None  # from base: no file to name
    raw: dict[str, Any] = dict(base or {})
    if path is not None:
        raw = _read_yaml(Path(path))
    overrides = list(overrides)
    switched = switch_components(raw, model=model, loss=loss)
    named = _validated(apply_overrides(switched, overrides))
    if isinstance(named, ExperimentConfig):
        return named
    options = {"model.name": ("--model", model), "loss.name": ("--loss", loss)}

    def causes(index: int) -> bool:  # without overrides[index], the problem goes
        rest = [item for number, item in enumerate(overrides) if number != index]
        try:
            found = _validated(apply_overrides(switched, rest))
        except ConfigError:
            return True
        return isinstance(found, ExperimentConfig) or str(found) != str(named)

    raise _blamed(named, source, overrides, options, causes=causes) from None


def _validated(raw: Mapping[str, Any]) -> ExperimentConfig | _NamedFieldError:
    """``raw`` as an experiment, or its first invalid field."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        return _first_problem(error)
    except ConfigError as error:  # raised by a validator that knows the field (model., loss.)
        return _NamedFieldError.from_config_error(error)


def _check_model_option(model: str) -> None:
    """``--model`` names a scorer that trains (:data:`TRAINABLE_MODELS`)."""
    if model == "ensemble":
        raise UsageError("--model ensemble: build ensembles from trained runs with ltr ensemble")
    if model not in TRAINABLE_MODELS:
        raise UsageError(f"--model: {not_one_of(model, TRAINABLE_MODELS)}")


def _first_problem(error: ValidationError) -> _NamedFieldError:
    """Pydantic's first error as the field it is about and the problem, in ltr's wording."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _NamedFieldError):  # names a parameter, deeper than pydantic's loc
        return cause
    field = _render_key([str(part) for part in first["loc"]]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return _NamedFieldError(field, _unknown_field(first["loc"]))
    return _NamedFieldError(field, pydantic_problem(first))


def _blamed(
    error: _NamedFieldError,
    source: str | None,
    overrides: Sequence[str],
    options: Mapping[str, tuple[str, str | None]],
    *,
    causes: Callable[[int], bool] = lambda index: False,
) -> ConfigError:
    """The error naming where the bad value came from: the ``--set`` that caused it
    (:func:`_culprit`), else ``--model`` / ``--loss`` for the name they set (a choice not among
    the choices: bad usage), else the file."""
    field, problem = error.field, error.problem
    item = _culprit(error, overrides, causes)
    if item is not None:
        parts, written, bracketed = _split_override(item)
        key, text = _render_key(parts), written.strip()
        where = f"--set {item}" if key in (field, error.key) else f"--set {item}: {field}"
        hint = _whole_key_hint(parts, bracketed, field, written)
        if "list" in problem and "," in text and not text.startswith(("[", "{")):
            hint = f"; write --set '{key}=[{text}]'"  # YAML reads 64,32 as a string
        return ConfigError(f"{where}: {problem}{hint}")
    option, value = options.get(field, ("", None))
    if value is not None:
        return UsageError(f"{option}: {problem}")
    return ConfigError(f"{source}: {field}: {problem}" if source else f"{field}: {problem}")


def _whole_key_hint(parts: list[str], bracketed: set[int], field: str, value: str) -> str:
    """When the bad ``field`` is the name a bracketed part follows (``ndcg@10`` of
    ``min_metrics.ndcg@10[no_relevant=one]``), both were likely one key: the spelling for it."""
    for index in sorted(bracketed):
        if index and _render_key(parts[:index]) == field:
            whole = f"{parts[index - 1]}[{parts[index]}]"
            key = _render_key([*parts[: index - 1], whole, *parts[index + 1 :]])
            return f"; for the key {whole}, put it in brackets: --set '{key}={value}'"
    return ""


def _culprit(
    error: _NamedFieldError, overrides: Sequence[str], causes: Callable[[int], bool]
) -> str | None:
    """The ``--set`` item that caused ``error``: the last one that wrote its key or a section
    above it; else the last one inside the bad field's section without which the problem goes
    (``foo.bar=1`` made the unknown section ``foo``; ``model.name=ensemble`` made a scorer the
    file's ``model.hidden_dims`` do not fit)."""
    keys = [
        (index, item, _render_key(_split_override(item)[0])) for index, item in enumerate(overrides)
    ]
    for _, item, key in reversed(keys):
        if error.key == key or error.key.startswith((f"{key}.", f"{key}[")):
            return item
    for index, item, key in reversed(keys):
        if key.startswith((f"{error.field}.", f"{error.field}[")) and causes(index):
            return item
    return None


def switch_components(
    raw: Mapping[str, Any], *, model: str | None = None, loss: str | None = None
) -> dict[str, Any]:
    """A copy of ``raw`` whose scorer is ``model`` and whose loss is ``loss`` (None: unchanged).

    A component that changes keeps only the parameters the new one takes; the others are
    dropped with a logged warning naming them. An unknown name is left for validation to report.

    >>> switch_components({"model": {"name": "mlp", "hidden_dims": [8], "dropout": 0.2}},
    ...                   model="transformer")
    {'model': {'name': 'transformer', 'dropout': 0.2}}
    """
    from ltr.losses import LOSSES
    from ltr.models import MODELS

    result = _deep_copy(raw)
    section = result.get("model") or {}
    if model is not None and isinstance(section, dict):  # else validation names the section
        old = section.pop("name", ModelConfig.model_fields["name"].default)
        if old != model and model in MODELS:
            section = _kept("model", old, model, section, MODELS[model], prefix="model.")
        result["model"] = {"name": model, **section}
    section = result.get("loss") or {}
    if loss is not None and isinstance(section, dict):
        old = section.get("name", LossConfig.model_fields["name"].default)
        params = section.get("params")
        if old != loss and loss in LOSSES and isinstance(params, dict):
            section["params"] = _kept(
                "loss", old, loss, params, LOSSES[loss], prefix="loss.params."
            )
        result["loss"] = {**section, "name": loss}
    return result


def _kept(
    what: str, old: str, new: str, params: dict[str, Any], fn: Callable[..., Any], *, prefix: str
) -> dict[str, Any]:
    """The entries of ``params`` that ``fn`` takes; a warning names the others."""
    takes = inspect.signature(fn).parameters
    dropped = ", ".join(f"{prefix}{key}" for key in params if key not in takes)
    if dropped:
        logger.warning("%s %s -> %s: dropped %s (not taken by %s)", what, old, new, dropped, new)
    return {key: value for key, value in params.items() if key in takes}


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``dotted.key=value`` set; values are parsed as YAML scalars.

    A key with dots of its own goes in brackets (:func:`_split_override`); a field of such an
    entry can only be set when the entry exists (else the field would start a new entry).

    >>> apply_overrides({"training": {"seed": 0}}, ["training.seed=3", "model.hidden_dims=[8]"])
    {'training': {'seed': 3}, 'model': {'hidden_dims': [8]}}
    >>> space = {"tune": {"space": {"model.dropout": {"type": "uniform", "low": 0, "high": 1}}}}
    >>> apply_overrides(space, ["tune.space[model.dropout].low=0.1"])["tune"]["space"]
    {'model.dropout': {'type': 'uniform', 'low': 0.1, 'high': 1}}
    """
    result = _deep_copy(raw)
    for item in overrides:
        parts, text, bracketed = _split_override(item)
        node = result
        *parents, leaf = parts
        for depth, part in enumerate(parents):
            if part not in node:
                _check_new_section(item, parts, depth, bracketed, node)
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: {part} is not a section")
            node = child
        try:
            node[leaf] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:  # e.g. an unclosed [ or {
            problem = getattr(error, "problem", None) or "cannot be read"
            raise ConfigError(f"--set {item}: the value is not valid YAML: {problem}") from None
    return result


def _split_override(item: str) -> tuple[list[str], str, set[int]]:
    """``KEY=VALUE`` as the key's parts, the value's text and which parts were in brackets.

    Dots separate the parts of the key; a part in brackets is taken whole, dots, ``=`` and
    nested brackets included (``tune.space[model.dropout].low``,
    ``promotion.min_metrics[ndcg@10[no_relevant=one]]``).

    Raises:
        ConfigError: ``--set <item>: expected KEY=VALUE ...`` when ``item`` is not one.
    """
    parts: list[str] = []
    bracketed: set[int] = set()
    name, depth, closed = "", 0, False  # closed: a bracket just ended the part
    for index, char in enumerate(item):
        if depth:  # inside brackets every character is the part's but the closing bracket
            depth += {"[": 1, "]": -1}.get(char, 0)
            if depth:
                name += char
            else:
                bracketed.add(len(parts))
                parts.append(name.strip())
                name, closed = "", True
        elif char in ".[=":
            if name.strip():
                parts.append(name.strip())
            elif not closed and (char != "[" or parts):  # "a..b", "=3", "a.[b]"
                break
            if char == "=":
                if all(parts):  # "a[]=3" has an empty part
                    return parts, item[index + 1 :], bracketed
                break
            name, depth, closed = "", int(char == "["), False
        elif char == "]" or (closed and not char.isspace()):  # "a]", "a[b]c"
            break
        else:
            name += char
    raise ConfigError(
        f"--set {item}: expected KEY=VALUE, e.g. training.seed=3 or "
        "tune.space[model.dropout].low=0.1 (brackets around a key that has dots)"
    )


def _render_key(parts: Sequence[str]) -> str:
    """The key of ``parts`` as ``--set`` reads it: dotted, brackets around a part with dots."""
    key = ""
    for part in parts:
        if part and not any(char in part for char in ".[]="):
            key += f".{part}" if key else part
        else:
            key += f"[{part}]"
    return key


def _check_new_section(
    item: str, parts: list[str], depth: int, bracketed: set[int], node: Mapping[str, Any]
) -> None:
    """Refuse to start a section at ``parts[depth]``, missing from ``node``, when that cannot be
    what ``item`` meant: a field of a bracketed entry that does not exist, or a dotted path
    into an entry whose key has dots (``tune.space.model.dropout.low``)."""
    where, missing = _render_key(parts[:depth]), parts[depth]
    if depth in bracketed:
        hint = closest_hint(missing, [str(key) for key in node])
        if not hint and node:
            hint = f"; it has {', '.join(str(key) for key in node)}"
        raise ConfigError(f"--set {item}: {where} has no entry {missing}{hint}")
    for end in range(depth + 2, len(parts) + 1):
        entry = ".".join(parts[depth:end])
        if entry in node:
            fixed = _render_key([*parts[:depth], entry, *parts[end:]])
            raise ConfigError(
                f"--set {item}: {where} has no entry {missing}; write "
                f"--set '{fixed}={item.partition('=')[2]}' for the entry {entry}"
            )
    if where == "tune.space":  # its keys are dotted fields: a section there is never meant
        entry = ".".join(parts[depth:])
        raise ConfigError(
            f"--set {item}: the entries of tune.space are config fields, written in brackets: "
            f"--set '{_render_key([*parts[:depth], entry])}={item.partition('=')[2]}'"
        )


def dotted_items(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections flattened to the keys ``--set`` takes; an empty mapping stays a value.

    >>> dotted_items({"training": {"seed": 0, "scheduler": {"name": "none"}}, "loss": {}})
    {'training.seed': 0, 'training.scheduler.name': 'none', 'loss': {}}
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(dotted_items(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _unknown_field(loc: Sequence[Any]) -> str:
    """``unknown field; did you mean <the closest known one>?`` for a misspelt key."""
    section: Any = ExperimentConfig
    for part in loc[:-1]:  # down the nested sections to the one holding the key
        if get_origin(section) is dict:  # an entry of a mapping (tune.space[model.dropout])
            section = get_args(section)[1]
            continue
        field = section.model_fields.get(part) if _is_section(section) else None
        section = None if field is None else _without_none(field.annotation)
    known = list(section.model_fields) if _is_section(section) else []
    prefix = _render_key([str(part) for part in loc[:-1]])
    hint = closest_hint(str(loc[-1]), known, prefix=f"{prefix}." if prefix else "")
    return f"unknown field{hint}"


def _without_none(annotation: Any) -> Any:
    """``X`` for an optional section ``X | None`` (``tune``), else ``annotation``."""
    if get_origin(annotation) in (Union, UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        found = "a directory, not a config file" if path.is_dir() else "config file not found"
        raise ConfigError(f"{path}: {found}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as error:  # one line: file:line:column: the problem
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{path}"
        problem = " ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return raw


def _check_params(
    field: str,
    owner: str,
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    skip: tuple[str, ...],
) -> None:
    """Refuse a key of ``params`` (the section ``field``) that ``fn`` does not take."""
    valid = [name for name in inspect.signature(fn).parameters if name not in skip]
    for key in params:
        if key not in valid:
            takes = f"valid: {', '.join(valid)}" if valid else f"{owner} takes no parameters"
            problem = f"{key!r} is not a parameter of {owner}; {takes}"
            raise _NamedFieldError(field, problem, key=f"{field}.{key}")


def _probe_loss(name: str, params: Mapping[str, Any]) -> None:
    """Bad parameter values (``sigma: 0``) fail when the config is read, naming
    ``loss.params.<key>``: the check :func:`ltr.losses.build_loss` makes, shared."""
    from ltr.losses import check_loss_params

    try:
        check_loss_params(name, params)
    except ConfigError as error:
        raise _NamedFieldError.from_config_error(error) from None


def _probe_model(cls: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """Build the scorer for a few features, so that a bad parameter value (``dropout: abc``)
    fails when the config is read, naming ``model.<key>``, rather than after the data loads."""
    import torch

    signature = inspect.signature(cls).parameters
    needed = [k for k, p in signature.items() if p.default is inspect.Parameter.empty]
    missing = next((key for key in needed[1:] if key not in params), None)  # [0]: n_features
    if missing is not None:
        raise _NamedFieldError(f"model.{missing}", "required by this scorer")
    required = {key: params[key] for key in needed[1:]}  # an ensemble's members: every probe
    with torch.random.fork_rng(devices=[]):  # building draws initial weights
        for key, value in params.items():  # one at a time, so the message names the key
            try:
                cls(_PROBE_FEATURES, **{**required, key: value})
            except ConfigError as error:  # the scorer's own check names its field
                raise _NamedFieldError.from_config_error(error) from None
            except (TypeError, ValueError) as error:  # e.g. a string where a number belongs
                raise _NamedFieldError(
                    f"model.{key}", f"invalid value {value!r}: {error}"
                ) from None
        try:
            cls(_PROBE_FEATURES, **params)
        except ConfigError as error:  # a combination, e.g. n_heads that do not divide d_model
            raise _NamedFieldError.from_config_error(error) from None
        except (TypeError, ValueError) as error:
            raise _NamedFieldError("model", str(error)) from None


def _defaults(fn: Callable[..., Any], *, skip: tuple[str, ...]) -> dict[str, Any]:
    defaults = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if name not in skip and parameter.default is not inspect.Parameter.empty:
            value = parameter.default
            defaults[name] = list(value) if isinstance(value, tuple) else value
    return defaults


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
