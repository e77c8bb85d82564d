"""`ltr train`, `ltr cv`, `ltr ensemble` and `ltr predict`."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from ltr._messages import not_one_of
from ltr.cli._common import (
    conventions_caption,
    fmt,
    log_table,
    print_path,
    print_table,
    secondary_torchrun_process,
    stdout,
)
from ltr.errors import ConfigError, DataNotFoundError, LtrError, UsageError

if TYPE_CHECKING:
    from ltr.training.crossval import CvResult


class OutputFormat(str, Enum):
    scores = "scores"
    trec = "trec"


# options ltr train and ltr cv share
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", help="Experiment YAML (e.g. configs/default.yaml)."),
]
ModelOption = Annotated[
    str | None,
    # {scorers} and {losses}: filled from the registries when help is shown (RegistryHelp)
    typer.Option("--model", metavar="NAME", help="Scorer: {scorers} (ensembles: ltr ensemble)."),
]
LossOption = Annotated[str | None, typer.Option("--loss", metavar="NAME", help="Loss: {losses}.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config field, e.g. training.learning_rate=3e-4; repeatable. "
        "A list in YAML brackets: --set 'model.hidden_dims=[64,32]'.",
    ),
]


def _device_name(name: str | None) -> str | None:
    """``--device``'s value when it is one ``training.device`` takes, else a usage error."""
    from ltr.config import DEVICE_PATTERN

    if name is None or re.fullmatch(DEVICE_PATTERN, name):
        return name
    raise typer.BadParameter(not_one_of(name, ["cpu", "cuda", "cuda:N", "auto"]))


DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="cpu|cuda|cuda:N|auto",
        callback=_device_name,
        help="Where to train; auto: cuda when a GPU is visible, else cpu.",
    ),
]


def _device_sets(device: str | None) -> list[str]:
    return [f"training.device={device}"] if device else []


def _refuse_beside_resume(what: str, options: list[tuple[str, object]]) -> None:
    """``--resume`` continues ``what`` as it was configured: these options may not come along."""
    if given := [name for name, value in options if value]:
        raise ConfigError(f"--resume continues {what}; drop {', '.join(given)}")


def train(
    config: ConfigOption = None,
    model: ModelOption = None,
    loss: LossOption = None,
    overrides: SetOption = None,
    device: DeviceOption = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="RUN_DIR", help="Continue this run from its last.pt."),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            help="Print only the run directory (stdout, as soon as it exists, so also for a "
            "run that fails or is stopped), warnings and errors: no epoch or test lines; "
            "run=$(ltr train ... --quiet).",
        ),
    ] = False,
) -> None:
    """Train a scorer; writes a run directory with checkpoints, history and test metrics."""
    from ltr.config import load_config
    from ltr.training import Distributed, load_run_config, run_experiment
    from ltr.training.experiment import check_resume_dir, last_checkpoint

    sets = [*(overrides or []), *_device_sets(device)]
    on_run_dir = _announce("Run directory", quiet)
    if resume is not None:  # a resumed run keeps its scorer and loss
        # a run directory is named before any refusal, of a --set too: R=$(ltr train --resume R
        # --quiet) holds R whatever follows (run_experiment's own call then prints nothing)
        not_a_run = None
        try:
            check_resume_dir(resume)
        except LtrError as error:  # told after a misused option, before config.yaml is read
            not_a_run = error
        else:  # without last.pt run_experiment refuses it, after config.yaml and --set
            with contextlib.suppress(DataNotFoundError):
                last_checkpoint(resume)
                on_run_dir(resume.resolve())
        _refuse_beside_resume(
            "a run with its own config.yaml",
            [("--config", config), ("--model", model), ("--loss", loss)],
        )
        if not_a_run is not None:
            raise not_a_run
        experiment = load_run_config(resume, sets)
    elif config is None:
        raise ConfigError("give --config FILE (e.g. configs/default.yaml) or --resume RUN_DIR")
    else:  # --model / --loss switch the file's scorer / loss, keeping what the new one takes
        experiment = load_config(config, sets, model=model, loss=loss)
    dist = Distributed.from_env()  # under torchrun, one process of a DDP job
    run_experiment(experiment, resume=resume, quiet=quiet, dist=dist, on_run_dir=on_run_dir)


def _announce(label: str, quiet: bool) -> Callable[[Path], None]:
    """How ``ltr train`` and ``ltr cv`` show their directory, the moment it is the one worked
    on: alone on its line with ``--quiet`` (``run=$(ltr train ... --quiet)``), else after
    ``label`` (``Run directory: PATH``). Once: the command may name a resumed directory before
    the library, which names it again. Only rank 0 of a torchrun job prints it."""
    shown: set[Path] = set()

    def announce(path: Path) -> None:
        if secondary_torchrun_process() or path in shown:
            return
        shown.add(path)
        if quiet:
            print_path(path)
        else:
            stdout.print(f"{label}: {path}", highlight=False)

    return announce


