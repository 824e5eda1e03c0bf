"""Stored responses of the Responses API, in the server's database (SQLite or Postgres), so every
replica finds them: what ``GET /v1/responses/{id}`` answers and the conversation a
``previous_response_id`` continues. A tenant sees only its own; an expired one is gone."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lamina.models.types import Message
from lamina.serve.db import stored_responses


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    conversation: list[Message]  # the chat messages so far, this response's output included


class ResponseStore:
    def __init__(self, engine: sa.Engine, retention_days: float) -> None:
        self.engine = engine
        self.retention_s = retention_days * 86_400

    def put(self, tenant: str, response: dict[str, Any], conversation: list[Message]) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(stored_responses).where(stored_responses.c.expires_at < now))
            conn.execute(
                sa.insert(stored_responses).values(
                    id=response["id"],
                    tenant=tenant,
                    created_at=now,
                    expires_at=now + self.retention_s,
                    response=json.dumps(response),
                    conversation=json.dumps(conversation),
                )
            )

    def _mine(self, response_id: str, tenant: str) -> sa.ColumnElement[bool]:
        c = stored_responses.c
        return sa.and_(c.id == response_id, c.tenant == tenant, c.expires_at >= time.time())

    def get(self, response_id: str, tenant: str) -> Stored | None:
        c = stored_responses.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(c.response, c.conversation).where(self._mine(response_id, tenant))
            ).first()
        if row is None:
            return None
        return Stored(json.loads(row.response), json.loads(row.conversation))

    def delete(self, response_id: str, tenant: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(stored_responses).where(self._mine(response_id, tenant)))
        return bool(done.rowcount)
