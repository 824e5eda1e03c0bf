"""A stub OpenAI-compatible upstream on loopback, for the gateway benchmark and for fault tests.

It answers a canned completion after a fixed delay, streamed or not, and can be told to fail on
purpose (at start-up or at run time through ``POST /_control``), so one stub process serves a
whole test. :class:`StubUpstream` runs it in a subprocess: the stub's CPU stays off the GIL of
the process being measured.

Fault modes: ``ok``; ``error500`` (500, OpenAI-shaped error); ``error429`` (429 + Retry-After);
``hang`` (read the request, never answer; released when the client leaves); ``cut`` (stream
``cut_after`` chunks, then drop the connection with no finish_reason and no ``[DONE]``);
``slow`` (``slow_ms`` between chunks, and before a non-streamed answer); ``fail_rate`` (that
fraction of requests get a 500, drawn from a seeded generator).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lamina.testing.loopback import ServerProcess, serve_app

MODES = ("ok", "error500", "error429", "hang", "cut", "slow", "fail_rate")
CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"


@dataclass
class StubConfig:
    """Everything the stub's behaviour depends on; every field can be changed through /_control."""

    mode: str = "ok"
    model: str = "stub"
    reply: str = "Hello from the stub."
    delay_ms: float = 0.0  # before the answer (or the first chunk)
    chunk_delay_ms: float = 0.0  # between streamed chunks
    slow_ms: float = 1000.0  # mode "slow": between chunks / before a non-streamed answer
    fail_rate: float = 0.5  # mode "fail_rate"
    cut_after: int = 2  # mode "cut": content chunks sent before the connection drops
    retry_after: int = 1  # mode "error429": seconds in the Retry-After header
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply known fields, converted to their declared type; unknown keys or modes are errors."""
        known = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}")
            setattr(self, key, known[key](value))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; one of {', '.join(MODES)}")


class _CutConnection(Exception):
    """Raised mid-stream in mode ``cut``: uvicorn then closes the socket without ending the body."""


class _QuietCut(logging.Filter):
    """Keep the deliberate ``cut`` out of the stub's error log; real errors still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _CutConnection))


@dataclass
class _State:
    config: StubConfig
    rng: random.Random
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}
    return JSONResponse(body, status_code=status, headers=headers)


def _words(text: str, max_tokens: int | None) -> tuple[list[str], str]:
    """The reply cut into word 'tokens' (each but the first with its leading space) and why it ended."""
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if max_tokens is not None and 0 < max_tokens < len(pieces):
        return pieces[:max_tokens], "length"
    return pieces, "stop"


def _prompt_tokens(body: dict[str, Any], chat: bool) -> int:
    """Words plus one: a stub needs plausible usage numbers, not a tokenizer."""
    if chat:
        texts = [str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict)]
    else:
        prompt = body.get("prompt") or ""
        texts = prompt if isinstance(prompt, list) else [str(prompt)]
    return sum(len(str(t).split()) for t in texts) + 1


