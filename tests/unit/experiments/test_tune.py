"""ltr tune's pieces: trial configs, early refusal of a bad space, the pruning reporter."""

from __future__ import annotations

import datetime
import io
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from ltr.config import ExperimentConfig, load_config
from ltr.errors import ConfigError
from ltr.experiments.tracking import RunStopped
from ltr.experiments.tune import (
    TrialPruned,
    _check_fixed_config,
    _check_tune,
    _open_study,
    _progress,
    _PruningReporter,
    _suggest,
    fixed_config,
    trial_config,
)


def make_config(tmp_path: Path, space: dict[str, Any], **tune: Any) -> ExperimentConfig:
    base = {
        "data": {"root": str(tmp_path)},
        "model": {"name": "mlp", "hidden_dims": [8]},
        "tune": {"space": space, **tune},
    }
    return load_config(base=base)


def test_trial_config_sets_dotted_fields_and_drops_the_search(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path, {"training.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    )
    trial = trial_config(
        cfg,
        {"training.learning_rate": 3e-4, "model.hidden_dims": [16, 8], "loss.params.sigma": 2.0},
        output_dir=tmp_path / "trials",
    )
    assert trial.training.learning_rate == 3e-4
    assert trial.model.params["hidden_dims"] == [16, 8]
    assert trial.loss.params["sigma"] == 2.0
    assert trial.tune is None and "tune" not in trial.resolved()
    assert trial.tracking.output_dir == tmp_path / "trials"


def test_a_space_value_the_config_refuses_fails_before_any_trial(tmp_path: Path) -> None:
    space = {"training.batch_size": {"type": "categorical", "choices": [8, 0]}}
    cfg = make_config(tmp_path, space)
    with pytest.raises(ConfigError, match=r"tune\.space\[training\.batch_size\]: the value 0 is"):
        _check_tune(cfg)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("training.batch_size", r"the value 0 is refused: training\.batch_size: must be >= 1"),
        ("model.nrom", r"the value 8 is refused: model: 'nrom' is not a parameter of mlp; valid:"),
    ],
)
def test_a_refused_space_value_names_the_field_without_an_inner_source(
    tmp_path: Path, key: str, message: str
) -> None:
    cfg = make_config(tmp_path, {key: {"type": "categorical", "choices": [8, 0]}})
    with pytest.raises(ConfigError, match=rf"^tune\.space\[{key}\]: {message}"):
        _check_tune(cfg)  # not "... is refused: config: model: ...": the trial has no file


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("tune.seed", r"trials run without the tune section, so searching it varies nothing"),
        ("tune", r"trials run without the tune section"),
        ("tracking.output_dir", r"every trial writes under the study's trials folder"),
    ],
)
def test_a_space_key_every_trial_overrides_is_refused(
    tmp_path: Path, key: str, message: str
) -> None:
    space = {key: {"type": "categorical", "choices": [1, 2]}}
    cfg = make_config(tmp_path, space)
    with pytest.raises(ConfigError, match=rf"^tune\.space\[{key}\]: {message}"):
        _check_tune(cfg)


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        (
            {"type": "uniform", "low": 0, "high": 1, "choices": [0.1]},
            "a uniform dimension takes no choices",
        ),
        (
            {"type": "loguniform", "low": 0.1, "high": 1, "step": 2},
            "a loguniform dimension takes no step",
        ),
        ({"type": "int", "low": 0, "high": 4, "choices": [1]}, "an int dimension takes no choices"),
        (
            {"type": "categorical", "choices": [1], "low": 0, "high": 2},
            "a categorical dimension takes no low, high",
        ),
    ],
)
def test_a_field_the_dimension_type_does_not_use_is_refused(
    dimension: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"tune\.space\[model\.dropout\]: {message}$"):
        load_config(base={"data": {"root": "d"}, "tune": {"space": {"model.dropout": dimension}}})


