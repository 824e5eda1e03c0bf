"""A real ``lamina serve`` process for benchmarks: its own data dir, config and keys (made with the CLI,
as a user does), run by the same runner as the tests' servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lamina.testing.server import LaminaServer


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
    (data_dir / "lamina.toml").write_text(config)  # the keys below are made under it
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
    server = LaminaServer(data_dir, config=config, startup_timeout_s=120)
    with server:
        assert server.proc is not None
        yield Gateway(server.root, made, server.proc.pid)
