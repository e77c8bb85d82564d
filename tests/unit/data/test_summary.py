import gzip
import hashlib
from pathlib import Path

import pytest

from ltr._fs import file_sha256
from ltr.data.summary import file_digests
from ltr.errors import DataFormatError

TEXT = b"1 qid:1 1:0.5 #docid = a\n0 qid:1 1:0.25 #docid = b\n"


def test_file_digests_give_a_file_and_its_gzip_copy_the_same_content(tmp_path: Path) -> None:
    plain, packed = tmp_path / "test.txt", tmp_path / "test.txt.gz"
    plain.write_bytes(TEXT)
    packed.write_bytes(gzip.compress(TEXT))
    assert file_sha256(plain) != file_sha256(packed)
    assert file_digests(packed)[1] == file_digests(plain)[0] == file_sha256(plain)


def test_file_digests_hash_a_gzip_files_bytes_and_text_in_one_call(tmp_path: Path) -> None:
    plain, packed = tmp_path / "test.txt", tmp_path / "test.txt.gz"
    plain.write_bytes(TEXT)
    packed.write_bytes(gzip.compress(TEXT) + gzip.compress(TEXT))  # two gzip members
    assert file_digests(plain) == (file_sha256(plain), None)
    assert file_digests(packed) == (file_sha256(packed), hashlib.sha256(TEXT + TEXT).hexdigest())


def test_file_digests_of_a_damaged_gzip_file_name_it(tmp_path: Path) -> None:
    packed = tmp_path / "test.txt.gz"
    packed.write_bytes(gzip.compress(TEXT)[:-9])
    with pytest.raises(DataFormatError, match=r"test\.txt\.gz: truncated or corrupt gzip"):
        file_digests(packed)
