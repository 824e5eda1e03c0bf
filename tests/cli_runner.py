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
    process's environment and ``stdin`` as its input; the process-wide state a command leaves (its
    settings, workspace, loaded models) is dropped after it, as a process exit would."""
    from lamina.cli import app, context, models

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved = os.environ.copy(), (sys.argv, sys.stdin)
    os.environ.update(env or {})
    sys.argv, sys.stdin = ["lamina", *args], io.StringIO(stdin)
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
        workspace = context.state.__dict__.pop("workspace", None)
        if workspace is not None and "registry" in workspace.__dict__:
            workspace.registry.close()
        context.state.__dict__.pop("settings", None)
        context.state.data_dir, context.state.overrides = None, {}
        if models.registry.cache_info().currsize:
            models.registry().close()
            models.registry.cache_clear()
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv, sys.stdin = saved
    run = Run(args, code, out.getvalue(), err.getvalue())
    if check and run.returncode != 0:
        raise AssertionError(f"lamina {' '.join(args)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}")
    return run


def lamina_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m lamina ARGS``: a real process."""
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args], capture_output=True, text=True, timeout=300
    )
