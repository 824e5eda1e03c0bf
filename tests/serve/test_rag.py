"""Grounded answers over the API: citations, annotations, streaming, rag:NAME models, follow-ups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lamina
from lamina.testing.server import finished_job, sse_events
from tests.shared import RunningServer

QUESTION = "What happens if an ingestion is interrupted?"
SAMPLES = Path(lamina.__file__).parent / "samples"


@pytest.fixture(scope="module")
def samples(served: RunningServer) -> str:
    with served.http("alice") as http:
        http.post("/v1/collections", json={"name": "samples"})
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.is_file()]
        job = http.post("/v1/collections/samples/documents", files=files).json()
        assert finished_job(http, job["id"])["state"] == "completed"
    return "samples"


def test_grounded_answer_cites_the_collection(served: RunningServer, samples: str) -> None:
    r = served.client("alice").chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        extra_body={"collection": samples},
    )
    message = r.choices[0].message
    assert message.content and "run the same `lamina ingest` command again" in message.content
    extra = message.model_extra or {}
    citations = extra["citations"]
    assert citations, message.content
    for c in citations:
        assert {"n", "source", "title", "page", "headings", "chunk_id", "snippet", "score", "url"} <= set(c)
        assert f"[{c['n']}]" in message.content
        assert c["source"] in {p.name for p in SAMPLES.iterdir()}
    annotations = message.annotations or []  # OpenAI's own url_citation shape, typed by the client
    assert annotations and annotations[0].type == "url_citation"
    first = annotations[0].url_citation
    assert message.content[first.start_index : first.end_index].startswith("[")
    assert first.url == citations[0]["url"] or first.url in {c["url"] for c in citations}
    with served.http("alice") as http:
        assert http.get(citations[0]["url"].split("#")[0]).status_code == 200
    assert r.usage is not None and r.usage.total_tokens == 0  # chosen from the sources: no model call


def test_streamed_grounded_answer_equals_the_whole_one(served: RunningServer, samples: str) -> None:
    body = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "collection": samples,
    }
    with served.http("alice") as http:
        whole = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
        raw = http.post(
            "/v1/chat/completions", json=body | {"stream": True, "stream_options": {"include_usage": True}}
        ).text
    events = sse_events(raw.splitlines())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    *content, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 0  # chosen, as above
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in content)
    assert text == whole["content"]
    last = content[-1]["choices"][0]
    assert last["finish_reason"] == "stop" and last["delta"]["citations"] == whole["citations"]


def test_rag_model_for_stock_clients(served: RunningServer, samples: str) -> None:
    client = served.client("alice")
    assert f"rag:{samples}" in {m.id for m in client.models.list().data}
    r = client.chat.completions.create(
        model=f"rag:{samples}", messages=[{"role": "user", "content": QUESTION}]
    )
    assert r.choices[0].message.content and (r.choices[0].message.model_extra or {})["citations"]


def test_follow_up_uses_earlier_turns(served: RunningServer, samples: str) -> None:
    r = served.client("alice").chat.completions.create(
        model="gemma-3-270m",
        messages=[
            {"role": "user", "content": "Which database stores the vectors?"},
            {"role": "assistant", "content": "LanceDB stores them [1]."},
            {"role": "user", "content": "And how is it searched?"},
        ],
        extra_body={"collection": samples},
    )
    assert r.choices[0].message.content
    assert (r.choices[0].message.model_extra or {})["citations"]


def test_nothing_relevant_is_said_not_guessed(served: RunningServer, samples: str) -> None:
    r = served.client("alice").chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "What is the boiling point of liquid nitrogen at sea level?"}],
        extra_body={"collection": samples},
    )
    extra = r.choices[0].message.model_extra or {}
    assert "could not find anything relevant" in (r.choices[0].message.content or "")
    assert extra["citations"] == [] and extra["grounding"]["grounded"] is False
