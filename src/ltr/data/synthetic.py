"""Synthetic ranking data with a known, non-linear relevance function.

The generator gives every model something real to learn and every test a known answer:

- **List lengths** are lognormal (median ``sqrt(min_docs * max_docs)`` unless set), rounded and
  clipped to ``[min_docs, max_docs]``.
- **Features** (columns are 0-based; LETOR ids are column + 1):

  ==========  ================================================================================
  column      content
  ==========  ================================================================================
  0, 1        uniform [0, 1]; relevance has their product (an interaction)
  2           uniform [0, 1]; relevance jumps above 0.6 (a threshold)
  3           uniform [0, 1]; relevance follows ``sin(2 pi x)`` (non-monotone)
  4           standard normal; relevance grows linearly (weakly)
  5           query-level: the query's "difficulty", the same for all its documents
  6           latent relevance plus heavy noise (correlation with it ~0.45)
  7 ...       noise: lognormal counts (heavy tails), uniform, normal, and from column 10 on
              every fifth column constant 0
  ==========  ================================================================================

- **Relevance**: ``latent = latent_relevance(features) + difficulty + noise``; labels 0-4 come
  from fixed quantiles of ``latent`` over the whole data set (not per query), so a hard query can
  have no relevant document at all (about 15-20% of queries with the defaults).

Everything is vectorized (10,000 queries of ~50 documents take well under a second) and
determined by ``seed``: the same arguments give bit-identical arrays and files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ltr._fs import atomic_write_json, atomic_write_text
from ltr.data.dataset import subset_queries
from ltr.data.layout import data_files_in
from ltr.data.letor import LetorData, write_letor
from ltr.errors import ConfigError

__all__ = [
    "MIN_FEATURES",
    "MIN_QUERIES",
    "latent_relevance",
    "make_synthetic",
    "write_synthetic",
]

GENERATOR_VERSION = 1
MIN_FEATURES = 7
# the fewest queries the default 0.6/0.2/0.2 split deals at least one of to every split
MIN_QUERIES = 4
# global quantiles of the latent score where labels 1, 2, 3, 4 start
_LABEL_QUANTILES = (0.62, 0.82, 0.93, 0.98)
_SPLITS = ("train", "vali", "test")
_WRITTEN_FILES = frozenset(f"{split}.txt" for split in _SPLITS)
# make_synthetic arguments that write_synthetic passes through **params
_EXTRA_PARAMETERS = frozenset(
    {"min_docs", "max_docs", "median_docs", "difficulty_std", "noise_std"}
)


def latent_relevance(features: np.ndarray) -> np.ndarray:
    """The noise-free relevance the labels come from; the best possible ranking function.

    .. math:: r(x) = 2 x_0 x_1 + 1.5 [x_2 > 0.6] + 0.8 \\sin(2 \\pi x_3) + 0.3 x_4

    Args:
        features: ``[n_docs, n_features]`` with ``n_features >= 5`` (columns 0-4 are used).

    Returns:
        float64 ``[n_docs]``.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 5:
        raise ConfigError(f"latent_relevance needs features [n_docs, >= 5]; got {x.shape}")
    return (
        2.0 * x[:, 0] * x[:, 1]
        + 1.5 * (x[:, 2] > 0.6)
        + 0.8 * np.sin(2.0 * np.pi * x[:, 3])
        + 0.3 * x[:, 4]
    )


def _list_lengths(
    rng: np.random.Generator, n_queries: int, min_docs: int, max_docs: int, median: float
) -> np.ndarray:
    raw = rng.lognormal(mean=np.log(median), sigma=0.6, size=n_queries)
    return np.clip(np.rint(raw), min_docs, max_docs).astype(np.int64)


def _noise_features(rng: np.random.Generator, n_docs: int, n_noise: int) -> np.ndarray:
    """``[n_docs, n_noise]``: lognormal counts, uniform, normal; every fifth one from 10 on is 0."""
    columns = []
    for j in range(n_noise):
        column = MIN_FEATURES + j
        if column >= 10 and column % 5 == 0:
            columns.append(np.zeros(n_docs))
        elif j % 3 == 0:
            columns.append(np.floor(rng.lognormal(1.0, 1.2, size=n_docs)))
        elif j % 3 == 1:
            columns.append(rng.random(n_docs))
        else:
            columns.append(rng.normal(size=n_docs))
    return np.stack(columns, axis=1) if columns else np.zeros((n_docs, 0))


