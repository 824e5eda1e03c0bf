"""Rendering: one Jinja2 environment (autoescaped), the filters pages share, and the headers every page gets.

Every page is sent with a strict Content-Security-Policy (scripts and styles from this origin only, no
inline script, no eval), so even a mistake in escaping could not run a document's script.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from lamina import __version__
from lamina.serve.jobs.manager import TERMINAL
from lamina.ui.assets import Assets
from lamina.ui.metadata import meta
from lamina.ui.sources import every, target

TEMPLATES = Path(__file__).with_name("templates")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold one user's data
}


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def when(value: str | None) -> str:
    """An ISO time as ``2026-11-05 14:03`` (UTC), or an empty string."""
    if not value:
        return ""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return value
    return t.strftime("%Y-%m-%d %H:%M")


def num(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def usd(value: float | None) -> str:
    v = float(value or 0)
    if v == 0:
        return "$0"
    return f"${v:,.2f}" if v >= 0.01 else f"${v:.6f}".rstrip("0")


def ms(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0:
        return "0 ms"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


class Pages:
    def __init__(self, assets: Assets, folder: Path = TEMPLATES) -> None:
        self.env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=when, num=num, usd=usd, ms=ms, meta=meta, target=target, every=every)
        self.env.globals.update(asset=assets.url, version=__version__, terminal=TERMINAL)

    def html(self, template: str, /, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def render(
        self,
        request: Request,
        template: str,
        /,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        context.setdefault("session", None)
        context.setdefault("page", "")
        body = self.html(template, request=request, htmx=is_htmx(request), **context)
        return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
