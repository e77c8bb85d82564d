"""The binary cache of parsed files: hits, staleness, corruption, no pickle."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ltr.data import cache
from ltr.data.cache import cache_path, cached_parse, default_cache_dir
from ltr.data.letor import LetorData, load_letor, read_letor
from ltr.errors import DataFormatError

TEXT = b"2 qid:10 1:0.5 2:1.25 #docid = A\n0 qid:10 1:0 2:3 #docid = B\n1 qid:7 2:1 #docid = C\n"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "train.txt"
    path.write_bytes(TEXT)
    return path


class CountingParser:
    def __init__(self, path: Path) -> None:
        self.path, self.calls = path, 0

    def __call__(self) -> LetorData:
        self.calls += 1
        return read_letor(self.path)


def entry(source: Path, tmp_path: Path) -> Path:
    return cache_path([source], cache_dir=tmp_path / "cache", key_extra="")


def test_second_call_is_a_hit_with_equal_arrays(source: Path, tmp_path: Path) -> None:
    parse = CountingParser(source)
    first = cached_parse(source, parse, cache_dir=tmp_path / "cache")
    second = cached_parse(source, parse, cache_dir=tmp_path / "cache")
    assert parse.calls == 1
    for name in ("features", "labels", "query_ids", "query_offsets", "doc_ids"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype
    assert second.features.flags.c_contiguous


def test_changed_source_makes_the_entry_stale(source: Path, tmp_path: Path) -> None:
    parse = CountingParser(source)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    source.write_bytes(TEXT + b"3 qid:8 1:9 #docid = D\n")
    os.utime(source, ns=(0, source.stat().st_mtime_ns + 10**9))  # mtime changes even if fast
    data = cached_parse(source, parse, cache_dir=tmp_path / "cache")
    assert parse.calls == 2 and data.n_docs == 4


def test_same_size_edit_with_restored_mtime_makes_the_entry_stale(
    source: Path, tmp_path: Path
) -> None:
    parse = CountingParser(source)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    before = source.stat()
    # the kernel stamps ctime from a coarse clock: wait for a tick so the edit gets a new one
    probe = tmp_path / "probe"
    probe.touch()
    while probe.stat().st_ctime_ns <= before.st_ctime_ns:
        probe.touch()
    source.write_bytes(TEXT.replace(b"2 qid:10", b"3 qid:10"))  # same size
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p or touch -r do
    assert (source.stat().st_size, source.stat().st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )
    data = cached_parse(source, parse, cache_dir=tmp_path / "cache")
    assert parse.calls == 2 and data.labels[0] == 3.0


def test_options_are_part_of_the_key(source: Path, tmp_path: Path) -> None:
    narrow = load_letor(source, cache_dir=tmp_path / "cache")
    wide = load_letor(source, n_features=5, cache_dir=tmp_path / "cache")
    assert (narrow.n_features, wide.n_features) == (2, 5)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_entry_is_rebuilt(source: Path, tmp_path: Path, damage: str) -> None:
    parse = CountingParser(source)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    path = entry(source, tmp_path)
    content = path.read_bytes()
    damaged = {"truncate": content[: len(content) // 2], "garbage": b"x" * 100, "empty": b""}
    path.write_bytes(damaged[damage])
    data = cached_parse(source, parse, cache_dir=tmp_path / "cache")
    assert parse.calls == 2 and data.n_docs == 3
    assert cached_parse(source, parse, cache_dir=tmp_path / "cache").n_docs == 3
    assert parse.calls == 2  # the rebuilt entry is good again


def test_flipped_bit_inside_the_features_is_caught_and_rebuilt(
    source: Path, tmp_path: Path
) -> None:
    parse = CountingParser(source)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    path = entry(source, tmp_path)
    content = bytearray(path.read_bytes())
    first_row = np.array([0.5, 1.25], dtype=np.float32).tobytes()
    assert content.count(first_row) == 1  # the features' first row, nowhere else
    content[content.index(first_row) + 5] ^= 0x01  # still a valid float: only the CRC sees it
    path.write_bytes(bytes(content))
    data = cached_parse(source, parse, cache_dir=tmp_path / "cache")
    assert parse.calls == 2
    assert data.features[0].tolist() == [0.5, 1.25]


def test_entry_with_object_array_is_refused_not_unpickled(source: Path, tmp_path: Path) -> None:
    parse = CountingParser(source)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    path = entry(source, tmp_path)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["query_ids"] = np.array(["10", "7"], dtype=object)  # would need pickle to load
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    assert cached_parse(source, parse, cache_dir=tmp_path / "cache").query_ids.dtype.kind == "U"
    assert parse.calls == 2


def test_entry_is_a_plain_npz_without_pickles(source: Path, tmp_path: Path) -> None:
    cached_parse(source, CountingParser(source), cache_dir=tmp_path / "cache")
    with np.load(entry(source, tmp_path), allow_pickle=False) as stored:
        assert {"features", "labels", "query_ids", "query_offsets", "doc_ids", "meta"} == set(
            stored.files
        )
        assert all(not stored[name].dtype.hasobject for name in stored.files)


def test_unwritable_cache_dir_still_returns_data(source: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    data = cached_parse(source, CountingParser(source), cache_dir=blocker / "cache")
    assert data.n_docs == 3


def test_default_cache_dir_follows_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LTR_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("LTR_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "ltr"


def test_format_version_change_invalidates(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse = CountingParser(source)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(cache, "FORMAT_VERSION", cache.FORMAT_VERSION + 1)
    cached_parse(source, parse, cache_dir=tmp_path / "cache")
    assert parse.calls == 2


def test_entries_of_a_reader_that_stored_overflow_as_inf_are_not_served(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"1 qid:1 1:1e40\n")
    key_extra = "layout=letor;n_features=None"  # what load_letor uses for this file
    target = cache_path([path], cache_dir=tmp_path / "cache", key_extra=key_extra)
    inf_data = LetorData(
        features=np.array([[np.inf]], np.float32),
        labels=np.ones(1, np.float32),
        query_ids=np.array(["1"]),
        query_offsets=np.array([0, 1], np.int64),
    )
    cache.save(target, inf_data, {**cache._meta([path], key_extra), "version": 2})
    with pytest.raises(DataFormatError, match=r"big\.txt:1: .* must fit in float32"):
        load_letor(path, cache_dir=tmp_path / "cache")
