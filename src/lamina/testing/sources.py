"""Real servers for the source connectors' tests, in this process on 127.0.0.1 and a free port.

A web site served from a folder (the test adds and removes pages), a git repository driven with the git
command, a WebDAV server (wsgidav on cheroot) and an S3 server (moto) that checks signatures against an
IAM user it creates, so wrong credentials are refused as on AWS. Each is a context manager that stops
its server on exit.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx

from lamina.testing.json_http import serving


class _SiteHandler(SimpleHTTPRequestHandler):
    def list_directory(self, path: str | Path) -> None:  # type: ignore[override]
        self.send_error(404, "no listing")  # a folder without index.html is not a page

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def web_site(root: Path) -> Iterator[str]:
    """Serve ``root`` (as it is at each request); yields ``http://127.0.0.1:PORT``."""
    with serving(functools.partial(_SiteHandler, directory=str(root))) as url:
        yield url


class GitRepo:
    """A work-tree repository whose branch ``main`` a test changes commit by commit."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, author: str = "Test Author") -> str:
        ident = ["-c", f"user.name={author}", "-c", "user.email=author@example.com"]
        cmd = ["git", "-c", "init.defaultBranch=main", *ident, "-C", str(self.path), *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def commit(
        self, files: Mapping[str, str | bytes], author: str = "Test Author", message: str = "change"
    ) -> str:
        """Write ``files`` (relative path -> content) and commit them; returns the commit's sha."""
        for rel, content in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        self.git("add", "--", *files, author=author)
        self.git("commit", "--quiet", "-m", message, author=author)
        return self.head()

    def delete(self, *paths: str, author: str = "Test Author") -> str:
        self.git("rm", "--quiet", "--", *paths, author=author)
        self.git("commit", "--quiet", "-m", f"delete {', '.join(paths)}", author=author)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


@contextmanager
def git_repo(path: Path) -> Iterator[GitRepo]:
    """A new repository at ``path`` (branch ``main``, no commit yet)."""
    path.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(path)
    repo.git("init", "--quiet")
    yield repo


@contextmanager
def webdav_server(root: Path, username: str, password: str) -> Iterator[str]:
    """Serve ``root`` over WebDAV under ``/dav/`` to one user (basic or digest); yields that folder's URL."""
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "provider_mapping": {"/dav": str(root)},
        "simple_dc": {"user_mapping": {"*": {username: {"password": password}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": True, "default_to_digest": False},
        "verbose": 0,
        "logging": {"enable": False, "enable_loggers": []},
        "dir_browser": {"enable": False},
    }
    server = wsgi.Server(("127.0.0.1", 0), WsgiDAVApp(config))
    server.expiration_interval = 0.02  # how often its loop looks up: ``stop`` waits for that
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.bind_addr[1]}/dav/"
    finally:
        server.stop()
        thread.join(5)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 with IAM checks on: only the yielded access key (allowed everything) is accepted.

    moto keeps its state in this process, so the server starts empty and one runs at a time.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    quiet = logging.getLogger("werkzeug")  # moto's server logs every request
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = "inf"
    try:
        httpx.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
        previous = str(httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf", timeout=30).json()
                       ["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])  # fmt: skip
        iam = boto3.session.Session().client(
            "iam", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )  # fmt: skip
        iam.create_user(UserName="lamina-test")
        policy = (
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
        )
        iam.put_user_policy(UserName="lamina-test", PolicyName="all", PolicyDocument=policy)
        key = iam.create_access_key(UserName="lamina-test")["AccessKey"]
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0", timeout=30).raise_for_status()
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=previous.encode(), timeout=30)
        httpx.post(f"{endpoint}/moto-api/reset", timeout=30)
        server.stop()
        quiet.setLevel(level)
