"""``lamina bench sources``: one sync of each source kind against its real server, and two re-syncs.

Each kind syncs from the server its tests use (``lamina.testing.sources``), started in this process
on 127.0.0.1: a folder, a web site (an index page linking every page, and a sitemap), a git
repository (one commit holds every document), an S3 server (moto, with signed requests) and a
WebDAV server (wsgidav). Each is filled with the same N documents, an HTML page each, made from real
text (a BEIR dataset's documents, or paragraphs made from the bundled samples), then:

- the first sync (listing, reading, parsing, chunking, embedding and writing every document);
- a re-sync with nothing changed (everything listed and read again, nothing embedded or written);
- a re-sync after one document changed and another was deleted.

Every sync is ``lamina.data.syncing.sync_source``, what ``lamina sources sync`` and the worker run,
in a throwaway workspace with the configured embedder and store. The embedder is loaded and one page
synced (then dropped) before the first kind, so start-up costs are charged to none. Times are wall
time of the whole sync; filling a server is not counted.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from lamina.bench.hardware import machine
from lamina.config import Settings
from lamina.data.collection import Workspace
from lamina.data.connectors import SOURCE_KINDS, parse_spec
from lamina.data.embed import Embedders
from lamina.data.source_store import SourceStore
from lamina.data.syncing import SyncResult, sync_source

# the environment variables the S3 and WebDAV specs name (a spec holds no credential itself);
# not LAMINA_*, which the configuration reads
S3_KEY_ENV, S3_SECRET_ENV = "BENCH_SOURCES_S3_ACCESS_KEY", "BENCH_SOURCES_S3_SECRET_KEY"
DAV_USER_ENV, DAV_PASSWORD_ENV = "BENCH_SOURCES_DAV_USER", "BENCH_SOURCES_DAV_PASSWORD"
NEEDS: dict[str, tuple[str, ...]] = {  # modules each kind's server (or connector) needs
    "s3": ("boto3", "moto"),
    "webdav": ("wsgidav", "cheroot"),
}


@dataclass(frozen=True)
class Text:
    title: str
    body: str


def page(text: Text, note: str = "") -> str:
    """A document as the HTML page every kind serves (the same bytes for every kind)."""
    extra = f"<p>{escape(note)}</p>" if note else ""
    return (
        f"<!doctype html><html><head><title>{escape(text.title)}</title></head><body>"
        f"<h1>{escape(text.title)}</h1><p>{escape(text.body)}</p>{extra}</body></html>"
    )


def dataset_texts(corpus: Sequence[dict[str, Any]], n: int) -> list[Text]:
    """The first ``n`` documents of a BEIR corpus."""
    return [Text(d.get("title") or str(d.get("_id", i)), d["text"]) for i, d in enumerate(corpus[:n])]


def sample_texts(n: int) -> list[Text]:
    """``n`` paragraphs made from the bundled samples' sentences (each a different run of them)."""
    sentences: list[str] = []
    for item in sorted(files("lamina").joinpath("samples").iterdir(), key=lambda p: p.name):
        if item.name.endswith((".md", ".txt", ".html")):
            raw = re.sub(r"<[^>]+>|[#*`|]", " ", item.read_text(encoding="utf-8"))
            sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(raw.split())) if len(s) > 30]
    out = []
    for i in range(n):
        run = [sentences[(i * 3 + j) % len(sentences)] for j in range(8)]
        out.append(Text(f"Note {i + 1}: {run[0][:60]}", f"Note {i + 1} of {n}. " + " ".join(run)))
    return out


@dataclass
class Served:
    """One kind's server, with what the bench does to it (files named relative to the source)."""

    kind: str
    spec: dict[str, Any]
    put: Callable[[dict[str, str]], None]
    delete: Callable[[str], None]
    extra: int = 0  # entries the source lists besides the documents (a site's index page)
    env: dict[str, str] = field(default_factory=dict)


def _folder(root: Path, stack: ExitStack) -> Served:
    folder = root / "folder"
    folder.mkdir()

    def put(docs: dict[str, str]) -> None:
        for rel, text in docs.items():
            (folder / rel).write_text(text, encoding="utf-8")

    return Served("folder", {"kind": "folder", "path": str(folder)}, put, lambda rel: (folder / rel).unlink())


