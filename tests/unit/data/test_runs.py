"""Score and TREC run files: read back what ltr writes, and evaluate a run as trec_eval does."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from ltr.data.letor import LetorData, read_letor
from ltr.data.runs import read_scores, read_trec_run, write_scores, write_trec_run
from ltr.data.synthetic import make_synthetic
from ltr.errors import DataFormatError, DataNotFoundError
from ltr.evaluation import evaluate_run

# trec_eval measure -> ltr report name (preset trec_eval)
TREC_MEASURES = {
    "ndcg_cut_5": "ndcg@5",
    "ndcg_cut_10": "ndcg@10",
    "ndcg": "ndcg",
    "map": "map",
    "map_cut_10": "map@10",
    "recip_rank": "mrr",
    "P_5": "p@5",
    "recall_10": "recall@10",
}


def tiny_data(doc_ids: list[str] | None = None) -> LetorData:
    """One query ``q1`` with labels 2, 0, 1."""
    return LetorData(
        features=np.zeros((3, 2), dtype=np.float32),
        labels=np.array([2, 0, 1], dtype=np.float32),
        query_ids=np.array(["q1"]),
        query_offsets=np.array([0, 3]),
        doc_ids=None if doc_ids is None else np.array(doc_ids),
    )


def write_awkward_run(path: Path, data: LetorData) -> None:
    """A run with what trec_eval has rules for: ties (by docid, judged and unjudged alike),
    unjudged documents, judged documents left out, a data query left out, an unknown query."""
    assert data.doc_ids is not None
    rng = np.random.default_rng(3)
    lines = ["no-such-query Q0 x 1 1.0 t"]
    for q, qid in enumerate(data.query_ids[1:], start=1):  # the first query is left out
        start, end = int(data.query_offsets[q]), int(data.query_offsets[q + 1])
        for i in range(start, end):
            if rng.random() < 0.2:
                continue  # judged, not retrieved
            score = float(rng.integers(0, 4))  # four values: many ties
            lines.append(f"{qid} Q0 {data.doc_ids[i]} 0 {score} t")
        for name in ("AAA", "zzz"):  # sort before and after every docid on ties
            lines.append(f"{qid} Q0 {name}-{qid} 0 {float(rng.integers(0, 4))} t")
    rng.shuffle(lines)  # file order must not matter
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def assert_matches_pytrec_eval(run_path: Path, data: LetorData) -> None:
    assert data.doc_ids is not None
    qrels: dict[str, dict[str, int]] = {}
    for q, qid in enumerate(data.query_ids):
        rows = slice(int(data.query_offsets[q]), int(data.query_offsets[q + 1]))
        labels = data.labels[rows].astype(int).tolist()
        qrels[qid] = dict(zip(data.doc_ids[rows], labels, strict=True))
    run: dict[str, dict[str, float]] = {}
    for line in run_path.read_text(encoding="utf-8").splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, {})[docid] = float(score)
    measures = {"ndcg_cut.5,10", "ndcg", "map", "map_cut.10", "recip_rank", "P.5", "recall.10"}
    expected = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)

    got = evaluate_run(
        read_trec_run(run_path, data), list(TREC_MEASURES.values()), preset="trec_eval"
    )

    for measure, name in TREC_MEASURES.items():
        # trec_eval -c: a data query absent from the run retrieves nothing, so scores 0
        want = [expected[q][measure] if q in expected else 0.0 for q in data.query_ids]
        np.testing.assert_allclose(got.per_query[name], want, rtol=0, atol=1e-9, err_msg=name)


def test_run_on_synthetic_data_is_evaluated_like_pytrec_eval(tmp_path: Path) -> None:
    data = make_synthetic(n_queries=30, n_features=7, seed=5)
    write_awkward_run(tmp_path / "run.txt", data)
    assert_matches_pytrec_eval(tmp_path / "run.txt", data)


def test_run_on_mq2008_is_evaluated_like_pytrec_eval(shared_data: Path, tmp_path: Path) -> None:
    data = read_letor(shared_data / "mq2008/Fold1/test.txt.gz")
    write_awkward_run(tmp_path / "run.txt", data)
    assert_matches_pytrec_eval(tmp_path / "run.txt", data)


def test_run_reports_what_trec_eval_handles_silently(tmp_path: Path) -> None:
    run = tmp_path / "run.txt"
    run.write_text("q1 Q0 a 1 2.0 t\nq1 Q0 new 2 1.0 t\nq9 Q0 x 1 1.0 t\n")
    matched = read_trec_run(run, tiny_data(["a", "b", "c"]))
    assert (matched.n_unjudged, matched.n_missing, matched.n_queries_unjudged) == (1, 2, 1)


def test_run_ties_are_broken_by_docid_descending(tmp_path: Path) -> None:
    run = tmp_path / "run.txt"
    run.write_text("q1 Q0 a 1 1.0 t\nq1 Q0 b 2 1.0 t\nq1 Q0 c 3 1.0 t\n")
    matched = read_trec_run(run, tiny_data(["a", "b", "c"]))
    # ranked c, b, a: labels 1, 0, 2 -> first relevant at rank 1, AP = (1 + 2/3) / 2
    assert evaluate_run(matched, ["map"]).means["map"] == pytest.approx((1 + 2 / 3) / 2)


def test_written_run_ranks_ties_as_the_reader_and_trec_eval_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run.txt"
    write_trec_run(run, tiny_data(["a", "c", "b"]), np.array([1.0, 1.0, 1.0]))

    # docid descending on ties; the rank column says the order evaluation uses
    assert run.read_text().splitlines() == [
        "q1 Q0 c 1 1.0 ltr",
        "q1 Q0 b 2 1.0 ltr",
        "q1 Q0 a 3 1.0 ltr",
    ]
    assert "1 of 1 queries have tied scores" in caplog.text


def test_written_run_without_ties_warns_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_trec_run(tmp_path / "run.txt", tiny_data(["a", "b", "c"]), np.array([0.5, 2.0, 1.0]))

    assert (tmp_path / "run.txt").read_text().split("\n")[0] == "q1 Q0 b 1 2.0 ltr"
    assert "tied" not in caplog.text


def test_run_matching_no_judged_document_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run.txt"
    run.write_text("other Q0 a 1 1.0 t\nq1 Q0 zz 1 1.0 t\n")
    with pytest.raises(DataFormatError, match=r"run\.txt: no \(qid, docid\) of the run is judged"):
        read_trec_run(run, tiny_data(["a", "b", "c"]), data_path="judged.txt")


def test_run_against_data_with_a_docid_twice_in_a_query_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run.txt"
    run.write_text("q1 Q0 a 1 1.0 t\n")
    with pytest.raises(DataFormatError, match=r"^dup\.txt: qid q1 lists docid a more than once"):
        read_trec_run(run, tiny_data(["a", "a", "c"]), data_path="dup.txt")


def test_gzipped_run_reads_like_plain(tmp_path: Path) -> None:
    text = b"q1 Q0 a 1 2.0 t\nq1 Q0 c 2 1.0 t\n"
    (tmp_path / "run.txt").write_bytes(text)
    (tmp_path / "run.txt.gz").write_bytes(gzip.compress(text))
    plain = read_trec_run(tmp_path / "run.txt", tiny_data(["a", "b", "c"]))
    zipped = read_trec_run(tmp_path / "run.txt.gz", tiny_data(["a", "b", "c"]))
    assert np.array_equal(plain.labels, zipped.labels)
    assert np.array_equal(plain.scores, zipped.scores)


def test_gzipped_scores_read_like_plain(tmp_path: Path) -> None:
    write_scores(tmp_path / "s.txt", np.array([0.5, -1.25]))
    (tmp_path / "s.txt.gz").write_bytes(gzip.compress((tmp_path / "s.txt").read_bytes()))
    assert read_scores(tmp_path / "s.txt.gz", expected=2).tolist() == [0.5, -1.25]


def test_undecodable_score_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes(b"0.5\n\xff1.0\n")
    with pytest.raises(
        DataFormatError, match=r"s\.txt:2: the file must be UTF-8 text; got byte 0xff"
    ):
        read_scores(path)


def test_undecodable_run_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_bytes(b"q1 Q0 a 1 1.0 t\nq1 Q0 \xe9 2 0.5 t\n")
    with pytest.raises(DataFormatError, match=r"run\.txt:2: the file must be UTF-8 text"):
        read_trec_run(path, tiny_data(["a", "b", "c"]))


def test_trailing_blank_lines_of_a_score_file_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("0.5\n1.5\n\n\n")
    assert read_scores(path, expected=2).tolist() == [0.5, 1.5]


def test_blank_line_inside_a_score_file_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("0.5\n\n1.5\n")
    with pytest.raises(DataFormatError, match=r"s\.txt:2: a score line must hold one number"):
        read_scores(path)


def test_writing_a_run_needs_doc_ids(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"^plain\.txt: .*'#docid =' .*use --format scores$"):
        write_trec_run(tmp_path / "run.txt", tiny_data(), np.zeros(3), data_path="plain.txt")


def test_a_score_file_that_is_a_directory_is_called_one(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as error:
        read_scores(tmp_path)
    assert str(error.value) == f"score file {tmp_path} is a directory, not a file"
    with pytest.raises(DataNotFoundError, match=r"nope\.txt does not exist$"):
        read_scores(tmp_path / "nope.txt")