def make_app(config: StubConfig | None = None) -> Starlette:
    """The stub as a Starlette app; ``app.state.stub`` holds its config and counters."""
    config = config or StubConfig()
    state = _State(config, random.Random(config.seed))

    async def completion(request: Request) -> Response:
        chat = request.url.path == CHAT_PATH
        state.requests[request.url.path] += 1
        response = await _answer(request, chat)
        state.responses[str(response.status_code)] += 1
        return response

    async def _answer(request: Request, chat: bool) -> Response:
        cfg = state.config
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object", "invalid_request_error")
        mode = cfg.mode
        if mode == "fail_rate":
            mode = "error500" if state.rng.random() < cfg.fail_rate else "ok"
        if mode == "error500":
            return _error(500, "the stub upstream failed on purpose", "server_error")
        if mode == "error429":
            headers = {"Retry-After": str(cfg.retry_after)}
            return _error(429, "the stub upstream is rate limiting", "rate_limit_error", headers)
        if mode == "hang":
            while (await request.receive())["type"] != "http.disconnect":
                pass
            return Response(status_code=499)  # nobody reads it: the client has gone
        if cfg.delay_ms > 0:
            await asyncio.sleep(cfg.delay_ms / 1000)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        pieces, finish = _words(cfg.reply, max_tokens if isinstance(max_tokens, int) else None)
        usage = {
            "prompt_tokens": _prompt_tokens(body, chat),
            "completion_tokens": len(pieces),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        meta = {
            "id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24],
            "created": int(time.time()),
            "model": str(body.get("model") or cfg.model),
        }
        if body.get("stream"):
            options = body.get("stream_options") or {}
            with_usage = bool(isinstance(options, dict) and options.get("include_usage"))
            chunks = _stream(cfg, chat, meta, pieces, finish, usage if with_usage else None)
            return StreamingResponse(_watched(chunks, state), media_type="text/event-stream")
        if mode == "slow":
            await asyncio.sleep(cfg.slow_ms / 1000)
        text = "".join(pieces)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
            return JSONResponse({**meta, "object": "chat.completion", "choices": [choice], "usage": usage})
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return JSONResponse({**meta, "object": "text_completion", "choices": [choice], "usage": usage})

    async def models(request: Request) -> Response:
        state.requests[request.url.path] += 1
        state.responses["200"] += 1
        entry = {"id": state.config.model, "object": "model", "created": 0, "owned_by": "lamina-stub"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "requests": dict(state.requests),
                "responses": dict(state.responses),
                "total": sum(state.requests.values()),
            }
        )

    async def control(request: Request) -> Response:
        if request.method == "POST":
            changes = json.loads(await request.body() or b"{}")
            if changes.pop("reset_stats", False):
                state.requests.clear()
                state.responses.clear()
            try:
                state.config.update(changes)
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc), "invalid_request_error")
            if "seed" in changes:
                state.rng.seed(state.config.seed)
        return JSONResponse(asdict(state.config))

    app = Starlette(
        routes=[
            Route(CHAT_PATH, completion, methods=["POST"]),
            Route(COMPLETIONS_PATH, completion, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_control", control, methods=["GET", "POST"]),
        ]
    )
    app.state.stub = state
    return app


async def _watched(chunks: AsyncIterator[bytes], state: _State) -> AsyncIterator[bytes]:
    """Counts streams the client left before their end: proof that a gateway cancels upstream."""
    finished = False
    try:
        async for chunk in chunks:
            yield chunk
        finished = True
    finally:
        if not finished and state.config.mode != "cut":
            state.responses["abandoned"] += 1


async def _stream(
    cfg: StubConfig,
    chat: bool,
    meta: dict[str, Any],
    pieces: list[str],
    finish: str,
    usage: dict[str, int] | None,
) -> AsyncIterator[bytes]:
    """OpenAI's SSE wire format: role delta first (chat), a chunk per word, finish, usage, [DONE]."""
    mode = cfg.mode
    gap = (cfg.slow_ms if mode == "slow" else cfg.chunk_delay_ms) / 1000
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict[str, Any] | None, **extra: Any) -> bytes:
        payload = {**meta, "object": kind, "choices": [choice] if choice else []}
        if usage is not None:  # as OpenAI does: every chunk says usage null, the last one carries it
            payload["usage"] = extra.get("usage")
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def piece(text: str | None, finish_reason: str | None, role: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}

    if chat:
        yield event(piece(None, None, role=True))
    for i, text in enumerate(pieces):
        if mode == "cut" and i >= cfg.cut_after:
            raise _CutConnection("the stub drops the stream on purpose")
        if gap > 0 and i > 0:
            await asyncio.sleep(gap)
        yield event(piece(text, None))
    if mode == "cut":
        raise _CutConnection("the stub drops the stream on purpose")
    yield event(piece(None if chat else "", finish))
    if usage is not None:
        yield event(None, usage=usage)
    yield b"data: [DONE]\n\n"


class StubUpstream(ServerProcess):
    """The stub in a subprocess on a free loopback port: ``with StubUpstream("ok") as stub: ...``."""

    def __init__(self, mode: str = "ok", *, startup_timeout_s: float = 20.0, **settings: Any) -> None:
        config = StubConfig()
        config.update({"mode": mode, **settings})  # fail here, not in the child, on a bad setting
        args = ["-m", "lamina.testing.stub_upstream", "--port", "0"]
        for key, value in asdict(config).items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        super().__init__(args, startup_timeout_s)

    def set_mode(self, mode: str, **settings: Any) -> dict[str, Any]:
        """Switch the fault mode (and any other setting) of the running stub."""
        return self.configure(mode=mode, **settings)

    def configure(self, **settings: Any) -> dict[str, Any]:
        response = self.client.post("/_control", json=settings)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        """Requests received by route (``requests``), responses by status, and their ``total``."""
        result: dict[str, Any] = self.client.get("/_stats").json()
        return result

    def reset_stats(self) -> None:
        self.configure(reset_stats=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lamina.testing.stub_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    for f in fields(StubConfig):
        default = getattr(StubConfig(), f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default)
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    config = StubConfig()
    config.update(args)
    serve_app(make_app(config), host, port, log_filters=[_QuietCut()])


if __name__ == "__main__":
    main()