def _web(root: Path, stack: ExitStack) -> Served:
    from lamina.testing.sources import web_site

    site = root / "site"
    site.mkdir()
    base = stack.enter_context(web_site(site))
    versions: dict[str, int] = {}  # page -> its version (the sitemap's lastmod day)

    def publish() -> None:
        links = "".join(f'<li><a href="/{rel}">{rel}</a></li>' for rel in versions)
        (site / "index.html").write_text(f"<html><body><h1>Index</h1><ul>{links}</ul></body></html>")
        urls = "".join(
            f"<url><loc>{base}/{rel}</loc><lastmod>2025-01-{day:02d}</lastmod></url>"
            for rel, day in versions.items()
        )
        (site / "sitemap.xml").write_text(
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        )

    def put(docs: dict[str, str]) -> None:
        for rel, text in docs.items():
            (site / rel).write_text(text, encoding="utf-8")
            versions[rel] = min(28, versions.get(rel, 0) + 1)
        publish()

    def delete(rel: str) -> None:
        (site / rel).unlink()
        versions.pop(rel)
        publish()

    publish()
    spec = {"kind": "web", "url": base + "/", "sitemap": base + "/sitemap.xml"}
    return Served("web", spec, put, delete, extra=1)


def _git(root: Path, stack: ExitStack) -> Served:
    from lamina.testing.sources import GitRepo, git_repo

    repo: GitRepo = stack.enter_context(git_repo(root / "repo"))

    def put(docs: dict[str, str]) -> None:
        repo.commit(docs, message=f"{len(docs)} document(s)")

    def delete(rel: str) -> None:
        repo.delete(rel)

    return Served("git", {"kind": "git", "url": str(repo.path)}, put, delete)


def _s3(root: Path, stack: ExitStack) -> Served:
    from lamina.testing.sources import S3Server, s3_server

    server: S3Server = stack.enter_context(s3_server())
    client = server.client()
    client.create_bucket(Bucket="bench")

    def put(docs: dict[str, str]) -> None:
        for rel, text in docs.items():
            client.put_object(Bucket="bench", Key=f"docs/{rel}", Body=text.encode(), ContentType="text/html")

    def delete(rel: str) -> None:
        client.delete_object(Bucket="bench", Key=f"docs/{rel}")

    spec = {
        "kind": "s3", "bucket": "bench", "prefix": "docs/", "endpoint_url": server.endpoint,
        "region": server.region, "access_key_env": S3_KEY_ENV, "secret_key_env": S3_SECRET_ENV,
    }  # fmt: skip
    env = {S3_KEY_ENV: server.access_key, S3_SECRET_ENV: server.secret_key}
    return Served("s3", spec, put, delete, env=env)


def _webdav(root: Path, stack: ExitStack) -> Served:
    from lamina.testing.sources import webdav_server

    served = root / "dav"
    (served / "docs").mkdir(parents=True)
    url = stack.enter_context(webdav_server(served, "bench", "bench-dav-password"))

    def put(docs: dict[str, str]) -> None:
        for rel, text in docs.items():
            (served / "docs" / rel).write_text(text, encoding="utf-8")

    spec = {"kind": "webdav", "url": url + "docs/"}
    spec |= {"username_env": DAV_USER_ENV, "password_env": DAV_PASSWORD_ENV}
    env = {DAV_USER_ENV: "bench", DAV_PASSWORD_ENV: "bench-dav-password"}
    return Served("webdav", spec, put, lambda rel: (served / "docs" / rel).unlink(), env=env)


SERVERS: dict[str, Callable[[Path, ExitStack], Served]] = {
    "folder": _folder,
    "web": _web,
    "git": _git,
    "s3": _s3,
    "webdav": _webdav,
}


def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot be measured here (a missing module or command), or None."""
    if kind == "git" and shutil.which("git") is None:
        return "the git command is not installed"
    missing = [m for m in NEEDS.get(kind, ()) if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)} (pip install 'lamina[dev]')"
    return None


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a while, then put back what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _sync(result: SyncResult) -> dict[str, Any]:
    report = result.report
    out: dict[str, Any] = {
        "status": result.status,
        "seconds": round(result.seconds, 3),
        "listed": result.listed,
    }
    if report is not None:
        out |= {
            "ingested": report.ingested,
            "unchanged": report.unchanged,
            "deleted": report.deleted,
            "failed": report.failed,
            "chunks_written": report.chunks_written,
        }
    if result.error:
        out["error"] = result.error
    return out


def measure_kind(ws: Workspace, kind: str, texts: Sequence[Text], work: Path) -> dict[str, Any]:
    """The three syncs of ``kind``'s server filled with ``texts`` (its collection dropped after)."""
    names = [f"doc-{i:04d}.html" for i in range(len(texts))]
    collection = f"bench-sources-{kind}"
    with ExitStack() as stack:
        started = time.perf_counter()
        served = SERVERS[kind](work, stack)
        stack.enter_context(_environ(served.env))
        served.put({name: page(t) for name, t in zip(names, texts, strict=True)})
        filled = time.perf_counter() - started
        record = SourceStore(ws.registry.engine).put(collection, kind, parse_spec(served.spec))
        try:
            first = _sync(sync_source(ws, record, owner="bench", allow_private=True))
            again = _sync(sync_source(ws, record, owner="bench", allow_private=True))
            changes: dict[str, str] = {}
            if names:
                changes[names[0]] = page(texts[0], "Revised: this page changed after the first sync.")
                served.put(changes)
            if len(names) > 1:
                served.delete(names[1])
            changed = _sync(sync_source(ws, record, owner="bench", allow_private=True))
        finally:
            if ws.registry.get_collection(collection) is not None:
                ws.drop(collection)
    if first.get("ingested") and first["seconds"]:
        first["docs_per_s"] = round(first["ingested"] / first["seconds"], 2)
    return {
        "kind": kind,
        "documents": len(texts),
        "extra_entries": served.extra,
        "fill_s": round(filled, 3),
        "first": first,
        "unchanged": again,
        "changed": changed | {"changed_documents": len(changes), "deleted_documents": int(len(names) > 1)},
    }


