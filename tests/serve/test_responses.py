"""OpenAI's Responses API on the server (in process), driven by the official ``openai`` client and the
OpenAI Agents SDK: over the stub upstream that keeps every body it got (plain, streamed, tool round
trips, stored responses and previous_response_id, a cut stream), and over a real collection with the
real model (file_search with file_citation annotations, another tenant's collection invisible)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa

import lamina
from lamina.serve.responses.store import ResponseStore
from lamina.testing.inprocess import InProcessServer
from lamina.testing.server import finished_job
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import RunningServer

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
QUESTION = "What is the weather in Paris?"
SAMPLES = Path(lamina.__file__).parent / "samples"


@dataclass
class Served(RunningServer):
    """The server, its keys and the upstream it forwards to; clients are alice's by default."""

    stub: StubUpstream

    def client(self, key: str = "alice") -> openai.OpenAI:
        return super().client(key)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            http_client=self.server.async_client(),
            base_url=self.server.base_url,
            api_key=self.keys["alice"],
            max_retries=0,
            timeout=30,
        )

    def last(self) -> dict[str, Any]:
        body: dict[str, Any] = self.stub.client.get("/_requests").json()[-1]["body"]
        return body


@pytest.fixture(scope="module")
def agentic(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    with StubUpstream("ok") as stub:
        config = (
            "[serve]\ncache = true\n\n"
            f'[models.agent]\nbackend = "openai"\nbase_url = "{stub.base_url}"\n'
            'model = "stub"\nchat = true\ncapabilities = ["tools", "vision"]\n'
            "timeout_s = 5\nmax_retries = 0\n"
        )
        server = InProcessServer(tmp_path_factory.mktemp("responses"), models_dir, config=config)
        store = server.keys()
        keys = {"alice": store.create("alice", tenant="a")[1], "bob": store.create("bob", tenant="b")[1]}
        store.engine.dispose()
        with server:
            yield Served(server, keys, stub)


def test_a_plain_response(agentic: Served) -> None:
    r = agentic.client().responses.create(
        model="agent", input="Hello?", instructions="Be brief.", max_output_tokens=32, temperature=0.5
    )
    assert r.status == "completed" and r.object == "response" and r.id.startswith("resp_")
    assert r.output_text == "Hello from the stub."
    assert [item.type for item in r.output] == ["message"]
    assert r.usage is not None and r.usage.output_tokens == 4 and r.usage.input_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    sent = agentic.last()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
    ]
    assert sent["max_tokens"] == 32 and sent["temperature"] == 0.5


def test_a_streamed_response_follows_the_documented_events(agentic: Served) -> None:
    events = list(agentic.client().responses.create(model="agent", input="Hello?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    assert text == final.output_text == "Hello from the stub."
    assert final.usage is not None and final.usage.output_tokens == 4


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_tool_round_trip(agentic: Served, stream: bool) -> None:
    client = agentic.client()
    if stream:
        events = list(client.responses.create(model="agent", input=QUESTION, tools=TOOLS, stream=True))
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
        deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]  # type: ignore[union-attr]
        first = events[-1].response  # type: ignore[union-attr]
        assert "".join(deltas) == first.output[0].arguments
    else:
        first = client.responses.create(model="agent", input=QUESTION, tools=TOOLS)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert agentic.last()["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": TOOLS[0]["parameters"],
            },
        }
    ]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 degrees."}
    final = client.responses.create(model="agent", input=[output], tools=TOOLS, previous_response_id=first.id)
    assert final.output_text == "Hello from the stub."
    sent = agentic.last()["messages"]
    assert sent[0] == {"role": "user", "content": QUESTION}
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 21 degrees."}


IMAGE = "data:image/png;base64,iVBORw0KGgo="


def test_history_sent_as_items_is_translated_whole(agentic: Served) -> None:
    items: list[Any] = [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": IMAGE}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Nice"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Rain."},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It rains."}]},
        {"role": "user", "content": "Thanks"},
    ]  # fmt: skip
    agentic.client().responses.create(model="agent", input=items, tools=TOOLS, tool_choice="none")
    sent = agentic.last()
    assert sent["tool_choice"] == "none"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Nice"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Rain."},
        {"role": "assistant", "content": "It rains."},
        {"role": "user", "content": "Thanks"},
    ]


