"""Normalizer kinds, JSON round trip, and the torch module of ltr.data.preprocessing."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ltr.data.dataset import pad_slates
from ltr.data.letor import LetorData, load_letor
from ltr.data.preprocessing import NORMALIZER_KINDS, Normalizer, ShiftModule
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError, LtrError, ShapeError

CONSTANT_COLUMN = 3


def make_data(lengths: list[int], *, seed: int = 0, n_features: int = 5) -> LetorData:
    """LETOR-like features: normal, heavy-tailed counts, negatives, and a constant column."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_docs = int(offsets[-1])
    rng = np.random.default_rng(seed)
    features = rng.normal(2.0, 3.0, size=(n_docs, n_features))
    features[:, 1] = np.floor(rng.lognormal(1.0, 1.5, size=n_docs))
    features[:, 2] = -rng.random(n_docs) * 5
    features[:, CONSTANT_COLUMN] = 0.7
    labels = rng.integers(0, 3, size=n_docs).astype(np.float32)
    query_ids = np.array([str(q) for q in range(len(lengths))])
    return LetorData(features.astype(np.float32), labels, query_ids, offsets)


@pytest.fixture
def train() -> LetorData:
    return make_data([5, 12, 1, 30, 7, 2])


def per_query(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [values[a:b] for a, b in itertools.pairwise(offsets)]


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"normalizer kind must be one of none, standard, .*; got 'l2'"
    ):
        Normalizer("l2")


def test_none_passes_features_through_as_float32(train: LetorData) -> None:
    out = Normalizer("none").fit(train).transform(train.features.astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, train.features)


def test_standard_gives_zero_mean_and_unit_population_std_on_train(train: LetorData) -> None:
    out = Normalizer("standard").fit(train).transform(train.features).astype(np.float64)
    varying = [c for c in range(train.n_features) if c != CONSTANT_COLUMN]
    np.testing.assert_allclose(out[:, varying].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(out[:, varying].std(axis=0, ddof=0), 1, atol=1e-6)


def test_minmax_maps_the_training_range_onto_the_unit_interval(train: LetorData) -> None:
    out = Normalizer("minmax").fit(train).transform(train.features)
    varying = [c for c in range(train.n_features) if c != CONSTANT_COLUMN]
    np.testing.assert_allclose(out[:, varying].min(axis=0), 0)
    np.testing.assert_allclose(out[:, varying].max(axis=0), 1)


def test_log1p_standard_z_scores_the_signed_log(train: LetorData) -> None:
    x = train.features.astype(np.float64)
    logged = np.sign(x) * np.log1p(np.abs(x))
    expected = (logged[:, 0] - logged[:, 0].mean()) / logged[:, 0].std()
    out = Normalizer("log1p_standard").fit(train).transform(train.features)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["standard", "minmax", "log1p_standard"])
def test_affine_form_reproduces_the_transform(kind: str, train: LetorData) -> None:
    normalizer = Normalizer(kind).fit(train)
    x = train.features.astype(np.float64)
    if kind == "log1p_standard":
        x = np.sign(x) * np.log1p(np.abs(x))

    shift, inv_scale = normalizer.affine()

    assert shift.dtype == inv_scale.dtype == np.float64 and inv_scale[CONSTANT_COLUMN] == 0
    np.testing.assert_allclose((x - shift) * inv_scale, normalizer.transform(train.features),
                               rtol=1e-6, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("kind", ["none", "query_zscore"])
def test_affine_form_exists_for_fitted_global_kinds_only(kind: str, train: LetorData) -> None:
    with pytest.raises(LtrError, match="a fitted global normalizer has an affine form"):
        Normalizer(kind).fit(train).affine()


def test_query_minmax_spans_zero_to_one_within_each_query(train: LetorData) -> None:
    out = Normalizer("query_minmax").fit(train).transform(train.features, train.query_offsets)
    for query in per_query(out[:, 0], train.query_offsets):
        if query.size > 1:
            assert query.min() == 0 and query.max() == pytest.approx(1)


def test_query_zscore_standardizes_within_each_query(train: LetorData) -> None:
    out = Normalizer("query_zscore").fit(train).transform(train.features, train.query_offsets)
    for query in per_query(out[:, 0].astype(np.float64), train.query_offsets):
        if query.size > 1:
            assert query.mean() == pytest.approx(0, abs=1e-6)
            assert query.std(ddof=0) == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("kind", ["query_minmax", "query_zscore"])
def test_query_kinds_do_not_depend_on_other_queries(kind: str, train: LetorData) -> None:
    normalizer = Normalizer(kind).fit(train)
    both = normalizer.transform(train.features, train.query_offsets)
    alone = normalizer.transform(train.features[5:17], np.array([0, 12]))
    np.testing.assert_array_equal(both[5:17], alone)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS[1:])
