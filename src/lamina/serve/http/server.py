"""Run the app on uvicorn: loopback by default, no default secrets, and a bounded drain on SIGTERM.

SIGTERM (or Ctrl-C) stops accepting connections, answers requests that still arrive on open
connections with 503, lets in-flight ones finish for up to ``serve.drain_s`` seconds, then exits.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from lamina.config import Settings
from lamina.errors import ConfigError
from lamina.serve.http.app import Extension, build_app
from lamina.serve.observe.logs import uvicorn_log_config
from lamina.serve.policy.keys import KeyStore
from lamina.serve.state import ServerState


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def first_admin_key(keys: KeyStore) -> str | None:
    """No default secrets: with no key yet, make an admin key and return it (only its hash is kept)."""
    if keys.count_active():
        return None
    _, key = keys.create("admin", admin=True)
    return key


class _DrainingServer(uvicorn.Server):
    """Marks the app as draining the moment a shutdown signal arrives, not after connections close."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    auth: bool = True,
    announce: Callable[[ServerState, str | None], None] | None = None,
    log_level: str = "info",
    extend: Extension | None = None,
) -> None:
    if not auth and not is_loopback(host):
        raise ConfigError(f"--no-auth is only allowed on a loopback address, not {host}")
    state = ServerState.build(settings, auth=auth)
    key = first_admin_key(state.keys) if auth else None
    if announce is not None:
        announce(state, key)
    config = uvicorn.Config(
        build_app(state, extend),
        host=host,
        port=port,
        log_level=log_level,
        log_config=uvicorn_log_config(settings.serve.log_format, log_level),
        access_log=False,  # the request log records every API request, without secrets
        timeout_graceful_shutdown=max(1, round(settings.serve.drain_s)),
        loop="auto",
        http="auto",
    )

    def drain() -> None:
        state.draining = True

    _DrainingServer(config, drain).run()
