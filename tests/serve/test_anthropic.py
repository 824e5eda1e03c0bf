"""Anthropic's Messages API on the server (in process), driven by the official ``anthropic`` SDK over
the stub upstream that keeps every body it got: plain, streamed, a tool round trip, count_tokens,
errors in Anthropic's shape, and a stream the upstream cuts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from lamina.testing.inprocess import InProcessServer
from lamina.testing.stub_upstream import StubUpstream

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
QUESTION: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


class Served:
    def __init__(self, server: InProcessServer, stub: StubUpstream, key: str) -> None:
        self.server, self.stub, self.key = server, stub, key

    def client(self, **options: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.server.root,
            api_key=self.key,
            max_retries=0,
            timeout=30,
            http_client=self.server.httpx2_client(timeout=30),
            **options,
        )

    def last(self) -> dict[str, Any]:
        body: dict[str, Any] = self.stub.client.get("/_requests").json()[-1]["body"]
        return body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    with StubUpstream("ok") as stub:
        config = (
            "[serve]\ncache = true\n\n"
            f'[models.claude]\nbackend = "openai"\nbase_url = "{stub.base_url}"\n'
            'model = "stub"\nchat = true\n'
            'capabilities = ["tools", "vision"]\ntimeout_s = 5\nmax_retries = 0\n'
        )
        server = InProcessServer(tmp_path_factory.mktemp("anthropic"), models_dir, config=config)
        store = server.keys()
        key = store.create("admin", admin=True)[1]
        store.engine.dispose()
        with server:
            yield Served(server, stub, key)


def test_a_plain_message(served: Served) -> None:
    message = served.client().messages.create(
        model="claude",
        max_tokens=32,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello?"}],
        stop_sequences=["END"],
    )
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from the stub."  # type: ignore[union-attr]
    assert message.usage.output_tokens == 4 and message.usage.input_tokens > 0
    sent = served.last()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
    ]
    assert sent["max_tokens"] == 32 and sent["stop"] == ["END"]


def test_a_streamed_message_follows_anthropics_events(served: Served) -> None:
    with served.client().messages.stream(model="claude", max_tokens=32, messages=QUESTION) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert final.content[0].text == "Hello from the stub."  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_tool_round_trip(served: Served, stream: bool) -> None:
    client = served.client()
    if stream:
        with client.messages.stream(model="claude", max_tokens=64, messages=QUESTION, tools=TOOLS) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model="claude", max_tokens=64, messages=QUESTION, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}  # type: ignore[union-attr]
    assert served.last()["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": TOOLS[0]["input_schema"],
                "description": "The weather in a city.",
            },
        }
    ]
    messages: list[Any] = [
        *QUESTION,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 degrees."}],
        },
    ]
    final = client.messages.create(model="claude", max_tokens=64, messages=messages, tools=TOOLS)
    assert final.stop_reason == "end_turn" and final.content[0].text == "Hello from the stub."  # type: ignore[union-attr]
    sent = served.last()["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == use.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "Sunny, 21 degrees."}


def test_tool_choice_and_images_are_translated(served: Served) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    content: Any = [{"type": "text", "text": "What is this?"}, image]
    served.client().messages.create(
        model="claude",
        max_tokens=16,
        messages=[{"role": "user", "content": content}],
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    sent = served.last()
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }


def test_count_tokens(served: Served) -> None:
    counted = served.client().messages.count_tokens(model="claude", messages=QUESTION, tools=TOOLS)
    bare = served.client().messages.count_tokens(model="claude", messages=QUESTION)
    assert 0 < bare.input_tokens < counted.input_tokens


def test_errors_come_in_anthropics_shape(served: Served) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        served.client().messages.create(model="nope", max_tokens=8, messages=QUESTION)
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'nope' does not exist; see GET /v1/models"},
    }
    with served.server.http_client(timeout=10) as http:
        no_max = http.post(
            "/v1/messages", json={"model": "claude", "messages": QUESTION}, headers={"x-api-key": served.key}
        )
        assert no_max.status_code == 400 and no_max.json()["error"]["type"] == "invalid_request_error"
        assert "max_tokens" in no_max.json()["error"]["message"]
        nobody = http.post("/v1/messages", json={"model": "claude", "max_tokens": 8, "messages": QUESTION})
        assert nobody.status_code == 401 and nobody.json()["type"] == "error"
    with pytest.raises(anthropic.BadRequestError, match="top_k"):
        served.client().messages.create(
            model="claude", max_tokens=8, messages=QUESTION, extra_body={"top_k": 5}
        )


def test_a_cut_stream_ends_in_an_error_event(served: Served) -> None:
    served.stub.set_mode("cut", cut_after=2)
    try:
        with (
            pytest.raises(anthropic.APIStatusError, match="failed mid-stream"),
            served.client().messages.stream(model="claude", max_tokens=32, messages=QUESTION) as stream,
        ):
            for _ in stream:
                pass
    finally:
        served.stub.set_mode("ok")


def test_a_repeated_deterministic_message_is_the_caches(served: Served) -> None:
    with served.server.http_client(timeout=10, headers={"x-api-key": served.key}) as http:
        body = {"model": "claude", "max_tokens": 64, "messages": QUESTION, "tools": TOOLS, "temperature": 0}
        first = http.post("/v1/messages", json=body)
        again = http.post("/v1/messages", json=body)
        assert first.headers["x-lamina-cache"] == "miss" and again.headers["x-lamina-cache"] == "hit"
        assert again.json()["content"] == first.json()["content"]
        streamed = http.post("/v1/messages", json={**body, "stream": True})
        assert streamed.headers["x-lamina-cache"] == "hit"
        assert "input_json_delta" in streamed.text and "event: message_stop" in streamed.text
