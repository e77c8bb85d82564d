"""The MLflow side of promotion: a version per validated model, the alias on the newest."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from ltr.errors import LtrError
from ltr.lifecycle.mlflow_registry import FOLDER_TAG, VALIDATED_ALIAS, registered

# MLflow's SQLAlchemy store configures its mappers with the deprecated ``noload`` strategy;
# SQLAlchemy 2.1 warns about it on the first use of a store (not our code)
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

METRICS = {"default": {"ndcg@10": 0.5}}


def metadata(version: str) -> dict[str, object]:
    return {
        "name": "ranker",
        "model_id": f"ranker_v{version}",
        "version": version,
        "experiment_id": "run",
        "metrics": METRICS,
    }


def test_a_promotion_whose_folder_fails_leaves_the_alias_where_it_was(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with registered(uri, metadata("1.0.0"), source_dir=tmp_path, enabled=True) as first:
        pass  # the winner's folder is written

    with (  # the loser of a race: its folder write fails after registering
        pytest.raises(FileExistsError),
        registered(uri, metadata("1.1.0"), source_dir=tmp_path, enabled=True),
    ):
        raise FileExistsError("bundle exists")

    alias = client.get_model_version_by_alias("ranker", VALIDATED_ALIAS)
    assert int(alias.version) == first["version"]
    assert [int(v.version) for v in client.search_model_versions("name = 'ranker'")] == [1]


def test_the_alias_moves_to_each_written_version(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for version in ("1.0.0", "1.1.0"):
        with registered(uri, metadata(version), source_dir=tmp_path, enabled=True) as entry:
            pass
        alias = client.get_model_version_by_alias("ranker", VALIDATED_ALIAS)
        assert int(alias.version) == entry["version"]


def test_each_version_records_the_validated_folder_it_was_gated_in(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    source = tmp_path / "validated" / "ranker_v1.0.0"
    with registered(uri, metadata("1.0.0"), source_dir=source, enabled=True) as entry:
        pass
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("ranker", str(entry["version"]))
    assert version.tags[FOLDER_TAG] == str((tmp_path / "validated").resolve())


def test_a_name_is_never_registered_from_a_second_validated_folder(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    validated, other = tmp_path / "validated", tmp_path / "val2"
    with registered(uri, metadata("1.0.0"), source_dir=validated / "ranker_v1.0.0", enabled=True):
        pass

    with (
        pytest.raises(LtrError) as refused,
        registered(uri, metadata("1.1.0"), source_dir=other / "ranker_v1.1.0", enabled=True),
    ):
        pytest.fail("the body runs only once the name's folder is checked")

    assert str(refused.value) == (
        f"MLflow registry at {uri}: ranker is registered from validated folder {validated} "
        f"(version 1, ranker_v1.0.0), not from {other}; one gate per name: validate the run "
        f"into {validated} (promotion.validated_dir) or under another --name; nothing written"
    )
    assert int(client.get_model_version_by_alias("ranker", VALIDATED_ALIAS).version) == 1
    assert [int(v.version) for v in client.search_model_versions("name = 'ranker'")] == [1]
    with registered(uri, metadata("1.1.0"), source_dir=validated / "ranker_v1.1.0", enabled=True):
        pass  # the name's own folder goes on
    assert int(client.get_model_version_by_alias("ranker", VALIDATED_ALIAS).version) == 2


@pytest.mark.parametrize("source", ["file", "elsewhere"])
def test_a_version_registered_before_the_folder_tag_is_placed_by_its_source_or_folder(
    tmp_path: Path, source: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    validated, other = tmp_path / "validated", tmp_path / "val2"
    client.create_registered_model("ranker")
    where = (validated / "ranker_v1.0.0").as_uri() if source == "file" else "s3://b/best.pt"
    tags = {"ltr.model_id": "ranker_v1.0.0", "ltr.version": "1.0.0"}  # as ltr tagged it then
    client.create_model_version("ranker", where, tags=tags)
    folder = validated / "ranker_v1.0.0"  # what promotion wrote for it
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text('{"registry": {"version": 1}}')

    with (
        pytest.raises(LtrError, match=r"one gate per name: validate the run into "),
        registered(uri, metadata("1.1.0"), source_dir=other / "ranker_v1.1.0", enabled=True),
    ):
        pytest.fail("refused before the body")
    with registered(uri, metadata("1.1.0"), source_dir=validated / "ranker_v1.1.0", enabled=True):
        pass
    assert int(client.get_model_version_by_alias("ranker", VALIDATED_ALIAS).version) == 2