def test_a_constant_feature_normalizes_to_exactly_zero(kind: str, train: LetorData) -> None:
    normalizer = Normalizer(kind).fit(train)
    out = normalizer.transform(train.features, train.query_offsets)
    assert not out[:, CONSTANT_COLUMN].any()


@pytest.mark.parametrize("kind", ["standard", "minmax", "log1p_standard"])
def test_a_feature_constant_in_training_stays_zero_on_unseen_values(
    kind: str, train: LetorData
) -> None:
    test = train.features.copy()
    test[:, CONSTANT_COLUMN] = np.linspace(-5, 5, train.n_docs)
    out = Normalizer(kind).fit(train).transform(test, train.query_offsets)
    assert not out[:, CONSTANT_COLUMN].any() and np.isfinite(out).all()


def test_query_zscore_of_a_repeated_non_representable_value_is_zero() -> None:
    features = np.full((3, 1), 0.1, dtype=np.float32)  # mean of 3 x 0.1 is not 0.1 in floats
    out = Normalizer("query_zscore").transform(features, np.array([0, 3]))
    assert not out.any()


def test_constant_training_features_are_logged_once_by_letor_id(
    train: LetorData, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ltr.data.preprocessing"):
        Normalizer("standard").fit(train)
    assert len(caplog.records) == 1
    assert f"LETOR feature ids {CONSTANT_COLUMN + 1}" in caplog.records[0].getMessage()


def test_constant_features_of_a_file_are_named_after_the_file(
    train: LetorData, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ltr.data.preprocessing"):
        Normalizer("standard").fit(replace(train, source="train.txt.gz"))
    assert (
        caplog.records[0]
        .getMessage()
        .startswith(
            "1 feature(s) are constant in train.txt.gz and normalize to 0: LETOR feature ids"
        )
    )


def test_transform_rejects_another_feature_count(train: LetorData) -> None:
    normalizer = Normalizer("standard").fit(train)
    with pytest.raises(ShapeError, match="fitted on 5 features; got 4"):
        normalizer.transform(train.features[:, :4])


def test_query_kind_without_query_offsets_is_a_shape_error(train: LetorData) -> None:
    with pytest.raises(ShapeError, match="'query_zscore' needs query_offsets"):
        Normalizer("query_zscore").fit(train).transform(train.features)


def test_global_kind_refuses_to_transform_before_fit(train: LetorData) -> None:
    with pytest.raises(LtrError, match=r"must be fitted before transform"):
        Normalizer("minmax").transform(train.features)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
def test_save_then_load_transforms_bit_identically(
    kind: str, train: LetorData, tmp_path: Path
) -> None:
    normalizer = Normalizer(kind).fit(train)
    normalizer.save(tmp_path / "preprocessor.json")
    loaded = Normalizer.load(tmp_path / "preprocessor.json")
    test = make_data([4, 9], seed=1)
    before = normalizer.transform(test.features, test.query_offsets)
    after = loaded.transform(test.features, test.query_offsets)
    assert before.tobytes() == after.tobytes()
    assert loaded.kind == kind and loaded.n_features == train.n_features
    for name, values in normalizer.statistics.items():
        assert loaded.statistics[name].tobytes() == values.tobytes()


def test_saved_json_lists_kind_version_and_per_feature_statistics(
    train: LetorData, tmp_path: Path
) -> None:
    Normalizer("standard").fit(train).save(tmp_path / "n.json")
    saved = json.loads((tmp_path / "n.json").read_text())
    assert saved["kind"] == "standard" and saved["version"] == 1 and saved["n_features"] == 5
    assert sorted(saved["statistics"]) == ["mean", "std"]
    assert len(saved["statistics"]["std"]) == 5 and saved["statistics"]["std"][CONSTANT_COLUMN] == 0
    assert list(tmp_path.iterdir()) == [tmp_path / "n.json"]  # no temp file left behind


def write_edited(path: Path, train: LetorData, **changes: object) -> Path:
    obj = Normalizer("minmax").fit(train).to_dict()
    obj.update(changes)
    path.write_text(json.dumps(obj))
    return path


def test_load_rejects_statistics_of_another_length(train: LetorData, tmp_path: Path) -> None:
    path = write_edited(tmp_path / "n.json", train, n_features=6)
    with pytest.raises(
        ConfigError, match=r"n\.json: statistics\.min must list n_features=6 numbers; got 5"
    ):
        Normalizer.load(path)


def test_load_rejects_an_unknown_kind(train: LetorData, tmp_path: Path) -> None:
    path = write_edited(tmp_path / "n.json", train, kind="robust")
    with pytest.raises(ConfigError, match=r"n\.json: kind: normalizer kind must be one of"):
        Normalizer.load(path)


def test_load_rejects_statistics_of_another_kind(train: LetorData, tmp_path: Path) -> None:
    path = write_edited(tmp_path / "n.json", train, kind="standard")
    with pytest.raises(
        ConfigError, match=r"statistics of kind 'standard' must be \['mean', 'std'\]"
    ):
        Normalizer.load(path)


def test_load_rejects_a_feature_count_other_than_the_data(train: LetorData, tmp_path: Path) -> None:
    path = write_edited(tmp_path / "n.json", train)
    with pytest.raises(ConfigError, match="expects 5 features; the data has 46"):
        Normalizer.load(path, n_features=46)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
def test_fit_refuses_a_file_without_features_naming_it(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "labels_only.txt"
    path.write_text("1 qid:1\n0 qid:1\n")
    data = load_letor(path, use_cache=False)
    with pytest.raises(
        DataFormatError,
        match=r"^labels_only\.txt: no features \(every line has only a label and qid\)$",
    ):
        Normalizer(kind).fit(data)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fit_rejects_non_finite_features_naming_the_first_letor_feature(
    kind: str, bad: float, train: LetorData
) -> None:
    features = train.features.copy()
    features[7, 4], features[2, 1] = np.nan, bad
    data = LetorData(features, train.labels, train.query_ids, train.query_offsets)
    with pytest.raises(
        ShapeError, match=rf"feature 2 \(LETOR id\) holds {bad} at document index 2"
    ):
        Normalizer(kind).fit(data)


def test_load_rejects_a_negative_std(train: LetorData, tmp_path: Path) -> None:
    obj = Normalizer("standard").fit(train).to_dict()
    obj["statistics"]["std"][2] = -1.0
    (tmp_path / "n.json").write_text(json.dumps(obj))
    with pytest.raises(
        ConfigError, match=r"n\.json: statistics\.std must be non-negative; feature 3 has -1\.0"
    ):
        Normalizer.load(tmp_path / "n.json")


def test_load_rejects_a_max_below_the_min(train: LetorData, tmp_path: Path) -> None:
    obj = Normalizer("minmax").fit(train).to_dict()
    obj["statistics"]["max"][0] = obj["statistics"]["min"][0] - 1.0
    (tmp_path / "n.json").write_text(json.dumps(obj))
    with pytest.raises(ConfigError, match=r"statistics\.max must be >= statistics\.min; feature 1"):
        Normalizer.load(tmp_path / "n.json")


def test_load_reports_invalid_json_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "n.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"n\.json: not valid JSON"):
        Normalizer.load(tmp_path / "n.json")


def test_load_of_a_missing_file_is_data_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        Normalizer.load(tmp_path / "missing.json")


@settings(max_examples=30, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.integers(1, 4)),
        elements=st.floats(-1e4, 1e4, width=32),
    ),
    st.sampled_from(NORMALIZER_KINDS),
)
def test_transform_output_is_always_finite(features: np.ndarray, kind: str) -> None:
    data = LetorData(
        features, np.zeros(len(features), np.float32), np.array(["q"]), np.array([0, len(features)])
    )
    out = Normalizer(kind).fit(data).transform(features, data.query_offsets)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def padded(data: LetorData) -> tuple[torch.Tensor, torch.Tensor]:
    slates = pad_slates(data)
    return torch.from_numpy(slates.features), torch.from_numpy(slates.mask)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
def test_module_matches_numpy_transform_on_padded_slates(kind: str, train: LetorData) -> None:
    normalizer = Normalizer(kind).fit(train)
    test = make_data([3, 1, 17, 8], seed=2)
    expected = pad_slates(
        LetorData(
            normalizer.transform(test.features, test.query_offsets),
            test.labels,
            test.query_ids,
            test.query_offsets,
        )
    ).features
    features, mask = padded(test)
    with torch.no_grad():
        out = normalizer.to_module()(features, mask)
    assert out.dtype == torch.float32 and out.shape == features.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def far_from_zero(data: LetorData, seed: int) -> LetorData:
    """``data`` with columns 0 and 1 at +-1e6, spread by one or two float32 ulps (0.0625)."""
    rng = np.random.default_rng(seed)
    features = data.features.copy()
    features[:, 0] = 1e6 + 0.0625 * (rng.random(data.n_docs) < 0.4)
    features[:, 1] = -1e6 - 0.0625 * rng.integers(0, 3, size=data.n_docs)
    return replace(data, features=features)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
def test_module_matches_transform_on_features_far_from_zero(kind: str, train: LetorData) -> None:
    # float32 rounds a mean near 1e6 by up to 0.03, half a standard deviation here: subtracting
    # float32(mean) put whole units of error into the normalized values (review 11, item 2)
    normalizer = Normalizer(kind).fit(far_from_zero(train, seed=0))
    test = far_from_zero(make_data([3, 1, 17, 8, 40], seed=2), seed=1)
    expected = pad_slates(
        replace(test, features=normalizer.transform(test.features, test.query_offsets))
    ).features
    features, mask = padded(test)
    with torch.no_grad():
        out = normalizer.to_module()(features, mask)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift", [0.0, 1e-7, 0.5, -0.5, 13.8155106, -13.8155106, 40.0, -85.0])
def test_shift_module_signed_log_matches_float64_across_signs_and_scales(shift: float) -> None:
    x = np.concatenate(
        [np.array([0.0, 1e-8, -1e-8, 3e-7, 1.0, -1.0, 999_999.0, -999_999.0, 3e38, -3e38])]
        + [sign * np.geomspace(1e-6, 1e7, 60) for sign in (1.0, -1.0)]
    ).astype(np.float32)
    expected = np.sign(x.astype(np.float64)) * np.log1p(np.abs(x.astype(np.float64))) - shift
    with torch.no_grad():
        got = ShiftModule(np.array([shift]), signed_log=True)(torch.from_numpy(x[:, None]))
    # float32 precision of the result, not of the terms that cancel
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
def test_module_output_ignores_padding_and_zeroes_it(kind: str, train: LetorData) -> None:
    module = Normalizer(kind).fit(train).to_module()
    features, mask = padded(make_data([3, 1, 17, 8], seed=2))
    junk = torch.where(mask.unsqueeze(-1), features, torch.full_like(features, -1e6))
    with torch.no_grad():
        clean, dirty = module(features, mask), module(junk, mask)
    assert torch.equal(clean, dirty)
    assert not dirty[~mask].any()


@pytest.mark.parametrize("kind", NORMALIZER_KINDS)
def test_module_rejects_another_feature_count(kind: str, train: LetorData) -> None:
    module = Normalizer(kind).fit(train).to_module()
    with pytest.raises(ShapeError, match=r"^the normalizer was fitted on 5 features; got 4$"):
        module(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))


def test_module_without_mask_treats_every_position_as_a_document(train: LetorData) -> None:
    module = Normalizer("query_minmax").fit(train).to_module()
    features = torch.tensor([[[1.0] * 5, [3.0] * 5]])
    assert module(features)[0, :, 0].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("kind", ["standard", "log1p_standard", "query_minmax", "query_zscore"])
def test_module_exports_with_dynamic_batch_and_list_length(kind: str, train: LetorData) -> None:
    module = Normalizer(kind).fit(train).to_module()
    batch, list_len = torch.export.Dim("batch"), torch.export.Dim("list_len")
    dims = {0: batch, 1: list_len}
    example = (torch.zeros(2, 4, 5), torch.ones(2, 4, dtype=torch.bool))
    exported = torch.export.export(module, example, dynamic_shapes=(dims, dims))
    features, mask = padded(make_data([3, 1, 17], seed=3))
    assert torch.equal(exported.module()(features, mask), module(features, mask))