def make_synthetic(
    *,
    n_queries: int = 300,
    n_features: int = 20,
    seed: int = 0,
    min_docs: int = 5,
    max_docs: int = 60,
    median_docs: float | None = None,
    difficulty_std: float = 1.3,
    noise_std: float = 0.3,
) -> LetorData:
    """Generate a synthetic ranking data set; see the module docstring for the recipe.

    Args:
        n_queries: number of queries, at least 1.
        n_features: features per document, at least :data:`MIN_FEATURES` (7).
        seed: the seed; equal arguments give identical data.
        min_docs: shortest list, at least 1.
        max_docs: longest list, at least ``min_docs``.
        median_docs: median list length before clipping; None = ``sqrt(min_docs * max_docs)``.
        difficulty_std: spread of the per-query offset of the latent score (more spread, more
            queries without a relevant document).
        noise_std: spread of per-document label noise (the oracle's ranking error).

    Returns:
        ``LetorData`` with labels 0-4, query ids ``"1".."n"`` and doc ids ``D<qid>-<i>``
        (``i`` from 1).

    Raises:
        ConfigError: an argument out of range.
    """
    if n_queries < 1 or n_features < MIN_FEATURES or not 1 <= min_docs <= max_docs:
        raise ConfigError(
            f"need n_queries >= 1, n_features >= {MIN_FEATURES} and 1 <= min_docs <= max_docs; "
            f"got n_queries={n_queries}, n_features={n_features}, min_docs={min_docs}, "
            f"max_docs={max_docs}"
        )
    if seed < 0:  # numpy's generators take non-negative seeds only
        raise ConfigError(f"seed must be >= 0; got {seed}")
    if difficulty_std < 0 or noise_std < 0:
        raise ConfigError(
            f"difficulty_std and noise_std must be >= 0; got {difficulty_std}, {noise_std}"
        )
    rng = np.random.default_rng(seed)
    median = median_docs if median_docs is not None else float(np.sqrt(min_docs * max_docs))
    lengths = _list_lengths(rng, n_queries, min_docs, max_docs, median)
    n_docs = int(lengths.sum())
    owner = np.repeat(np.arange(n_queries), lengths)

    difficulty = rng.normal(scale=difficulty_std, size=n_queries)
    signal = np.column_stack([rng.random((n_docs, 4)), rng.normal(size=n_docs)])
    features = np.zeros((n_docs, n_features), dtype=np.float32)
    features[:, :5] = signal
    features[:, 5] = difficulty[owner]
    # the oracle sees exactly the float32 values a model will see
    oracle = latent_relevance(features[:, :5])
    features[:, 6] = oracle + rng.normal(scale=2.0 * oracle.std(), size=n_docs)
    features[:, MIN_FEATURES:] = _noise_features(rng, n_docs, n_features - MIN_FEATURES)

    latent = oracle + difficulty[owner] + rng.normal(scale=noise_std, size=n_docs)
    thresholds = np.quantile(latent, _LABEL_QUANTILES)
    labels = np.searchsorted(thresholds, latent, side="right").astype(np.float32)

    offsets = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    query_ids = np.array([str(q + 1) for q in range(n_queries)])
    position = np.arange(n_docs) - offsets[owner] + 1
    doc_ids = np.char.add(
        np.char.add(np.char.add("D", query_ids[owner]), "-"), position.astype(str)
    )
    return LetorData(features, labels, query_ids, offsets, doc_ids)


def _split_sizes(n_queries: int, splits: tuple[float, float, float]) -> list[int]:
    if len(splits) != 3 or min(splits) < 0 or not np.isclose(sum(splits), 1.0):
        raise ConfigError(f"splits must be three non-negative fractions summing to 1; got {splits}")
    sizes = [round(fraction * n_queries) for fraction in splits[:2]]
    sizes.append(n_queries - sum(sizes))
    if min(sizes) < 1:
        raise ConfigError(
            f"every split needs at least one query; {n_queries} queries split {splits} gives "
            f"{sizes}"
        )
    return sizes


def _describe(data: LetorData) -> dict[str, Any]:
    lengths = data.list_lengths
    relevant = np.add.reduceat(data.labels > 0, data.query_offsets[:-1])
    return {
        "queries": data.n_queries,
        "docs": data.n_docs,
        "labels": {str(g): int((data.labels == g).sum()) for g in range(5)},
        "queries_without_relevant": int(np.sum(relevant == 0)),
        "docs_per_query": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
    }


