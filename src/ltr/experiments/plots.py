"""Figures of a comparison: training curves, and test metrics with confidence intervals.

``ltr compare --plot FILE.png`` writes two figures rather than one crowded canvas: ``FILE.png``
(:func:`plot_test_metrics`, the numbers the table shows) and ``FILE-curves.png``
(:func:`plot_training_curves`, how each run got there). Both are written atomically, in the
format the file's suffix names (``.png`` usually; ``.svg`` and ``.pdf`` work too).

Legibility rules: 12-point text, one colour *and* one marker per run (readable in grey and by
colour-blind readers), the legend below the panels so it never hides a line, run ids in full.
Figures are drawn on a plain :class:`matplotlib.figure.Figure` (Agg canvas): no pyplot state,
no display, safe in a server or a test.

matplotlib comes with the ``tracking`` extra (``pip install 'ltr[tracking]'``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ltr._extras import require_extra
from ltr._fs import atomic_path
from ltr.errors import ConfigError
from ltr.evaluation import skipped_queries_note
from ltr.experiments.compare import DEFAULT_METRICS, RunRecord
from ltr.experiments.significance import ConfidenceInterval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "curves_path",
    "drawn_interval",
    "metrics_plot_title",
    "plot_test_metrics",
    "plot_training_curves",
    "training_curves_figure",
]

# matplotlib's tab10 (colour-blind-aware ordering), a marker and a dash per run
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_DASHES = ("-", "--", "-.", ":")
_STYLE: dict[Any, Any] = {
    "font.size": 12,
    "axes.titlesize": 14,
    "axes.labelsize": 12,
    "legend.fontsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_DPI = 150
# best-epoch stars: 20 points wide; neighbours that would cover each other move 12 points
# apart, so each shows its colour beside the other (overlap: within 6% of the axis, a star's
# height on the 6-inch-high panel)
_STAR_POINTS = 20
_STAR_STEP_POINTS = 12.0
_STAR_OVERLAP = 0.06


def curves_path(path: str | Path) -> Path:
    """Where ``--plot FILE.png`` puts the training curves: ``FILE-curves.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-curves{path.suffix}")


def plot_training_curves(
    runs: Sequence[RunRecord], path: str | Path, *, metric: str = "ndcg@10"
) -> Path:
    """Write :func:`training_curves_figure` to ``path``.

    Returns:
        ``path``, written atomically.
    """
    return _save(training_curves_figure(runs, metric=metric), path)


