"""When benchmark figures may be inflated: the decision, from given numbers (no loaded machine)."""

from __future__ import annotations

import json
from pathlib import Path

from ltr.lifecycle.latency import LatencyReport, LatencyRow, timing_noise


def row(list_size: int, threads: int, *, torch_spread: float = 2.0) -> LatencyRow:
    """A setting whose ONNX Runtime p99/p50 is 2 and PyTorch's ``torch_spread``."""
    return LatencyRow(
        list_size=list_size,
        threads=threads,
        torch_p50_us=100.0,
        torch_p99_us=100.0 * torch_spread,
        onnx_p50_us=50.0,
        onnx_p99_us=100.0,
        matmul_p50_us=None,
        max_abs_diff=1e-7,
        rankings_identical=True,
        calls=1000,
    )


QUIET = [row(size, threads) for threads in (1, 2) for size in (10, 100)]


def test_a_quiet_machine_gets_no_warning() -> None:
    assert timing_noise(QUIET, cores=2, load_before=0.3) == []


def test_a_load_that_leaves_the_timed_threads_no_free_cores_is_named() -> None:
    assert timing_noise(QUIET, cores=2, load_before=2.9) == [
        "the 1-minute load average was 2.9 as timing began: other work and the 2 thread(s) "
        "timed need more than the 2 cores; figures may be inflated (time on an idle machine)"
    ]


def test_a_load_beside_one_timed_thread_that_leaves_it_a_core_passes() -> None:
    one_thread = [row(10, 1), row(100, 1)]
    assert timing_noise(one_thread, cores=2, load_before=1.2) == []
    assert timing_noise(QUIET, cores=2, load_before=1.2) != []  # 2 threads: no core left


def test_an_unknown_load_is_not_checked() -> None:
    assert timing_noise(QUIET, cores=2, load_before=None) == []


def test_more_threads_than_cores_are_named_as_such_not_blamed_on_the_load() -> None:
    # an idle machine would not help: the advice must not be to time on one
    assert timing_noise(QUIET, cores=1, load_before=0.9) == [
        "2 threads timed on 1 cores: they take turns on the cores, so figures above 1 thread(s) "
        "measure that, not the runtime"
    ]


def test_a_wide_spread_names_the_worst_setting_and_counts_the_others() -> None:
    rows = [row(10, 1), row(100, 2, torch_spread=8.3), row(1000, 2, torch_spread=6.0)]
    assert timing_noise(rows, cores=2, load_before=0.1) == [
        "p99/p50 = 8.3 for 100 docs, 2 thread(s) (PyTorch; 1 other setting(s) above 5 too): "
        "noisy; figures may be inflated"
    ]


def test_the_report_records_the_load_and_its_warnings() -> None:
    report = LatencyReport(Path("bundle"), "float32", QUIET, 2, 2.9, 3.4)

    printed = json.loads(json.dumps(report.to_dict()))

    assert (printed["cores"], printed["load_1min_before"], printed["load_1min_after"]) == (
        2,
        2.9,
        3.4,
    )
    assert printed["noise_warnings"] == report.noise_warnings() != []
    assert len(printed["rows"]) == 4
    assert report.conditions() == "1-minute load average 2.90 -> 3.40 on 2 cores"


def test_a_floor_timed_far_slower_than_the_runtime_is_not_shown_as_zero() -> None:
    from dataclasses import replace

    from ltr.lifecycle.latency import latency_cells, latency_line

    slow_floor = replace(row(10, 1), matmul_p50_us=17_095.0)  # ONNX Runtime: 50 us
    usual = replace(row(10, 1), matmul_p50_us=30.0)

    assert latency_cells(slow_floor)[6] == "0.0029x"
    assert " / 0.0029x matmul floor / " in latency_line(slow_floor)
    assert latency_cells(usual)[6] == "1.67x"
