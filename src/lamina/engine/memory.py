"""An upstream that lives in this process: the gateway's seam proven the way httpx's ``MockTransport``
proves its transport. Tests register a handler under a name and point a model at ``memory://NAME``;
retries, breakers, fallbacks and streaming then run in-process, with no server to start.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from lamina.engine.upstream import UpstreamError
from lamina.errors import ConfigError

# (path, body) -> a JSON answer; for a stream, a list of chunks. Raise UpstreamError to fail.
Handler = Callable[[str, dict[str, Any]], dict[str, Any] | list[dict[str, Any]]]

_HANDLERS: dict[str, Handler] = {}


def register(name: str, handler: Handler) -> str:
    """Serve ``handler`` as ``memory://name``; returns that URL."""
    _HANDLERS[name] = handler
    return f"memory://{name}"


def unregister(name: str) -> None:
    _HANDLERS.pop(name, None)


class MemoryUpstream:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        name = base_url.removeprefix("memory://").strip("/")
        if name not in _HANDLERS:
            raise ConfigError(f"no in-memory upstream {name!r} is registered (lamina.engine.memory)")
        self._handler = _HANDLERS[name]
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        self.calls.append((path, body))
        return self._handler(path, body)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._call(path, body)
        if not isinstance(answer, dict):
            raise UpstreamError("the model answered a stream to a plain request")
        return answer

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        answer = self._call(path, body)
        for chunk in answer if isinstance(answer, list) else [answer]:
            yield chunk

    async def alive(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
