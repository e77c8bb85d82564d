"""`ltr tune`: an Optuna search over the `tune:` section of an experiment YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ltr.cli._common import stdout
from ltr.cli.training import SetOption


def tune(
    config: Annotated[
        Path, typer.Option("--config", metavar="FILE", help="Experiment YAML with a tune: section.")
    ],
    trials: Annotated[
        int,
        typer.Option(
            "--trials", min=1, help="Finished trials the study should reach (all processes)."
        ),
    ],
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL",
            help="Optuna storage URL; default sqlite:///<output_dir>/optuna.db. "
            "PostgreSQL for many machines.",
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name; default experiment.name.")
    ] = None,
    n_jobs: Annotated[
        int,
        typer.Option(
            "--n-jobs",
            min=1,
            help="Trials side by side in threads of this process: faster, but they share "
            "torch's random generator, so a trial is not reproducible; for that, run separate "
            "processes on one --storage.",
        ),
    ] = 1,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Start no trial after this many seconds."),
    ] = None,
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-trial lines.")] = False,
) -> None:
    """Search hyper-parameters; writes best_config.yaml, trials and plots to tune-<study>/."""
    from ltr.config import load_config
    from ltr.errors import LtrError, UsageError
    from ltr.experiments.tune import run_study
    from ltr.training import Distributed

    world_size = Distributed.from_env().world_size
    if world_size > 1:  # every process would run the whole search, and print every line
        raise UsageError(
            f"ltr tune does not run under torchrun (WORLD_SIZE={world_size}): each trial trains "
            "in one process; to search in parallel, start ltr tune in several shells (or "
            "machines) with one --storage"
        )
    experiment = load_config(config, overrides or [])
    result = run_study(
        experiment,
        trials=trials,
        storage=storage,
        study_name=study,
        n_jobs=n_jobs,
        timeout_seconds=timeout,
        quiet=quiet,
    )
    if result.n_ended_here and not result.n_finished_here:  # a broken config, not bad luck
        n = result.n_ended_here
        which = "the trial this command ran" if n == 1 else f"all {n} trials this command ran"
        raise LtrError(f"{which} failed (study {result.study}); {result.first_failure}")
    summary = f"{result.n_complete} complete, {result.n_pruned} pruned"
    if result.timed_out:
        finished = result.n_complete + result.n_pruned
        summary += f", stopped by --timeout {timeout:g}s after {finished} of {trials} trials"
    if result.best_config is None:
        stdout.print(f"study {result.study}: {summary}; no completed trial yet", highlight=False)
        return
    stdout.print(
        f"study {result.study}: {summary}; best trial {result.best_trial} "
        f"({result.best_value:.4f}); wrote {result.best_config}",
        highlight=False,
    )
