"""The fair admission queue: VTC order across tenants, early 429s, deadlines, cancellation; and the
same through a real server with two tenants' keys."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from lamina.engine.admission import FairQueue, Ticket
from lamina.errors import Overloaded
from lamina.serve.errors import from_lamina
from lamina.testing.aio import run
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import RunningServer


def wait_for_waiting(served: RunningServer, model: str, at_least: int, timeout_s: float = 20.0) -> None:
    """Until the server's own gauge shows ``at_least`` requests queued for ``model`` (never a sleep)."""
    line = f'lamina:num_requests_waiting{{model="{model}"}} '
    deadline = time.monotonic() + timeout_s
    seen = 0.0
    with served.http("admin") as http:
        while time.monotonic() < deadline:
            for row in http.get("/metrics").text.splitlines():
                if row.startswith(line):
                    seen = float(row.removeprefix(line))
            if seen >= at_least:
                return
    raise AssertionError(f"only {seen:g} requests queued for {model} within {timeout_s:g}s")


async def _hold(q: FairQueue, tenant: str, order: list[str], hold_s: float = 0.01, out: int = 10) -> None:
    ticket = await q.acquire(tenant, 10)
    order.append(tenant)
    await asyncio.sleep(hold_s)
    ticket.release(10, out)


def test_a_flood_does_not_starve_a_modest_tenant() -> None:
    async def main() -> list[str]:
        q = FairQueue("m", capacity=1, max_waiting=100, max_wait_s=60)
        order: list[str] = []
        flood = [asyncio.create_task(_hold(q, "a", order)) for _ in range(10)]
        while len(order) < 2:  # a is backlogged (its first two ran) when b arrives
            await asyncio.sleep(0.001)
        late = [asyncio.create_task(_hold(q, "b", order)) for _ in range(2)]
        await asyncio.gather(*flood, *late)
        return order

    order = run(main())
    # b arrives after a's first two or three ran and is lifted to a's level, not to zero: from then
    # on the two alternate, so both of b's requests run long before a's flood is through
    assert [i for i, t in enumerate(order) if t == "b"][-1] <= 6, order


def test_service_counts_output_twice() -> None:
    async def main() -> dict[str, float]:
        q = FairQueue("m", capacity=1, max_waiting=10, max_wait_s=60)
        t = await q.acquire("a", 100)
        t.release(100, 50)  # 100 in + 2 x 50 out
        return q.counters

    assert run(main())["a"] == pytest.approx(200)


def test_refused_at_once_when_the_wait_would_pass_the_deadline() -> None:
    async def main() -> tuple[Overloaded, float]:
        q = FairQueue("m", capacity=1, max_waiting=100, max_wait_s=60)
        q.service_s = 2.0  # measured: a place is held two seconds
        held: list[Ticket] = [await q.acquire("a", 1)]
        waiters = [asyncio.create_task(q.acquire("a", 1)) for _ in range(3)]
        await asyncio.sleep(0)
        began = time.monotonic()
        with pytest.raises(Overloaded) as info:
            await q.acquire("b", 1, timeout_s=3.0)  # needs ~2 s of queue + 2 s of service
        refused_after = time.monotonic() - began
        for w in waiters:
            w.cancel()
        held[0].release()
        return info.value, refused_after

    error, after = run(main())
    assert error.retry_after >= 2
    answered = from_lamina(error)  # what the client gets
    assert answered.status == 429 and answered.code == "model_busy"
    assert int(answered.headers["Retry-After"]) >= 2
    assert after < 0.1


def test_a_wait_past_the_deadline_is_refused_then_and_leaves_the_queue() -> None:
    async def main() -> tuple[Overloaded, int]:
        q = FairQueue("m", capacity=1, max_waiting=100, max_wait_s=0.2)
        held = await q.acquire("a", 1)  # never measured: no estimate, the timer decides
        with pytest.raises(Overloaded) as info:
            await q.acquire("b", 1)
        waiting = q.waiting
        held.release()
        return info.value, waiting

    error, waiting = run(main())
    assert from_lamina(error).status == 429 and "within" in str(error)
    assert waiting == 0


def test_full_queue_and_cancelled_waiters_free_their_place() -> None:
    async def main() -> tuple[int, int]:
        q = FairQueue("m", capacity=1, max_waiting=1, max_wait_s=60)
        held = await q.acquire("a", 1)
        waiter = asyncio.create_task(q.acquire("a", 1))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await q.acquire("b", 1)  # one waiting already: full
        waiter.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await waiter
        held.release()
        return q.waiting, q.running

    assert run(main()) == (0, 0)


def test_two_tenants_through_the_server(served: RunningServer, stub: StubUpstream) -> None:
    """alice (tenant a) floods a model that runs one request at a time; bob (tenant b) asks once
    and is served before alice's backlog, with his queue time reported in the metrics."""
    stub.set_mode("ok", delay_ms=150)
    body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    finished: list[tuple[str, float]] = []

    def call(who: str) -> None:
        with served.http(who) as http:
            r = http.post("/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 200, r.text
        finished.append((who, time.monotonic()))

    try:
        flood = [threading.Thread(target=call, args=("alice",)) for _ in range(12)]
        for t in flood:
            t.start()
        wait_for_waiting(served, "stub", 6)  # alice is backlogged when bob arrives
        call("bob")
        for t in flood:
            t.join()
    finally:
        stub.set_mode("ok")
    after_bob = [w for w, _ in sorted(finished, key=lambda f: f[1])].index("bob")
    assert after_bob < 10, finished  # FIFO would put bob after all 12 of alice's
    with served.http("admin") as http:
        metrics = http.get("/metrics").text
    assert 'lamina:request_queue_time_seconds_count{model="stub"}' in metrics
    assert 'lamina:num_requests_waiting{model="stub"}' in metrics


def test_client_timeout_header_gets_an_early_429(served: RunningServer, stub: StubUpstream) -> None:
    stub.set_mode("ok", delay_ms=400)
    body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    try:
        with served.http("alice") as http:
            results: list[httpx.Response] = []

            def call() -> None:
                with served.http("alice") as h:
                    results.append(h.post("/v1/chat/completions", json=body, timeout=30))

            for _ in range(2):  # the queue learns how long a place is held (served runs three)
                warm = [threading.Thread(target=call) for _ in range(3)]
                for t in warm:
                    t.start()
                for t in warm:
                    t.join()

            flood = [threading.Thread(target=call) for _ in range(9)]
            for t in flood:
                t.start()
            wait_for_waiting(served, "stub", 6)  # three run, six wait: ~1.2 s ahead of this one
            began = time.monotonic()
            r = http.post("/v1/chat/completions", json=body, headers={"x-request-timeout": "0.5"}, timeout=30)
            took = time.monotonic() - began
            for t in flood:
                t.join()
    finally:
        stub.set_mode("ok")
    assert r.status_code == 429 and r.headers["retry-after"], r.text
    assert r.json()["error"]["code"] == "model_busy"
    assert took < 0.4  # at once, not after the 0.5 s the client would wait
    assert all(x.status_code == 200 for x in results)
