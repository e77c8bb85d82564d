"""LETOR / LightGBM reading and writing: round trips, layouts, every error message, real data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from ltr.data import _letor_parser
from ltr.data.letor import LetorData, load_letor, read_letor, read_lightgbm, write_letor
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError

GOOD = b"2 qid:10 1:0.5 2:1.25 #docid = A\n0 qid:10 1:0 2:3 #docid = B\n"


def write(tmp_path: Path, text: bytes, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text, mtime=0) if name.endswith(".gz") else text)
    return path


def random_data(seed: int, *, doc_ids: bool, n_queries: int = 7, n_features: int = 9) -> LetorData:
    """Hard floats: zeros, -0.0, negatives, subnormal-ish tiny and huge magnitudes."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_queries)
    n_docs = int(sizes.sum())
    scale = np.float32(10.0) ** rng.integers(-38, 38, (n_docs, n_features)).astype(np.float32)
    features = (rng.standard_normal((n_docs, n_features)).astype(np.float32) * scale).clip(
        -3e38, 3e38
    )
    features[rng.random((n_docs, n_features)) < 0.3] = 0.0
    features[0, 0] = -0.0
    features[:, -1] = 0.0  # the last column is empty: sparse output must keep the width
    labels = rng.integers(0, 5, n_docs).astype(np.float32)
    labels[-1] = 0.5  # a non-integral label survives too
    return LetorData(
        features=features,
        labels=labels,
        query_ids=np.array([f"q{i}" for i in range(n_queries)]),
        query_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        doc_ids=np.array([f"D-{i}" for i in range(n_docs)]) if doc_ids else None,
    )


def assert_same(a: LetorData, b: LetorData) -> None:
    """Bit-identical floats (so -0.0 and 0.0 differ), equal ids and offsets."""
    assert a.features.dtype == b.features.dtype == np.float32
    assert np.array_equal(a.features.view(np.uint32), b.features.view(np.uint32))
    assert np.array_equal(a.labels.view(np.uint32), b.labels.view(np.uint32))
    assert a.query_ids.tolist() == b.query_ids.tolist()
    assert np.array_equal(a.query_offsets, b.query_offsets)
    assert (a.doc_ids is None) == (b.doc_ids is None)
    if a.doc_ids is not None and b.doc_ids is not None:
        assert a.doc_ids.tolist() == b.doc_ids.tolist()


def test_letor_data_compares_and_hashes_by_identity() -> None:
    data = random_data(0, doc_ids=True)
    copy = LetorData(**{name: getattr(data, name) for name in data.__dataclass_fields__})
    assert data == data
    assert data != copy  # equal arrays, still another object: no element-wise comparison
    assert {data: 1, copy: 2}[data] == 1


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("doc_ids", [False, True])
@pytest.mark.parametrize("name", ["data.txt", "data.txt.gz"])
def test_write_then_read_gives_identical_arrays(
    tmp_path: Path, sparse: bool, doc_ids: bool, name: str
) -> None:
    data = random_data(seed=3, doc_ids=doc_ids)
    write_letor(tmp_path / name, data, sparse=sparse)
    assert_same(read_letor(tmp_path / name), data)


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    data = random_data(seed=1, doc_ids=True)
    write_letor(tmp_path / "a.txt.gz", data)
    write_letor(tmp_path / "b.txt.gz", data)
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()


