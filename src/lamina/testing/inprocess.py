"""The server as ``lamina serve`` builds it, in this process: no port, no subprocess.

The app comes from ``build_app`` over its own ``ServerState`` (and the web UI, as ``lamina serve``
installs it). Its lifespan runs on an event loop in a helper thread (an anyio blocking portal), and
clients reach it through httpx's ASGI transport: plain httpx, the SDK and ``openai`` take
``http_client=server.http_client()`` (async ones ``async_client()``), ``anthropic`` takes
``httpx2_client()`` and the ``mcp`` SDK ``async_httpx2_client()``.
Tests whose point is the process (signals, crashes, replicas, a browser) start a ``LaminaServer``.

Responses arrive whole: a streamed response is read to its end before the client sees it, which is
what every test of a stream's content needs; a test of what happens mid-stream uses a real server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Self

import anyio
import httpx
import httpx2
from anyio.from_thread import BlockingPortal, start_blocking_portal

from lamina.config import CONFIG_ENV, Settings, load_settings
from lamina.data.embed.base import Embedder
from lamina.serve import db
from lamina.serve.http.app import build_app
from lamina.serve.policy.keys import KeyStore
from lamina.serve.state import ServerState
from lamina.testing.running import Running
from lamina.testing.server import ClientKind, Clients, server_home

ROOT = "http://lamina.test"  # any name: the transport never resolves it
CLIENT = ("127.0.0.1", 50000)  # where requests seem to come from: loopback, as in a local test


Wire = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, raw headers, raw body


class AppCaller:
    """Calls the app on ``portal``'s event loop through httpx's ASGI transport, from any thread."""

    def __init__(self, app: Any, portal: BlockingPortal) -> None:
        self._asgi = httpx.ASGITransport(app, client=CLIENT)
        self._portal = portal

    def __call__(self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Wire:
        return self._portal.call(self._call, httpx.Request(method, url, headers=headers, content=body))

    async def _call(self, request: httpx.Request) -> Wire:
        response = await self._asgi.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return response.status_code, response.headers.raw, raw


# One transport per client library and style: httpx (plain clients, the SDK, ``openai``) and
# httpx2 (``anthropic``, the ``mcp`` SDK), sync and async. An async one waits in a thread, so the
# caller's event loop never runs the app's objects, which belong to the portal's loop.


class AppTransport(httpx.BaseTransport):
    def __init__(self, call: AppCaller) -> None:
        self._call = call

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        status, headers, raw = self._call(
            request.method, str(request.url), request.headers.raw, request.read()
        )
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(raw), request=request)


class AsyncAppTransport(httpx.AsyncBaseTransport):
    def __init__(self, call: AppCaller) -> None:
        self._call = call

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        args = (request.method, str(request.url), request.headers.raw, await request.aread())
        status, headers, raw = await anyio.to_thread.run_sync(self._call, *args)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(raw), request=request)


class App2Transport(httpx2.BaseTransport):
    def __init__(self, call: AppCaller) -> None:
        self._call = call

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        status, headers, raw = self._call(
            request.method, str(request.url), request.headers.raw, request.read()
        )
        return httpx2.Response(status, headers=headers, stream=httpx2.ByteStream(raw), request=request)


class AsyncApp2Transport(httpx2.AsyncBaseTransport):
    def __init__(self, call: AppCaller) -> None:
        self._call = call

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        args = (request.method, str(request.url), request.headers.raw, await request.aread())
        status, headers, raw = await anyio.to_thread.run_sync(self._call, *args)
        return httpx2.Response(status, headers=headers, stream=httpx2.ByteStream(raw), request=request)


TRANSPORTS: dict[ClientKind, Callable[[AppCaller], Any]] = {
    "httpx": AppTransport,
    "httpx-async": AsyncAppTransport,
    "httpx2": App2Transport,
    "httpx2-async": AsyncApp2Transport,
}


class LogBuffer(logging.Handler):
    """What the server logged while it ran (a test checks, say, that no key ever appears)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class InProcessServer(Running, Clients):
    """``with InProcessServer(data_dir, models_dir, config=...) as server:`` -> a started app.

    Configured like ``LaminaServer``: ``config`` is its lamina.toml, ``env`` its ``LAMINA_*``
    variables; ``embedder`` shares a loaded embedder instead of loading another.
    """

    def __init__(
        self,
        data_dir: Path,
        models_dir: Path | None = None,
        *,
        config: str = "",
        env: dict[str, str] | None = None,
        home: Path | None = None,
        embedder: Embedder | None = None,
        auth: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.home, self.config_path = server_home(data_dir, models_dir, home, config)
        self.extra_env = env or {}
        self.embedder = embedder
        self.auth = auth
        self.root = ROOT
        self.base_url = ROOT + "/v1"
        self.caller: AppCaller | None = None
        self._logs = LogBuffer()
        self._level = logging.NOTSET  # the ``lamina`` logger's level before start, restored at stop
        self._portal: AbstractContextManager[BlockingPortal] | None = None
        self._lifespan: AbstractContextManager[Any] | None = None

    def settings(self) -> Settings:
        """The settings ``lamina serve`` would read with this configuration file and environment."""
        with _environment(
            {"LAMINA_DATA_DIR": str(self.data_dir), CONFIG_ENV: str(self.config_path), **self.extra_env}
        ):
            return load_settings()

    def keys(self) -> KeyStore:
        return KeyStore(db.connect(self.settings().gateway_url))

    def start(self) -> Self:
        if self.caller is not None:
            return self
        from lamina.ui import install

        app = build_app(ServerState.build(self.settings(), auth=self.auth, embedder=self.embedder), install)
        lamina_log = logging.getLogger("lamina")
        self._level = lamina_log.level
        lamina_log.setLevel(logging.INFO)  # what ``lamina serve`` logs, as its log config sets it
        logging.getLogger().addHandler(self._logs)
        self._portal = start_blocking_portal()
        portal = self._portal.__enter__()
        try:
            self._lifespan = portal.wrap_async_context_manager(app.router.lifespan_context(app))
            self._lifespan.__enter__()
        except BaseException:
            self._portal.__exit__(None, None, None)
            self._portal = None
            self._detach_logs()
            raise
        self.caller = AppCaller(app, portal)
        return self

    def stop(self) -> None:
        if self._portal is None:
            return
        try:
            if self._lifespan is not None:
                self._lifespan.__exit__(None, None, None)
        finally:
            self._portal.__exit__(None, None, None)
            self._portal = self._lifespan = self.caller = None
            self._detach_logs()

    def _detach_logs(self) -> None:
        logging.getLogger().removeHandler(self._logs)
        logging.getLogger("lamina").setLevel(self._level)

    def log(self) -> str:
        return "\n".join(self._logs.lines)

    def _client_options(self, kind: ClientKind) -> dict[str, Any]:
        return {"base_url": self.root, "transport": TRANSPORTS[kind](self._caller())}

    def _caller(self) -> AppCaller:
        assert self.caller is not None, "start the server first"
        return self.caller


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` as the only ``LAMINA_*`` variables while settings are read, then as before."""
    saved = os.environ.copy()
    for key in [k for k in os.environ if k.startswith("LAMINA_") and k != "LAMINA_SHARED_DATA"]:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
