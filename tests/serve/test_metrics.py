"""Prometheus metrics on a real server, parsed with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.shared import RunningServer


def _samples(served: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with served.http("alice") as http:
        text = http.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def test_metrics_move_after_requests(served: RunningServer) -> None:
    before = _samples(served)
    client = served.client("alice")
    client.chat.completions.create(model="stub", messages=[{"role": "user", "content": "hi"}])
    client.embeddings.create(model="all-MiniLM-L6-v2/onnx-int8-dynamic", input="hello there")
    after = _samples(served)
    ok = {"route": "/v1/chat/completions", "model": "stub", "status": "200", "tenant": "a"}
    assert _total(after, "lamina:requests_total", **ok) == _total(before, "lamina:requests_total", **ok) + 1
    assert _total(after, "lamina:generation_tokens_total", model="stub") > _total(
        before, "lamina:generation_tokens_total", model="stub"
    )
    assert _total(after, "lamina:embedding_tokens_total", tenant="a") > _total(
        before, "lamina:embedding_tokens_total", tenant="a"
    )
    assert _total(after, "lamina:e2e_request_latency_seconds_count", model="stub") >= 1
    assert _total(after, "lamina:gateway_overhead_seconds_count", model="stub") >= 1
    finished = {"model": "stub", "finished_reason": "stop"}
    assert _total(after, "lamina:request_success_total", **finished) == (
        _total(before, "lamina:request_success_total", **finished) + 1
    )
    streamed = client.chat.completions.create(
        model="stub", messages=[{"role": "user", "content": "hi"}], stream=True, temperature=0
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    final = _samples(served)
    assert _total(final, "lamina:time_per_output_token_seconds_count", model="stub") > _total(
        after, "lamina:time_per_output_token_seconds_count", model="stub"
    )
    assert ("lamina:num_requests_running", (("model", "gemma-3-270m"),)) in after
    assert all("lam_" not in str(key) for key in after)


def test_metrics_need_a_key_by_default(served: RunningServer) -> None:
    assert served.http(None).get("/metrics").status_code == 401


def test_requests_are_priced_and_summed(served: RunningServer) -> None:
    r = served.client("bob").chat.completions.create(
        model="stub", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.usage is not None
    expected = (r.usage.prompt_tokens * 1000 + r.usage.completion_tokens * 2000) / 1_000_000
    with served.http("bob") as http:
        rows = http.get("/v1/usage", params={"by": "key"}).json()["data"]
        assert {row["key"] for row in rows} == {"bob"}  # a tenant sees its own usage only
        assert rows[0]["spend_usd"] >= expected > 0
        log = http.get("/v1/logs", params={"limit": 10}).json()["data"]
        chat = next(row for row in log if row["route"] == "/v1/chat/completions")
        assert chat["cost_usd"] == expected
        by_model = http.get("/v1/usage", params={"by": "model"}).json()["data"]
        assert any(row["model"] == "stub" and row["requests"] >= 1 for row in by_model)
        assert http.get("/v1/usage", params={"by": "colour"}).status_code == 400
    with served.http("admin") as admin:
        tenants = {row["tenant"] for row in admin.get("/v1/usage", params={"by": "tenant"}).json()["data"]}
        assert "b" in tenants


def test_ready(served: RunningServer) -> None:
    resp = served.http(None).get("/ready")
    assert resp.status_code == 200 and resp.json()["status"] == "ready"
