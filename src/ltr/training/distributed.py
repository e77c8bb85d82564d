"""Data-parallel training on PyTorch's own engine: ``torchrun`` starts the processes, DDP syncs.

``torchrun --nproc-per-node 2 -m ltr train --config FILE`` starts two processes; each reads its
place from the environment (:meth:`Distributed.from_env`), joins the process group
(:func:`process_group`: gloo on CPU, nccl on GPU with device ``cuda:LOCAL_RANK``) and trains a
:class:`~torch.nn.parallel.DistributedDataParallel` copy of the same model. Without torchrun
every helper here is a no-op, so the trainer calls them unconditionally.

How the work is split:

- Training: each rank trains on its shard of the training queries (:meth:`QueryDataset.shard`:
  dealt round-robin by list length, so shards differ by at most one query).
  ``training.batch_size`` is the *global* batch: every rank takes ``batch_size // world_size``
  queries per step (:func:`per_rank_batch_size` refuses a batch size not divisible by the
  number of processes). DDP needs the same number of steps on every rank, so every rank trains
  on ``n_queries // world_size`` queries per epoch, the size of the smallest shard, and takes
  the same number of steps (:func:`steps_per_epoch`): a rank whose shard holds one query more
  leaves out the last query of the epoch's shuffled order before its batches are cut. An epoch
  thus skips at most ``world_size - 1`` queries, and since the order comes from
  ``(seed, epoch)`` the skipped queries change from epoch to epoch.
- Every rank seeds torch alike before building the model, so the weights start identical (DDP
  also broadcasts rank 0's at the start).
- Validation: each rank scores its shard of the validation queries; the score vectors are summed
  across ranks (each document is scored by exactly one rank and is 0 elsewhere, so the sum is
  exact) and every rank evaluates the whole validation set with the same code as a single
  process. The early-stopping value is then broadcast from rank 0, so every rank takes the same
  stop and learning-rate decisions by construction.
- Files: only rank 0's :class:`~ltr.experiments.Run` writes; rank 0 names the run directory and
  broadcasts the name. Checkpoints hold the unwrapped model's ``state_dict``.

The loss under DDP: DDP averages gradients over ranks, so a step minimises
``mean_r L_r``, where ``L_r`` is the loss of rank ``r``'s ``batch_size // world_size`` queries.
Every ltr loss is a mean over something: informative queries (listwise losses), valid pairs
(``ranknet``, ``lambdarank``, ``ndcgloss2pp``) or documents (``mse``). When every rank's
sub-batch holds the same number of those units, ``mean_r L_r`` *is* the loss of the global
batch of ``batch_size`` queries, as one process would compute it. Otherwise it weights rank
``r``'s units by ``n_mean / n_r`` instead of 1: a mild reweighting (no bias towards any query
in expectation), exact only up to it. Query-averaged losses are exact whenever the sub-batches
hold equally many informative queries; pair-averaged losses almost never are.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ltr._fs import atomic_write_json
from ltr.data.dataset import BatchLoader, QueryDataset
from ltr.data.letor import LetorData
from ltr.errors import ConfigError, LtrError, PeerLostError

__all__ = [
    "Distributed",
    "per_rank_batch_size",
    "process_group",
    "shard_loader",
    "steps_per_epoch",
]


@dataclass(frozen=True)
class Distributed:
    """This process's place in a distributed job (rank 0 of 1 without torchrun).

    The collective helpers (:meth:`average`, :meth:`sum_array`, :meth:`broadcast`, ...) need the
    process group of :func:`process_group` when ``world_size > 1`` and return their argument
    unchanged otherwise.

    Attributes:
        rank: this process, ``0 <= rank < world_size``; rank 0 writes every file.
        world_size: number of processes.
        local_rank: this process on its machine; picks the GPU.
        local_world_size: number of processes on this machine.
        nodes: number of machines (torchrun's ``--nnodes``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    nodes: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Distributed:
        """Read ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and
        ``GROUP_WORLD_SIZE`` (machines) as torchrun sets them; without the last two, every
        process is on this machine.

        Without ``WORLD_SIZE`` (a plain ``ltr train``) this is one process.

        Raises:
            ConfigError: inconsistent variables, or no ``MASTER_ADDR``/``MASTER_PORT`` for a job
                of several processes (start it with torchrun).
        """
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            world_size = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local_rank = int(env.get("LOCAL_RANK", str(rank)))
            local_world_size = int(env.get("LOCAL_WORLD_SIZE", str(world_size)))
            nodes = int(env.get("GROUP_WORLD_SIZE", "1"))
        except ValueError:
            names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE")
            got = ", ".join(f"{name}={env.get(name)!r}" for name in names if name in env)
            raise ConfigError(
                f"{', '.join(names)} must be integers (torchrun sets them); got {got}"
            ) from None
        if (
            world_size < 1
            or not 0 <= rank < world_size
            or not 0 <= local_rank < local_world_size <= world_size
            or not 1 <= nodes <= world_size
        ):
            raise ConfigError(
                f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size}, "
                f"LOCAL_WORLD_SIZE={local_world_size}, GROUP_WORLD_SIZE={nodes} do not describe "
                "a process of a distributed job"
            )
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in env]
        if world_size > 1 and missing:
            raise ConfigError(
                f"WORLD_SIZE={world_size} but {' and '.join(missing)} not set; start distributed "
                "training with `torchrun --nproc-per-node N -m ltr train ...`"
            )
        return cls(rank, world_size, local_rank, local_world_size, nodes)

    @property
    def launcher(self) -> str:
        """How to start ``ltr`` as this job was started: ``ltr`` for one process, else torchrun
        with as many machines and processes per machine (``torchrun --nnodes 2
        --nproc-per-node 4 -m ltr``; several machines also need the job's rendezvous options)."""
        if not self.enabled:
            return "ltr"
        nodes = f"--nnodes {self.nodes} " if self.nodes > 1 else ""
        return f"torchrun {nodes}--nproc-per-node {self.local_world_size} -m ltr"

    @property
    def enabled(self) -> bool:
        """More than one process: DDP and collectives are on."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: writes files, prints, tests."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """``cuda`` becomes ``cuda:LOCAL_RANK`` in a distributed job; anything else stays."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module, device: torch.device | str) -> nn.Module:
        """``model`` in :class:`DistributedDataParallel` (already on ``device``), or itself."""
        if not self.enabled:
            return model
        device = torch.device(device)
        device_ids = [device] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def average(self, value: float) -> float:
        """The mean of ``value`` over all ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device())
        torch_dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def sum_array(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``array`` over all ranks (same shape and dtype everywhere)."""
        if not self.enabled:
            return array
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(_comm_device())
        torch_dist.all_reduce(tensor)
        summed: np.ndarray = tensor.cpu().numpy()
        return summed

    def broadcast(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device())
        torch_dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (picklable, e.g. a run directory name) on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            torch_dist.barrier()

    def shard(self, data: LetorData) -> np.ndarray | None:
        """This rank's queries of ``data`` (positions, sorted); None (all) for one process."""
        if not self.enabled:
            return None
        return QueryDataset(data).shard(self.rank, self.world_size)


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU for nccl, the CPU for gloo."""
    if torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextmanager
def process_group(dist: Distributed, device: torch.device) -> Iterator[None]:
    """Join the job's process group for the duration of the block.

    The group is left when the block ends normally. After an error it stays open until the
    process exits, so this rank is the first to end (see the comment below).

    gloo for a CPU ``device``, nccl for cuda (after selecting ``device`` as the current GPU);
    the rendezvous is ``env://`` (``MASTER_ADDR``/``MASTER_PORT`` from torchrun). Nothing
    happens for one process, or when the caller already initialized a group (the caller then
    also destroys it).
    """
    if not dist.enabled or torch_dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch_dist.init_process_group(backend, rank=dist.rank, world_size=dist.world_size)
    try:
        yield
    except LtrError as error:
        # The group is left open on purpose: the peers then fail only when this process exits
        # and closes its sockets, so torchrun sees this rank end first and names it the root
        # cause. Leaving the group here let a peer fail and exit while this one was still
        # shutting down, and torchrun named the peer.
        record_for_torchrun(error, f"error: {error}")
        raise
    except RuntimeError as error:
        cause = _peer_lost(str(error))
        if cause is None:
            raise
        raise PeerLostError(
            f"process {dist.rank} of {dist.world_size} lost the connection to another process "
            f"of the job, which ended ({cause}); that process's error says why"
        ) from error
    torch_dist.destroy_process_group()


# how gloo reports a peer that is gone (its socket closed): the peer's error is the one to read
_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def _peer_lost(message: str) -> str | None:
    """The part of a backend error that says a peer is gone (``Connection closed by peer
    [127.0.0.1]:40364``), or None when the error is about something else."""
    for sign in _PEER_LOST:
        start = message.find(sign)
        if start >= 0:
            return message[start:].split(". ", 1)[0].strip()
    return None


def record_for_torchrun(error: BaseException, line: str) -> None:
    """Under torchrun, leave ``line`` (the ``error: ...`` line the CLI prints for ``error``)
    where its failure summary looks for it, so the summary names this rank's error as the root
    cause, not a peer that merely lost its connection.

    The record is the file torchrun's ``ErrorHandler`` writes, without its traceback: an error
    ltr raises on purpose is one line, and the traceback would only show click's and ltr's
    frames. The first record stands: torchrun ranks failures by their time, and a later write
    of the same error would only make it look later than the peers it brought down.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or os.path.exists(path) or isinstance(error, PeerLostError):
        return  # a lost peer is a consequence, never the root cause
    # the summary shows extraInfo.py_callstack when present, else the message
    record = {"message": line, "extraInfo": {"timestamp": str(int(time.time()))}}
    atomic_write_json(path, {"message": record})


