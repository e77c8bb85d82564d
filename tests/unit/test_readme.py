"""The README's command-line tour against the real `ltr`: every command and option is in it,
every command line it shows parses, and its cheap examples print what it shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from ltr.cli import app
from ltr.data.letor import read_letor
from ltr.data.runs import write_scores, write_trec_run
from ltr.data.synthetic import write_synthetic
from support.readme import (
    README,
    README_PATH,
    console_blocks,
    console_lines,
    ltr_arguments,
    python_block,
    shown_output,
)

# typer's (vendored) click objects: a group has .commands, a command .params and .make_context
ROOT_COMMAND: Any = typer.main.get_command(app)


def _leaf_commands(group: Any = ROOT_COMMAND, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``"data synth"`` -> its click command, for every command that runs (not the groups)."""
    if not hasattr(group, "commands"):
        return {" ".join(path): group}
    leaves: dict[str, Any] = {}
    for name, command in group.commands.items():
        leaves.update(_leaf_commands(command, (*path, name)))
    return leaves


def run_ltr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "100"},
    )


def test_the_command_tree_is_walked() -> None:
    assert {"data synth", "evaluate", "models show"} <= set(_leaf_commands())


@pytest.mark.parametrize("path", sorted(_leaf_commands()))
def test_every_command_is_in_the_readme_tour(path: str) -> None:
    assert f"ltr {path}" in README


@pytest.mark.parametrize("path", sorted(_leaf_commands()))
def test_every_option_of_a_command_is_named_in_the_readme(path: str) -> None:
    command = _leaf_commands()[path]
    options = [
        name
        for param in command.params
        if param.param_type_name == "option"
        for name in param.opts
        if name.startswith("--") and name != "--help"
    ]
    assert [name for name in options if not re.search(rf"{name}\b", README)] == []


def test_root_options_are_named_in_the_readme() -> None:
    for name in ("--debug", "--version"):
        assert f"ltr {name}" in README


@pytest.mark.parametrize("line", [line for line in console_lines() if ltr_arguments(line)])
def test_every_readme_command_line_parses(line: str) -> None:
    args = ltr_arguments(line)
    assert args
    command = ROOT_COMMAND
    while hasattr(command, "commands"):
        assert args and args[0] in command.commands, f"no command {args[:1]} in: {line}"
        command = command.commands[args.pop(0)]
    command.make_context("ltr", args)  # unknown option, bad choice or missing value: UsageError


def test_readme_config_error_example_is_the_message_ltr_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ltr.config import load_config
    from ltr.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    Path("exp.yaml").write_text(
        "data: {root: .}\ntraining: {learning_rate: -1}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as error:
        load_config("exp.yaml")
    assert f"`error: {error.value}`" in " ".join(README.split())


def test_readme_synth_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    command = "ltr data synth --out quickstart/data --queries 600 --features 20 --seed 0"
    result = run_ltr(*shlex.split(command)[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == shown_output(command)


def test_readme_evaluate_examples_run_as_shown(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "data", n_queries=30, n_features=8, seed=3)
    (tmp_path / "test.txt").write_bytes((tmp_path / "data" / "test.txt").read_bytes())
    test = read_letor(tmp_path / "test.txt")
    scores = test.features[:, 0]  # any float per document will do
    write_scores(tmp_path / "scores.txt", scores)
    write_trec_run(tmp_path / "run.trec", test, scores)
    block = next(b for b in console_blocks() if "ltr evaluate --data test.txt --run" in b)
    lines = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    assert len(lines) == 3
    for line in lines:
        result = run_ltr(*shlex.split(line)[1:], cwd=tmp_path)
        assert result.returncode == 0, (line, result.stderr)
    shown = shown_output(lines[-1])[0]  # {"metrics": {"ndcg@1": ..., ...}, "conventions": {...}}
    printed = json.loads(result.stdout)
    assert list(printed) == ["metrics", "queries", "averaged_queries", "conventions"]
    assert printed["conventions"] == json.loads(shown.split('"conventions": ')[1][:-1])
    shown_metrics = shown.split(', "queries"')[0]
    assert list(printed["metrics"]) == re.findall(r'"([^"]+)": \.\.\.', shown_metrics)
    assert (tmp_path / "per_query.tsv").read_text().startswith("qid\tndcg@1\t")


def test_readme_python_training_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = python_block("### From Python: train, score, evaluate")
    epochs = '"training.num_epochs=30"'
    assert epochs in code, "the example no longer sets its epochs as this test expects"
    quick = '"training.num_epochs=2", "tracking.mlflow=false", "tracking.tensorboard=false"'
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_bytes(
        (README_PATH.parent / "configs" / "default.yaml").read_bytes()
    )
    write_synthetic(tmp_path / "quickstart" / "data", n_queries=60, n_features=20, seed=0)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}

    exec(code.replace(epochs, quick), namespace)  # the example as written, only shorter

    means = namespace["result"].means
    assert set(means) == {"ndcg@10", "map"} and all(0 < value <= 1 for value in means.values())
    assert capsys.readouterr().out.endswith(f"{means}\n")
    assert namespace["run_dir"].parent == tmp_path / "experiments"


@pytest.mark.parametrize("silenced", [False, True])
def test_readme_quiet_run_experiment_leaves_only_logged_warnings(
    tmp_path: Path, silenced: bool
) -> None:
    # the README: quiet=True prints no progress or result; warnings come through the `ltr`
    # logger, shown on stderr by Python until the caller sets the logger's level
    write_synthetic(tmp_path / "data", n_queries=20, n_features=20, seed=0)  # constant columns
    script = "\n".join(
        [
            "import logging",
            "from ltr.config import load_config",
            "from ltr.training import run_experiment",
            'logging.getLogger("ltr").setLevel(logging.ERROR)' if silenced else "",
            f"config = load_config(base={{'data': {{'root': {str(tmp_path / 'data')!r}}}}},",
            "    overrides=['training.num_epochs=1', 'tracking.mlflow=false',",
            f"               'tracking.output_dir={tmp_path / 'runs'}'])",
            "run_experiment(config, quiet=True)",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    if silenced:
        assert result.stderr == ""
    else:
        assert re.fullmatch(r"\d+ feature\(s\) are constant in train\.txt .*\n", result.stderr)
