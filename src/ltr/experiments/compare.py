"""Compare finished runs: test metrics side by side, and paired tests against a baseline.

What ``ltr compare`` shows, as data (the CLI formats it as a table, markdown or JSON):

- one row per run: its id (the run folder's name), model, loss and test metrics (means from
  ``metrics.json``); the best run per metric is listed in :attr:`Comparison.best` (ties at the
  4 decimals shown: all);
- for every run except the baseline, paired tests of one metric (``ndcg@10`` by default) over the
  per-query values of ``test_per_query.tsv``: the mean difference (run - baseline), a paired
  t-test, a sign-flip randomization test, win/tie/loss counts, and both p-values adjusted with
  Holm-Bonferroni over the runs compared with the baseline (:mod:`ltr.experiments.significance`);
- in the JSON, each run's ``ci95`` per metric: the t interval of its mean over queries, as
  computed (not clipped to the metric's range, which the plot does), null for a single value.

Choices:

- **Baseline**: ``runs[baseline]``, the first run by default: the first run named on the command
  line, or the oldest with ``--all`` (run folders start with their ``YYYYmmdd-HHMMSS`` time).
- **Same test queries or nothing.** A paired test needs each query scored by both runs. Runs
  tested on different query sets were tested on different data, and then their mean metrics are
  not comparable either, so :func:`compare_runs` refuses them (:class:`ConfigError` naming both
  runs and example query ids) rather than testing on the intersection. Query order may differ:
  values are matched by query id. Same query ids are not enough: the runs' test files must
  have the same sha256, so a relabelled copy of ``test.txt`` is refused too; files of other
  bytes but the same data decompressed (``test.txt`` and ``test.txt.gz``) are compared, with a
  note, while both files are there unchanged. Each run's sha256
  is the one its ``metrics.json`` recorded at training time (``data.test``), so a file edited
  in place between two runs is caught; a recorded file that has changed since gets a note
  naming both hashes. Runs from before ltr recorded hashes fall back to the test file of their
  ``config.yaml`` as it is now (with a note); if that file no longer exists, a note says the
  run could not be checked. A run whose recorded train or valid file has its test file's
  sha256 was fitted or early-stopped on its test queries: compared, with a note naming it.
- **Same no-relevant policy or nothing.** ``evaluation.no_relevant`` (zero, one, skip) sets the
  value of a query without a relevant document in NDCG, MAP and MRR alike, and ``skip`` drops
  such queries from the paired tests; runs evaluated under different policies are refused
  (:class:`ConfigError` naming the runs and their policies), unless every compared column fixes
  the policy in its brackets (``ndcg@10[no_relevant=zero]``, ``ndcg@10[preset=letor]``: every
  run writes these).
- **NDCG of different gains is not compared.** Runs that differ in NDCG's gain (exp2, linear)
  show their NDCG columns without a best mark, since the values measure different things (MAP
  and MRR do not depend on the gain); a note names the column computed with one gain in every
  run, ``ndcg@10[preset=letor]``. Paired tests on such a column are refused when the metric was
  asked for, and shown as n/a (with the note) when it is the default ``ndcg@10``.
- **Cross-validations** (cv directories of ``ltr cv``, read by :mod:`ltr.experiments.cv_record`)
  compare like runs whose test queries are those of all their folds, pooled and keyed by fold
  and query id; means are over the pooled queries. Runs and cvs are not compared with each
  other, cvs must have the same folds, and the test files are checked fold by fold.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from ltr._fs import file_sha256, read_json
from ltr.config import split_report_name
from ltr.data.layout import config_test_file
from ltr.data.summary import file_digests
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError
from ltr.experiments.significance import (
    ConfidenceInterval,
    TestResult,
    WinTieLoss,
    holm_bonferroni,
    mean_confidence_interval,
    paired_t_test,
    randomization_test,
    win_tie_loss,
)
from ltr.experiments.tracking import json_safe
from ltr.lifecycle.provenance import file_changed, recorded_file
from ltr.metrics import PRESETS, reads_gain

__all__ = [
    "DEFAULT_METRIC",
    "DEFAULT_METRICS",
    "RUN_FILES",
    "BaselineTest",
    "Comparison",
    "RunRecord",
    "compare_runs",
    "load_run",
    "query_mean",
    "scan_runs",
]

RUN_FILES = ("config.yaml", "training_history.json", "metrics.json", "test_per_query.tsv")
DEFAULT_METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "map", "mrr")
DEFAULT_METRIC = "ndcg@10"
SHOWN_DECIMALS = 4  # of the means in ltr compare's table; the best is picked at this precision
# every run writes it (ltr.training.experiment.LETOR_NDCG10): one gain, whatever the config's
FIXED_GAIN_METRIC = "ndcg@10[preset=letor]"


@dataclass(frozen=True)
class RunRecord:
    """What a finished run left on disk, as read by :func:`load_run`.

    Attributes:
        path: the run directory.
        run_id: its folder name, ``<YYYYmmdd-HHMMSS>-<experiment name>``.
        config: the resolved ``config.yaml``.
        history: ``training_history.json``, one record per epoch.
        report: ``metrics.json``.
        query_ids: ``[queries]`` test query ids, as strings, in file order.
        per_query: ``[queries]`` test values by metric name (NaN: a skipped query).
        folds: empty for a run; for a cv directory (:func:`ltr.experiments.cv_record.load_cv`)
            its fold runs by fold name, whose test queries the fields above pool.
        loss_details: the loss parameters that tell this run from the compared runs of the
            same loss (``terms=relevant``), set by :func:`compare_runs`; shown in :attr:`loss`.
    """

    path: Path
    run_id: str
    config: dict[str, Any]
    history: list[dict[str, Any]]
    report: dict[str, Any]
    query_ids: NDArray[np.str_]
    per_query: dict[str, NDArray[np.float64]]
    folds: dict[str, RunRecord] = field(default_factory=dict)
    loss_details: str = ""

    @property
    def model(self) -> str:
        return str(self.config.get("model", {}).get("name", "?"))

    @property
    def loss(self) -> str:
        """The training loss; an ensemble's members' losses, ``+``-joined when they differ."""
        members = self.report.get("members")
        if members:  # an ensemble's config.yaml holds its first member's loss only
            losses = dict.fromkeys(str(member.get("loss") or "?") for member in members)
            return "+".join(losses)
        name = str(self.config.get("loss", {}).get("name", "?"))
        return f"{name} ({self.loss_details})" if self.loss_details else name

    @property
    def test(self) -> dict[str, float]:
        """Test metric means of ``metrics.json``."""
        return {k: math.nan if v is None else float(v) for k, v in self.report["test"].items()}

    @property
    def best_epoch(self) -> int | None:
        best = self.report.get("best_epoch")
        return None if best is None else int(best)

    @property
    def conventions(self) -> dict[str, Any]:
        return dict(self.report.get("conventions") or {})

    @property
    def test_file(self) -> Path | None:
        """The test file of ``config.yaml`` (``data.test``, else the one in ``data.root``);
        None when it names none that exists."""
        return config_test_file(self.config.get("data") or {})

    def mean(self, metric: str) -> float:
        """The test mean of ``metric``: ``metrics.json`` if it has it, else from the queries."""
        if metric in self.report["test"]:
            return self.test[metric]
        return query_mean(self.per_query[metric])

    def interval(self, metric: str, *, confidence: float = 0.95) -> ConfidenceInterval:
        """Mean of ``metric`` over test queries with a t-based interval (NaN queries dropped)."""
        return mean_confidence_interval(self.per_query[metric], confidence=confidence)


@dataclass(frozen=True)
class BaselineTest:
    """One run against the baseline on one metric; differences are run - baseline.

    A test that could not be run has NaN statistics and p-values (shown as n/a); then
    ``win_tie_loss`` is None when the values are not comparable at all (different NDCG gains).
    """

    run_id: str
    metric: str
    t_test: TestResult
    randomization: TestResult
    win_tie_loss: WinTieLoss | None
    p_t_test_holm: float
    p_randomization_holm: float

    @property
    def mean_diff(self) -> float:
        return self.t_test.mean_diff

    @property
    def n(self) -> int:
        return self.t_test.n


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_runs` found; :meth:`to_dict` gives it as JSON-ready data."""

    runs: list[RunRecord]
    baseline: RunRecord
    metric: str
    metrics: list[str]
    best: dict[str, list[str]]
    tests: dict[str, BaselineTest]
    n_queries: int
    n_resamples: int
    seed: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (NaN and inf as None): what ``ltr compare --format json`` prints."""
        rows = []
        for run in self.runs:
            test = self.tests.get(run.run_id)
            rows.append(
                {
                    "id": run.run_id,
                    "path": str(run.path),
                    "model": run.model,
                    "loss": run.loss,
                    "best_epoch": run.best_epoch,
                    "epochs": run.report.get("epochs"),
                    "test": {name: run.mean(name) for name in self.metrics},
                    "ci95": {name: list(run.interval(name)[1:]) for name in self.metrics},
                    "best_in": [name for name in self.metrics if run.run_id in self.best[name]],
                    "vs_baseline": None if test is None else _test_dict(test),
                    **(_cv_dict(run, self.metrics) if run.folds else {}),
                }
            )
        data: dict[str, Any] = json_safe(
            {
                "metric": self.metric,
                "metrics": self.metrics,
                "baseline": self.baseline.run_id,
                "test_queries": self.n_queries,
                "best": self.best,
                "runs": rows,
                "tests": {
                    "alternative": "two-sided",
                    "difference": "run - baseline",
                    "randomization_resamples": self.n_resamples,
                    "seed": self.seed,
                    "correction": "holm-bonferroni over the runs compared with the baseline",
                },
                "notes": self.notes,
            }
        )
        return data


def load_run(path: str | Path) -> RunRecord:
    """Read a run directory written by ``ltr train``.

    Raises:
        DataNotFoundError: ``path`` is not a folder, lacks one of :data:`RUN_FILES` (named in the
            message), or has no test results.
        DataFormatError: a file that does not parse.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataNotFoundError(f"run {path}: no such folder")
    for name in RUN_FILES[:3]:
        _require(path, name)
    config = _read_yaml(path / "config.yaml")
    history = read_json(path / "training_history.json")
    report = read_json(path / "metrics.json")
    if not isinstance(history, list):
        raise DataFormatError(path / "training_history.json", None, "expected a list of epochs")
    if not isinstance(report, dict):
        raise DataFormatError(path / "metrics.json", None, "expected an object")
    if not report.get("test"):
        raise DataNotFoundError(
            f"run {path} has no test results (metrics.json: test is null, the run had no test "
            "file); compare needs runs tested on the same test file"
        )
    _require(path, "test_per_query.tsv")
    query_ids, per_query = _read_per_query(path / "test_per_query.tsv")
    return RunRecord(path, path.name, config, history, report, query_ids, per_query)


