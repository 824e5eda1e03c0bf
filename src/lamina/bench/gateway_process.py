"""A real ``lamina serve`` process for benchmarks: its own data dir, config and keys, on a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Gateway:
    root: str
    keys: dict[str, str]
    pid: int

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def lamina_gateway(data_dir: Path, config: str, keys: dict[str, list[str]]) -> Iterator[Gateway]:
    """``lamina serve`` on a free port with ``config`` as lamina.toml and keys made by the CLI
    (``keys``: name -> extra ``lamina keys create`` options)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "lamina.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    env.update(LAMINA_DATA_DIR=str(data_dir), LAMINA_CONFIG=str(data_dir / "lamina.toml"))
    lamina = [sys.executable, "-m", "lamina"]
    made: dict[str, str] = {}
    for name, options in keys.items():
        out = subprocess.run(
            [*lamina, "keys", "create", name, "--json", *options], env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"lamina keys create failed: {(out.stderr or out.stdout).strip()}")
        made[name] = json.JSONDecoder().raw_decode(out.stdout[out.stdout.index("{") :])[0]["key"]
    port = _free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*lamina, "serve", "--port", str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            _wait_for_http(f"http://127.0.0.1:{port}/health", proc, 120, log)
            yield Gateway(f"http://127.0.0.1:{port}", made, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Up once it answers HTTP at all (any status under 500); fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"lamina serve exited ({proc.returncode}): {' | '.join(tail)}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"lamina serve did not answer {url} within {timeout_s:g}s")