# --------------------------------------------------------------------------------------------
# Sharding the training queries with the same number of steps on every rank
# --------------------------------------------------------------------------------------------


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """Queries per step on each rank: ``batch_size`` is the global batch, split evenly.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``world_size``.
    """
    if batch_size % world_size:
        raise ConfigError(
            f"training.batch_size={batch_size} must be divisible by the number of processes "
            f"({world_size}): it is the global batch, split evenly over the processes"
        )
    return batch_size // world_size


def steps_per_epoch(n_queries: int, world_size: int, batch_size: int) -> int:
    """Steps every rank takes per epoch: the batches of the smallest shard, whose size every
    rank trains on (:func:`shard_loader`).

    Shards of :meth:`QueryDataset.shard` hold ``n_queries // world_size`` or one more query.

    >>> steps_per_epoch(64, 2, 16), steps_per_epoch(65, 2, 16), steps_per_epoch(67, 2, 16)
    (4, 4, 5)

    Raises:
        ConfigError: fewer queries than processes, or see :func:`per_rank_batch_size`.
    """
    local = per_rank_batch_size(batch_size, world_size)
    smallest = n_queries // world_size
    if smallest == 0:
        raise ConfigError(
            f"{n_queries} training queries cannot be shared by {world_size} processes; "
            "use fewer processes"
        )
    return math.ceil(smallest / local)


def shard_loader(
    dataset: QueryDataset,
    dist: Distributed,
    *,
    batch_size: int,
    seed: int,
    bucket_by_length: bool,
) -> BatchLoader:
    """The shuffled training batches of this rank; all of ``dataset`` for one process.

    In a distributed job: this rank's shard, ``batch_size // world_size`` queries per batch,
    order from ``(seed, epoch)``; every rank uses ``len(dataset) // world_size`` queries of
    its shard per epoch (a shard one query larger leaves out another one each epoch), so every
    rank takes :func:`steps_per_epoch` steps.
    """
    if not dist.enabled:
        return dataset.loader(
            batch_size, shuffle=True, seed=seed, bucket_by_length=bucket_by_length
        )
    steps = steps_per_epoch(len(dataset), dist.world_size, batch_size)  # refuses too few
    shard = dataset.subset(dataset.shard(dist.rank, dist.world_size))
    loader = shard.loader(
        per_rank_batch_size(batch_size, dist.world_size),
        shuffle=True,
        seed=seed,
        bucket_by_length=bucket_by_length,
        max_queries=len(dataset) // dist.world_size,
    )
    assert len(loader) == steps  # DDP hangs on unequal step counts
    return loader
