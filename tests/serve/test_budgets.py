"""Budgets and rate limits on a real server: exact under concurrency, reset on time, kept across restarts."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lamina.config import LimitSettings
from lamina.testing.inprocess import InProcessServer
from lamina.testing.server import until
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import stub_model_config

CHAT = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
# worst case of CHAT: (2 + 16) prompt tokens x $1000/M + 8 completion tokens x $2000/M
RESERVATION = (18 * 1000 + 8 * 2000) / 1_000_000


@pytest.fixture(scope="module")
def budget_server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[tuple[InProcessServer, dict[str, str], StubUpstream]]:
    with StubUpstream("ok", delay_ms=50) as stub:
        config = (
            "[serve]\nmax_inflight = 256\nrate_window_s = 2\n"
            "[serve.tenants.broke]\nbudget_usd = 0\n\n" + stub_model_config(stub)
        )
        server = InProcessServer(tmp_path_factory.mktemp("budgets"), models_dir, config=config)
        store = server.keys()
        keys = {
            "capped": store.create("capped", limits=LimitSettings(budget_usd=0.1, budget_period="day"))[1],
            "paced": store.create("paced", limits=LimitSettings(rpm=3))[1],
            "broke": store.create("broke", tenant="broke")[1],
            "admin": store.create("admin", admin=True)[1],
        }
        store.engine.dispose()
        with server:
            yield server, keys, stub


def _post(server: InProcessServer, key: str) -> httpx.Response:
    return server.http_client().post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _spend(server: InProcessServer, admin: str, key_name: str) -> float:
    rows = (
        server.http_client()
        .get("/v1/usage", params={"by": "key"}, headers={"Authorization": f"Bearer {admin}"})
        .json()["data"]
    )
    return sum(r["spend_usd"] for r in rows if r["key"] == key_name)


def test_concurrent_requests_never_overspend(
    budget_server: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, _ = budget_server
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda _: _post(server, keys["capped"]), range(100)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429} and 200 in statuses
    # refusals while others hold reservations may leave room: what is left goes one at a time
    statuses += [_post(server, keys["capped"]).status_code for _ in range(10)]
    assert statuses.count(200) >= 5 and statuses[-1] == 429
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["type"] == "budget_exceeded"
    assert "resets at" in refused.json()["error"]["message"] and int(refused.headers["retry-after"]) > 0
    spent = until(lambda: _spend(server, keys["admin"], "capped"), what="the request log to show the spend")
    assert 0 < spent <= 0.1 + RESERVATION
    metrics = server.http_client().get("/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}).text
    left = {
        s.labels["name"]: s.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "lamina:budget_remaining_usd"
        for s in family.samples
    }
    assert left["capped"] == pytest.approx(max(0.0, 0.1 - spent), abs=1e-9)
    assert left["broke"] == 0.0  # the tenant's budget


def test_rate_limit_resets_on_schedule(
    budget_server: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, _ = budget_server
    window = 2.0
    time.sleep(window - time.time() % window + 0.05)  # start at the top of a window
    statuses = [_post(server, keys["paced"]).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = _post(server, keys["paced"])
    assert refused.json()["error"]["type"] == "rate_limited" and refused.headers["retry-after"]
    time.sleep(window - time.time() % window + 0.05)
    assert _post(server, keys["paced"]).status_code == 200


def test_tenant_budget(budget_server: tuple[InProcessServer, dict[str, str], StubUpstream]) -> None:
    server, keys, _ = budget_server
    resp = _post(server, keys["broke"])
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "budget_exceeded"
    assert "tenant broke" in resp.json()["error"]["message"]


def test_budgets_survive_a_restart(
    budget_server: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, _ = budget_server
    # spend what is left (concurrent refusals may have left room for one more request), then restart
    assert any(_post(server, keys["capped"]).status_code == 429 for _ in range(12))
    server.stop()
    server.start()
    assert _post(server, keys["capped"]).status_code == 429
