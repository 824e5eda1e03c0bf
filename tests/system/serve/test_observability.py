"""Traces and logs: spans with the GenAI attributes reach a real OTLP/HTTP receiver on loopback (the
SDK's own exporter, protobuf on the wire), one trace per request linked by the request id; ingestion
is traced too; the JSON log lines carry the request id and never a key. Data-layer spans are also
checked in process with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lamina
from lamina.data.collection import Workspace
from lamina.testing.server import LaminaServer, finished_job
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import stub_model_config

SAMPLES = Path(lamina.__file__).parent / "samples"


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind)


class OtlpReceiver:
    """The receiving end of OTLP/HTTP traces: decodes each export into plain span dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces"
                assert self.headers["Content-Type"] == "application/x-protobuf"
                for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                    resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            receiver.spans.append(
                                {
                                    "name": s.name,
                                    "trace_id": s.trace_id.hex(),
                                    "span_id": s.span_id.hex(),
                                    "parent_id": s.parent_span_id.hex(),
                                    "attributes": {a.key: _value(a.value) for a in s.attributes},
                                    "resource": resource,
                                }
                            )
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def trace_of(self, request_id: str, timeout: float = 15) -> list[dict[str, Any]]:
        """Every span of the trace whose server span carries ``request_id`` (waits for export)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            roots = [s for s in self.spans if s["attributes"].get("lamina.request_id") == request_id]
            if roots:
                time.sleep(0.5)  # children were exported in the same or an earlier batch
                return [s for s in self.spans if s["trace_id"] == roots[0]["trace_id"]]
            time.sleep(0.1)
        raise AssertionError(f"no trace for {request_id}; got {[s['name'] for s in self.spans]}")


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, stub: StubUpstream
) -> Iterator[tuple[LaminaServer, OtlpReceiver, str]]:
    receiver = OtlpReceiver()
    server = LaminaServer(
        tmp_path_factory.mktemp("traced"),
        models_dir,
        config='[serve]\nlog_format = "json"\ntrace_recent = 500\n\n' + stub_model_config(stub),
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    store = server.keys()
    key = store.create("admin", admin=True)[1]
    store.engine.dispose()
    with server:
        yield server, receiver, key
    receiver.httpd.shutdown()


def _by_name(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name]
    assert found, (name, [s["name"] for s in spans])
    return found[0]


def test_a_chat_request_is_one_trace_with_genai_spans(traced: tuple[LaminaServer, OtlpReceiver, str]) -> None:
    server, receiver, key = traced
    body = {"model": "stub", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    r = httpx.post(
        server.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200
    spans = receiver.trace_of(r.headers["x-request-id"])
    root = _by_name(spans, "POST /v1/chat/completions")
    assert root["resource"]["service.name"] == "lamina"
    assert root["attributes"]["http.response.status_code"] == 200
    assert root["attributes"]["lamina.key_name"] == "admin"
    admission = _by_name(spans, "admission")
    gen = _by_name(spans, "chat stub")
    attempt = _by_name(spans, "upstream 127.0.0.1")
    endpoint = next(s for s in spans if s["span_id"] == gen["parent_id"])  # FastAPI's own span
    assert endpoint["parent_id"] == root["span_id"] and admission["parent_id"] == endpoint["span_id"]
    assert attempt["parent_id"] == gen["span_id"]
    a = gen["attributes"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "stub" and a["gen_ai.response.model"] == "stub"
    assert a["gen_ai.request.max_tokens"] == 8
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert attempt["attributes"]["server.address"] == "127.0.0.1"


def test_grounded_answers_and_ingestion_are_traced(traced: tuple[LaminaServer, OtlpReceiver, str]) -> None:
    server, receiver, key = traced
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.root, headers=headers, timeout=120) as http:
        http.post("/v1/collections", json={"name": "docs"})
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.is_file()][:2]
        job = http.post("/v1/collections/docs/documents", files=files).json()
        assert finished_job(http, job["id"])["state"] == "completed"
        body = {
            "model": "stub",
            "messages": [{"role": "user", "content": "What happens if an ingestion is interrupted?"}],
            "collection": "docs",
            "stream": True,
        }
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            request_id = r.headers["x-request-id"]
            r.read()
    spans = receiver.trace_of(request_id)
    retrieval = _by_name(spans, "retrieval docs")["attributes"]
    assert retrieval["gen_ai.operation.name"] == "retrieval"
    assert retrieval["gen_ai.data_source.id"] == "docs"
    assert retrieval["lamina.retrieval.hits"] > 0
    assert _by_name(spans, "packing")["attributes"]["lamina.packing.sources"] > 0
    gen = _by_name(spans, "chat stub")["attributes"]
    assert gen["gen_ai.request.stream"] is True and gen["gen_ai.response.time_to_first_chunk"] > 0

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(s["name"] == "ingest docs" for s in receiver.spans):
        time.sleep(0.1)
    ingest = _by_name(receiver.spans, "ingest docs")
    children = {s["name"] for s in receiver.spans if s["trace_id"] == ingest["trace_id"]}
    assert {"extract", "chunk", "load"} <= children
    assert any(n.startswith("embeddings ") for n in children)
    assert ingest["attributes"]["lamina.ingest.ingested"] == 2


def test_json_logs_carry_the_request_id_and_no_key(traced: tuple[LaminaServer, OtlpReceiver, str]) -> None:
    server, _, key = traced
    r = httpx.get(server.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
    request_id = r.headers["x-request-id"]
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not lines:
        lines = [
            json.loads(line)
            for line in server.log().splitlines()
            if line.startswith("{") and request_id in line
        ]
        time.sleep(0.1)
    assert lines, server.log()[-2000:]
    line = lines[0]
    assert line["request_id"] == request_id and line["route"] == "/v1/models" and line["status"] == 200
    assert line["key_name"] == "admin" and {"level", "time", "message"} <= set(line)
    assert key not in server.log()


def test_ingestion_spans_in_process(workspace: Workspace) -> None:
    """The data layer opens spans through the API alone; an SDK installed by the app collects them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    import lamina.data.engine.stages as stages_module
    import lamina.data.ingest as ingest_module

    modules = (ingest_module, stages_module)  # the run's spans, and its steps' (whatever engine runs them)
    originals = [m.tracer for m in modules]
    for module in modules:
        module.tracer = tracer  # type: ignore[assignment]
    try:
        kb = workspace.collection("spans", create=True)
        with trace.use_span(tracer.start_span("job"), end_on_exit=True):
            kb.ingest([str(SAMPLES)])
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.tracer = original  # type: ignore[assignment]
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert "ingest spans" in names and "load" in names
    embed = next(s for s in spans if s.name.startswith("embeddings "))
    assert embed.attributes is not None and embed.attributes["gen_ai.usage.input_tokens"] > 0
    job = next(s for s in spans if s.name == "job")
    assert all(s.context.trace_id == job.context.trace_id for s in spans)  # type: ignore[union-attr]


def test_the_ui_shows_a_requests_spans(traced: tuple[LaminaServer, OtlpReceiver, str]) -> None:
    """``serve.trace_recent`` keeps spans in memory: a request's page in the web UI draws them."""
    server, _, key = traced
    with httpx.Client(base_url=server.root, timeout=30) as web:
        web.get("/login", params={"key": key})
        rows = re.findall(r"/usage/requests/(\d+)", web.get("/usage").text)
        assert rows
        pages = [web.get(f"/usage/requests/{n}").text for n in rows[:20]]
    assert any("admission" in p and "chat stub" in p for p in pages)