def query_mean(values: NDArray[np.float64]) -> float:
    """Mean over the queries that have a value (skipped queries are NaN); NaN when none has."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def scan_runs(directory: str | Path) -> tuple[list[RunRecord], list[str]]:
    """Every finished run under ``directory``, oldest first (by folder name), and notes on the
    folders skipped (no ``config.yaml``: not a run; no test results or unfinished, or a cv
    directory of ``ltr cv``: skipped with a note).

    Raises:
        DataNotFoundError: ``directory`` does not exist or holds no finished run.
    """
    from ltr.experiments.cv_record import is_cv_dir  # it builds on this module

    directory = Path(directory)
    if not directory.is_dir():
        raise DataNotFoundError(f"--dir {directory}: no such folder; train a run with `ltr train`")
    runs, notes, cvs = [], [], []
    for child in sorted(p for p in directory.iterdir() if p.is_dir()):
        if is_cv_dir(child):
            cvs.append(child)
        elif (child / "config.yaml").is_file():  # else not a run folder at all
            try:
                runs.append(load_run(child))
            except (DataNotFoundError, DataFormatError) as error:
                notes.append(f"skipped {child.name}: {error}")
    # a cv's test set is all its folds': it compares only with cvs, given by name
    cv_hint = f"to compare cvs, name them: ltr compare {' '.join(map(str, cvs[:2]))}"
    if not runs and cvs:
        raise DataNotFoundError(
            f"{directory} holds cv directories of ltr cv but no run, and --all compares runs; "
            f"{cv_hint}"
        )
    if not runs:
        raise DataNotFoundError(
            f"{directory} holds no finished run with test results; train one with `ltr train`"
        )
    if cvs:
        skipped = "1 cv directory" if len(cvs) == 1 else f"{len(cvs)} cv directories"
        notes.append(f"skipped {skipped} (--all compares runs); {cv_hint}")
    return runs, notes


def compare_runs(
    runs: Sequence[RunRecord],
    *,
    metric: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: int = 0,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare ``runs``: test metrics, the best per metric, paired tests against the baseline.

    One run is shown with a note that it has nothing to be compared against (no tests). Runs
    with fewer than 2 test queries that have a value in both them and the baseline are shown
    with their tests n/a (NaN) and a note.

    Args:
        runs: at least one run, as :func:`load_run` reads them, all tested on the same queries;
            or cvs, as :func:`ltr.experiments.cv_record.load_cv` reads them, all of the same
            folds (their test files checked fold by fold).
        metric: the metric of the paired tests (must be in every ``test_per_query.tsv``);
            None: :data:`DEFAULT_METRIC`, whose tests are n/a (not refused) when the runs
            differ in NDCG gain.
        metrics: the metrics to report; the tests' metric is added when missing.
        baseline: index in ``runs`` of the run the others are tested against.
        n_resamples, seed: of the randomization test and its bootstrap interval.

    Raises:
        ConfigError: no run, a bad baseline index, a metric some run lacks, runs tested on
            different queries, runs evaluated under different no-relevant policies, a
            ``metric`` computed with different NDCG gains, a mix of runs and cvs, or cvs of
            different folds.
    """
    if not runs:
        raise ConfigError("nothing to compare: give at least one run")
    if not 0 <= baseline < len(runs):
        raise ConfigError(f"baseline index must be in 0..{len(runs) - 1}; got {baseline}")
    chosen = DEFAULT_METRIC if metric is None else metric
    names = list(dict.fromkeys([*metrics, chosen]))
    runs = _with_loss_details(runs)
    _check_kinds(runs)
    _check_metrics(runs, names)
    _check_no_relevant(runs, names)
    file_notes = _check_fold_test_files(runs) if runs[0].folds else _check_test_files(runs)
    gains = _gain_groups(runs)
    mixed = [name for name in names if len(gains) > 1 and _reads_configured_gain(name)]
    if chosen in mixed and metric is not None:
        raise ConfigError(
            f"metric {chosen}: runs use different NDCG gains ({_describe_gains(gains)}), so "
            f"their {chosen} values are not comparable; test a metric of one gain in every "
            f"run: {FIXED_GAIN_METRIC} (in every run's test_per_query.tsv), map or mrr"
        )
    base = runs[baseline]
    aligned = {run.run_id: _aligned_values(run, base, chosen) for run in runs}
    tests, test_notes = _baseline_tests(
        runs,
        base,
        chosen,
        aligned,
        comparable=chosen not in mixed,
        n_resamples=n_resamples,
        seed=seed,
    )
    return Comparison(
        runs=list(runs),
        baseline=base,
        metric=chosen,
        metrics=names,
        best={name: [] if name in mixed else _best(runs, name) for name in names},
        tests=tests,
        n_queries=len(base.query_ids),
        n_resamples=n_resamples,
        seed=seed,
        notes=file_notes + _gain_notes(gains, mixed, chosen) + test_notes + _alone_note(runs),
    )


