"""The pure parts of distributed training: environment, batch split, equal steps, shards.

Real DDP with two gloo processes is in ``tests/integration/test_distributed.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltr.data.dataset import BatchLoader, QueryDataset
from ltr.data.synthetic import make_synthetic
from ltr.errors import ConfigError
from ltr.models import build_model
from ltr.training.distributed import (
    Distributed,
    per_rank_batch_size,
    process_group,
    shard_loader,
    steps_per_epoch,
)
from ltr.training.trainer import score_data

TORCHRUN = {
    "RANK": "1",
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "1",
    "MASTER_ADDR": "h",
    "MASTER_PORT": "1",
}


def test_without_torchrun_the_environment_means_one_process() -> None:
    assert Distributed.from_env({}) == Distributed(rank=0, world_size=1, local_rank=0)
    assert not Distributed().enabled and Distributed().is_main


def test_torchrun_variables_give_rank_world_size_and_local_rank() -> None:
    dist = Distributed.from_env(TORCHRUN)
    assert (dist.rank, dist.world_size, dist.local_rank) == (1, 2, 1)
    assert dist.enabled and not dist.is_main
    assert dist.device(torch.device("cuda")) == torch.device("cuda", 1)
    assert dist.device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("changes", "launcher"),
    [
        ({"WORLD_SIZE": None}, "ltr"),
        ({}, "torchrun --nproc-per-node 2 -m ltr"),  # no LOCAL_WORLD_SIZE: all on one machine
        ({"LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "1"}, "torchrun --nproc-per-node 2 -m ltr"),
        (
            {"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "GROUP_WORLD_SIZE": "2"},
            "torchrun --nnodes 2 --nproc-per-node 4 -m ltr",
        ),
    ],
)
def test_the_launcher_starts_as_many_machines_and_processes_per_machine(
    changes: dict[str, str | None], launcher: str
) -> None:
    env = {k: v for k, v in {**TORCHRUN, **changes}.items() if v is not None}
    assert Distributed.from_env(env).launcher == launcher


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"MASTER_PORT": None}, "MASTER_PORT not set; start distributed training with `torchrun"),
        ({"RANK": "2"}, "RANK=2, LOCAL_RANK=1, WORLD_SIZE=2"),
        ({"WORLD_SIZE": "two"}, "must be integers"),
        ({"LOCAL_WORLD_SIZE": "1"}, "LOCAL_RANK=1, WORLD_SIZE=2, LOCAL_WORLD_SIZE=1"),
        ({"GROUP_WORLD_SIZE": "3"}, "LOCAL_WORLD_SIZE=2, GROUP_WORLD_SIZE=3 do not describe"),
    ],
)
def test_inconsistent_environment_is_a_config_error(
    changes: dict[str, str | None], message: str
) -> None:
    env = {k: v for k, v in {**TORCHRUN, **changes}.items() if v is not None}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Distributed.from_env(env)


def test_one_process_helpers_return_their_argument_and_need_no_group() -> None:
    dist = Distributed()
    scores = np.arange(3.0)
    assert dist.average(2.5) == 2.5 and dist.broadcast(0.25) == 0.25
    assert dist.sum_array(scores) is scores
    assert dist.broadcast_object("run") == "run"
    dist.barrier()
    model = torch.nn.Linear(2, 1)
    assert dist.wrap(model, "cpu") is model
    with process_group(dist, torch.device("cpu")):
        assert not torch.distributed.is_initialized()


def test_batch_size_is_the_global_batch_and_must_divide_evenly() -> None:
    assert per_rank_batch_size(32, 1) == 32
    assert per_rank_batch_size(32, 4) == 8
    with pytest.raises(ConfigError, match=r"training\.batch_size=30 must be divisible .* \(4\)"):
        per_rank_batch_size(30, 4)


def test_fewer_queries_than_processes_is_refused() -> None:
    with pytest.raises(ConfigError, match="3 training queries cannot be shared by 4 processes"):
        steps_per_epoch(3, 4, 4)


@pytest.mark.parametrize("bucket_by_length", [False, True])
@pytest.mark.parametrize(
    ("n_queries", "world_size", "batch_size"),
    [
        (48, 2, 16),
        (49, 2, 16),
        (41, 2, 8),
        (33, 2, 4),
        (33, 4, 8),
        (50, 3, 6),
        (35, 4, 8),
        (7, 2, 2),
        (5, 2, 64),
    ],
)
def test_every_rank_takes_the_same_steps_and_an_epoch_skips_fewer_queries_than_ranks(
    n_queries: int, world_size: int, batch_size: int, bucket_by_length: bool
) -> None:
    data = make_synthetic(n_queries=n_queries, n_features=8, max_docs=9, seed=n_queries)
    dataset = QueryDataset(data)
    loaders = [
        shard_loader(
            dataset,
            Distributed(rank, world_size),
            batch_size=batch_size,
            seed=3,
            bucket_by_length=bucket_by_length,
        )
        for rank in range(world_size)
    ]
    expected = steps_per_epoch(n_queries, world_size, batch_size)
    for epoch in range(3):
        seen: list[np.ndarray] = []
        for loader in loaders:
            loader.set_epoch(epoch)
            batches = [batch.query_index.numpy() for batch in loader]
            assert len(batches) == len(loader) == expected  # DDP hangs on unequal step counts
            assert all(0 < b.size <= batch_size // world_size for b in batches)
            seen.append(np.concatenate(batches))
        everything = np.concatenate(seen)
        assert np.unique(everything).size == everything.size  # no query trains twice
        # only the surplus queries of the larger shards are skipped, never a batch
        assert n_queries - everything.size == n_queries % world_size <= world_size - 1


@pytest.mark.parametrize("bucket_by_length", [False, True])
def test_skipped_queries_change_from_epoch_to_epoch(bucket_by_length: bool) -> None:
    # 48 queries on 2 ranks with 8 per batch: shards of 24 -> 3 steps, nothing skipped;
    # 49 queries: one shard holds 25 and skips one query per epoch, another one each epoch
    data = make_synthetic(n_queries=49, n_features=8, max_docs=9, seed=0)
    dataset = QueryDataset(data)
    big = max(range(2), key=lambda rank: dataset.shard(rank, 2).size)
    loader = shard_loader(
        dataset, Distributed(big, 2), batch_size=16, seed=0, bucket_by_length=bucket_by_length
    )
    skipped = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        used = np.concatenate([batch.query_index.numpy() for batch in loader])
        skipped.append(frozenset(set(dataset.shard(big, 2).tolist()) - set(used.tolist())))
    assert all(len(s) == 1 for s in skipped) and len(set(skipped)) > 1


def test_one_process_gets_the_plain_loader_over_every_query() -> None:
    data = make_synthetic(n_queries=10, n_features=8, max_docs=9, seed=0)
    loader = shard_loader(
        QueryDataset(data), Distributed(), batch_size=4, seed=0, bucket_by_length=False
    )
    assert isinstance(loader, BatchLoader) and len(loader) == 3


def test_scores_of_the_validation_shards_add_up_to_the_whole_file() -> None:
    data = make_synthetic(n_queries=15, n_features=8, max_docs=9, seed=1)
    torch.manual_seed(0)
    model = build_model("mlp", 8, hidden_dims=[8])
    whole = score_data(model, data, batch_size=4)
    shards = [Distributed(rank, 3).shard(data) for rank in range(3)]
    parts = [score_data(model, data, batch_size=4, queries=shard) for shard in shards]
    np.testing.assert_allclose(np.sum(parts, axis=0), whole, rtol=1e-6, atol=0)
    assert all(np.count_nonzero(part) < whole.size for part in parts)


def test_a_lost_peer_is_told_apart_from_other_backend_errors() -> None:
    from ltr.training.distributed import _peer_lost

    gloo = (
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection "
        "closed by peer [127.0.0.1]:40121. This is typically caused by a remote worker crashing."
    )
    assert _peer_lost(gloo) == "Connection closed by peer [127.0.0.1]:40121"
    assert _peer_lost("Connection reset by peer") == "Connection reset by peer"
    assert _peer_lost("Tensors must be contiguous") is None
