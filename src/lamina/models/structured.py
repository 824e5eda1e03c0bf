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


def _problem(text: str, schema: dict[str, Any]) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at position {exc.pos})"
    error = jsonschema.validators.validator_for(schema)(schema).best_match([*_errors(value, schema)])
    return None if error is None else f"{error.message} (at {'/'.join(map(str, error.path)) or 'root'})"


def _errors(value: Any, schema: dict[str, Any]) -> list[jsonschema.ValidationError]:
    return list(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))


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
            return json.loads(generation.text), usage
        if generation.finish_reason == "length":
            problem += "; the output was cut off, so be shorter"
        last_problem = problem
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


def generate_model(model: LLM, request: GenerationRequest, output: type[T], *, attempts: int = 3) -> tuple[T, Usage]:
    """Like ``generate_json`` with a pydantic model as the schema; returns an instance."""
    value, usage = generate_json(model, request, output.model_json_schema(), attempts=attempts)
    try:
        return output.model_validate(value), usage
    except ValidationError as exc:
        raise StructuredOutputError(f"output matched the JSON Schema but not {output.__name__}: {exc}") from None
