"""Slates, batching, list sampling, sharding and query splits of ltr.data.dataset."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ltr.data.dataset import (
    Batch,
    QueryDataset,
    pad_slates,
    split_by_query,
    subset_queries,
)
from ltr.data.letor import LetorData
from ltr.errors import ConfigError, ShapeError


def make_data(lengths: list[int] | np.ndarray, *, n_features: int = 3, seed: int = 0) -> LetorData:
    """Documents whose feature 0 is ``row + 1`` (never 0, so padding is recognisable)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_docs = int(offsets[-1])
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_docs, n_features)).astype(np.float32)
    features[:, 0] = np.arange(1, n_docs + 1)
    labels = rng.integers(0, 3, size=n_docs).astype(np.float32)
    query_ids = np.array([f"q{q}" for q in range(lengths.size)])
    doc_ids = np.array([f"d{r}" for r in range(n_docs)])
    return LetorData(features, labels, query_ids, offsets, doc_ids)


def rows_of(slates_features: np.ndarray, mask: np.ndarray) -> list[list[int]]:
    """Source row of every real document, per query (feature 0 is row + 1)."""
    return [(f[m, 0].astype(int) - 1).tolist() for f, m in zip(slates_features, mask, strict=True)]


def test_pad_slates_places_each_query_in_file_order_with_zero_padding() -> None:
    data = make_data([2, 4, 1])
    slates = pad_slates(data)
    assert slates.features.shape == (3, 4, 3) and slates.features.dtype == np.float32
    assert slates.labels.dtype == np.float32 and slates.mask.dtype == np.bool_
    assert rows_of(slates.features, slates.mask) == [[0, 1], [2, 3, 4, 5], [6]]
    assert slates.mask.sum(axis=1).tolist() == [2, 4, 1]
    assert not slates.features[~slates.mask].any() and not slates.labels[~slates.mask].any()
    np.testing.assert_array_equal(slates.labels[slates.mask], data.labels)
    assert slates.query_index.tolist() == [0, 1, 2]


def test_pad_slates_takes_queries_in_the_given_order() -> None:
    data = make_data([2, 4, 1])
    slates = pad_slates(data, [2, 0])
    assert rows_of(slates.features, slates.mask) == [[6], [0, 1]]
    assert slates.features.shape[1] == 2
    assert slates.query_index.tolist() == [2, 0]


def test_pad_slates_list_len_pads_wider_and_cuts_longer_lists() -> None:
    data = make_data([2, 4])
    wide = pad_slates(data, list_len=6)
    narrow = pad_slates(data, list_len=3)
    assert wide.mask.shape == (2, 6) and wide.mask.sum() == 6
    assert rows_of(narrow.features, narrow.mask) == [[0, 1], [2, 3, 4]]


def test_pad_slates_rejects_a_query_index_out_of_range() -> None:
    with pytest.raises(
        ShapeError, match=r"query_indices must lie in \[0, 2\); got values from 0 to 5"
    ):
        pad_slates(make_data([2, 4]), [0, 5])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.nan, "labels must be finite; labels hold NaN or inf at 2 real documents"),
        (np.inf, "labels must be finite; labels hold NaN or inf at 2 real documents"),
        (-1.0, "labels must be non-negative; labels hold negative values at 2 real documents"),
    ],
)
def test_query_dataset_refuses_bad_labels_naming_the_source(bad: float, message: str) -> None:
    # MSE, ListNet and ListMLE skip a per-batch label check: the data set is where NaN stops
    data = make_data([2, 4])
    data.labels[[1, 4]] = bad
    with pytest.raises(ShapeError, match=f"^{message}$"):
        QueryDataset(data)
    with pytest.raises(ShapeError, match=f"^train.txt: {message}$"):
        QueryDataset(replace(data, source="train.txt"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=12))
def test_pad_slates_real_positions_hold_exactly_the_documents(lengths: list[int]) -> None:
    data = make_data(lengths)
    slates = pad_slates(data)
    np.testing.assert_array_equal(slates.features[slates.mask], data.features)
    assert slates.padding_fraction == pytest.approx(
        1 - sum(lengths) / (len(lengths) * max(lengths))
    )