def test_a_metric_validation_does_not_compute_is_refused(tmp_path: Path) -> None:
    space = {"model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}
    cfg = make_config(tmp_path, space, metric="err@5")
    with pytest.raises(ConfigError, match=r"tune\.metric: err@5 is not computed"):
        _check_tune(cfg)


def test_search_dimension_needs_ordered_bounds() -> None:
    with pytest.raises(ConfigError, match=r"tune\.space\.x.*low < high"):
        load_config(
            base={
                "data": {"root": "d"},
                "tune": {"space": {"x": {"type": "uniform", "low": 1, "high": 0}}},
            }
        )


def test_pruning_reporter_stops_a_trial_below_the_median() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    good = study.ask()
    good.report(0.9, 1)
    study.tell(good, 0.9)
    bad = study.ask()
    reporter = _PruningReporter(bad, "valid/ndcg@10")
    reporter.log_metrics({"best/valid/ndcg@10": 0.0}, 1)  # final numbers are not epochs
    with pytest.raises(TrialPruned) as stopped:
        reporter.log_metrics({"train/loss": 1.0, "valid/ndcg@10": 0.1}, 1)
    assert isinstance(stopped.value, RunStopped)  # the run is closed as KILLED
    assert isinstance(stopped.value, optuna.TrialPruned)  # Optuna records PRUNED
    assert bad.user_attrs["pruned_at_epoch"] == 1


def test_pruning_reporter_lets_a_good_trial_go_on() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    first = study.ask()
    first.report(0.5, 1)
    study.tell(first, 0.5)
    reporter = _PruningReporter(study.ask(), "valid/ndcg@10")
    reporter.log_metrics({"valid/ndcg@10": 0.8}, 1)  # no exception


LR_SPACE = {"training.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}


def test_fixed_config_leaves_out_searched_fields_and_outputs(tmp_path: Path) -> None:
    fixed = fixed_config(make_config(tmp_path, LR_SPACE))
    assert fixed["data.root"] == str(tmp_path)
    assert "training.num_epochs" in fixed and "model.hidden_dims" in fixed
    assert "training.learning_rate" not in fixed
    assert not [key for key in fixed if key.startswith(("tracking.", "tune.space."))]


def test_a_study_refuses_other_fixed_settings_naming_the_fields(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", direction="maximize")  # in memory, real
    _check_fixed_config(study, fixed_config(make_config(tmp_path, LR_SPACE)), "sqlite:///x.db")
    other = make_config(tmp_path / "syn5", LR_SPACE).resolved()
    other["training"]["num_epochs"] = 3
    other_fixed = fixed_config(load_config(base=other))

    with pytest.raises(
        ConfigError, match=r"^study 's' in sqlite:///x\.db ran with other fixed"
    ) as e:
        _check_fixed_config(study, other_fixed, "sqlite:///x.db")
    assert f"data.root ({str(tmp_path / 'syn5')!r} here, {str(tmp_path)!r} in the study)" in str(
        e.value
    )
    assert "training.num_epochs (3 here, " in str(e.value)


def test_a_study_continues_with_the_same_fixed_settings(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", direction="maximize")
    fixed = fixed_config(make_config(tmp_path, LR_SPACE))
    _check_fixed_config(study, fixed, "sqlite:///x.db")
    _check_fixed_config(study, fixed, "sqlite:///x.db")  # no error
    assert study.user_attrs["fixed_config"] == fixed


def test_a_study_continues_with_its_data_spelled_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "syn").mkdir()
    study = optuna.create_study(study_name="s", direction="maximize")
    _check_fixed_config(study, fixed_config(make_config(Path("syn"), LR_SPACE)), "sqlite:///x.db")

    _check_fixed_config(study, fixed_config(make_config(tmp_path / "syn", LR_SPACE)), "s.db")

    assert study.user_attrs["fixed_config"]["data.root"] == str(tmp_path / "syn")


def test_a_study_refuses_the_same_relative_data_path_in_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    study = optuna.create_study(study_name="s", direction="maximize")
    monkeypatch.chdir(tmp_path / "a")
    _check_fixed_config(study, fixed_config(make_config(Path("syn"), LR_SPACE)), "sqlite:///x.db")
    monkeypatch.chdir(tmp_path / "b")  # another syn: another data set

    with pytest.raises(ConfigError, match=r"ran with other fixed settings: data\.root \("):
        _check_fixed_config(study, fixed_config(make_config(Path("syn"), LR_SPACE)), "s.db")


def test_trial_line_shows_sampled_parameters_and_time() -> None:
    study = optuna.create_study(direction="maximize")
    start = datetime.datetime(2026, 11, 22, 16, 0, 0)
    distributions = {
        "training.learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
        "model.dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
        "model.hidden_dims": optuna.distributions.CategoricalDistribution(["[64]", "[128]"]),
    }
    trial = optuna.trial.create_trial(
        params={
            "training.learning_rate": 3.1e-4,
            "model.dropout": 0.2,
            "model.hidden_dims": "[64]",
        },
        distributions=distributions,
        value=0.7922,
    )
    trial.datetime_start, trial.datetime_complete = start, start + datetime.timedelta(seconds=31.25)
    study.add_trial(trial)
    out = io.StringIO()
    _progress(Console(file=out, width=200), "ndcg@10")(study, study.trials[0])
    assert out.getvalue() == (
        "Trial 0: ndcg@10=0.7922 (best 0.7922, trial 0); 31.2 s; "
        "learning_rate=0.00031 dropout=0.2 hidden_dims=[64]\n"
    )


def drawn(study: optuna.Study, space: dict[str, Any]) -> dict[str, Any]:
    """Ask ``study`` for a trial and draw ``space``; the trial stays running."""
    cfg_space = load_config(base={"data": {"root": "d"}, "tune": {"space": space}}).tune
    assert cfg_space is not None
    trial = study.ask()
    return {key: _suggest(trial, key, dim) for key, dim in cfg_space.space.items()}


def seeded_study(tmp_path: Path, name: str) -> tuple[optuna.Study, bool]:
    tune = make_config(tmp_path, LR_SPACE, seed=0).tune
    assert tune is not None
    return _open_study(f"sqlite:///{tmp_path / 'optuna.db'}", name, tune, 4)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask, not optimize
def test_workers_that_start_together_draw_different_values(tmp_path: Path) -> None:
    (first, created), (second, joined) = seeded_study(tmp_path, "s"), seeded_study(tmp_path, "s")
    assert created and not joined

    ours, theirs = drawn(first, LR_SPACE), drawn(second, LR_SPACE)  # trials 0 and 1, both new

    assert ours != theirs


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask, not optimize
def test_one_seeded_worker_draws_the_same_trials_again(tmp_path: Path) -> None:
    runs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        study, _ = seeded_study(tmp_path / folder, "s")
        values = []
        for _ in range(3):
            values.append(drawn(study, LR_SPACE))
            study.tell(study.trials[-1].number, 0.5)
        runs.append(values)
    assert runs[0] == runs[1]
    assert len({str(v) for v in runs[0]}) == 3


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask, not optimize
def test_pruners_wait_for_the_startup_trials_and_the_warmup_epochs(
    pruner: str, tmp_path: Path
) -> None:
    space = {"model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}
    tune = make_config(
        tmp_path, space, pruner=pruner, pruner_startup_trials=3, pruner_warmup_epochs=2
    ).tune
    assert tune is not None
    study, _ = _open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "s", tune, 9)
    pruned_at = []
    for number in range(6):  # each trial worse than the one before, at every epoch
        trial, value, stop = study.ask(), 0.9 - 0.1 * number, None
        for epoch in range(1, 10):
            trial.report(value, epoch)
            if trial.should_prune():
                stop = epoch
                break
        study.tell(trial, None if stop else value, state=TrialState.PRUNED if stop else None)
        pruned_at.append(stop)

    assert pruned_at == [None, None, None, 3, 3, 3]  # after 3 trials, after 2 epochs


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("foo", "Could not parse SQLAlchemy URL"),  # not a URL
        ("sqlite:///{tmp}/missing/folder/x.db", "unable to open database file"),
    ],
)
def test_a_storage_that_cannot_work_fails_at_once_in_one_line(
    tmp_path: Path, url: str, cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ltr.experiments.tune as tune_module

    def no_retry(seconds: float) -> None:
        raise AssertionError(f"retried after {seconds} s: another try would fail alike")

    monkeypatch.setattr(tune_module.time, "sleep", no_retry)
    with pytest.raises(ConfigError) as refused:
        tune_module._storage(url.format(tmp=tmp_path))

    message = str(refused.value)
    assert message.startswith("cannot open the Optuna storage ") and cause in message
    assert "\n" not in message and "sqlalche.me" not in message