def test_gzip_is_detected_by_magic_bytes_not_suffix(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(gzip.compress(GOOD))
    assert read_letor(path).features.tolist() == [[0.5, 1.25], [0.0, 3.0]]


def test_reader_fills_absent_sparse_features_with_zero_in_any_order(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 qid:1 3:0.5 1:2\n0 qid:1 2:-1.5\n")
    data = read_letor(path)
    assert data.features.tolist() == [[2.0, 0.0, 0.5], [0.0, -1.5, 0.0]]
    assert data.features.flags.c_contiguous and data.features.dtype == np.float32
    assert data.labels.dtype == np.float32 and data.doc_ids is None


def test_reader_returns_queries_offsets_and_doc_ids(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + b"1 qid:7 1:1 2:1 #docid = C inc = 1\n")
    data = read_letor(path)
    assert data.query_ids.tolist() == ["10", "7"]
    assert data.query_offsets.dtype == np.int64 and data.query_offsets.tolist() == [0, 2, 3]
    assert data.doc_ids is not None and data.doc_ids.tolist() == ["A", "B", "C"]
    assert data.labels.tolist() == [2.0, 0.0, 1.0]


def test_reader_skips_blank_and_comment_lines_and_tolerates_crlf(tmp_path: Path) -> None:
    text = (
        b"# header\r\n\r\n1 qid:1 1:0.5 #docid = a\r\n   \r\n# x 1:2\r\n0 qid:1 2:1e-5 #docid=b\r\n"
    )
    data = read_letor(write(tmp_path, text))
    assert data.features.tolist() == [[0.5, 0.0], [0.0, np.float32(1e-5)]]
    assert data.doc_ids is not None and data.doc_ids.tolist() == ["a", "b"]


@pytest.mark.parametrize("exponent", [b"", b"e-5"])  # vectorized, line-by-line parser
def test_label_written_minus_zero_is_stored_as_zero(tmp_path: Path, exponent: bytes) -> None:
    data = read_letor(write(tmp_path, b"-0 qid:1 1:0.5\n-0.0 qid:1 1:1" + exponent + b"\n"))
    assert data.labels.view(np.uint32).tolist() == [0, 0]  # +0.0, not -0.0 (0x80000000)
    assert str(data.labels[0]) == "0.0"


def test_reader_accepts_a_last_line_without_newline(tmp_path: Path) -> None:
    data = read_letor(write(tmp_path, b"1 qid:1 1:0.5\n0 qid:2 1:0.25"))
    assert data.list_lengths.tolist() == [1, 1]


def test_declared_n_features_sets_the_width(tmp_path: Path) -> None:
    assert read_letor(write(tmp_path, GOOD), n_features=5).features.shape == (2, 5)


@pytest.mark.parametrize("reader", [read_letor, load_letor])
def test_n_features_below_one_is_a_config_error(reader: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"n_features must be at least 1 .*; got 0"):
        reader(write(tmp_path, GOOD), n_features=0)  # type: ignore[operator]


def test_one_document_queries_and_a_query_of_ten_thousand(tmp_path: Path) -> None:
    lines = [f"0 qid:{q} 1:{q}" for q in range(5)] + [f"1 qid:big 2:{i}" for i in range(10_000)]
    data = read_letor(write(tmp_path, ("\n".join(lines) + "\n").encode()))
    assert data.list_lengths.tolist() == [1, 1, 1, 1, 1, 10_000]
    assert data.features[-1].tolist() == [0.0, 9999.0]


def test_values_equal_strtod_rounded_to_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts = [
        f"{v:.{d}f}"
        for v, d in zip(
            rng.random(3000) * 10.0 ** rng.integers(-3, 8, 3000),
            rng.integers(0, 12, 3000),
            strict=True,
        )
    ]
    texts += ["-0.5", "+2", "1e-5", "3.", ".25", "123456789012345678", "-0.0"]
    body = "".join(f"0 qid:1 1:{t}\n" for t in texts).encode()
    data = read_letor(write(tmp_path, body))
    expected = np.array([float(t) for t in texts]).astype(np.float32)
    assert np.array_equal(data.features[:, 0].view(np.uint32), expected.view(np.uint32))


def test_vectorized_and_line_by_line_parsers_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    lines = []
    for row in range(400):
        indices = rng.choice(np.arange(1, 1000), rng.integers(0, 12), replace=False)
        pairs = " ".join(
            f"{i}:{rng.random() * 10 ** rng.integers(0, 4):.{rng.integers(0, 7)}f}" for i in indices
        )
        lines.append(f"{rng.integers(0, 5)} qid:{row // 7} {pairs} #docid = d{row}")
    raw = ("\n".join(lines) + "\n").encode()
    fast = _letor_parser._parse_chunk_fast(raw, 1, "letor", None)
    tracker = _letor_parser._QueryTracker(tmp_path / "x.txt")
    slow = _letor_parser._parse_chunk_slow(raw, 1, "letor", None, tmp_path / "x.txt", tracker)
    assert fast is not None  # plain data must not fall back to the slow parser
    assert np.array_equal(fast.features, slow.features)
    assert np.array_equal(fast.labels, slow.labels)
    assert fast.runs == slow.runs
    assert fast.doc_ids is not None and slow.doc_ids is not None
    assert fast.doc_ids.astype(str).tolist() == slow.doc_ids.tolist()


def test_reader_joins_queries_and_reports_lines_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_letor_parser, "_CHUNK_BYTES", 64)
    lines = [f"{i % 3} qid:{i // 10} 1:{i}.5 2:0.25" for i in range(100)]
    path = write(tmp_path, ("\n".join(lines) + "\nbad qid:99 1:1\n").encode())
    with pytest.raises(DataFormatError, match=r"train\.txt:101: the label must be a number"):
        read_letor(path)
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())
    data = read_letor(path)
    assert data.list_lengths.tolist() == [10] * 10
    assert data.features[:, 0].tolist() == [i + 0.5 for i in range(100)]


