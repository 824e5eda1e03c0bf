"""Source connectors against real servers: a folder, a web site, a git repository, S3 (moto), WebDAV.

The contract every kind keeps: the first listing finds what the source holds with its attributes, a
change shows in the bytes and in the item's version (modified, commit or etag), a deletion disappears.
Then what each kind adds: robots.txt, sitemaps and the SSRF guard for the web; tags and credentials
for S3 and WebDAV; branches for git; specs that hold no secret.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lamina.config import FetchSettings
from lamina.data.connectors import (
    SOURCE_KINDS,
    Connector,
    Entry,
    SourceError,
    describe,
    make_connector,
    parse_spec,
)
from lamina.errors import ConfigError, FetchRefused
from lamina.testing.sources import GitRepo, S3Server, git_repo, s3_server, web_site, webdav_server

FETCH = FetchSettings(timeout_s=10)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
VERSION = {"folder": "modified", "web": "modified", "git": "commit", "s3": "etag", "webdav": "etag"}


def connect(spec: dict[str, Any], tmp_path: Path, allow_private: bool = True) -> Connector:
    return make_connector(
        parse_spec(spec), fetch=FETCH, cache_dir=tmp_path / "cache", allow_private=allow_private
    )


def listing(connector: Connector) -> dict[str, Entry]:
    return {e.attrs["path"]: e for e in connector.entries()}


def page(text: str, links: tuple[str, ...] = ()) -> str:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return f"<html><head><title>{text}</title></head><body><p>{text}</p>{anchors}</body></html>"


@dataclass
class Source:
    """One source of each kind, with what a test does to it and what the connector should report."""

    kind: str
    spec: dict[str, Any]
    put: Callable[[str, str], None]
    delete: Callable[[str], None]
    location: Callable[[str], str]
    path: Callable[[str], str] = lambda rel: rel
    extra: set[str] = field(default_factory=set)  # entries besides the test's files (a site's index)


def _folder(tmp_path: Path, stack: ExitStack) -> Source:
    root = tmp_path / "folder"
    root.mkdir()
    stamp = [1_700_000_000]

    def put(rel: str, text: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        stamp[0] += 60
        os.utime(root / rel, (stamp[0], stamp[0]))

    return Source(
        "folder", {"kind": "folder", "path": str(root)}, put, lambda rel: (root / rel).unlink(),
        lambda rel: str(root / rel),
    )  # fmt: skip


def _web(tmp_path: Path, stack: ExitStack) -> Source:
    root = tmp_path / "site"
    root.mkdir()
    base = stack.enter_context(web_site(root))
    pages: dict[str, int] = {}  # page -> its version (the sitemap's lastmod day)

    def publish() -> None:
        (root / "index.html").write_text(page("home", tuple(pages)))
        urls = "".join(
            f"<url><loc>{base}/{rel}</loc><lastmod>2025-01-{day:02d}</lastmod></url>"
            for rel, day in pages.items()
        )
        (root / "sitemap.xml").write_text(
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        )

    def put(rel: str, text: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(page(text))
        pages[rel] = pages.get(rel, 0) + 1
        publish()

    def delete(rel: str) -> None:
        (root / rel).unlink()
        pages.pop(rel)
        publish()

    publish()
    spec = {"kind": "web", "url": base + "/", "sitemap": base + "/sitemap.xml"}
    return Source("web", spec, put, delete, lambda rel: f"{base}/{rel}", lambda rel: "/" + rel, {"/"})


def _git(tmp_path: Path, stack: ExitStack) -> Source:
    repo: GitRepo = stack.enter_context(git_repo(tmp_path / "repo"))
    url = str(repo.path)
    return Source(
        "git", {"kind": "git", "url": url},
        lambda rel, text: _ignore(repo.commit({rel: text}, author="Ada Lovelace")),
        lambda rel: _ignore(repo.delete(rel)),
        lambda rel: f"git+{url}@main:{rel}",
    )  # fmt: skip


def _ignore(_: object) -> None:
    return None


def _s3(tmp_path: Path, stack: ExitStack) -> Source:
    server: S3Server = stack.enter_context(s3_server())
    client = server.client()
    client.create_bucket(Bucket="docs")
    stack.enter_context(_env(S3_KEY=server.access_key, S3_SECRET=server.secret_key))
    spec = {
        "kind": "s3", "bucket": "docs", "prefix": "team/", "endpoint_url": server.endpoint,
        "region": server.region, "access_key_env": "S3_KEY", "secret_key_env": "S3_SECRET",
    }  # fmt: skip
    client.put_object(Bucket="docs", Key="elsewhere/x.html", Body=b"not in the prefix")
    return Source(
        "s3", spec,
        lambda rel, text: _ignore(client.put_object(Bucket="docs", Key=f"team/{rel}", Body=text.encode())),
        lambda rel: _ignore(client.delete_object(Bucket="docs", Key=f"team/{rel}")),
        lambda rel: f"s3://docs/team/{rel}",
    )  # fmt: skip


def _webdav(tmp_path: Path, stack: ExitStack) -> Source:
    root = tmp_path / "dav"
    (root / "share").mkdir(parents=True)
    (root / "outside.html").write_text("not in the folder")
    url = stack.enter_context(webdav_server(root, "reader", "dav-pass-123"))
    stack.enter_context(_env(DAV_USER="reader", DAV_PASS="dav-pass-123"))
    folder = root / "share"

    def put(rel: str, text: str) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)

    return Source(
        "webdav",
        {"kind": "webdav", "url": url + "share/", "username_env": "DAV_USER", "password_env": "DAV_PASS"},
        put, lambda rel: (folder / rel).unlink(), lambda rel: f"{url}share/{rel}",
    )  # fmt: skip


class _env:
    """Set environment variables for a while (monkeypatch cannot be used by these helpers)."""

    def __init__(self, **values: str) -> None:
        self.values = values

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


SOURCES = {"folder": _folder, "web": _web, "git": _git, "s3": _s3, "webdav": _webdav}


@pytest.fixture(params=SOURCE_KINDS)
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    with ExitStack() as stack:
        yield SOURCES[request.param](tmp_path, stack)


# -- the contract ----------------------------------------------------------------------------------


def test_first_listing_finds_every_item_with_its_attributes(source: Source, tmp_path: Path) -> None:
    files = {"a.html": "alpha first", "docs/b.html": "bravo first"}
    for rel, text in files.items():
        source.put(rel, text)
    connector = connect(source.spec, tmp_path)
    assert connector.kind == source.kind
    entries = listing(connector)
    assert set(entries) == {source.path(rel) for rel in files} | source.extra
    for rel, text in files.items():
        entry = entries[source.path(rel)]
        assert entry.location == source.location(rel)
        assert entry.name == rel.rsplit("/", 1)[-1]
        assert ISO.match(entry.attrs["modified"]), entry.attrs
        assert all(isinstance(v, str | int | float | bool) for v in entry.attrs.values())
        body = connector.read(entry)
        assert text.encode() in body
        assert entry.attrs["size"] == len(body)
        assert VERSION[source.kind] in entry.attrs
    if source.kind == "git":
        assert entries["a.html"].attrs["author"] == "Ada Lovelace"
        assert entries["a.html"].attrs["branch"] == "main"
    connector.close()


def test_a_change_shows_in_the_bytes_and_the_version(source: Source, tmp_path: Path) -> None:
    source.put("a.html", "alpha first")
    source.put("c.html", "charlie stays")
    connector = connect(source.spec, tmp_path)
    before = listing(connector)[source.path("a.html")]
    old = connector.read(before)
    source.put("a.html", "alpha second, and longer")
    after = listing(connector)[source.path("a.html")]
    assert after.location == before.location
    assert connector.read(after) != old
    assert b"alpha second" in connector.read(after)
    assert after.attrs[VERSION[source.kind]] != before.attrs[VERSION[source.kind]]


def test_a_deleted_item_disappears(source: Source, tmp_path: Path) -> None:
    source.put("a.html", "alpha")
    source.put("docs/b.html", "bravo")
    connector = connect(source.spec, tmp_path)
    assert source.path("docs/b.html") in listing(connector)
    source.delete("docs/b.html")
    after = listing(connector)
    assert source.path("docs/b.html") not in after
    assert source.path("a.html") in after


def test_scope_says_where_without_credentials(source: Source, tmp_path: Path) -> None:
    connector = connect(source.spec, tmp_path)
    assert connector.scope
    assert "dav-pass-123" not in connector.scope
    assert os.environ.get("S3_SECRET", "unset-secret") not in connector.scope


# -- folder ----------------------------------------------------------------------------------------


def test_folder_globs_and_a_missing_folder(tmp_path: Path) -> None:
    root = tmp_path / "f"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("x")
    (root / "keep.md").write_text("x")
    (root / "drop.log").write_text("x")
    spec = {"kind": "folder", "path": str(root), "exclude": ["**/.*/**", "*.log"]}
    assert set(listing(connect(spec, tmp_path))) == {"keep.md"}
    with pytest.raises(SourceError, match="not a folder"):
        list(connect({"kind": "folder", "path": str(tmp_path / "gone")}, tmp_path).entries())


# -- web -------------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "site"
    root.mkdir()
    with web_site(root) as base:
        yield root, base


def test_web_follows_links_on_its_host_to_max_depth(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    (tmp_path / "other").mkdir()
    with web_site(tmp_path / "other") as elsewhere:
        (tmp_path / "other" / "x.html").write_text(page("elsewhere"))
        port = base.rsplit(":", 1)[1]
        links = ("a.html#top", "a.html", "report.pdf", "missing.html", f"{elsewhere}/x.html",
                 f"http://localhost:{port}/a.html", "mailto:x@example.com", "/deep/one.html")  # fmt: skip
        (root / "index.html").write_text(page("home", links))
        (root / "a.html").write_text(page("alpha"))
        (root / "report.pdf").write_bytes(b"%PDF-1.4 a pdf\n<a href='hidden.html'>")
        (root / "deep").mkdir()
        (root / "deep" / "one.html").write_text(page("one", ("two.html",)))
        (root / "deep" / "two.html").write_text(page("two", ("three.html",)))
        (root / "deep" / "three.html").write_text(page("three"))
        entries = listing(connect({"kind": "web", "url": base, "max_depth": 2}, tmp_path))
    assert set(entries) == {"/", "/a.html", "/report.pdf", "/deep/one.html", "/deep/two.html"}
    assert entries["/"].name == "index.html"
    assert entries["/"].location == base + "/"
    assert entries["/report.pdf"].name == "report.pdf"
    assert entries["/report.pdf"].mimetype == "application/pdf"
    assert entries["/a.html"].mimetype == "text/html"


def test_web_reads_listed_pages_without_fetching_them_again(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    (root / "index.html").write_text(page("home", ("a.html",)))
    (root / "a.html").write_text(page("alpha"))
    connector = connect({"kind": "web", "url": base}, tmp_path)
    entries = listing(connector)
    (root / "a.html").unlink()
    assert b"alpha" in connector.read(entries["/a.html"])  # from the listing, not the server
    with pytest.raises(SourceError, match="404"):
        connector.read(entries["/a.html"])  # a second read fetches: the page is gone


def test_web_honours_robots_txt(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (root / "private").mkdir()
    (root / "private" / "p.html").write_text(page("private"))
    (root / "a.html").write_text(page("alpha"))
    (root / "index.html").write_text(page("home", ("a.html", "private/p.html")))
    assert set(listing(connect({"kind": "web", "url": base}, tmp_path))) == {"/", "/a.html"}
    (root / "robots.txt").write_text("User-agent: lamina-ingest\nDisallow: /\n")
    with pytest.raises(SourceError, match=r"robots\.txt"):
        list(connect({"kind": "web", "url": base}, tmp_path).entries())


def test_web_max_pages(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    names = tuple(f"p{i}.html" for i in range(8))
    for name in names:
        (root / name).write_text(page(name))
    (root / "index.html").write_text(page("home", names))
    assert len(listing(connect({"kind": "web", "url": base, "max_pages": 3}, tmp_path))) == 3


def test_web_sitemap_and_sitemap_index(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    (root / "index.html").write_text(page("home"))  # links to nothing
    (root / "orphan.html").write_text(page("orphan", ("not-followed.html",)))
    (root / "not-followed.html").write_text(page("no"))
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    (root / "pages.xml").write_text(
        f"<urlset {ns}><url><loc>{base}/orphan.html</loc><lastmod>2025-01-31T12:00:00+01:00</lastmod></url>"
        f"<url><loc>https://elsewhere.example/x.html</loc></url></urlset>"
    )
    (root / "sitemap.xml").write_text(
        f"<sitemapindex {ns}><sitemap><loc>{base}/pages.xml</loc></sitemap></sitemapindex>"
    )
    entries = listing(connect({"kind": "web", "url": base, "sitemap": f"{base}/sitemap.xml"}, tmp_path))
    assert set(entries) == {"/", "/orphan.html"}
    assert entries["/orphan.html"].attrs["modified"] == "2025-01-31T11:00:00Z"
    (root / "pages.xml").write_text(
        '<!DOCTYPE x [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc></url></urlset>'
    )
    with pytest.raises(SourceError, match="sitemap"):
        list(connect({"kind": "web", "url": base, "sitemap": f"{base}/sitemap.xml"}, tmp_path).entries())


def test_web_refuses_private_addresses_unless_allowed(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    (root / "index.html").write_text(page("home"))
    with pytest.raises((SourceError, FetchRefused), match="refusing"):
        list(connect({"kind": "web", "url": base}, tmp_path, allow_private=False).entries())


def test_web_start_page_that_fails_is_an_error_not_an_empty_site(
    site: tuple[Path, str], tmp_path: Path
) -> None:
    _, base = site
    with pytest.raises(SourceError, match="start page"):
        list(connect({"kind": "web", "url": base + "/nothing.html"}, tmp_path).entries())


def test_xml_entities_are_not_expanded_without_defusedxml(monkeypatch: pytest.MonkeyPatch) -> None:
    from lamina.data.connectors._xml import parse_xml, text_of

    doc = b'<!DOCTYPE x [<!ENTITY a "expanded">]><urlset><url><loc>&a;</loc></url></urlset>'
    monkeypatch.setitem(sys.modules, "defusedxml", None)
    root = parse_xml(doc, "test")
    assert all("expanded" not in text_of(url, "loc") for url in root)


# -- git -------------------------------------------------------------------------------------------


def test_git_branch_paths_and_a_missing_branch(tmp_path: Path) -> None:
    with git_repo(tmp_path / "r") as repo:
        first = repo.commit({"docs/a.md": "a", "src/x.py": "x"}, author="Ann")
        second = repo.commit({"docs/b.md": "b"}, author="Bob")
        repo.git("checkout", "--quiet", "-b", "release")
        repo.commit({"docs/c.md": "c"})
        repo.git("checkout", "--quiet", "main")
        spec = {"kind": "git", "url": f"file://{repo.path}", "paths": ["docs"]}
        entries = listing(connect(spec, tmp_path))
        assert set(entries) == {"docs/a.md", "docs/b.md"}
        assert (entries["docs/a.md"].attrs["commit"], entries["docs/a.md"].attrs["author"]) == (first, "Ann")
        assert (entries["docs/b.md"].attrs["commit"], entries["docs/b.md"].attrs["author"]) == (second, "Bob")
        release = listing(connect({**spec, "branch": "release"}, tmp_path))
        assert set(release) == {"docs/a.md", "docs/b.md", "docs/c.md"}
        assert release["docs/c.md"].location == f"git+file://{repo.path}@release:docs/c.md"
        with pytest.raises(SourceError, match="nope"):
            list(connect({**spec, "branch": "nope"}, tmp_path).entries())
    with pytest.raises(SourceError, match="fetch failed"):
        list(connect({"kind": "git", "url": str(tmp_path / "no-repo"), "branch": "main"}, tmp_path).entries())


# -- S3 --------------------------------------------------------------------------------------------


@pytest.mark.system  # moto's S3 server
def test_s3_tags_and_wrong_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with s3_server() as server:
        client = server.client()
        client.create_bucket(Bucket="tagged")
        client.put_object(Bucket="tagged", Key="a.txt", Body=b"a", Tagging="team=legal&year=2025")
        monkeypatch.setenv("K", server.access_key)
        monkeypatch.setenv("S", server.secret_key)
        spec = {"kind": "s3", "bucket": "tagged", "endpoint_url": server.endpoint,
                "access_key_env": "K", "secret_key_env": "S"}  # fmt: skip
        entry = listing(connect(spec, tmp_path))["a.txt"]
        assert entry.attrs["tag.team"] == "legal"
        assert entry.attrs["tag.year"] == "2025"
        assert entry.location == "s3://tagged/a.txt"
        secrets = tmp_path / "s3.toml"
        secrets.write_text(f'access_key = "{server.access_key}"\nsecret_key = "{server.secret_key}"\n')
        by_file = {k: v for k, v in spec.items() if not k.endswith("_env")} | {"secrets_file": str(secrets)}
        assert set(listing(connect(by_file, tmp_path))) == {"a.txt"}
        wrong = "wrong-secret-Zq9"
        monkeypatch.setenv("S", wrong)
        with pytest.raises(SourceError) as err:
            list(connect(spec, tmp_path).entries())
        assert "SignatureDoesNotMatch" in str(err.value)
        assert wrong not in str(err.value) and server.secret_key not in str(err.value)
        monkeypatch.delenv("S")
        with pytest.raises(SourceError, match="environment variable S "):
            list(connect(spec, tmp_path).entries())


def test_s3_without_boto3_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(SourceError, match=r"pip install 'lamina\[s3\]'"):
        connect({"kind": "s3", "bucket": "b-1"}, tmp_path)


# -- WebDAV ----------------------------------------------------------------------------------------


def test_webdav_wrong_password_and_secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "dav"
    root.mkdir()
    (root / "a.txt").write_text("a")
    with webdav_server(root, "reader", "right-pass-1") as url:
        secrets = tmp_path / "dav.json"
        secrets.write_text('{"username": "reader", "password": "right-pass-1"}')
        assert set(
            listing(connect({"kind": "webdav", "url": url, "secrets_file": str(secrets)}, tmp_path))
        ) == {"a.txt"}
        monkeypatch.setenv("U", "reader")
        monkeypatch.setenv("P", "wrong-pass-2")
        with pytest.raises(SourceError, match="401") as err:
            list(
                connect(
                    {"kind": "webdav", "url": url, "username_env": "U", "password_env": "P"}, tmp_path
                ).entries()
            )
        assert "wrong-pass-2" not in str(err.value) and "right-pass-1" not in str(err.value)
        with pytest.raises(SourceError, match="refusing"):
            list(connect({"kind": "webdav", "url": url}, tmp_path, allow_private=False).entries())


# -- specs -----------------------------------------------------------------------------------------


def test_specs_refuse_unknown_fields_and_literal_secrets() -> None:
    with pytest.raises(ConfigError, match="colour: unknown field"):
        parse_spec({"kind": "folder", "path": "/x", "colour": "red"})
    with pytest.raises(ConfigError, match="secret_key") as err:
        parse_spec({"kind": "s3", "bucket": "docs", "secret_key": "hunter2-SECRET"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="password") as err:
        parse_spec({"kind": "webdav", "url": "https://dav.example/x/", "password": "hunter2-SECRET"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="NAME of an environment variable") as err:
        parse_spec({"kind": "s3", "bucket": "docs", "secret_key_env": "wJalr/XUtnFEMI+K7MDENG"})
    assert "wJalr" not in str(err.value)
    with pytest.raises(ConfigError, match="credentials") as err:
        parse_spec({"kind": "web", "url": "https://bob:hunter2-SECRET@example.com/"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="credentials"):
        parse_spec({"kind": "git", "url": "https://ghp_token123@github.com/o/r.git"})
    with pytest.raises(ConfigError, match="kind must be one of"):
        parse_spec({"kind": "ftp", "url": "ftp://x"})
    with pytest.raises(ConfigError, match="max_depth"):
        parse_spec({"kind": "web", "url": "https://example.com/", "max_depth": 99})
    with pytest.raises(ConfigError, match="go together"):
        parse_spec({"kind": "webdav", "url": "https://dav.example/", "username_env": "U"})


def test_describe_is_json_safe_and_round_trips() -> None:
    spec = parse_spec(
        {"kind": "s3", "bucket": "docs", "prefix": "team", "secrets_file": "/etc/lamina/s3.toml"}
    )
    described = describe(spec)
    assert described["kind"] == "s3"
    assert described["secrets_file"] == "/etc/lamina/s3.toml"
    assert described["access_key_env"] == "AWS_ACCESS_KEY_ID"
    assert parse_spec(described) == spec
