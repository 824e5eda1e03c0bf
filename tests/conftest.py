"""The suite's layout and scheduling: where the shared data is, which tests are system tests, how
pytest-xdist spreads files over the cores. The fixtures are in ``tests/shared.py``, loaded wherever
tests run: not in pytest-xdist's controller, which runs none, and so starts its workers seconds
sooner (the fixtures import the whole stack)."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(
    os.environ.get("LAMINA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
DOCS = SHARED_DATA / "docs"
SCIFACT = SHARED_DATA / "scifact"


TESTS = Path(__file__).parent
SYSTEM = TESTS / "system"
# What makes a test a system test besides living in tests/system: a fixture that starts a process
# of its own, or a backend parameter that is one (the contract suites run against those too):
# Postgres, Redis, moto's S3 server, Debian's tesseract (a process per page).
BROWSER = SYSTEM / "ui"  # the tests that drive Chromium
SYSTEM_FIXTURES = {"postgres_url", "redis_url", "served_process", "page", "browser", "context"}
SYSTEM_BACKENDS = {"postgres", "pgvector", "redis", "s3", "tesseract"}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make check``), each worker on a core of its own: its ONNX Runtime and
    llama.cpp threads follow its affinity (``lamina.cpu``), so two workers never fight over a core.
    The fixtures (``tests/shared.py``) are loaded wherever tests run, not in the xdist controller."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker or not getattr(config.option, "numprocesses", None):  # not the controller: tests run here
        config.pluginmanager.import_plugin("tests.shared")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    system_only = config.getoption("markexpr") == "system"  # their processes use any core
    if worker.startswith("gw") and 1 < workers <= len(cores) and not system_only:
        os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (every module, every test item) lives until the run ends: frozen
    out of the cyclic GC's sight, so its full collections stop walking it again and again."""
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The same at exit, where Python's last collection would walk the whole heap (seconds, in a
    worker that loaded models and built servers)."""
    gc.freeze()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``-m "not system"`` never imports the system tests' modules (Ray, Playwright, ...)."""
    if config.getoption("markexpr") == "not system" and (
        collection_path == SYSTEM or SYSTEM in collection_path.parents
    ):
        return True
    return None


# Files that share an expensive session fixture run on one xdist worker (the SciFact sample's
# collection takes ~25 s of one core to embed, the bundled samples' a few); every other file is a
# unit of its own.
SHARED_FIXTURE_GROUPS = {
    "tests/data/test_search.py": "scifact",
    "tests/data/test_search_levers.py": "scifact",
    "tests/rag/test_rag.py": "samples",
    "tests/rag/test_answers.py": "samples",
}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: pytest -p no:xdist runs without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that the files of one group go to the same worker."""
    from xdist.scheduler import LoadScopeScheduling

    browser = str(BROWSER.relative_to(TESTS.parent)) + "/"

    class ByFile(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_FIXTURE_GROUPS.get(path, path)

        def schedule(self) -> None:
            """Largest files first, unless the browser tests are in the run: then the
            collection's order, where they come last."""
            collected = next(iter(self.registered_collections.values()), [])
            if any(nodeid.startswith(browser) for nodeid in collected):
                self.config.option.loadscopereorder = False
            super().schedule()

    return ByFile(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the system tests: ``pytest -m "not system"`` (``make check``) runs the rest, in process."""
    # the browser tests last: Playwright's sync API keeps an event loop running on the main thread
    # until the session ends, and an asyncio.run() after it would fail (xdist keeps this order)
    items.sort(key=lambda item: BROWSER in item.path.parents)
    for item in items:
        callspec = getattr(item, "callspec", None)
        backends = {str(v) for v in callspec.params.values()} if callspec else set()
        fixtures = set(getattr(item, "fixturenames", ()))
        if SYSTEM in item.path.parents or fixtures & SYSTEM_FIXTURES or backends & SYSTEM_BACKENDS:
            item.add_marker(pytest.mark.system)
