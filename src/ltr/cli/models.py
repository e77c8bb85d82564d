"""`ltr models list|show|verify|rollback` and `ltr promote`: the model store from the shell."""

from __future__ import annotations

import re
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from ltr.cli._common import (
    JsonOpt,
    check_version_option,
    print_json,
    print_table,
    stdout,
    warn,
)
from ltr.errors import (
    BundleError,
    BusyError,
    ConfigError,
    DataNotFoundError,
    LtrError,
    UsageError,
)

if TYPE_CHECKING:  # imports at call time: fast startup
    from ltr.lifecycle.registry import ValidatedLookup
    from ltr.lifecycle.store import ModelStore

app = typer.Typer(help="Inspect, verify and roll back the model store.", no_args_is_help=True)

StoreOpt = Annotated[
    Path,
    typer.Option("--store", metavar="DIR", help="The model store folder (versions/, current)."),
]
LISTED_METRIC = "ndcg@10"
LOOKED_UP_MARK = "†"
LOOKED_UP_NOTE = (
    "not recorded in the bundle; found in the validated folder by source run and version"
)
OTHER_CONVENTIONS_MARK = "‡"
_SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}


class Stage(str, Enum):
    validated = "validated"
    production = "production"


@app.command("list")
def list_versions(store: StoreOpt = Path("models"), as_json: JsonOpt = False) -> None:
    """List stored versions: live marker, registry name, created_at, source run, ndcg@10, size."""
    from ltr.lifecycle.registry import ValidatedLookup

    model_store = _existing_store(store)
    current = _current_or_warn(model_store)
    lookup = ValidatedLookup()  # one read of each validated folder for the whole listing
    rows: list[dict[str, Any]] = []
    for version in model_store.versions():
        try:
            bundle = model_store.read(version)  # metadata only: `ltr models verify` hashes
        except BundleError as error:
            warn(str(error))
            rows.append({"version": version, "current": version == current, "error": str(error)})
            continue
        validated, looked_up = _validated_facts(bundle, lookup)
        rows.append(
            {
                "version": version,
                "current": version == current,
                "name": validated.get("name"),
                "name_looked_up": looked_up,
                "created_at": bundle.created_at,
                "source_run": bundle.source_run,
                LISTED_METRIC: _find_metric(bundle.metrics, LISTED_METRIC),
                "conventions": bundle.metrics.get("conventions"),
                "size_bytes": bundle.size_bytes,
            }
        )
    if as_json:
        print_json({"store": str(store), "current": current, "versions": rows})
        return
    if not rows:
        stdout.print(f"no versions in {store}; add one with `ltr promote RUN --to production`")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)  # fits 80 columns (pipes, CI logs)
    other, conventions_note = _other_conventions(rows)
    notes = (
        [f"{LOOKED_UP_MARK} {LOOKED_UP_NOTE}"] if any(r.get("name_looked_up") for r in rows) else []
    )
    if conventions_note:
        notes.append(conventions_note)
    table.caption = "\n".join(notes) or None
    table.add_column("", no_wrap=True)  # * = live
    table.add_column("version", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("created_at", no_wrap=True)
    table.add_column("source run", overflow="fold")  # may wrap in a terminal, never in a pipe
    # values are 0.xxxx or 1.0000: left-justified, a mark after some keeps the decimals aligned
    table.add_column(LISTED_METRIC, justify="left" if other else "right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for row in rows:
        metric = row.get(LISTED_METRIC)
        source = Path(row["source_run"]).name if row.get("source_run") else ""  # --json: full
        table.add_row(
            "*" if row["current"] else "",
            row["version"],
            Text((row.get("name") or "-") + (LOOKED_UP_MARK if row.get("name_looked_up") else "")),
            _minutes(row["created_at"]) if "created_at" in row else "broken",
            Text(source),  # Text: never read as rich markup
            "" if metric is None else f"{metric:.4f}" + other.get(row["version"], ""),
            _size_text(row["size_bytes"]) if "size_bytes" in row else "",
        )
    print_table(table)


def _other_conventions(rows: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
    """The listed metric's values tested under other conventions than the live version's (else
    the first listed one's): ``{version: mark}``, and the footnote saying which conventions."""
    listed = [row for row in rows if "error" not in row and row.get(LISTED_METRIC) is not None]
    reference = next((row for row in listed if row["current"]), listed[0] if listed else None)
    if reference is None:
        return {}, None
    other = [row for row in listed if row["conventions"] != reference["conventions"]]
    if not other:
        return {}, None
    which = "live" if reference["current"] else "the first listed version,"
    differing = "; ".join(f"{row['version']}: {_conventions_text(row)}" for row in other)
    note = (
        f"{OTHER_CONVENTIONS_MARK} {LISTED_METRIC} under other metric conventions than {which} "
        f"{reference['version']} ({_conventions_text(reference)}): {differing}"
    )
    return {row["version"]: OTHER_CONVENTIONS_MARK for row in other}, note


def _conventions_text(row: dict[str, Any]) -> str:
    conventions = row.get("conventions")
    if not isinstance(conventions, dict) or not conventions:
        return "conventions not recorded"
    return ", ".join(f"{key}={value}" for key, value in conventions.items())


@app.command("show")
def show(
    version: Annotated[str, typer.Argument(metavar="X.Y.Z", help="The version.")],
    store: StoreOpt = Path("models"),
    as_json: JsonOpt = False,
) -> None:
    """Verify one version and print its metadata."""
    model_store = _existing_store(store)
    bundle = model_store.show(version)
    live = _current_or_warn(model_store) == version
    validated, looked_up = _validated_facts(bundle)
    if as_json:
        print_json(
            {
                "path": str(bundle.path),
                "live": live,
                "validated": validated or None,
                "validated_looked_up": looked_up,
                "metadata": bundle.metadata,
            }
        )
        return
    _print_facts(bundle, validated, looked_up, live, _live_since(model_store, version))
    _print_metrics(bundle.metrics)
    _print_files(bundle)


def _print_facts(
    bundle: Any, validated: dict[str, Any], looked_up: bool, live: bool, live_since: str | None
) -> None:
    state = "live" if live else "not live"
    if live and live_since is not None:
        state += f" since {_minutes(live_since)}"
    name = validated.get("name") or "- (not recorded in this bundle)"
    if looked_up:
        name += f" (not recorded in this bundle; found in {validated['path']})"
    facts = [
        ("version", f"{bundle.version} ({state})"),
        ("name", name),
        ("validated", _validated_text(validated)),
        ("source run", bundle.source_run or "unknown"),
        ("created_at", bundle.created_at),
        ("n_features", str(bundle.n_features)),
        ("size", _size_text(bundle.size_bytes)),
    ]
    for label, value in facts:
        if value:
            stdout.print(Text(f"{label:<12}{value}"), highlight=False)


def _validated_text(validated: dict[str, Any]) -> str:
    if not validated:
        return ""
    status = f", {validated['status']}" if validated.get("status") else ""
    return f"{validated.get('model_id')} at {validated.get('validated_at')}{status}"


def _print_metrics(metrics: dict[str, Any]) -> None:
    """Test (and best-epoch valid) metrics at 4 decimals, the conventions as caption."""
    from ltr.cli._common import conventions_caption, fmt

    test, valid = metrics.get("test") or {}, metrics.get("valid") or {}
    if not test and not valid:
        stdout.print("no test metrics recorded", highlight=False)
        return
    epoch = metrics.get("best_epoch")
    table = Table(
        title="metrics" if epoch is None else f"metrics (best epoch {epoch})",
        caption=conventions_caption(dict(metrics.get("conventions") or {})),
        title_justify="left",
    )
    columns = [(label, group) for label, group in (("test", test), ("valid", valid)) if group]
    table.add_column("metric")
    for label, _ in columns:
        table.add_column(label, justify="right")
    from ltr.metrics import metric_order

    names = dict.fromkeys([*test, *valid])
    # the configured conventions first; ndcg@10[preset=letor] and such name their own
    for name in sorted(names, key=lambda name: ("[" in name, metric_order(name))):
        cells = [group.get(name) for _, group in columns]
        table.add_row(Text(name), *("" if v is None else fmt(float(v)) for v in cells))
    print_table(table)


def _print_files(bundle: Any) -> None:
    """The data the model was trained and tested on, then the bundle's own files."""
    data = bundle.metrics.get("data") or {}
    if data:
        stdout.print("data", highlight=False)
        for split, record in sorted(data.items(), key=lambda item: _SPLIT_ORDER.get(item[0], 3)):
            if isinstance(record, dict):
                line = f"  {split:<6}{record.get('path')}  sha256 {_short(record.get('sha256'))}"
                stdout.print(Text(line), highlight=False)
    stdout.print("bundle files (checksums verified)", highlight=False)
    for name, sha in sorted(bundle.files.items()):
        stdout.print(Text(f"  {name}  sha256 {_short(sha)}"), highlight=False)


def _short(sha256: Any) -> str:
    return f"{sha256[:12]}…" if isinstance(sha256, str) else "unknown"


def _validated_facts(
    bundle: Any, lookup: ValidatedLookup | None = None
) -> tuple[dict[str, Any], bool]:
    """The bundle's ``validated`` block and False; for a bundle exported before production
    recorded it, the validated model of the same source run and version, and True."""
    recorded = bundle.metadata.get("validated")
    if recorded or not bundle.source_run:
        return dict(recorded or {}), False
    from ltr.lifecycle.registry import ValidatedLookup

    model = (lookup or ValidatedLookup()).exported_as(bundle.source_run, bundle.version)
    return ({}, False) if model is None else (model.facts(), True)


def _live_since(model_store: Any, version: str) -> str | None:
    """When ``version`` last went live, from the store's history."""
    events = model_store.history()["events"]
    times = [event.get("at") for event in events if event.get("to") == version]
    return str(times[-1]) if times and times[-1] else None


@app.command("verify")
def verify(
    version: Annotated[
        str | None, typer.Argument(help="The version to check; all when left out.")
    ] = None,
    store: StoreOpt = Path("models"),
) -> None:
    """Recompute every checksum; exit 1 naming the bundle and file on any mismatch."""
    model_store = _existing_store(store)
    checks = model_store.verify(version)
    # the pointer is one more check of the whole store, reported after every bundle's
    pointer_problem = model_store.pointer_problem() if version is None else None
    current = None if pointer_problem else _current_or_warn(model_store)
    if not checks and pointer_problem is None:
        stdout.print(f"no versions in {store}")
        return
    for check in checks:
        if check.error is None:
            live = "  (live)" if check.version == current else ""
            stdout.print(f"ok      {check.version}{live}", highlight=False)
        else:
            sys.stderr.write(f"error: {check.error}\n")
    if pointer_problem is not None:
        sys.stderr.write(f"error: {pointer_problem}\n")
    if pointer_problem is not None or not all(check.ok for check in checks):
        raise typer.Exit(1)


@app.command("rollback")
def rollback(store: StoreOpt = Path("models")) -> None:
    """Make the previously live version live again."""
    from ltr.lifecycle.store import CURRENT_FILE, HISTORY_FILE

    model_store = _existing_store(store)
    try:
        previous, broken = model_store.current(), None
    except BundleError as error:  # a corrupt pointer: rollback goes by the history
        previous, broken = None, error
    version = model_store.rollback()  # when it refuses, its error names the broken pointer
    if broken is not None:
        warn(f"{broken}; rolled back by {store / HISTORY_FILE}")
    stdout.print(f"{store / CURRENT_FILE}: {previous or '?'} -> {version}", highlight=False)


def promote(
    run: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="The run directory (experiments/<id>).")
    ],
    to: Annotated[
        Stage, typer.Option("--to", help="validated, then production (validated runs only).")
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            metavar="X.Y.Z",
            help="With --to validated: the version to register (default: the highest validated "
            "version of any name with the minor number + 1, e.g. 1.3.0 after 1.2.0). With --to "
            "production: which of the run's validated versions goes live (default: its highest).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="The registry name (default: the run's promotion.registry_name, else its "
            "experiment name). A run tested on other data, e.g. another fold, needs its own.",
        ),
    ] = None,
    store: StoreOpt = Path("models"),
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="With --to production: replace the live model even though its test metric is "
            "better on the same test file.",
        ),
    ] = False,
) -> None:
    """Promote a run: gate and mark it validated, or export a validated run and make it live."""
    from ltr.config import NAME_PATTERN

    check_version_option(version)  # bad usage exits 2, naming the option, as click's own checks
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    if to is Stage.validated:
        if force:  # validation has no override: a checkpoint is validated once, gated
            raise UsageError("--force: only with --to production (to replace a better live model)")
        _promote_to_validated(run, version, name)
    else:
        _promote_to_production(run, version, name, store, force)


