"""Experiment configs: YAML in, validated models out, errors that name the file and field."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from ltr.config import (
    ExperimentConfig,
    apply_overrides,
    dotted_items,
    load_config,
    switch_components,
)
from ltr.errors import ConfigError, UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO_ROOT / "configs").rglob("*.yaml"))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "data: {root: some/fold}\n"
        "model: {name: mlp, hidden_dims: [32]}\n"
        "loss: {name: lambdarank, params: {sigma: 2.0}}\n"
    )
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    assert isinstance(load_config(path), ExperimentConfig)


def test_default_yaml_spells_out_every_field() -> None:
    path = REPO_ROOT / "configs" / "default.yaml"
    written = dotted_items(yaml.safe_load(path.read_text(encoding="utf-8")))
    defaults = dotted_items(load_config(base={"data": {"root": "d"}}).resolved())
    # loss.params: {} stands for the chosen loss's own defaults, which differ per loss
    assert set(written) - {"loss.params"} == {
        k for k in defaults if not k.startswith("loss.params.")
    }
    chosen = ("experiment.", "data.root")  # the file's own choices; everything else is a default
    assert {k: v for k, v in written.items() if k in defaults and not k.startswith(chosen)} == {
        k: defaults[k] for k in written if k in defaults and not k.startswith(chosen)
    }


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_device_takes_cpu_cuda_a_numbered_cuda_or_auto(config_file: Path, device: str) -> None:
    # checked against the machine when a run starts (resolve_device), not when read
    assert load_config(config_file, [f"training.device={device}"]).training.device == device


def test_overrides_apply_before_validation(config_file: Path) -> None:
    config = load_config(config_file, ["training.learning_rate=3e-4", "model.dropout=0.0"])
    assert config.training.learning_rate == 3e-4
    assert config.model.params == {"hidden_dims": [32], "dropout": 0.0}


def test_resolved_config_spells_out_scorer_and_loss_defaults(config_file: Path) -> None:
    resolved = load_config(config_file).resolved()
    assert resolved["model"]["hidden_dims"] == [32]
    assert resolved["model"]["activation"] == "relu"  # the MLP's own default, filled in
    assert resolved["loss"]["params"]["sigma"] == 2.0
    assert "k" in resolved["loss"]["params"]


def test_resolved_yaml_loads_back_to_the_same_config(config_file: Path, tmp_path: Path) -> None:
    config = load_config(config_file, ["training.seed=7"])
    again = tmp_path / "resolved.yaml"
    again.write_text(config.to_yaml())
    assert load_config(again).resolved() == config.resolved()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "training.learning_rate=-1",
            r"exp\.yaml: training\.learning_rate: must be > 0\.0; got -1$",
        ),
        (  # torch's float32 optimizer steps would overflow: one line, not a traceback
            "training.learning_rate=1e300",
            r"exp\.yaml: training\.learning_rate: must be <= 1e\+30; got '1e300'$",
        ),
        ("training.learning_rate=.inf", r"exp\.yaml: training\.learning_rate: must be <= 1e\+30"),
        ("trainin.seed=1", r"exp\.yaml: trainin: unknown field; did you mean training\?$"),
        (
            "training.learning_rat=0.1",
            r"exp\.yaml: training\.learning_rat: unknown field; did you mean "
            r"training\.learning_rate\?$",
        ),
        (
            "training.early_stopping_metric=ndgc@10",
            r"exp\.yaml: training\.early_stopping_metric: .*'ndgc@10'",
        ),
        (
            "model.n_heds=2",
            r"exp\.yaml: model: 'n_heds' is not a parameter of mlp; valid: hidden_dims",
        ),
        (
            "model={name: linear, dropout: 0.1}",
            r"exp\.yaml: model: 'dropout' is not a parameter of linear; linear takes no "
            r"parameters$",
        ),
        (
            "loss.params.sigmaa=1",
            r"exp\.yaml: loss\.params: 'sigmaa' is not a parameter of lambdarank",
        ),
        (
            "loss.params.sigma=0",
            r"exp\.yaml: loss\.params\.sigma: must be greater than 0; got 0",
        ),
        (
            "loss.params.reduction=sum",
            r"exp\.yaml: loss\.params\.reduction: must be 'queries' or 'pairs'; got 'sum'",
        ),
        (
            "loss.params.k=ten",
            r"exp\.yaml: loss\.params\.k: must be a positive integer or None; got 'ten'",
        ),
        (
            "loss.params.sigma=abc",
            r"exp\.yaml: loss\.params\.sigma: must be a finite number; got 'abc'",
        ),
        (
            "loss.params.sigma=.inf",
            r"exp\.yaml: loss\.params\.sigma: must be a finite number; got inf",
        ),
        # scorer parameters are checked when the config is read, not after the data loads
        ("model.hidden_dims=8", r"exp\.yaml: model\.hidden_dims: must be a list of integer"),
        ("model.hidden_dims=null", r"exp\.yaml: model\.hidden_dims: must be a list of"),
        ("model.hidden_dims=[a]", r"exp\.yaml: model\.hidden_dims: must be a list of"),
        ("model.hidden_dims=[8.5]", r"exp\.yaml: model\.hidden_dims: must be a list of"),
        ("model.dropout=abc", r"exp\.yaml: model\.dropout: must be in \[0, 1\); got 'abc'"),
        ("model.dropout=[1]", r"exp\.yaml: model\.dropout: must be in \[0, 1\); got \[1\]"),
        ("model.activation=5", r"exp\.yaml: model\.activation: "),
        ("loss.name=lambda", r"exp\.yaml: loss\.name: 'lambda' is not one of mse, ranknet,"),
        ("evaluation.metrics=[ndcg@0]", r"exp\.yaml: evaluation\.metrics"),
        ("training.scheduler.name=linear", r"exp\.yaml: training\.scheduler\.name: "),
        # one device rule for the config and the Python API (Predictor.load)
        (
            "training.device=mps",
            r"exp\.yaml: training\.device: must be cpu, cuda, cuda:N or auto; got 'mps'$",
        ),
        ("training.device=cuda:x", r"exp\.yaml: training\.device: must be cpu, cuda, cuda:N or"),
        ("training.device=1", r"exp\.yaml: training\.device: must be a string; got 1"),
    ],
)
def test_invalid_values_name_file_and_field(config_file: Path, override: str, message: str) -> None:
    raw = apply_overrides(yaml.safe_load(config_file.read_text()), [override])
    config_file.write_text(yaml.safe_dump(raw))  # the bad value is in the file itself
    with pytest.raises(ConfigError, match=message):
        load_config(config_file)


def test_missing_data_section_is_named(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("model: {name: linear}\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml: data: required$"):
        load_config(path)


def test_data_needs_root_or_train(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"test": "t.txt"}}))
    with pytest.raises(ConfigError, match=r"c\.yaml: data: give data\.root .* or data\.train"):
        load_config(path)


def test_malformed_override_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--set training\.seed: expected KEY=VALUE"):
        apply_overrides({}, ["training.seed"])


@pytest.fixture
def tune_file(config_file: Path) -> Path:
    space = {"model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}
    config_file.write_text(config_file.read_text() + yaml.safe_dump({"tune": {"space": space}}))
    return config_file


def test_a_bracketed_key_sets_a_field_of_one_tune_space_entry(tune_file: Path) -> None:
    config = load_config(tune_file, ["tune.space[model.dropout].low=0.1"])
    assert config.tune is not None
    assert config.tune.space["model.dropout"].model_dump(exclude_none=True) == {
        "type": "uniform",
        "low": 0.1,
        "high": 0.5,
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "tune.space[model.dropot].low=0.1",
            "--set tune.space[model.dropot].low=0.1: tune.space has no entry model.dropot; "
            "did you mean model.dropout?",
        ),
        (
            "tune.space.model.dropout.low=0.1",
            "--set tune.space.model.dropout.low=0.1: tune.space has no entry model; "
            "write --set 'tune.space[model.dropout].low=0.1' for the entry model.dropout",
        ),
        (
            "tune.space[model.dropout].lo=0.1",
            "--set tune.space[model.dropout].lo=0.1: unknown field; "
            "did you mean tune.space[model.dropout].low?",
        ),
        (
            "tune.space[model.dropout].low=0.9",
            "--set tune.space[model.dropout].low=0.9: tune.space[model.dropout]: "
            "a uniform dimension needs low < high; got 0.9, 0.5",
        ),
        (
            "tune.space[model.dropout.low=0.1",
            "--set tune.space[model.dropout.low=0.1: expected KEY=VALUE, e.g. training.seed=3 "
            "or tune.space[model.dropout].low=0.1 (brackets around a key that has dots)",
        ),
        (  # a new entry in dots: it became a section "model" and the file took the blame
            "tune.space.model.norm={type: categorical, choices: [null, layer]}",
            "--set tune.space.model.norm={type: categorical, choices: [null, layer]}: the "
            "entries of tune.space are config fields, written in brackets: "
            "--set 'tune.space[model.norm]={type: categorical, choices: [null, layer]}'",
        ),
    ],
)
def test_a_tune_space_override_that_misses_its_entry_names_it(
    tune_file: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(tune_file, [override])
    assert str(error.value) == message


def test_a_bracketed_key_may_hold_brackets_and_equals_signs(config_file: Path) -> None:
    floor = "promotion.min_metrics[ndcg@10[no_relevant=one]]=0.4"
    config = load_config(config_file, [floor])
    assert config.promotion.min_metrics == {"ndcg@10[no_relevant=one]": 0.4}


def test_a_bracketed_key_written_without_outer_brackets_gets_the_bracketed_spelling(
    config_file: Path,
) -> None:
    floor = "promotion.min_metrics.ndcg@10[no_relevant=one]=0.4"
    with pytest.raises(ConfigError) as error:
        load_config(config_file, [floor])
    assert str(error.value) == (
        f"--set {floor}: promotion.min_metrics.ndcg@10: must be a number; got "
        "{'no_relevant=one': 0.4}; for the key ndcg@10[no_relevant=one], put it in brackets: "
        "--set 'promotion.min_metrics[ndcg@10[no_relevant=one]]=0.4'"
    )


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)  # `ltr train --config .`
    assert str(error.value) == f"{tmp_path}: a directory, not a config file"
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  learning_rate: 0.1\n   batch_size: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert str(error.value) == (
        f"{bad}:3:14: not valid YAML: mapping values are not allowed here"
    )  # one line, at the place the parser stopped


def test_config_is_frozen(config_file: Path) -> None:
    config = load_config(config_file)
    with pytest.raises(ValueError, match="frozen"):
        config.training.seed = 3  # type: ignore[misc]


def test_config_names_every_registered_loss_and_model() -> None:
    from typing import get_args

    from ltr.config import LossName, ModelName
    from ltr.losses import LOSSES
    from ltr.models import MODELS

    assert get_args(LossName) == tuple(LOSSES)
    assert get_args(ModelName) == tuple(MODELS)


def test_checking_loss_parameters_leaves_the_random_stream_alone(config_file: Path) -> None:
    import torch

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_config(config_file, ["loss={name: listmle, params: {ties: random}}"])  # probed: randperm
    assert torch.equal(torch.rand(3), expected)


def test_switching_the_scorer_keeps_what_the_new_one_takes(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ltr.config"):
        config = load_config(config_file, ["model.dropout=0.2"], model="transformer")

    assert config.model.name == "transformer"
    assert config.model.params == {"dropout": 0.2}  # hidden_dims is the MLP's
    assert "model.hidden_dims" in caplog.text and "transformer" in caplog.text


def test_switching_the_loss_keeps_the_parameters_both_take(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ltr.config"):
        kept = load_config(config_file, loss="ndcgloss2pp")  # sigma: a parameter of both
        dropped = load_config(config_file, loss="listnet")

    assert (kept.loss.name, kept.loss.params) == ("ndcgloss2pp", {"sigma": 2.0})
    assert (dropped.loss.name, dropped.loss.params) == ("listnet", {})
    assert caplog.text.count("loss.params.sigma") == 1


def test_naming_the_configured_scorer_or_loss_changes_nothing(config_file: Path) -> None:
    raw = yaml.safe_load(config_file.read_text())

    assert switch_components(raw, model="mlp", loss="lambdarank") == raw
    assert switch_components({}, model="linear", loss="listmle") == {
        "model": {"name": "linear"},
        "loss": {"name": "listmle"},
    }


@pytest.mark.parametrize(
    ("overrides", "switch", "message"),
    [  # an explicit --set is checked against the new scorer; unknown names are reported
        (
            ["model.hidden_dims=[8]"],
            {"model": "transformer"},
            r"^--set model\.hidden_dims=\[8\]: 'hidden_dims' is not a parameter of transformer",
        ),
        ([], {"model": "gbdt"}, r"^--model: 'gbdt' is not one of linear, mlp,"),
        (["model.d_model=abc"], {"model": "transformer"}, r"^--set model\.d_model=abc: "),
        (["model.d_model=6"], {"model": "transformer"}, r"exp\.yaml: model\.n_heads: must"),
        ([], {"loss": "softmax"}, r"^--loss: 'softmax' is not one of mse, ranknet,"),
    ],
)
def test_a_switch_still_validates(config_file: Path, overrides, switch, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, overrides, **switch)


@pytest.mark.parametrize("switch", [{"model": "gbdt"}, {"loss": "softmax"}])
def test_a_switch_to_a_name_not_among_the_choices_is_bad_usage(
    config_file: Path, switch: dict[str, str]
) -> None:
    with pytest.raises(UsageError):  # the CLI exits 2, as for the choices click checks
        load_config(config_file, **switch)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("mpl", "--model: 'mpl' is not one of linear, mlp, transformer; did you mean mlp?"),
        ("ensemble", "--model ensemble: build ensembles from trained runs with ltr ensemble"),
    ],
)
def test_a_switch_of_scorer_names_only_the_scorers_that_train(model: str, message: str) -> None:
    with pytest.raises(UsageError) as error:  # checked before the file is looked for
        load_config("no-such.yaml", model=model)
    assert str(error.value) == message


def test_a_bad_name_written_with_set_stays_a_config_error(config_file: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_file, ["loss.name=nope"])
    assert not isinstance(error.value, UsageError)


@pytest.mark.parametrize(
    ("overrides", "switch", "message"),
    [
        (
            ["training.learning_rat=3e-4"],
            {},
            "--set training.learning_rat=3e-4: unknown field; did you mean training.learning_rate?",
        ),
        (
            ["training.batch_size=abc"],
            {},
            "--set training.batch_size=abc: must be an integer; got 'abc'",
        ),
        (
            ["training.seed=1", "training.learning_rate=-1"],
            {},
            "--set training.learning_rate=-1: must be > 0.0; got -1",
        ),
        (  # a section given whole: the field inside it is named too
            ["training={learning_rat: 1}"],
            {},
            "--set training={learning_rat: 1}: training.learning_rat: unknown field; "
            "did you mean training.learning_rate?",
        ),
        (
            ["evaluation.metrics=ndcg@10,map"],
            {},
            "--set evaluation.metrics=ndcg@10,map: must be a list; got 'ndcg@10,map'; "
            "write --set 'evaluation.metrics=[ndcg@10,map]'",
        ),
        (
            ["model.hidden_dims=64,32"],
            {},
            "--set model.hidden_dims=64,32: must be a list of integer widths >= 1; got '64,32'; "
            "write --set 'model.hidden_dims=[64,32]'",
        ),
        (
            [],
            {"loss": "lambdaran"},
            "--loss: 'lambdaran' is not one of mse, ranknet, lambdarank, ndcgloss2pp, listnet, "
            "listmle, approx_ndcg, neural_ndcg; did you mean lambdarank?",
        ),
        (  # a --set inside the bad section made it
            ["foo.bar=1"],
            {},
            "--set foo.bar=1: foo: unknown field",
        ),
        (  # the file's hidden_dims fit the file's scorer: the --set is what broke them
            ["training.seed=1", "model.name=ensemble", "model.dropout=0.1"],
            {},
            "--set model.name=ensemble: model: 'hidden_dims' is not a parameter of ensemble; "
            "valid: members, weights",
        ),
        (  # the last --set of the field is the one that counts
            ["loss.name=nope"],
            {"loss": "listnet"},
            "--set loss.name=nope: 'nope' is not one of mse, ranknet, lambdarank, ndcgloss2pp, "
            "listnet, listmle, approx_ndcg, neural_ndcg",
        ),
    ],
)
def test_an_error_from_the_command_line_names_the_option_not_the_file(
    config_file: Path, overrides: list[str], switch: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_file, overrides, **switch)
    assert str(error.value) == message


def test_a_problem_of_the_file_alone_names_the_file_whatever_else_is_set(
    tmp_path: Path,
) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("data: {root: some/fold}\nmodel: {name: mlp, foo: 1}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["model.dropout=0.2", "training.seed=1"])
    assert str(error.value).startswith(f"{path}: model: 'foo' is not a parameter of mlp; ")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["loss.params.terms=relevant"],
            "--set loss.params.terms=relevant: 'terms' is not a parameter of lambdarank; "
            "valid: sigma, k, reduction",
        ),
        (
            ["model.n_heds=2", "training.seed=1"],
            "--set model.n_heds=2: 'n_heds' is not a parameter of mlp; "
            "valid: hidden_dims, dropout, activation, norm, piecewise_bins, list_ranks",
        ),
        (  # the whole section from the command line
            ["loss.params={terms: 1}"],
            "--set loss.params={terms: 1}: 'terms' is not a parameter of lambdarank; "
            "valid: sigma, k, reduction",
        ),
        (  # a section above it: the --set is named, and so is the section inside it
            ["loss={name: lambdarank, params: {terms: 1}}"],
            "--set loss={name: lambdarank, params: {terms: 1}}: loss.params: 'terms' is not a "
            "parameter of lambdarank; valid: sigma, k, reduction",
        ),
    ],
)
def test_an_unknown_parameter_from_the_command_line_names_its_set(
    config_file: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_file, overrides)
    assert str(error.value) == message


def test_an_unknown_parameter_from_the_file_names_the_file(config_file: Path) -> None:
    # the unknown parameter is in the file; the --set's write other keys of the same sections
    config_file.write_text(config_file.read_text().replace("sigma", "terms"))
    with pytest.raises(ConfigError) as error:
        load_config(config_file, ["loss.params.k=3", "model.dropout=0.1"])
    assert str(error.value) == (
        f"{config_file}: loss.params: 'terms' is not a parameter of lambdarank; "
        "valid: sigma, k, reduction"
    )


def test_an_error_in_the_file_still_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("data: {root: .}\ntraining: {learning_rat: 0.1}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["training.seed=3"], loss="listnet")
    assert str(error.value) == (
        f"{path}: training.learning_rat: unknown field; did you mean training.learning_rate?"
    )


def test_an_override_that_is_not_yaml_is_one_error_naming_it() -> None:
    with pytest.raises(ConfigError) as error:
        apply_overrides({}, ["model.hidden_dims=[64,32"])
    assert str(error.value).startswith("--set model.hidden_dims=[64,32: the value is not valid")
