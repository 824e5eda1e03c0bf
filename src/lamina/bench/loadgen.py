"""The gateway benchmark's load generator, run in its own process so it is never the measured one.

asyncio on uvloop, with the clients of ``lamina.bench.pools`` (``raw`` by default: a generator that
saturates its core turns its own queueing into "latency"; ``httpx`` is the cross-check).

The parent talks to the worker (``python -m lamina.bench.loadgen``) in JSON lines over stdin and
stdout: one command in, one result out. Every result carries per-request times in ms, measured
from when the request was *due*: in the open loop that is its slot in the schedule, so queueing
(in the generator, the network or the server) counts as latency, as a client would feel it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from types import TracebackType
from typing import Any

from lamina.bench.pools import HttpxPool, Pool, RawPool, RequestFailed, Target

Sample = tuple[float, float, float, float, str | None]  # due, sent, first token, done, error


async def _timed(pool: Pool, due: float, stream: bool, timeout_s: float) -> Sample:
    try:
        async with asyncio.timeout(timeout_s):
            sent, first = await pool.request(stream)
    except TimeoutError:
        return due, due, due, time.perf_counter(), "timeout"
    except Exception as exc:  # refused, reset, HTTP 5xx, ...: counted, never fatal to the run
        return due, due, due, time.perf_counter(), str(exc) if isinstance(exc, RequestFailed) else repr(exc)
    return due, sent, first, time.perf_counter(), None


def _summary(samples: list[Sample], seconds: float) -> dict[str, Any]:
    """Per-request times in ms from the due time; failed requests only in ``errors``."""
    ok = [s for s in samples if s[4] is None]
    return {
        "count": len(samples),
        "ok": len(ok),
        "errors": dict(Counter(s[4] for s in samples if s[4] is not None)),
        "seconds": seconds,
        "latency_ms": [round((s[3] - s[0]) * 1000, 4) for s in ok],
        "ttft_ms": [round((s[2] - s[0]) * 1000, 4) for s in ok],
        "send_lag_ms": [round((s[1] - s[0]) * 1000, 4) for s in ok],
    }


class Worker:
    """The generator's side: one pool per target, kept (and kept warm) across commands."""

    def __init__(self, client: str, max_connections: int, timeout_s: float) -> None:
        self.client, self.max_connections, self.timeout_s = client, max_connections, timeout_s
        self._pools: dict[Target, Pool] = {}

    def pool(self, target: Target) -> Pool:
        if target not in self._pools:
            cls = RawPool if self.client == "raw" else HttpxPool
            self._pools[target] = cls(target, self.max_connections)
        return self._pools[target]

    async def sequential(
        self, targets: list[Target], n: int, stream: bool = False, warmup: int = 10
    ) -> dict[str, Any]:
        """Concurrency 1, targets alternated A B B A so drift and ordering cancel out."""
        samples: dict[str, list[Sample]] = {t.name: [] for t in targets}
        started = time.perf_counter()
        for i in range(warmup + n):
            for target in targets if i % 2 == 0 else targets[::-1]:
                sample = await _timed(self.pool(target), time.perf_counter(), stream, self.timeout_s)
                if i >= warmup:
                    samples[target.name].append(sample)
        seconds = time.perf_counter() - started
        return {name: _summary(s, seconds) for name, s in samples.items()}

    async def open_loop(
        self,
        targets: list[Target],
        rate: float,
        duration_s: float,
        block_s: float = 1.0,
        warmup_s: float = 0.5,
        stream: bool = False,
    ) -> dict[str, Any]:
        """Each target at ``rate`` on a fixed schedule, in alternating blocks (A B B A ...)."""
        for target in targets:  # fill the connection pools at this rate; not measured
            await self._schedule(self.pool(target), rate, warmup_s, stream)
        blocks = max(1, round(duration_s / block_s))
        samples: dict[str, list[Sample]] = {t.name: [] for t in targets}
        seconds = dict.fromkeys(samples, 0.0)
        for b in range(blocks):
            for target in targets if b % 2 == 0 else targets[::-1]:
                span = duration_s / blocks
                samples[target.name] += await self._schedule(self.pool(target), rate, span, stream)
                seconds[target.name] += span
        return {name: _summary(s, seconds[name]) for name, s in samples.items()}

    async def closed_loop(
        self, targets: list[Target], concurrency: int, duration_s: float, warmup_s: float = 0.5
    ) -> dict[str, Any]:
        """``concurrency`` clients, each sending its next request when the last came back, spread over
        the targets round-robin (replicas behind a balancer): the throughput they sustain."""
        samples: dict[str, list[Sample]] = {t.name: [] for t in targets}

        async def client(target: Target, until: float, keep: bool) -> None:
            pool = self.pool(target)
            while time.perf_counter() < until:
                sample = await _timed(pool, time.perf_counter(), False, self.timeout_s)
                if keep:
                    samples[target.name].append(sample)

        for seconds, keep in ((warmup_s, False), (duration_s, True)):
            until = time.perf_counter() + seconds
            await asyncio.gather(
                *(client(targets[i % len(targets)], until, keep) for i in range(concurrency))
            )
        return {name: _summary(s, duration_s) for name, s in samples.items()}

    async def _schedule(self, pool: Pool, rate: float, seconds: float, stream: bool) -> list[Sample]:
        """Send on schedule whether or not earlier requests came back; wait for all of them."""
        interval, count = 1.0 / rate, max(1, round(rate * seconds))
        loop = asyncio.get_running_loop()
        start = time.perf_counter() + 0.002
        tasks = []
        for i in range(count):
            due = start + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(loop.create_task(_timed(pool, due, stream, self.timeout_s)))
        return list(await asyncio.gather(*tasks))

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """``{"op": "sequential" | "open_loop" | "closed_loop", "targets": [...], **its arguments}``."""
        params = dict(command)
        op, targets = params.pop("op"), [Target(**t) for t in params.pop("targets")]
        if op not in ("sequential", "open_loop", "closed_loop"):
            raise ValueError(f"unknown op {op!r}")
        cpu, wall = time.process_time(), time.perf_counter()
        gc.collect()
        gc.disable()  # a collection mid-run would be the generator's pause, charged to a target
        try:
            result = await getattr(self, op)(targets, **params)
        finally:
            gc.enable()
        wall = time.perf_counter() - wall
        return {"targets": result, "cpu_s": time.process_time() - cpu, "wall_s": wall}

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


