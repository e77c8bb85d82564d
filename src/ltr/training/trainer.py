"""The training loop: one function, read top to bottom, for every scorer and every loss.

Conventions:

- Epochs are counted from 1 in everything a person reads (progress lines, ``training_history.json``,
  TensorBoard steps, ``best_epoch``); the loop variable ``epoch`` is 0-based and is what the data
  loader (``set_epoch``) and the schedulers see.
- Validation scores *every* document of the validation file (eval mode, no gradient) and hands
  the scores to :func:`ltr.evaluation.evaluate_scores`, the code behind ``ltr evaluate``, so
  training-time numbers and later evaluations cannot drift apart.
- Early stopping watches ``training.early_stopping_metric`` (higher is better). An epoch improves
  when its value beats the best so far (strictly); training stops once more than
  ``early_stopping_patience`` epochs in a row have not improved (patience 0 stops at the first
  epoch that does not improve). ``checkpoints/best.pt`` holds the best epoch, ``last.pt`` the last.
- Learning-rate schedules step once per epoch, after validation (:func:`make_scheduler`).
- Reproducibility: the caller seeds torch before building the model; batch order and list
  sampling come from ``(seed, epoch)`` (the loader), and the torch RNG state (dropout) is saved
  in every checkpoint. Resuming from ``last.pt`` therefore ends with the same weights as an
  uninterrupted run.
- Distributed training (``dist``, see :mod:`ltr.training.distributed`): the loader holds this
  rank's shard, the forward/backward pass goes through a DDP wrapper (checkpoints and validation
  use the unwrapped model), the epoch loss is averaged over ranks, each rank scores its shard of
  the validation queries and the scores are summed across ranks, and rank 0's early-stopping
  value is broadcast, so every rank stops (and steps the schedule) alike. Only rank 0's
  :class:`~ltr.experiments.Run` writes and only rank 0 prints.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from ltr._console_log import run_console
from ltr._signals import raise_if_interrupted
from ltr.config import EvaluationConfig, SchedulerConfig, TrainingConfig
from ltr.data.dataset import Batch, BatchLoader, QueryDataset
from ltr.data.letor import LetorData
from ltr.errors import DivergedError, LtrError
from ltr.evaluation import Evaluation, evaluate_scores
from ltr.losses import LossFn
from ltr.training.distributed import Distributed

if TYPE_CHECKING:
    from ltr.experiments.tracking import Run

logger = logging.getLogger(__name__)

__all__ = [
    "Loaders",
    "Scheduler",
    "TrainResult",
    "TrainState",
    "cosine_with_warmup",
    "evaluate_model",
    "make_optimizer",
    "make_scheduler",
    "score_data",
    "train",
    "validation_metrics",
]

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


@dataclass
class Loaders:
    """What :func:`train` reads.

    Attributes:
        train: training batches (this rank's shard in a distributed job); :func:`train` calls
            ``set_epoch`` before each epoch.
        valid: the (normalized) validation data, scored whole after every epoch.
    """

    train: BatchLoader
    valid: LetorData


@dataclass
class TrainState:
    """Progress of a run; saved in every checkpoint, so a resumed run picks up exactly here.

    Attributes:
        epoch: epochs completed.
        best_epoch: 1-based epoch with the best validation value (None before the first).
        best_value: that value.
        epochs_since_best: epochs completed since the best one.
        stopped_early: patience ran out; a resumed run trains further only with a patience
            of at least ``epochs_since_best``.
        history: one record per completed epoch (see :func:`train`).
    """

    epoch: int = 0
    best_epoch: int | None = None
    best_value: float = math.nan
    epochs_since_best: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, value: float) -> bool:
        """Count one more completed epoch with validation ``value``; True if it is the best.

        The first epoch is always the best so far; NaN never beats a number.
        """
        self.epoch += 1
        improved = (
            self.best_epoch is None
            or value > self.best_value
            or (math.isnan(self.best_value) and not math.isnan(value))
        )
        if improved:
            self.best_epoch, self.best_value, self.epochs_since_best = self.epoch, value, 0
        else:
            self.epochs_since_best += 1
        return improved

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint's ``state``; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> TrainState:
        return cls(**{**obj, "history": [dict(record) for record in obj["history"]]})


@dataclass(frozen=True)
class TrainResult:
    """How a call to :func:`train` ended.

    Attributes:
        best_epoch: 1-based epoch of ``checkpoints/best.pt``.
        best_value: its validation value of ``early_stopping_metric``.
        epochs: epochs completed in total (including those before a resume).
        stopped_early: patience ran out before ``num_epochs``.
        history: one record per epoch, as in ``training_history.json``.
        best_checkpoint: path of ``best.pt``.
    """

    best_epoch: int | None
    best_value: float
    epochs: int
    stopped_early: bool
    history: list[dict[str, Any]]
    best_checkpoint: Path


def train(
    model: nn.Module,
    loss_fn: LossFn,
    loaders: Loaders,
    cfg: TrainingConfig,
    run: Run,
    *,
    evaluation: EvaluationConfig | None = None,
    meta: Mapping[str, Any] | None = None,
    resume_from: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
    quiet: bool = False,
    dist: Distributed | None = None,
) -> TrainResult:
    """Train ``model`` with ``loss_fn``, validate every epoch, keep the best epoch.

    Every epoch writes ``checkpoints/last.pt`` (and ``best.pt`` when it improves),
    ``training_history.json`` (records ``epoch``, ``train_loss``, ``lr``, ``valid_<metric>``...,
    ``seconds``) and TensorBoard scalars ``train/loss``, ``train/lr``, ``valid/<metric>``, all
    through ``run``; it prints ``Epoch 2/100: loss=0.4210, val_ndcg@10=0.5120 (best)``.

    Args:
        model: a scorer ``(features [B, L, F], mask [B, L]) -> scores [B, L]``, seeded and built
            by the caller.
        loss_fn: ``(scores, labels, mask) -> scalar``, lower is better.
        loaders: training batches and validation data.
        cfg: the ``training`` section (optimizer, schedule, clipping, epochs, early stopping).
        run: where files and metrics go.
        evaluation: validation metrics and conventions; the early-stopping metric is always
            computed too.
        meta: stored in every checkpoint: ``config`` (resolved), ``normalizer``, ``n_features``.
        resume_from: a checkpoint dict (``last.pt``) to continue from.
        device: where the model and the batches live.
        quiet: no progress bar and no epoch lines (always quiet on ranks other than 0).
        dist: this process's place in a distributed job (inside its process group); None for
            one process.

    Returns:
        :class:`TrainResult` (the same on every rank).

    Raises:
        DivergedError: the training loss or, after an epoch, a weight (or averaged weight)
            became NaN or infinite.
    """
    evaluation = evaluation or EvaluationConfig()
    metrics = validation_metrics(evaluation, cfg)
    conventions = {"gain": evaluation.gain, "no_relevant": evaluation.no_relevant}
    meta = {"config": None, "normalizer": None, "n_features": None, **(meta or {})}
    dist = dist or Distributed()
    console = run_console(quiet=quiet or not dist.is_main, stderr=True)  # quiet: to train.log
    model.to(device)
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = make_scheduler(cfg.scheduler, optimizer, cfg.num_epochs)
    state = TrainState()
    averaged = None if cfg.weight_averaging is None else WeightAverage(model, cfg.weight_averaging)
    if resume_from is not None:
        state = _restore(resume_from, model, optimizer, scheduler, averaged, dist)
        if state.stopped_early and state.epochs_since_best <= cfg.early_stopping_patience:
            state.stopped_early = False  # resumed with more patience: training goes on
    net = dist.wrap(model, device)  # DDP in a distributed job: it trains; `model` is saved
    first_epoch = cfg.num_epochs if state.stopped_early else state.epoch
    for epoch in range(first_epoch, cfg.num_epochs):
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])  # the rate this epoch trains with
        net.train()
        loaders.train.set_epoch(epoch)
        running = torch.zeros((), device=device)
        with _progress(console, len(loaders.train), f"Epoch {epoch + 1}/{cfg.num_epochs}") as tick:
            for batch in loaders.train:
                raise_if_interrupted()  # where a stop held back (ltr tune) takes effect
                loss = train_step(
                    net, loss_fn, optimizer, batch.to(device), cfg.grad_clip, cfg.feature_noise
                )
                if averaged is not None:
                    averaged.update(model)
                running += loss  # stays a tensor: .item() would sync every batch
                tick()
        train_loss = dist.average(float(running) / max(len(loaders.train), 1))
        if not math.isfinite(train_loss):
            raise DivergedError(
                f"training diverged: the mean training loss of epoch {epoch + 1} is {train_loss}; "
                "lower training.learning_rate or set training.grad_clip"
            )
        # the epoch's last step comes after its last loss: its weights are checked before any
        # of them is validated or saved
        for which, weights in (("weights", model), ("averaged weights", averaged)):
            broken = [] if weights is None else _non_finite(weights)
            if broken:
                raise DivergedError(
                    f"training diverged: the {which} after epoch {epoch + 1} are not finite "
                    f"({', '.join(broken)}); lower training.learning_rate or set "
                    "training.grad_clip"
                )
        scorer = model if averaged is None else averaged.model  # what validates is what is saved
        valid = evaluate_model(
            scorer,
            loaders.valid,
            metrics,
            batch_size=cfg.batch_size,
            device=device,
            dist=dist,
            **conventions,
        ).means
        value = dist.broadcast(valid[cfg.early_stopping_metric])  # one decision on every rank
        if math.isnan(value) and dist.is_main:
            logger.warning(
                "epoch %d: the validation %s (training.early_stopping_metric) is NaN; an epoch "
                "with NaN never beats one with a number",
                epoch + 1,
                cfg.early_stopping_metric,
            )
        _step_scheduler(scheduler, value)
        improved = state.record(value)
        state.stopped_early = state.epochs_since_best > cfg.early_stopping_patience
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "lr": lr,
                **{f"valid_{name}": v for name, v in valid.items()},
                "seconds": time.perf_counter() - started,
            }
        )
        scalars = {"train/loss": train_loss, "train/lr": lr}
        run.log_metrics({**scalars, **{f"valid/{k}": v for k, v in valid.items()}}, epoch + 1)
        checkpoint = _checkpoint(model, optimizer, scheduler, state, meta, averaged, dist)
        run.save_checkpoint("last", checkpoint)
        if improved:  # after last.pt: a stop between the two leaves a last.pt that holds its
            run.save_checkpoint("best", checkpoint)  # best epoch, whence a resume rewrites best.pt
        run.write_json("training_history.json", state.history)
        console.print(
            f"Epoch {epoch + 1}/{cfg.num_epochs}: loss={train_loss:.4f}, "
            f"val_{cfg.early_stopping_metric}={value:.4f}" + (" (best)" if improved else ""),
            highlight=False,
        )
        if state.stopped_early:
            console.print(
                f"Early stop: no improvement for {state.epochs_since_best} epochs; best epoch "
                f"{state.best_epoch} ({cfg.early_stopping_metric}={state.best_value:.4f})",
                highlight=False,
            )
            break
    return TrainResult(
        best_epoch=state.best_epoch,
        best_value=state.best_value,
        epochs=state.epoch,
        stopped_early=state.stopped_early,
        history=state.history,
        best_checkpoint=run.checkpoint_path("best"),
    )


def validation_metrics(evaluation: EvaluationConfig, training: TrainingConfig) -> list[str]:
    """The metrics validation reports: ``evaluation.metrics`` plus the early-stopping metric."""
    return list(dict.fromkeys([*evaluation.metrics, training.early_stopping_metric]))


def train_step(
    net: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    grad_clip: float | None,
    feature_noise: float = 0.0,
) -> Tensor:
    """One optimizer step on ``batch``; returns the detached loss (no host sync).

    ``feature_noise`` > 0 adds Gaussian noise of that standard deviation to the (normalized)
    features of the real documents first: an augmentation that regularizes neural rankers on
    small LETOR sets (Qin et al. 2021, "Are Neural Rankers still Outperformed by GBDT?").
    """
    features = batch.features
    if feature_noise > 0:
        noise = torch.randn_like(features) * feature_noise
        features = features + noise * batch.mask.unsqueeze(-1)
    loss = loss_fn(net(features, batch.mask), batch.labels, batch.mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]  # untyped in torch 2.13 stubs
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


# --------------------------------------------------------------------------------------------
# Evaluation: score every document, then the shared evaluation code
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def score_data(
    model: nn.Module,
    data: LetorData,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    queries: np.ndarray | None = None,
) -> np.ndarray:
    """Score every document of ``data`` in eval mode, batch by batch, in file order.

    Queries go through the model as padded slates of ``batch_size`` queries (grouped by list
    length to keep padding small); each document's score goes back to its row. The model's
    train/eval mode is restored afterwards.

    Args:
        model: a scorer ``(features [B, L, F], mask [B, L]) -> scores [B, L]``.
        data: the documents, already normalized as the model expects.
        batch_size: queries per forward pass.
        device: where the model lives.
        queries: score only these queries (positions in ``data``); the other rows stay 0.

    Returns:
        ``float64 [n_docs]`` (the model's float32 scores, exactly), aligned with ``data``'s rows.
    """
    was_training = model.training
    model.eval()
    scores = np.zeros(data.n_docs, dtype=np.float64)
    dataset = QueryDataset(data, query_indices=queries)
    for batch in dataset.batches(batch_size, bucket_by_length=True):
        out = model(batch.features.to(device), batch.mask.to(device)).float().cpu().numpy()
        mask = batch.mask.numpy()
        starts = data.query_offsets[batch.query_index.numpy()]
        rows = starts[:, None] + np.arange(mask.shape[1])
        scores[rows[mask]] = out[mask]
    model.train(was_training)
    return scores


def evaluate_model(
    model: nn.Module,
    data: LetorData,
    metrics: Iterable[str],
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    dist: Distributed | None = None,
    **conventions: Any,
) -> Evaluation:
    """:func:`score_data`, then :func:`ltr.evaluation.evaluate_scores` with ``conventions``.

    In a distributed job (``dist``) each rank scores its shard of the queries and the scores are
    summed over ranks (every document is scored by one rank and 0 on the others, so the sum is
    exact); every rank then evaluates all of ``data``, as one process would.
    """
    dist = dist or Distributed()
    scores = score_data(model, data, batch_size=batch_size, device=device, queries=dist.shard(data))
    return evaluate_scores(data, dist.sum_array(scores), list(metrics), **conventions)


# --------------------------------------------------------------------------------------------
# Optimizers and learning-rate schedules
# --------------------------------------------------------------------------------------------


def make_optimizer(
    cfg: TrainingConfig, parameters: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    """``adam``, ``adamw`` or ``sgd`` (with ``momentum``) at ``learning_rate``/``weight_decay``."""
    lr, decay = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=cfg.momentum, weight_decay=decay)


def make_scheduler(
    cfg: SchedulerConfig, optimizer: torch.optim.Optimizer, num_epochs: int
) -> Scheduler | None:
    """The per-epoch learning-rate schedule of ``cfg``; None for ``none``.

    With base rate ``lr`` and 0-based epoch ``e``:

    - ``step``: ``lr * gamma ** (e // step_size)``;
    - ``cosine``: :func:`cosine_with_warmup` (linear warm-up, then cosine down to ``min_lr``);
    - ``plateau``: multiply by ``factor`` once the validation metric has not improved (higher
      is better) for more than ``patience`` epochs; never below ``min_lr``.
    """
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
        )
    if cfg.name == "cosine":
        base_lr = float(optimizer.param_groups[0]["lr"])

        def factor(epoch: int) -> float:  # a plain function: LambdaLR then saves no state of it
            lr = cosine_with_warmup(
                epoch,
                num_epochs=num_epochs,
                warmup_epochs=cfg.warmup_epochs,
                base_lr=base_lr,
                min_lr=cfg.min_lr,
            )
            return lr / base_lr

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


def cosine_with_warmup(
    epoch: int, *, num_epochs: int, warmup_epochs: int, base_lr: float, min_lr: float = 0.0
) -> float:
    r"""Learning rate of 0-based ``epoch``: linear warm-up, then half a cosine to ``min_lr``.

    .. math::
        lr(e) = \begin{cases}
            lr_0 \frac{e + 1}{W + 1} & e < W \\
            lr_{min} + \frac{lr_0 - lr_{min}}{2}
                \left(1 + \cos \pi \frac{e - W}{\max(1, E - W)}\right) & e \ge W
        \end{cases}

    with ``W = warmup_epochs`` and ``E = num_epochs``: the warm-up reaches ``base_lr`` at epoch
    ``W``, then the cosine decays towards ``min_lr``.

    >>> [round(cosine_with_warmup(e, num_epochs=5, warmup_epochs=1, base_lr=1.0), 4)
    ...  for e in range(5)]
    [0.5, 1.0, 0.8536, 0.5, 0.1464]
    """
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / (warmup_epochs + 1)
    progress = min((epoch - warmup_epochs) / max(1, num_epochs - warmup_epochs), 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _step_scheduler(scheduler: Scheduler | None, value: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(value)
    elif scheduler is not None:
        scheduler.step()


# --------------------------------------------------------------------------------------------
# Checkpoints and the little state they carry
# --------------------------------------------------------------------------------------------


def _checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None,
    state: TrainState,
    meta: Mapping[str, Any],
    averaged: WeightAverage | None = None,
    dist: Distributed | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (layout in :mod:`ltr.training.checkpoint`).

    With weight averaging, ``model`` holds the averaged weights (what validated, what predicts)
    and ``trained`` the optimizer's own, from which a resumed run continues. In a distributed
    job every rank calls this (it gathers each rank's random state: dropout draws differ per
    rank, and a resume restores each rank's own), and rank 0 writes the result.
    """
    dist = dist or Distributed()
    extra = {} if averaged is None else {"trained": model.state_dict(), "averaged": averaged.steps}
    return {
        **meta,
        **extra,
        "epoch": state.epoch,
        "model": model.state_dict() if averaged is None else averaged.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "state": state.to_dict(),
        "rng": _rng_state(),
        "world_size": dist.world_size,
        "rng_ranks": dist.gather_object(torch.get_rng_state()),
    }


def _restore(
    checkpoint: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None,
    averaged: WeightAverage | None = None,
    dist: Distributed | None = None,
) -> TrainState:
    """Load weights (and their average), optimizer, schedule and RNG (each rank its own, when
    the run is resumed by as many processes as trained it); return the run's state."""
    if (averaged is None) != ("averaged" not in checkpoint):
        raise LtrError("the checkpoint was written with another training.weight_averaging")
    if averaged is None:
        model.load_state_dict(checkpoint["model"])
    else:
        model.load_state_dict(checkpoint["trained"])
        averaged.model.load_state_dict(checkpoint["model"])
        averaged.steps = int(checkpoint["averaged"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if (scheduler is None) != (checkpoint["scheduler"] is None):
        raise LtrError("the checkpoint was written with another training.scheduler")
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    _set_rng_state(checkpoint["rng"])
    dist = dist or Distributed()
    trained_by = checkpoint.get("world_size")  # None: a checkpoint from before ltr recorded it
    if trained_by is not None and trained_by != dist.world_size:
        logger.warning(
            "the run was trained by %d process(es) and is resumed by %d: it goes on, but its "
            "batches and random draws differ from an uninterrupted run's, so it will not end "
            "with the same weights; resume with as many processes to get them",
            trained_by,
            dist.world_size,
        )
    elif trained_by is not None:
        torch.set_rng_state(checkpoint["rng_ranks"][dist.rank])
    return TrainState.from_dict(checkpoint["state"])


class WeightAverage:
    """An exponential moving average of a model's weights, updated after every optimizer step.

    ``decay`` d per step: the average is d * average + (1 - d) * weights, so it spans roughly
    1 / (1 - d) recent steps. Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))  # warm-up: no stale start
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs.detach(), 1.0 - decay)
        for buffer, source in zip(self.model.buffers(), model.buffers(), strict=True):
            buffer.copy_(source)


def _non_finite(weights: nn.Module | WeightAverage) -> list[str]:
    """Names of the tensors of a model (or of its average) holding NaN or infinity."""
    model = weights.model if isinstance(weights, WeightAverage) else weights
    tensors = {k: t for k, t in model.state_dict().items() if t.is_floating_point()}
    if not tensors or bool(torch.stack([t.isfinite().all() for t in tensors.values()]).all()):
        return []  # one host sync per epoch when every tensor is finite
    return [name for name, t in tensors.items() if not bool(t.isfinite().all())]


def _rng_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(rng: Mapping[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


@contextmanager
def _progress(console: Console, total: int, description: str) -> Iterator[Callable[[], None]]:
    """A transient progress bar over one epoch's batches; yields the function that advances it."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(
        *columns, console=console, transient=True, disable=console.quiet or not console.is_terminal
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