def test_reader_widens_when_a_larger_index_comes_in_a_later_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_letor_parser, "_CHUNK_BYTES", 64)
    lines = [f"1 qid:{i // 4} 1:{i}" for i in range(40)] + ["0 qid:99 7:2.5", "0 qid:99 2:1"]
    data = read_letor(write(tmp_path, ("\n".join(lines) + "\n").encode()))
    assert data.features.shape == (42, 7) and data.features.flags.c_contiguous
    assert data.features[:40, 0].tolist() == list(range(40))
    assert data.features[40].tolist() == [0, 0, 0, 0, 0, 0, 2.5]
    assert data.features[41].tolist() == [0, 1, 0, 0, 0, 0, 0]


def test_reader_grows_past_a_row_estimate_from_long_first_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_letor_parser, "_CHUNK_BYTES", 256)
    long = [f"1 qid:0 1:{i}.123456789 2:0.5 3:0.25 #docid = long-{i}" for i in range(10)]
    short = [f"0 qid:{i} 1:{i} #docid = s{i}" for i in range(1, 500)]
    data = read_letor(write(tmp_path, ("\n".join(long + short) + "\n").encode()))
    assert data.n_docs == 509 and data.n_queries == 500
    assert data.features[10:, 0].tolist() == list(range(1, 500))
    assert data.doc_ids is not None and data.doc_ids[9] == "long-9" and data.doc_ids[10] == "s1"


def test_doc_ids_of_fast_and_slow_chunks_join_with_exact_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_letor_parser, "_CHUNK_BYTES", 64)
    text = (
        "1 qid:1 1:0.5 #docid = caf\u00e9\n"  # non-ASCII: decoded as UTF-8
        "0 qid:1 1:1e-5 #docid = b\n"  # an exponent: this chunk goes the line-by-line way
        "0 qid:2 1:1 #docid = c\n"
        "2 qid:2 1:2 #docid = a-long-id\n"
    )
    data = read_letor(write(tmp_path, text.encode()))
    assert data.doc_ids is not None
    assert data.doc_ids.tolist() == ["caf\u00e9", "b", "c", "a-long-id"]
    assert data.doc_ids.dtype == np.dtype("<U9")


# ---------------------------------------------------------------------------- LightGBM layout


