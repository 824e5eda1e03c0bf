"""A llama.cpp server in its own process: the endpoints of a model with several (routing tests and
``lamina bench routing``), each one killable like a real server.

``python -m lamina.testing.llamacpp --threads 1 --parallel 2`` loads the bundled GGUF on llama.cpp's
server engine (xllamacpp) on a free loopback port, with ``/metrics`` on (as ``llama-server
--metrics``), prints that address on one line, and serves until it is killed or its standard input
closes.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

from lamina.testing.running import Running


class LlamaCppServer(Running):
    """``with LlamaCppServer(models_dir) as s: s.base_url``: the OpenAI base URL (``…/v1``)."""

    def __init__(self, models_dir: Path, *, threads: int = 1, parallel: int = 2, context: int = 4096) -> None:
        self.models_dir = models_dir
        self.args = ["--threads", str(threads), "--parallel", str(parallel), "--context", str(context)]
        self.proc: subprocess.Popen[str] | None = None
        self.root = ""

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def start(self) -> Self:
        cmd = [
            sys.executable,
            "-m",
            "lamina.testing.llamacpp",
            "--models-dir",
            str(self.models_dir),
            *self.args,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the llama.cpp server exited {self.proc.wait()} before listening")
        self.root = str(json.loads(line)["address"]).rstrip("/")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.root + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the llama.cpp server did not become healthy")

    def kill(self) -> None:
        """Gone at once, as a crashed server is."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--context", type=int, default=4096)
    args = parser.parse_args()
    from lamina.config.models import DEFAULT_MODEL, builtin_models
    from lamina.models.llamacpp import _engine, resolve_gguf

    path = resolve_gguf(builtin_models()[DEFAULT_MODEL], args.models_dir)
    engine = _engine(path, args.context, args.threads, args.parallel, metrics=True)
    print(json.dumps({"address": str(engine.listening_address)}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdin.read()  # until the parent goes (its end of the pipe closes)


if __name__ == "__main__":
    main()