def test_single_document_and_10000_document_queries_batch_together() -> None:
    data = make_data([1, 10_500, 3])
    dataset = QueryDataset(data)
    (batch,) = list(dataset.batches(8))
    assert batch.features.shape == (3, 10_500, 3)
    assert batch.mask.sum(dim=1).tolist() == [1, 10_500, 3]
    assert batch.features[1, -1, 0].item() == 10_501  # last document of the long list


def test_sampling_cuts_a_10000_document_query_and_keeps_its_relevant_documents() -> None:
    data = make_data([1, 12_000])
    labels = np.zeros(data.n_docs, dtype=np.float32)
    labels[[5, 7000, 11_999]] = [1, 2, 1]
    data = LetorData(data.features, labels, data.query_ids, data.query_offsets)
    dataset = QueryDataset(data, max_list_length=100, list_sampling="sample")
    (batch,) = list(dataset.batches(2, shuffle=True, seed=0))
    assert batch.features.shape == (2, 100, 3)
    assert sorted(batch.mask.sum(dim=1).tolist()) == [1, 100]
    assert batch.labels.sum().item() == 4  # all three relevant documents made it


def test_batches_are_torch_tensors_with_contract_dtypes() -> None:
    batch = next(iter(QueryDataset(make_data([3, 5])).batches(2)))
    assert isinstance(batch, Batch)
    assert batch.features.dtype == torch.float32 and batch.features.shape == (2, 5, 3)
    assert batch.labels.dtype == torch.float32 and batch.mask.dtype == torch.bool
    assert batch.query_index.dtype == torch.int64


@pytest.mark.parametrize("bucket", [False, True])
def test_shuffled_epoch_yields_every_query_exactly_once(bucket: bool) -> None:
    lengths = np.random.default_rng(1).integers(1, 40, size=103)
    dataset = QueryDataset(make_data(lengths))
    batches = dataset.batch_indices(8, shuffle=True, seed=3, epoch=2, bucket_by_length=bucket)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert [b.size for b in batches].count(8) == 12


def test_shuffling_is_deterministic_for_seed_and_epoch() -> None:
    dataset = QueryDataset(make_data(np.full(50, 3)))
    first = dataset.batch_indices(4, shuffle=True, seed=7, epoch=1, bucket_by_length=True)
    again = dataset.batch_indices(4, shuffle=True, seed=7, epoch=1, bucket_by_length=True)
    assert [b.tolist() for b in first] == [b.tolist() for b in again]


def test_shuffling_differs_between_epochs_and_seeds() -> None:
    dataset = QueryDataset(make_data(np.full(50, 3)))
    order = {
        (seed, epoch): np.concatenate(
            dataset.batch_indices(4, shuffle=True, seed=seed, epoch=epoch)
        )
        for seed, epoch in [(0, 0), (0, 1), (1, 0)]
    }
    assert not np.array_equal(order[0, 0], order[0, 1])
    assert not np.array_equal(order[0, 0], order[1, 0])


def test_without_shuffle_batches_follow_dataset_order() -> None:
    dataset = QueryDataset(make_data([1, 2, 3, 4, 5]))
    assert [b.tolist() for b in dataset.batch_indices(2)] == [[0, 1], [2, 3], [4]]


def test_drop_last_drops_only_a_short_final_batch() -> None:
    dataset = QueryDataset(make_data(np.full(10, 2)))
    assert [b.size for b in dataset.batch_indices(4, drop_last=True)] == [4, 4]
    assert [b.size for b in dataset.batch_indices(5, drop_last=True)] == [5, 5]
    assert dataset.num_batches(4, drop_last=True) == 2 and dataset.num_batches(4) == 3


def test_num_batches_of_batch_size_zero_is_a_config_error_like_batch_indices() -> None:
    dataset = QueryDataset(make_data(np.full(10, 2)))
    with pytest.raises(ConfigError, match=r"batch_size must be at least 1; got 0"):
        dataset.num_batches(0)


def padding_fraction(dataset: QueryDataset, **kwargs: object) -> float:
    """Padded share of all slate positions over one epoch."""
    lengths = dataset.data.list_lengths
    padded = real = 0
    for index in dataset.batch_indices(32, **kwargs):  # type: ignore[arg-type]
        padded += index.size * int(lengths[index].max())
        real += int(lengths[index].sum())
    return 1 - real / padded


