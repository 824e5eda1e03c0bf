"""This process's name among the replicas and workers: telling where it runs, and unique."""

from __future__ import annotations

import os
import secrets
import socket


def process_name() -> str:
    """Host, pid and a random suffix (a pid is reused after a restart; the suffix is not)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
