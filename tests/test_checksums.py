"""Model files are hashed once, then trusted while unchanged (``lamina.checksums``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lamina import checksums


def _touch(path: Path) -> None:
    """What any edit does to the file's modification time."""
    seen = path.stat()
    os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns + 1_000_000))


def test_a_file_is_read_once_then_trusted_while_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 1000)
    good = hashlib.sha256(model.read_bytes()).hexdigest()
    assert not checksums.trusted(model, good)  # never checked: no stamp
    assert checksums.has_sha256(model, good) and checksums.trusted(model, good)
    assert not checksums.trusted(model, "0" * 64)  # the stamp is for one checksum

    reads: list[Path] = []
    monkeypatch.setattr(checksums, "sha256_of", lambda path: reads.append(path) or good)
    assert checksums.has_sha256(model, good) and reads == []  # the stamp, not the bytes
    _touch(model)
    assert checksums.has_sha256(model, good) and reads == [model]  # changed: read again


def test_a_damaged_file_fails_and_is_not_stamped(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 1000)
    good = hashlib.sha256(model.read_bytes()).hexdigest()
    checksums.record(model, good)
    model.write_bytes(b"weights" * 999 + b"damaged")
    assert not checksums.has_sha256(model, good) and not checksums.trusted(model, good)
    assert not checksums.has_sha256(tmp_path / "missing.onnx", good)


def test_an_installed_file_is_hashed_once_per_process_while_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{}")
    first = checksums.sha256_of(path)
    assert first == hashlib.sha256(b"{}").hexdigest()
    path.write_text("[]")
    _touch(path)
    assert checksums.sha256_of(path) == hashlib.sha256(b"[]").hexdigest() != first


def test_a_folder_that_cannot_be_written_only_costs_a_read(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    (tmp_path / "model.onnx.verified").mkdir()  # where the stamp would go: not a writable file
    assert checksums.has_sha256(model, good) and not checksums.trusted(model, good)
