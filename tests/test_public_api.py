"""The public Python API is small and stable, and the layers import only downward."""

from __future__ import annotations

import ast
from pathlib import Path

import lamina

SRC = Path(lamina.__file__).parent

PUBLIC = [
    "Answer",
    "AsyncLamina",
    "Collection",
    "Generation",
    "GenerationRequest",
    "Hit",
    "IngestReport",
    "Lamina",
    "LaminaError",
    "ModelRegistry",
    "Settings",
    "Where",
    "Workspace",
    "__version__",
    "answer",
    "generate_json",
    "generate_model",
    "load_settings",
]


def test_the_public_names() -> None:
    assert lamina.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(lamina, name) is not None
    from lamina.data.collection import Workspace

    assert lamina.Workspace is Workspace  # the same object as at its home


def _imports(folder: str) -> dict[str, set[str]]:
    """Every module a file under ``folder`` imports (absolute names), by file."""
    out: dict[str, set[str]] = {}
    for path in (SRC / folder).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        out[str(path.relative_to(SRC))] = names
    return out


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{file} imports {name}"
        for file, names in _imports(folder).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_arrows_point_down() -> None:
    above_data = ("lamina.rag", "lamina.serve", "lamina.ui", "lamina.cli", "lamina.client", "lamina.testing")
    assert _offenders("data", (*above_data, "lamina.engine")) == []
    assert _offenders("models", (*above_data, "lamina.data", "lamina.engine")) == []
    assert _offenders("engine", (*above_data, "lamina.data")) == []
    assert _offenders("rag", above_data[1:]) == []
    assert _offenders("serve", ("lamina.ui", "lamina.cli", "lamina.testing")) == []


def test_the_engine_side_knows_nothing_of_asgi() -> None:
    asgi = ("fastapi", "starlette", "uvicorn", "lamina.serve.http")
    for folder in ("engine", "serve/policy", "serve/observe", "serve/jobs"):
        assert _offenders(folder, asgi) == []
    for module in ("serve/context.py", "serve/errors.py"):
        tree = ast.parse((SRC / module).read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {n for n in names if n.split(".")[0] in ("fastapi", "starlette")}