def mq2008_like_lengths(n_queries: int, seed: int) -> np.ndarray:
    """Lognormal lengths with MQ2008's shape: min 5, median 8, max 121."""
    raw = np.random.default_rng(seed).lognormal(np.log(8.0), 0.75, size=n_queries)
    return np.clip(np.rint(raw), 5, 121).astype(np.int64)


def test_bucketing_by_length_cuts_padding_on_mq2008_like_lengths() -> None:
    dataset = QueryDataset(make_data(mq2008_like_lengths(2000, seed=0), n_features=1))
    plain = padding_fraction(dataset, shuffle=True, seed=0)
    bucketed = padding_fraction(dataset, shuffle=True, seed=0, bucket_by_length=True)
    # measured: plain 0.72, bucketed 0.10 (batch size 32, chunks of 50 batches); the rest is
    # the long tail: a batch of the longest lists in a chunk spans 30-121 documents
    assert plain > 0.6
    assert bucketed < min(0.15, plain / 5)


def test_bucketing_by_length_cuts_padding_on_real_mq2008_train(shared_data: Path) -> None:
    with gzip.open(shared_data / "mq2008" / "Fold1" / "train.txt.gz", "rt") as handle:
        qids = [line.split(maxsplit=2)[1] for line in handle]
    boundaries = np.flatnonzero(np.array(qids[1:]) != np.array(qids[:-1])) + 1
    lengths = np.diff(np.concatenate([[0], boundaries, [len(qids)]]))
    assert lengths.size == 471 and lengths.sum() == 9630
    dataset = QueryDataset(make_data(lengths, n_features=1))
    plain = padding_fraction(dataset, shuffle=True, seed=0)
    bucketed = padding_fraction(dataset, shuffle=True, seed=0, bucket_by_length=True)
    # measured: plain 0.80, bucketed 0.077 (471 queries fill less than one 50-batch chunk)
    assert plain > 0.6
    assert bucketed < plain / 5


def test_truncate_keeps_the_first_documents_of_long_lists() -> None:
    dataset = QueryDataset(make_data([6, 2]), max_list_length=4)
    slates = dataset.slates([0, 1])
    assert rows_of(slates.features, slates.mask) == [[0, 1, 2, 3], [6, 7]]
    assert dataset.list_lengths.tolist() == [4, 2]


def labelled_query(labels: list[float]) -> LetorData:
    data = make_data([len(labels)])
    return LetorData(
        data.features, np.array(labels, dtype=np.float32), data.query_ids, data.query_offsets
    )


