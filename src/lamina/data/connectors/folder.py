"""A folder on this machine as a source: its files now, matched by the include/exclude globs."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from pathlib import Path

from lamina.data.connectors.base import Entry, SourceError, iso_utc
from lamina.data.connectors.spec import FolderSpec
from lamina.data.sources import glob_match


class FolderConnector:
    kind = "folder"

    def __init__(self, spec: FolderSpec) -> None:
        self.spec = spec
        self.root = Path(spec.path).expanduser().resolve()
        self.scope = str(self.root)

    def entries(self) -> Iterator[Entry]:
        # a missing folder (an unmounted share) is an error, not an empty source that deletes everything
        if not self.root.is_dir():
            raise SourceError(f"folder: {self.root} is not a folder (missing or not mounted?)")
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            if not glob_match(rel, self.spec.include) or glob_match(rel, self.spec.exclude):
                continue
            try:
                if not path.is_file() or not path.resolve().is_relative_to(self.root):
                    continue  # folders, and links that lead out of the source
                stat = path.stat()
            except OSError:
                continue  # vanished between the walk and the stat
            yield Entry(
                location=str(path),
                name=path.name,
                attrs={"path": rel, "modified": iso_utc(stat.st_mtime), "size": stat.st_size},
                mimetype=mimetypes.guess_type(path.name)[0] or "",
            )

    def read(self, entry: Entry) -> bytes:
        path = Path(entry.location)
        if not path.resolve().is_relative_to(self.root):
            raise SourceError(f"folder: {entry.location} is outside {self.root}")
        return path.read_bytes()

    def close(self) -> None:
        pass
