"""train.log's copy of the console: the lines as a terminal ends up showing them."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from ltr._console_log import capture_console, log_console_to, run_console
from ltr.training.trainer import _progress


def test_a_live_progress_bar_leaves_only_the_lines_printed_around_it(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    with capture_console(), log_console_to(log):
        console = Console(stderr=True, force_terminal=True, soft_wrap=True)  # a terminal
        console.print("[yellow]warning:[/] before", highlight=False)
        with _progress(console, 3, "Epoch 1/1") as tick:  # drawn, redrawn, then taken off
            for _ in range(3):
                tick()
        console.print("Epoch 1/1: loss=0.5000", highlight=False)
        print("a result", file=sys.stdout)

    assert log.read_text(encoding="utf-8") == "warning: before\nEpoch 1/1: loss=0.5000\na result\n"


def test_lines_printed_before_the_log_opens_go_first_and_outside_a_capture_nothing_is_kept(
    tmp_path: Path,
) -> None:
    with log_console_to(tmp_path / "none.log"):  # not under the ltr command line
        print("not kept")
    with capture_console():
        sys.stderr.write("before the run directory\n")
        with log_console_to(tmp_path / "train.log"):
            sys.stdout.write("in the run\n")
        sys.stdout.write("after the run\n")

    assert not (tmp_path / "none.log").exists()
    assert (tmp_path / "train.log").read_text() == "before the run directory\nin the run\n"


def test_a_resume_marks_where_it_begins_even_in_a_run_that_had_no_log(tmp_path: Path) -> None:
    log = tmp_path / "train.log"  # a run from before ltr kept train.log: no file yet
    with capture_console(), log_console_to(log, resumed=True):
        print("Epoch 4/5: loss=0.5000")

    first, second = log.read_text(encoding="utf-8").splitlines()
    assert first.startswith("--- resumed ") and second == "Epoch 4/5: loss=0.5000"


def test_a_quiet_runs_console_writes_to_the_log_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "train.log"
    with capture_console(), log_console_to(log):
        run_console(quiet=True, stderr=True).print("Epoch 1/1: loss=0.5000")
    run_console(quiet=True).print("outside a capture: dropped")

    assert log.read_text(encoding="utf-8") == "Epoch 1/1: loss=0.5000\n"
    assert capsys.readouterr() == ("", "")


def _in_threads_a_and_b(run: Callable[[str], None]) -> None:
    """``run("a")`` and ``run("b")`` in two threads side by side, inside one capture."""
    with capture_console():
        threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_a_line_a_thread_has_not_finished_stays_its_own(tmp_path: Path) -> None:
    # print() writes its text and its newline in two calls: another thread's line written in
    # between once took the unfinished text into its own log ("b: donea: done" in a.log)
    b_started, a_done = threading.Barrier(2), threading.Barrier(2)

    def run(name: str) -> None:
        with log_console_to(tmp_path / f"{name}.log"):
            if name == "b":
                sys.stdout.write("b: done")
                b_started.wait()
                a_done.wait()
                sys.stdout.write("\n")
            else:
                b_started.wait()
                sys.stdout.write("a: done\n")
                a_done.wait()

    _in_threads_a_and_b(run)

    assert (tmp_path / "a.log").read_text() == "a: done\n"
    assert (tmp_path / "b.log").read_text() == "b: done\n"


def test_runs_in_threads_side_by_side_each_log_their_own_lines(tmp_path: Path) -> None:
    both_open, a_printed = threading.Barrier(2), threading.Barrier(2)

    def run(name: str) -> None:  # ltr tune --n-jobs 2: a quiet trial in each thread
        with log_console_to(tmp_path / f"{name}.log"):
            both_open.wait()  # each log opened before either prints
            console = run_console(quiet=True, stderr=True)
            if name == "b":
                a_printed.wait()
            console.print(f"{name}: epoch 1")
            if name == "a":
                a_printed.wait()
            print(f"{name}: done")

    _in_threads_a_and_b(run)

    assert (tmp_path / "a.log").read_text() == "a: epoch 1\na: done\n"
    assert (tmp_path / "b.log").read_text() == "b: epoch 1\nb: done\n"


def test_a_thread_that_opened_no_log_writes_to_the_run_log_opened_last(tmp_path: Path) -> None:
    with capture_console(), log_console_to(tmp_path / "train.log"):
        print("main")
        helper = threading.Thread(target=print, args=("from a refresh thread",))
        helper.start()
        helper.join()

    assert (tmp_path / "train.log").read_text() == "main\nfrom a refresh thread\n"
