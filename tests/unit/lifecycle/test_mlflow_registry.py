"""The MLflow side of promotion: a version per validated model, the alias on the newest."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from ltr.lifecycle.mlflow_registry import VALIDATED_ALIAS, registered

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
