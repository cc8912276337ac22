import json
import os

import pytest
import torch

from starft.utils import io as starft_io
from starft.utils.io import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    git_hash,
)


def test_atomic_writes_create_parents_and_content(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "a" / "c.txt", "héllo\n")
    atomic_write_json(tmp_path / "d" / "e.json", {"z": 1, "a": [1.5, None]})
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "f" / "g.pt")

    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a" / "c.txt").read_text(encoding="utf-8") == "héllo\n"
    text = (tmp_path / "d" / "e.json").read_text()
    assert list(json.loads(text)) == ["z", "a"]  # insertion order kept, not sorted
    assert torch.equal(torch.load(tmp_path / "f" / "g.pt")["w"], torch.arange(3))
    # Only the targets remain: no temp files beside them.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "b.bin",
        "c.txt",
        "e.json",
        "g.pt",
    ]


def test_atomic_write_respects_umask(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "x")
    mode = os.stat(tmp_path / "x.txt").st_mode & 0o777
    assert mode == 0o666 & ~starft_io._umask()


def test_failed_json_leaves_no_file_and_keeps_old_content(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert list(tmp_path.iterdir()) == []

    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": {1, 2}})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failed_torch_save_removes_temp_file(tmp_path):
    # A lambda cannot be pickled: torch.save fails after the temp file was opened.
    with pytest.raises(Exception, match=r"pickle|lambda"):
        atomic_torch_save({"fn": lambda x: x}, tmp_path / "ck" / "model.pt")
    assert list((tmp_path / "ck").iterdir()) == []


def test_failed_write_with_stream_error_removes_temp_file(tmp_path, monkeypatch):
    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(starft_io.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_git_hash_is_cached_and_well_formed():
    value = git_hash()
    assert value is None or (len(value) == 40 and all(c in "0123456789abcdef" for c in value))
    assert git_hash() is value


def test_git_hash_none_without_git(monkeypatch):
    git_hash.cache_clear()
    try:
        monkeypatch.setenv("PATH", "")  # no git executable to be found
        assert git_hash() is None
    finally:
        git_hash.cache_clear()
