"""Upstreams by their endpoint URL's scheme: one entry in ``SCHEMES`` per implementation.

``http``/``https`` are ``HttpUpstream`` (``http.py``); ``memory`` is an upstream in this process,
for tests (``memory.py``), imported only when it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable

from lamina.backends import choose
from lamina.engine.http import HttpUpstream
from lamina.engine.upstream import Upstream
from lamina.errors import ModelUnavailable

UpstreamFactory = Callable[[str, str | None, float, float], Upstream]


def make_upstream(
    url: str, *, api_key: str | None = None, timeout_s: float = 120.0, connect_timeout_s: float = 5.0
) -> Upstream:
    """The upstream for an endpoint URL, by its scheme: one entry in ``SCHEMES`` per kind."""
    scheme = url.split("://", 1)[0].lower()
    factory = choose(SCHEMES, scheme, "scheme", context=f"endpoint {url!r}", error=ModelUnavailable)
    return factory(url, api_key, timeout_s, connect_timeout_s)


def _http(url: str, key: str | None, timeout_s: float, connect_timeout_s: float) -> Upstream:
    return HttpUpstream(url, api_key=key, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)


def _memory(url: str, key: str | None, timeout_s: float, connect_timeout_s: float) -> Upstream:
    from lamina.engine.memory import MemoryUpstream

    return MemoryUpstream(url)


SCHEMES: dict[str, UpstreamFactory] = {
    "http": _http,
    "https": _http,
    "memory": _memory,  # in this process, for tests (engine/memory.py)
}
