"""Collections as MCP tools, through the official MCP client: ``/mcp`` on the server (in
process), and ``lamina mcp`` over stdio (remote with a key, local beside the data).

The contract tests run the same checks against each ``CollectionTools`` backend behind the one
tool definition: the server's own (over HTTP), the SDK's (stdio, remote) and the workspace's
(stdio, local). Answers are chosen from the sources by the default model's settings, so they make
no model call and stay cheap.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

import lamina
from lamina.data.collection import Collection
from lamina.testing.server import finished_job, until
from tests.shared import RunningServer, Server

SAMPLES = Path(lamina.__file__).parent / "samples"
QUESTION = "What happens if an ingestion is interrupted?"
TOOLS = {"list_collections", "search", "answer"}
T = TypeVar("T")


class McpSession:
    """An MCP client held open on its own event loop thread, so that sync tests (and module-scoped
    fixtures) share one connection: ``call`` and ``tools`` block until the server answers."""

    def __init__(self, connect: Callable[[], AbstractAsyncContextManager[Client]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._opened: asyncio.Future[Client] = self.loop.create_future()
        self._stop = asyncio.Event()
        self._held = asyncio.run_coroutine_threadsafe(self._hold(connect), self.loop)
        self.client = self._wait(self._opened_result())

    async def _hold(self, connect: Callable[[], AbstractAsyncContextManager[Client]]) -> None:
        try:
            async with connect() as client:
                self._opened.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
            raise

    async def _opened_result(self) -> Client:
        return await self._opened

    def _wait(self, work: Awaitable[T], timeout: float = 300) -> T:
        async def run() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def tools(self) -> set[str]:
        return {t.name for t in self._wait(self.client.list_tools()).tools}

    def call(self, name: str, **arguments: Any) -> CallToolResult:
        return self._wait(self.client.call_tool(name, arguments))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._held.result(60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def over_http(server: Server, key: str) -> Callable[[], AbstractAsyncContextManager[Client]]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            server.async_httpx2_client(headers=headers, timeout=300) as http,
            Client(streamable_http_client(server.root + "/mcp", http_client=http)) as client,
        ):
            yield client

    return connect


def over_stdio(env: dict[str, str], cwd: Path) -> Callable[[], AbstractAsyncContextManager[Client]]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "lamina", "mcp"], env=env, cwd=cwd)
    return lambda: Client(params)


def samples_of(served: RunningServer) -> str:
    """The bundled samples in tenant "a" (alice's), as the local workspace's ``sample`` has them."""
    name = "mcp-samples"
    with served.http("alice") as http:
        assert http.post("/v1/collections", json={"name": name}).status_code == 201
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.is_file()]
        job = http.post(f"/v1/collections/{name}/documents", files=files).json()
        assert finished_job(http, job["id"])["state"] == "completed"
    return name


@pytest.fixture(scope="module")
def collection(served: RunningServer) -> str:
    return samples_of(served)


@pytest.fixture(scope="module")
def process_collection(served_process: RunningServer) -> str:
    return samples_of(served_process)


def _session(connect: Callable[[], AbstractAsyncContextManager[Client]]) -> Iterator[McpSession]:
    session = McpSession(connect)
    yield session
    session.close()


@pytest.fixture(scope="module")
def alice(served: RunningServer, collection: str) -> Iterator[McpSession]:
    yield from _session(over_http(served.server, served.keys["alice"]))


@pytest.fixture(scope="module")
def bob(served: RunningServer) -> Iterator[McpSession]:
    yield from _session(over_http(served.server, served.keys["bob"]))


@pytest.fixture(scope="module")
def remote(served_process: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpSession]:
    """``lamina mcp`` as a process of its own, a client of a real server's API."""
    env = {"LAMINA_API_KEY": served_process.keys["alice"], "LAMINA_BASE_URL": served_process.root}
    yield from _session(over_stdio(env, tmp_path_factory.mktemp("mcp-remote")))


@pytest.fixture(scope="module")
def local(sample_collection: Collection, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpSession]:
    env = {"LAMINA_DATA_DIR": str(sample_collection.workspace.settings.data_dir)}
    yield from _session(over_stdio(env, tmp_path_factory.mktemp("mcp-local")))


@pytest.fixture(
    params=[
        "server",
        pytest.param("remote", marks=pytest.mark.system),
        pytest.param("local", marks=pytest.mark.system),
    ]
)
def backend(request: pytest.FixtureRequest) -> tuple[McpSession, str]:
    """Each backend's session and the samples collection it sees (``lamina mcp`` runs as a process:
    a system test)."""
    if request.param == "server":
        return request.getfixturevalue("alice"), request.getfixturevalue("collection")
    if request.param == "remote":
        return request.getfixturevalue("remote"), request.getfixturevalue("process_collection")
    return request.getfixturevalue("local"), request.getfixturevalue("sample_collection").name


def _data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


# the contract, against each backend ----------------------------------------------------------------
def test_the_three_tools(backend: tuple[McpSession, str]) -> None:
    session, _ = backend
    assert session.tools() == TOOLS


def test_list_collections(backend: tuple[McpSession, str]) -> None:
    session, name = backend
    listed = {c["name"]: c for c in _data(session.call("list_collections"))["collections"]}
    assert name in listed
    assert listed[name]["documents"] >= 3 and listed[name]["chunks"] >= listed[name]["documents"]


def test_search_gives_passages_with_source_page_and_score(backend: tuple[McpSession, str]) -> None:
    session, name = backend
    passages = _data(session.call("search", collection=name, query="interrupted ingestion", k=3))["passages"]
    assert 1 <= len(passages) <= 3
    for p in passages:
        assert {"source", "title", "page", "score", "text"} <= set(p)  # page: None but in a PDF
        assert p["text"] and isinstance(p["score"], float)
        assert Path(p["source"]).name in {f.name for f in SAMPLES.iterdir()}
    scores = [p["score"] for p in passages]
    assert scores == sorted(scores, reverse=True)


def test_answer_cites_its_sources(backend: tuple[McpSession, str]) -> None:
    session, name = backend
    found = _data(session.call("answer", collection=name, question=QUESTION))
    assert "run the same `lamina ingest` command again" in found["answer"]
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", found["answer"])}
    assert cited and found["grounded"] is True
    sources = {s["n"]: s for s in found["sources"]}
    assert cited <= set(sources)
    for s in sources.values():
        assert {"n", "source", "title", "page", "url"} <= set(s)
        assert Path(s["source"]).name in {f.name for f in SAMPLES.iterdir()}
        assert s["url"]


def test_unknown_collection_is_a_tool_error(backend: tuple[McpSession, str]) -> None:
    session, _ = backend
    for tool, args in (("search", {"query": "refunds"}), ("answer", {"question": "refunds?"})):
        result = session.call(tool, collection="no-such-collection", **args)
        assert result.is_error and "'no-such-collection' does not exist" in _text(result)


def test_inputs_are_validated(backend: tuple[McpSession, str]) -> None:
    session, name = backend
    for args in (
        {"collection": name, "query": "x", "k": 0},
        {"collection": name, "query": "x", "k": 51},
        {"collection": name, "query": "   "},
        {"collection": "", "query": "x"},
    ):
        assert session.call("search", **args).is_error, args
    assert session.call("answer", collection=name, question="").is_error


# the HTTP endpoint ---------------------------------------------------------------------------------
def test_mcp_needs_a_good_key(served: RunningServer) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer lam_not-a-key"}, {"x-api-key": "lam_not-a-key"}):
        r = served.http(None).post("/mcp", json=initialize, headers=accept | headers)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
    ok = served.http(None).post("/mcp", json=initialize, headers=accept | {"x-api-key": served.keys["bob"]})
    assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "lamina"


def test_another_tenants_collection_is_invisible(alice: McpSession, bob: McpSession, collection: str) -> None:
    assert any(c["name"] == collection for c in _data(alice.call("list_collections"))["collections"])
    seen = _data(bob.call("list_collections"))["collections"]
    assert collection not in {c["name"] for c in seen} and {c["tenant"] for c in seen} <= {"b"}
    for tool, args in (("search", {"query": "ingest"}), ("answer", {"question": QUESTION})):
        result = bob.call(tool, collection=collection, **args)
        assert result.is_error and f"{collection!r} does not exist" in _text(result)


def test_a_tool_call_is_in_the_request_log(served: RunningServer, alice: McpSession, collection: str) -> None:
    assert _data(alice.call("search", collection=collection, query="citations", k=1))["passages"]
    with served.http("admin") as admin:

        def logged() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = admin.get("/v1/logs", params={"limit": 100}).json()["data"]
            return [r for r in rows if r["route"] == "/mcp" and r["tool_names"] == "search"]

        mine = until(logged, 10, what="the MCP search in the request log")
    assert mine[0]["key_name"] == "alice" and mine[0]["tenant"] == "a" and mine[0]["status"] == 200


def test_budgets_apply_to_answer(served: RunningServer, collection: str) -> None:
    """``answer`` is admitted like any generation: a key's rate limit refuses it, as a tool error."""
    with served.http("admin") as admin:
        created = admin.post("/v1/keys", json={"name": "mcp-one-rpm", "tenant": "a", "limits": {"rpm": 1}})
        assert created.status_code == 201, created.text
    session = McpSession(over_http(served.server, created.json()["key"]))
    try:
        assert not session.call("answer", collection=collection, question=QUESTION).is_error
        refused = session.call("answer", collection=collection, question=QUESTION)
        assert refused.is_error and "limit of 1 requests per" in _text(refused)
    finally:
        session.close()
