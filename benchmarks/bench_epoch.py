"""Seconds per training epoch and peak memory: MLP [512, 256, 128] + LambdaRank on 2 threads.

::

    .venv/bin/python benchmarks/bench_epoch.py --data-dir ../shared/data [--epochs 5]

Cases (each in its own subprocess, so one case's memory peak cannot hide in another's):

- MQ2008 Fold1 ``train`` (471 queries, 9,630 documents, lists of 5 to 121), batch 32 queries,
  on 2 threads and, for a steadier figure, on 1 thread;
- the first MQ2008 case and the synthetic batch of 16 again with ``model.list_ranks`` (each
  feature's rank within its list as more inputs), what two sorts per list cost;
- a synthetic set (``ltr.data.synthetic.make_synthetic``) of 200 queries with exactly 1,000
  documents each and 46 features, batches of 4, 16 and 32 queries: the pairwise LambdaRank
  tensors are ``[batch, 1000, 1000]``, so peak memory should grow with the batch size, not with
  the number of queries.

What one epoch is: the body of ``ltr.training.trainer.train``'s batch loop over the whole
training set with the trainer's own ``train_step`` (forward, loss, ``zero_grad``, ``backward``,
gradient clipping at 5.0, ``optimizer.step``), without validation or checkpoints, fed by the
library's ``QueryDataset.loader`` (shuffled, bucketed by
length, as ``run_experiment`` builds it), with ``build_model``, ``build_loss`` and
``make_optimizer`` (AdamW, lr 1e-3). Features are standard-normalized first, as in training. One
warm-up epoch, then the median of ``--epochs`` timed epochs. Peak RSS is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the case's process at the end; "before" is the
same figure once data, model and optimizer exist, so the difference is what training added.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT / "src"))

from _shared_data import add_data_dir_option, require_data  # noqa: E402

HIDDEN = [512, 256, 128]
CASES: list[dict[str, Any]] = [
    {"data": "mq2008", "batch_size": 32, "threads": 2},
    {"data": "mq2008", "batch_size": 32, "threads": 1},
    {"data": "synthetic", "batch_size": 4, "threads": 2},
    {"data": "synthetic", "batch_size": 16, "threads": 2},
    {"data": "synthetic", "batch_size": 32, "threads": 2},
    # the MLP also fed each feature's rank within its list (model.list_ranks): two sorts a list
    {"data": "mq2008", "batch_size": 32, "threads": 2, "list_ranks": True},
    {"data": "synthetic", "batch_size": 16, "threads": 2, "list_ranks": True},
]


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_case(case: dict[str, Any], data_dir: Path, epochs: int) -> dict[str, Any]:
    """Time ``epochs`` training epochs (after one warm-up) of one case in this process."""
    import torch

    from ltr.config import TrainingConfig
    from ltr.data.dataset import QueryDataset
    from ltr.data.letor import load_letor
    from ltr.data.preprocessing import Normalizer
    from ltr.data.synthetic import make_synthetic
    from ltr.losses import build_loss
    from ltr.models import build_model
    from ltr.training import make_optimizer
    from ltr.training.trainer import train_step

    torch.set_num_threads(case["threads"])
    if case["data"] == "mq2008":
        raw = load_letor(data_dir / "mq2008" / "Fold1" / "train.txt.gz")
    else:
        raw = make_synthetic(n_queries=200, n_features=46, min_docs=1000, max_docs=1000, seed=0)
    data = Normalizer("standard").fit(raw).transform_data(raw)
    del raw
    cfg = TrainingConfig(batch_size=case["batch_size"], learning_rate=1e-3, grad_clip=5.0)
    torch.manual_seed(0)
    model = build_model(
        "mlp",
        data.n_features,
        hidden_dims=HIDDEN,
        dropout=0.1,
        list_ranks=case.get("list_ranks", False),
    )
    loss_fn = build_loss("lambdarank")
    optimizer = make_optimizer(cfg, model.parameters())
    loader = QueryDataset(data).loader(
        cfg.batch_size, shuffle=True, seed=0, bucket_by_length=cfg.bucket_by_length
    )
    rss_before = _max_rss_mib()

    def epoch(index: int) -> float:
        model.train()
        loader.set_epoch(index)
        started = time.perf_counter()
        running = torch.zeros(())
        for batch in loader:  # the trainer's own step
            running += train_step(model, loss_fn, optimizer, batch, cfg.grad_clip)
        float(running)  # the trainer reads the epoch loss once
        return time.perf_counter() - started

    warmup = epoch(0)
    times = [epoch(i + 1) for i in range(epochs)]
    seconds = statistics.median(times)
    return {
        **case,
        "queries": data.n_queries,
        "docs": data.n_docs,
        "max_list": int(data.list_lengths.max()),
        "batches": len(loader),
        "warmup_seconds": warmup,
        "epoch_seconds": times,
        "median_seconds": seconds,
        "queries_per_second": data.n_queries / seconds,
        "docs_per_second": data.n_docs / seconds,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _max_rss_mib(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_dir_option(parser)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after one warm-up")
    parser.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(run_case(CASES[args.case], args.data_dir, args.epochs)))
        return
    require_data(args.data_dir, "mq2008/Fold1/train.txt.gz")
    started = time.perf_counter()
    command = "python " + " ".join(sys.argv)
    print(f"$ {command}")
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    results = []
    for index in range(len(CASES)):
        child = [sys.executable, __file__, "--case", str(index), "--epochs", str(args.epochs)]
        child += ["--data-dir", str(args.data_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(CASES[index]["threads"])}
        out = subprocess.run(child, capture_output=True, text=True, env=env)
        if out.returncode != 0:  # the child's own traceback says why
            sys.stderr.write(out.stderr)
            sys.exit(f"error: case {index} ({CASES[index]}) failed with status {out.returncode}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"MLP {HIDDEN} + LambdaRank (sigma 1, full lists), AdamW, grad clip 5; one epoch = "
        f"every training query once; median of {args.epochs} epochs after 1 warm-up\n"
    )
    print(
        "| data | list ranks | queries x docs/list | batch | threads | s/epoch (median) | "
        "min-max | queries/s | docs/s | RSS before training | peak RSS |"
    )
    print("|" + "---|" * 11)
    for r in results:
        shape = "471 x 5-121" if r["data"] == "mq2008" else f"{r['queries']} x {r['max_list']}"
        label = "MQ2008 Fold1 train" if r["data"] == "mq2008" else "synthetic"
        print(
            f"| {label} | {'yes' if r.get('list_ranks') else 'no'} | {shape} | "
            f"{r['batch_size']} | {r['threads']} | "
            f"{r['median_seconds']:.3f} | {min(r['epoch_seconds']):.3f}-"
            f"{max(r['epoch_seconds']):.3f} | {r['queries_per_second']:.0f} | "
            f"{r['docs_per_second']:.0f} | {r['rss_before_mib']:.0f} MiB | "
            f"{r['peak_rss_mib']:.0f} MiB |"
        )
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"Wall time: {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": command, "cases": results}
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
