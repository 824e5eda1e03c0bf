"""A ``lamina sources sync`` process killed with SIGKILL mid-sync: the next sync ends exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lamina.testing.server import until
from tests.cli_runner import lamina
from tests.serve.test_sources import _folder


def test_a_sync_killed_with_sigkill_reruns_exactly(tmp_path: Path) -> None:
    """A real process killed mid-sync: its lease runs out, the next sync finishes the rest."""
    folder = _folder(tmp_path / "many", 40)
    config = tmp_path / "lamina.toml"
    config.write_text("[ingest]\nbatch_documents = 2\n\n[serve]\nsource_lease_s = 2\n")
    env = {**os.environ, "LAMINA_CONFIG": str(config)}
    lamina("sources", "add", "many", "folder", f"path={folder}", "-c", "kb", env=env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lamina", "sources", "sync", "many", "-c", "kb", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(lambda: _documents(env) >= 4, timeout_s=120, what="a few batches committed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    partial = _documents(env)
    assert 4 <= partial < 40
    time.sleep(2.5)  # the dead sync's lease runs out
    rerun = json.loads(lamina("sources", "sync", "many", "-c", "kb", "--json", env=env).stdout)[0]
    assert rerun["status"] == "completed"
    assert (
        rerun["report"]["unchanged"] >= partial
        and rerun["report"]["ingested"] == 40 - rerun["report"]["unchanged"]
    )
    docs = json.loads(lamina("documents", "-c", "kb", "--json", env=env).stdout)["documents"]
    assert sorted(Path(d["source"]).name for d in docs) == sorted(p.name for p in folder.iterdir())


def _documents(env: dict[str, str]) -> int:
    out = lamina("documents", "-c", "kb", "--json", env=env, check=False)
    return len(json.loads(out.stdout)["documents"]) if out.returncode == 0 else 0