def _warm_up(ws: Workspace, text: Text, folder: Path) -> None:
    """One page synced from a folder, then dropped: the parsers' imports and the store's first
    table are start-up costs, which would otherwise all land on the first kind measured."""
    folder.mkdir()
    (folder / "warm-up.html").write_text(page(text), encoding="utf-8")
    spec = parse_spec({"kind": "folder", "path": str(folder)})
    record = SourceStore(ws.registry.engine).put("bench-sources-warm-up", "warm-up", spec)
    try:
        sync_source(ws, record, owner="bench")
    finally:
        if ws.registry.get_collection(record.collection) is not None:
            ws.drop(record.collection)


def bench_sources(
    settings: Settings,
    texts: Sequence[Text],
    *,
    kinds: Sequence[str] = SOURCE_KINDS,
    text_source: str = "samples",
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Each kind in ``kinds`` synced from its server filled with ``texts``, in a throwaway workspace
    (the embedder's derived graphs still come from the configured data directory's models folder)."""
    with tempfile.TemporaryDirectory(prefix="lamina-bench-sources-") as tmp:
        scratch = settings.model_copy(deep=True).scratch(Path(tmp) / "data")
        scratch.fetch.allow_private = True  # the servers are on 127.0.0.1
        ws = Workspace(scratch, embedders=Embedders(settings.embedding, settings.data_dir / "models"))
        try:
            ws.embedder.embed(["warm up"])  # loading the model is start-up, not the first sync
            _warm_up(ws, texts[0] if texts else Text("Warm-up", "A page."), Path(tmp) / "warm-up")
            result: dict[str, Any] = {
                "machine": machine(),
                "documents": len(texts),
                "texts": text_source,
                "store": scratch.store.backend,
                "embedding_model": ws.embedder.name,
                "kinds": [],
            }
            for kind in kinds:
                if (why := unavailable(kind)) is not None:
                    progress(f"{kind}: skipped ({why})")
                    result["kinds"].append({"kind": kind, "unavailable": why})
                    continue
                progress(f"{kind}: {len(texts)} documents")
                work = Path(tmp) / kind
                work.mkdir()
                row = measure_kind(ws, kind, texts, work)
                progress(
                    f"  first sync {row['first']['seconds']}s ({row['first']['status']}), unchanged "
                    f"{row['unchanged']['seconds']}s, change + delete {row['changed']['seconds']}s"
                )
                result["kinds"].append(row)
        finally:
            ws.registry.close()
    return result


def table_rows(result: dict[str, Any]) -> Iterator[list[str]]:
    """Rows for the CLI's table: one per kind (the counts are the change + delete re-sync's)."""
    for row in result["kinds"]:
        if "unavailable" in row:
            yield [row["kind"], "-", row["unavailable"], "", "", "", ""]
            continue
        first, again, changed = row["first"], row["unchanged"], row["changed"]
        failed = [
            f"{s['status']}: {s.get('error', '')}"
            for s in (first, again, changed)
            if s["status"] != "completed"
        ]
        yield [
            row["kind"],
            str(first["listed"]),
            f"{first['seconds']:.2f}" + (f" [{'; '.join(failed)}]" if failed else ""),
            f"{first.get('docs_per_s', 0):g}",
            f"{again['seconds']:.2f}",
            f"{changed['seconds']:.2f}",
            " · ".join(str(changed.get(k, "-")) for k in ("ingested", "unchanged", "deleted")),
        ]
