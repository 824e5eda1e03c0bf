"""Deployment commands: ``serve``, ``keys``, ``logs``, ``usage``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from lamina.cli.context import state
from lamina.cli.output import console, err_console, print_json
from lamina.config import LimitSettings
from lamina.errors import LaminaError
from lamina.serve import db
from lamina.serve.observe.requestlog import recent
from lamina.serve.policy.costs import GROUPS
from lamina.serve.policy.costs import usage as usage_rows
from lamina.serve.policy.keys import DEFAULT_TENANT, KeyStore
from lamina.serve.state import ServerState

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _keys() -> KeyStore:
    return KeyStore(db.connect(state.settings.gateway_url))


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1, loopback only).")
    ] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default 8080).")] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No API keys at all: allowed on a loopback address only.")
    ] = False,
) -> None:
    """Run the OpenAI-compatible server: chat, completions, embeddings, collections, grounded answers."""
    run_server(host, port, no_auth=no_auth)


Hook = Callable[[ServerState, str | None, str], None]  # the state, a new admin key, the base URL


def public_url(host: str, port: int) -> str:
    """Where clients reach a server bound to ``host``: a wildcard address is reached on loopback."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}"


def run_server(
    host: str | None,
    port: int | None,
    *,
    no_auth: bool = False,
    before: Hook | None = None,
    after: Hook | None = None,
) -> None:
    """``lamina serve``: announce, then run until Ctrl-C. ``before``/``after`` run around the
    announcement, once the state is built and before the port opens (``lamina up`` uses them)."""
    from lamina.serve.http.server import is_loopback
    from lamina.serve.http.server import serve as run

    settings = state.settings
    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    base = public_url(host, port)

    def announce(server: ServerState, key: str | None) -> None:
        if before is not None:
            before(server, key, base)
        err_console.print(
            f"[bold]Lamina[/] on {base}  ·  API {base}/v1  ·  docs {base}/docs", highlight=False
        )
        if not is_loopback(host):
            err_console.print(f"[yellow]listening on {host}: reachable from other machines[/]")
        if no_auth:
            err_console.print(
                "[bold red]WARNING: --no-auth: every request is admin, without a key. Loopback only.[/]"
            )
        elif key is not None:
            err_console.print(
                "\nNo API key existed, so an admin key was made. It is shown [bold]only now[/] "
                "(the server keeps only its hash):\n"
            )
            err_console.print(f"    {key}\n", highlight=False, markup=False)
            err_console.print(f"Sign in: {base}/login?key={key}", highlight=False, markup=False)
        err_console.print(f"default model: {server.settings.default_model}; loading…", highlight=False)
        if after is not None:
            after(server, key, base)

    from lamina.ui import install

    run(settings, host=host, port=port, auth=not no_auth, announce=announce, extend=install)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name for the key (shown in logs instead of the key).")],
    tenant: Annotated[str, typer.Option(help="Tenant whose collections the key sees.")] = DEFAULT_TENANT,
    admin: Annotated[bool, typer.Option("--admin", help="May manage keys and see every tenant.")] = False,
    models: Annotated[
        list[str] | None, typer.Option("--models", help="Limit the key to these models (repeatable).")
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option("--group", help="A reader group (repeatable): documents naming it become readable."),
    ] = None,
    budget_usd: Annotated[float | None, typer.Option(min=0, help="Spend allowed per period (USD).")] = None,
    budget_period: Annotated[str, typer.Option(help="day, month or total.")] = "month",
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    try:
        limits = LimitSettings(budget_usd=budget_usd, budget_period=budget_period, rpm=rpm, tpm=tpm)
    except ValidationError as exc:
        raise LaminaError(f"invalid limits: {exc.errors()[0]['msg']}") from None
    info, key = _keys().create(
        name, tenant=tenant, admin=admin, models=models or None, limits=limits, groups=groups or None
    )
    if as_json:
        print_json({"name": info.name, "key": key, "tenant": info.tenant})
        return
    console.print(f"key [bold]{info.name}[/] (tenant {info.tenant}{', admin' if info.admin else ''}):")
    console.print(key, highlight=False, markup=False)
    err_console.print("[dim]store it now: it cannot be shown again[/]")


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List keys (their names and prefixes, never the keys)."""
    infos = _keys().list(include_revoked=all_keys)
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("name", "prefix", "tenant", "admin", "models", "groups", "created", "revoked")
    for i in infos:
        table.add_row(
            i.name,
            i.prefix + "…",
            i.tenant,
            "yes" if i.admin else "",
            ", ".join(i.models or ["all"]),
            ", ".join(i.groups),
            i.created_at,
            i.revoked_at or "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: a running server refuses it within seconds."""
    if not _keys().revoke(name):
        err_console.print(f"error: no active key named {name!r} (see: lamina keys list)")
        raise typer.Exit(1)
    console.print(f"revoked {name}")


def logs(
    n: Annotated[int, typer.Option("-n", min=1, max=10_000, help="How many requests, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The request log: time, key, tenant, route, model, status, tokens, latency."""
    rows = recent(db.connect(state.settings.gateway_url), n)
    if as_json:
        print_json(rows)
        return
    table = Table(
        "time", "key", "tenant", "method", "route", "model", "status", "tokens in/out", "ms", "ttft"
    )
    for r in rows:
        table.add_row(
            r["time"][11:23],
            r["key_name"] or "",
            r["tenant"] or "",
            r["method"],
            r["route"],
            r["model"] or "",
            str(r["status"]),
            f"{r['prompt_tokens'] + r['embedding_tokens']}/{r['completion_tokens']}",
            f"{r['latency_ms']:.1f}",
            f"{r['ttft_ms']:.0f}" if r["ttft_ms"] is not None else "",
        )
    console.print(table)


def usage(
    by: Annotated[str, typer.Option("--by", help="Group by key, tenant or model.")] = "model",
    since: Annotated[
        str | None, typer.Option(help="Only requests at or after this ISO time, e.g. 2026-11-01.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Requests, tokens, spend and cache hits from the request log."""
    if by not in GROUPS:
        err_console.print(f"error: --by must be one of {', '.join(GROUPS)}")
        raise typer.Exit(2)
    rows = usage_rows(db.connect(state.settings.gateway_url), by, since=since)
    if as_json:
        print_json(rows)
        return
    table = Table(by, "requests", "prompt", "completion", "embedding", "spend USD", "cache hits", "errors")
    for r in rows:
        table.add_row(
            str(r[by] or "-"),
            str(r["requests"]),
            f"{r['prompt_tokens']:,}",
            f"{r['completion_tokens']:,}",
            f"{r['embedding_tokens']:,}",
            f"{r['spend_usd']:.4f}",
            str(r["cache_hits"]),
            str(r["errors"]),
        )
    console.print(table)