def _promote_to_validated(run: Path, version: str | None, name: str | None) -> None:
    try:
        from ltr.lifecycle.registry import promote_to_validated
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and error.name != "ltr.lifecycle.registry":
            raise  # a dependency of the registry is missing: say which
        raise ConfigError(
            "promotion to validated is not available yet (ltr.lifecycle.registry is missing)"
        ) from None
    validated = promote_to_validated(run, version=version, name=name)
    stdout.print(f"{run}: validated as version {validated.version}", highlight=False)
    stdout.print(str(validated), highlight=False, soft_wrap=True)


def _promote_to_production(
    run: Path, version: str | None, name: str | None, store: Path, force: bool
) -> None:
    from ltr.lifecycle.export import export_bundle
    from ltr.lifecycle.registry import validated_version_of
    from ltr.lifecycle.store import CURRENT_FILE, ModelStore

    validated = validated_version_of(run, version, name=name)  # refuses a run that skipped the gate
    version_given, version = (
        version,
        validated.version,
    )  # the live version is the validated one, never a new number
    model_store = ModelStore(store)
    stored = version in model_store.versions()  # e.g. after a rollback: roll forward to it again
    if stored:
        _refuse_another_runs_version(model_store, validated, store, run, version_given)
    details, seen_live = _check_against_live(model_store, validated, force)  # before the export
    model_store.history()  # an unreadable history.json would refuse the switch after the export
    if stored:
        _switch_to_stored(model_store, version, store, details, seen_live)
        return

    def build(output: Path) -> None:
        export_bundle(model=run, output=output, version=version, validated=validated.facts())

    bundle = model_store.add(build, version)
    previous = _switch_if_live_unchanged(model_store, version, details, seen_live)
    stdout.print(f"exported {run} ({validated.model_id}) to {bundle.path}", highlight=False)
    stdout.print(f"{store / CURRENT_FILE}: {previous or 'none'} -> {version}", highlight=False)


