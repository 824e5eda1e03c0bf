"""The OpenAI-compatible API on a real server, driven by the official ``openai`` client and raw HTTP."""

from __future__ import annotations

import json

import openai
import pytest

from lamina.testing.server import sse_events
from tests.shared import RunningServer

MODEL = "gemma-3-270m"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_lists_chat_and_embedding_models(served: RunningServer) -> None:
    ids = {m.id: m for m in served.client().models.list().data}
    assert MODEL in ids and "stub" in ids and "all-MiniLM-L6-v2/onnx-int8-dynamic" in ids
    assert all(m.object == "model" for m in ids.values())


def test_chat_non_streamed(served: RunningServer) -> None:
    r = served.client().chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=16, temperature=0)
    assert r.object == "chat.completion" and r.model == MODEL
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_stream_with_usage_follows_the_wire_format(served: RunningServer) -> None:
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 16, "temperature": 0, "stream": True}
    with (
        served.http() as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body | {"stream_options": {"include_usage": True}}
        ) as resp,
    ):
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    assert all(block.startswith("data: ") for block in raw.strip().split("\n\n"))
    events = sse_events(raw.splitlines())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert len(finishes) == 1
    *content, usage_chunk = chunks
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in content)
    assert len({c["id"] for c in chunks}) == 1


def test_stream_without_usage_has_no_usage_field(served: RunningServer) -> None:
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 8, "stream": True}
    with served.http() as http:
        events = sse_events(http.post("/v1/chat/completions", json=body).text.splitlines())
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in events[:-1])


def test_streamed_text_equals_non_streamed_at_temperature_0(served: RunningServer) -> None:
    client = served.client()
    whole = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=24, temperature=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        else:
            usage = chunk.usage
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_completions_streamed_and_not(served: RunningServer) -> None:
    client = served.client()
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    text = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
        )
        if c.choices
    )
    assert text == r.choices[0].text


def test_embeddings_float_and_base64(served: RunningServer) -> None:
    client = served.client()
    r = client.embeddings.create(model="all-MiniLM-L6-v2/onnx-int8-dynamic", input=["a cat", "a dog"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384
    assert r.usage.prompt_tokens > 0
    b64 = client.embeddings.create(model="all-MiniLM-L6-v2", input="a cat")  # the client asks base64
    assert len(b64.data[0].embedding) == 384
    assert b64.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "no-such-model", "messages": QUESTION}, 404, "model"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL, "messages": QUESTION, "stream_options": {"include_usage": True}}, 400, None),
        ({"model": MODEL, "messages": QUESTION, "n": 0}, 400, "n"),
        ({"model": MODEL, "messages": QUESTION, "temperature": 5}, 400, "temperature"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role"),
    ],
)
def test_errors_are_openai_shaped(
    served: RunningServer, body: dict[str, object], status: int, param: str | None
) -> None:
    with served.http() as http:
        resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert "Traceback" not in resp.text


def test_official_client_raises_typed_errors(served: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError):
        served.client().chat.completions.create(model="nope", messages=QUESTION)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        served.client().chat.completions.create(
            model=MODEL, messages=QUESTION, stream_options={"include_usage": True}
        )  # type: ignore[arg-type]


def test_bad_and_missing_keys_are_401_without_echo(served: RunningServer) -> None:
    wrong = "lam_this-key-does-not-exist-0123456789abcdef"
    bad = openai.OpenAI(
        base_url=served.base_url, api_key=wrong, max_retries=0, http_client=served.server.http_client()
    )
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert wrong not in str(info.value.body) and wrong not in info.value.response.text
    resp = served.http(None).get("/v1/models")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"
    assert wrong not in served.server.log()


def test_oversized_body_is_413(served: RunningServer) -> None:
    huge = "x" * (3 * 1024 * 1024)
    with served.http() as http:
        resp = http.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": huge}]}
        )
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_responses_carry_a_request_id(served: RunningServer) -> None:
    with served.http() as http:
        resp = http.get("/v1/models")
    assert resp.headers["x-request-id"].startswith("req_")


def test_openapi_docs(served: RunningServer) -> None:
    with served.http(None) as http:
        assert http.get("/docs").status_code == 200
        paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/collections/{name}/search", "/v1/jobs/{job_id}/events"} <= set(paths)