def _baseline_tests(
    runs: Sequence[RunRecord],
    base: RunRecord,
    metric: str,
    aligned: dict[str, NDArray[np.float64]],
    *,
    comparable: bool,
    n_resamples: int,
    seed: int,
) -> tuple[dict[str, BaselineTest], list[str]]:
    """Every run but ``base`` tested against it on ``metric``, p-values adjusted with Holm, and
    notes on the tests that could not run. A test is NaN throughout (n/a) when the values are
    not ``comparable``, and has NaN statistics when fewer than 2 queries pair up."""
    others = [run for run in runs if run is not base]
    b = aligned[base.run_id]
    t_tests, rand_tests = [], []
    too_few: dict[int, list[str]] = {}  # pairs -> the runs with so few
    for run in others:
        a = aligned[run.run_id]
        pairs = int(np.count_nonzero(np.isfinite(a) & np.isfinite(b)))
        if comparable and pairs >= 2:
            t_tests.append(paired_t_test(a, b))
            rand_tests.append(randomization_test(a, b, n_resamples=n_resamples, seed=seed))
            continue
        mean_diff = query_mean(a - b) if comparable else math.nan
        untested = TestResult(math.nan, math.nan, mean_diff, math.nan, math.nan, pairs)
        t_tests.append(untested)
        rand_tests.append(untested)
        if comparable:
            too_few.setdefault(pairs, []).append(run.run_id)
    t_holm = holm_bonferroni([t.p_value for t in t_tests])
    rand_holm = holm_bonferroni([t.p_value for t in rand_tests])
    tests = {
        run.run_id: BaselineTest(
            run.run_id,
            metric,
            t_tests[i],
            rand_tests[i],
            win_tie_loss(aligned[run.run_id], b) if comparable else None,
            t_holm[i],
            rand_holm[i],
        )
        for i, run in enumerate(others)
    }
    notes = [
        _too_few_pairs_note(ids, base.run_id, metric, pairs, b.size)
        for pairs, ids in too_few.items()
    ]
    return tests, notes