def training_curves_figure(runs: Sequence[RunRecord], *, metric: str = "ndcg@10") -> Figure:
    """Two panels, one line per run: training loss per epoch, and validation ``metric`` per
    epoch with each run's best epoch (the checkpoint it was tested with) marked by a star.

    Runs trained with different losses have losses on unrelated scales and signs (MSE vs
    ListNet's cross entropy vs ApproxNDCG's negative NDCG); the left panel then shows each run's
    change since its first epoch, in percent of that epoch's magnitude (down = the loss fell),
    and says so on its axis. A run whose history lacks ``valid_<metric>`` has no line on the right;
    a run without epochs (``ltr ensemble``) shows its validation value as a dashed level. A cv's
    line is the mean over its folds (:mod:`ltr.experiments.cv_record`), without a best epoch.
    Stars that would cover each other (same best epoch, close values) stand side by side.
    """
    relative = len({run.loss for run in runs}) > 1
    over_folds = ", mean over folds" if any(run.folds for run in runs) else ""
    with _style():
        figure, (loss_ax, valid_ax) = _figure(ncols=2, width=14.0)
        best_points: list[tuple[int, int, float]] = []  # (run index, best epoch, its value)
        for i, run in enumerate(runs):
            epochs = [int(record["epoch"]) for record in run.history]
            losses = [_num(record.get("train_loss")) for record in run.history]
            if relative and losses and math.isfinite(losses[0]) and losses[0] != 0.0:
                losses = [100.0 * (value - losses[0]) / abs(losses[0]) for value in losses]
            loss_ax.plot(epochs, losses, label=_label(run), **_line_style(i))
            values = [_num(record.get(f"valid_{metric}")) for record in run.history]
            untrained = (run.report.get("valid") or {}).get(metric)
            if not run.history and untrained is not None:  # an ensemble: one value, no epochs
                valid_ax.axhline(_num(untrained), linestyle="--", color=_color(i), linewidth=2.0)
                continue
            if all(math.isnan(v) for v in values):
                continue
            valid_ax.plot(epochs, values, **_line_style(i))
            if run.best_epoch in epochs:
                best_points.append((i, run.best_epoch, values[epochs.index(run.best_epoch)]))
        _star_best_epochs(figure, valid_ax, best_points)
        if relative:
            loss_ax.set_title(
                f"Training loss{over_folds}, change since epoch 1 (the runs' losses differ)"
            )
            loss_ax.set_ylabel("change in train loss (% of epoch 1)")
            loss_ax.axhline(0.0, color="0.5", linewidth=1.0, zorder=0)
        else:
            loss_ax.set_title(f"Training loss{over_folds}")
            loss_ax.set_ylabel("train loss")
        starred = any(run.best_epoch is not None for run in runs)  # a cv's mean has none
        star_note = "  (★ = best epoch)" if starred else ""
        valid_ax.set_title(f"Validation {metric.upper()}{over_folds}{star_note}")
        valid_ax.set_ylabel(metric.upper())
        for ax in (loss_ax, valid_ax):
            _integer_epochs(ax)
            ax.margins(x=0.05)  # room for the best-epoch star at the last epoch
        _legend_below(figure, loss_ax)
        return figure


def _star_best_epochs(
    figure: Figure, ax: Axes, best_points: Sequence[tuple[int, int, float]]
) -> None:
    """A star in the run's colour, outlined, at each (run index, epoch, value); stars of one
    epoch whose values are closer than a star's height stand side by side, centred on it."""
    from matplotlib.transforms import offset_copy

    low, high = ax.get_ylim()  # autoscaled to the lines drawn so far
    close = _STAR_OVERLAP * (high - low)
    for group in _overlapping(best_points, close):
        for j, (i, epoch, value) in enumerate(group):
            shift = (j - (len(group) - 1) / 2) * _STAR_STEP_POINTS
            ax.plot(
                [epoch], [value], marker="*", markersize=_STAR_POINTS, color=_color(i),
                markeredgecolor="black", markeredgewidth=1.0, linestyle="none", zorder=5,
                transform=offset_copy(ax.transData, fig=figure, x=shift, units="points"),
            )  # fmt: skip


def _overlapping(
    points: Sequence[tuple[int, int, float]], close: float
) -> list[list[tuple[int, int, float]]]:
    """``points`` in groups: same epoch, each value within ``close`` of the previous one."""
    groups: list[list[tuple[int, int, float]]] = []
    for point in sorted(points, key=lambda p: (p[1], p[2], p[0])):
        last = groups[-1][-1] if groups else None
        if last is not None and last[1] == point[1] and point[2] - last[2] <= close:
            groups[-1].append(point)
        else:
            groups.append([point])
    return groups


