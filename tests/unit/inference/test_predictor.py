"""Offline scoring reproduces the run's test numbers and refuses data it was not trained for."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ltr.config import load_config
from ltr.data.letor import load_letor, write_letor
from ltr.data.runs import read_scores, read_trec_run
from ltr.data.synthetic import make_synthetic
from ltr.errors import (
    ConfigError,
    DataFormatError,
    DataNotFoundError,
    LtrError,
    ShapeError,
    WriteError,
)
from ltr.evaluation import evaluate_run, evaluate_scores
from ltr.inference import Predictor, predict_file
from ltr.training import run_experiment
from support.tiny_runs import write_tiny_data

METRICS = ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, run directory) of a short transformer run."""
    root = write_tiny_data(tmp_path_factory.mktemp("data"), n_features=9, seed=1, max_docs=15)
    config = load_config(
        base={
            "data": {"root": str(root), "normalization": "log1p_standard"},
            "model": {"name": "transformer", "d_model": 8, "n_heads": 2, "n_layers": 1},
            "training": {"num_epochs": 2, "batch_size": 4, "device": "cpu"},
            "tracking": {"output_dir": str(root / "runs"), "tensorboard": False},
        }
    )
    return root, run_experiment(config, quiet=True)


def test_predicted_scores_reproduce_the_test_metrics_exactly(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    root, run_dir = trained
    out = predict_file(run_dir, root / "test.txt", tmp_path / "scores.txt")
    test = load_letor(root / "test.txt")
    scores = read_scores(out, expected=test.n_docs)
    means = evaluate_scores(test, scores, METRICS).means
    expected = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert means == {name: expected[name] for name in METRICS}


def test_trec_run_evaluates_to_the_same_numbers(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, run_dir = trained
    scores_file = predict_file(run_dir, root / "test.txt", tmp_path / "scores.txt")
    run_file = predict_file(run_dir, root / "test.txt", tmp_path / "run.trec", fmt="trec")
    test = load_letor(root / "test.txt")
    matched = read_trec_run(run_file, test)
    assert (matched.n_missing, matched.n_unjudged) == (0, 0)
    first = run_file.read_text(encoding="utf-8").splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == run_dir.name
    expected = evaluate_scores(test, read_scores(scores_file), METRICS).means
    assert evaluate_run(matched, METRICS).means == expected


def test_trec_output_needs_doc_ids_and_suggests_scores(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, run_dir = trained
    plain = tmp_path / "plain.txt"
    write_letor(plain, replace(make_synthetic(n_queries=2, n_features=9, seed=0), doc_ids=None))
    with pytest.raises(DataFormatError, match=r"plain\.txt: .*'#docid =' .*use --format scores$"):
        predict_file(run_dir, plain, tmp_path / "run.trec", fmt="trec")
    assert not (tmp_path / "run.trec").exists()


def test_a_checkpoint_file_works_like_its_run_directory(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    root, run_dir = trained
    a = predict_file(run_dir, root / "vali.txt", tmp_path / "a.txt")
    b = predict_file(run_dir / "checkpoints" / "best.pt", root / "vali.txt", tmp_path / "b.txt")
    assert np.array_equal(read_scores(a), read_scores(b))


def test_a_feature_index_beyond_the_model_names_file_and_line(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    root, run_dir = trained
    lines = (root / "test.txt").read_text().splitlines(keepends=True)
    wide = tmp_path / "wide.txt"
    wide.write_text(lines[0] + lines[1].replace(" #", " 25:1.0 #", 1) + "".join(lines[2:]))
    with pytest.raises(
        DataFormatError, match=r"wide\.txt:2: feature index 25 is beyond n_features=9"
    ):
        predict_file(run_dir, wide, tmp_path / "scores.txt")


def test_scoring_data_of_another_width_names_the_model_and_both_counts(
    trained: tuple[Path, Path],
) -> None:
    _, run_dir = trained
    predictor = Predictor.load(run_dir)
    wide = make_synthetic(n_queries=3, n_features=12, seed=0)
    expected = rf"^model {run_dir / 'checkpoints' / 'best.pt'} was trained on 9 features; "
    with pytest.raises(ShapeError, match=expected + "wide.txt has 12$"):
        predictor.score(wide, source="wide.txt")


def test_narrower_data_is_named_by_its_file_with_how_to_read_it_at_the_model_width(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    root, run_dir = trained
    test = load_letor(root / "test.txt")
    narrow = tmp_path / "narrow.txt"  # features 8 and 9 left out: a sparse file's trailing zeros
    write_letor(narrow, replace(test, features=test.features[:, :7]))
    predictor = Predictor.load(run_dir)
    expected = (
        rf"^model {re.escape(str(predictor.source))} was trained on 9 features; narrow\.txt has 7; "
        r"a sparse file that leaves out trailing zero features reads narrower: load it with "
        r"load_letor\(path, n_features=9\)$"
    )
    with pytest.raises(ShapeError, match=expected):
        predictor.score(load_letor(narrow))
    assert predictor.score(load_letor(narrow, n_features=predictor.n_features)).shape == (
        test.n_docs,
    )


def test_sparse_file_without_the_last_features_is_scored_like_training_reads_it(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    root, run_dir = trained
    test = load_letor(root / "test.txt")
    narrow = tmp_path / "narrow.txt"  # feature 9 left out: 0 for every document
    write_letor(narrow, replace(test, features=test.features[:, :8]))
    zeroed = tmp_path / "zeroed.txt"
    test.features[:, 8] = 0.0
    write_letor(zeroed, test)
    got = read_scores(predict_file(run_dir, narrow, tmp_path / "narrow_scores.txt"))
    expected = read_scores(predict_file(run_dir, zeroed, tmp_path / "zeroed_scores.txt"))
    assert np.array_equal(got, expected)


def test_data_whose_last_features_are_never_set_is_scored_with_a_warning(
    trained: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, run_dir = trained
    test = load_letor(root / "test.txt")
    predict_file(run_dir, root / "test.txt", tmp_path / "scores.txt")
    assert caplog.records == []  # the data the model was trained on
    narrow = tmp_path / "other.txt"  # another data set, with 6 features
    write_letor(narrow, replace(test, features=test.features[:, :6]))

    predict_file(run_dir, narrow, tmp_path / "other_scores.txt")

    assert caplog.messages == [
        "other.txt: features 7-9 are 0 or absent in every line, while the model has 9 features; "
        "is it the same kind of data?"
    ]


def test_missing_and_corrupt_checkpoints_are_clear_errors(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = trained
    with pytest.raises(DataNotFoundError, match=r"checkpoints/best\.pt"):
        predict_file(tmp_path, root / "test.txt", tmp_path / "scores.txt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(LtrError, match="not a readable ltr checkpoint"):
        Predictor.load(broken)


@pytest.mark.parametrize(
    "content",
    [b"hello\n", b"2 qid:1 1:0.5 2:0.3 #docid = a\n0 qid:1 1:0.1 2:0.9\n"],
    ids=["text", "letor"],
)
def test_a_file_that_is_not_a_checkpoint_is_refused_without_unpickling_advice(
    content: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    with pytest.raises(LtrError, match=r"data\.txt: not a readable ltr checkpoint") as error:
        Predictor.load(path)
    assert "weights_only" not in str(error.value)


def test_a_zip_that_is_not_a_checkpoint_is_refused_without_unpickling_advice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.pt"
    torch.save({"when": datetime.date(2024, 1, 1)}, path)  # not a weights-only type
    with pytest.raises(LtrError, match=r"other\.pt: not a readable ltr checkpoint") as error:
        Predictor.load(path)
    assert "Unsupported global: GLOBAL datetime.date" in str(error.value)
    assert "safe_globals" not in str(error.value)


@pytest.mark.parametrize(
    "device", ["gpu", "mps", "xpu", "meta", "cpu:0", "CPU", "", torch.device("meta")]
)
def test_an_unknown_device_is_a_config_error(device: str | torch.device, tmp_path: Path) -> None:
    # torch knows mps, xpu and meta, but they failed later and in torch's words, if at all
    with pytest.raises(
        ConfigError,
        match=rf"^device must be cpu, cuda, cuda:N or auto; got {re.escape(repr(device))}$",
    ):
        Predictor.load(tmp_path, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without cuda")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda")])
def test_cuda_on_a_machine_without_it_is_a_config_error(
    device: str | torch.device, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"^device: cuda is not available here; use cpu or auto$"):
        Predictor.load(tmp_path, device=device)


def test_unknown_format_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, run_dir = trained
    with pytest.raises(ConfigError, match="'scores' or 'trec'"):
        predict_file(run_dir, root / "test.txt", tmp_path / "x", fmt="csv")  # type: ignore[arg-type]


def test_an_output_directory_is_refused_before_any_work(tmp_path: Path) -> None:
    # neither the model nor the data exists: the directory check must come first
    with pytest.raises(ConfigError, match=r"is a directory; the output must be a file path"):
        predict_file(tmp_path / "no_run", tmp_path / "no_data.txt", tmp_path)


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(WriteError, match=r"^cannot write .*taken/scores\.txt: .*taken is a file"):
        # the model does not even exist: the output is checked first
        predict_file(tmp_path / "no-run", tmp_path / "no.txt", tmp_path / "taken" / "scores.txt")
