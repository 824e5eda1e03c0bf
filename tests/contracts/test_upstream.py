"""The gateway's upstream seam, proven in-process (as httpx's MockTransport proves its transport):
retries, breakers, fallbacks and streams on ``memory://`` upstreams; and one contract that the real
HTTP upstream (to the stub server) and the in-memory one both keep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.config import load_settings
from lamina.engine import memory
from lamina.engine.factory import make_upstream
from lamina.engine.gateway import ModelGateway
from lamina.engine.upstream import Upstream, UpstreamError
from lamina.models.registry import ModelRegistry
from lamina.models.types import GenerationRequest
from lamina.testing.aio import run
from lamina.testing.stub_upstream import StubUpstream

CHAT = GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8)


def _completion(text: str) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }


def _chunks(*words: str) -> list[dict[str, Any]]:
    out = [{"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return out


@pytest.fixture
def upstreams() -> Iterator[Callable[[str, memory.Handler], str]]:
    names: list[str] = []

    def add(name: str, handler: memory.Handler) -> str:
        names.append(name)
        return memory.register(name, handler)

    yield add
    for name in names:
        memory.unregister(name)


def _gateway(tmp_path: Path, models: dict[str, dict[str, Any]]) -> ModelGateway:
    settings = load_settings(data_dir=tmp_path, models=models)
    return ModelGateway(settings, ModelRegistry(settings))


def _model(url: str, **extra: Any) -> dict[str, Any]:
    return {"backend": "openai", "base_url": url, "chat": True, "max_retries": 2, **extra}


def test_a_failing_endpoint_is_retried_then_its_breaker_opens(tmp_path: Path, upstreams: Any) -> None:
    calls = {"flaky": 0}

    def flaky(path: str, body: dict[str, Any]) -> dict[str, Any]:
        calls["flaky"] += 1
        raise UpstreamError("busy", 503, retry_after=0)

    healthy = upstreams("healthy", lambda path, body: _completion("fine"))
    spec = _model(upstreams("flaky", flaky), endpoints=[{"base_url": healthy}], breaker_failures=2)
    gateway = _gateway(tmp_path, {"m": spec})

    async def main() -> list[str]:
        dep = await gateway.get("m")
        return [(await dep.generate(CHAT)).first.text for _ in range(20)]

    assert run(main()) == ["fine"] * 20  # every request answered, by retry if need be
    assert calls["flaky"] <= 2  # two failures opened the breaker: no traffic while open


def test_fallbacks_and_a_request_the_model_refuses(tmp_path: Path, upstreams: Any) -> None:
    def down(path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError("unreachable")

    def refuses(path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError("bad request", 400)

    gateway = _gateway(
        tmp_path,
        {
            "primary": _model(upstreams("down", down), max_retries=0, fallbacks=["backup"]),
            "backup": _model(upstreams("backup", lambda p, b: _completion("from backup"))),
            "strict": _model(upstreams("strict", refuses)),
        },
    )

    async def main() -> tuple[list[str], UpstreamError]:
        chain = await gateway.chain("primary")
        answered = []
        for dep in chain:
            try:
                answered.append((await dep.generate(CHAT)).first.text)
            except UpstreamError:
                answered.append("failed")
        with pytest.raises(UpstreamError) as refused:
            await (await gateway.get("strict")).generate(CHAT)
        return answered, refused.value

    answered, refused = run(main())
    assert answered == ["failed", "from backup"]
    assert refused.status == 400  # not retried: another attempt would be refused too


def test_a_stream_passes_pieces_and_usage(tmp_path: Path, upstreams: Any) -> None:
    gateway = _gateway(tmp_path, {"m": _model(upstreams("words", lambda p, b: _chunks("Hello", " world")))})

    async def main() -> list[str]:
        dep = await gateway.get("m")
        return [piece.text async for piece in dep.stream(CHAT) if piece.text]

    assert run(main()) == ["Hello", " world"]


def test_an_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="unknown scheme 'ftp'"):
        make_upstream("ftp://example")


# the contract every Upstream keeps ---------------------------------------------------------------
@pytest.fixture(params=["http", "memory"])
def upstream(request: pytest.FixtureRequest, stub: StubUpstream, upstreams: Any) -> Upstream:
    if request.param == "http":
        stub.set_mode("ok")
        return make_upstream(stub.base_url)
    reply = "Hello from the stub."

    def answer(path: str, body: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        return _chunks(*reply.split(" ")) if body.get("stream") else _completion(reply)

    return make_upstream(upstreams("contract", answer))


def test_contract_a_call_and_a_stream(upstream: Upstream) -> None:
    async def main() -> tuple[dict[str, Any], str]:
        data = await upstream.post(
            "/chat/completions", {"model": "stub", "messages": CHAT.messages, "max_tokens": 8}
        )
        pieces = [
            (c["choices"][0].get("delta") or {}).get("content") or ""
            async for c in upstream.stream(
                "/chat/completions",
                {"model": "stub", "stream": True, "messages": CHAT.messages, "max_tokens": 8},
            )
            if c.get("choices")
        ]
        alive = await upstream.alive()
        await upstream.aclose()
        assert alive
        return data, "".join(pieces)

    data, streamed = run(main())
    assert data["choices"][0]["message"]["content"].startswith("Hello")
    assert streamed.startswith("Hello")
