import gzip
from pathlib import Path

import pytest

from ltr._fs import file_sha256
from ltr.data.summary import content_sha256
from ltr.errors import DataFormatError

TEXT = b"1 qid:1 1:0.5 #docid = a\n0 qid:1 1:0.25 #docid = b\n"


def test_content_sha256_is_the_same_for_a_file_and_its_gzip_copy(tmp_path: Path) -> None:
    plain, packed = tmp_path / "test.txt", tmp_path / "test.txt.gz"
    plain.write_bytes(TEXT)
    packed.write_bytes(gzip.compress(TEXT))
    assert file_sha256(plain) != file_sha256(packed)
    assert content_sha256(plain) == content_sha256(packed) == file_sha256(plain)


def test_content_sha256_of_a_damaged_gzip_file_names_it(tmp_path: Path) -> None:
    packed = tmp_path / "test.txt.gz"
    packed.write_bytes(gzip.compress(TEXT)[:-9])
    with pytest.raises(DataFormatError, match=r"test\.txt\.gz"):
        content_sha256(packed)