def _check_against_live(
    model_store: Any, validated: Any, force: bool
) -> tuple[dict[str, Any], str | None]:
    """Refuse a candidate the live model beats on the same test file, unless ``force``; warn
    when the two cannot be compared. Returns what the promotion's history event records, and
    the live version this decision was made on (None: nothing readable was live)."""
    from ltr.errors import PromotionRefused
    from ltr.lifecycle.production import NOTHING_LIVE, compare_with_live

    comparison = compare_with_live(model_store, validated)
    if comparison is None:  # the candidate is live already: nothing changes
        return {}, validated.version
    if comparison.live_is_better:
        if not force:
            raise PromotionRefused(f"{comparison.verdict}; add --force to replace it")
        warn(f"{comparison.verdict}; replacing it (--force)")
    elif comparison.not_compared not in (None, NOTHING_LIVE):
        warn(f"could not compare with {comparison.live}: {comparison.not_compared}")
    # forced: a better live model was replaced, not merely --force given
    details = {
        "compared_with_live": comparison.to_dict(),
        "forced": force and comparison.live_is_better,
    }
    return details, comparison.live_version


def _switch_if_live_unchanged(
    model_store: Any, version: str, details: dict[str, Any], seen_live: str | None
) -> str | None:
    """Make ``version`` live unless another promotion changed the live model since it was
    compared (the comparison runs before the store's lock, to refuse before a slow export)."""
    try:
        previous: str | None = model_store.set_current(
            version, details=details, expected_live=seen_live
        )
    except BusyError as error:
        raise BusyError(
            f"{error}; {version} is stored: promote it again to compare it with the new live model"
        ) from None
    return previous


