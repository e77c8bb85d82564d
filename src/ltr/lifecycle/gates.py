"""The promotion gate: the checks a run must pass before it becomes a validated model.

The gate reads numbers a training run already wrote (``metrics.json`` and
``test_per_query.tsv``) and, for the comparison, the same files of the current validated model;
it never scores anything itself. Checks, in order (``promotion:`` in the config,
:class:`ltr.config.PromotionConfig`):

- **floors**: each ``min_metrics`` entry, ``value >= floor`` on the run's test metrics;
- **improvement** (``compare_to_validated``): paired on the per-query test values of
  ``promotion.metric`` over the same query ids, the mean difference run - validated must be at
  least ``min_improvement`` and, unless ``significance`` is null, the two-sided paired test
  (:mod:`ltr.experiments.significance`) must give ``p < alpha`` with a positive difference.
  Without a validated model of the same name the check passes (the first version). Different
  test files (by sha256: a relabelled copy has the same query ids), different query ids or
  different metric conventions cannot be paired: that is an error, not a pass.

Every check is evaluated (no short-circuit), so a refusal lists all that failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltr.config import PromotionConfig, SignificanceConfig
from ltr.errors import DataFormatError, PromotionRefused

__all__ = [
    "Baseline",
    "GateCheck",
    "GateResult",
    "PerQueryTable",
    "evaluate_gate",
    "read_per_query",
]


@dataclass(frozen=True)
class PerQueryTable:
    """``test_per_query.tsv``: query ids and one column of per-query values per metric.

    Attributes:
        query_ids: ``str [n_queries]`` in file order.
        columns: metric name -> ``float64 [n_queries]`` (NaN for a skipped query).
    """

    query_ids: np.ndarray
    columns: dict[str, np.ndarray]

    def column(self, metric: str, *, source: str) -> np.ndarray:
        """``metric``'s per-query values.

        Raises:
            PromotionRefused: the table has no such column (``source`` names the file).
        """
        if metric not in self.columns:
            raise PromotionRefused(
                f"{source} has no per-query {metric}; it has {', '.join(self.columns)}"
            )
        return self.columns[metric]


@dataclass(frozen=True)
class Baseline:
    """The validated model a run is compared with.

    Attributes:
        model_id: ``<name>_v<version>``.
        per_query: its ``test_per_query.tsv``.
        conventions: the metric conventions its per-query values were computed under.
        test_file: its test file's ``{path, sha256}`` (``metadata.json`` data.test); None when
            unknown.
    """

    model_id: str
    per_query: PerQueryTable
    conventions: Mapping[str, Any]
    test_file: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class GateCheck:
    """One check: its outcome, the numbers behind it, and the sentence a refusal prints."""

    name: str
    passed: bool
    message: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``name``, ``passed``, ``message`` and the figures the check compared."""
        return {"name": self.name, "passed": self.passed, "message": self.message, **self.values}


@dataclass(frozen=True)
class GateResult:
    checks: list[GateCheck]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def refusal(self, run_name: str) -> str:
        """``run <name>: <failed check>; <failed check>`` (empty when the gate passed)."""
        failed = [check.message for check in self.checks if not check.passed]
        return f"run {run_name}: {'; '.join(failed)}" if failed else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{passed, checks: [...]}``, as a validated model's ``metadata.json``
        records it under ``gate``."""
        return {"passed": self.passed, "checks": [check.to_dict() for check in self.checks]}


def read_per_query(path: Path) -> PerQueryTable:
    """Read a ``test_per_query.tsv`` (header ``qid<TAB>metric...``, one row per query).

    Raises:
        DataFormatError: a missing header, a row of the wrong width, or a value that is no float.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t")[0] != "qid":
        raise DataFormatError(path, 1, "expected a header starting with qid")
    names = lines[0].split("\t")[1:]
    query_ids: list[str] = []
    rows: list[list[float]] = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(names) + 1:
            raise DataFormatError(path, number, f"expected {len(names) + 1} columns")
        try:
            rows.append([float(cell) for cell in cells[1:]])
        except ValueError as error:
            raise DataFormatError(path, number, str(error)) from None
        query_ids.append(cells[0])
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))
    columns = {name: values[:, i].copy() for i, name in enumerate(names)}
    return PerQueryTable(np.asarray(query_ids, dtype=str), columns)


def evaluate_gate(
    test_metrics: Mapping[str, float],
    per_query: PerQueryTable,
    conventions: Mapping[str, Any],
    promotion: PromotionConfig,
    baseline: Baseline | None,
    *,
    test_file: Mapping[str, Any] | None = None,
) -> GateResult:
    """Run every check of ``promotion`` on a run's test numbers; see the module docstring.

    Args:
        test_metrics: the run's ``metrics.json["test"]``.
        per_query: the run's ``test_per_query.tsv``.
        conventions: the run's ``metrics.json["conventions"]`` (``gain``, ``no_relevant``).
        promotion: the gate.
        baseline: the current validated model of the same name, or None (none yet, or
            ``compare_to_validated`` is off).
        test_file: the run's test file, ``{path, sha256}``; None when unknown.

    Raises:
        PromotionRefused: the run and the baseline cannot be paired (other test files, test
            queries or conventions), or ``promotion.metric`` is not among the per-query values.
    """
    checks = [_floor(name, floor, test_metrics) for name, floor in promotion.min_metrics.items()]
    if promotion.compare_to_validated:
        if baseline is not None:
            _check_same_test_file(test_file, baseline)
        checks.append(_improvement(per_query, conventions, promotion, baseline))
    return GateResult(checks)


