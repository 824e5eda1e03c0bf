"""Every setting, as docs/configuration-reference.md lists it: made from the settings models, so the
reference cannot drift from what the code accepts (tests/test_docs.py checks the file is current).

``python -m lamina.config.reference > docs/configuration-reference.md`` writes it again.
"""

from __future__ import annotations

import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lamina.config import Settings

HEADER = """# Configuration reference

Generated from the settings models (`python -m lamina.config.reference > docs/configuration-reference.md`;
`tests/test_docs.py` checks it is current). Settings come from `lamina.toml` (or the file named by
`LAMINA_CONFIG`), then `LAMINA_*` environment variables: a section's key is `LAMINA_SECTION__KEY`
(`LAMINA_SERVE__PORT=9000`). [configuration.md](configuration.md) explains them by task.
"""


def _section(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (directly, optionally, or per name in a table)."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "none"
    origin = get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", '"') for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in get_args(annotation))
    if origin is not None:
        inner = ", ".join(_type(a) for a in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section)"
        return "(per machine)" if "Path" in type(value).__name__ else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{field.default!r}`"


def _heading(parent: str, name: str, annotation: Any) -> str:
    """How a section is written in lamina.toml: ``[serve]``, ``[models.NAME]``, ``[[sources]]``."""
    path = f"{parent}.{name}" if parent else name
    origin = get_origin(annotation)
    if origin is dict:
        return f"[{path}.NAME]"
    if origin is list:
        return f"[[{path}]]"
    return f"[{path}]"


def _rows(model: type[BaseModel]) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        if _section(field.annotation) is not None and get_origin(field.annotation) is None:
            continue  # a sub-section: listed under its own heading
        text = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {text} |")
    return out


def render() -> str:
    parts = [HEADER, "## Top level\n", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    parts += _rows(Settings)
    seen: set[type[BaseModel]] = set()
    for name, field in Settings.model_fields.items():
        section = _section(field.annotation)
        if section is None or section in seen:
            continue
        seen.add(section)
        heading = _heading("", name, field.annotation)
        doc = (section.__doc__ or "").strip().splitlines()
        parts += ["", f"## `{heading}`", ""]
        if doc:
            parts += [doc[0], ""]
        parts += ["| key | type | default | meaning |", "| --- | --- | --- | --- |", *_rows(section)]
        for sub_name, sub in section.model_fields.items():
            nested = _section(sub.annotation)
            if nested is not None and nested not in seen:
                seen.add(nested)
                where = _heading(heading.strip("[]"), sub_name, sub.annotation)
                parts += ["", f"### `{where}`", "", "| key | type | default | meaning |"]
                parts += ["| --- | --- | --- | --- |", *_rows(nested)]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
