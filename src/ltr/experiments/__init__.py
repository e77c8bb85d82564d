"""Experiment runs and what is done with them: the run directory and its trackers (TensorBoard,
MLflow), comparisons with significance tests and plots, and hyper-parameter search."""

from ltr.experiments.tracking import Run, TensorBoardTracker, Tracker

__all__ = ["Run", "TensorBoardTracker", "Tracker"]
