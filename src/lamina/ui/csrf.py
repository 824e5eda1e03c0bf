"""CSRF tokens: an HMAC of the session under a random per-process secret; login uses a double submit.

Every state-changing request of the UI carries the token, as the form field ``csrf_token`` or (htmx)
the header ``X-CSRF-Token``. A signed-in session's token is derived from its key's hash, so it needs no
storage and changes when the key does; the login form, which has no session yet, compares a random
cookie with the same value in the form (double submit). A server restart makes old tokens invalid:
the page is simply loaded again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from lamina.serve.policy.keys import hash_key

FIELD = "csrf_token"
HEADER = "x-csrf-token"
LOGIN_COOKIE = "lamina_login_csrf"


class CsrfError(Exception):
    """A state-changing request without a valid token: answered 403."""


class Csrf:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def token(self, session_key: str) -> str:
        """The token of a session (its key; ``""`` when the server runs without auth)."""
        message = b"session:" + hash_key(session_key).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def valid(self, session_key: str, sent: str) -> bool:
        return bool(sent) and hmac.compare_digest(self.token(session_key), sent)

    async def check(self, request: Request, session_key: str) -> None:
        """Raise ``CsrfError`` unless the request carries this session's token."""
        if not self.valid(session_key, await sent_token(request)):
            raise CsrfError("missing or invalid CSRF token")


async def sent_token(request: Request) -> str:
    """The token a request carries: the htmx header, else the form field."""
    header = request.headers.get(HEADER, "")
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(FIELD, "")
        return value if isinstance(value, str) else ""
    return ""


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def login_token_valid(cookie: str | None, sent: str) -> bool:
    return bool(cookie) and bool(sent) and hmac.compare_digest(cookie or "", sent)
