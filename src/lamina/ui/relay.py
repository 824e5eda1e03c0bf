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

from lamina.client._answers import AnswerBuilder
from lamina.client.errors import APIStreamError

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
    """Deltas as they arrive, then one ``Final`` (or one ``Failed``); the chunks are read by the
    SDK's reader (itself the engine's), so the UI interprets nothing of the wire format itself."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = httpx.Timeout(READ_S, connect=CONNECT_S)
    reader = AnswerBuilder(str(body.get("collection") or ""), str(body.get("model", "")), None)
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
            async for line in resp.aiter_lines():
                if text := reader.feed(line):
                    yield Delta(text)
                if reader.done:
                    break
    except APIStreamError as exc:
        yield Failed(str(exc), "".join(reader.parts))
        return
    except httpx.HTTPError as exc:
        yield Failed(f"could not reach the model: {type(exc).__name__}", "".join(reader.parts))
        return
    if not reader.done:
        yield Failed("the answer stream ended early", "".join(reader.parts))
        return
    message = reader.message
    yield Final(
        "".join(reader.parts), reader.model, message.get("citations") or [], message.get("grounding") or {}
    )