def plot_test_metrics(
    runs: Sequence[RunRecord],
    path: str | Path,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    confidence: float = 0.95,
) -> Path:
    """Dot-and-whisker chart of test metrics: for each metric a group with one dot per run (its
    mean over test queries) and a whisker (the t-based ``confidence`` interval of that mean over
    queries; NaN queries dropped; clipped to the metric's range, [0, 1] but for DCG, while the
    JSON of ``ltr compare`` gives it unclipped; none for a single value). Overlapping whiskers
    do not mean "no difference": the paired tests of ``ltr compare`` are the sharper
    instrument, this shows spread and scale.

    Returns:
        ``path``, written atomically.
    """
    width = max(9.0, 1.5 + 0.4 * len(runs) * len(metrics))
    with _style():
        figure, (ax,) = _figure(ncols=1, width=min(width, 15.0))
        group = 0.8  # share of a metric's slot taken by its dots
        step = group / len(runs)
        for i, run in enumerate(runs):
            offsets = [m - group / 2 + step * (i + 0.5) for m in range(len(metrics))]
            intervals = [drawn_interval(run, name, confidence) for name in metrics]
            means = [ci.mean for ci in intervals]
            errors = [
                [ci.mean - ci.low for ci in intervals],
                [ci.high - ci.mean for ci in intervals],
            ]
            ax.errorbar(
                offsets, means, yerr=errors, label=_label(run), color=_color(i),
                marker=_MARKERS[i % len(_MARKERS)], markersize=8, linestyle="none",
                capsize=4, elinewidth=1.8, capthick=1.8,
            )  # fmt: skip
        ax.set_xticks(range(len(metrics)), [name.upper() for name in metrics])
        for boundary in range(1, len(metrics)):
            ax.axvline(boundary - 0.5, color="0.8", linewidth=1.0)
        ax.set_xlim(-0.5, len(metrics) - 0.5)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(f"test value (mean, {confidence:.0%} CI)")
        ax.set_title(metrics_plot_title(runs, metrics, confidence=confidence))
        _legend_below(figure, ax)
        return _save(figure, path)


def drawn_interval(run: RunRecord, metric: str, confidence: float) -> ConfidenceInterval:
    """``run``'s interval of ``metric`` clipped to the metric's range (all but DCG lie in
    [0, 1]); NaN bounds (no whisker drawn) where there is no interval (fewer than 2 values)."""
    ci = run.interval(metric, confidence=confidence)
    high = math.inf if metric.startswith("dcg") else 1.0
    return ConfidenceInterval(ci.mean, max(ci.low, 0.0), min(ci.high, high))


def metrics_plot_title(
    runs: Sequence[RunRecord], metrics: Sequence[str], *, confidence: float = 0.95
) -> str:
    """The title of :func:`plot_test_metrics`: the queries the means are over, and how many
    were skipped (``no_relevant="skip"``) when some were."""
    n = len(runs[0].query_ids) if runs else 0
    pooled = " of all folds" if any(run.folds for run in runs) else ""
    averaged = [int(np.isfinite(run.per_query[name]).sum()) for run in runs for name in metrics]
    skipped = skipped_queries_note(n, averaged)
    over = (
        f" on {n:,} queries{pooled}: {skipped}" if skipped else f": mean over {n:,} queries{pooled}"
    )
    return f"Test metrics{over}, whiskers: {confidence:.0%} confidence interval"


def _figure(*, ncols: int, width: float) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure  # _style, entered first, checked it is installed

    figure = Figure(figsize=(width, 6.0), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with require_extra("tracking"):
        import matplotlib

    with matplotlib.rc_context(_STYLE):
        yield


def _legend_below(figure: Figure, ax: Axes) -> None:
    """One legend for the whole figure, under the panels: it never covers a line."""
    handles, labels = ax.get_legend_handles_labels()
    ncol = 1 if max((len(label) for label in labels), default=0) > 60 else 2
    figure.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(labels) or 1))


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in figure.canvas.get_supported_filetypes():
        raise ConfigError(f"--plot {path}: cannot write .{fmt} images; use a .png file name")
    with atomic_path(path) as tmp:
        # tight: the image grows to hold a legend wider than the panels, never cuts it
        figure.savefig(tmp, format=fmt, dpi=_DPI, bbox_inches="tight", pad_inches=0.1)
    return path


def _integer_epochs(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _label(run: RunRecord) -> str:
    return f"{run.run_id}  ({run.model}, {run.loss})"


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _line_style(i: int) -> dict[str, Any]:
    return {
        "color": _color(i),
        "marker": _MARKERS[i % len(_MARKERS)],
        "linestyle": _DASHES[(i // len(_COLORS)) % len(_DASHES)],  # a new dash per 10 colours
        "linewidth": 2.0,
        "markersize": 6,
    }


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)