def test_lightgbm_layout_reads_query_sizes(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 1:0.5\n0 2:1\n2 1:3\n", "rank.train")
    write(tmp_path, b"2\n1\n", "rank.train.query")
    data = read_lightgbm(path)
    assert data.query_ids.tolist() == ["0", "1"]
    assert data.query_offsets.tolist() == [0, 2, 3]
    assert data.features.tolist() == [[0.5, 0.0], [0.0, 1.0], [3.0, 0.0]]


def test_lightgbm_gz_prefers_gz_query_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 1:0.5\n0 2:1\n", "rank.train.gz")
    write(tmp_path, b"2\n", "rank.train.query.gz")
    write(tmp_path, b"1\n1\n", "rank.train.query")
    assert read_lightgbm(path).list_lengths.tolist() == [2]


def test_load_letor_detects_the_lightgbm_layout(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 1:0.5\n0 2:1\n", "rank.train")
    write(tmp_path, b"1\n1\n", "rank.train.query")
    data = load_letor(path, use_cache=False)
    assert data.list_lengths.tolist() == [1, 1]


def test_query_sizes_must_sum_to_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 1:0.5\n0 2:1\n2 1:3\n", "rank.train")
    write(tmp_path, b"2\n2\n", "rank.train.query")
    with pytest.raises(DataFormatError, match=r"rank\.train\.query: .* got 4 for 3 rows"):
        read_lightgbm(path)


def test_query_size_must_be_a_positive_integer(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 1:0.5\n", "rank.train")
    write(tmp_path, b"1\nx\n", "rank.train.query")
    with pytest.raises(DataFormatError, match=r"rank\.train\.query:2: .*positive integer; got 'x'"):
        read_lightgbm(path)


# ---------------------------------------------------------------------------- errors

HEAD = b"0 qid:1 1:0.5\n1 qid:1 1:0.25\n"
BAD_LINES = [
    (b"abc qid:1 1:0.5", r"train\.txt:3: the label must be a number; got 'abc'"),
    (b"1 qid:1 1:x", r"train\.txt:3: the value of feature 1 must be a number; got 'x'"),
    (b"1 1:0.5", r"train\.txt:3: missing qid: .*got '1:0\.5'"),
    (b"1 qid: 1:0.5", r"train\.txt:3: the qid is empty: write the query id right after the colon"),
    (
        b"1 qid:1 0:0.5",
        r"train\.txt:3: feature index 0 is invalid; LETOR feature indices start at 1",
    ),
    (b"1 qid:1 -2:0.5", r"train\.txt:3: feature index -2 is invalid; LETOR feature indices start"),
    (b"1 qid:1 a:0.5", r"train\.txt:3: a feature index must be an integer; got 'a'"),
    (b"1 qid:1 2:0.5 2:0.1", r"train\.txt:3: feature index 2 appears twice on this line"),
    (b"1 qid:1 0.5", r"train\.txt:3: a feature must be written index:value; got '0\.5'"),
    (b"1 qid:1 1:nan", r"train\.txt:3: the value of feature 1 must be finite; got nan"),
    (b"1 qid:1 1:-inf", r"train\.txt:3: the value of feature 1 must be finite; got -inf"),
    (b"-1 qid:1 1:0.5", r"train\.txt:3: the label must be a finite number >= 0; got -1"),
    (b"1 qid:1 1:1e40", r"train\.txt:3: the value of feature 1 must fit in float32 .*; got 1e40"),
    (b"1 qid:1 1:-3.4028236e38", r"train\.txt:3: the value of feature 1 must fit in float32"),
    (b"1e40 qid:1 1:0.5", r"train\.txt:3: the label must fit in float32 .*; got 1e40"),
    (b"0 qid:2 1:1\n1 qid:1 1:0.5", r"train\.txt:4: .*contiguous; qid:1 was first seen on line 1"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_reader_names_file_and_line_of_a_bad_line(
    tmp_path: Path, line: bytes, message: str
) -> None:
    path = write(tmp_path, HEAD + line + b"\n" + HEAD)
    with pytest.raises(DataFormatError, match=message):
        read_letor(path)


@pytest.mark.parametrize(
    ("line", "what"),
    [(b"1 qid:2 1:0.5 #docid = caf\xe9", "docid"), (b"1 qid:caf\xe9 1:0.5 #docid = c", "qid")],
)
def test_ids_that_are_not_utf8_are_refused_with_their_line(
    tmp_path: Path, line: bytes, what: str
) -> None:
    text = b"0 qid:1 1:0.5 #docid = a\n0 qid:1 1:0.25 #docid = b\n" + line + b"\n"
    assert _letor_parser._parse_chunk_fast(text, 1, "letor", None) is None
    with pytest.raises(
        DataFormatError,
        match=rf"train\.txt:3: the {what} must be UTF-8 text; got b'caf\\xe9' \(byte 0xe9\); "
        r"re-encode the file, e\.g\. iconv -f latin1 -t utf-8$",
    ):
        read_letor(write(tmp_path, text))


@pytest.mark.parametrize("value", ["0.5", "1e-5"])  # vectorized, line-by-line parser
@pytest.mark.parametrize(("missing", "having"), [(17, 1), (1, 2)])
def test_a_line_without_docid_among_lines_with_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, missing: int, having: int
) -> None:
    monkeypatch.setattr(_letor_parser, "_CHUNK_BYTES", 64)  # the two lines in different chunks
    lines = [f"1 qid:1 1:{value} #docid = d{i}" for i in range(1, 18)]
    lines[missing - 1] = f"0 qid:1 1:{value}"
    with pytest.raises(
        DataFormatError,
        match=rf"train\.txt:{missing}: no docid, while line {having} has one; give every data "
        r"line a '#docid = <id>' comment, or none$",
    ):
        read_letor(write(tmp_path, ("\n".join(lines) + "\n").encode()))


def test_both_parsers_leave_float32_overflow_to_the_line_error(tmp_path: Path) -> None:
    edge = b"1 qid:1 1:3.40282356e38 2:-3.40282356e38\n"  # rounds to float32's largest, not inf
    fast = _letor_parser._parse_chunk_fast(edge, 1, "letor", None)
    tracker = _letor_parser._QueryTracker(tmp_path / "x.txt")
    slow = _letor_parser._parse_chunk_slow(edge, 1, "letor", None, tmp_path / "x.txt", tracker)
    largest = np.finfo(np.float32).max
    assert fast is not None and fast.features.tolist() == slow.features.tolist()
    assert slow.features.tolist() == [[largest, -largest]]
    assert _letor_parser._parse_chunk_fast(b"1 qid:1 1:3.4028236e38\n", 1, "letor", None) is None


def test_index_beyond_declared_n_features_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + b"1 qid:1 3:0.5\n")
    with pytest.raises(
        DataFormatError, match=r"train\.txt:3: feature index 3 is beyond n_features=2"
    ):
        read_letor(path, n_features=2)


def test_empty_file_says_it_has_no_data_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"\n# only a comment\n")
    with pytest.raises(DataFormatError, match=r"train\.txt: the file has no data lines"):
        read_letor(path)


def test_missing_file_raises_data_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"nope\.txt"):
        read_letor(tmp_path / "nope.txt")


def test_directory_given_as_data_file_says_it_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "syn").mkdir()
    with pytest.raises(DataNotFoundError, match=r"syn is a directory; expected a data file"):
        load_letor(tmp_path / "syn", use_cache=False)


