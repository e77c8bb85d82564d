"""The model store: versions, the live pointer, rollback, and readers racing a writer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ltr.errors import BundleError, BusyError, ConfigError
from ltr.lifecycle.bundle import write_bundle
from ltr.lifecycle.store import ModelStore
from support.onnx_models import linear_onnx

N_FEATURES = 3


def build_bundle(path: Path, version: str, weight: float = 1.0) -> Path:
    files = {
        "model.onnx": linear_onnx([weight] * N_FEATURES),
        "preprocessor.json": b'{"kind": "none"}\n',
        "model_card.md": f"# scorer {version}\n".encode(),
    }
    metadata = {"version": version, "n_features": N_FEATURES, "metrics": {"ndcg@10": weight}}
    return write_bundle(path, files, metadata)


def fill(store: ModelStore, *versions: str) -> ModelStore:
    for i, version in enumerate(versions):
        store.add(lambda out, v=version, w=float(i + 1): build_bundle(out, v, w), version)
    return store


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


# -- versions and adding ----------------------------------------------------------------------


def test_versions_sort_semantically(store: ModelStore) -> None:
    fill(store, "1.10.0", "1.9.0", "0.2.0")
    assert store.versions() == ["0.2.0", "1.9.0", "1.10.0"]


def test_empty_store_has_no_versions_and_suggests_1_0_0(store: ModelStore) -> None:
    assert (store.versions(), store.current(), store.next_version()) == ([], None, "1.0.0")


def test_next_version_bumps_minor_of_the_highest(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.9.3")
    assert store.next_version() == "1.10.0"


def test_added_bundle_is_moved_in_and_its_model_runs(store: ModelStore, tmp_path: Path) -> None:
    source = build_bundle(tmp_path / "exported", "1.0.0", weight=2.0)
    bundle = store.add(source)
    assert bundle.path == store.root / "versions" / "1.0.0"
    assert not source.exists()
    session = ort.InferenceSession(bundle.onnx_path, providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"features": np.ones((1, 2, N_FEATURES), np.float32)})
    np.testing.assert_allclose(scores, [[6.0, 6.0]])


def test_add_refuses_an_existing_version(store: ModelStore, tmp_path: Path) -> None:
    fill(store, "1.0.0")
    with pytest.raises(BundleError, match=r"version 1\.0\.0 exists already; versions are never"):
        store.add(build_bundle(tmp_path / "again", "1.0.0", weight=9.0))
    assert store.show("1.0.0").metrics == {"ndcg@10": 1.0}


def test_add_refuses_a_bundle_declaring_another_version(store: ModelStore, tmp_path: Path) -> None:
    source = build_bundle(tmp_path / "b", "1.0.0")
    with pytest.raises(BundleError, match=r"says version 1\.0\.0; it cannot be added as 1\.1\.0"):
        store.add(source, "1.1.0")


def test_add_refuses_a_tampered_bundle(store: ModelStore, tmp_path: Path) -> None:
    source = build_bundle(tmp_path / "b", "1.0.0")
    (source / "model_card.md").write_text("# edited after export\n")
    with pytest.raises(BundleError, match=r"sha256 of model_card\.md does not match"):
        store.add(source)
    assert store.versions() == []


def test_failing_builder_leaves_nothing_in_the_store(store: ModelStore) -> None:
    def crash(out: Path) -> None:
        out.mkdir()
        (out / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        store.add(crash, "1.0.0")
    assert sorted(p.name for p in store.root.iterdir()) == [".lock"]


@pytest.mark.parametrize("version", ["1.0", "latest", "1.0.0-rc1"])
def test_invalid_version_is_a_config_error(store: ModelStore, version: str) -> None:
    with pytest.raises(ConfigError, match=rf"version must look like X\.Y\.Z .*got '{version}'"):
        store.show(version)


def test_show_of_unknown_version_lists_the_stored_ones(store: ModelStore) -> None:
    fill(store, "1.0.0")
    with pytest.raises(BundleError, match=r"version 2\.0\.0 not found; stored versions: 1\.0\.0"):
        store.show("2.0.0")


def test_crashed_write_is_not_a_version_and_never_becomes_current(store: ModelStore) -> None:
    fill(store, "1.0.0")
    store.set_current("1.0.0")
    leftover = store.versions_dir / ".1.1.0.a8f3k2.tmp"  # what write_bundle leaves when killed
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half a model")
    assert store.versions() == ["1.0.0"]
    with pytest.raises(ConfigError, match=r"version must look like X\.Y\.Z"):
        store.set_current(leftover.name)
    assert store.current() == "1.0.0"


def test_version_folder_without_metadata_never_becomes_current(store: ModelStore) -> None:
    fill(store, "1.0.0")
    store.set_current("1.0.0")
    shutil.copytree(store.path_of("1.0.0"), store.path_of("1.1.0"))  # a hand copy, half done
    (store.path_of("1.1.0") / "metadata.json").unlink()
    with pytest.raises(BundleError, match=r"versions/1\.1\.0: metadata\.json is missing$"):
        store.set_current("1.1.0")
    assert store.current() == "1.0.0"


def test_verify_reports_each_version(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    (store.path_of("1.1.0") / "stray.txt").write_text("x")
    checks = store.verify()
    assert [(c.version, c.ok) for c in checks] == [("1.0.0", True), ("1.1.0", False)]
    assert "stray.txt not listed in metadata.json" in str(checks[1].error)


# -- the live pointer -------------------------------------------------------------------------


def test_set_current_writes_the_pointer_and_returns_the_previous(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    assert store.set_current("1.0.0") is None
    assert store.set_current("1.1.0") == "1.0.0"
    assert (store.root / "current").read_text() == "1.1.0\n"
    assert store.current() == "1.1.0"
    assert sorted(p.name for p in store.root.iterdir()) == [
        ".lock",
        "current",
        "history.json",
        "versions",
    ]


def test_set_current_refuses_a_tampered_bundle_and_keeps_the_live_one(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    store.set_current("1.0.0")
    onnx_path = store.path_of("1.1.0") / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(
        BundleError, match=r"models/versions/1\.1\.0: sha256 of model\.onnx does not match"
    ):
        store.set_current("1.1.0")
    assert store.current() == "1.0.0"


def test_load_current_refuses_a_tampered_live_bundle_while_caller_keeps_its_model(
    store: ModelStore,
) -> None:
    fill(store, "1.0.0")
    store.set_current("1.0.0")
    serving = store.load_current()
    session = ort.InferenceSession(serving.onnx_path, providers=["CPUExecutionProvider"])
    (serving.path / "preprocessor.json").unlink()
    with pytest.raises(BundleError, match=r"preprocessor\.json is listed in metadata\.json but"):
        store.load_current()
    (scores,) = session.run(None, {"features": np.ones((1, 1, N_FEATURES), np.float32)})
    assert (serving.version, scores.tolist()) == ("1.0.0", [[3.0]])


def test_load_current_without_a_live_model_says_how_to_get_one(store: ModelStore) -> None:
    with pytest.raises(BundleError, match=r"no live model .*ltr promote RUN --to production"):
        store.load_current()


def test_set_current_switches_only_from_the_live_version_its_caller_saw(
    store: ModelStore,
) -> None:
    fill(store, "1.0.0", "1.1.0", "1.2.0")
    store.set_current("1.0.0")
    seen = store.current()
    store.set_current("1.1.0")  # another promotion lands between the caller's look and switch
    history = (store.root / "history.json").read_bytes()

    with pytest.raises(
        BusyError, match=r"changed from 1\.0\.0 to 1\.1\.0 while this promotion ran; nothing was"
    ):
        store.set_current("1.2.0", expected_live=seen)

    assert store.current() == "1.1.0"
    assert (store.root / "history.json").read_bytes() == history
    assert store.set_current("1.2.0", expected_live="1.1.0") == "1.1.0"


def test_set_current_expecting_nothing_live_refuses_once_something_is(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    store.set_current("1.0.0")
    with pytest.raises(BusyError, match=r"changed from none to 1\.0\.0"):
        store.set_current("1.1.0", expected_live=None)
    (store.root / "current").write_text("garbage\n")  # unreadable reads as nothing live
    assert store.set_current("1.1.0", expected_live=None) is None
    assert store.current() == "1.1.0"


def test_corrupt_pointer_is_an_error_and_set_current_repairs_it(store: ModelStore) -> None:
    fill(store, "1.0.0")
    (store.root / "current").write_text("garbage\n")
    with pytest.raises(BundleError, match=r"current must name a version X\.Y\.Z; got 'garbage'"):
        store.current()
    store.set_current("1.0.0")
    assert store.current() == "1.0.0"


# -- rollback and history ---------------------------------------------------------------------


def test_rollback_walks_back_through_live_versions(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0", "1.2.0")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        store.set_current(version)
    assert [store.rollback(), store.rollback()] == ["1.1.0", "1.0.0"]
    assert store.current() == "1.0.0"


def test_rollback_with_a_corrupt_pointer_goes_back_from_the_history(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    store.set_current("1.0.0")
    store.set_current("1.1.0")
    (store.root / "current").write_text("garbage\n")

    assert store.rollback() == "1.0.0"

    assert store.current() == "1.0.0"
    assert store.history()["live"] == ["1.0.0"]


def test_rollback_with_one_live_version_is_a_clear_error(store: ModelStore) -> None:
    fill(store, "1.0.0")
    store.set_current("1.0.0")
    with pytest.raises(
        BundleError, match=r"nothing to roll back to; 1\.0\.0 is the only version that"
    ):
        store.rollback()
    assert store.current() == "1.0.0"


def test_rollback_of_an_empty_store_is_a_clear_error(store: ModelStore) -> None:
    with pytest.raises(
        BundleError, match=r"nothing to roll back to; no version has been live yet$"
    ):
        store.rollback()


def test_rollback_of_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "missing")
    with pytest.raises(BundleError, match=r"no version has been live yet$"):
        store.rollback()
    assert not store.root.exists()  # not even the lock file


def test_rollback_past_the_first_live_version_says_the_later_ones_were_rolled_back(
    store: ModelStore,
) -> None:
    fill(store, "1.0.0", "1.1.0")
    for version in ("1.0.0", "1.1.0"):
        store.set_current(version)
    store.rollback()
    store.set_current("1.1.0")
    store.rollback()
    with pytest.raises(BundleError) as refused:
        store.rollback()
    assert str(refused.value).endswith(
        "nothing to roll back to; no version was live before 1.0.0; the later ones were rolled "
        "back (1.1.0)"
    )


def live_bundle(store: ModelStore) -> ModelStore:
    """1.0.0 exported from experiments/run-0 as ranker, live: the only version ever live."""
    metadata = {
        "version": "1.0.0",
        "n_features": N_FEATURES,
        "source_run": "experiments/run-0",
        "validated": {"name": "ranker"},
    }
    files = {"model.onnx": linear_onnx([1.0] * N_FEATURES)}
    store.add(lambda out: write_bundle(out, files, metadata))
    store.set_current("1.0.0")
    return store


REPAIR = (
    "history.json says 1.0.0 was live last: make it live again with `ltr promote "
    "experiments/run-0 --to production --name ranker --version 1.0.0 --store {root}`"
)


@pytest.mark.parametrize(
    ("pointer", "problem"),
    [
        ("garbage\n", "current must name a version X.Y.Z; got 'garbage'"),
        (None, "current is missing"),
    ],
)
def test_rollback_with_nowhere_to_go_and_a_broken_pointer_says_how_to_repair_it(
    store: ModelStore, pointer: str | None, problem: str
) -> None:
    live_bundle(store)
    if pointer is None:
        (store.root / "current").unlink()
    else:
        (store.root / "current").write_text(pointer)

    with pytest.raises(BundleError) as refused:
        store.rollback()

    assert str(refused.value) == (
        f"model store {store.root}: nothing to roll back to, and {store.root}/{problem}; "
        + REPAIR.format(root=store.root)
    )
    assert store.pointer_problem() == (
        f"model store {store.root}: {store.root}/{problem}; " + REPAIR.format(root=store.root)
    )
    if pointer is None:
        assert not (store.root / "current").exists()
    else:
        assert (store.root / "current").read_text() == pointer


def test_pointer_problem_is_none_for_a_sound_pointer_or_a_store_never_live(
    store: ModelStore,
) -> None:
    fill(store, "1.0.0")
    assert store.pointer_problem() is None  # stored, never promoted: nothing to point at
    store.set_current("1.0.0")
    assert store.pointer_problem() is None


def test_pointer_problem_names_a_version_that_is_not_stored(store: ModelStore) -> None:
    live_bundle(store)
    (store.root / "current").write_text("9.9.9\n")
    assert store.pointer_problem() == (
        f"model store {store.root}: {store.root}/current names 9.9.9, which is not stored; "
        + REPAIR.format(root=store.root)
    )


@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_file_where_the_store_should_be_is_one_clear_error(tmp_path: Path, inside: str) -> None:
    blocker = tmp_path / "train.txt"
    blocker.write_text("1 qid:1 1:0.5\n")
    where = "is a file" if not inside else f"is inside {blocker}, a file"
    with pytest.raises(ConfigError) as refused:
        ModelStore(blocker / inside)
    assert str(refused.value) == f"model store {blocker / inside} {where}, not a folder"


def test_rollback_refuses_a_tampered_previous_version(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    store.set_current("1.0.0")
    store.set_current("1.1.0")
    (store.path_of("1.0.0") / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match=r"versions/1\.0\.0: sha256 of model\.onnx"):
        store.rollback()
    assert store.current() == "1.1.0"


def test_history_records_every_switch(store: ModelStore) -> None:
    fill(store, "1.0.0", "1.1.0")
    store.set_current("1.0.0")
    store.set_current("1.1.0")
    store.set_current("1.1.0")  # already live: not a switch
    store.rollback()
    history = json.loads((store.root / "history.json").read_text())
    moves = [(e["action"], e["from"], e["to"]) for e in history["events"]]
    assert moves == [
        ("promote", None, "1.0.0"),
        ("promote", "1.0.0", "1.1.0"),
        ("rollback", "1.1.0", "1.0.0"),
    ]
    assert history["live"] == ["1.0.0"]


def test_rollback_survives_a_switch_missing_from_history(store: ModelStore) -> None:
    # a crash between writing the pointer and the history loses one history entry only
    fill(store, "1.0.0", "1.1.0", "1.2.0")
    store.set_current("1.0.0")
    store.set_current("1.1.0")
    (store.root / "current").write_text("1.2.0\n")
    assert store.rollback() == "1.1.0"


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ('{"live": [', "cannot be read"),
        ('{"live": "1.0.0", "events": []}', "live must be a list of versions"),
        ('{"live": [], "events": [1]}', "events must be a list of objects"),
    ],
)
@pytest.mark.parametrize("switch", ["promote", "rollback"])
def test_an_unreadable_history_refuses_before_the_pointer_moves(
    store: ModelStore, history: str, problem: str, switch: str
) -> None:
    fill(store, "1.0.0", "1.1.0", "1.2.0")
    for version in ("1.0.0", "1.1.0"):
        store.set_current(version)
    (store.root / "history.json").write_text(history)

    with pytest.raises(BundleError, match=rf"history\.json:? {problem}"):
        store.set_current("1.2.0") if switch == "promote" else store.rollback()

    assert (store.root / "current").read_text() == "1.1.0\n"
    assert (store.root / "history.json").read_text() == history


# -- a writer switching versions while readers load them --------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from ltr.lifecycle.store import ModelStore

    store, switches, seconds = ModelStore(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    deadline = time.monotonic() + seconds
    done = 0
    while done < switches and time.monotonic() < deadline:
        store.set_current("1.1.0" if done % 2 == 0 else "1.0.0")
        done += 1
    print(done)
    """
)


