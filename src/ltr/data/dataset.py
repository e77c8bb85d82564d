"""Query groups as padded slates, and the batching that feeds training and evaluation.

A slate holds the documents of several queries side by side, padded to one length:
``features`` float32 ``[queries, list_len, n_features]``, ``labels`` float32
``[queries, list_len]``, ``mask`` bool ``[queries, list_len]`` (True = real document). Padded
positions hold zeros. Documents keep their file order inside a slate, because metrics break score
ties by input order.

The core is NumPy (:func:`pad_slates`, :meth:`QueryDataset.iter_slates`);
:meth:`QueryDataset.batches` wraps the same arrays as torch tensors without copying them.

Randomness: every random choice of an epoch comes from ``np.random.default_rng((seed, epoch,
stream))``, so an epoch is reproducible from ``(seed, epoch)`` alone, whatever ran before it (a
resumed run sees the same batches as an uninterrupted one).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from ltr._messages import refuse_bad_labels
from ltr.data.letor import LetorData
from ltr.errors import ConfigError, ShapeError

__all__ = [
    "Batch",
    "BatchLoader",
    "ListSampling",
    "QueryDataset",
    "Slates",
    "pad_slates",
    "split_by_query",
    "subset_queries",
]

ListSampling = Literal["truncate", "sample"]

# Independent random streams of one (seed, epoch): query order, and list sampling.
_SHUFFLE_STREAM = 0
_SAMPLE_STREAM = 1
_SPLIT_STREAM = 2


@dataclass(frozen=True)
class Slates:
    """Padded query groups as NumPy arrays.

    Attributes:
        features: ``float32 [queries, list_len, n_features]``, zeros at padded positions.
        labels: ``float32 [queries, list_len]``, zeros at padded positions.
        mask: ``bool [queries, list_len]``, True for real documents.
        query_index: ``int64 [queries]`` position of each query in the source ``LetorData``.
    """

    features: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    query_index: np.ndarray

    @property
    def padding_fraction(self) -> float:
        """Share of the ``queries * list_len`` positions that are padding (0 for an empty slate)."""
        return 0.0 if self.mask.size == 0 else 1.0 - float(self.mask.mean())


@dataclass(frozen=True)
class Batch:
    """A padded slate as torch tensors; same fields, shapes and dtypes as :class:`Slates`."""

    features: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor
    query_index: torch.Tensor

    @classmethod
    def from_slates(cls, slates: Slates) -> Batch:
        """Wrap NumPy slates as tensors that share their memory."""
        return cls(
            features=torch.from_numpy(slates.features),
            labels=torch.from_numpy(slates.labels),
            mask=torch.from_numpy(slates.mask),
            query_index=torch.from_numpy(slates.query_index),
        )

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        """The same batch on ``device``."""
        return Batch(
            features=self.features.to(device, non_blocking=non_blocking),
            labels=self.labels.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
            query_index=self.query_index.to(device, non_blocking=non_blocking),
        )


def _check_data(data: LetorData) -> None:
    """Cheap consistency checks of the flat arrays, and of the labels (finite and non-negative:
    the losses that skip a per-batch label check would turn a bad one into a NaN loss); raises
    ShapeError."""
    offsets = data.query_offsets
    if data.features.ndim != 2 or data.labels.shape != (data.n_docs,):
        raise ShapeError(
            "features must be [n_docs, n_features] and labels [n_docs]; "
            f"got {data.features.shape} and {data.labels.shape}"
        )
    if offsets.ndim != 1 or offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != data.n_docs:
        raise ShapeError(
            f"query_offsets must run from 0 to n_docs={data.n_docs}; got {offsets.shape} array "
            f"from {offsets[:1].tolist()} to {offsets[-1:].tolist()}"
        )
    try:
        refuse_bad_labels(
            n_infinite=int(np.count_nonzero(~np.isfinite(data.labels))),
            n_negative=int(np.count_nonzero(data.labels < 0)),
        )
    except ShapeError as err:
        if data.source is None:
            raise
        raise ShapeError(f"{data.source}: {err}") from None


def _query_indices(n_queries: int, query_indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
    """``int64 [k]`` validated query positions; all queries when None."""
    if query_indices is None:
        return np.arange(n_queries, dtype=np.int64)
    index = np.asarray(query_indices)
    if index.size == 0:
        return np.zeros(0, dtype=np.int64)
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise ShapeError(
            f"query_indices must be a 1-D integer array; got {index.dtype} {index.shape}"
        )
    if index.min() < 0 or index.max() >= n_queries:
        raise ShapeError(
            f"query_indices must lie in [0, {n_queries}); got values from {index.min()} to "
            f"{index.max()}"
        )
    return index.astype(np.int64, copy=False)


def _gather(data: LetorData, query_index: np.ndarray, rows: np.ndarray, mask: np.ndarray) -> Slates:
    """Slates whose position ``[q, j]`` holds document ``rows[q, j]`` where ``mask[q, j]``."""
    n_queries, list_len = mask.shape
    features = np.zeros((n_queries, list_len, data.n_features), dtype=np.float32)
    labels = np.zeros((n_queries, list_len), dtype=np.float32)
    picked = rows[mask]
    features[mask] = data.features[picked]
    labels[mask] = data.labels[picked]
    return Slates(features, labels, mask, query_index)


def pad_slates(
    data: LetorData,
    query_indices: Sequence[int] | np.ndarray | None = None,
    *,
    list_len: int | None = None,
) -> Slates:
    """Pad the documents of some queries into one slate, in file order.

    Args:
        data: the ranking data.
        query_indices: ``int [queries]`` positions of the queries to take, in slate order;
            None takes every query.
        list_len: slate width; None uses the longest selected list. A list longer than
            ``list_len`` keeps its first ``list_len`` documents.

    Returns:
        :class:`Slates` with ``features [queries, list_len, n_features]``, ``labels`` and
        ``mask [queries, list_len]``, ``query_index [queries]``.

    Raises:
        ConfigError: ``list_len`` below 1.
        ShapeError: a query index out of range.
    """
    if list_len is not None and list_len < 1:
        raise ConfigError(f"list_len must be at least 1; got {list_len}")
    index = _query_indices(data.n_queries, query_indices)
    lengths = data.list_lengths[index]
    return _pad(data, index, list_len if list_len is not None else int(lengths.max(initial=0)))


def _pad(data: LetorData, index: np.ndarray, width: int) -> Slates:
    """Slates ``width`` wide holding the first ``width`` documents of each list."""
    lengths = data.list_lengths[index]
    positions = np.arange(width, dtype=np.int64)
    mask = positions < lengths[:, None]
    rows = data.query_offsets[index][:, None] + positions
    return _gather(data, index, rows, mask)


def _sample_lists(
    data: LetorData, index: np.ndarray, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[queries, limit]`` and mask keeping at most ``limit`` documents per list.

    Lists longer than ``limit`` keep their most relevant documents first (higher label first,
    random order within a label), then random non-relevant ones; the kept documents stay in file
    order. Shorter lists are kept whole.
    """
    lengths = data.list_lengths[index]
    starts = data.query_offsets[index]
    width = min(limit, int(lengths.max(initial=0)))
    positions = np.arange(width, dtype=np.int64)
    rows = starts[:, None] + positions
    mask = positions < lengths[:, None]
    long = np.flatnonzero(lengths > limit)
    if long.size:
        full = np.arange(int(lengths[long].max()), dtype=np.int64)
        real = full < lengths[long, None]
        candidate = np.where(real, starts[long, None] + full, 0)
        # padding gets label -inf, so it sorts after every real document
        label = np.where(real, data.labels[candidate], -np.inf)
        tie_break = rng.random(candidate.shape)
        order = np.lexsort((tie_break, -label), axis=-1)  # last key is the primary one
        kept = np.sort(order[:, :limit], axis=-1)  # back to file order
        rows[long] = starts[long, None] + kept
    return rows, mask