def write_synthetic(
    out_dir: str | Path,
    *,
    n_queries: int = 300,
    n_features: int = 20,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2),
    **params: Any,
) -> dict[str, Path]:
    """Generate one synthetic data set and write it as a LETOR fold folder.

    Queries are dealt to the splits at random (seeded); each split keeps query order. A folder
    that already holds data is refused unless its ``info.json`` records the same generator and
    parameters (then the files come out byte for byte the same): new data under old runs would
    make every run trained on it disagree with its test file.

    Args:
        out_dir: folder to write (created if missing).
        n_queries, n_features, seed: as in :func:`make_synthetic`.
        splits: fractions of queries for train, vali, test.
        **params: further :func:`make_synthetic` arguments (``min_docs``, ``max_docs``, ...).

    Returns:
        Paths by name: ``train``, ``vali``, ``test`` (``.txt``), ``info`` (``info.json``: the
        generator and its parameters, counts per split) and ``readme`` (``README.md``).

    Raises:
        ConfigError: bad arguments, or ``out_dir`` holds other data.
    """
    unknown = sorted(set(params) - _EXTRA_PARAMETERS)
    if unknown:
        raise ConfigError(
            f"unknown make_synthetic parameter(s) {unknown}; expected some of "
            f"{sorted(_EXTRA_PARAMETERS)}"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder; give a folder for the data files")
    sizes = _split_sizes(n_queries, splits)
    arguments = {"n_queries": n_queries, "n_features": n_features, "seed": seed, **params}
    _refuse_other_data(out, {**arguments, "splits": list(splits)})
    data = make_synthetic(**arguments)
    order = np.random.default_rng((seed, 1)).permutation(n_queries)
    bounds = np.cumsum([0, *sizes])
    paths: dict[str, Path] = {}
    info: dict[str, Any] = {
        "generator": "ltr.data.synthetic",
        "version": GENERATOR_VERSION,
        "parameters": {**arguments, "splits": list(splits)},
        # fN = LETOR feature N (1-based), as every other text about the data says
        "relevance": "2*f1*f2 + 1.5*[f3 > 0.6] + 0.8*sin(2*pi*f4) + 0.3*f5 "
        "+ query difficulty (f6) + noise, fN = LETOR feature N; labels at global quantiles "
        f"{list(_LABEL_QUANTILES)}",
        "splits": {},
    }
    for name, start, stop in zip(_SPLITS, bounds[:-1], bounds[1:], strict=True):
        part = subset_queries(data, np.sort(order[start:stop]))
        paths[name] = out / f"{name}.txt"
        write_letor(paths[name], part)
        info["splits"][name] = _describe(part)
    paths["info"] = out / "info.json"
    atomic_write_json(paths["info"], info)
    paths["readme"] = out / "README.md"
    atomic_write_text(paths["readme"], _readme(info))
    return paths


def _refuse_other_data(out: Path, parameters: dict[str, Any]) -> None:
    """Only the same generator with the same parameters may write over an existing data set."""
    held = [path.name for path in data_files_in(out)]  # any file data.root would read
    info_file = out / "info.json"
    if not held and not info_file.exists():
        return
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        old = info["parameters"]
        same = info.get("version") == GENERATOR_VERSION and old == json.loads(
            json.dumps(parameters)
        )
        holds = (
            f"info.json: {old['n_queries']} queries, {old['n_features']} features, "
            f"seed {old['seed']}"
        )
    except (OSError, ValueError, TypeError, KeyError):  # not written by write_synthetic
        same, holds = False, f"{', '.join(held) or 'info.json'}, not from ltr data synth"
    # e.g. train.txt.gz beside our train.txt: a second training file, not ours
    foreign = [name for name in held if name not in _WRITTEN_FILES]
    if foreign:
        same, holds = False, f"{', '.join(foreign)}, not from ltr data synth"
    if not same:
        raise ConfigError(
            f"{out} already holds data ({holds}); writing other data there would invalidate the "
            "runs trained on it: give another --out, or delete the folder first"
        )


def _readme(info: dict[str, Any]) -> str:
    parameters = ", ".join(f"{key}={value}" for key, value in info["parameters"].items())
    lines = [
        "# Synthetic learning-to-rank data",
        "",
        f"Written by `ltr.data.synthetic.write_synthetic` (generator version {info['version']})",
        f"with {parameters}.",
        "",
        f"Relevance: {info['relevance']}.",
        "Features 1-5 (LETOR ids) carry the signal, 6 is the query difficulty (constant within a",
        "query), 7 is weakly correlated with relevance, the rest is noise (some constant 0).",
        "`ltr.data.synthetic.latent_relevance(features)` is the oracle ranking function.",
        "",
        "| split | queries | docs | queries without relevant doc |",
        "|---|---|---|---|",
    ]
    for name, split in info["splits"].items():
        counts = [split["queries"], split["docs"], split["queries_without_relevant"]]
        lines.append(f"| {name} | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(lines) + "\n"