def _refuse_another_runs_version(
    model_store: Any, validated: Any, store: Path, run: Path, version_given: str | None
) -> None:
    """A stored version goes live again only if it is the validated model; never overwrite it."""
    version = validated.version
    bundle = model_store.show(version)  # verifies every checksum of the stored bundle
    if bundle.source_run != validated.metadata["run_dir"]:
        # the way out must lose nothing: a validation cannot be redone (a checkpoint validates
        # once, and a name's later versions would gate it), so suggest a store of its own
        store_of_its_own = store.with_name(f"{store.name}-{validated.name}")
        chosen = f" --version {version_given}" if version_given else ""
        raise ConfigError(
            f"version {version} in {store} was exported from {bundle.source_run}, not from "
            f"{validated.model_id}'s run {validated.metadata['run_dir']}; the store is keyed by "
            "version alone, so the same version of two names collides there, and a stored "
            "version is never overwritten: promote the run into a store of its own, e.g. "
            f"`ltr promote {run} --to production --name {validated.name}{chosen} "
            f"--store {store_of_its_own}`"
        )


def _switch_to_stored(
    model_store: Any, version: str, store: Path, details: dict[str, Any], seen_live: str | None
) -> None:
    """Make a stored version (the validated model's own export) live again."""
    from ltr.lifecycle.store import CURRENT_FILE

    previous = _switch_if_live_unchanged(model_store, version, details, seen_live)
    if previous == version:
        stdout.print(f"{store / CURRENT_FILE}: {version} is live already", highlight=False)
    else:
        stdout.print(
            f"{store / CURRENT_FILE}: {previous or 'none'} -> {version} (stored already)",
            highlight=False,
        )


