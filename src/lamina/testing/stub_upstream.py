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

It answers as OpenAI's API does in shape: ``n`` choices (for each prompt of a list), logprobs when
asked (a made-up -0.5 per word), and tool calls: offered ``tools`` and not yet answered by a tool
result, it calls the first tool (or the one ``tool_choice`` names) with ``tool_arguments``, its
arguments streamed in pieces; a ``tool`` message whose ``tool_call_id`` answers no earlier call is a
400, as OpenAI's. Every request body it got is kept (``GET /_requests``) for tests to assert on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lamina.testing.loopback import ServerProcess, serve_app

RECEIVED = 64  # request bodies kept for GET /_requests
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
    tool_arguments: str = '{"city": "Paris"}'  # what a tool call passes (JSON text)

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
    received: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECEIVED))


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
        state.received.append({"path": request.url.path, "body": body})
        if chat and (problem := _unanswered_tool_result(body.get("messages") or [])):
            return _error(400, problem, "invalid_request_error")
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
        call = _tool_call(body, cfg) if chat else None
        if call is not None:
            pieces, finish = [], "tool_calls"
        prompt = body.get("prompt")
        count = int(body.get("n") or 1) * (len(prompt) if isinstance(prompt, list) else 1)
        usage = {
            "prompt_tokens": _prompt_tokens(body, chat),
            "completion_tokens": len(pieces) * count,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        meta = {
            "id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24],
            "created": int(time.time()),
            "model": str(body.get("model") or cfg.model),
        }
        answer = _Answer(chat, count, pieces, finish, call, _logprobs_asked(body, chat))
        if body.get("stream"):
            options = body.get("stream_options") or {}
            with_usage = bool(isinstance(options, dict) and options.get("include_usage"))
            chunks = _stream(cfg, answer, meta, usage if with_usage else None)
            return StreamingResponse(_watched(chunks, state), media_type="text/event-stream")
        if mode == "slow":
            await asyncio.sleep(cfg.slow_ms / 1000)
        kind = "chat.completion" if chat else "text_completion"
        choices = [answer.whole(i) for i in range(count)]
        return JSONResponse({**meta, "object": kind, "choices": choices, "usage": usage})

    async def models(request: Request) -> Response:
        state.requests[request.url.path] += 1
        state.responses["200"] += 1
        entry = {"id": state.config.model, "object": "model", "created": 0, "owned_by": "lamina-stub"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def received(request: Request) -> Response:
        return JSONResponse(list(state.received))

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
                state.received.clear()
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
            Route("/_requests", received, methods=["GET"]),
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


def _unanswered_tool_result(messages: list[Any]) -> str | None:
    """OpenAI's check: a tool message must answer a call of an earlier assistant message."""
    called: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        for c in m.get("tool_calls") or []:
            called.add(str(c.get("id")))
        if m.get("role") == "tool" and m.get("tool_call_id") not in called:
            return (
                f"Invalid parameter: messages[{i}] with role 'tool' must be a response to a preceding "
                "message with 'tool_calls' (no call has id {m.get('tool_call_id')!r})"
            )
    return None


def _tool_call(body: dict[str, Any], cfg: StubConfig) -> dict[str, Any] | None:
    """The call the stub makes: tools offered, tool_choice not "none", no tool result yet."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    if not tools or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return None
    name = str((tools[0].get("function") or {}).get("name"))
    if isinstance(choice, dict):
        name = str((choice.get("function") or {}).get("name") or name)
    return {
        "id": "call_" + uuid.uuid4().hex[:12],
        "type": "function",
        "function": {"name": name, "arguments": cfg.tool_arguments},
    }


def _logprobs_asked(body: dict[str, Any], chat: bool) -> int | None:
    """Alternatives per token asked for, or None when logprobs are not."""
    if chat:
        return int(body.get("top_logprobs") or 0) if body.get("logprobs") else None
    value = body.get("logprobs")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _Answer:
    """What the stub says, whole or in pieces, for each of ``count`` choices."""

    chat: bool
    count: int
    pieces: list[str]
    finish: str
    call: dict[str, Any] | None
    logprobs: int | None

    def _logprobs(self, words: list[str]) -> dict[str, Any] | None:
        if self.logprobs is None:
            return None
        if self.chat:
            top = [{"token": "x", "logprob": -2.0, "bytes": [120]}] * self.logprobs
            entries = [
                {"token": w, "logprob": -0.5, "bytes": list(w.encode()), "top_logprobs": top} for w in words
            ]
            return {"content": entries, "refusal": None}
        return {
            "tokens": words,
            "token_logprobs": [-0.5] * len(words),
            "top_logprobs": [{w: -0.5} for w in words],
            "text_offset": [sum(len(x) for x in words[:i]) for i in range(len(words))],
        }

    def whole(self, index: int) -> dict[str, Any]:
        text = "".join(self.pieces)
        logprobs = self._logprobs(self.pieces)
        if not self.chat:
            return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": self.finish}
        message: dict[str, Any] = {"role": "assistant", "content": None if self.call else text}
        if self.call:
            message["tool_calls"] = [self.call]
        return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": self.finish}

    def chunks(self, index: int) -> list[dict[str, Any]]:
        """The choice's stream: role (chat), a piece per word or tool-call piece, then its finish."""
        if not self.chat:
            words = [
                {"index": index, "text": w, "logprobs": self._logprobs([w]), "finish_reason": None}
                for w in self.pieces
            ]
            return [*words, {"index": index, "text": "", "logprobs": None, "finish_reason": self.finish}]
        pieces: list[dict[str, Any]] = [{"role": "assistant", "content": "" if not self.call else None}]
        if self.call:
            arguments = self.call["function"]["arguments"]
            head = dict(self.call, index=0, function={"name": self.call["function"]["name"], "arguments": ""})
            pieces.append({"tool_calls": [head]})
            step = max(1, len(arguments) // 3)
            for at in range(0, len(arguments), step):
                pieces.append(
                    {"tool_calls": [{"index": 0, "function": {"arguments": arguments[at : at + step]}}]}
                )
        pieces += [{"content": w} for w in self.pieces]
        out = [
            {
                "index": index,
                "delta": d,
                "logprobs": self._logprobs([d["content"]]) if d.get("content") else None,
                "finish_reason": None,
            }
            for d in pieces
        ]
        return [*out, {"index": index, "delta": {}, "logprobs": None, "finish_reason": self.finish}]


async def _stream(
    cfg: StubConfig, answer: _Answer, meta: dict[str, Any], usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    """OpenAI's SSE wire format: per choice its role delta (chat), a chunk per word (or tool-call
    piece), its finish; then usage, [DONE]."""
    mode = cfg.mode
    gap = (cfg.slow_ms if mode == "slow" else cfg.chunk_delay_ms) / 1000
    kind = "chat.completion.chunk" if answer.chat else "text_completion"

    def event(choice: dict[str, Any] | None, **extra: Any) -> bytes:
        payload = {**meta, "object": kind, "choices": [choice] if choice else []}
        if usage is not None:  # as OpenAI does: every chunk says usage null, the last one carries it
            payload["usage"] = extra.get("usage")
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    for index in range(answer.count):
        chunks = answer.chunks(index)
        sent = 0
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            carries = bool(chunk.get("text") or (chunk.get("delta") or {}).get("content"))
            if mode == "cut" and (last or (carries and sent >= cfg.cut_after)):
                raise _CutConnection("the stub drops the stream on purpose")
            if gap > 0 and carries and sent > 0:
                await asyncio.sleep(gap)
            sent += carries
            yield event(chunk)
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
