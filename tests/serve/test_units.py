"""Server parts that need no running model: the 500 path, key CLI, name sanitising, bind checks."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lamina.cli.app import app as cli
from lamina.config import Settings
from lamina.errors import ConfigError
from lamina.serve.errors import APIError
from lamina.serve.http.app import build_app
from lamina.serve.http.server import is_loopback, serve
from lamina.serve.jobs.uploads import safe_name
from lamina.serve.policy.keys import KeyStore
from lamina.serve.state import ServerState


def test_a_bug_is_a_500_with_only_the_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    state = ServerState.build(settings)
    app = build_app(state)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing is loaded
    with caplog.at_level(logging.ERROR, logger="lamina.serve"):
        resp = client.get("/v1/boom")
    assert resp.status_code == 500
    error = resp.json()["error"]
    request_id = resp.headers["x-request-id"]
    assert error["type"] == "server_error" and request_id in error["message"]
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert request_id in caplog.text and "secret internals" in caplog.text


def test_unknown_route_is_openai_shaped(settings: Settings) -> None:
    resp = TestClient(build_app(ServerState.build(settings))).get("/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../x.txt", "x.txt"),
        ("..\\..\\win.pdf", "win.pdf"),
        ("a b(1).pdf", "a b(1).pdf"),
        ("é\x00\n.md", "é.md"),
    ],
)
def test_upload_names_cannot_leave_their_folder(name: str, safe: str) -> None:
    assert safe_name(name) == safe


@pytest.mark.parametrize("name", ["..", "/", "...", "\x00"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(APIError) as info:
        safe_name(name)
    assert info.value.status == 400


def test_no_auth_only_on_loopback(settings: Settings) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match="loopback"):
        serve(settings, host="0.0.0.0", port=0, auth=False)


def test_keys_cli_create_list_revoke(settings: Settings) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "ci", "--tenant", "acme", "--json"])
    assert created.exit_code == 0, created.output
    data = json.loads(created.stdout)
    assert (
        set(data) == {"name", "key", "tenant"} and data["tenant"] == "acme" and data["key"].startswith("lam_")
    )
    listed = runner.invoke(cli, ["keys", "list", "--json"])
    assert data["key"] not in listed.stdout and json.loads(listed.stdout)[0]["name"] == "ci"
    assert runner.invoke(cli, ["keys", "create", "ci"]).exit_code == 1  # names are unique
    assert runner.invoke(cli, ["keys", "revoke", "ci"]).exit_code == 0
    assert runner.invoke(cli, ["keys", "revoke", "ci"]).exit_code == 1
    assert json.loads(runner.invoke(cli, ["logs", "--json"]).stdout) == []


def test_first_start_makes_one_admin_key(settings: Settings) -> None:
    from lamina.serve import db
    from lamina.serve.http.server import first_admin_key

    store = KeyStore(db.connect(settings.gateway_url))
    key = first_admin_key(store)
    assert key is not None and store.verify(key) is not None and store.verify(key).admin  # type: ignore[union-attr]
    assert first_admin_key(store) is None
