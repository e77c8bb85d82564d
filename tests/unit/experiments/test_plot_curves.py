"""The training-curves figure, read from its matplotlib artists rather than its pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ltr.experiments.compare import RunRecord
from ltr.experiments.plots import training_curves_figure

pytest.importorskip("matplotlib")


def record(run_id: str, valid: list[float], best_epoch: int) -> RunRecord:
    """A run as :func:`~ltr.experiments.compare.load_run` reads it: history and best epoch."""
    history = [
        {"epoch": epoch, "train_loss": 1.0 / epoch, "valid_ndcg@10": value}
        for epoch, value in enumerate(valid, start=1)
    ]
    config: dict[str, Any] = {"model": {"name": "mlp"}, "loss": {"name": run_id}}
    report = {"best_epoch": best_epoch, "test": {}}
    return RunRecord(Path(run_id), run_id, config, history, report, np.array([]), {})


def test_runs_sharing_best_epoch_and_value_each_show_their_star() -> None:
    runs = [  # the walk-through's case: ranknet and listnet both best at epoch 3 with 0.47
        record("ranknet", [0.40, 0.45, 0.47, 0.46], best_epoch=3),
        record("listnet", [0.41, 0.44, 0.47, 0.45], best_epoch=3),
        record("lambdarank", [0.30, 0.35, 0.38, 0.39], best_epoch=4),
    ]

    figure = training_curves_figure(runs)

    valid_ax = figure.axes[1]
    figure.canvas.draw()  # settles the layout: pixel positions are final
    stars = {  # colour -> (data point, where it is drawn in pixels)
        line.get_color(): (
            tuple(line.get_xydata()[0]),
            line.get_transform().transform(line.get_xydata())[0],
        )
        for line in valid_ax.lines
        if line.get_marker() == "*"
    }
    run_colours = [valid_ax.lines[i].get_color() for i in range(3)]  # each run's line first...
    assert sorted(stars) == sorted(run_colours)  # ... one star per run, in its colour
    (ranknet, ranknet_px), (listnet, listnet_px), (lambdarank, lambdarank_px) = (
        stars[colour] for colour in run_colours
    )
    assert ranknet == listnet == (3.0, 0.47)  # both stars stand for the same point ...
    half_star_px = 10 * figure.dpi / 72  # a star is 20 points wide
    assert abs(ranknet_px[0] - listnet_px[0]) >= half_star_px  # ... and are drawn apart
    assert ranknet_px[1] == pytest.approx(listnet_px[1])
    assert (ranknet_px[0] + listnet_px[0]) / 2 == pytest.approx(
        valid_ax.transData.transform(ranknet)[0]
    )  # centred on it
    assert lambdarank == (4.0, 0.39)  # a star nobody covers stays on its point
    assert lambdarank_px == pytest.approx(valid_ax.transData.transform(lambdarank))
