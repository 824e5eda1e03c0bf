"""Run ``lamina`` commands from the tests: in this process through the script's own entry point, or as
a real process where the process itself is what a test checks."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass


@dataclass
class Run:
    """What ``subprocess.run(..., capture_output=True, text=True)`` gives, for a command run in process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def lamina(*args: str, env: dict[str, str] | None = None, check: bool = True, stdin: str = "") -> Run:
    """``lamina ARGS`` as the ``lamina`` script runs it, in this process: ``env`` on top of this
    process's environment and ``stdin`` as its input. It starts, as a process would, without the
    state an earlier command left (settings, workspace, loaded models), and drops its own after."""
    from lamina.cli import app, output

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved = os.environ.copy(), (sys.argv, sys.stdin)
    widths = [(c, c._width) for c in (output.console, output.err_console)]
    _drop_process_state()  # also what a CliRunner elsewhere in this session may have left
    os.environ.update(env or {})
    sys.argv, sys.stdin = ["lamina", *args], io.StringIO(stdin)
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # Rich reads COLUMNS when a console is made, at a process's start
        for console, _ in widths:
            console.width = int(columns)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                app.main()
            except SystemExit as exc:  # how the script ends, with its exit status
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # what Python prints for an uncaught exception, and its exit status
                traceback.print_exc()
                code = 1
    finally:
        try:
            _drop_process_state()
        finally:
            for console, width in widths:
                console._width = width
            os.environ.clear()
            os.environ.update(saved_env)
            sys.argv, sys.stdin = saved
    run = Run(args, code, out.getvalue(), err.getvalue())
    if check and run.returncode != 0:
        raise AssertionError(f"lamina {' '.join(args)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}")
    return run


def _drop_process_state() -> None:
    """What a ``lamina`` process holds until it exits: the command's settings and workspace, and the
    models it loaded (one registry per process)."""
    from lamina.cli import context, models

    workspace = context.state.__dict__.pop("workspace", None)
    context.state.__dict__.pop("settings", None)
    context.state.data_dir, context.state.overrides = None, {}
    try:
        if workspace is not None and "registry" in workspace.__dict__:
            workspace.registry.close()
    finally:
        if models.registry.cache_info().currsize:
            registry = models.registry()
            models.registry.cache_clear()
            registry.close()


def lamina_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m lamina ARGS``: a real process."""
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args], capture_output=True, text=True, timeout=300
    )