@contextlib.contextmanager
def fast_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on tmpfs when there is one: ext4 flushes data on every rename-over (~4 ms), which
    would cap the race at a few hundred switches; rename's atomicity is the same on both."""
    if os.access("/dev/shm", os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="ltr-store-", dir="/dev/shm"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path


def test_readers_never_see_a_missing_pointer_or_a_broken_bundle(tmp_path: Path) -> None:
    with fast_folder(tmp_path) as folder:
        store = fill(ModelStore(folder / "models"), "1.0.0", "1.1.0")
        store.set_current("1.0.0")
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), "2000", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        failures: list[str] = []
        seen: dict[str, int] = {"1.0.0": 0, "1.1.0": 0}
        lock = threading.Lock()

        def read_until_writer_exits() -> None:
            reads: dict[str, int] = {"1.0.0": 0, "1.1.0": 0}
            while writer.poll() is None and len(failures) < 10:
                try:
                    raw = (store.root / "current").read_text()  # what any reader sees
                    if raw not in ("1.0.0\n", "1.1.0\n"):
                        failures.append(f"pointer read as {raw!r}")
                        continue
                    bundle = store.load_current()  # pointer, then the verified bundle it names
                    reads[bundle.version] += 1
                except Exception as error:  # every failure is collected, then asserted on
                    failures.append(f"{type(error).__name__}: {error}")
            with lock:
                for version, n in reads.items():
                    seen[version] += n

        readers = [threading.Thread(target=read_until_writer_exits) for _ in range(2)]
        started = time.monotonic()
        for reader in readers:
            reader.start()
        out, err = writer.communicate(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
        elapsed = time.monotonic() - started

    assert writer.returncode == 0, err
    assert failures == []
    switches = int(out)  # ~2,000 alone, 500-1,000 while two readers share this 2-core machine
    assert switches >= 300, f"only {switches} switches in {elapsed:.1f} s"
    assert min(seen.values()) > 0, f"readers saw {seen} over {switches} switches"
    assert elapsed < 10
