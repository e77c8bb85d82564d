"""Training: the one loop (:mod:`.trainer`), checkpoints (:mod:`.checkpoint`), the
experiment that ties data, model, loss and run directory together (:mod:`.experiment`) and its
cross-validation over folds (:mod:`.crossval`)."""

from ltr.training.checkpoint import load_checkpoint, save_checkpoint
from ltr.training.crossval import resume_cv, run_cv
from ltr.training.distributed import Distributed
from ltr.training.experiment import load_run_config, run_experiment
from ltr.training.trainer import (
    Loaders,
    TrainResult,
    TrainState,
    evaluate_model,
    make_optimizer,
    make_scheduler,
    score_data,
    train,
)

__all__ = [
    "Distributed",
    "Loaders",
    "TrainResult",
    "TrainState",
    "evaluate_model",
    "load_checkpoint",
    "load_run_config",
    "make_optimizer",
    "make_scheduler",
    "resume_cv",
    "run_cv",
    "run_experiment",
    "save_checkpoint",
    "score_data",
    "train",
]
