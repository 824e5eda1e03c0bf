"""A real ``lamina serve`` in a subprocess on a free loopback port, for tests that drive it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
import httpx2

from lamina.config import load_settings
from lamina.serve import db
from lamina.serve.jobs.model import TERMINAL
from lamina.serve.policy.keys import KeyStore

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def share_models(data_dir: Path, models_dir: Path) -> None:
    """``data_dir``'s models folder as a link to ``models_dir``: one GGUF and one set of embedder
    graphs for every data directory a test makes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "models").exists():
        (data_dir / "models").symlink_to(models_dir, target_is_directory=True)


def server_home(data_dir: Path, models_dir: Path | None, home: Path | None, config: str) -> tuple[Path, Path]:
    """A test server's folders: its data directory (its models shared, see ``share_models``) and its
    home (default: the data directory) with ``config`` as its lamina.toml. Returns the home and
    that file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if models_dir is not None:
        share_models(data_dir, models_dir)
    home = home or data_dir
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "lamina.toml"
    config_path.write_text(config)
    return home, config_path


ClientKind = Literal["httpx", "httpx-async", "httpx2", "httpx2-async"]


class Clients:
    """The clients a test takes from a server, ``base_url`` its root unless given: httpx's (plain,
    the SDK, ``openai``) and httpx2's (``anthropic``; async, the ``mcp`` SDK's
    ``streamable_http_client``). A test written against one kind of server runs against the other."""

    def _client_options(self, kind: ClientKind) -> dict[str, Any]:
        """What a client of ``kind`` is made with: the base URL, and a transport if not the network."""
        raise NotImplementedError

    def http_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(**self._client_options("httpx") | kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**self._client_options("httpx-async") | kwargs)

    def httpx2_client(self, **kwargs: Any) -> httpx2.Client:
        return httpx2.Client(**self._client_options("httpx2") | kwargs)

    def async_httpx2_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(**self._client_options("httpx2-async") | kwargs)


class LaminaProcess:
    """A ``lamina`` command in a subprocess, with its own configuration file and log in ``home``
    (default: the data directory; replicas that share one data directory each get their own home)."""

    name = "serve"

    def __init__(
        self,
        data_dir: Path,
        models_dir: Path | None = None,
        *,
        config: str = "",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 180.0,
        home: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.home, self.config_path = server_home(data_dir, models_dir, home, config)
        self.args = args
        self.extra_env = env or {}
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
        env.update(LAMINA_DATA_DIR=str(self.data_dir), LAMINA_CONFIG=str(self.config_path), **self.extra_env)
        return env

    def keys(self) -> KeyStore:
        """The server's key store, in its database (``LAMINA_DATABASE_URL`` in ``env``, or SQLite)."""
        url = self.extra_env.get("LAMINA_DATABASE_URL")
        settings = load_settings(data_dir=self.data_dir, **({"database_url": url} if url else {}))
        return KeyStore(db.connect(settings.gateway_url))

    def start(self) -> Self:
        if self.proc is not None and self.proc.poll() is None:
            return self  # already running: never a second process on the same port
        cmd = [sys.executable, "-m", "lamina", *self.command(), *self.args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lamina {self.name} exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"lamina {self.name} did not become ready:\n{self.log()[-3000:]}")

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class LaminaServer(LaminaProcess, Clients):
    """``with LaminaServer(data_dir, models_dir, config=...) as server:`` -> a ready server."""

    def __init__(self, data_dir: Path, models_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(data_dir, models_dir, **kwargs)
        self.port = free_port()

    def command(self) -> list[str]:
        return ["serve", "--port", str(self.port)]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def ready(self) -> bool:
        try:
            return httpx.get(self.root + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _client_options(self, kind: ClientKind) -> dict[str, Any]:
        return {"base_url": self.root}  # over the network, to its port


class LaminaWorker(LaminaProcess):
    """``lamina worker``: ready once it says it is waiting for jobs."""

    name = "worker"

    def command(self) -> list[str]:
        return ["worker"]

    def ready(self) -> bool:
        return "waiting for ingest jobs" in self.log()


def sse_events(lines: list[str]) -> list[str]:
    """The ``data:`` payloads of a server-sent event stream, in order."""
    return [line[5:].strip() for line in lines if line.startswith("data:")]


def until(check: Callable[[], T | None], timeout_s: float = 20.0, what: str = "the condition") -> T:
    """Poll ``check`` until it returns something truthy: a test waits on state, never on a sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g}s")
        time.sleep(0.05)


def finished_job(http: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """The job once it has ended, however it ended (``GET /v1/jobs/{id}``, polled as ``until`` does)."""

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in TERMINAL else None

    return until(ended, timeout_s, what=f"the end of job {job_id}")
