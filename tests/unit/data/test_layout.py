"""Which files of a data folder ltr reads (ltr.data.layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltr.data.layout import data_files_in, find_data_file
from ltr.errors import ConfigError


def test_each_split_is_found_under_any_of_its_names(tmp_path: Path) -> None:
    for name in ("train.txt.gz", "valid.txt", "test.txt"):
        (tmp_path / name).write_bytes(b"")
    assert find_data_file(tmp_path, "train") == tmp_path / "train.txt.gz"
    assert find_data_file(tmp_path, "valid") == tmp_path / "valid.txt"
    assert find_data_file(tmp_path, "test") == tmp_path / "test.txt"
    assert data_files_in(tmp_path) == [
        tmp_path / n for n in ("train.txt.gz", "valid.txt", "test.txt")
    ]


@pytest.mark.parametrize(
    ("split", "names", "message"),
    [
        ("train", ["train.txt", "train.txt.gz"], "both train.txt and train.txt.gz; remove one"),
        ("valid", ["vali.txt", "valid.txt"], "both vali.txt and valid.txt; remove one"),
        (
            "valid",
            ["vali.txt.gz", "valid.txt", "valid.txt.gz"],
            "vali.txt.gz, valid.txt and valid.txt.gz; remove all but one",
        ),
        ("test", ["test.txt", "test.txt.gz"], "both test.txt and test.txt.gz; remove one"),
    ],
)
def test_two_files_for_one_split_are_an_error_naming_both(
    tmp_path: Path, split: str, names: list[str], message: str
) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    word = {"train": "training", "valid": "validation", "test": "test"}[split]
    with pytest.raises(ConfigError) as error:
        find_data_file(tmp_path, split)
    assert str(error.value) == f"{tmp_path} holds {message} so it is clear which is the {word} file"
