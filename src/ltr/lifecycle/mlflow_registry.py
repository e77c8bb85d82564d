"""The MLflow Model Registry step of promotion to validated (:mod:`ltr.lifecycle.registry`).

:func:`registered` creates the registered model on first use, adds a version, points the alias
``validated`` at it (MLflow deprecated stages for aliases) and tags it ``ltr.model_id`` and
``ltr.version``. The version's source is the run's logged ``checkpoints/best.pt`` when the run
was tracked (``mlflow.json``), else the validated folder. If the caller's body fails (the
folder could not be written), the version is deleted again. Without MLflow installed the step
is skipped, and the ``registry`` entry of ``metadata.json`` says why.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ltr.errors import LtrError

__all__ = ["VALIDATED_ALIAS", "registered", "tracking_uri_of"]

VALIDATED_ALIAS = "validated"


def tracking_uri_of(mlflow_run: Mapping[str, Any] | None, configured: str | None) -> str:
    """The run's store (``mlflow.json``), else ``tracking.mlflow_uri``, the environment, default."""
    from ltr.experiments.mlflow_tracker import resolve_tracking_uri

    if mlflow_run and mlflow_run.get("tracking_uri"):
        return str(mlflow_run["tracking_uri"])
    return resolve_tracking_uri(configured)  # a relative SQLite path becomes absolute


@contextlib.contextmanager
def registered(
    uri: str, metadata: Mapping[str, Any], *, source_dir: Path, enabled: bool
) -> Iterator[Any]:
    """Register the version, run the body (which writes the validated folder), then move the
    alias; undo the version if the body fails.

    The alias moves last, so a promotion that loses a race for the folder never touches it
    (deleting a version the alias named would drop the alias).

    Yields the ``registry`` entry of ``metadata.json``.
    """
    if not enabled:
        yield {"skipped": "registration turned off (register=False)"}
        return
    if importlib.util.find_spec("mlflow") is None:
        yield {"skipped": "mlflow is not installed (pip install 'ltr[tracking]')"}
        return
    from mlflow.exceptions import MlflowException

    from ltr.experiments.mlflow_tracker import mlflow_client

    client = mlflow_client(uri, registry_uri=uri)
    name = str(metadata["name"])
    try:
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description="ltr ranking model")
        source, run_id = _source(client, metadata, source_dir)
        tags = {"ltr.model_id": str(metadata["model_id"]), "ltr.version": str(metadata["version"])}
        version = client.create_model_version(
            name, source, run_id=run_id, tags=tags, description=_description(metadata)
        )
    except MlflowException as error:
        raise LtrError(f"MLflow registry at {uri}: {error.message}; nothing written") from None
    try:
        yield {
            "tracking_uri": uri,
            "name": name,
            "version": int(version.version),
            "alias": VALIDATED_ALIAS,
            "source": source,
        }
    except BaseException:
        with contextlib.suppress(MlflowException):  # the folder was not written: undo
            client.delete_model_version(name, version.version)
        raise
    try:
        client.set_registered_model_alias(name, VALIDATED_ALIAS, version.version)
    except MlflowException as error:
        raise LtrError(
            f"MLflow registry at {uri}: the validated folder is written and version "
            f"{version.version} registered, but alias {VALIDATED_ALIAS!r} did not move: "
            f"{error.message}"
        ) from None


def _source(client: Any, metadata: Mapping[str, Any], source_dir: Path) -> tuple[str, str | None]:
    """The run's logged ``checkpoints/best.pt`` when there is one, else the validated folder."""
    run_id = metadata.get("mlflow_run_id")
    if run_id:
        with contextlib.suppress(Exception):  # a deleted run or store: fall back to the folder
            logged = {entry.path for entry in client.list_artifacts(run_id, "checkpoints")}
            if "checkpoints/best.pt" in logged:
                return f"runs:/{run_id}/checkpoints/best.pt", str(run_id)
    return source_dir.resolve().as_uri(), None


def _description(metadata: Mapping[str, Any]) -> str:
    default = metadata["metrics"]["default"]
    shown = ", ".join(f"{k} {v:.4f}" for k, v in default.items() if "[" not in k)
    return f"{metadata['model_id']} from run {metadata['experiment_id']}; test {shown}"
