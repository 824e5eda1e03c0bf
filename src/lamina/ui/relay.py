"""The chat page asks the server's own ``/v1/chat/completions`` over loopback, as the user, and streams.

Going through the API (rather than calling its functions in-process) keeps the UI honest: the request is
authenticated, limited, budgeted, logged and priced exactly as any client's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from lamina.sse import StreamError, aevents

CONNECT_S = 10.0
READ_S = 600.0  # a slow local model on a small machine may pause long between tokens


@dataclass
class Delta:
    text: str


@dataclass
class Final:
    text: str
    model: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    grounding: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failed:
    message: str
    text: str = ""


Event = Delta | Final | Failed


def own_url(request: Request) -> str:
    """This server as reached from inside it: the address the request came in on."""
    server = request.scope.get("server")
    if server and server[1]:
        host, port = server
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"
    return str(request.base_url).rstrip("/")


def _error_message(body: bytes, status: int) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered {status}"


async def chat_stream(base_url: str, key: str, body: dict[str, Any]) -> AsyncGenerator[Event, None]:
    """Deltas as they arrive, then one ``Final`` (or one ``Failed``)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = httpx.Timeout(READ_S, connect=CONNECT_S)
    shown: list[str] = []
    citations: list[dict[str, Any]] = []
    grounding: dict[str, Any] = {}
    model = str(body.get("model", ""))
    try:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
            client.stream(
                "POST", "/v1/chat/completions", json=body | {"stream": True}, headers=headers
            ) as resp,
        ):
            if resp.status_code != 200:
                yield Failed(_error_message(await resp.aread(), resp.status_code))
                return
            async for chunk in aevents(resp.aiter_lines()):
                model = chunk.get("model") or model
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if text := delta.get("content"):
                        shown.append(text)
                        yield Delta(text)
                    citations = delta.get("citations", citations)
                    grounding = delta.get("grounding", grounding)
    except StreamError as exc:
        yield Failed("the answer stream ended early" if exc.incomplete else str(exc), "".join(shown))
        return
    except httpx.HTTPError as exc:
        yield Failed(f"could not reach the model: {type(exc).__name__}", "".join(shown))
        return
    yield Final("".join(shown), model, citations, grounding)