def _too_few_pairs_note(
    ids: Sequence[str], base_id: str, metric: str, pairs: int, total: int
) -> str:
    """Why a test is n/a: few test queries, or few with a value (the others skipped)."""
    if pairs == total:
        why = f"the test set has {_count(total, 'query', 'queries')}"
    else:
        why = (
            f"{pairs} of {total} test queries have a value of {metric} in both runs (the other "
            f"{total - pairs} are NaN: skipped, with no relevant document)"
        )
    return (
        f"no paired test of {_first_ids(ids)} against {base_id} (n/a): a paired test needs at "
        f"least 2 queries with a value in both runs, and {why}"
    )


def _with_loss_details(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """``runs``, each run of a loss whose compared runs differ in its parameters labelled with
    its values of those (``listmle (terms=relevant)``): two rows never read alike."""
    by_loss: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        if not run.report.get("members"):  # an ensemble is labelled by its members' losses
            by_loss.setdefault(run.loss, []).append(i)
    labelled = list(runs)
    for indices in by_loss.values():
        params = [dict(runs[i].config.get("loss", {}).get("params") or {}) for i in indices]
        keys = sorted({key for p in params for key in p})
        differing = [
            key for key in keys if len({json.dumps(p.get(key), sort_keys=True) for p in params}) > 1
        ]
        texts = {key: _value_texts([p[key] for p in params if key in p]) for key in differing}
        for i, p in zip(indices, params, strict=True):
            details = ", ".join(
                f"{key}={texts[key][json.dumps(p[key], sort_keys=True)]}"
                for key in differing
                if key in p
            )
            if details:
                labelled[i] = replace(runs[i], loss_details=details)
    return labelled


def _value_texts(values: Sequence[Any]) -> dict[str, str]:
    """How each of one parameter's values is shown, by its JSON text: a float with 4 significant
    digits, more when two of the values would otherwise read alike (1.68758 and 1.68759)."""
    distinct = {json.dumps(value, sort_keys=True): value for value in values}
    for digits in range(4, 18):
        texts = {
            key: f"{value:.{digits}g}" if isinstance(value, float) else str(value)
            for key, value in distinct.items()
        }
        if len(set(texts.values())) == len(texts):
            return texts
    return {key: repr(value) for key, value in distinct.items()}  # 2 and 2.0 both print "2"


def _alone_note(runs: Sequence[RunRecord]) -> list[str]:
    """One run is shown (its metrics, its plots), but there is nothing to test it against."""
    if len(runs) > 1:
        return []
    kind = "cv" if runs[0].folds else "run"
    return [
        f"only one {kind} ({runs[0].run_id}): nothing to compare it against; name a second "
        f"{kind} for paired tests"
    ]


def _best(runs: Sequence[RunRecord], metric: str) -> list[str]:
    """Ids of the runs with the highest mean (every metric here is higher-is-better), at the
    :data:`SHOWN_DECIMALS` the table shows: two means that read alike are both best."""
    means = np.array([run.mean(metric) for run in runs])
    if not np.isfinite(means).any():
        return []
    top = f"{np.nanmax(means):.{SHOWN_DECIMALS}f}"
    return [
        run.run_id
        for run, value in zip(runs, means, strict=True)
        if np.isfinite(value) and f"{value:.{SHOWN_DECIMALS}f}" == top
    ]


def _check_metrics(runs: Sequence[RunRecord], names: Sequence[str]) -> None:
    ids = [run.run_id for run in runs]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"each run may be compared once; given twice: {', '.join(duplicated)}")
    first_name: dict[Path, str] = {}
    for run in runs:  # a symlink gives one run a second name
        same = first_name.setdefault(run.path.resolve(), run.run_id)
        if same != run.run_id:
            raise ConfigError(
                f"each run may be compared once; {run.run_id} is {same} (the same folder, "
                f"{run.path.resolve()})"
            )
    for run in runs:
        missing = [name for name in names if name not in run.per_query]
        if missing:
            raise ConfigError(
                f"run {run.run_id} has no per-query values of {', '.join(missing)}; "
                f"it has {', '.join(run.per_query)}"
            )