def _floor(name: str, floor: float, test_metrics: Mapping[str, float]) -> GateCheck:
    value = test_metrics.get(name)
    check = f"min {name}"
    if value is None:
        known = ", ".join(test_metrics)
        message = f"{name} is not among the run's test metrics ({known}); the gate cannot check it"
        return GateCheck(check, False, message, {"metric": name, "value": None, "floor": floor})
    passed = value >= floor
    relation = "reaches" if passed else "is below"
    message = f"{name} = {value:.3f} {relation} the gate {floor:.3f}"
    return GateCheck(check, passed, message, {"metric": name, "value": value, "floor": floor})


def _improvement(
    per_query: PerQueryTable,
    conventions: Mapping[str, Any],
    promotion: PromotionConfig,
    baseline: Baseline | None,
) -> GateCheck:
    metric = promotion.metric
    if baseline is None:
        message = "no other validated model of this name yet: nothing to improve on"
        return GateCheck("improvement", True, message, {"metric": metric, "baseline": None})
    if dict(conventions) != dict(baseline.conventions):
        raise PromotionRefused(
            f"cannot compare with validated {baseline.model_id}: its metrics use conventions "
            f"{dict(baseline.conventions)}, the run's {dict(conventions)}; retrain with the same "
            "evaluation settings"
        )
    run_values = per_query.column(metric, source="the run's test_per_query.tsv")
    base_values = _aligned(per_query.query_ids, baseline)[metric]
    diff = _nanmean(run_values - base_values)
    values: dict[str, Any] = {
        "metric": metric,
        "baseline": baseline.model_id,
        "mean_diff": diff,
        "min_improvement": promotion.min_improvement,
        "n_queries": int(np.count_nonzero(np.isfinite(run_values - base_values))),
    }
    enough = diff >= promotion.min_improvement
    needs = [] if enough else [f"at least {promotion.min_improvement:+.3f}"]
    tested = ""
    significance = promotion.significance
    if significance is not None:
        p_value = _p_value(run_values, base_values, significance)
        values |= {"test": significance.test, "p_value": p_value, "alpha": significance.alpha}
        tested = f" (p = {p_value:.2g} by {_TEST_NAMES[significance.test]})"
        if not p_value < significance.alpha:
            needs.append(f"p < {significance.alpha:g}")
        elif not diff > 0:
            needs.append("a significant gain, not a loss")
    passed = not needs
    message = f"improvement over validated {baseline.model_id} in {metric} is {diff:+.3f}{tested}"
    if needs:
        message += f", needs {' and '.join(needs)}"
    return GateCheck("improvement", passed, message, values)


_TEST_NAMES = {"randomization": "randomization test", "t": "paired t-test"}


def _check_same_test_file(test_file: Mapping[str, Any] | None, baseline: Baseline) -> None:
    """Refuse a baseline tested on other data: same query ids do not make the same test set."""
    ours, theirs = test_file or {}, baseline.test_file or {}
    if ours.get("sha256") and theirs.get("sha256") and ours["sha256"] != theirs["sha256"]:
        raise PromotionRefused(
            f"cannot compare with validated {baseline.model_id}: the test files differ (the "
            f"run's {ours.get('path')} has sha256 {ours['sha256'][:12]}, {baseline.model_id}'s "
            f"{theirs.get('path')} {theirs['sha256'][:12]}); a paired comparison needs the same "
            "test set: a model tested on other data (e.g. another fold) needs its own registry "
            "name (ltr promote --name)"
        )


def _aligned(query_ids: np.ndarray, baseline: Baseline) -> dict[str, np.ndarray]:
    """The baseline's per-query columns in the run's query order; refuses other test sets."""
    theirs = baseline.per_query
    if np.array_equal(theirs.query_ids, query_ids):
        return theirs.columns
    same_set = set(theirs.query_ids.tolist()) == set(query_ids.tolist())
    unique = len(set(query_ids.tolist())) == query_ids.size == theirs.query_ids.size
    if not (same_set and unique):
        common = len(set(theirs.query_ids.tolist()) & set(query_ids.tolist()))
        raise PromotionRefused(
            f"cannot compare with validated {baseline.model_id}: the test sets differ (the run "
            f"has {query_ids.size} test queries, {baseline.model_id} {theirs.query_ids.size}, "
            f"{common} in common); compare on the same test file"
        )
    position = {qid: i for i, qid in enumerate(theirs.query_ids.tolist())}
    order = np.asarray([position[qid] for qid in query_ids.tolist()])
    return {name: values[order] for name, values in theirs.columns.items()}


def _p_value(a: np.ndarray, b: np.ndarray, cfg: SignificanceConfig) -> float:
    from ltr.experiments.significance import paired_t_test, randomization_test

    if cfg.test == "t":
        return paired_t_test(a, b).p_value
    return randomization_test(a, b, n_resamples=cfg.n_resamples, seed=cfg.seed).p_value


def _nanmean(values: np.ndarray) -> float:
    kept = values[np.isfinite(values)]
    return float(kept.mean()) if kept.size else math.nan
