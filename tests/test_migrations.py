"""Schema migrations: legacy data dirs upgrade in place, fresh ones match them, reopening is free."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lamina import sqlmigrate
from lamina.config import Settings, load_settings
from lamina.data import registry_schema
from lamina.data.collection import Workspace
from lamina.data.registry import Registry
from lamina.serve import db
from lamina.serve.policy.keys import KeyStore
from lamina.testing.server import until
from lamina.ui import store as ui_schema
from lamina.ui.store import ConversationStore


def _load_fixture() -> ModuleType:
    path = Path(__file__).parent / "fixtures" / "make_legacy_datadir.py"
    spec = importlib.util.spec_from_file_location("make_legacy_datadir", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


legacy = _load_fixture()

# (module holding metadata / MIGRATIONS / VERSION_TABLE, which database file)
SCHEMAS: list[tuple[ModuleType, str]] = [
    (registry_schema, "registry.db"),
    (db, "gateway.db"),
    (ui_schema, "gateway.db"),
]


def _settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir)


def _open_all(settings: Settings) -> sa.Engine:
    """Open every database the way the code does; return the server's engine."""
    Registry(settings.registry_url).close()
    engine = db.connect(settings.gateway_url)
    ConversationStore(engine)
    return engine


def _url(data_dir: Path, name: str) -> str:
    return f"sqlite:///{data_dir / name}"


def _versions(data_dir: Path) -> dict[str, tuple[str, ...]]:
    found = {}
    for module, name in SCHEMAS:
        engine = sa.create_engine(_url(data_dir, name))
        with engine.connect() as conn:
            found[module.VERSION_TABLE] = sqlmigrate.current(conn, module.VERSION_TABLE)
        engine.dispose()
    return found


def _heads() -> dict[str, tuple[str, ...]]:
    return {module.VERSION_TABLE: sqlmigrate.heads(str(module.MIGRATIONS)) for module, _ in SCHEMAS}


def _schema(url: str) -> dict[str, Any]:
    """Tables, their columns (name, type, nullability), primary keys, indexes and foreign keys."""
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        shape[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            "fks": [
                (tuple(f["constrained_columns"]), f["referred_table"], f.get("options", {}))
                for f in inspector.get_foreign_keys(table)
            ],
        }
    engine.dispose()
    return shape


def test_a_legacy_data_dir_opens_and_upgrades_in_place(tmp_path: Path) -> None:
    data_dir = legacy.make_legacy_datadir(tmp_path / "data")
    assert all(not v for v in _versions(data_dir).values())  # the release had no version tables
    settings = _settings(data_dir)

    ws = Workspace(settings)
    (kb,) = ws.collections()
    assert (kb.name, kb.documents, kb.chunks, kb.dim) == ("kb", 1, 3, 384)
    assert kb.embedding_model == "all-MiniLM-L6-v2/onnx-fp32"  # the old name's rename still happens
    assert kb.last_run is not None and kb.last_run["stats"] == {"ingested": 1}
    (doc,) = ws.registry.documents("kb").values()
    assert doc.doc_id == "d_refunds" and doc.pipeline == "all-MiniLM-L6-v2/onnx-fp32|chunk"
    ws.registry.close()

    engine = db.connect(settings.gateway_url)
    principal = KeyStore(engine).verify(legacy.LEGACY_KEY)
    assert principal is not None
    with engine.connect() as conn:
        assert conn.execute(sa.select(db.jobs.c.id)).scalars().all() == ["j_legacy"]
        assert conn.execute(sa.select(db.counters.c.used)).scalar_one() == 0.25
        assert conn.execute(sa.select(db.request_log.c.request_id)).scalars().all() == ["req_legacy"]
    conversations = ConversationStore(engine)
    (conv,) = conversations.recent("alice")
    assert conv.id == "c_legacy"
    assert [t.answer for t in conversations.turns(conv.id)] == ["Within 30 days."]
    engine.dispose()

    assert _versions(data_dir) == _heads()


def test_a_fresh_data_dir_gets_the_same_schema_as_an_upgraded_one(tmp_path: Path) -> None:
    old = legacy.make_legacy_datadir(tmp_path / "old")
    _open_all(_settings(old)).dispose()
    new = tmp_path / "new"
    _open_all(_settings(new)).dispose()
    assert _versions(new) == _heads()
    for name in ("registry.db", "gateway.db"):
        assert _schema(_url(new, name)) == _schema(_url(old, name)), name