def _check_kinds(runs: Sequence[RunRecord]) -> None:
    """Refuse a mix of runs and cvs: a run's test queries are one fold's, a cv's all folds'."""
    kinds = {bool(run.folds) for run in runs}
    if len(kinds) > 1:
        cvs = [run.run_id for run in runs if run.folds]
        single = [run.run_id for run in runs if not run.folds]
        raise ConfigError(
            f"cannot compare cv directories ({', '.join(cvs)}) with run directories "
            f"({', '.join(single)}): a cv is tested on the queries of all its folds; give only "
            "cv directories or only run directories"
        )


def _check_fold_test_files(cvs: Sequence[RunRecord]) -> list[str]:
    """Refuse cvs of different folds, or whose runs of one fold were tested on different files
    (:func:`_check_test_files` fold by fold); notes on what could not be checked."""
    fold_sets = {cv.run_id: list(cv.folds) for cv in cvs}
    if len({frozenset(names) for names in fold_sets.values()}) > 1:
        described = ", ".join(f"{cv_id} ({', '.join(names)})" for cv_id, names in fold_sets.items())
        raise ConfigError(
            f"cvs ran on different folds: {described}; a paired comparison needs the same test "
            "queries: compare cvs of the same folds"
        )
    fix = "compare cvs whose runs of each fold were tested on the same file"
    return [
        note
        for fold in cvs[0].folds
        for note in _check_test_files([cv.folds[fold] for cv in cvs], fix=fix)
    ]