def truncated_gzip(tmp_path: Path, value: bytes = b"0.5") -> Path:
    """Gzip of many lines cut mid-stream: the first lines decompress, then the stream ends."""
    text = b"".join(b"1 qid:%d 1:%s 2:%d\n" % (i // 5, value, i) for i in range(3000))
    path = tmp_path / "train.txt.gz"
    path.write_bytes(gzip.compress(text, mtime=0)[:3000])
    return path


def _damaged(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "train.txt.gz"
    if kind == "cut":
        return truncated_gzip(tmp_path)
    if kind == "garbage":
        path.write_bytes(b"\x1f\x8bgarbagegarbage")  # a gzip magic, then no valid header
    elif kind == "bad_deflate":
        path.write_bytes(b"\x1f\x8b\x08\x00garbagegarbage")
    elif kind == "magic_only":
        path.write_bytes(b"\x1f\x8b")
    return path


@pytest.mark.parametrize("kind", ["cut", "garbage", "bad_deflate", "magic_only"])
def test_corrupt_gzip_is_a_data_format_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = _damaged(tmp_path, kind)
    with pytest.raises(DataFormatError, match=r"^\S*train\.txt\.gz: truncated or corrupt gzip"):
        read_letor(path)


@pytest.mark.parametrize("value", [b"0.5", b"0.5#c"])  # vectorized, line-by-line parser
def test_truncated_gzip_fails_the_same_on_either_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: bytes
) -> None:
    monkeypatch.setattr(_letor_parser, "_CHUNK_BYTES", 256)  # chunks parse before the cut
    with pytest.raises(DataFormatError, match=r"train\.txt\.gz: truncated or corrupt gzip"):
        read_letor(truncated_gzip(tmp_path, value))


def test_corrupt_gzip_through_the_cache_writes_no_entry(tmp_path: Path) -> None:
    path = truncated_gzip(tmp_path)
    with pytest.raises(DataFormatError, match=r"train\.txt\.gz: truncated or corrupt gzip"):
        load_letor(path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_corrupt_gzip_query_file_is_a_data_format_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"1 1:0.5\n0 2:1\n", "rank.train")
    query_path = tmp_path / "rank.train.query.gz"
    query_path.write_bytes(gzip.compress(b"2\n" * 2000)[:40])
    with pytest.raises(DataFormatError, match=r"rank\.train\.query\.gz: truncated or corrupt"):
        read_lightgbm(path, query_path)


def test_file_named_gz_that_is_not_gzip_says_so(tmp_path: Path) -> None:
    path = tmp_path / "train.txt.gz"
    path.write_bytes(GOOD)
    with pytest.raises(DataFormatError, match=r"train\.txt\.gz: the name ends with \.gz but the"):
        load_letor(path, use_cache=False)


def test_load_letor_without_qid_or_query_file_reports_missing_qid(tmp_path: Path) -> None:
    path = write(tmp_path, b"# c\n1 1:0.5\n")
    with pytest.raises(DataFormatError, match=r"train\.txt:2: missing qid:"):
        load_letor(path, use_cache=False)


def test_load_letor_reports_a_first_line_that_is_not_ranking_data(tmp_path: Path) -> None:
    path = write(tmp_path, b"# c\ngarbage\n")
    with pytest.raises(DataFormatError, match=r"train\.txt:2: the label must be a number; got 'g"):
        load_letor(path, use_cache=False)


def test_first_error_wins_over_a_later_one(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + b"1 qid:1 1:x\n1 qid:1 0:1\n")
    with pytest.raises(DataFormatError, match=r"train\.txt:3: "):
        read_letor(path)


def test_writer_refuses_ids_with_whitespace(tmp_path: Path) -> None:
    data = random_data(seed=0, doc_ids=True, n_queries=1)
    data = LetorData(data.features, data.labels, np.array(["a b"]), data.query_offsets)
    with pytest.raises(DataFormatError, match=r"query id must be non-empty without whitespace"):
        write_letor(tmp_path / "x.txt", data)


# ---------------------------------------------------------------------------- real data


def test_mq2008_fold1_train_counts(shared_data: Path) -> None:
    data = read_letor(shared_data / "mq2008" / "Fold1" / "train.txt.gz")
    assert (data.n_queries, data.n_docs, data.n_features) == (471, 9630, 46)
    assert np.bincount(data.labels.astype(int)).tolist() == [7820, 1223, 587]
    assert data.doc_ids is not None and all(d.startswith("GX") for d in data.doc_ids.tolist())


def test_lightgbm_example_counts(shared_data: Path) -> None:
    data = read_lightgbm(shared_data / "lightgbm-example" / "rank.train.gz")
    assert (data.n_docs, data.n_queries) == (3005, 201)
    assert np.bincount(data.labels.astype(int)).tolist() == [645, 1211, 858, 222, 69]


@pytest.mark.parametrize(
    "relative", ["mq2008/Fold1/train.txt.gz", "lightgbm-example/rank.train.gz"]
)
def test_features_equal_scikit_learn(shared_data: Path, relative: str) -> None:
    load_svmlight_file = pytest.importorskip("sklearn.datasets").load_svmlight_file
    path = shared_data / relative
    ours = load_letor(path, use_cache=False)
    features, labels = load_svmlight_file(str(path), query_id=False)[:2]
    assert np.array_equal(ours.features, features.toarray().astype(np.float32))
    assert np.array_equal(ours.labels, labels.astype(np.float32))