def test_sampling_keeps_every_relevant_document_when_they_fit() -> None:
    labels = [0, 0, 2, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    dataset = QueryDataset(labelled_query(labels), max_list_length=5, list_sampling="sample")
    for epoch in range(5):
        (slates,) = list(dataset.iter_slates(1, seed=0, epoch=epoch))
        kept = rows_of(slates.features, slates.mask)[0]
        assert len(kept) == 5 and {2, 5, 9} <= set(kept)
        assert kept == sorted(kept)  # file order survives sampling


def test_sampling_prefers_higher_labels_when_relevant_documents_overflow() -> None:
    labels = [1, 1, 0, 3, 1, 2, 1, 0]
    dataset = QueryDataset(labelled_query(labels), max_list_length=3, list_sampling="sample")
    slates = dataset.slates([0], rng=np.random.default_rng(0))
    kept = rows_of(slates.features, slates.mask)[0]
    assert {3, 5} <= set(kept)
    assert sorted(labels[r] for r in kept) == [1, 2, 3]


def test_sampling_draws_other_non_relevant_documents_in_other_epochs() -> None:
    labels = [1] + [0] * 40
    dataset = QueryDataset(labelled_query(labels), max_list_length=4, list_sampling="sample")

    def kept(epoch: int) -> tuple[int, ...]:
        (slates,) = list(dataset.iter_slates(1, seed=0, epoch=epoch))
        return tuple(rows_of(slates.features, slates.mask)[0])

    assert kept(0) == kept(0)
    assert all(0 in kept(epoch) for epoch in range(4))
    assert len({kept(epoch) for epoch in range(4)}) > 1


def test_sampling_leaves_short_lists_whole() -> None:
    dataset = QueryDataset(make_data([3, 9]), max_list_length=5, list_sampling="sample")
    slates = dataset.slates([0, 1])
    assert slates.mask.sum(axis=1).tolist() == [3, 5]
    assert rows_of(slates.features, slates.mask)[0] == [0, 1, 2]


def test_loader_len_matches_its_batches_and_set_epoch_changes_the_order() -> None:
    loader = QueryDataset(make_data(np.full(21, 2))).loader(4, shuffle=True, seed=0)
    first = [b.query_index.tolist() for b in loader]
    assert len(first) == len(loader) == 6
    loader.set_epoch(1)
    assert [b.query_index.tolist() for b in loader] != first


@pytest.mark.parametrize("bucket_by_length", [False, True])
def test_max_queries_leaves_out_the_end_of_the_epochs_order_before_batching(
    bucket_by_length: bool,
) -> None:
    dataset = QueryDataset(make_data(np.arange(1, 22)))  # 21 queries of distinct lengths
    left_out = []
    for epoch in range(4):
        every = dataset.batch_indices(
            4, shuffle=True, seed=0, epoch=epoch, bucket_by_length=bucket_by_length
        )
        some = dataset.batch_indices(
            4,
            shuffle=True,
            seed=0,
            epoch=epoch,
            bucket_by_length=bucket_by_length,
            max_queries=20,
        )
        # five full batches: the surplus query goes, not a batch
        assert [b.size for b in some] == [4] * 5 == [4] * dataset.num_batches(4, max_queries=20)
        used = np.concatenate(some)
        assert np.unique(used).size == 20
        (missing,) = set(range(21)) - set(used.tolist())
        left_out.append(missing)
        if not bucket_by_length:  # the same order, one query shorter
            assert np.concatenate(every)[:20].tolist() == used.tolist()
    assert len(set(left_out)) > 1  # another query each epoch


def test_shards_are_disjoint_cover_all_queries_and_balance_documents() -> None:
    lengths = np.random.default_rng(0).integers(1, 100, size=101)
    dataset = QueryDataset(make_data(lengths, n_features=1))
    shards = [dataset.shard(rank, 4) for rank in range(4)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(101))
    assert {s.size for s in shards} <= {25, 26}
    docs = [int(lengths[s].sum()) for s in shards]
    assert max(docs) - min(docs) <= 100  # dealt by length: at most about one list apart
    assert all(np.array_equal(dataset.shard(r, 4), shards[r]) for r in range(4))


def test_shard_subset_serves_only_its_queries() -> None:
    dataset = QueryDataset(make_data(np.arange(1, 11)))
    part = dataset.subset(dataset.shard(1, 3))
    served = np.concatenate(part.batch_indices(2, shuffle=True, seed=0))
    assert sorted(served.tolist()) == dataset.shard(1, 3).tolist()


def test_shard_rejects_a_rank_outside_the_world() -> None:
    with pytest.raises(ConfigError, match="rank must lie in"):
        QueryDataset(make_data([1, 2])).shard(2, 2)


def test_unknown_list_sampling_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="list_sampling must be one of truncate, sample; got 'top'"
    ):
        QueryDataset(make_data([1]), list_sampling="top")  # type: ignore[arg-type]


def test_subset_queries_copies_rows_ids_and_offsets() -> None:
    data = make_data([2, 3, 1])
    part = subset_queries(data, [2, 0])
    assert part.query_ids.tolist() == ["q2", "q0"]
    assert part.query_offsets.tolist() == [0, 1, 3]
    assert part.features[:, 0].tolist() == [6, 1, 2]
    assert part.doc_ids is not None and part.doc_ids.tolist() == ["d5", "d0", "d1"]


def test_split_by_query_is_disjoint_covering_and_seeded() -> None:
    data = make_data(np.random.default_rng(0).integers(1, 9, size=50))
    train, valid = split_by_query(data, 0.2, seed=4)
    assert valid.n_queries == 10 and train.n_queries == 40
    assert sorted([*train.query_ids, *valid.query_ids]) == sorted(data.query_ids)
    assert train.n_docs + valid.n_docs == data.n_docs
    assert split_by_query(data, 0.2, seed=4)[1].query_ids.tolist() == valid.query_ids.tolist()
    assert split_by_query(data, 0.2, seed=5)[1].query_ids.tolist() != valid.query_ids.tolist()


def test_split_by_query_rejects_a_fraction_outside_the_unit_interval() -> None:
    with pytest.raises(ConfigError, match=r"valid_fraction must lie in \(0, 1\); got 1.5"):
        split_by_query(make_data([1, 2]), 1.5)
