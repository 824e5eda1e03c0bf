"""Structured output: a JSON Schema (or a pydantic model) in, a validated object out.

llama.cpp decodes under a grammar built from the schema, so its output is valid by construction;
remote backends get ``response_format`` and are validated anyway. Invalid output is retried with
the validation error in the prompt, a bounded number of times, then fails clearly.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

import jsonschema
from pydantic import BaseModel, ValidationError

from lamina.errors import StructuredOutputError
from lamina.models.base import LLM
from lamina.models.types import GenerationRequest, Usage

T = TypeVar("T", bound=BaseModel)


def check_schema(schema: Any) -> dict[str, Any]:
    """Reject an invalid JSON Schema before any generation."""
    if not isinstance(schema, dict):
        raise StructuredOutputError("a JSON Schema must be an object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path) or "(root)"
        raise StructuredOutputError(f"invalid JSON Schema at {path}: {exc.message}") from None
    return schema


def parse_json(text: str) -> Any:
    """The JSON value in ``text``, tolerating prose or code fences around it (remote models add them)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
        if not starts:
            raise
        value, _ = json.JSONDecoder().raw_decode(text[min(starts) :])
        return value


def _problem(text: str, schema: dict[str, Any]) -> str | None:
    try:
        value = parse_json(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at position {exc.pos})"
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    return None if error is None else f"{error.message} (at {'/'.join(map(str, error.path)) or 'root'})"


def generate_json(
    model: LLM, request: GenerationRequest, schema: dict[str, Any], *, attempts: int = 3
) -> tuple[Any, Usage]:
    """The parsed, schema-valid JSON value and the usage summed over every attempt."""
    check_schema(schema)
    usage = Usage()
    current = dataclasses.replace(request, json_schema=schema)
    last_problem = ""
    for _ in range(max(1, attempts)):
        generation = model.generate(current)
        usage = usage + generation.usage
        problem = _problem(generation.text, schema)
        if problem is None:
            return parse_json(generation.text), usage
        last_problem = problem
        if generation.finish_reason == "length":  # cut off mid-object: give the next attempt more room
            budget = 2 * (
                current.max_tokens or int(getattr(getattr(model, "settings", None), "max_tokens", 256))
            )
            current = dataclasses.replace(current, max_tokens=budget)
            problem += "; the output was cut off"
        feedback = f"That output was invalid: {problem}. Reply again with only JSON that matches the schema."
        if current.messages is not None:
            messages = [
                *current.messages,
                {"role": "assistant", "content": generation.text},
                {"role": "user", "content": feedback},
            ]
            current = dataclasses.replace(current, messages=messages)  # type: ignore[arg-type]
        else:
            current = dataclasses.replace(current, prompt=f"{request.prompt}\n({feedback})\n")
    raise StructuredOutputError(
        f"model {model.name} gave no valid output for the schema in {attempts} attempts: {last_problem}"
    )


def generate_model(
    model: LLM, request: GenerationRequest, output: type[T], *, attempts: int = 3
) -> tuple[T, Usage]:
    """Like ``generate_json`` with a pydantic model as the schema; returns an instance."""
    schema = output.model_json_schema()
    schema.setdefault(
        "additionalProperties", False
    )  # extra keys only cost tokens: the model drops them anyway
    value, usage = generate_json(model, request, schema, attempts=attempts)
    try:
        return output.model_validate(value), usage
    except ValidationError as exc:
        raise StructuredOutputError(
            f"output matched the JSON Schema but not {output.__name__}: {exc}"
        ) from None
