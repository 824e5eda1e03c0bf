"""Turn what the user typed (files, folders, URLs) into a list of sources to ingest."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lamina.errors import LaminaError


@dataclass(frozen=True)
class SourceRef:
    """A file on disk or an http(s) URL; ``location`` is the canonical source string."""

    location: str
    is_url: bool

    @property
    def path(self) -> Path:
        return Path(self.location)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob with ``**`` crossing folders; a pattern without ``/`` matches the file name at any depth."""
    if "/" not in pattern:
        pattern = "**/" + pattern
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(relative_posix: str, patterns: Iterable[str]) -> bool:
    return any(_glob_regex(p).match(relative_posix) for p in patterns)


def discover(inputs: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> Iterator[SourceRef]:
    """Yield each input file, each matching file under each input folder, and each URL, once.

    A path that does not exist is an error before anything is ingested, so a typo does not run a
    half-empty job.
    """
    missing = [p for p in inputs if not is_url(p) and not Path(p).exists()]
    if missing:
        raise LaminaError(f"no such file or folder: {', '.join(missing)}")
    seen: set[str] = set()
    for item in inputs:
        if is_url(item):
            refs: Iterable[SourceRef] = [SourceRef(item, True)]
        else:
            root = Path(item).resolve()
            if root.is_dir():
                refs = (
                    SourceRef(str(p), False)
                    for p in sorted(root.rglob("*"))
                    if p.is_file()
                    and glob_match(p.relative_to(root).as_posix(), include)
                    and not glob_match(p.relative_to(root).as_posix(), exclude)
                )
            else:
                refs = [SourceRef(str(root), False)]
        for ref in refs:
            if ref.location not in seen:
                seen.add(ref.location)
                yield ref


def scope_of(inputs: Sequence[str]) -> list[str]:
    """Canonical prefixes a ``--sync`` run may delete under: folders end with ``/``."""
    scopes = []
    for item in inputs:
        if is_url(item):
            scopes.append(item)
        else:
            root = Path(item).resolve()
            scopes.append(str(root) + "/" if root.is_dir() else str(root))
    return scopes