def _aligned_values(run: RunRecord, base: RunRecord, metric: str) -> NDArray[np.float64]:
    """``run``'s values of ``metric`` in the order of ``base``'s queries, matched by query id.

    Raises:
        ConfigError: the two runs were tested on different queries.
    """
    if np.array_equal(run.query_ids, base.query_ids):
        return run.per_query[metric]
    ours, theirs = set(run.query_ids.tolist()), set(base.query_ids.tolist())
    if ours != theirs or len(ours) != len(run.query_ids) or len(theirs) != len(base.query_ids):
        only = sorted(ours ^ theirs)[:5]
        detail = f"e.g. qid {', '.join(only)} in only one" if only else "repeated query ids"
        raise ConfigError(
            f"runs {run.run_id} ({len(run.query_ids)} test queries) and {base.run_id} "
            f"({len(base.query_ids)}) were tested on different queries ({detail}); a paired "
            "comparison needs the same test set: compare runs tested on the same test file"
        )
    position = {qid: i for i, qid in enumerate(run.query_ids.tolist())}
    order = np.array([position[qid] for qid in base.query_ids.tolist()])
    reordered: NDArray[np.float64] = run.per_query[metric][order]
    return reordered


def _check_test_files(runs: Sequence[RunRecord], *, fix: str | None = None) -> list[str]:
    """Refuse runs tested on different files (by sha256); notes on what could not be checked.

    Query ids alone do not identify a test set: a relabelled copy of test.txt has the same ones.
    The sha256 a run recorded at training wins over the file at that path now, which may have
    been edited since. The refusal groups the runs by test file and ends with ``fix`` (default:
    the command comparing the largest group).
    """
    hashed: dict[Path, str] = {}  # runs of one data folder: read the file once
    digests: dict[str, tuple[Path | None, str]] = {}
    contents: dict[str, str] = {}  # run id -> content_sha256 recorded (a gzip file's)
    now_sha256: dict[str, str] = {}
    changed: dict[str, str] = {}  # run id -> what changed, for runs whose file changed since
    notes = []
    for run in runs:
        recorded = recorded_file(run.report, "test")
        notes += _test_file_reuse_notes(run)
        if recorded is None:
            digest, note = _current_test_digest(run, hashed)
            notes.append(note)
            if digest is not None:
                digests[run.run_id] = digest
            continue
        digests[run.run_id] = (Path(recorded["path"]), recorded["sha256"])
        if isinstance(recorded.get("content_sha256"), str):
            contents[run.run_id] = recorded["content_sha256"]
        current = _sha256_now(Path(recorded["path"]), hashed)
        if current is not None and current != recorded["sha256"]:
            changed[run.run_id] = file_changed(run.run_id, "test", recorded, current)
            now_sha256[run.run_id] = current
    groups: dict[str, list[RunRecord]] = {}  # sha256 -> its runs, in the order given
    for run in runs:
        if run.run_id in digests:
            groups.setdefault(digests[run.run_id][1], []).append(run)
    if len(groups) > 1:
        by_size = sorted(groups.values(), key=len, reverse=True)  # stable: ties keep run order
        described = "; ".join(_describe_group(group, digests, now_sha256) for group in by_size)
        content = _content_sha256s(by_size, digests, contents, hashed)
        if content is not None and len(set(content)) == 1:  # e.g. test.txt and test.txt.gz
            return [
                *notes,
                f"runs were tested on files of different bytes but the same data (sha256 "
                f"{content[0][:12]} decompressed): {described}; compared",
            ]
        if content is None and any(str(path).endswith(".gz") for path, _ in digests.values()):
            described += (
                " (file bytes differ; a gzip file's run trained before ltr recorded its "
                "content_sha256 is compared by content only while its file is there unchanged)"
            )
        if fix is None and len(by_size[0]) > 1:
            command = " ".join(shlex.quote(str(run.path)) for run in by_size[0])
            fix = f"compare runs of one test file: name them, e.g. ltr compare {command}"
        elif fix is None:
            fix = "no two of these runs share a test file"
        raise ConfigError(
            f"runs were tested on {len(groups)} different test files: {described}; a "
            f"paired comparison needs the same test set: {fix}"
        )
    return notes + [
        f"{change}; compared by the sha256 recorded at training" for change in changed.values()
    ]


def _test_file_reuse_notes(run: RunRecord) -> list[str]:
    """A run whose recorded train or valid file is its test file (same sha256): its test
    numbers are optimistically biased (fitted, or its epoch picked, on the test queries)."""
    test = recorded_file(run.report, "test")
    if test is None:
        return []
    done = {"train": "was trained", "valid": "picked its best epoch"}
    notes = []
    for split, did in done.items():
        record = recorded_file(run.report, split)
        if record is None or record["sha256"] != test["sha256"]:
            continue
        same = (
            f"is its test file {test['path']}"
            if record["path"] == test["path"]
            else f"has the sha256 of its test file {test['path']}"
        )
        notes.append(
            f"{run.run_id} {did} on its test queries: its {split} file {record['path']} {same} "
            f"(sha256 {test['sha256'][:12]}), so its test metrics are optimistically biased"
        )
    return notes