def test_stored_responses_continue_and_stay_with_their_tenant(agentic: Served) -> None:
    client = agentic.client()
    first = client.responses.create(model="agent", input="My name is Ada.")
    again = client.responses.create(model="agent", input="What is my name?", previous_response_id=first.id)
    assert agentic.last()["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello from the stub."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert client.responses.retrieve(again.id).output_text == again.output_text
    with pytest.raises(openai.NotFoundError):
        agentic.client("bob").responses.retrieve(first.id)  # another tenant's id does not exist
    with pytest.raises(openai.NotFoundError, match="previous response"):
        agentic.client("bob").responses.create(model="agent", input="Hi", previous_response_id=first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    unstored = client.responses.create(model="agent", input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_a_json_schema_format_reaches_the_model(agentic: Served) -> None:
    schema = {"type": "object", "properties": {"t": {"type": "number"}}}
    text: Any = {"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}}
    agentic.client().responses.create(model="agent", input=QUESTION, text=text)
    assert agentic.last()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": schema, "strict": True},
    }


def test_what_lamina_cannot_honour_is_a_400_in_openais_shape(agentic: Served) -> None:
    client = agentic.client()
    with pytest.raises(openai.BadRequestError, match="web_search") as refused:
        client.responses.create(model="agent", input="Hi", tools=[{"type": "web_search"}])
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="reasoning effort"):
        client.responses.create(model="agent", input="Hi", reasoning={"effort": "high"})
    with pytest.raises(openai.BadRequestError, match="unknown content type"):
        client.responses.create(model="agent", input=[{"role": "user", "content": [{"type": "x"}]}])
    with agentic.server.http_client(timeout=10) as http:
        nobody = http.post("/v1/responses", json={"model": "agent", "input": "Hi"})
        assert nobody.status_code == 401 and nobody.json()["error"]["code"] == "missing_api_key"


def test_a_cut_stream_ends_in_response_failed(agentic: Served) -> None:
    agentic.stub.set_mode("cut", cut_after=2)
    try:
        events = list(agentic.client().responses.create(model="agent", input="Hello?", stream=True))
    finally:
        agentic.stub.set_mode("ok")
    kinds = [e.type for e in events]
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and "mid-stream" in failed.error.message


def test_a_repeated_deterministic_response_is_the_caches(agentic: Served) -> None:
    with agentic.server.http_client(timeout=10) as http:
        http.headers["Authorization"] = f"Bearer {agentic.keys['alice']}"
        body = {"model": "agent", "input": QUESTION, "tools": TOOLS, "temperature": 0}
        first = http.post("/v1/responses", json=body)
        again = http.post("/v1/responses", json=body)
        assert first.headers["x-lamina-cache"] == "miss" and again.headers["x-lamina-cache"] == "hit"
        assert again.json()["output"][0]["arguments"] == first.json()["output"][0]["arguments"]
        assert again.json()["id"] != first.json()["id"]
        streamed = http.post("/v1/responses", json={**body, "stream": True})
        assert streamed.headers["x-lamina-cache"] == "hit"
        assert "response.function_call_arguments.delta" in streamed.text
        assert "event: response.completed" in streamed.text


def test_the_apis_are_in_the_openapi_document(agentic: Served) -> None:
    paths = agentic.server.http_client().get("/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/responses", "/v1/responses/{response_id}", "/v1/messages", "/mcp"} <= set(paths)
    assert {"get", "delete"} <= set(paths["/v1/responses/{response_id}"])


def test_the_response_store_keeps_tenants_apart_and_forgets_in_time(gateway_engine: sa.Engine) -> None:
    """On SQLite and Postgres: a tenant's response only for it, gone when deleted or expired."""
    store = ResponseStore(gateway_engine, retention_days=1)
    conversation: Any = [{"role": "user", "content": "Hi"}]
    store.put("a", {"id": "resp_1", "output": []}, conversation)
    found = store.get("resp_1", "a")
    assert found is not None and found.conversation == conversation
    assert store.get("resp_1", "b") is None and not store.delete("resp_1", "b")
    assert store.delete("resp_1", "a") and store.get("resp_1", "a") is None
    gone = ResponseStore(gateway_engine, retention_days=1e-9)  # expires as it is written
    gone.put("a", {"id": "resp_2", "output": []}, conversation)
    assert gone.get("resp_2", "a") is None


# the OpenAI Agents SDK ----------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_an_agents_sdk_agent_calls_its_function_tool(agentic: Served, api: str) -> None:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return "Sunny, 21 degrees."

    client = agentic.async_client()
    model: Any = (
        OpenAIResponsesModel(model="agent", openai_client=client)
        if api == "responses"
        else OpenAIChatCompletionsModel(model="agent", openai_client=client)
    )
    agent = Agent(name="weather", instructions="Use your tools.", tools=[get_weather], model=model)
    result = asyncio.run(Runner.run(agent, QUESTION))
    assert asked == ["Paris"]
    assert result.final_output == "Hello from the stub."
    sent = agentic.last()["messages"]
    assert sent[0] == {"role": "system", "content": "Use your tools."}
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "Sunny, 21 degrees."


# file_search over a real collection, with the real model -------------------------------------------


@pytest.fixture(scope="module")
def handbook(served: RunningServer) -> str:
    with served.http("alice") as http:
        http.post("/v1/collections", json={"name": "handbook"})
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.is_file()]
        job = http.post("/v1/collections/handbook/documents", files=files).json()
        assert finished_job(http, job["id"])["state"] == "completed"
    return "handbook"


def test_file_search_answers_from_a_collection_with_file_citations(
    served: RunningServer, handbook: str
) -> None:
    tool: Any = {"type": "file_search", "vector_store_ids": [handbook]}
    question = "What happens if an ingestion is interrupted?"
    r = served.client("alice").responses.create(
        model="gemma-3-270m",
        input=question,
        tools=[tool],
        include=["file_search_call.results"],
        temperature=0,
    )
    search, message = r.output
    assert search.type == "file_search_call" and search.queries == [question]
    assert search.results and all(h.file_id and h.filename and h.text for h in search.results)
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text" and "lamina ingest" in text.text
    citations = [a for a in text.annotations if a.type == "file_citation"]
    assert citations and all(text.text[a.index] == "[" for a in citations)
    assert {a.filename for a in citations} <= {p.name for p in SAMPLES.iterdir()}
    events = list(
        served.client("alice").responses.create(
            model="gemma-3-270m", input=question, tools=[tool], temperature=0, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert "response.file_search_call.completed" in kinds and kinds[-1] == "response.completed"
    assert events[-1].response.output[1].content[0].text == text.text  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        served.client("bob").responses.create(model="gemma-3-270m", input=question, tools=[tool])


def test_file_search_filters_are_openais_attribute_filters(served: RunningServer, handbook: str) -> None:
    """OpenAI's attribute filters narrow the collection's documents by their metadata; what Lamina
    cannot honour is refused, never dropped."""
    question = "What happens if an ingestion is interrupted?"
    client = served.client("alice")

    def ask(filters: dict[str, Any]) -> Any:
        tool: Any = {"type": "file_search", "vector_store_ids": [handbook], "filters": filters}
        return client.responses.create(
            model="gemma-3-270m", input=question, tools=[tool], include=["file_search_call.results"]
        )

    only_csv = {"type": "and", "filters": [{"type": "eq", "key": "format", "value": "csv"}]}
    none = ask({"type": "eq", "key": "no-such-key", "value": "x"})
    assert none.output[0].results == []  # nothing passes: nothing relevant, no other document
    assert ask(only_csv).output[0].results == []  # "format" is not metadata: nothing matches
    recent = ask({"type": "gte", "key": "modified", "value": "2000-01-01"})
    assert recent.output[0].results  # every upload's modified time is later
    for unsupported in ({"type": "ne", "key": "a", "value": 1}, {"type": "or", "filters": []}):
        with pytest.raises(openai.BadRequestError):
            ask(unsupported)


def test_file_search_streams_the_answer_a_chat_model_writes(agentic: Served) -> None:
    """A chat model writes grounded answers (answer_mode auto): the stream says what the whole says."""
    headers = {"Authorization": f"Bearer {agentic.keys['alice']}"}
    with agentic.server.http_client(headers=headers, timeout=120) as http:
        http.post("/v1/collections", json={"name": "notes"})
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.is_file()]
        job = http.post("/v1/collections/notes/documents", files=files).json()
        assert finished_job(http, job["id"])["state"] == "completed"
    tool: Any = {"type": "file_search", "vector_store_ids": ["notes"]}
    question = "Which database stores the vectors?"
    whole = agentic.client().responses.create(model="agent", input=question, tools=[tool], temperature=0)
    assert whole.usage is not None and whole.usage.output_tokens > 0  # the model wrote it
    sent = agentic.last()["messages"]  # instructions and the collection's passages first, the question last
    assert '<source id="1"' in sent[0]["content"] and sent[-1]["content"] == f"Question: {question}"
    events = list(
        agentic.client().responses.create(
            model="agent", input=question, tools=[tool], temperature=0, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[-1] == "response.completed"
    streamed = events[-1].response  # type: ignore[union-attr]
    assert [i.type for i in streamed.output] == ["file_search_call", "message"]
    assert streamed.output_text == whole.output_text
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert deltas == whole.output_text
