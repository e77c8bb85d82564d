"""How SIGINT and SIGTERM become :class:`Interrupted`: real signals, each test in a subprocess
(handlers are process-wide state a test must not leave behind)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ltr._signals import Interrupted, interrupted_line

SIGNALLED = """
import os, signal, time
from ltr import _signals

_signals.stop_on_signals()
try:
    os.kill(os.getpid(), signal.{first})
    time.sleep(1)
except _signals.Interrupted as stop:
    print("raised", stop.signal_name, stop.exit_code, flush=True)
    {then}
print("cleanup finished", flush=True)
"""


def run_code(code: str) -> subprocess.CompletedProcess[str]:
    """``python -c code``: signal handlers are process-wide, so every test gets its own."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def run_signalled(first: str, then: str) -> subprocess.CompletedProcess[str]:
    return run_code(SIGNALLED.format(first=first, then=textwrap.indent(then, " " * 4).strip()))


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_raises_interrupted_with_the_shell_exit_code(name: str, code: int) -> None:
    result = run_signalled(name, "pass")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"raised {name} {code}", "cleanup finished"]


def test_a_signal_echoed_right_away_lets_cleanup_finish() -> None:
    # torchrun forwards the Ctrl-C every worker already got from the terminal
    result = run_signalled("SIGINT", "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(0.2)")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["raised SIGINT 130", "cleanup finished"]


def test_a_second_signal_later_ends_the_process_at_once() -> None:
    then = "stop.monotonic_seconds -= 60\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)"
    result = run_signalled("SIGINT", then)

    assert result.returncode == -15  # killed by SIGTERM, cleanup not finished
    assert result.stdout.splitlines() == ["raised SIGINT 130"]


def test_a_signal_during_a_deferred_block_is_raised_when_the_block_ends() -> None:
    code = """
import os, signal
from ltr import _signals

_signals.stop_on_signals()
try:
    with _signals.deferred_interrupts():
        with _signals.deferred_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            print("inner block finished", flush=True)
        print("outer block finished", flush=True)
    print("not reached", flush=True)
except _signals.Interrupted as stop:
    print("raised", stop.signal_name, flush=True)
"""
    result = run_code(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "inner block finished",
        "outer block finished",
        "raised SIGTERM",
    ]


def test_a_held_back_signal_is_raised_at_the_next_safe_point_in_every_thread() -> None:
    code = """
import os, signal, threading
from ltr import _signals

def worker():
    try:
        _signals.raise_if_interrupted()
    except _signals.Interrupted as stop:
        print("worker raised", stop.signal_name, flush=True)

_signals.stop_on_signals()
_signals.raise_if_interrupted()  # nothing happened yet: goes on
try:
    with _signals.deferred_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        print("held back", flush=True)
        _signals.raise_if_interrupted()
        print("not reached", flush=True)
except _signals.Interrupted as stop:
    print("raised", stop.signal_name, flush=True)
_signals.raise_if_interrupted()  # raised once in this thread, not again
print("after", flush=True)
"""
    result = run_code(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "worker raised SIGTERM",
        "held back",
        "raised SIGTERM",
        "after",
    ]


def test_closing_line_holds_the_notes_of_what_was_kept() -> None:
    stop = Interrupted(15)
    stop.add_note("runs/x: checkpoints/last.pt holds epoch 2 of 5")

    assert interrupted_line(stop) == (
        "interrupted by SIGTERM; runs/x: checkpoints/last.pt holds epoch 2 of 5"
    )
    assert interrupted_line(Interrupted(2)) == (
        "interrupted by SIGINT; no output was left half-written"
    )