def cv(
    config: ConfigOption = None,
    folds: Annotated[
        Path | None,
        typer.Option(
            "--folds", metavar="DIR", help="Folder of fold folders Fold1..FoldK (e.g. mq2008)."
        ),
    ] = None,
    model: ModelOption = None,
    loss: LossOption = None,
    overrides: SetOption = None,
    device: DeviceOption = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", metavar="CV_DIR", help="Continue this cv directory: unfinished folds only."
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            help="Print only the cv directory (stdout, as soon as it exists, so also for a cv "
            "that fails or is stopped), warnings and errors: no fold lines or table; "
            "cv=$(ltr cv ... --quiet).",
        ),
    ] = False,
) -> None:
    """Cross-validate: train on each fold as ltr train would; test metrics per fold, mean ± std."""
    from ltr.experiments.cv_record import read_cv_json
    from ltr.training import Distributed, resume_cv, run_cv
    from ltr.training.crossval import load_cv_config

    sets = _device_sets(device)
    dist = Distributed.from_env()
    announce = _announce("CV directory", quiet)  # cv=$(ltr cv ... --quiet), once known
    if resume is not None:  # folds already done cannot change, so no option may
        with contextlib.suppress(LtrError):  # not a cv directory: resume_cv says why
            read_cv_json(resume)
            announce(resume.resolve())  # before any refusal, as resume_cv names it
        _refuse_beside_resume(
            "a cv with the config in its cv.json",
            [
                ("--config", config),
                ("--folds", folds),
                ("--model", model),
                ("--loss", loss),
                ("--set", overrides),
            ],
        )
        result = resume_cv(resume, sets, quiet=quiet, dist=dist, on_cv_dir=announce)
    elif config is None or folds is None:
        raise ConfigError(
            "give --config FILE and --folds DIR (a folder of Fold1..FoldK) or --resume CV_DIR"
        )
    else:
        experiment = load_cv_config(config, [*(overrides or []), *sets], model=model, loss=loss)
        result = run_cv(experiment, folds, quiet=quiet, dist=dist, on_cv_dir=announce)
    if result is not None:  # None: a torchrun process other than rank 0
        (log_table if quiet else print_table)(cv_table(result))  # quiet: in cv.log alone


def _weights(text: str, runs: int) -> list[float]:
    """``--weights``: one finite, non-negative number per run, with a positive sum."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights: give numbers separated by commas; got {text!r}") from None
    if len(values) != runs and runs >= 2:  # fewer runs: build_ensemble says that first
        raise UsageError(f"--weights: {len(values)} weights for {runs} runs; got {text!r}")
    if not all(0 <= value < math.inf for value in values) or sum(values) <= 0:
        raise UsageError(
            f"--weights: need finite, non-negative weights with a positive sum; got {text!r}"
        )
    return values


def cv_table(result: CvResult) -> Table:
    """One row per fold, then mean ± std over folds (sample std), of the test metrics."""
    from ltr.training.experiment import LETOR_NDCG10, TEST_METRICS

    letor = LETOR_NDCG10 in result.metrics
    names = [*TEST_METRICS, *([LETOR_NDCG10] if letor else [])]
    headers = {name: "letor@10" if name == LETOR_NDCG10 else name for name in names}
    evaluation = result.config.evaluation
    conventions = {"gain": evaluation.gain, "no_relevant": evaluation.no_relevant}
    n_folds = len(result.folds)
    caption = f"test metrics of {n_folds} {'fold' if n_folds == 1 else 'folds'}; "
    caption += conventions_caption(conventions)
    if letor:
        caption += "; letor@10: ndcg@10 under --preset letor"
    # folds trained before ltr recorded a metric (letor@10) or without a value (NaN) have none
    done = sum(fold.test is not None for fold in result.folds)
    for name in names:
        count = result.metrics.get(name, {}).get("count", 0)
        if 0 < count < done:
            caption += f"; {headers[name]}: mean over the {count} of {done} folds that have it"
    table = Table(
        title=result.cv_dir.name,
        caption=caption,
        title_justify="left",
        box=box.SIMPLE_HEAD,  # with the letor column still fits 80 columns (CI logs, pipes)
        show_edge=False,
        collapse_padding=True,
    )
    table.add_column("fold", no_wrap=True)
    for name in names:
        table.add_column(headers[name], justify="right", no_wrap=True)
    for fold in result.folds:
        test = fold.test or {}
        table.add_row(fold.fold.name, *(_cell(test.get(name)) for name in names))
    table.add_section()
    summary = [result.metrics.get(name, {}) for name in names]
    # the std on a line of its own under the mean: narrow enough for 80 columns
    table.add_row("mean", *(_cell(s.get("mean")) for s in summary))
    table.add_row("± std", *(f"± {_cell(s.get('std'))}" for s in summary))
    return table


def _cell(value: float | None) -> str:
    return "n/a" if value is None else fmt(value)


def ensemble(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR", help="Two or more run directories (or checkpoint .pt files)."
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Experiment name (default <first>_ensemble<k>).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            metavar="DIR",
            help="Where the run goes (default: beside the first run).",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights", metavar="W1,W2,...", help="Comma-separated weights, one per run."
        ),
    ] = None,
    scale_scores: Annotated[
        bool | None,
        typer.Option(
            "--scale-scores/--no-scale-scores",
            help="Divide each run's weight by the spread of its scores on the training file "
            "(default: when the runs' losses differ).",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", help="Print only the new run directory (stdout): no metric lines."),
    ] = False,
) -> None:
    """Average the scores of trained runs (e.g. one config, several seeds) into a new run."""
    from ltr.training.ensemble import build_ensemble

    parsed = None if weights is None else _weights(weights, len(runs))
    run_dir = build_ensemble(
        runs,
        name=name,
        output_dir=output_dir,
        weights=parsed,
        scale_scores=scale_scores,
        quiet=quiet,
    )
    if quiet:
        print_path(run_dir)


def predict(
    model: Annotated[
        Path,
        typer.Option("--model", metavar="RUN_DIR", help="A run directory or a checkpoint .pt."),
    ],
    data: Annotated[Path, typer.Option("--data", metavar="FILE", help="The LETOR file to score.")],
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write the scores or run.")
    ],
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="scores: one per line; trec: a TREC run.")
    ] = OutputFormat.scores,
) -> None:
    """Score a data file with a trained model; `ltr evaluate` reads the output."""
    from ltr.inference import predict_file

    path = predict_file(model, data, out, fmt.value)
    stdout.print(f"wrote {path}")
