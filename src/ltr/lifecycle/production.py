"""Going live: a validated model against the one ``models/current`` serves.

``ltr promote RUN --to production`` compares the validated model with the live one on the
gate's metric (``promotion.metric`` of the model's config, ndcg@10 by default), each as its
``metrics.json`` recorded it on the test file. The numbers are comparable only when both were
tested on the same file (same sha256) under the same metric conventions; then a live model with
a higher value is replaced only when the caller forces it. When they cannot be compared (other
test files, other conventions, a value not recorded, a live bundle that cannot be read), the
promotion goes on and the caller says why. The comparison, or the reason there was none, goes
into the promotion's event in ``models/history.json`` (:meth:`LiveComparison.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ltr.config import PromotionConfig, load_config
from ltr.errors import LtrError
from ltr.lifecycle.registry import ValidatedModel
from ltr.lifecycle.store import ModelStore

__all__ = ["NOTHING_LIVE", "LiveComparison", "compare_with_live"]

NOTHING_LIVE = "nothing is live"  # the one reason not to compare that needs no warning


@dataclass(frozen=True)
class LiveComparison:
    """The candidate against the live model on one test metric, or why they were not compared.

    Attributes:
        metric: the candidate's gate metric, e.g. ``ndcg@10``.
        live_version: the live version; None when nothing is live.
        live_name: the live model's registry name (else its experiment), when recorded.
        live_value: the live model's test value of ``metric``; None when not compared.
        candidate_value: the candidate's; None when not compared.
        not_compared: why the two were not compared; None when they were.
    """

    metric: str
    live_version: str | None
    live_name: str | None = None
    live_value: float | None = None
    candidate_value: float | None = None
    not_compared: str | None = None

    @property
    def live_is_better(self) -> bool:
        if self.live_value is None or self.candidate_value is None:
            return False
        return self.live_value > self.candidate_value

    @property
    def live(self) -> str:
        """``live 1.2.0 (exp002_listnet)``; ``the live model`` when its version is unknown."""
        if self.live_version is None:
            return "the live model"
        return f"live {self.live_version}" + (f" ({self.live_name})" if self.live_name else "")

    @property
    def verdict(self) -> str:
        """``live 1.2.0 (exp002_listnet) has ndcg@10 0.7990 > 0.7810 on the same test file``."""
        return (
            f"{self.live} has {self.metric} {self.live_value:.4f} > {self.candidate_value:.4f} "
            "on the same test file"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, as a promotion to production records them (``compared_with_live``);
        ``not_compared`` says why the values are missing when they are."""
        return {
            "metric": self.metric,
            "live_version": self.live_version,
            "live_name": self.live_name,
            "live_value": self.live_value,
            "candidate_value": self.candidate_value,
            "not_compared": self.not_compared,
        }


def compare_with_live(store: ModelStore, candidate: ValidatedModel) -> LiveComparison | None:
    """Compare ``candidate`` with ``store``'s live model; see the module docstring.

    Returns:
        The comparison (``not_compared`` says why there was none); None when the candidate's
        version is the live one already, so nothing would change.
    """
    metric = _gate_metric(candidate)
    try:
        live_version = store.current()
    except LtrError as error:  # a corrupt pointer: nothing readable is live
        return LiveComparison(metric, None, not_compared=f"the live model cannot be read: {error}")
    if live_version is None:
        return LiveComparison(metric, None, not_compared=NOTHING_LIVE)
    if live_version == candidate.version:
        return None
    try:
        bundle = store.read(live_version)  # metadata only: going live verifies the candidate
    except LtrError as error:
        unreadable = f"the live model cannot be read: {error}"
        return LiveComparison(metric, live_version, not_compared=unreadable)
    validated = bundle.metadata.get("validated") or {}
    live_name = validated.get("name") or bundle.metadata.get("experiment")
    metrics = bundle.metrics  # the source run's metrics.json
    live = _Recorded(metrics.get("test"), metrics.get("conventions"), metrics.get("data"))
    facts = candidate.metadata
    ours = _Recorded(
        (facts.get("metrics") or {}).get("default"),
        (facts.get("conventions") or {}).get("default"),
        facts.get("data"),
    )
    why = _why_not_comparable(metric, live, ours)
    if why is not None:
        return LiveComparison(metric, live_version, live_name, not_compared=why)
    return LiveComparison(
        metric, live_version, live_name, float(live.test[metric]), float(ours.test[metric])
    )


class _Recorded(NamedTuple):
    """What one model recorded of its test: any part may be missing or malformed."""

    test: Any  # {metric: value}
    conventions: Any  # {gain, no_relevant}
    data: Any  # {"test": {path, sha256}, ...}

    @property
    def test_file(self) -> dict[str, Any]:
        test_file = self.data.get("test") if isinstance(self.data, dict) else None
        return test_file if isinstance(test_file, dict) else {}


def _why_not_comparable(metric: str, live: _Recorded, ours: _Recorded) -> str | None:
    sides = (("the live model", live), ("the candidate", ours))
    for who, recorded in sides:
        test = recorded.test
        if not isinstance(test, dict) or not isinstance(test.get(metric), (int, float)):
            return f"{who} records no test {metric}"
    for who, recorded in sides:
        if not recorded.test_file.get("sha256"):
            return f"the sha256 of {who}'s test file is not recorded"
    theirs, mine = live.test_file, ours.test_file
    if theirs["sha256"] != mine["sha256"]:
        return (
            f"the test files differ (live: {theirs.get('path')} sha256 {theirs['sha256'][:12]}, "
            f"candidate: {mine.get('path')} sha256 {mine['sha256'][:12]})"
        )
    if not isinstance(live.conventions, dict) or live.conventions != ours.conventions:
        conventions = f"live: {live.conventions}, candidate: {ours.conventions}"
        return f"the metric conventions differ ({conventions})"
    return None


def _gate_metric(candidate: ValidatedModel) -> str:
    """``promotion.metric`` of the config the candidate was validated with."""
    try:
        return load_config(candidate.path / "config.yaml").promotion.metric
    except LtrError:  # a config this ltr cannot read: the gate's default
        return PromotionConfig().metric
