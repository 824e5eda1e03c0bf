"""What every outbound HTTP client (remote models, embedders, rerankers) shares."""

from __future__ import annotations

import functools
import os
import ssl

import httpx

from lamina.errors import ModelUnavailable


def api_key(api_key_env: str | None, setting: str) -> str | None:
    """The key in the environment variable ``api_key_env`` names (None when none is named): the one
    reader of a key. ``setting`` is the configuration key that named it, so the error says what to fix.
    """
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env)
    if not key:
        raise ModelUnavailable(f"{setting} names {api_key_env}, which is not set")
    return key


def bearer_headers(api_key_env: str | None, setting: str) -> dict[str, str]:
    """An ``Authorization`` header from the environment variable ``api_key_env`` names, if any."""
    key = api_key(api_key_env, setting)
    return {"Authorization": f"Bearer {key}"} if key else {}


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's own verification (certifi's CAs, no environment), built once per process: loading
    the CA bundle takes tens of milliseconds, which a client made per request (a crawl fetches
    page after page, ``lamina.data.fetch``) would otherwise pay every time."""
    return httpx.create_ssl_context(trust_env=False)
