"""A branch of a git repository as a source: its files at the tip, each with its last commit.

The git command does the work (no library): a bare mirror of the one branch is fetched into the cache
folder on each listing, files are read from git's object store (no checkout), and one ``git log`` pass
finds the last commit of every file. Nothing prompts for credentials (a sync runs unattended), and no
URL with its credentials is ever shown: they are masked in git's messages.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from lamina.data.connectors.base import Entry, SourceError, iso_utc, strip_userinfo
from lamina.data.connectors.spec import GitSpec
from lamina.data.fetch import check_target
from lamina.data.sources import glob_match
from lamina.errors import FetchRefused

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_TIMEOUT_S = 600.0


class GitConnector:
    kind = "git"

    def __init__(self, spec: GitSpec, cache_dir: Path, allow_private: bool = False) -> None:
        self.spec, self.allow_private = spec, allow_private
        self.shown = strip_userinfo(spec.url)
        local = Path(spec.url).expanduser()
        self.remote = str(local.resolve()) if "://" not in spec.url and local.exists() else spec.url
        digest = hashlib.sha256(self.remote.encode()).hexdigest()[:16]
        self.repo = Path(cache_dir) / f"git-{digest}.git"
        self.branch = spec.branch or ""
        self.scope = f"git+{self.shown}@{spec.branch or '(default branch)'}"
        self._head = ""
        self._blobs: dict[str, str] = {}

    def _git(self, *args: str, what: str, timeout: float = _TIMEOUT_S) -> str:
        if shutil.which("git") is None:
            raise SourceError("git: the git command is not installed here (apt-get install git)")
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        }
        cmd = ["git", "-c", "protocol.ext.allow=never", "--git-dir", str(self.repo), *args]
        try:
            done = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SourceError(f"git: {what} took longer than {timeout:.0f}s ({self.shown})") from None
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            last = self._mask(lines[-1] if lines else f"exit status {done.returncode}")
            raise SourceError(f"git: {what} failed for {self.shown}: {last}")
        return done.stdout.decode("utf-8", "surrogateescape")

    def _mask(self, text: str) -> str:
        return _USERINFO.sub("***@", text.replace(self.spec.url, self.shown).replace(self.remote, self.shown))

    def _update(self) -> None:
        """Fetch the branch into the bare mirror; ``self._head`` is its tip afterwards."""
        if urlsplit(self.remote).scheme in ("http", "https"):
            try:
                check_target(self.remote, self.allow_private)
            except FetchRefused as exc:
                raise SourceError(f"git: {self._mask(str(exc))}") from None
        if not (self.repo / "HEAD").exists():
            self.repo.parent.mkdir(parents=True, exist_ok=True)
            self._git("init", "--bare", "--quiet", what="creating the cache")
        if not self.spec.branch:
            out = self._git(
                "ls-remote", "--symref", "--end-of-options", self.remote, "HEAD", what="ls-remote"
            )
            found = re.search(r"^ref: refs/heads/(\S+)\tHEAD$", out, re.M)
            if not found:
                raise SourceError(f"git: cannot tell the default branch of {self.shown}; set branch")
            self.branch = found.group(1)
        ref = f"refs/lamina/{self.branch}"
        refspec = f"+refs/heads/{self.branch}:{ref}"
        self._git("fetch", "--quiet", "--no-tags", "--end-of-options", self.remote, refspec, what="fetch")
        self._head = self._git("rev-parse", "--verify", f"{ref}^{{commit}}", what="rev-parse").strip()

    def _wanted(self, rel: str) -> bool:
        if self.spec.paths and not any(
            rel == p.strip("/") or rel.startswith(p.strip("/") + "/") or glob_match(rel, [p])
            for p in self.spec.paths
        ):
            return False
        return glob_match(rel, self.spec.include) and not glob_match(rel, self.spec.exclude)

    def _last_commits(self, wanted: set[str]) -> dict[str, tuple[str, str, int]]:
        """path -> (commit, author, commit time) of the last commit touching it, in one ``git log`` pass."""
        found: dict[str, tuple[str, str, int]] = {}
        cmd = ["git", "--git-dir", str(self.repo), "log", "-z", "--no-renames", "--name-only"]
        cmd += ["--format=%x1e%H%x1f%an%x1f%ct", self._head, "--"]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
            assert proc.stdout is not None
            current: tuple[str, str, int] | None = None
            rest = b""
            while len(found) < len(wanted):
                chunk = proc.stdout.read(1 << 16)
                if not chunk:
                    break
                *tokens, rest = (rest + chunk).split(b"\0")
                for raw in tokens:
                    token = raw.decode("utf-8", "surrogateescape").lstrip("\n")
                    if token.startswith("\x1e"):
                        sha, author, when = token[1:].split("\x1f")
                        current = (sha, author, int(when))
                    elif current and token in wanted and token not in found:
                        found[token] = current
            proc.kill()
        return found

    def entries(self) -> Iterator[Entry]:
        self._update()
        listing = self._git("ls-tree", "-r", "-z", "--long", self._head, what="ls-tree")
        files: dict[str, tuple[str, int]] = {}
        for item in listing.split("\0"):
            if not item:
                continue
            meta, rel = item.split("\t", 1)
            mode, otype, sha, length = meta.split()
            if otype == "blob" and mode in ("100644", "100755") and self._wanted(rel):
                files[rel] = (sha, int(length))
        commits = self._last_commits(set(files))
        self._blobs = {}
        for rel, (blob, size) in sorted(files.items()):
            location = f"git+{self.shown}@{self.branch}:{rel}"
            self._blobs[location] = blob
            attrs: dict[str, str | int] = {"path": rel, "branch": self.branch, "size": size, "blob": blob}
            if rel in commits:
                sha, author, when = commits[rel]
                attrs.update(commit=sha, author=author, modified=iso_utc(when))
            name = PurePosixPath(rel).name
            yield Entry(location, name, dict(attrs), mimetypes.guess_type(name)[0] or "")

    def read(self, entry: Entry) -> bytes:
        if shutil.which("git") is None:
            raise SourceError("git: the git command is not installed here (apt-get install git)")
        blob = self._blobs.get(entry.location) or f"{self._head}:{entry.attrs['path']}"
        cmd = ["git", "--git-dir", str(self.repo), "cat-file", "blob", blob]
        done = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise SourceError(f"git: cannot read {entry.attrs.get('path')} from {self.scope}")
        return done.stdout

    def close(self) -> None:
        pass
