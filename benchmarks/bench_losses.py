"""Forward + backward time of every ltr loss against allRank 1.4.3's version of the same loss.

Runs in the benchmark-only environment that ``benchmarks/allrank_env.sh`` builds; ltr is imported
from ``src/`` (``ltr.losses`` needs only torch and numpy) and ``benchmarks/stubs`` stands in for
the two allRank imports the losses never use (torchvision, gcsfs)::

    bash benchmarks/allrank_env.sh
    .venv-allrank/bin/python benchmarks/bench_losses.py [--threads 2] [--repeat 51]

Both sides get identical padded slates (seeded: scores ``randn``, labels 0-4, random list lengths;
ltr gets ``mask``, allRank ``y_true = -1`` at padding). One timed call is ``loss(scores, ...)``
then ``loss.backward()`` on a leaf ``scores``. Per loss and shape: one checked call each (values
and gradients compared, also the warm-up), one more warm-up call, then ltr and allRank alternate
(ABAB..., the first of each pair alternating) and the table shows medians. Repeats are capped by
a time budget per row so the slowest allRank rows (NeuralNDCG, 16 x 1000) still finish; the
repeat count is in the table. Settings and every difference between the two sides are printed
below the tables.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(_ROOT / "src"), str(_ROOT / "benchmarks" / "stubs")]

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

ar: Any = None
ar_loss_utils: Any = None
_ALLRANK_MISSING: ModuleNotFoundError | None = None
try:
    with warnings.catch_warnings():  # pkg_resources, imported by allRank, warns it is deprecated
        warnings.simplefilter("ignore")
        import allrank.models.losses as ar
        from allrank.models.losses import loss_utils as ar_loss_utils
except ModuleNotFoundError as error:  # main() says which environment to use, after --help
    _ALLRANK_MISSING = error

from ltr.losses import LOSSES  # noqa: E402

SHAPES = [(64, 128), (256, 32), (16, 1000)]
PAIRWISE = {"ranknet", "lambdarank", "ndcgloss2pp"}  # the LambdaRank family: target 1.5x
APPROX_ALPHA = 10.0  # ltr's default; allRank's default is 1.0
BUDGET_SECONDS = 15.0  # timed allRank seconds per row, beyond warm-up
MIN_REPEATS = 5  # 3 where one allRank call takes over 10 s (NeuralNDCG on 16 x 1000)

LossCall = Callable[[Tensor], Tensor]  # scores -> scalar loss, everything else bound


@dataclass
class Slates:
    scores: Tensor  # [q, n] float32
    labels: Tensor  # [q, n] float32, 0 at padding
    mask: Tensor  # [q, n] bool
    y_true: Tensor  # allRank's labels: -1 at padding


def make_slates(queries: int, list_len: int, seed: int, *, distinct: bool = False) -> Slates:
    """Random padded slates; every query has two real documents with different labels.

    ``distinct``: labels are a random permutation of ``0..len-1`` per query (no ties), for the
    ListMLE value check.
    """
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(queries, list_len, generator=gen)
    lengths = torch.randint(max(2, list_len // 4), list_len + 1, (queries,), generator=gen)
    lengths[0] = list_len  # the widest query fills the padded width
    mask = torch.arange(list_len) < lengths.unsqueeze(-1)
    if distinct:
        labels = torch.rand(queries, list_len, generator=gen).argsort(dim=-1).float()
    else:
        labels = torch.randint(0, 5, (queries, list_len), generator=gen).float()
        # Both implementations average over different sets of queries when a query's labels are
        # all equal (allRank: all queries, ltr: informative ones); make every query informative.
        labels[:, 1] = torch.where(
            labels[:, 0] == labels[:, 1], (labels[:, 0] + 1) % 5, labels[:, 1]
        )
    labels = labels.masked_fill(~mask, 0.0)
    return Slates(scores, labels, mask, labels.masked_fill(~mask, -1.0))


def ltr_call(name: str, slates: Slates, **params: Any) -> LossCall:
    fn = LOSSES[name]
    return lambda scores: fn(scores, slates.labels, slates.mask, **params)


def allrank_call(name: str, slates: Slates) -> LossCall:
    y = slates.y_true
    calls: dict[str, LossCall] = {
        "ranknet": lambda s: ar.rankNet(s, y),
        # Mean over pairs with the natural log: ltr's reduction (allRank's default is a sum of
        # log2); for NDCG-Loss2++ ltr divides by ln 2, i.e. allRank's log2.
        "lambdarank": lambda s: ar.lambdaLoss(
            s, y, weighing_scheme="lambdaRank_scheme", reduction="mean", reduction_log="natural"
        ),
        "ndcgloss2pp": lambda s: ar.lambdaLoss(
            s, y, weighing_scheme="ndcgLoss2PP_scheme", mu=10.0, reduction="mean"
        ),
        "listnet": lambda s: ar.listNet(s, y),
        "listmle": lambda s: ar.listMLE(s, y),
        "approx_ndcg": lambda s: ar.approxNDCGLoss(s, y, alpha=APPROX_ALPHA),
        "neural_ndcg": lambda s: ar.neuralNDCG(s, y, temperature=1.0),  # max_iter=50, tol=1e-6
        "mse": lambda s: ar.pointwise_rmse(s, y, no_of_levels=1),
    }
    return calls[name]


def ltr_params(name: str, sinkhorn_iters: int) -> dict[str, Any]:
    if "reduction" in inspect.signature(LOSSES[name]).parameters:  # the pairwise losses
        return {"reduction": "pairs"}  # allRank's mean over pairs; see NOTES
    if name == "approx_ndcg":
        return {"alpha": APPROX_ALPHA}
    if name == "neural_ndcg":
        return {"tau": 1.0, "sinkhorn_iters": sinkhorn_iters}
    return {}


class _CountingTorch(types.ModuleType):
    """``torch`` for allRank's ``loss_utils`` that counts the Sinkhorn rounds it runs.

    Each round of ``sinkhorn_scaling`` ends with ``max|row sums - 1| < tol and max|column sums -
    1| < tol``: one ``torch.max`` call, a second one only when the first test passes (nothing
    else on the NeuralNDCG path calls it). ``neuralNDCG`` fixes ``tol=1e-6``.
    """

    def __init__(self) -> None:
        super().__init__("torch")
        self.rounds = 0
        self._second_test_next = False

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        result = torch.max(*args, **kwargs)
        if self._second_test_next:
            self._second_test_next = False
        else:
            self.rounds += 1
            self._second_test_next = bool(result < 1e-6)
        return result


def forward_backward(call: LossCall, scores: Tensor) -> tuple[float, Tensor, Tensor]:
    """Seconds for one forward + backward, the loss value and the gradient of ``scores``."""
    scores.grad = None
    start = time.perf_counter()
    loss = call(scores)
    loss.backward()
    seconds = time.perf_counter() - start
    assert scores.grad is not None
    return seconds, loss.detach(), scores.grad


def relative_difference(ours: Tensor, theirs: Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-30))


@dataclass
class Check:
    sinkhorn_rounds: int  # allRank's, for NeuralNDCG; 50 otherwise
    allrank_seconds: float  # of its first (warm-up) call
    values: tuple[float, float]  # ltr, allRank
    value_diff: float | None  # relative; None where the definitions differ
    grad_diff: float | None


@dataclass
class Row:
    name: str
    shape: tuple[int, int]
    allrank_ms: float
    ltr_ms: float
    repeats: int
    check: Check

    @property
    def ratio(self) -> float:
        return self.allrank_ms / self.ltr_ms

    @property
    def target(self) -> float:
        return 1.5 if self.name in PAIRWISE else 1.0


def check_values(name: str, slates: Slates) -> Check:
    """Both losses and gradients on ``slates``; the first (warm-up) call of each side.

    allRank runs first, with its Sinkhorn rounds counted (see :class:`_CountingTorch`); ltr then
    runs as many.
    """
    if name == "listmle":  # random tie order on both sides: compare on tie-free labels
        slates = make_slates(*slates.scores.shape, seed=12345, distinct=True)
    leaf = slates.scores.clone().requires_grad_()
    counting = _CountingTorch()
    ar_loss_utils.torch = counting  # type: ignore[assignment]
    try:
        seconds, theirs, their_grad = forward_backward(allrank_call(name, slates), leaf)
    finally:
        ar_loss_utils.torch = torch
    their_grad = their_grad.clone()
    rounds = counting.rounds if name == "neural_ndcg" else 50
    params = {"ties": "first"} if name == "listmle" else ltr_params(name, rounds)
    _, ours, our_grad = forward_backward(ltr_call(name, slates, **params), leaf)
    values = (float(ours), float(theirs))
    if name == "mse":  # RMSE per query vs MSE per document: different quantities
        return Check(rounds, seconds, values, None, None)
    diffs = relative_difference(ours, theirs), relative_difference(our_grad, their_grad)
    return Check(rounds, seconds, values, *diffs)


def bench_row(name: str, shape: tuple[int, int], max_repeats: int, seed: int) -> Row:
    slates = make_slates(*shape, seed=seed)
    check = check_values(name, slates)
    ours = ltr_call(name, slates, **ltr_params(name, check.sinkhorn_rounds))
    theirs = allrank_call(name, slates)
    leaf = slates.scores.clone().requires_grad_()
    their_seconds = check.allrank_seconds
    if their_seconds < 2.0:  # a second warm-up where it is cheap
        forward_backward(ours, leaf)
        their_seconds = forward_backward(theirs, leaf)[0]
    fewest = 3 if their_seconds > 10.0 else MIN_REPEATS
    repeats = max(fewest, min(max_repeats, int(BUDGET_SECONDS / max(their_seconds, 1e-6))))
    our_times: list[float] = []
    their_times: list[float] = []
    gc.collect()
    for repeat in range(repeats):
        pair = [(ours, our_times), (theirs, their_times)]
        for call, times in pair if repeat % 2 == 0 else pair[::-1]:
            times.append(forward_backward(call, leaf)[0])
    return Row(
        name,
        shape,
        1e3 * statistics.median(their_times),
        1e3 * statistics.median(our_times),
        repeats,
        check,
    )


def _diff(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1e}"


def print_report(rows: list[Row], threads: int, argv: list[str]) -> None:
    print(f"command: .venv-allrank/bin/python benchmarks/bench_losses.py {' '.join(argv)}".rstrip())
    print(f"torch {torch.__version__}, torch.set_num_threads({threads}), float32 on CPU\n")
    print("| loss | shape | allRank ms | ltr ms | ratio | target | result | repeats |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for row in rows:
        verdict = "pass" if row.ratio >= row.target else "FAIL"
        label = "mse (vs RMSE, see notes)" if row.name == "mse" else row.name
        print(
            f"| {label} | {row.shape[0]} x {row.shape[1]} | {row.allrank_ms:.2f} | "
            f"{row.ltr_ms:.2f} | {row.ratio:.2f}x | {row.target:.1f}x | {verdict} | {row.repeats} |"
        )
    print(
        "\nValue check: max |ltr - allRank| / max |allRank| of the loss and of its gradient "
        "(n/a: different definitions); rounds = Sinkhorn rounds, both sides\n"
    )
    print("| loss | shape | ltr loss | allRank loss | loss rel. diff | grad rel. diff | rounds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        rounds = row.check.sinkhorn_rounds if row.name == "neural_ndcg" else ""
        print(
            f"| {row.name} | {row.shape[0]} x {row.shape[1]} | {row.check.values[0]:.6g} | "
            f"{row.check.values[1]:.6g} | {_diff(row.check.value_diff)} | "
            f"{_diff(row.check.grad_diff)} | {rounds} |"
        )
    print(NOTES)


NOTES = f"""
Pairs and settings (ltr <-> allRank 1.4.3); everything not listed is the same definition:
- target: 1.5x for the LambdaRank family (ranknet, lambdarank, ndcgloss2pp: ltr builds all three
  on one pairwise function), 1.0x for the others; ratio = allRank ms / ltr ms (medians).