@pytest.mark.parametrize("kind", ["fresh", "legacy"])
def test_the_migrated_schema_is_the_code_s_metadata(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / "data"
    if kind == "legacy":
        legacy.make_legacy_datadir(data_dir)
    _open_all(_settings(data_dir)).dispose()
    for module, name in SCHEMAS:
        tables = set(module.metadata.tables)
        engine = sa.create_engine(_url(data_dir, name))
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": module.VERSION_TABLE,
                    "compare_type": True,
                    # a shared database holds other schemas' tables: compare this schema's only
                    "include_name": lambda n, type_, _parent, tables=tables: type_ != "table" or n in tables,
                },
            )
            assert compare_metadata(context, module.metadata) == [], module.__name__
        engine.dispose()


def test_opening_again_is_a_noop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = legacy.make_legacy_datadir(tmp_path / "data")
    settings = _settings(data_dir)
    _open_all(settings).dispose()
    before = {name: _schema(_url(data_dir, name)) for name in ("registry.db", "gateway.db")}

    def no_lock(*_args: object) -> None:
        raise AssertionError("an up-to-date database was locked for migration")

    monkeypatch.setattr(sqlmigrate, "_locked", no_lock)
    writes: list[str] = []
    engine = db.open_database(settings.gateway_url)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SELECT", "PRAGMA")):
            writes.append(statement)

    db.migrate(engine)
    ConversationStore(engine)
    engine.dispose()
    Registry(settings.registry_url).close()
    _open_all(settings).dispose()
    assert writes == []
    assert {name: _schema(_url(data_dir, name)) for name in ("registry.db", "gateway.db")} == before
    assert _versions(data_dir) == _heads()


def test_a_partly_made_legacy_database_is_completed(tmp_path: Path) -> None:
    """A server database from before the UI (or the budget counters) existed gets the missing tables."""
    data_dir = legacy.make_legacy_datadir(tmp_path / "data")
    with sa.create_engine(_url(data_dir, "gateway.db")).begin() as conn:
        for table in ("ui_turns", "ui_conversations", "counters"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
    engine = _open_all(_settings(data_dir))
    assert {"counters", "ui_turns", "ui_conversations", "api_keys"} <= set(
        sa.inspect(engine).get_table_names()
    )
    assert KeyStore(engine).verify(legacy.LEGACY_KEY) is not None
    engine.dispose()
    assert _versions(data_dir) == _heads()


OPEN_ALL = """
import sys, time
from pathlib import Path
from lamina.data.registry import Registry
from lamina.serve import db
from lamina.ui.store import ConversationStore
data, go = sys.argv[1], Path(sys.argv[2])
Path(sys.argv[3]).touch()  # imported
while not go.exists():  # all imported: start together
    time.sleep(0.002)
Registry(f"sqlite:///{data}/registry.db").close()
ConversationStore(db.connect(f"sqlite:///{data}/gateway.db"))
"""


@pytest.mark.system  # processes of their own
@pytest.mark.parametrize("make", [lambda p: p, legacy.make_legacy_datadir], ids=["fresh", "legacy"])
def test_processes_opening_at_once_all_succeed(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make(data_dir)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_ALL, str(data_dir), str(go), str(flag)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    until(  # all imported (or one failed: its error shows below)
        lambda: all(flag.exists() for flag in ready) or any(p.poll() is not None for p in procs),
        timeout_s=120,
        what="the processes to import",
    )
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert _versions(data_dir) == _heads()
    assert set(_schema(_url(data_dir, "gateway.db"))) >= {"api_keys", "ui_turns", db.VERSION_TABLE}


def test_opening_a_fresh_file_another_connection_is_migrating_waits_for_it(tmp_path: Path) -> None:
    """The race behind a rare failure of the test above: a migration's ``BEGIN IMMEDIATE`` connection
    holds the write lock on a file not yet in WAL, and a second process's connection asks for WAL.
    SQLite refuses that at once ("database is locked"); opening must wait for the lock instead."""
    path = tmp_path / "fresh.db"
    migrating = sqlite3.connect(path, isolation_level=None)
    migrating.execute("BEGIN IMMEDIATE")
    migrating.execute("CREATE TABLE t (i INTEGER)")
    modes: list[str] = []

    def open_it() -> None:
        engine = registry_schema.open_database(f"sqlite:///{path}")
        with engine.connect() as conn:
            modes.append(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())
        engine.dispose()

    opener = threading.Thread(target=open_it)
    opener.start()
    time.sleep(0.3)
    assert opener.is_alive()  # waiting, not failed
    migrating.execute("COMMIT")
    migrating.close()
    opener.join(timeout=30)
    assert modes == ["wal"]
