"""The compare figures keep a legend of long run names whole inside the image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ltr.experiments.compare import RunRecord, scan_runs
from ltr.experiments.plots import plot_test_metrics, plot_training_curves
from support.tiny_runs import tiny_run, write_tiny_data

# the README's three runs: labels under 60 characters share a row of the legend
NAMES = [
    "20261122-165057-exp003_lambdarank",
    "20261122-165113-exp002_listnet",
    "20261122-165122-exp001_ranknet",
]


@pytest.fixture(scope="module")
def long_named_runs(tmp_path_factory: pytest.TempPathFactory) -> list[RunRecord]:
    root = tmp_path_factory.mktemp("legend")
    data = write_tiny_data(root / "data", seed=4)
    tiny_run(data, root / "runs", "experiment.name=a", training={"num_epochs": 1})
    (run,) = scan_runs(root / "runs")[0]
    return [dataclasses.replace(run, run_id=name) for name in NAMES]


def ink_at_edges(path: Path) -> list[str]:
    """The image edges that hold anything but the white background: a cut legend does."""
    from matplotlib.image import imread

    pixels = imread(path)[..., :3]
    edges = {"left": pixels[:, 0], "right": pixels[:, -1], "top": pixels[0], "bottom": pixels[-1]}
    return [name for name, line in edges.items() if (line < 0.99).any()]


@pytest.mark.parametrize("plot", [plot_test_metrics, plot_training_curves])
def test_legend_of_long_run_names_stays_inside_the_image(
    plot: object, long_named_runs: list[RunRecord], tmp_path: Path
) -> None:
    path = plot(long_named_runs, tmp_path / "cmp.png")  # type: ignore[operator]
    assert ink_at_edges(path) == []
