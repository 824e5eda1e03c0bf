"""Build a data directory exactly as the release before migrations left it (for tests/test_migrations.py).

The DDL is what that release's ``metadata.create_all`` emitted on SQLite, copied from ``sqlite_master``;
no version tables, since that release had none. A few rows make the upgrade's keeping of data visible.

    python tests/data/make_legacy_datadir.py DIR
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

REGISTRY_DDL = """
CREATE TABLE collections (
	name VARCHAR NOT NULL,
	embedding_model VARCHAR NOT NULL,
	dim INTEGER NOT NULL,
	created_at VARCHAR NOT NULL,
	PRIMARY KEY (name)
);
CREATE TABLE runs (
	id INTEGER NOT NULL,
	collection VARCHAR NOT NULL,
	started_at VARCHAR NOT NULL,
	finished_at VARCHAR,
	status VARCHAR NOT NULL,
	stats TEXT NOT NULL,
	errors TEXT NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_runs_collection ON runs (collection);
CREATE TABLE documents (
	collection VARCHAR NOT NULL,
	source VARCHAR NOT NULL,
	doc_id VARCHAR NOT NULL,
	content_hash VARCHAR NOT NULL,
	pipeline VARCHAR NOT NULL,
	title VARCHAR,
	format VARCHAR,
	size_bytes INTEGER,
	chunks INTEGER NOT NULL,
	tokens INTEGER NOT NULL,
	updated_at VARCHAR NOT NULL,
	PRIMARY KEY (collection, source),
	FOREIGN KEY(collection) REFERENCES collections (name) ON DELETE CASCADE
);
"""

GATEWAY_DDL = """
CREATE TABLE api_keys (
	name VARCHAR NOT NULL,
	key_hash VARCHAR NOT NULL,
	prefix VARCHAR NOT NULL,
	tenant VARCHAR NOT NULL,
	admin BOOLEAN NOT NULL,
	models TEXT,
	limits TEXT,
	created_at VARCHAR NOT NULL,
	revoked_at VARCHAR,
	PRIMARY KEY (name),
	UNIQUE (key_hash)
);
CREATE TABLE jobs (
	id VARCHAR NOT NULL,
	tenant VARCHAR NOT NULL,
	collection VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	items TEXT NOT NULL,
	report TEXT,
	error TEXT,
	created_at VARCHAR NOT NULL,
	updated_at VARCHAR NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_jobs_tenant ON jobs (tenant);
CREATE TABLE counters (
	name VARCHAR NOT NULL,
	used FLOAT NOT NULL,
	PRIMARY KEY (name)
);
CREATE TABLE request_log (
	id INTEGER NOT NULL,
	time VARCHAR NOT NULL,
	request_id VARCHAR NOT NULL,
	key_name VARCHAR,
	tenant VARCHAR,
	method VARCHAR NOT NULL,
	route VARCHAR NOT NULL,
	model VARCHAR,
	status INTEGER NOT NULL,
	prompt_tokens INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	embedding_tokens INTEGER NOT NULL,
	latency_ms FLOAT NOT NULL,
	ttft_ms FLOAT,
	cost_usd FLOAT NOT NULL,
	cached BOOLEAN NOT NULL,
	error_type VARCHAR,
	PRIMARY KEY (id)
);
CREATE INDEX ix_request_log_time ON request_log (time);
CREATE TABLE ui_conversations (
	id VARCHAR NOT NULL,
	owner VARCHAR NOT NULL,
	title VARCHAR NOT NULL,
	created_at VARCHAR NOT NULL,
	updated_at VARCHAR NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_ui_conversations_owner ON ui_conversations (owner);
CREATE TABLE ui_turns (
	id VARCHAR NOT NULL,
	conversation_id VARCHAR NOT NULL,
	question TEXT NOT NULL,
	answer TEXT NOT NULL,
	model VARCHAR NOT NULL,
	collection VARCHAR,
	status VARCHAR NOT NULL,
	citations TEXT,
	grounding TEXT,
	error TEXT,
	created_at VARCHAR NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_ui_turns_conversation_id ON ui_turns (conversation_id);
"""

WHEN = "2026-11-20T10:00:00+00:00"
LEGACY_KEY = "lam_legacy-key-of-alice"  # its hash is stored, as the release stored keys
LEGACY_EMBEDDER = "all-MiniLM-L6-v2/onnx-int8"  # the old name of fp32 MiniLM, renamed on open


def _fill(db: Path, ddl: str, rows: dict[str, list[tuple[object, ...]]]) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # as the release's engines set it
        conn.executescript(ddl)
        for table, values in rows.items():
            marks = ", ".join("?" * len(values[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        conn.commit()
    finally:
        conn.close()


def make_legacy_datadir(data_dir: Path) -> Path:
    """Write ``registry.db`` and ``gateway.db`` under ``data_dir`` as that release did; return it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _fill(
        data_dir / "registry.db",
        REGISTRY_DDL,
        {
            "collections": [("kb", LEGACY_EMBEDDER, 384, WHEN)],
            "documents": [
                (
                    "kb",
                    "/docs/refunds.md",
                    "d_refunds",
                    "sha256:abc",
                    LEGACY_EMBEDDER + "|chunk",
                    "Refunds",
                    "md",
                    1200,
                    3,
                    250,
                    WHEN,
                ),
            ],
            "runs": [(1, "kb", WHEN, WHEN, "ok", '{"ingested": 1}', "[]")],
        },
    )
    key_hash = hashlib.sha256(LEGACY_KEY.encode()).hexdigest()
    _fill(
        data_dir / "gateway.db",
        GATEWAY_DDL,
        {
            "api_keys": [("alice", key_hash, LEGACY_KEY[:12], "acme", 0, None, None, WHEN, None)],
            "jobs": [("j_legacy", "acme", "kb", "done", "[]", '{"ingested": 1}', None, WHEN, WHEN)],
            "counters": [("budget:key:alice:2026-11", 0.25)],
            "request_log": [
                (
                    1,
                    WHEN,
                    "req_legacy",
                    "alice",
                    "acme",
                    "POST",
                    "/v1/chat/completions",
                    "stub",
                    200,
                    12,
                    34,
                    0,
                    56.0,
                    7.0,
                    0.001,
                    0,
                    None,
                ),
            ],
            "ui_conversations": [("c_legacy", "alice", "Refunds?", WHEN, WHEN)],
            "ui_turns": [
                (
                    "t_legacy",
                    "c_legacy",
                    "How do refunds work?",
                    "Within 30 days.",
                    "stub",
                    "kb",
                    "done",
                    "[]",
                    "{}",
                    None,
                    WHEN,
                ),
            ],
        },
    )
    return data_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR")
    print(make_legacy_datadir(Path(sys.argv[1])))
