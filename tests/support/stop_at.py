"""Run the ``ltr`` command line and send this process a real signal at a chosen moment.

    python stop_at.py MOMENT SIGNAL LTR_ARGS...

The signal goes through the kernel (``os.kill`` of this process), so the handler the CLI
installs runs exactly as for a user's Ctrl-C or a ``kill``; only the moment is chosen:

- ``loss:N``: when the N-th training batch computes its loss (mid-epoch; counted over runs);
- ``rename:NAME:N``: just before the N-th rename onto a file or folder named NAME (an atomic
  write about to land: ``last.pt``, ``best.pt``, ``metrics.json``, a bundle folder, ...);
- ``tensorboard``: when a run starts its TensorBoard writer (just after its directory is made;
  importing tensorboard takes seconds, the likeliest moment for an early Ctrl-C);
- ``test``: when the final test evaluation starts;
- ``artifact:N``: just before the N-th file is uploaded to MLflow (a run's files go last);
- ``exit``: while the interpreter tears down after the command returned (an atexit hook).

A suffix ``@R`` (``loss:5@1``) stops only the process of rank R in a torchrun job.
SIGNAL is a name: SIGINT, SIGTERM, SIGKILL.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def stop(number: int) -> None:
    os.kill(os.getpid(), number)


def after_calls(count: int, number: int, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call``, but the ``count``-th call is preceded by the signal."""
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == count:
            stop(number)
        return call(*args, **kwargs)

    return wrapped


def stop_before_rename(name: str, count: int, number: int) -> None:
    seen = {"n": 0}

    def guard(real: Callable[..., Any]) -> Callable[..., Any]:
        def rename(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            if Path(target).name == name:
                seen["n"] += 1
                if seen["n"] == count:
                    stop(number)
            return real(source, target, *args, **kwargs)

        return rename

    os.replace = guard(os.replace)
    os.rename = guard(os.rename)


def main() -> None:
    moment, signal_name, *args = sys.argv[1:]
    number = int(signal.Signals[signal_name])
    moment, _, rank = moment.partition("@")
    if rank and os.environ.get("RANK") != rank:
        number = 0  # signal 0 only checks that the process exists: this rank runs on
    kind, _, detail = moment.partition(":")
    import ltr.training.experiment as experiment

    if kind == "loss":  # one count over every loss built (ltr tune builds one per trial)
        build_loss = experiment.build_loss
        counted = after_calls(int(detail), number, lambda loss, *a: loss(*a))
        experiment.build_loss = lambda *a, **k: functools.partial(counted, build_loss(*a, **k))
    elif kind == "rename":
        name, _, count = detail.rpartition(":")
        stop_before_rename(name, int(count), number)
    elif kind == "tensorboard":
        from ltr.experiments.tracking import TensorBoardTracker

        TensorBoardTracker.__init__ = after_calls(1, number, TensorBoardTracker.__init__)
    elif kind == "test":
        experiment.report_test_metrics = after_calls(1, number, experiment.report_test_metrics)
    elif kind == "artifact":
        from ltr.experiments.mlflow_tracker import MLflowTracker

        upload = MLflowTracker.log_artifact
        MLflowTracker.log_artifact = after_calls(int(detail), number, upload)
    elif kind == "exit":  # registered first, so it runs after the hooks ltr's libraries add
        import atexit

        atexit.register(stop, number)
    else:
        raise SystemExit(f"unknown moment {moment!r}")
    from ltr.cli import main as ltr_main

    sys.argv = ["ltr", *args]
    ltr_main()


if __name__ == "__main__":
    main()