- ranknet, lambdarank, ndcgloss2pp run with reduction="pairs" (mean over the batch's pairs), the
  reduction allRank offers as "mean". ltr's default, "queries", divides the same sum by the number
  of queries instead, from the same per-query pair counts: the same work.
- ranknet <-> rankNet: mean over pairs y_i > y_j of log(1 + e^-(s_i - s_j)) on both sides.
- lambdarank <-> lambdaLoss(weighing_scheme="lambdaRank_scheme", reduction="mean",
  reduction_log="natural"): allRank's defaults are a sum with log2; mean + natural log is ltr's
  definition. allRank clamps each sigmoid at eps = 1e-10; ltr's softplus is exact.
- ndcgloss2pp <-> lambdaLoss(weighing_scheme="ndcgLoss2PP_scheme", mu=10, reduction="mean"),
  log2 (ltr divides by ln 2). sigma = 1 and k = None everywhere.
- listnet <-> listNet: allRank adds eps = 1e-10 inside the log and averages over all queries, ltr
  over informative queries (two real labels differ); the slates make every query informative.
- listmle <-> listMLE: both shuffle tied labels at random (different random streams), so the
  timing runs use ltr's ties="random"; values are compared on tie-free labels with
  ties="first". allRank adds eps = 1e-10 inside the log.
- approx_ndcg <-> approxNDCGLoss(alpha={APPROX_ALPHA:g}): allRank's default alpha is 1, ltr's 10.
  allRank clamps each sigmoid at eps = 1e-10.
- neural_ndcg <-> neuralNDCG(temperature=1, powered_relevancies=True, k=None, deterministic):
  allRank runs Sinkhorn up to 50 rounds and stops early once rows and columns sum to 1 within
  1e-6 (not configurable through neuralNDCG); ltr's sinkhorn_iters is set to the number of rounds
  allRank ran on the same slates (counted in an untimed call), so both do the same work.
- mse <-> pointwise_rmse(no_of_levels=1): NOT the same loss. allRank's is the mean over queries
  of each query's RMSE; ltr's the MSE over all real documents. Timed as the pointwise baseline
  only; no value check.
- Data: seed per row, scores randn, labels 0-4 (label of document 1 changed when it equals
  document 0's, so every query is informative), list lengths uniform in [n/4, n], one full.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=51, help="max timed pairs per row")
    parser.add_argument("--losses", nargs="*", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if _ALLRANK_MISSING is not None:
        sys.exit(
            f"error: this Python ({sys.executable}) cannot import {_ALLRANK_MISSING.name}: run "
            "the benchmark in .venv-allrank (bash benchmarks/allrank_env.sh, then "
            ".venv-allrank/bin/python benchmarks/bench_losses.py)"
        )
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.losses:
        for index, shape in enumerate(SHAPES):
            row = bench_row(name, shape, args.repeat, seed=args.seed + index)
            rows.append(row)
            print(
                f"{name:12s} {shape}: allRank {row.allrank_ms:9.2f} ms, ltr {row.ltr_ms:8.2f} ms,"
                f" {row.ratio:6.2f}x ({row.repeats} repeats)",
                file=sys.stderr,
                flush=True,
            )
    print_report(rows, args.threads, sys.argv[1:])


if __name__ == "__main__":
    main()
