"""Experiment runs: the run directory and its trackers (TensorBoard; MLflow later)."""

from ltr.experiments.tracking import Run, TensorBoardTracker, Tracker

__all__ = ["Run", "TensorBoardTracker", "Tracker"]
