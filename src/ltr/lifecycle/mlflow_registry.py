"""The MLflow Model Registry step of promotion to validated (:mod:`ltr.lifecycle.registry`).

:func:`registered` creates the registered model on first use, adds a version, points the alias
``validated`` at it (MLflow deprecated stages for aliases) and tags it ``ltr.model_id``,
``ltr.version`` and ``ltr.validated_dir``. The version's source is the run's logged
``checkpoints/best.pt`` when the run was tracked (``mlflow.json``), else the validated folder.
If the caller's body fails (the folder could not be written), the version is deleted again.
Without MLflow installed the step is skipped, and the ``registry`` entry of ``metadata.json``
says why.

**One gate per name.** The gate compares a run with the name's versions in its own validated
folder (``promotion.validated_dir``), while a registered name is global to the tracking store.
So a name's versions are registered from one validated folder only: the one its newest
registered version was validated in (``ltr.validated_dir``; for a version registered before
ltr recorded it, its source's folder, or else the folder that holds that version). A promotion
into another folder is refused before anything is registered, so the alias never moves to a
model that another folder's gate passed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ltr.errors import LtrError

__all__ = ["FOLDER_TAG", "VALIDATED_ALIAS", "registered", "tracking_uri_of"]

VALIDATED_ALIAS = "validated"
FOLDER_TAG = "ltr.validated_dir"  # the validated folder a version was gated in


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
    folder = source_dir.resolve().parent  # the validated folder whose gate the model passed
    try:
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description="ltr ranking model")
        else:
            _refuse_another_folder(client, uri, name, folder)
        source, run_id = _source(client, metadata, source_dir)
        tags = {
            "ltr.model_id": str(metadata["model_id"]),
            "ltr.version": str(metadata["version"]),
            FOLDER_TAG: str(folder),
        }
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


def _refuse_another_folder(client: Any, uri: str, name: str, folder: Path) -> None:
    """Refuse registering ``name`` from ``folder`` when its newest version (of ltr's) was
    validated in another folder: that folder's gate, not this one's, holds the name's models."""
    ours = [v for v in client.search_model_versions(f"name = '{name}'") if _model_id(v)]
    if not ours:
        return
    newest = max(ours, key=lambda version: int(version.version))
    theirs = _folder_of(newest, folder)
    if theirs == str(folder):
        return
    what = f"version {newest.version}, {_model_id(newest)}"
    if theirs is not None:
        found, into = f"is registered from validated folder {theirs} ({what})", theirs
    else:  # registered before ltr recorded the folder, from a run's logged checkpoint
        found = f"was registered ({what}) from a validated folder that ltr did not record"
        into = f"the folder that holds {_model_id(newest)}"
    raise LtrError(
        f"MLflow registry at {uri}: {name} {found}, not from {folder}; one gate per name: "
        f"validate the run into {into} (promotion.validated_dir) or under another --name; "
        "nothing written"
    )


def _model_id(version: Any) -> str | None:
    return (version.tags or {}).get("ltr.model_id")


def _folder_of(version: Any, folder: Path) -> str | None:
    """The validated folder a registered version was gated in: its tag; for a version from
    before the tag, its source's folder, else ``folder`` if that holds it; None if unknown."""
    tagged = (version.tags or {}).get(FOLDER_TAG)
    if tagged:
        return str(tagged)
    source = urlparse(str(version.source or ""))
    if source.scheme == "file":
        return str(Path(unquote(source.path)).parent)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        metadata = json.loads((folder / str(_model_id(version)) / "metadata.json").read_text())
        if str(metadata["registry"]["version"]) == str(version.version):
            return str(folder)
    return None


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
