"""Conversations, kept per key in two small tables of the server's database (the UI's own schema).

A turn is one question and its answer; the answer is written when its stream ends, so a turn is
``pending`` (asked, not yet streamed), ``streaming``, ``done`` or ``failed``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lamina import sqlmigrate

# The schema is made and changed by the Alembic revisions in migrations/ (run when a store opens);
# the tables below must match their head (tests/test_migrations.py checks it). They share the server's
# database, so this chain keeps its own version table.
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "lamina_ui_version"
BASELINE_TABLES = ("ui_conversations", "ui_turns")

metadata = sa.MetaData()

conversations = sa.Table(
    "ui_conversations",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False, index=True),  # the key's name
    sa.Column("title", sa.String, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
)

turns = sa.Table(
    "ui_turns",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("conversation_id", sa.String, nullable=False, index=True),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False, default=""),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("collection", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("citations", sa.Text),  # JSON list, as the API returned them
    sa.Column("grounding", sa.Text),  # JSON object, as the API returned it
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.String, nullable=False),
)

TITLE_CHARS = 80


def now() -> str:
    """Microseconds: two questions asked in the same second still sort in order."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class Conversation:
    id: str
    owner: str
    title: str
    created_at: str
    updated_at: str


@dataclass
class Turn:
    id: str
    conversation_id: str
    question: str
    model: str
    collection: str | None
    status: str
    answer: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    grounding: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: str = ""


def _turn(row: Any) -> Turn:
    return Turn(
        id=row.id,
        conversation_id=row.conversation_id,
        question=row.question,
        model=row.model,
        collection=row.collection,
        status=row.status,
        answer=row.answer or "",
        citations=json.loads(row.citations) if row.citations else [],
        grounding=json.loads(row.grounding) if row.grounding else {},
        error=row.error,
        created_at=row.created_at,
    )


def title_of(question: str) -> str:
    flat = " ".join(question.split())
    return flat if len(flat) <= TITLE_CHARS else flat[: TITLE_CHARS - 1].rstrip() + "…"


def migrate(engine: sa.Engine) -> None:
    """Bring the UI's tables to the current schema (a no-op when they are)."""
    sqlmigrate.upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE, baseline_tables=BASELINE_TABLES)


class ConversationStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        migrate(engine)

    def create(self, owner: str, title: str) -> Conversation:
        t = now()
        conv = Conversation("c_" + secrets.token_hex(8), owner, title_of(title), t, t)
        with self.engine.begin() as conn:
            conn.execute(sa.insert(conversations).values(**conv.__dict__))
        return conv

    def recent(self, owner: str, limit: int = 50) -> list[Conversation]:
        query = (
            sa.select(conversations)
            .where(conversations.c.owner == owner)
            .order_by(conversations.c.updated_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Conversation(**row._mapping) for row in conn.execute(query)]

    def get(self, owner: str, conversation_id: str) -> Conversation | None:
        query = sa.select(conversations).where(
            conversations.c.id == conversation_id, conversations.c.owner == owner
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Conversation(**row._mapping) if row is not None else None

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(
                sa.delete(conversations).where(
                    conversations.c.id == conversation_id, conversations.c.owner == owner
                )
            ).rowcount
            if gone:
                conn.execute(sa.delete(turns).where(turns.c.conversation_id == conversation_id))
        return bool(gone)

    def turns(self, conversation_id: str) -> list[Turn]:
        query = (
            sa.select(turns)
            .where(turns.c.conversation_id == conversation_id)
            .order_by(turns.c.created_at, turns.c.id)
        )
        with self.engine.connect() as conn:
            return [_turn(row) for row in conn.execute(query)]

    def ask(self, conv: Conversation, question: str, model: str, collection: str | None) -> Turn:
        turn = Turn(
            "t_" + secrets.token_hex(8), conv.id, question, model, collection, "pending", created_at=now()
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(turns).values(
                    id=turn.id,
                    conversation_id=conv.id,
                    question=question,
                    answer="",
                    model=model,
                    collection=collection,
                    status=turn.status,
                    created_at=turn.created_at,
                )
            )
            conn.execute(
                sa.update(conversations)
                .where(conversations.c.id == conv.id)
                .values(updated_at=turn.created_at)
            )
        return turn

    def turn(self, owner: str, turn_id: str) -> Turn | None:
        """The turn, if its conversation belongs to ``owner``."""
        query = (
            sa.select(turns)
            .join(conversations, conversations.c.id == turns.c.conversation_id)
            .where(turns.c.id == turn_id, conversations.c.owner == owner)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _turn(row) if row is not None else None

    def claim(self, turn_id: str) -> bool:
        """Mark a pending turn as streaming; False if another stream has it (a reconnect, a second tab)."""
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sa.update(turns)
                .where(turns.c.id == turn_id, turns.c.status == "pending")
                .values(status="streaming")
            ).rowcount
        return bool(claimed)

    def finish(
        self,
        turn_id: str,
        *,
        answer: str,
        status: str,
        citations: list[dict[str, Any]] | None = None,
        grounding: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(turns)
                .where(turns.c.id == turn_id)
                .values(
                    answer=answer,
                    status=status,
                    citations=json.dumps(citations or []),
                    grounding=json.dumps(grounding or {}),
                    error=error,
                )
            )
