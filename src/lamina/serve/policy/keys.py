"""API keys: random high-entropy tokens with a recognisable prefix; only a SHA-256 hash is stored.

A key carries 256 bits of randomness, so a fast hash is enough (as for GitHub or Stripe tokens): no
password stretching is needed against guessing, and a lookup by hash is one indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lamina.config import LimitSettings
from lamina.data.filters import check_groups
from lamina.data.registry import now
from lamina.errors import LaminaError
from lamina.serve.db import api_keys

KEY_PREFIX = "lam_"
DEFAULT_TENANT = "default"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise LaminaError(
            f"invalid tenant {tenant!r}: use lowercase letters, digits, '_' or '-', starting with a letter "
            "or digit"
        )
    return tenant


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, tenant and rights (never the key itself)."""

    key_name: str
    tenant: str
    admin: bool = False
    models: tuple[str, ...] | None = None  # None: every model
    limits: LimitSettings | None = None
    groups: tuple[str, ...] = ()  # reader groups: documents naming one of them are readable

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    @property
    def readers(self) -> frozenset[str] | None:
        """What this key reads, for ``Where.readers``: an admin key reads every document of the
        tenants it acts for; any other key those naming no readers or one of its groups."""
        return None if self.admin else frozenset(self.groups)


@dataclass
class KeyInfo:
    name: str
    prefix: str
    tenant: str
    admin: bool
    models: list[str] | None
    created_at: str
    revoked_at: str | None
    limits: LimitSettings | None = None
    groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "limits": self.limits.model_dump(exclude_none=True) if self.limits else None}


def _info(row: Any) -> KeyInfo:
    return KeyInfo(
        name=row.name,
        prefix=row.prefix,
        tenant=row.tenant,
        admin=bool(row.admin),
        models=json.loads(row.models) if row.models else None,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        limits=_limits(row.limits),
        groups=json.loads(row.groups) if row.groups else [],
    )


def _limits(text: str | None) -> LimitSettings | None:
    return LimitSettings.model_validate_json(text) if text else None


class KeyStore:
    """Create, list, revoke and verify keys; the plain key exists only in ``create``'s return value."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        name: str,
        *,
        tenant: str = DEFAULT_TENANT,
        admin: bool = False,
        models: list[str] | None = None,
        limits: LimitSettings | None = None,
        groups: list[str] | None = None,
    ) -> tuple[KeyInfo, str]:
        if not NAME_RE.match(name):
            raise LaminaError(f"invalid key name {name!r}: use letters, digits, '_', '-' or '.'")
        check_tenant(tenant)
        member_of = check_groups(groups, "groups")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            taken = conn.execute(sa.select(api_keys.c.name).where(api_keys.c.name == name)).first()
            if taken is not None:
                raise LaminaError(f"a key named {name!r} exists already; revoke it or pick another name")
            conn.execute(
                sa.insert(api_keys).values(
                    name=name,
                    key_hash=hash_key(key),
                    prefix=key[: len(KEY_PREFIX) + 4],
                    tenant=tenant,
                    admin=admin,
                    models=json.dumps(models) if models else None,
                    limits=limits.model_dump_json(exclude_none=True) if limits and not limits.empty else None,
                    groups=json.dumps(list(member_of)) if member_of else None,
                    created_at=now(),
                )
            )
        info = self.get(name)
        assert info is not None
        return info, key

    def get(self, name: str) -> KeyInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
        return _info(row) if row is not None else None

    def list(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_info(row) for row in conn.execute(query)]

    def revoke(self, name: str) -> bool:
        """True if an active key of that name was revoked."""
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return bool(result.rowcount)

    def count_active(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
                ).scalar_one()
            )

    def verify(self, key: str) -> Principal | None:
        """The principal of an active key, or None. Compared by hash in constant time."""
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        models = tuple(json.loads(row.models)) if row.models else None
        groups = tuple(json.loads(row.groups)) if row.groups else ()
        return Principal(row.name, row.tenant, bool(row.admin), models, _limits(row.limits), groups)
