"""Loopback HTTP servers in subprocesses, and a pass-through proxy to check a benchmark with.

:class:`ServerProcess` is the runner the stub upstream and the proxy share: the child binds a free
port itself (no race for it), says which on stdout, and is ready once ``/health`` answers.
:class:`PassthroughProxy` forwards every request to an upstream with httpx: a "gateway" that does
nothing but relay, so the gateway benchmark must show a small, non-zero overhead for it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "content-encoding"}


class ServerProcess:
    """A loopback HTTP server in a subprocess that prints ``{"port": N}`` once bound (see serve_app)."""

    def __init__(self, args: list[str], startup_timeout_s: float = 20.0) -> None:
        self.args, self.startup_timeout_s = args, startup_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._client: httpx.Client | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return self.root_url + "/v1"

    @property
    def client(self) -> httpx.Client:
        assert self._client is not None, "the server is not running"
        return self._client

    def start(self) -> ServerProcess:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; see stop()
        self._proc = subprocess.Popen(
            [sys.executable, *self.args], stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL
        )
        try:
            self.port = self._read_port()
            self._client = httpx.Client(base_url=self.root_url, timeout=10.0)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.startup_timeout_s)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"{self.args[1]} did not start: {self._stderr_tail()}")
        port: int = json.loads(line)["port"]
        return port

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline and self._proc.poll() is None:
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.args[1]} is not answering /health: {self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._log is None:
            return "no log"
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "no output"

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_app(
    app: Any, host: str = "127.0.0.1", port: int = 0, log_filters: Sequence[logging.Filter] = ()
) -> None:
    """Bind first (port 0 = any free one), print ``{"port": N}`` on stdout, then serve until killed.

    uvloop and httptools, no access log: a stub must cost as little CPU as a server can.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    print(json.dumps({"port": sock.getsockname()[1], "pid": os.getpid()}), flush=True)
    for log_filter in log_filters:
        logging.getLogger("uvicorn.error").addFilter(log_filter)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        backlog=2048,
    )
    uvicorn.Server(config).run(sockets=[sock])


def make_proxy_app(upstream_root: str) -> Starlette:
    """Relay every request under ``upstream_root`` (e.g. http://127.0.0.1:P), streams included."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    client = httpx.AsyncClient(base_url=upstream_root, limits=limits, timeout=120.0)

    async def relay(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
        upstream = client.build_request(
            request.method, request.url.path, content=await request.body(), headers=headers
        )
        response = await client.send(upstream, stream=True)
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(
                response.aiter_raw(),
                status_code=response.status_code,
                headers=kept,
                background=BackgroundTask(response.aclose),
            )
        body = await response.aread()
        return Response(body, status_code=response.status_code, headers=kept)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/{path:path}", relay, methods=["GET", "POST"]),
        ]
    )


class PassthroughProxy(ServerProcess):
    """The relay in a subprocess: ``with PassthroughProxy(stub.base_url) as proxy: proxy.base_url``."""

    def __init__(self, upstream_base_url: str, startup_timeout_s: float = 20.0) -> None:
        root = upstream_base_url.rstrip("/").removesuffix("/v1")
        super().__init__(["-m", "lamina.testing.loopback", "--upstream", root], startup_timeout_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lamina.testing.loopback", description=__doc__)
    parser.add_argument("--upstream", required=True, help="upstream root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve_app(make_proxy_app(args.upstream), args.host, args.port)


if __name__ == "__main__":
    main()
