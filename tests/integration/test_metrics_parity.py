"""ltr.metrics agrees per query with pytrec_eval, ranx, LightGBM and scikit-learn on real data.

Scores are fixed and tie-free (seeded random, or one feature column plus tiny seeded jitter),
plus an all-tied ranking that only stable-sorting tools (LightGBM) see raw. Following DESIGN.md's
testing notes, pytrec_eval, ranx and scikit-learn get integer ranks from a stable descending
sort instead of raw scores, so every tool ranks the same order. The ranking and padding helpers
here are deliberately naive (a Python loop per query) so they share no code with ltr.metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import pytrec_eval
from ranx import Qrels, Run, evaluate
from sklearn.metrics import ndcg_score

from ltr.data.letor import LetorData, read_letor, read_lightgbm
from ltr.metrics import PRESETS, compute_metrics, per_query_metrics

pytestmark = [
    # ranx's numba kernels warn about a uint64 -> int64 cast when they are first compiled.
    pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaTypeSafetyWarning"),
]

CUTOFFS = (1, 3, 5, 10)
TOLERANCE = 1e-9

DATASETS: dict[str, Callable[[Path], LetorData]] = {
    **{
        f"mq2008-fold{fold}-test": (
            lambda root, fold=fold: read_letor(root / f"mq2008/Fold{fold}/test.txt.gz")
        )
        for fold in range(1, 6)
    },
    "mq2008-fold1-train": lambda root: read_letor(root / "mq2008/Fold1/train.txt.gz"),
    "lightgbm-test": lambda root: read_lightgbm(root / "lightgbm-example/rank.test.gz"),
    "lightgbm-train": lambda root: read_lightgbm(root / "lightgbm-example/rank.train.gz"),
}


def random_scores(data: LetorData) -> np.ndarray:
    return np.random.default_rng(20240521).random(data.n_docs)


def feature_scores(data: LetorData) -> np.ndarray:
    """The feature column with the most distinct values, with jitter to break its ties."""
    distinct = [np.unique(column).size for column in data.features.T]
    column = data.features[:, int(np.argmax(distinct))].astype(np.float64)
    return column + np.random.default_rng(7).normal(scale=1e-7, size=data.n_docs)


def tied_scores(data: LetorData) -> np.ndarray:
    return np.zeros(data.n_docs)


SCORINGS = {"random": random_scores, "feature": feature_scores, "ties": tied_scores}


@pytest.fixture(scope="module", params=sorted(DATASETS))
def data(request: pytest.FixtureRequest, shared_data: Path) -> LetorData:
    return DATASETS[request.param](shared_data)


@pytest.fixture(params=sorted(SCORINGS))
def scores(request: pytest.FixtureRequest, data: LetorData) -> np.ndarray:
    return SCORINGS[request.param](data)


def query_slices(data: LetorData) -> list[slice]:
    offsets = data.query_offsets
    return [slice(int(offsets[q]), int(offsets[q + 1])) for q in range(data.n_queries)]


def rank_scores(data: LetorData, scores: np.ndarray) -> list[np.ndarray]:
    """Per query, ``n - position`` in a stable descending sort: distinct integers, ties in
    input order."""
    out = []
    for rows in query_slices(data):
        order = sorted(range(rows.stop - rows.start), key=lambda i: -scores[rows][i])
        ranks = np.empty(len(order))
        ranks[order] = np.arange(len(order), 0, -1)
        out.append(ranks)
    return out


def padded(data: LetorData, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = int(np.diff(data.query_offsets).max())
    padded_scores = np.full((data.n_queries, width), 1e9)  # junk where the mask is False
    padded_labels = np.full((data.n_queries, width), 7.0)
    mask = np.zeros((data.n_queries, width), dtype=bool)
    for q, rows in enumerate(query_slices(data)):
        n = rows.stop - rows.start
        padded_scores[q, :n], padded_labels[q, :n], mask[q, :n] = (
            scores[rows],
            data.labels[rows],
            True,
        )
    return padded_scores, padded_labels, mask


def ours(data: LetorData, scores: np.ndarray, names: list[str], **conventions: str) -> dict:
    return per_query_metrics(*padded(data, scores), names, **conventions)


def tool_inputs(data: LetorData, scores: np.ndarray) -> tuple[dict, dict]:
    """qrels and run dicts keyed by query id, documents ``d0, d1, ...`` in file order."""
    qrels, run = {}, {}
    for qid, rows, ranks in zip(
        data.query_ids, query_slices(data), rank_scores(data, scores), strict=True
    ):
        labels = data.labels[rows]
        qrels[str(qid)] = {f"d{j}": int(label) for j, label in enumerate(labels)}
        run[str(qid)] = {f"d{j}": float(rank) for j, rank in enumerate(ranks)}
    return qrels, run


def assert_per_query(expected: dict[str, float], got: np.ndarray, data: LetorData) -> None:
    want = np.array([expected[str(qid)] for qid in data.query_ids])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


def test_trec_eval_measures_match_per_query(data: LetorData, scores: np.ndarray) -> None:
    qrels, run = tool_inputs(data, scores)
    cut = ",".join(map(str, CUTOFFS))
    measures = {f"ndcg_cut.{cut}", "map", f"map_cut.{cut}", "recip_rank", f"P.{cut}"}
    results = pytrec_eval.RelevanceEvaluator(qrels, measures | {f"recall.{cut}"}).evaluate(run)
    pairs = {"map": "map", "recip_rank": "mrr"}
    for k in CUTOFFS:
        pairs |= {f"ndcg_cut_{k}": f"ndcg@{k}", f"map_cut_{k}": f"map@{k}"}
        pairs |= {f"P_{k}": f"p@{k}", f"recall_{k}": f"recall@{k}"}
    values = ours(data, scores, list(pairs.values()), preset="trec_eval")

    assert set(results) == {str(q) for q in data.query_ids}  # no query dropped, even unjudged
    for measure, name in pairs.items():
        assert_per_query({q: r[measure] for q, r in results.items()}, values[name], data)


def test_ranx_metrics_match_per_query(data: LetorData, scores: np.ndarray) -> None:
    qrels, run_dict = tool_inputs(data, scores)
    run = Run(run_dict)
    pairs = {"map": ("map", "linear"), "mrr": ("mrr", "linear")}
    for k in CUTOFFS:
        pairs |= {f"ndcg@{k}": (f"ndcg@{k}", "linear"), f"ndcg_burges@{k}": (f"ndcg@{k}", "exp2")}
        pairs |= {f"map@{k}": (f"map@{k}", "linear"), f"mrr@{k}": (f"mrr@{k}", "linear")}
        pairs |= {f"precision@{k}": (f"p@{k}", "linear"), f"recall@{k}": (f"recall@{k}", "linear")}
    evaluate(Qrels(qrels), run, list(pairs), return_mean=False)

    for gain in ("linear", "exp2"):
        names = {ranx_name: name for ranx_name, (name, g) in pairs.items() if g == gain}
        values = ours(data, scores, list(names.values()), gain=gain)
        for ranx_name, name in names.items():
            assert_per_query(run.scores[ranx_name], values[name], data)


def lightgbm_eval(data: LetorData, scores: np.ndarray) -> dict[str, float]:
    """LightGBM's own ndcg@k and map@k of ``scores``: a 0-iteration booster's eval_train()."""
    dataset = lightgbm.Dataset(
        np.zeros((data.n_docs, 1)),  # features are never used: no tree is trained
        data.labels,
        group=np.diff(data.query_offsets),
        init_score=scores,
        params={"verbose": -1, "num_threads": 1},
    )
    params = {"objective": "lambdarank", "metric": ["ndcg", "map"], "eval_at": list(CUTOFFS)}
    booster = lightgbm.Booster(params | {"verbose": -1, "num_threads": 1}, dataset)
    return {r.metric_name: r.metric_value for r in booster.eval_train()}


LIGHTGBM_NAMES = [f"{m}@{k}" for m in ("ndcg", "map") for k in CUTOFFS]


def test_lightgbm_means_match_with_raw_scores(data: LetorData, scores: np.ndarray) -> None:
    # LightGBM sorts stably, so raw scores (ties included) go in unchanged.
    expected = lightgbm_eval(data, scores)
    values = ours(data, scores, LIGHTGBM_NAMES, preset="lightgbm")

    assert sorted(expected) == sorted(LIGHTGBM_NAMES)
    for name in LIGHTGBM_NAMES:
        assert values[name].mean() == pytest.approx(expected[name], rel=0, abs=TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mq2008-fold1-test", "lightgbm-test"])
def test_lightgbm_matches_per_query(dataset: str, shared_data: Path) -> None:
    data = DATASETS[dataset](shared_data)
    for scoring in SCORINGS.values():
        scores = scoring(data)
        values = ours(data, scores, LIGHTGBM_NAMES, preset="lightgbm")
        for q, rows in enumerate(query_slices(data)):
            one = LetorData(
                data.features[rows],
                data.labels[rows],
                data.query_ids[q : q + 1],
                np.array([0, rows.stop - rows.start]),
            )
            expected = lightgbm_eval(one, scores[rows])
            for name in LIGHTGBM_NAMES:
                assert values[name][q] == pytest.approx(expected[name], rel=0, abs=TOLERANCE)


def test_sklearn_ndcg_score_matches_per_query(data: LetorData, scores: np.ndarray) -> None:
    values = ours(data, scores, [f"ndcg@{k}" for k in CUTOFFS], gain="linear", no_relevant="zero")
    checked = 0
    for q, (rows, ranks) in enumerate(
        zip(query_slices(data), rank_scores(data, scores), strict=True)
    ):
        if rows.stop - rows.start < 2:  # sklearn refuses one-document queries
            continue
        for k in CUTOFFS:
            expected = ndcg_score(data.labels[rows][None], ranks[None], k=k)
            assert values[f"ndcg@{k}"][q] == pytest.approx(expected, rel=0, abs=TOLERANCE)
        checked += 1
    assert checked >= data.n_queries - 10


def test_presets_name_the_conventions_of_the_tools_compared_here() -> None:
    assert PRESETS["lightgbm"]["no_relevant"] == "one"
    assert PRESETS["lightgbm"]["ap_denominator"] == "min_relevant_k"
    assert PRESETS["trec_eval"]["gain"] == "linear"


# Reference tables of ../shared/data/README.md (mq2008/Fold1/test.txt, 156 queries, 4 decimals).
NDCG_AT = [f"ndcg@{k}" for k in range(1, 11)]
README_TABLES = {
    # ranking, conventions: NDCG@1..10 (+ MAP)
    ("file order", "letor"): (
        [0.1197, 0.1544, 0.1946, 0.2382, 0.2719, 0.2920, 0.3121, 0.2661, 0.1000, 0.1059],
        0.2962,
    ),
    ("file order", "standard"): (
        [0.1197, 0.1439, 0.1828, 0.2243, 0.2582, 0.2790, 0.3007, 0.3133, 0.3193, 0.3257],
        0.2962,
    ),
    ("ideal", "letor"): (
        [0.6731, 0.6731, 0.6731, 0.6731, 0.6731, 0.6731, 0.6731, 0.6026, 0.3333, 0.3333],
        0.6731,
    ),
    ("file order", "lightgbm-ndcg"): (
        [0.4466, 0.4708, 0.5097, 0.5512, 0.5852, 0.6060, 0.6276, 0.6402, 0.6462, 0.6526],
        None,
    ),
}
README_CONVENTIONS: dict[str, dict[str, str]] = {
    "letor": {"preset": "letor"},
    "standard": {"gain": "exp2", "no_relevant": "zero"},
    "lightgbm-ndcg": {"gain": "exp2", "no_relevant": "one"},
}
README_PRECISION = [0.1410, 0.1571, 0.2009, 0.2212, 0.2269, 0.2190, 0.2161, 0.2059, 0.1966, 0.1865]


@pytest.fixture(scope="module")
def fold1_test(shared_data: Path) -> LetorData:
    return read_letor(shared_data / "mq2008/Fold1/test.txt.gz")


@pytest.mark.parametrize(("ranking", "convention"), list(README_TABLES))
def test_readme_reference_table_is_reproduced(
    fold1_test: LetorData, ranking: str, convention: str
) -> None:
    scores = tied_scores(fold1_test) if ranking == "file order" else fold1_test.labels * 1.0
    expected_ndcg, expected_map = README_TABLES[ranking, convention]
    names = [*NDCG_AT, "map"] if expected_map is not None else NDCG_AT
    means = compute_metrics(
        *padded(fold1_test, scores),
        names,
        **README_CONVENTIONS[convention],
    )

    assert [round(means[name], 4) for name in NDCG_AT] == expected_ndcg
    if expected_map is not None:
        assert round(means["map"], 4) == expected_map


def test_readme_precision_of_file_order_is_reproduced(fold1_test: LetorData) -> None:
    names = [f"p@{k}" for k in range(1, 11)]
    means = compute_metrics(*padded(fold1_test, tied_scores(fold1_test)), names, preset="letor")

    assert [round(means[name], 4) for name in names] == README_PRECISION


def test_readme_python_api_example_prints_its_numbers(shared_data: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    promised = re.search(
        r"result\.means +# \{'ndcg@10': ([\d.]+)\.\.\., 'map': ([\d.]+)\.\.\.", code
    )
    assert promised is not None, "the example no longer shows result.means"
    namespace: dict[str, object] = {}
    exec(code.replace("../shared/data", str(shared_data)), namespace)  # the example as written

    means = namespace["result"].means  # type: ignore[attr-defined]
    for name, digits in zip(("ndcg@10", "map"), promised.groups(), strict=True):
        assert f"{means[name]:.10f}".startswith(digits), (name, means[name], digits)
