"""The `ltr` command: parses options, calls the library, prints tables or JSON.

Thin on purpose: each command is a few calls into ``ltr``'s modules, and each group of commands
lives in its own module here (``data``, ``evaluation``, ``training``). Any :class:`LtrError`
reaches the user as one ``error: ...`` line on stderr and exit status 1 (``--debug`` shows the
traceback); bad usage (an unknown option, a bad choice, a :class:`UsageError`) is one such line
too, with exit status 2. A command's result (a run directory, a table) goes to stdout, progress
and diagnostics to stderr; a reader that closes either pipe early (``| head``) stops the output,
not the command (:mod:`ltr.cli._pipes`). Ctrl-C and SIGTERM end every command alike
(:mod:`ltr._signals`): cleanup runs, one ``interrupted by SIGINT; ...`` line says what
was kept, exit status 130 or 143.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Annotated

import typer

from ltr import __version__
from ltr._console_log import capture_console
from ltr._signals import (
    Interrupted,
    exit_at_once_on_signal,
    exit_process,
    interrupted_line,
    last_interruption,
    stop_on_signals,
)
from ltr.cli import _help, data, evaluation, experiments, export, models, training, tune
from ltr.cli._common import secondary_torchrun_process, stdout
from ltr.cli._pipes import survive_closed_pipes
from ltr.cli._usage import Abort, ClickException, is_help_without_arguments, usage_line
from ltr.cli._warnings import route_warnings
from ltr.errors import LtrError, PeerLostError, UsageError

_help.install()  # value words in --help: no <bool> on flags, no Python type names
app = typer.Typer(
    name="ltr",
    help="Learning to rank: data, training, evaluation, comparison, export and the model store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Create and inspect LETOR data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
_state = {"debug": False}

data_app.command("synth")(data.synth)
data_app.command("inspect")(data.inspect)
app.command("evaluate")(evaluation.evaluate)
app.command("baselines")(evaluation.baselines)
app.command("train", cls=_help.RegistryHelp)(training.train)
app.command("cv", cls=_help.RegistryHelp)(training.cv)
app.command("ensemble")(training.ensemble)
app.command("predict")(training.predict)
app.command("tune")(tune.tune)
app.command("compare")(experiments.compare)
app.add_typer(models.app, name="models")
app.command("promote")(models.promote)
app.command("export")(export.export)
app.command("benchmark-onnx")(export.benchmark_onnx)


def _print_version(value: bool) -> None:
    if value:
        stdout.print(f"ltr {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        # eager: handled while parsing, before click asks for the missing command
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    _state["debug"] = debug


# seconds a failing torchrun process waits before it exits: many times torchrun's monitor
# interval (0.1 s), and more than the skew between ranks that meet the same error at startup
PEER_EXIT_DELAY = 2.0


def main() -> None:
    """Entry point of the ``ltr`` process: :func:`run`, then the process ends with its status.

    The process ends by :func:`ltr._signals.exit_process`, without the interpreter's module
    teardown: a stop after the command is done then cannot make it look failed, and every
    command ends a second or two sooner.
    """
    try:
        run()
        status = 0
    except SystemExit as leaving:
        status = _exit_status(leaving)
        if isinstance(leaving.code, str):  # what Python prints for sys.exit("...")
            sys.stderr.write(f"{leaving.code}\n")
    except BaseException:  # a bug, or an error re-raised for --debug: its traceback, as Python
        sys.excepthook(*sys.exc_info())
        status = 1
    exit_process(status)


def run() -> None:
    """The command line in this process: run the app, turning :class:`LtrError` and
    interruptions into one line; raises :class:`SystemExit` with a non-zero status."""
    stop_on_signals()
    survive_closed_pipes()
    route_warnings()
    try:
        # each run's train.log: a copy of the console, kept by the one process that writes
        with capture_console(enabled=not secondary_torchrun_process()):
            _run_app()
    finally:  # the command has cleaned up: a stop from now on only cuts the exit short
        exit_at_once_on_signal(_exit_status(sys.exc_info()[1]))


def _run_app() -> None:
    """The command, its errors and interruptions turned into one line and an exit status."""
    try:
        # not standalone: click's usage errors come here instead of printing a boxed block
        status = app(standalone_mode=False)
        if isinstance(status, int) and status:  # an Exit, e.g. typer's 130 for Ctrl-C
            sys.exit(status)
    except ClickException as error:
        # help is printed already; under torchrun every rank fails alike: rank 0 says it
        line = usage_line(error) if error.exit_code == 2 else error.format_message()
        if not is_help_without_arguments(error) and not secondary_torchrun_process():
            sys.stderr.write(f"error: {line}\n")
        _wait_for_peers(error, error.exit_code, line)
        sys.exit(error.exit_code)
    except Abort:  # a prompt got end of input
        sys.stderr.write("error: aborted\n")
        sys.exit(1)
    except LtrError as error:
        if _state["debug"]:
            raise
        # every rank checks the same config and files: rank 0 says it for all; a lost peer is
        # each rank's own news
        notes = "".join(f"; {note}" for note in getattr(error, "__notes__", ()))
        line = f"{error}{notes}"  # notes: e.g. how to continue a cv
        if not secondary_torchrun_process() or isinstance(error, PeerLostError):
            sys.stderr.write(f"error: {line}\n")
        status = 2 if isinstance(error, UsageError) else 1
        _wait_for_peers(error, status, line)
        sys.exit(status)
    except (Interrupted, SystemExit):
        stop = last_interruption()  # typer reports an interruption as SystemExit(130)
        if stop is None:
            raise
        if _state["debug"]:
            traceback.print_exception(stop)
        if not secondary_torchrun_process():  # rank 0 says what was kept, for the whole job
            sys.stderr.write(interrupted_line(stop) + "\n")
        sys.exit(stop.exit_code)


def _wait_for_peers(error: BaseException, status: int, line: str) -> None:
    """Under torchrun, record ``error`` (its ``line``, as printed) for torchrun's failure
    summary, then wait :data:`PEER_EXIT_DELAY` before exiting with ``status``.

    torchrun stops every other process (SIGTERM) as soon as one exits with an error, and names
    as root cause the first failure it sees. Without the wait, a peer a moment behind on the
    same error (a misspelt --set, met by every rank at startup) was killed before it could
    fail on its own (exit 143 in the summary, and no error line when the peer was rank 0); and
    a rank that merely lost a peer could exit before the peer that failed first. A SIGTERM
    during the wait ends it with the same ``status``.
    """
    if "TORCHELASTIC_ERROR_FILE" not in os.environ:  # not a process of a torchrun job
        return
    from ltr.training.distributed import record_for_torchrun

    record_for_torchrun(error, f"error: {line}")  # the failure summary shows it, any rank
    exit_at_once_on_signal(status)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stderr.flush()
        time.sleep(PEER_EXIT_DELAY)


def _exit_status(leaving: BaseException | None) -> int:
    """The status the process is exiting with: 0, a ``sys.exit`` code, or 1 for an error."""
    if leaving is None:
        return 0
    if isinstance(leaving, SystemExit):
        code = leaving.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 1
