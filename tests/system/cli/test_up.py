"""``lamina up`` in a subprocess: samples ingested, a key and sign-in link, snippets that work as printed,
Ctrl-C stops cleanly, and a second start re-ingests nothing."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai.resources.chat.completions as chat_completions
import pytest

import lamina
from lamina.client import Lamina
from lamina.serve.http.app import SESSION_COOKIE
from lamina.testing.server import LaminaServer
from tests.cli_runner import lamina as lamina_command

SAMPLE_NAMES = {p.name for p in (Path(lamina.__file__).parent / "samples").iterdir() if p.is_file()}
SHORT = 32  # the local model is slow on a small CPU: short answers


def _start(server: LaminaServer, *args: str) -> int:
    """Run ``lamina up`` with the harness's data dir, config, models and port; returns the log offset."""
    offset = server.log_path.stat().st_size if server.log_path.exists() else 0
    cmd = [sys.executable, "-m", "lamina", "up", "--port", str(server.port), *args]
    with server.log_path.open("ab") as log:
        server.proc = subprocess.Popen(
            cmd, env=server.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return offset


def _wait_for(server: LaminaServer, offset: int, done: Callable[[str], bool], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = server.log()[offset:]
        assert server.proc is not None
        if server.proc.poll() is not None:
            raise AssertionError(f"lamina up exited {server.proc.returncode}:\n{out[-3000:]}")
        if done(out):
            return out
        time.sleep(0.2)
    raise AssertionError(f"lamina up did not get there:\n{server.log()[offset:][-3000:]}")


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _curl_request(out: str, key: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and JSON body of the printed curl command, as a shell would run it."""
    start = out.index("curl -s ")
    lines = []
    for line in out[start:].splitlines():
        lines.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    argv = shlex.split(" ".join(lines).replace("$LAMINA_API_KEY", key))
    assert argv[:2] == ["curl", "-s"]
    url, headers, body = argv[2], {}, None
    for flag, value in zip(argv[3::2], argv[4::2], strict=True):
        if flag == "-H":
            name, _, val = value.partition(": ")
            headers[name] = val
        else:
            assert flag == "-d"
            body = json.loads(value)
    assert body is not None
    return url, headers, body


@pytest.fixture(scope="module")
def up_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> LaminaServer:
    return LaminaServer(tmp_path_factory.mktemp("up"), models_dir)


def test_first_start(up_server: LaminaServer, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    server = up_server
    offset = _start(server)
    try:
        out = _wait_for(server, offset, lambda out: "Stop with Ctrl-C" in out)
        deadline = time.monotonic() + 180
        while _status(server.root + "/ready") != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _status(server.root + "/ready") == 200
        assert "4 ingested, 0 unchanged" in out
        login = re.search(r"Sign in: (http://\S+/login\?key=(lam_\S+))", out)
        assert login is not None, out
        url, key = login.groups()
        assert f"export LAMINA_API_KEY={key}" in out
        signed_in = httpx.get(url, follow_redirects=False)  # the web UI keeps the key in a cookie
        assert signed_in.status_code in (200, 303) and SESSION_COOKIE in signed_in.cookies

        with Lamina(server.root, key) as client:
            samples = next(c for c in client.collections.list() if c.name == "samples")
            assert samples.documents == len(SAMPLE_NAMES) == 4
            assert {Path(d.source).name for d in client.documents.list("samples")} == SAMPLE_NAMES

        chat_url, headers, body = _curl_request(out, key)
        assert chat_url == f"{server.root}/v1/chat/completions" and body["model"] == "rag:samples"
        r = httpx.post(chat_url, headers=headers, json=body | {"max_tokens": SHORT}, timeout=120)
        assert r.status_code == 200, r.text
        message = r.json()["choices"][0]["message"]
        assert message["content"] and message["citations"]
        assert all(f"[{c['n']}]" in message["content"] for c in message["citations"])
        assert "run the same `lamina ingest` command again" in message["content"]  # the showcase, right
        assert message["citations"][0]["source"].endswith("ingestion-faq.html")

        python = out.split("# Python (pip install openai):\n", 1)[1].split("\nStop with Ctrl-C", 1)[0]
        original = chat_completions.Completions.create

        def short(self: Any, *args: Any, **kwargs: Any) -> Any:
            return original(self, *args, **(kwargs | {"max_tokens": SHORT}))

        monkeypatch.setattr(chat_completions.Completions, "create", short)
        monkeypatch.setenv("LAMINA_API_KEY", key)
        capsys.readouterr()
        exec(compile(python, "printed-snippet", "exec"), {})
        printed = capsys.readouterr().out
        assert re.search(r"^\[\d+\] \S+", printed, re.MULTILINE), printed  # the answer's citations
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 0, server.log()[offset:][-3000:]
    assert "stopped" in server.log()[offset:]


def test_second_start_ingests_nothing_and_shows_no_key(up_server: LaminaServer) -> None:
    server = up_server
    offset = _start(server, "--json")
    try:
        out = _wait_for(server, offset, lambda out: "Stop with Ctrl-C" in out)
        info = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
        assert info["key"] is None and info["login_url"] is None and info["documents"] == 4
        assert info["ingest"]["unchanged"] == 4 and info["ingest"]["ingested"] == 0
        assert info["ingest"]["tokens_embedded"] == 0 and info["url"] == server.root
        assert "Sign in:" not in out and "lamina keys create NAME --admin" in out
        assert info["curl"] in out and "rag:samples" in info["python"]
        _wait_for(server, offset, lambda _: _status(server.root + "/health") == 200)
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 0, server.log()[offset:][-3000:]


def test_help() -> None:
    out = lamina_command("up", "--help").stdout
    for option in ("--host", "--port", "--collection", "--no-ingest", "--json"):
        assert option in out
