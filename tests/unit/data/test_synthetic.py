"""The synthetic generator of ltr.data.synthetic: determinism, shape of the data, learnability."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from ltr.data.dataset import pad_slates
from ltr.data.layout import FILE_NAMES
from ltr.data.letor import LetorData, read_letor
from ltr.data.synthetic import (
    MIN_FEATURES,
    MIN_QUERIES,
    latent_relevance,
    make_synthetic,
    write_synthetic,
)
from ltr.errors import ConfigError


def ndcg_at_10(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> float:
    """Mean NDCG@10 over ``[Q, L]`` slates: exp2 gain, stable ties, no relevant doc = 0."""
    order = np.argsort(-np.where(mask, scores, -np.inf), axis=1, kind="stable")
    gains = np.where(mask, 2.0**labels - 1, 0.0)
    discount = 1 / np.log2(np.arange(2, 12))[: gains.shape[1]]
    dcg = (np.take_along_axis(gains, order, axis=1)[:, :10] * discount).sum(axis=1)
    ideal = (-np.sort(-gains, axis=1)[:, :10] * discount).sum(axis=1)
    return float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))


def relevant_per_query(data: LetorData) -> np.ndarray:
    return np.add.reduceat(data.labels > 0, data.query_offsets[:-1])


def test_same_seed_gives_bit_identical_data() -> None:
    first, second = make_synthetic(seed=5), make_synthetic(seed=5)
    assert first.features.tobytes() == second.features.tobytes()
    assert first.labels.tobytes() == second.labels.tobytes()
    assert first.query_offsets.tolist() == second.query_offsets.tolist()


def test_other_seed_gives_other_data() -> None:
    assert not np.array_equal(make_synthetic(seed=0).labels, make_synthetic(seed=1).labels)


def test_arrays_follow_the_letor_data_contract() -> None:
    data = make_synthetic(n_queries=40, n_features=12)
    assert data.features.dtype == np.float32 and data.features.shape == (data.n_docs, 12)
    assert data.labels.dtype == np.float32 and data.query_offsets.dtype == np.int64
    assert data.query_ids.tolist()[:3] == ["1", "2", "3"]
    assert data.doc_ids is not None and data.doc_ids[data.query_offsets[1] + 1] == "D2-2"


def test_labels_are_graded_zero_to_four_with_every_grade_present() -> None:
    labels = make_synthetic(n_queries=300).labels
    assert np.unique(labels).tolist() == [0, 1, 2, 3, 4]
    assert np.mean(labels == 0) > 0.5  # mostly non-relevant, as in LETOR data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ten_to_twenty_five_percent_of_queries_have_no_relevant_document(seed: int) -> None:
    share = np.mean(relevant_per_query(make_synthetic(n_queries=1000, seed=seed)) == 0)
    assert 0.10 <= share <= 0.25


def test_list_lengths_vary_within_min_and_max_docs() -> None:
    lengths = make_synthetic(n_queries=500, min_docs=5, max_docs=60).list_lengths
    assert lengths.min() == 5 and lengths.max() == 60
    assert 10 <= np.median(lengths) <= 25


def test_query_level_feature_is_constant_within_each_query() -> None:
    data = make_synthetic(n_queries=50)
    column = data.features[:, 5]
    starts = data.query_offsets[:-1]
    assert np.array_equal(column, np.repeat(column[starts], data.list_lengths))
    assert np.unique(column[starts]).size == 50


def test_noise_block_holds_constant_columns() -> None:
    features = make_synthetic(n_queries=50, n_features=20).features
    constant = np.flatnonzero(features.min(axis=0) == features.max(axis=0)).tolist()
    assert constant == [10, 15]


def test_oracle_clearly_beats_random_ranking_and_every_single_feature() -> None:
    data = make_synthetic(n_queries=400, seed=3)
    slates = pad_slates(data)
    flat = slates.features.reshape(-1, data.n_features)
    oracle = latent_relevance(flat).reshape(slates.mask.shape)
    random = np.random.default_rng(0).random(slates.mask.shape)

    def score(scores: np.ndarray) -> float:
        return ndcg_at_10(scores, slates.labels, slates.mask)

    best_feature = max(
        max(score(slates.features[..., j]), score(-slates.features[..., j]))
        for j in range(data.n_features)
    )
    # measured: oracle 0.81, best single feature 0.57, random 0.36
    assert score(oracle) > best_feature + 0.15
    assert score(oracle) > score(random) + 0.3


def test_latent_relevance_rejects_too_few_columns() -> None:
    with pytest.raises(ConfigError, match=r"needs features \[n_docs, >= 5\]; got \(3, 4\)"):
        latent_relevance(np.zeros((3, 4)))


def test_too_few_features_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=f"n_features >= {MIN_FEATURES}"):
        make_synthetic(n_features=MIN_FEATURES - 1)


def test_ten_thousand_queries_of_about_fifty_documents_generate_in_seconds() -> None:
    start = time.perf_counter()
    data = make_synthetic(n_queries=10_000, min_docs=30, max_docs=80)
    elapsed = time.perf_counter() - start
    assert 400_000 < data.n_docs < 600_000
    assert elapsed < 5.0  # measured ~0.5 s


def test_write_synthetic_writes_disjoint_splits_that_read_back_exactly(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path, n_queries=50, n_features=10, seed=2)
    parts = {name: read_letor(paths[name]) for name in ("train", "vali", "test")}
    assert [parts[name].n_queries for name in ("train", "vali", "test")] == [30, 10, 10]
    ids = [qid for part in parts.values() for qid in part.query_ids.tolist()]
    assert sorted(ids, key=int) == [str(q) for q in range(1, 51)]
    original = make_synthetic(n_queries=50, n_features=10, seed=2)
    rows = {doc: row for row, doc in enumerate(original.doc_ids.tolist())}  # type: ignore[union-attr]
    train = parts["train"]
    assert train.doc_ids is not None
    picked = [rows[doc] for doc in train.doc_ids.tolist()]
    assert train.features.tobytes() == original.features[picked].tobytes()
    assert train.labels.tobytes() == original.labels[picked].tobytes()


def test_write_synthetic_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    first = write_synthetic(tmp_path / "a", n_queries=30, n_features=8, seed=9)
    second = write_synthetic(tmp_path / "b", n_queries=30, n_features=8, seed=9)
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name


def test_info_json_records_parameters_and_split_counts(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path, n_queries=40, n_features=9, seed=1, max_docs=20)
    info = json.loads(paths["info"].read_text())
    assert info["generator"] == "ltr.data.synthetic"
    assert info["parameters"] == {
        "n_queries": 40,
        "n_features": 9,
        "seed": 1,
        "max_docs": 20,
        "splits": [0.6, 0.2, 0.2],
    }
    assert sum(split["queries"] for split in info["splits"].values()) == 40
    assert info["splits"]["test"]["docs_per_query"]["max"] <= 20
    assert "latent" in paths["readme"].read_text()


def test_write_synthetic_rejects_an_unknown_parameter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown make_synthetic parameter\(s\) \['max_doc'\]"):
        write_synthetic(tmp_path, max_doc=10)


def test_write_synthetic_rejects_splits_that_do_not_sum_to_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="summing to 1; got"):
        write_synthetic(tmp_path, splits=(0.5, 0.2, 0.2))
    assert not tmp_path.joinpath("train.txt").exists()


@pytest.mark.parametrize(
    "name", [name for names in FILE_NAMES.values() for name in names if name != "train.txt"]
)
def test_write_synthetic_refuses_a_folder_holding_any_file_data_root_reads(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_bytes(b"")  # e.g. MQ2008's train.txt.gz: synth's train.txt would win
    with pytest.raises(ConfigError, match=rf"already holds data \({re.escape(name)}, not from"):
        write_synthetic(tmp_path, n_queries=20, n_features=MIN_FEATURES)
    assert [path.name for path in tmp_path.iterdir()] == [name]


def test_write_synthetic_over_its_own_data_refuses_a_foreign_file_beside_it(
    tmp_path: Path,
) -> None:
    write_synthetic(tmp_path, n_queries=20, n_features=MIN_FEATURES)
    write_synthetic(tmp_path, n_queries=20, n_features=MIN_FEATURES)  # same parameters: no-op
    (tmp_path / "test.txt.gz").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"already holds data \(test\.txt\.gz, not from ltr"):
        write_synthetic(tmp_path, n_queries=20, n_features=MIN_FEATURES)


def test_negative_seed_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"seed must be >= 0; got -5"):
        make_synthetic(seed=-5)


def test_min_queries_gives_every_split_a_query(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path, n_queries=MIN_QUERIES, n_features=MIN_FEATURES)
    assert all(read_letor(paths[name]).n_queries >= 1 for name in ("train", "vali", "test"))
    with pytest.raises(ConfigError, match="every split needs at least one query"):
        write_synthetic(tmp_path / "b", n_queries=MIN_QUERIES - 1, n_features=MIN_FEATURES)


def test_readme_names_the_query_difficulty_by_its_letor_id_throughout(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path, n_queries=20, n_features=8, seed=1, max_docs=10)
    readme = paths["readme"].read_text()
    assert "query difficulty (f6)" in readme and "6 is the query difficulty" in readme
    assert "feature 5" not in readme and "x0" not in readme
    train = read_letor(paths["train"])
    difficulty = train.features[:, 5]  # LETOR feature 6: constant within each query
    for start, stop in itertools.pairwise(train.query_offsets):
        assert np.unique(difficulty[start:stop]).size == 1