def subset_queries(data: LetorData, query_indices: Sequence[int] | np.ndarray) -> LetorData:
    """A new ``LetorData`` holding only the given queries, in the given order.

    Args:
        data: the ranking data.
        query_indices: ``int [k]`` positions of the queries to keep.

    Returns:
        ``LetorData`` with ``k`` queries; arrays are copies.
    """
    index = _query_indices(data.n_queries, query_indices)
    lengths = data.list_lengths[index]
    offsets = np.zeros(index.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # row r of the new data comes from old row: old start of its query + (r - new start)
    rows = np.repeat(data.query_offsets[index] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return LetorData(
        features=data.features[rows],
        labels=data.labels[rows],
        query_ids=data.query_ids[index],
        query_offsets=offsets,
        doc_ids=None if data.doc_ids is None else data.doc_ids[rows],
    )


def split_by_query(
    data: LetorData, valid_fraction: float = 0.2, *, seed: int = 0
) -> tuple[LetorData, LetorData]:
    """Split a training set by query into train and validation parts.

    Queries are assigned at random (seeded); each part keeps the file order of its queries. The
    validation part gets ``round(valid_fraction * n_queries)`` queries, at least 1, and the
    training part keeps at least 1.

    Args:
        data: the training data, at least 2 queries.
        valid_fraction: share of queries for validation, in (0, 1).
        seed: seed of the assignment.

    Returns:
        ``(train, valid)`` with disjoint queries that together cover ``data``.

    Raises:
        ConfigError: ``valid_fraction`` outside (0, 1) or fewer than 2 queries.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must lie in (0, 1); got {valid_fraction}")
    n = data.n_queries
    if n < 2:
        raise ConfigError(f"splitting by query needs at least 2 queries; got {n}")
    n_valid = min(max(round(valid_fraction * n), 1), n - 1)
    order = np.random.default_rng((seed, 0, _SPLIT_STREAM)).permutation(n)
    valid = np.sort(order[:n_valid])
    train = np.sort(order[n_valid:])
    return subset_queries(data, train), subset_queries(data, valid)


class QueryDataset:
    """Queries of a ``LetorData`` served as padded slates, for training and evaluation.

    Args:
        data: the ranking data.
        max_list_length: cap on documents per list; None keeps whole lists.
        list_sampling: how a longer list is cut: ``"truncate"`` keeps its first
            ``max_list_length`` documents; ``"sample"`` keeps the relevant documents first
            (higher label first) and fills up with random non-relevant ones, drawn anew each
            epoch. Kept documents stay in file order either way.
        query_indices: the queries of ``data`` this dataset serves (e.g. one shard); None = all.

    Raises:
        ConfigError: an unknown ``list_sampling`` or ``max_list_length`` below 1.
        ShapeError: inconsistent ``data`` arrays or a query index out of range.
    """

    def __init__(
        self,
        data: LetorData,
        *,
        max_list_length: int | None = None,
        list_sampling: ListSampling = "truncate",
        query_indices: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if list_sampling not in get_args(ListSampling):
            raise ConfigError(
                f"list_sampling must be one of {', '.join(get_args(ListSampling))}; "
                f"got {list_sampling!r}"
            )
        if max_list_length is not None and max_list_length < 1:
            raise ConfigError(f"max_list_length must be at least 1; got {max_list_length}")
        _check_data(data)
        self.data = data
        self.max_list_length = max_list_length
        self.list_sampling: ListSampling = list_sampling
        self.query_indices = _query_indices(data.n_queries, query_indices)

    def __len__(self) -> int:
        """Number of queries served."""
        return int(self.query_indices.size)

    @property
    def list_lengths(self) -> np.ndarray:
        """``int64 [len(self)]`` documents per served list, after the ``max_list_length`` cap."""
        lengths: np.ndarray = self.data.list_lengths[self.query_indices]
        if self.max_list_length is not None:
            lengths = np.minimum(lengths, self.max_list_length)
        return lengths

    def _epoch_size(self, max_queries: int | None) -> int:
        """Queries one epoch uses: all, or at most ``max_queries``."""
        if max_queries is None:
            return len(self)
        if max_queries < 0:
            raise ConfigError(f"max_queries must be at least 0; got {max_queries}")
        return min(len(self), max_queries)

    def subset(self, query_indices: Sequence[int] | np.ndarray) -> QueryDataset:
        """The same dataset restricted to ``query_indices`` (positions in ``self.data``)."""
        return QueryDataset(
            self.data,
            max_list_length=self.max_list_length,
            list_sampling=self.list_sampling,
            query_indices=query_indices,
        )

    def shard(self, rank: int, world_size: int) -> np.ndarray:
        """Query indices (positions in ``self.data``) of one worker's share, sorted.

        Shards are deterministic, disjoint and together cover the dataset. Queries are dealt
        round-robin in order of list length, so shards have similar sizes (they differ by at most
        one query) and similar document counts. Use with :meth:`subset`.

        Raises:
            ConfigError: ``world_size < 1`` or ``rank`` outside ``[0, world_size)``.
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"rank must lie in [0, world_size) with world_size >= 1; got rank={rank}, "
                f"world_size={world_size}"
            )
        by_length = np.argsort(self.data.list_lengths[self.query_indices], kind="stable")
        return np.sort(self.query_indices[by_length[rank::world_size]])

    def num_batches(
        self, batch_size: int, *, drop_last: bool = False, max_queries: int | None = None
    ) -> int:
        """How many batches one epoch yields (``max_queries`` as in :meth:`batch_indices`).

        Raises:
            ConfigError: ``batch_size`` below 1, as :meth:`batch_indices`.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
        full, rest = divmod(self._epoch_size(max_queries), batch_size)
        return full + int(rest > 0 and not drop_last)

    def batch_indices(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        bucket_by_length: bool = False,
        drop_last: bool = False,
        bucket_batches: int = 50,
        max_queries: int | None = None,
    ) -> list[np.ndarray]:
        """The query indices (positions in ``self.data``) of every batch of one epoch.

        Without ``shuffle`` queries come in dataset order, or sorted by list length when
        ``bucket_by_length``. With ``shuffle`` the order is a permutation seeded by
        ``(seed, epoch)``; ``bucket_by_length`` then sorts queries by length within shuffled
        chunks of ``bucket_batches * batch_size`` queries, cuts the batches, and shuffles the
        batch order, so that each batch holds lists of similar length. ``max_queries`` keeps
        the first queries of the permutation (of dataset order without ``shuffle``) before
        any sorting or cutting: a shuffled epoch leaves out other queries than the next.

        Args:
            batch_size: queries per batch, at least 1.
            shuffle: shuffle the queries (and batches) for this epoch.
            seed: seed of the shuffling.
            epoch: epoch number; another epoch gives another order.
            bucket_by_length: group queries of similar list length to keep padding small.
            drop_last: drop a last batch smaller than ``batch_size``.
            bucket_batches: chunk size, in batches, of the length sorting when shuffling.
            max_queries: use at most this many queries this epoch (a distributed job gives
                every rank as many); None for all.

        Returns:
            One ``int64 [<= batch_size]`` array per batch.
        """
        if batch_size < 1 or bucket_batches < 1:
            raise ConfigError(
                f"batch_size and bucket_batches must be at least 1; got {batch_size} and "
                f"{bucket_batches}"
            )
        rng = np.random.default_rng((seed, epoch, _SHUFFLE_STREAM))
        order = rng.permutation(len(self)) if shuffle else np.arange(len(self))
        n = self._epoch_size(max_queries)
        order = order[:n]  # the surplus is left out before any batch is cut
        if bucket_by_length:
            chunk_size = batch_size * bucket_batches if shuffle else max(n, 1)
            chunk = np.arange(n) // chunk_size
            # stable: equal lengths keep their (shuffled) order
            order = order[np.lexsort((self.list_lengths[order], chunk))]
        batches = [order[start : start + batch_size] for start in range(0, n, batch_size)]
        if drop_last and batches and batches[-1].size < batch_size:
            batches.pop()
        if shuffle and bucket_by_length:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return [self.query_indices[batch] for batch in batches]

    def slates(
        self, query_indices: Sequence[int] | np.ndarray, *, rng: np.random.Generator | None = None
    ) -> Slates:
        """One padded slate of the given queries, with the ``max_list_length`` policy applied.

        Args:
            query_indices: positions in ``self.data``, in slate order.
            rng: source of the list sampling; None means a fixed seed (``list_sampling="sample"``
                only).

        Returns:
            :class:`Slates` as wide as the longest kept list.
        """
        index = _query_indices(self.data.n_queries, query_indices)
        limit = self.max_list_length
        if limit is None or self.list_sampling == "truncate":
            width = int(self.data.list_lengths[index].max(initial=0))
            return _pad(self.data, index, width if limit is None else min(width, limit))
        if rng is None:
            rng = np.random.default_rng((0, 0, _SAMPLE_STREAM))
        rows, mask = _sample_lists(self.data, index, limit, rng)
        return _gather(self.data, index, rows, mask)

    def iter_slates(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        bucket_by_length: bool = False,
        drop_last: bool = False,
        max_queries: int | None = None,
    ) -> Iterator[Slates]:
        """NumPy slates of one epoch; arguments as in :meth:`batch_indices`."""
        rng = np.random.default_rng((seed, epoch, _SAMPLE_STREAM))
        for index in self.batch_indices(
            batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            bucket_by_length=bucket_by_length,
            drop_last=drop_last,
            max_queries=max_queries,
        ):
            yield self.slates(index, rng=rng)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        bucket_by_length: bool = False,
        drop_last: bool = False,
        max_queries: int | None = None,
    ) -> Iterator[Batch]:
        """Torch batches of one epoch; arguments as in :meth:`batch_indices`."""
        for slates in self.iter_slates(
            batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            bucket_by_length=bucket_by_length,
            drop_last=drop_last,
            max_queries=max_queries,
        ):
            yield Batch.from_slates(slates)

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        bucket_by_length: bool = False,
        drop_last: bool = False,
        max_queries: int | None = None,
    ) -> BatchLoader:
        """A re-iterable batch source with ``len()``; call ``set_epoch`` before each epoch.
        Arguments as in :meth:`batch_indices`."""
        return BatchLoader(
            self,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            bucket_by_length=bucket_by_length,
            drop_last=drop_last,
            max_queries=max_queries,
        )


@dataclass
class BatchLoader:
    """Iterable of torch :class:`Batch` for one epoch at a time, like a DataLoader.

    ``set_epoch(e)`` picks the epoch whose order the next iteration yields (as with
    ``DistributedSampler``); iterating twice without it repeats the same epoch.
    """

    dataset: QueryDataset
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    bucket_by_length: bool = False
    drop_last: bool = False
    max_queries: int | None = None
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next iteration on."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.dataset.num_batches(
            self.batch_size, drop_last=self.drop_last, max_queries=self.max_queries
        )

    def __iter__(self) -> Iterator[Batch]:
        return self.dataset.batches(
            self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            bucket_by_length=self.bucket_by_length,
            drop_last=self.drop_last,
            max_queries=self.max_queries,
        )
