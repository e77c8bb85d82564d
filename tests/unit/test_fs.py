"""Atomic writes: all or nothing, and files as readable as a plain open() would make them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ltr._fs import atomic_open, atomic_write_json, atomic_write_text, check_writable, read_json
from ltr.errors import ConfigError, DataFormatError, WriteError


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_written_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    (tmp_path / "plain.txt").write_text("x")
    mode = stat.S_IMODE((tmp_path / "m.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert mode & stat.S_IRGRP  # not mkstemp's private 0600 (under the usual umask 022)


def test_writing_over_a_directory_names_it_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    with pytest.raises(ConfigError, match=r"plots is a directory; the output must be a file"):
        atomic_write_text(tmp_path / "plots", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]
    assert list((tmp_path / "plots").iterdir()) == []


def test_read_json_reads_back_what_atomic_write_json_wrote(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"b": [1, 2.5, None]})
    assert read_json(tmp_path / "a.json") == {"b": [1, 2.5, None]}


def test_read_json_names_file_and_line_of_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{\n  "b": 1,\n}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"a\.json:3: invalid JSON: "):
        read_json(tmp_path / "a.json")


AS_ROOT = os.geteuid() == 0
ROOT_WRITES_ANYWHERE = "root writes into 0o555 folders; run as another user to check this"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)  # so pytest can clean up


def test_write_below_a_file_names_the_target_not_a_temp_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    target = tmp_path / "taken" / "out.txt"

    with pytest.raises(WriteError, match=r"^cannot write .*/taken/out\.txt: cannot create folder"):
        atomic_write_text(target, "x")
    with pytest.raises(WriteError, match=r"taken is a file, not a folder$"):
        check_writable(target)


@pytest.mark.skipif(AS_ROOT, reason=ROOT_WRITES_ANYWHERE)
def test_write_into_a_read_only_folder_names_the_target(read_only: Path) -> None:
    target = read_only / "out.txt"

    with pytest.raises(WriteError, match=r"^cannot write .*/out\.txt: folder .* is not writable"):
        atomic_write_text(target, "x")
    with pytest.raises(WriteError, match=r"^cannot write .*/sub/out\.txt: folder .*read-only is"):
        check_writable(read_only / "sub" / "out.txt")
    assert list(read_only.iterdir()) == []


def test_a_writable_path_passes_the_check_even_below_missing_folders(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper" / "out.txt")
    assert list(tmp_path.iterdir()) == []  # checking creates nothing
