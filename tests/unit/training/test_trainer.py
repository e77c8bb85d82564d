"""The training loop on its own: every scorer x loss, schedules, early stopping bookkeeping."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ltr.config import EvaluationConfig, SchedulerConfig, TrainingConfig
from ltr.data.dataset import QueryDataset
from ltr.data.synthetic import make_synthetic
from ltr.errors import LtrError
from ltr.experiments.tracking import Run
from ltr.losses import LOSSES, build_loss
from ltr.models import MODELS, build_model
from ltr.training.checkpoint import load_checkpoint
from ltr.training.trainer import (
    Loaders,
    TrainState,
    cosine_with_warmup,
    make_scheduler,
    score_data,
    train,
)

TINY_MODELS = {
    "linear": {},
    "mlp": {"hidden_dims": [8], "dropout": 0.1},
    "transformer": {"d_model": 8, "n_heads": 2, "n_layers": 1, "dim_feedforward": 16},
    "ensemble": {
        "members": [{"name": "mlp", "hidden_dims": [8], "dropout": 0.1}, {"name": "linear"}]
    },
}


def _loaders(seed: int = 0, n_queries: int = 16) -> Loaders:
    data = make_synthetic(n_queries=n_queries, n_features=8, max_docs=12, seed=seed)
    valid = make_synthetic(n_queries=6, n_features=8, max_docs=12, seed=seed + 1)
    loader = QueryDataset(data).loader(4, shuffle=True, seed=seed)
    return Loaders(train=loader, valid=valid)


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_tiny_models_cover_every_registered_scorer() -> None:
    assert set(TINY_MODELS) == set(MODELS)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_every_scorer_trains_one_epoch_with_every_loss(
    tmp_path: Path, model_name: str, loss_name: str
) -> None:
    torch.manual_seed(0)
    model = build_model(model_name, 8, **TINY_MODELS[model_name])
    cfg = TrainingConfig(num_epochs=1, batch_size=4, learning_rate=1e-2)
    with Run(tmp_path, tensorboard=False) as run:
        result = train(model, build_loss(loss_name), _loaders(), cfg, run, quiet=True)
    assert math.isfinite(result.history[0]["train_loss"])
    assert math.isfinite(result.best_value)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_history_records_the_learning_rate_each_epoch_trained_with(tmp_path: Path) -> None:
    cfg = TrainingConfig(
        num_epochs=3,
        learning_rate=0.1,
        optimizer="sgd",
        scheduler=SchedulerConfig(name="step", step_size=1, gamma=0.5),
    )
    torch.manual_seed(0)
    with Run(tmp_path, tensorboard=False) as run:
        result = train(
            build_model("linear", 8), build_loss("listnet"), _loaders(), cfg, run, quiet=True
        )
    assert [record["lr"] for record in result.history] == pytest.approx([0.1, 0.05, 0.025])


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs() -> None:
    optimizer = _optimizer(1.0)
    scheduler = make_scheduler(SchedulerConfig(name="step", step_size=2, gamma=0.5), optimizer, 6)
    assert scheduler is not None
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # a no-op without gradients; torch warns when the scheduler goes first
        scheduler.step()
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_cosine_schedule_warms_up_linearly_then_decays_to_min_lr() -> None:
    optimizer = _optimizer(1.0)
    cfg = SchedulerConfig(name="cosine", warmup_epochs=2, min_lr=0.1)
    scheduler = make_scheduler(cfg, optimizer, 7)
    assert scheduler is not None
    lrs = []
    for _ in range(7):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # a no-op without gradients; torch warns when the scheduler goes first
        scheduler.step()
    expected = [
        cosine_with_warmup(e, num_epochs=7, warmup_epochs=2, base_lr=1.0, min_lr=0.1)
        for e in range(7)
    ]
    assert lrs == pytest.approx(expected)
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])  # warm-up reaches the base rate
    assert lrs[3:] == sorted(lrs[3:], reverse=True) and lrs[-1] > 0.1


def test_plateau_schedule_cuts_the_rate_when_the_metric_stalls() -> None:
    optimizer = _optimizer(1.0)
    cfg = SchedulerConfig(name="plateau", factor=0.5, patience=1)
    scheduler = make_scheduler(cfg, optimizer, 10)
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    lrs = []
    for value in [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7]:  # higher is better
        optimizer.step()
        scheduler.step(value)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25])


def test_no_schedule_is_none() -> None:
    assert make_scheduler(SchedulerConfig(name="none"), _optimizer(), 5) is None


def test_train_state_marks_the_first_and_every_strictly_better_epoch_as_best() -> None:
    state = TrainState()
    improved = [state.record(v) for v in [0.3, 0.5, 0.5, 0.4, 0.6]]
    assert improved == [True, True, False, False, True]
    assert (state.epoch, state.best_epoch, state.best_value) == (5, 5, 0.6)


def test_train_state_counts_epochs_since_best_and_never_prefers_nan() -> None:
    state = TrainState()
    for value in [float("nan"), 0.2, float("nan"), 0.1]:
        state.record(value)
    assert (state.best_epoch, state.best_value, state.epochs_since_best) == (2, 0.2, 2)


def test_patience_stops_after_more_than_patience_epochs_without_improvement(
    tmp_path: Path,
) -> None:
    # lr=0 keeps the weights, so every epoch ties the first and none improves
    cfg = TrainingConfig(num_epochs=10, learning_rate=1e-12, early_stopping_patience=2)
    torch.manual_seed(0)
    model = build_model("linear", 8)
    for p in model.parameters():
        p.requires_grad_(False)
    model.linear.bias.requires_grad_(True)  # the optimizer needs one parameter
    with Run(tmp_path, tensorboard=False) as run:
        result = train(model, build_loss("mse"), _loaders(), cfg, run, quiet=True)
    assert (result.best_epoch, result.epochs, result.stopped_early) == (1, 4, True)


def test_an_epoch_whose_early_stopping_value_is_nan_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaders = _loaders()
    labels = np.zeros_like(loaders.valid.labels)  # no relevant document: every query skipped
    loaders = Loaders(train=loaders.train, valid=replace(loaders.valid, labels=labels))
    cfg = TrainingConfig(num_epochs=2, learning_rate=1e-2)
    torch.manual_seed(0)
    with Run(tmp_path, tensorboard=False) as run:
        result = train(
            build_model("linear", 8),
            build_loss("listnet"),
            loaders,
            cfg,
            run,
            evaluation=EvaluationConfig(no_relevant="skip"),
            quiet=True,
        )
    assert math.isnan(result.best_value)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        f"epoch {epoch}: the validation ndcg@10 (training.early_stopping_metric) is NaN; an "
        "epoch with NaN never beats one with a number"
        for epoch in (1, 2)
    ]


@pytest.mark.parametrize("weight_averaging", [None, 0.5])
def test_weights_broken_by_an_epochs_last_step_are_neither_validated_nor_saved(
    tmp_path: Path, weight_averaging: float | None
) -> None:
    # one batch per epoch: its loss is computed before the step that breaks the weights, so
    # the epoch's mean loss is finite
    data = make_synthetic(n_queries=16, n_features=8, max_docs=12, seed=0)
    loaders = _loaders()
    loaders = Loaders(train=QueryDataset(data).loader(16, shuffle=True), valid=loaders.valid)
    cfg = TrainingConfig(
        num_epochs=1,
        batch_size=16,
        optimizer="sgd",
        learning_rate=1e30,
        grad_clip=None,
        weight_averaging=weight_averaging,
    )
    mse = build_loss("mse")

    def steep(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return 1e12 * mse(scores, labels, mask)  # finite, but its step overflows float32

    torch.manual_seed(0)
    with Run(tmp_path, tensorboard=False) as run, pytest.raises(LtrError) as caught:
        train(build_model("linear", 8), steep, loaders, cfg, run, quiet=True)
    assert str(caught.value).startswith(
        "training diverged: the weights after epoch 1 are not finite (linear."
    )
    assert str(caught.value).endswith("; lower training.learning_rate or set training.grad_clip")
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())
    assert not (tmp_path / "training_history.json").exists()


def test_best_checkpoint_holds_the_best_epoch_not_the_last(tmp_path: Path) -> None:
    calls = {"n": 0}
    listnet = build_loss("listnet")

    def learn_then_unlearn(
        scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        calls["n"] += 1
        sign = 1.0 if calls["n"] <= 8 else -1.0  # 4 batches an epoch: 2 epochs up, then down
        return sign * listnet(scores, labels, mask)

    cfg = TrainingConfig(num_epochs=12, learning_rate=0.05, early_stopping_patience=3, batch_size=4)
    torch.manual_seed(0)
    model = build_model("linear", 8)
    loaders = _loaders(n_queries=16)
    evaluation = EvaluationConfig(metrics=["ndcg@10"])
    with Run(tmp_path, tensorboard=False) as run:
        result = train(
            model, learn_then_unlearn, loaders, cfg, run, evaluation=evaluation, quiet=True
        )
    values = [record["valid_ndcg@10"] for record in result.history]
    peak = values.index(max(values)) + 1
    assert result.best_epoch == peak < result.epochs
    assert result.stopped_early and result.epochs == peak + cfg.early_stopping_patience + 1
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == peak
    model.load_state_dict(best["model"])
    scores = score_data(model, loaders.valid, batch_size=cfg.batch_size)
    from ltr.evaluation import evaluate_scores

    again = evaluate_scores(loaders.valid, scores, ["ndcg@10"]).means["ndcg@10"]
    assert again == values[peak - 1]


def test_score_data_puts_each_score_on_its_document_row() -> None:
    data = make_synthetic(n_queries=7, n_features=8, max_docs=9, seed=3)
    scorer = build_model("linear", 8)
    with torch.no_grad():
        expected = scorer.linear(torch.from_numpy(data.features)).squeeze(-1).double().numpy()
    for batch_size in (1, 3, 64):
        scores = score_data(scorer, data, batch_size=batch_size)
        assert scores == pytest.approx(expected, abs=1e-6)  # float32 sums vary with layout
