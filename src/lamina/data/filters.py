"""Metadata conditions on documents: equality, ``in`` and ranges over numbers and dates.

The API and SDK write them as a JSON object, the way Pinecone's and Chroma's filters read::

    {"team": "finance", "year": {"$gte": 2024}, "kind": {"$in": ["policy", "memo"]}}

and the CLI as ``--filter team=finance --filter 'year>=2024' --filter 'kind=policy|memo'``.

Comparisons are typed, and every store keeps to the same rules (the contract suite checks it):
a number matches numbers (``2025`` equals ``2025.0``), a string strings, a boolean booleans; ranges
over strings compare them as written, so ISO 8601 dates and times order as time does
(``{"modified": {"$gte": "2025-01-01"}}``). A value of another type never matches; a list value
is not compared. Keys are plain names (letters, digits, ``_ . : -``), so a filter can never be
read as anything but a condition on one metadata field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lamina.errors import LaminaError

Op = Literal["eq", "in", "gt", "gte", "lt", "lte"]
Scalar = str | int | float | bool
OPS: tuple[Op, ...] = ("eq", "in", "gt", "gte", "lt", "lte")
RANGES = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$")
MAX_FILTERS = 16
MAX_IN = 100


class FilterError(LaminaError):
    """A filter that cannot be read: its message says which part and what is allowed."""


@dataclass(frozen=True)
class FieldFilter:
    key: str
    op: Op
    value: Scalar | tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if not KEY_RE.match(self.key):
            raise FilterError(
                f"invalid metadata key {self.key!r}: use letters, digits, '_', '.', ':' or '-' (64 at most)"
            )
        if self.op not in OPS:
            raise FilterError(f"unknown filter operator {self.op!r}; use one of {', '.join(OPS)}")
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        if (self.op == "in") != isinstance(self.value, tuple):
            raise FilterError(f"{self.key}: '$in' takes a list of values, the other operators one value")
        if self.op == "in" and not 0 < len(values) <= MAX_IN:
            raise FilterError(f"{self.key}: '$in' takes 1 to {MAX_IN} values")
        for v in values:
            if not isinstance(v, str | int | float | bool):
                raise FilterError(
                    f"{self.key}: values are strings, numbers or booleans, not {type(v).__name__}"
                )
            if isinstance(v, float) and not math.isfinite(v):
                raise FilterError(f"{self.key}: numbers must be finite")
            if self.op in RANGES and isinstance(v, bool):
                raise FilterError(f"{self.key}: a range compares numbers or strings (dates), not booleans")

    @property
    def values(self) -> tuple[Scalar, ...]:
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def text(self) -> str:
        return f"{self.key} {self.op} {json.dumps(self.value, sort_keys=True)}"


def parse_filter(spec: Mapping[str, Any] | None) -> tuple[FieldFilter, ...]:
    """The API's JSON form: ``{key: value}`` for equality, ``{key: {"$op": value, ...}}`` otherwise."""
    if not spec:
        return ()
    if not isinstance(spec, Mapping):
        raise FilterError("filter must be a JSON object of metadata keys")
    out: list[FieldFilter] = []
    for key, condition in spec.items():
        if isinstance(condition, Mapping):
            if not condition:
                raise FilterError(f"{key}: an empty condition")
            for op, value in condition.items():
                name = str(op).removeprefix("$")
                if name not in OPS:
                    raise FilterError(f"{key}: unknown operator {op!r}; use $eq, $in, $gt, $gte, $lt or $lte")
                out.append(
                    FieldFilter(str(key), name, tuple(value) if name == "in" and _listy(value) else value)
                )  # type: ignore[arg-type]
        else:
            out.append(FieldFilter(str(key), "eq", condition))
    if len(out) > MAX_FILTERS:
        raise FilterError(f"at most {MAX_FILTERS} conditions in one filter")
    return tuple(out)


def _listy(value: Any) -> bool:
    return isinstance(value, list | tuple)


_CLI = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|>|<|=)\s*(.*)$")


def parse_cli_filters(items: Sequence[str]) -> tuple[FieldFilter, ...]:
    """``key=value``, ``key=a|b`` (any of), ``key>=value`` (also ``>``, ``<=``, ``<``); a value that
    reads as a number is one, unless quoted (``year="2025"``); ``true``/``false`` are booleans."""
    out: list[FieldFilter] = []
    for item in items:
        m = _CLI.match(item)
        if m is None:
            raise FilterError(f"cannot read filter {item!r}: write key=value, key>=value or key=a|b")
        key, sign, raw = m.groups()
        if sign == "=":
            values = [cli_value(v) for v in _split_any(raw)]
            out.append(
                FieldFilter(key, "in", tuple(values))
                if len(values) > 1
                else FieldFilter(key, "eq", values[0])
            )
        else:
            op = next(name for name, s in RANGES.items() if s == sign)
            out.append(FieldFilter(key, op, cli_value(raw)))  # type: ignore[arg-type]
    return tuple(out)


def _split_any(raw: str) -> list[str]:
    return [raw] if raw.startswith(('"', "'")) else raw.split("|")


def cli_value(raw: str) -> Scalar:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def same_type(a: Any, b: Any) -> bool:
    """Whether two values compare under the typed rules (numbers with numbers, and so on)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))


def holds(f: FieldFilter, attrs: Mapping[str, Any]) -> bool:
    """One condition on one document's metadata (in Python: the memory store, and the reference)."""
    if f.key not in attrs:
        return False
    have = attrs[f.key]
    if f.op in ("eq", "in"):
        return any(same_type(have, v) and have == v for v in f.values)
    want = f.values[0]
    if not same_type(have, want) or isinstance(have, bool):
        return False
    if f.op == "gt":
        return bool(have > want)
    if f.op == "gte":
        return bool(have >= want)
    if f.op == "lt":
        return bool(have < want)
    return bool(have <= want)


def matches_all(filters: Sequence[FieldFilter], attrs: Mapping[str, Any]) -> bool:
    return all(holds(f, attrs) for f in filters)


def check_metadata(metadata: Any) -> dict[str, Scalar | list[str]]:
    """Metadata an uploader gives: a flat JSON object of plain keys and scalar (or string-list) values."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise FilterError("metadata must be a JSON object")
    out: dict[str, Scalar | list[str]] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise FilterError(
                f"invalid metadata key {key!r}: use letters, digits, '_', '.', ':' or '-' (64 at most)"
            )
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        elif isinstance(value, str | int | float | bool):
            out[key] = value
        else:
            raise FilterError(f"metadata {key!r}: values are strings, numbers, booleans or lists of strings")
    return out


GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,63}$")


def check_groups(groups: Any, what: str = "readers") -> tuple[str, ...]:
    """Reader groups (a document's, a source's or a key's), sorted and without repeats."""
    if groups is None:
        return ()
    if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
        raise FilterError(f"{what} must be a list of group names")
    for g in groups:
        if not GROUP_RE.match(g):
            raise FilterError(
                f"invalid group {g!r} in {what}: use letters, digits, '_', '.', ':', '@' or '-'"
            )
    return tuple(sorted(set(groups)))
