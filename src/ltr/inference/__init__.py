"""Offline inference: score LETOR files with a trained checkpoint (scores or TREC runs)."""

from ltr.inference.predictor import OutputFormat, Predictor, predict_file

__all__ = ["OutputFormat", "Predictor", "predict_file"]