def _content_sha256s(
    groups: Sequence[Sequence[RunRecord]],
    digests: dict[str, tuple[Path | None, str]],
    contents: dict[str, str],
    hashed: dict[Path, str],
) -> list[str] | None:
    """sha256 of each group's test data decompressed; None when some group's is not known.

    First as recorded: ``content_sha256`` for a gzip file, else ``sha256`` (a plain file's
    content is its bytes). Equal recorded contents are the same data even if the files are gone.
    Otherwise a group without ``content_sha256`` may be a gzip file's run from before ltr
    recorded it: its content is read from its file while that is there with the recorded bytes.
    """
    recorded = [contents.get(group[0].run_id, digests[group[0].run_id][1]) for group in groups]
    if len(set(recorded)) == 1:
        return recorded
    found = []
    for group, content in zip(groups, recorded, strict=True):
        path, sha256 = digests[group[0].run_id]
        if group[0].run_id in contents:
            found.append(content)
            continue
        if path is None or not path.is_file():
            return None
        try:  # one pass: the bytes' digest (is it still the recorded file?) and the text's
            now, text = file_digests(path)
        except (DataFormatError, DataNotFoundError, OSError):
            return None
        hashed[path.resolve()] = now
        if now != sha256:
            return None
        found.append(text or sha256)  # a plain file's content is its bytes
    return found