class LoadGenerator:
    """The parent's handle on a worker process: ``with LoadGenerator() as gen: gen.sequential(...)``."""

    def __init__(self, client: str = "raw", max_connections: int = 256, timeout_s: float = 10.0) -> None:
        if client not in ("raw", "httpx"):
            raise ValueError(f"client is 'raw' or 'httpx', not {client!r}")
        self.client, self.max_connections, self.timeout_s = client, max_connections, timeout_s
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LoadGenerator:
        args = [sys.executable, "-m", "lamina.bench.loadgen", "--client", self.client]
        args += ["--max-connections", str(self.max_connections), "--timeout-s", str(self.timeout_s)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout, "not started"
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited (status {self._proc.poll()})")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"the load generator failed: {result['error']}")
        return result

    def sequential(self, targets: Sequence[Target], n: int, **params: Any) -> dict[str, Any]:
        """Concurrency 1, targets alternated; ``params``: stream, warmup (see Worker.sequential)."""
        return self.call({"op": "sequential", "targets": [asdict(t) for t in targets], "n": n, **params})

    def open_loop(
        self, targets: Sequence[Target], rate: float, duration_s: float, **params: Any
    ) -> dict[str, Any]:
        """Open loop at ``rate``; ``params``: block_s, warmup_s, stream (see Worker.open_loop)."""
        command = {"op": "open_loop", "targets": [asdict(t) for t in targets], **params}
        return self.call({**command, "rate": rate, "duration_s": duration_s})

    def closed_loop(self, targets: Sequence[Target], concurrency: int, duration_s: float) -> dict[str, Any]:
        """``concurrency`` clients in a closed loop over ``targets`` (see Worker.closed_loop)."""
        command = {"op": "closed_loop", "targets": [asdict(t) for t in targets]}
        return self.call({**command, "concurrency": concurrency, "duration_s": duration_s})

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()  # end of input: the worker closes its pools and exits
            self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None


def main(argv: list[str] | None = None) -> None:
    """The worker: commands from stdin, results to stdout, until stdin closes."""
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m lamina.bench.loadgen", description=__doc__)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # open-loop runs hold many sockets
    worker = Worker(args.client, args.max_connections, args.timeout_s)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for line in sys.stdin:
            try:
                result = runner.run(worker.handle(json.loads(line)))
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        runner.run(worker.aclose())


if __name__ == "__main__":
    main()
