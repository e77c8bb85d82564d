"""Model bundles: atomic writing, and verification that catches every kind of tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ltr.errors import BundleError, ConfigError
from ltr.lifecycle import bundle as bundle_module
from ltr.lifecycle.bundle import (
    parse_version,
    read_bundle,
    verify_bundle,
    write_bundle,
)
from support.onnx_models import linear_onnx

N_FEATURES = 4


def bundle_files(weights: list[float] | None = None) -> dict[str, bytes]:
    return {
        "model.onnx": linear_onnx(weights or [1.0, 2.0, 3.0, 4.0]),
        "preprocessor.json": b'{"kind": "standard", "mean": [0, 0, 0, 0]}\n',
        "model_card.md": b"# linear scorer\n",
    }


def bundle_metadata(version: str = "1.0.0") -> dict[str, object]:
    return {
        "version": version,
        "n_features": N_FEATURES,
        "source_run": "experiments/run-1",
        "metrics": {"ndcg@10": 0.5},
    }


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "versions" / "1.0.0", bundle_files(), bundle_metadata())


def test_written_bundle_verifies_and_its_model_runs(bundle_dir: Path) -> None:
    bundle = verify_bundle(bundle_dir)
    session = ort.InferenceSession(bundle.onnx_path, providers=["CPUExecutionProvider"])
    features = np.arange(2 * 3 * N_FEATURES, dtype=np.float32).reshape(2, 3, N_FEATURES)
    (scores,) = session.run(["scores"], {"features": features})
    np.testing.assert_allclose(scores, features @ np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    assert (bundle.version, bundle.n_features, bundle.source_run) == (
        "1.0.0",
        4,
        "experiments/run-1",
    )
    assert bundle.preprocessor_path == bundle_dir / "preprocessor.json"
    assert bundle.size_bytes == sum(p.stat().st_size for p in bundle_dir.iterdir())


def test_metadata_keeps_caller_keys_and_adds_checksums_and_time(bundle_dir: Path) -> None:
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    assert metadata["metrics"] == {"ndcg@10": 0.5}
    assert set(metadata["files"]) == {"model.onnx", "preprocessor.json", "model_card.md"}
    assert metadata["files"]["model_card.md"] == bundle_module.file_sha256(
        bundle_dir / "model_card.md"
    )
    assert metadata["created_at"].endswith("Z")


def test_write_leaves_nothing_beside_the_bundle(bundle_dir: Path) -> None:
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["1.0.0"]


def test_write_refuses_to_overwrite_a_bundle(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match=r"1\.0\.0 already exists; a bundle is never overwritten"):
        write_bundle(bundle_dir, bundle_files([0.0] * 4), bundle_metadata())
    verify_bundle(bundle_dir)


def test_write_failing_midway_leaves_no_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(source: Path, target: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "move_dir", crash)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(tmp_path / "b", bundle_files(), bundle_metadata())
    assert list(tmp_path.iterdir()) == []


def test_write_requires_model_onnx(tmp_path: Path) -> None:
    files = bundle_files()
    del files["model.onnx"]
    with pytest.raises(BundleError, match=r"model\.onnx is required"):
        write_bundle(tmp_path / "b", files, bundle_metadata())


@pytest.mark.parametrize("key", ["version", "n_features"])
def test_write_requires_version_and_feature_count(tmp_path: Path, key: str) -> None:
    metadata = bundle_metadata()
    del metadata[key]
    with pytest.raises(BundleError, match=f"metadata lacks required key\\(s\\) {key}"):
        write_bundle(tmp_path / "b", bundle_files(), metadata)


def test_write_refuses_file_names_with_folders(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"file name '\.\./x' is not allowed"):
        write_bundle(tmp_path / "b", {**bundle_files(), "../x": b""}, bundle_metadata())


@pytest.mark.parametrize("text", ["1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.2.x", ""])
def test_parse_version_rejects_anything_but_x_y_z(text: str) -> None:
    with pytest.raises(ConfigError, match=r"version must look like X\.Y\.Z \(e\.g\. 1\.2\.0\)"):
        parse_version(text)


def test_parse_version_orders_semantically() -> None:
    assert sorted(["1.10.0", "1.9.0", "0.1.2"], key=parse_version) == ["0.1.2", "1.9.0", "1.10.0"]


# -- tampering: each fails with a message naming the bundle and the file ----------------------


def test_flipped_byte_in_model_fails_verification(bundle_dir: Path) -> None:
    model = bytearray((bundle_dir / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0x01
    (bundle_dir / "model.onnx").write_bytes(bytes(model))
    with pytest.raises(
        BundleError,
        match=rf"^bundle {bundle_dir}: sha256 of model\.onnx does not match metadata\.json$",
    ):
        verify_bundle(bundle_dir)


def test_deleted_preprocessor_fails_verification(bundle_dir: Path) -> None:
    (bundle_dir / "preprocessor.json").unlink()
    with pytest.raises(
        BundleError,
        match=rf"^bundle {bundle_dir}: preprocessor\.json is listed in metadata\.json but missing$",
    ):
        verify_bundle(bundle_dir)


def test_corrupt_metadata_fails_verification(bundle_dir: Path) -> None:
    (bundle_dir / "metadata.json").write_text('{"version": "1.0.0", ')
    with pytest.raises(
        BundleError, match=rf"^bundle {bundle_dir}: metadata\.json is not valid JSON: "
    ):
        verify_bundle(bundle_dir)


def test_missing_metadata_fails_verification(bundle_dir: Path) -> None:
    (bundle_dir / "metadata.json").unlink()
    with pytest.raises(BundleError, match=rf"^bundle {bundle_dir}: metadata\.json is missing$"):
        verify_bundle(bundle_dir)


def test_metadata_without_required_key_fails_verification(bundle_dir: Path) -> None:
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    del metadata["n_features"]
    (bundle_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(
        BundleError, match=rf"^bundle {bundle_dir}: metadata\.json lacks required key\(s\) n_f"
    ):
        verify_bundle(bundle_dir)


def test_stray_file_fails_verification(bundle_dir: Path) -> None:
    # an unlisted file can change what runs (onnxruntime loads model.onnx.data beside the model)
    (bundle_dir / "model.onnx.data").write_bytes(b"\x00" * 8)
    with pytest.raises(
        BundleError, match=rf"^bundle {bundle_dir}: model\.onnx\.data not listed in metadata\.json"
    ):
        verify_bundle(bundle_dir)


def test_checksums_catch_accidents_not_a_resealed_metadata_json(bundle_dir: Path) -> None:
    # the limit of checksums, pinned: whoever can rewrite metadata.json can re-seal a bundle;
    # protecting the store itself (permissions, signatures) is the deployment's job
    (bundle_dir / "model.onnx").write_bytes(linear_onnx([0.0, 0.0, 0.0, 1.0]))
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    metadata["files"]["model.onnx"] = bundle_module.file_sha256(bundle_dir / "model.onnx")
    (bundle_dir / "metadata.json").write_text(json.dumps(metadata))
    assert verify_bundle(bundle_dir).version == "1.0.0"


def test_read_verified_catches_a_change_after_verification(bundle_dir: Path) -> None:
    bundle = verify_bundle(bundle_dir)
    assert ort.InferenceSession(bundle.read_verified(), providers=["CPUExecutionProvider"])
    (bundle_dir / "model.onnx").write_bytes(linear_onnx([0.0] * N_FEATURES))
    with pytest.raises(BundleError, match=r"sha256 of model\.onnx does not match metadata\.json"):
        bundle.read_verified()


def test_missing_bundle_fails_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"bundle .*nowhere does not exist or is not a folder"):
        verify_bundle(tmp_path / "nowhere")


def test_read_without_verify_skips_hashing_but_not_metadata_checks(bundle_dir: Path) -> None:
    (bundle_dir / "model.onnx").write_bytes(b"tampered")
    assert read_bundle(bundle_dir, verify=False).version == "1.0.0"
    with pytest.raises(BundleError, match=r"sha256 of model\.onnx"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize(
    "module",
    ["ltr.lifecycle.bundle", "ltr.lifecycle.store", "ltr.lifecycle.model_card", "ltr.lifecycle"],
)
def test_lifecycle_core_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
