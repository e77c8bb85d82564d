"""ONNX export of trained runs: parity per scorer, dynamic shapes, metadata, card, atomicity."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from ltr._fs import file_sha256
from ltr.config import load_config
from ltr.data.letor import load_letor, write_letor
from ltr.errors import BundleError, DataFormatError, ExportError, WriteError
from ltr.inference.predictor import Predictor
from ltr.lifecycle import parity, quantize
from ltr.lifecycle.bundle import verify_bundle
from ltr.lifecycle.export import ExportReport, export_bundle
from ltr.lifecycle.model_card import render_model_card
from ltr.lifecycle.runtime import make_session, run_session, score_with_onnx
from ltr.lifecycle.source import load_source
from ltr.training import run_experiment
from support.tiny_runs import write_tiny_data

N_FEATURES = 10
# scorer, normalization, model params: every scorer, global and query-level normalizers
RUNS = {
    "linear": ("linear", "minmax", {}),
    "mlp": ("mlp", "standard", {"hidden_dims": [16, 8]}),
    "mlp_query": ("mlp", "query_zscore", {"hidden_dims": [16]}),
    # encoded inputs: the first layer sees bins, so the normalization stays in the graph
    "mlp_piecewise": ("mlp", "standard", {"hidden_dims": [16], "piecewise_bins": 4}),
    # list ranks: the graph compares the documents of a list, so it takes `mask`
    "mlp_ranks": ("mlp", "standard", {"hidden_dims": [16], "list_ranks": True}),
    "transformer_piecewise": (
        "transformer",
        "standard",
        {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32, "piecewise_bins": 4},
    ),
    "transformer": (
        "transformer",
        "standard",
        {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32},
    ),
    "transformer_ranks": (
        "transformer",
        "standard",
        {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32, "list_ranks": True},
    ),
    "ensemble": (  # trained as one scorer; a transformer member puts `mask` in the graph
        "ensemble",
        "standard",
        {
            "members": [
                {"name": "mlp", "hidden_dims": [8]},
                {"name": "transformer", "d_model": 8, "n_heads": 2, "n_layers": 1},
            ]
        },
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_tiny_data(root / "data", n_features=N_FEATURES, seed=2, max_docs=15)
    return root


def train_run(root: Path, key: str) -> Path:
    name, normalization, params = RUNS[key]
    config = {
        "experiment": {"name": key},
        "data": {"root": str(root / "data"), "normalization": normalization},
        "model": {"name": name, **params},
        "loss": {"name": "listnet"},
        "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(root / "runs"), "tensorboard": False, "mlflow": False},
    }
    path = root / f"{key}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return run_experiment(load_config(path, []), quiet=True)


@pytest.fixture(scope="module")
def exported(workdir: Path) -> dict[str, tuple[Path, ExportReport]]:
    """One trained run and one float32 bundle per entry of RUNS."""
    out: dict[str, tuple[Path, ExportReport]] = {}
    for key in RUNS:
        run_dir = train_run(workdir, key)
        out[key] = (run_dir, export_bundle(run_dir, workdir / "bundles" / key, version="1.2.3"))
    return out


@pytest.mark.parametrize("key", sorted(RUNS))
def test_every_scorer_exports_with_parity(
    exported: dict[str, tuple[Path, ExportReport]], key: str
) -> None:
    _, report = exported[key]

    parity = report.parity
    assert parity.passed and parity.max_abs_diff <= 1e-5
    assert all(case.reordered_queries == 0 for case in parity.cases)
    assert [case.name for case in parity.cases[:2]] == [
        "test file",
        "test file, float64 normalization",
    ]
    assert [case.documents for case in parity.cases[2:]] == [3, 19, 267, 2667]
    assert parity.metrics_torch == parity.metrics_onnx
    onnx.checker.check_model(str(report.output / "model.onnx"))


@pytest.mark.parametrize("key", sorted(RUNS))
def test_mask_is_an_input_only_where_scores_need_it(
    exported: dict[str, tuple[Path, ExportReport]], key: str
) -> None:
    _, report = exported[key]

    names = [spec["name"] for spec in report.inputs]
    context = (
        "mlp_query",
        "mlp_ranks",
        "transformer",
        "transformer_piecewise",
        "transformer_ranks",
        "ensemble",
    )
    assert names == (["features", "mask"] if key in context else ["features"])
    assert report.inputs[0] == {
        "name": "features",
        "dtype": "float32",
        "shape": ["batch", "list_len", N_FEATURES],
    }
    assert report.metadata["outputs"] == [
        {"name": "scores", "dtype": "float32", "shape": ["batch", "list_len"]}
    ]


@pytest.mark.parametrize("key", sorted(RUNS))
@pytest.mark.parametrize(("batch", "list_len"), [(1, 1), (3, 7), (1, 1000), (3, 1000)])
def test_graph_takes_any_batch_and_list_length(
    exported: dict[str, tuple[Path, ExportReport]], key: str, batch: int, list_len: int
) -> None:
    run_dir, report = exported[key]
    rng = np.random.default_rng(batch * list_len)
    features = rng.uniform(0, 1, (batch, list_len, N_FEATURES)).astype(np.float32)
    mask = np.ones((batch, list_len), dtype=bool)
    mask[-1, max(1, list_len // 2) :] = False  # the last list is half padding

    scores = run_session(make_session(report.output / "model.onnx"), features, mask)
    with torch.inference_mode():
        expected = load_source(run_dir).reference()(torch.tensor(features), torch.tensor(mask))

    assert scores.shape == (batch, list_len)
    np.testing.assert_allclose(scores[mask], expected.numpy()[mask], rtol=0, atol=1e-5)


@pytest.mark.parametrize("key", sorted(RUNS))
@pytest.mark.parametrize(("batch", "list_len"), [(0, 5), (2, 0), (0, 0)])
def test_empty_batch_or_list_gives_empty_scores_and_the_bundle_says_if_the_graph_cannot(
    exported: dict[str, tuple[Path, ExportReport]], key: str, batch: int, list_len: int
) -> None:
    _, report = exported[key]
    session = make_session(report.output / "model.onnx")
    features = np.zeros((batch, list_len, N_FEATURES), dtype=np.float32)
    feeds = {"features": features}
    if "mask" in [spec["name"] for spec in report.inputs]:
        feeds["mask"] = np.zeros((batch, list_len), dtype=bool)

    scores = run_session(session, features)

    assert scores.shape == (batch, list_len) and scores.dtype == np.float32
    attends = RUNS[key][0] in ("transformer", "ensemble")  # the ensemble holds a transformer
    assert report.metadata["onnx"]["accepts_empty"] is not attends
    card = (report.output / "model_card.md").read_text(encoding="utf-8")
    assert ("`batch` and `list_len` must be at least 1" in card) is attends
    if not attends:  # the graph itself returns empty scores
        assert session.run(["scores"], feeds)[0].shape == (batch, list_len)


@pytest.mark.parametrize("key", ["mlp_ranks", "transformer_ranks"])
def test_list_ranks_graph_breaks_ties_as_pytorch_does(
    exported: dict[str, tuple[Path, ExportReport]], key: str
) -> None:
    # ranks rest on stable sorts; the graph's TopK must order equal values by index too
    run_dir, report = exported[key]
    rng = np.random.default_rng(7)
    features = rng.integers(0, 3, (4, 60, N_FEATURES)).astype(np.float32)  # mostly ties
    mask = rng.random((4, 60)) > 0.2
    mask[0] = False
    mask[0, 5] = True  # a one-document list

    scores = run_session(make_session(report.output / "model.onnx"), features, mask)
    with torch.inference_mode():
        expected = load_source(run_dir).reference()(torch.tensor(features), torch.tensor(mask))

    np.testing.assert_allclose(scores[mask], expected.numpy()[mask], rtol=0, atol=1e-5)


@pytest.mark.parametrize("junk", [np.nan, np.inf])
@pytest.mark.parametrize("key", sorted(RUNS))
def test_graph_ignores_nan_and_inf_in_padded_rows(
    exported: dict[str, tuple[Path, ExportReport]], key: str, junk: float
) -> None:
    # the graph must mask padding as the eager scorer does: real scores as with zero padding
    run_dir, report = exported[key]
    rng = np.random.default_rng(3)
    features = rng.uniform(0, 1, (3, 8, N_FEATURES)).astype(np.float32)
    mask = np.ones((3, 8), dtype=bool)
    mask[1:, 5:] = False
    zero_padded = np.where(mask[..., None], features, np.float32(0.0))
    junk_padded = np.where(mask[..., None], features, np.float32(junk))

    scores = run_session(make_session(report.output / "model.onnx"), junk_padded, mask)
    with torch.inference_mode():
        expected = load_source(run_dir).reference()(torch.tensor(zero_padded), torch.tensor(mask))

    assert np.isfinite(scores[mask]).all()
    np.testing.assert_allclose(scores[mask], expected.numpy()[mask], rtol=0, atol=1e-5)


def test_metadata_describes_the_bundle(exported: dict[str, tuple[Path, ExportReport]]) -> None:
    run_dir, report = exported["mlp"]

    metadata = verify_bundle(report.output).metadata
    run_metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(metadata["files"]) == ["model.onnx", "model_card.md", "preprocessor.json"]
    assert metadata["version"] == "1.2.3" and metadata["n_features"] == N_FEATURES
    assert metadata["feature_names"] == [f"feature_{i}" for i in range(1, N_FEATURES + 1)]
    assert metadata["source_run"] == str(run_dir.resolve())
    checkpoint = run_dir.resolve() / "checkpoints" / "best.pt"
    assert metadata["source"]["checkpoint"] == str(checkpoint)
    assert metadata["source"]["sha256"] == file_sha256(checkpoint)
    assert metadata["experiment"] == "mlp"
    assert metadata["metrics"] == run_metrics
    assert metadata["normalization"] == {
        "kind": "standard",
        "in_graph": True,
        "folded_into_first_layer": True,
        "file": "preprocessor.json",
    }
    assert metadata["onnx"]["precision"] == "float32" and metadata["onnx"]["opset"] >= 17
    assert metadata["parity"]["passed"] and metadata["parity"]["max_abs_diff"] <= 1e-5
    assert [row["list_size"] for row in metadata["latency"]["rows"]] == [10, 100, 1000]
    assert metadata["latency"]["noise_warnings"] == report.latency_noise  # [] on a quiet machine
    assert set(metadata["versions"]) == {"ltr", "python", "torch", "onnx", "onnxruntime"}
    preprocessor = json.loads((report.output / "preprocessor.json").read_text(encoding="utf-8"))
    assert preprocessor["kind"] == "standard" and len(preprocessor["statistics"]["mean"]) == 10


@pytest.mark.parametrize(
    "key", ["mlp_piecewise", "mlp_ranks", "transformer_piecewise", "transformer_ranks"]
)
def test_encoded_or_ranked_inputs_keep_the_normalization_unfolded(
    exported: dict[str, tuple[Path, ExportReport]], key: str
) -> None:
    _, report = exported[key]

    normalization = verify_bundle(report.output).metadata["normalization"]
    assert normalization["in_graph"] and not normalization["folded_into_first_layer"]
    assert report.parity.passed


def test_model_card_reports_use_metrics_parity_and_limits(
    exported: dict[str, tuple[Path, ExportReport]],
) -> None:
    run_dir, report = exported["transformer"]

    card = (report.output / "model_card.md").read_text(encoding="utf-8")
    test_ndcg = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    for heading in ("Intended use", "Data", "Metrics", "Training", "Export", "Limitations"):
        assert f"## {heading}" in card
    assert f"| ndcg@10 | {test_ndcg['ndcg@10']:.4f} |" in card
    assert "- `mask`: bool `[batch, list_len]`" in card
    assert "rankings identical: True" in card
    assert "square of the list length" in card


def test_model_card_names_the_file_of_every_metrics_column(
    exported: dict[str, tuple[Path, ExportReport]], workdir: Path, tmp_path: Path
) -> None:
    # parity on the validation file: the run's test figures must not be credited to it
    run_dir, _ = exported["mlp"]
    data = workdir / "data"
    report = export_bundle(run_dir, tmp_path / "bundle", test_data=data / "vali.txt")

    card = (report.output / "model_card.md").read_text(encoding="utf-8")
    run_test = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    header = "| metric | run test `test.txt` | validation, best epoch `vali.txt` "
    assert header + "| parity file, ONNX `vali.txt` |" in card
    onnx_ndcg = report.parity.metrics_onnx["ndcg@10"]
    assert f"| ndcg@10 | {run_test['ndcg@10']:.4f} | " in card
    assert f" | {onnx_ndcg:.4f} |\n" in card.split("| ndcg@10 |", 1)[1]
    assert f"| train | `{(data / 'train.txt').resolve()}` |" in card
    assert f"| parity, int8 gate (export) | `{(data / 'vali.txt').resolve()}` |" in card


def test_model_card_cautions_about_latency_a_busy_machine_may_have_inflated(
    exported: dict[str, tuple[Path, ExportReport]],
) -> None:
    metadata = verify_bundle(exported["mlp"][1].output).metadata
    busy = "p99/p50 = 41.0 for 100 docs, 1 thread(s) (PyTorch): noisy; figures may be inflated"
    quiet = {**metadata, "latency": {**metadata["latency"], "noise_warnings": []}}
    noisy = {**metadata, "latency": {**metadata["latency"], "noise_warnings": [busy]}}

    assert "Caution" not in render_model_card(quiet)
    assert f"Caution: {busy}." in render_model_card(noisy)


def test_broken_graph_fails_parity_and_writes_nothing(
    exported: dict[str, tuple[Path, ExportReport]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir, _ = exported["linear"]
    real_run = parity.run_session
    monkeypatch.setattr(parity, "run_session", lambda *a: real_run(*a) + np.float32(1e-3))

    with pytest.raises(ExportError, match=r"ONNX parity check failed .*no bundle written: .*1e-05"):
        export_bundle(run_dir, tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []  # no bundle, no temp folder


@pytest.mark.parametrize("normalization", ["standard", "log1p_standard", "query_zscore"])
def test_graph_matches_float64_normalization_on_features_far_from_zero(
    tmp_path: Path, normalization: str
) -> None:
    # feature 1 at 1e6 or one float32 ulp above: a graph that subtracted float32(mean) scored
    # 0.04 away from `ltr predict` here and moved NDCG@10 (review 11, item 2)
    root = write_tiny_data(tmp_path / "data", n_features=N_FEATURES, seed=3, max_docs=15)
    rng = np.random.default_rng(0)
    for split in ("train", "vali", "test"):
        data = load_letor(root / f"{split}.txt")
        features = data.features.copy()
        features[:, 0] = 1e6 + 0.0625 * (rng.random(data.n_docs) < 0.4)
        write_letor(root / f"{split}.txt", replace(data, features=features))
    config = {
        "data": {"root": str(root), "normalization": normalization},
        "model": {"name": "mlp", "hidden_dims": [16]},
        "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(tmp_path / "runs"), "tensorboard": False, "mlflow": False},
    }
    run_dir = run_experiment(load_config(base=config, overrides=()), quiet=True)

    report = export_bundle(run_dir, tmp_path / "bundle")

    test = load_letor(root / "test.txt")
    onnx_scores = score_with_onnx(make_session(tmp_path / "bundle" / "model.onnx"), test)
    predicted = Predictor.load(run_dir).score(test)
    np.testing.assert_allclose(onnx_scores, predicted, rtol=0, atol=1e-5)
    case = next(c for c in report.parity.cases if c.name == "test file, float64 normalization")
    assert case.documents == test.n_docs and case.score_violations == 0
    assert report.parity.metrics_float64 == report.parity.metrics_onnx


def test_int8_variant_is_refused_when_ndcg_moves_too_much(
    exported: dict[str, tuple[Path, ExportReport]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir, _ = exported["linear"]
    monkeypatch.setattr(quantize, "INT8_MAX_NDCG_MOVE", -1.0)  # any move is too much

    with pytest.raises(ExportError, match=r"int8 variant refused: its test ndcg@10 moves by"):
        export_bundle(run_dir, tmp_path / "bundle", quantize="int8")
    assert list(tmp_path.iterdir()) == []


def test_int8_variant_ships_with_its_gate_figures(
    exported: dict[str, tuple[Path, ExportReport]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir, _ = exported["mlp"]
    monkeypatch.setattr(quantize, "INT8_MAX_NDCG_MOVE", 1.0)  # tiny test file: noisy NDCG

    report = export_bundle(run_dir, tmp_path / "bundle", quantize="int8")

    quantization = report.metadata["quantization"]
    assert report.precision == "int8" and report.metadata["onnx"]["precision"] == "int8"
    assert quantization["move"] == pytest.approx(quantization["int8"] - quantization["float32"])
    assert 0 <= quantization["queries_same_order"] <= quantization["queries"]
    assert -1 <= quantization["kendall_tau"] <= 1
    ops = {node.op_type for node in onnx.load(str(report.output / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops


def test_int8_keeps_the_first_matrix_product_in_float32(
    exported: dict[str, tuple[Path, ExportReport]],
) -> None:
    _, report = exported["mlp"]  # hidden_dims [16, 8]: three matrix products

    int8 = onnx.load_from_string(
        quantize.quantize_int8((report.output / "model.onnx").read_bytes())
    )

    products = [node.op_type for node in int8.graph.node if "MatMul" in node.op_type]
    assert products == ["MatMul", "MatMulInteger", "MatMulInteger"]


def test_existing_bundle_is_refused_before_any_work(
    exported: dict[str, tuple[Path, ExportReport]],
) -> None:
    run_dir, report = exported["linear"]

    with pytest.raises(BundleError, match="already exists; a bundle is never overwritten"):
        export_bundle(run_dir, report.output)


def test_bundle_folder_that_cannot_be_created_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(WriteError, match=r"^cannot write .*taken/bundle: .*taken is a file"):
        export_bundle(tmp_path / "no-run", tmp_path / "taken" / "bundle")  # model checked later


def test_run_with_invalid_metrics_json_is_one_error_naming_the_file(
    workdir: Path, tmp_path: Path
) -> None:
    run_dir = train_run(workdir, "linear")
    (run_dir / "metrics.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(DataFormatError, match=r"metrics\.json:1: invalid JSON"):
        export_bundle(run_dir, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