def _describe_group(
    group: Sequence[RunRecord],
    digests: dict[str, tuple[Path | None, str]],
    now_sha256: dict[str, str],
) -> str:
    """``path (sha256 ab12..., since changed to cd34...): 2 runs (a, b)``."""
    path, sha256 = digests[group[0].run_id]
    now = next((now_sha256[run.run_id] for run in group if run.run_id in now_sha256), None)
    since = "" if now is None else f", since changed to {now[:12]}"
    ids = _first_ids([run.run_id for run in group])
    return f"{path} (sha256 {sha256[:12]}{since}): {_count(len(group), 'run')} ({ids})"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _first_ids(ids: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 5 more``: enough to recognize a group without listing a folder."""
    if len(ids) <= shown + 1:  # "and 1 more" is no shorter than the id itself
        return ", ".join(ids)
    return f"{', '.join(ids[:shown])} and {len(ids) - shown} more"


def _current_test_digest(
    run: RunRecord, hashed: dict[Path, str]
) -> tuple[tuple[Path, str] | None, str]:
    """A run from before ltr recorded its files: the test file of its config as it is now."""
    path = run.test_file
    current = _sha256_now(path, hashed)
    if path is None or current is None:
        missing = "its data.root holds none" if path is None else f"{path} is missing"
        return None, (
            f"cannot check that {run.run_id} was tested on the same file as the others: it "
            f"recorded no sha256 of its test file, and the file is not there ({missing})"
        )
    return (path, current), (
        f"{run.run_id} recorded no sha256 of its test file (trained before ltr recorded them): "
        f"checked with {path} as it is now"
    )


def _sha256_now(path: Path | None, hashed: dict[Path, str]) -> str | None:
    """sha256 of the file at ``path`` now (memoized in ``hashed``); None when there is none."""
    if path is None or not path.is_file():
        return None
    resolved = path.resolve()
    if resolved not in hashed:
        hashed[resolved] = file_sha256(resolved)
    return hashed[resolved]


def _check_no_relevant(runs: Sequence[RunRecord], names: Sequence[str]) -> None:
    """Refuse runs whose no-relevant policies differ on a compared column: every metric, and
    the paired queries, depend on it, unless the column's brackets fix it
    (``ndcg@10[no_relevant=zero]``, ``ndcg@10[preset=letor]``)."""
    depending = [name for name in names if _policy_of(name, "?") == "?"]
    # "zero" is the default of ltr.config.EvaluationConfig: a run that records none used it
    groups: dict[str, list[RunRecord]] = {}  # policy -> its runs, in the order given
    for run in runs:
        groups.setdefault(run.conventions.get("no_relevant", "zero"), []).append(run)
    if len(groups) > 1 and depending:
        by_size = sorted(groups.items(), key=lambda item: len(item[1]), reverse=True)
        described = "; ".join(
            f"no_relevant={policy}: {', '.join(run.run_id for run in group)}"
            for policy, group in by_size
        )
        fix = "compare runs evaluated alike"
        if len(by_size[0][1]) > 1:
            command = " ".join(shlex.quote(str(run.path)) for run in by_size[0][1])
            fix += f", e.g. ltr compare {command}"
        fixed = "ndcg@10[no_relevant=zero]"
        raise ConfigError(
            f"runs evaluated under {len(groups)} different evaluation.no_relevant policies "
            f"cannot be compared ({described}) on {', '.join(depending)}: NDCG, MAP and MRR all "
            f"depend on it; {fix}, or compare on columns that fix the policy: --metric "
            f"'{fixed}' --metrics '{fixed},{FIXED_GAIN_METRIC}'"
        )


def _policy_of(name: str, configured: str) -> str:
    """The no-relevant policy of a column: its brackets', else the run's ``configured`` one."""
    bracket = split_report_name(name)[1]
    if "preset" in bracket:
        return str(PRESETS[bracket["preset"]].get("no_relevant", "zero"))
    return bracket.get("no_relevant", configured)


def _gain_groups(runs: Sequence[RunRecord]) -> dict[str, list[str]]:
    """NDCG gain -> ids of the runs evaluated with it (exp2, the default, when none recorded)."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(str(run.conventions.get("gain", "exp2")), []).append(run.run_id)
    return groups


def _reads_configured_gain(name: str) -> bool:
    """Whether ``name``'s values depend on the run's ``evaluation.gain``: NDCG and DCG, unless
    a preset in brackets fixes the gain (``ndcg@10[preset=letor]``)."""
    base, bracket = split_report_name(name)
    return "preset" not in bracket and reads_gain([base])


def _describe_gains(gains: dict[str, list[str]]) -> str:
    return "; ".join(f"{gain}: {_first_ids(ids)}" for gain, ids in gains.items())


def _gain_notes(gains: dict[str, list[str]], mixed: Sequence[str], metric: str) -> list[str]:
    """Why NDCG columns have no best mark (and the tests are n/a) when gains differ."""
    if not mixed:
        return []
    tested = f", and the paired tests on {metric} are n/a" if metric in mixed else ""
    return [
        f"runs use different NDCG gains ({_describe_gains(gains)}): {', '.join(mixed)} measure "
        f"different things in them, so no best is marked there{tested}; MAP and MRR do not "
        f"depend on the gain. Compare NDCG on the column of one gain in every run: --metric "
        f"'{FIXED_GAIN_METRIC}' --metrics '{FIXED_GAIN_METRIC},map,mrr'"
    ]


def _cv_dict(cv: RunRecord, metrics: Sequence[str]) -> dict[str, Any]:
    """A cv's folds and cv.json's mean of fold means, beside its (pooled) ``test`` means."""
    summary = cv.report.get("metrics") or {}
    return {
        "folds": list(cv.folds),
        "mean_of_fold_means": {name: (summary.get(name) or {}).get("mean") for name in metrics},
    }


def _test_dict(test: BaselineTest) -> dict[str, Any]:
    wtl = test.win_tie_loss
    counts = {"wins": None, "ties": None, "losses": None} if wtl is None else wtl._asdict()
    return {
        "metric": test.metric,
        "queries": test.n,
        "mean_diff": test.mean_diff,
        "t_test": _result_dict(test.t_test),
        "randomization": _result_dict(test.randomization),
        "p_t_test_holm": test.p_t_test_holm,
        "p_randomization_holm": test.p_randomization_holm,
        **counts,
    }


def _result_dict(result: TestResult) -> dict[str, Any]:
    return {
        "statistic": result.statistic,
        "p_value": result.p_value,
        "ci95": [result.ci_low, result.ci_high],
    }


def _require(run_dir: Path, name: str) -> None:
    if not (run_dir / name).is_file():
        raise DataNotFoundError(
            f"{run_dir} is not a finished run: it has no {name} (a run of `ltr train` holds "
            f"{', '.join(RUN_FILES)})"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise DataFormatError(path, None, f"invalid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise DataFormatError(path, None, "expected a mapping (the resolved experiment config)")
    return loaded


def _read_per_query(path: Path) -> tuple[NDArray[np.str_], dict[str, NDArray[np.float64]]]:
    """``test_per_query.tsv``: a ``qid<TAB>metric...`` header, then one row per query."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if not header or header[0] != "qid" or len(header) < 2:
        raise DataFormatError(path, 1, "expected a header `qid<TAB>metric...`")
    qids, rows = [], []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataFormatError(path, number, f"expected {len(header)} fields; got {len(cells)}")
        try:
            rows.append([float(cell) for cell in cells[1:]])
        except ValueError as error:
            raise DataFormatError(path, number, f"not a number: {error}") from None
        qids.append(cells[0])
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(header) - 1)
    per_query = {name: values[:, i].copy() for i, name in enumerate(header[1:])}
    return np.array(qids, dtype=np.str_), per_query
