"""The one checkpoint hasher: contents, not names or sizes; memoised; paths never enter."""

from __future__ import annotations

import os
import shutil

import pytest

from harness import checkpoints
from harness.errors import ModelLoadError


def test_one_byte_changes_the_hash_and_the_memo_follows_the_file(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"\x00" * 4096)
    a = checkpoints.file_hash(f)
    assert checkpoints.file_hash(f) == a
    st = f.stat()
    f.write_bytes(b"\x00" * 4095 + b"\x01")          # same name, same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert checkpoints.file_hash(f) != a


def test_memo_is_used_on_the_second_call(tmp_path, monkeypatch):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    a = checkpoints.file_hash(f)
    checkpoints._MEMO.clear()                         # a new process: the on-disk memo answers
    monkeypatch.setattr(checkpoints.hashlib, "sha256",
                        lambda *a: (_ for _ in ()).throw(AssertionError("re-hashed")))
    assert checkpoints.file_hash(f) == a


def test_a_copied_folder_has_the_same_hash_a_renamed_file_does_not(tmp_path):
    d = tmp_path / "ckpt"
    (d / "sub").mkdir(parents=True)
    (d / "a.bin").write_bytes(b"1")
    (d / "sub" / "b.json").write_text("{}")
    h = checkpoints.dir_hash(d)
    shutil.copytree(d, tmp_path / "copy")
    assert checkpoints.dir_hash(tmp_path / "copy") == h
    (tmp_path / "copy" / "a.bin").rename(tmp_path / "copy" / "c.bin")
    assert checkpoints.dir_hash(tmp_path / "copy") != h


def test_missing_file_is_a_named_error(tmp_path):
    with pytest.raises(ModelLoadError, match="nope.bin"):
        checkpoints.file_hash(tmp_path / "nope.bin")
