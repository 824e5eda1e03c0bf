"""Checksums of model files, taken once rather than at every load.

Hashing a model file costs about 0.1 s per 100 MB, at every start of every process (each CLI
command, server and worker). A file Lamina made (an assembled GGUF, a derived ONNX graph) is hashed
once: a stamp beside it, ``<file>.verified``, records the sha256 with the file's size and
modification time, and while both still match the file is trusted without being read. A file in an
installed package is hashed once per process. The checksums catch damage (a partial copy, a full
disk, an edit), not someone who can write the stamp as well as the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

_SEEN: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, for this process


def sha256_of(path: Path) -> str:
    """The file's sha256, read once per process while its size and modification time stay."""
    seen = path.stat()
    key = (str(path.resolve()), seen.st_size, seen.st_mtime_ns)
    if key not in _SEEN:
        _SEEN[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _SEEN[key]


def trusted(path: Path, sha256: str) -> bool:
    """Whether the stamp beside ``path`` says it has ``sha256`` and the file has not changed since."""
    stamp = _read(_stamp_path(path))
    return stamp is not None and stamp == _stamp(path, sha256)


def record(path: Path, sha256: str) -> None:
    """Stamp ``path``, just made or checked, as having ``sha256`` (in a folder that cannot be
    written, such as a read-only models mount, it is simply read again next time)."""
    with contextlib.suppress(OSError):
        _stamp_path(path).write_text(_stamp(path, sha256) or "")


def has_sha256(path: Path, sha256: str) -> bool:
    """Whether the file at ``path`` has this sha256: from its stamp, else read and then stamped."""
    if trusted(path, sha256):
        return True
    if not path.is_file() or sha256_of(path) != sha256:
        return False
    record(path, sha256)
    return True


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, sha256: str) -> str | None:
    try:
        seen = path.stat()
    except FileNotFoundError:
        return None
    return json.dumps({"sha256": sha256, "size": seen.st_size, "mtime_ns": seen.st_mtime_ns})


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
