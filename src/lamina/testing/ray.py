"""A real Ray cluster of one node on 127.0.0.1, for tests and benchmarks (lamina[ray]).

The cluster uses Ray's token authentication. Ray reads ``RAY_AUTH_MODE`` once, when it is first
imported, so importing this module sets the token's environment for this process (and the
processes it starts) before anything imports ``ray``: import it first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from lamina.testing.running import Running
from lamina.testing.server import free_port


def _token_env() -> dict[str, str]:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not path:
        path = str(Path(tempfile.mkdtemp(prefix="lamina-ray-")) / "auth_token")
    token = Path(path)
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": path}
    os.environ.update(env)
    return env


TOKEN_ENV = _token_env()


def _ray_cli() -> str:
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


class RayCluster(Running):
    """``ray start --head --block`` in its own process group; stopping the group stops every
    process of the cluster (and only this cluster's, unlike ``ray stop``)."""

    def __init__(self, workdir: Path, *, cpus: int = 2, object_store_mb: int = 256) -> None:
        self.workdir = workdir
        self.cpus = cpus
        self.object_store_mb = object_store_mb
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a driver's environment needs to join (set in this process on import)."""
        return dict(TOKEN_ENV)

    def start(self, timeout_s: float = 90.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Ray's sockets live under its temp dir, and a socket path may not pass 107 bytes
        self._temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        env = {**os.environ, **self.env, "RAY_USAGE_STATS_ENABLED": "0"}
        self._log = (self.workdir / "ray-start.log").open("wb")
        self._proc = subprocess.Popen(
            [
                _ray_cli(),
                "start",
                "--head",
                "--block",
                f"--port={self.port}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={self.cpus}",
                f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={self._temp}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.log()[-2000:]}")
            if b"Ray runtime started" in (self.workdir / "ray-start.log").read_bytes():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ray start did not come up in {timeout_s:g} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self.workdir / "ray-start.log").read_text(errors="replace")

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc = None
        self._log.close()
        shutil.rmtree(self._temp, ignore_errors=True)