def _existing_store(store: Path) -> ModelStore:
    """The model store at ``store``; refused when there is no such folder, so a mistyped
    ``--store`` is an error rather than an empty store (only `ltr promote` creates one)."""
    from ltr.lifecycle.store import ModelStore

    model_store = ModelStore(store)  # a file in the way is its own error
    if not store.is_dir():
        raise DataNotFoundError(
            f"model store {store} does not exist; give --store the folder that "
            "`ltr promote RUN --to production` created"
        )
    return model_store


def _current_or_warn(model_store: Any) -> str | None:
    try:
        current: str | None = model_store.current()
    except LtrError as error:
        warn(str(error))
        return None
    return current


def _find_metric(metrics: dict[str, Any], name: str) -> float | None:
    """``metrics[name]``, or the same name one level down (``metrics["test"][name]`` first)."""
    if isinstance(metrics.get(name), (int, float)):
        return float(metrics[name])
    nested = [metrics[k] for k in ("test", "valid") if k in metrics]
    nested += [value for key, value in sorted(metrics.items()) if key not in ("test", "valid")]
    for group in nested:
        if isinstance(group, dict) and isinstance(group.get(name), (int, float)):
            return float(group[name])
    return None


def _minutes(created_at: str) -> str:
    """``2026-11-21T23:28:26Z`` -> ``2026-11-21 23:28``: the table's width; --json has it all."""
    return created_at[:16].replace("T", " ") if len(created_at) >= 16 else created_at


def _size_text(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
