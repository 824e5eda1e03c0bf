"""Pack retrieved chunks into the model's window, counted with the model's own tokenizer.

The question always fits: sources are dropped from the bottom, and the last one kept is trimmed,
before the question is touched; a question too long on its own is a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.data.types import Hit
from lamina.errors import PromptTooLong
from lamina.models.base import Model

SAFETY_TOKENS = 16
MIN_SOURCE_TOKENS = 24


@dataclass
class Source:
    n: int
    hit: Hit
    text: str

    @property
    def title(self) -> str:
        where = self.hit.location
        name = self.hit.title or self.hit.source.rsplit("/", 1)[-1]
        return f"{name}, {where}" if where else name


def pack(model: Model, hits: list[Hit], frame_tokens: int, answer_tokens: int) -> list[Source]:
    """Number and fit sources; ``frame_tokens`` is the prompt with no sources (question, instructions)."""
    budget = model.context_window - answer_tokens - frame_tokens - SAFETY_TOKENS
    if budget < 0:
        raise PromptTooLong(
            f"the question needs {frame_tokens} tokens and the answer {answer_tokens}, more than the "
            f"{model.context_window}-token window of {model.name}; shorten the question"
        )
    sources: list[Source] = []
    for hit in hits:
        per_source = 12  # the "Source [n] (title):" line and fences around it
        cost = model.count_tokens(hit.text) + per_source
        if cost <= budget:
            sources.append(Source(len(sources) + 1, hit, hit.text))
            budget -= cost
            continue
        if budget - per_source >= MIN_SOURCE_TOKENS:  # trim the last source that partly fits
            sources.append(Source(len(sources) + 1, hit, _trim(model, hit.text, budget - per_source)))
        break
    return sources


def _trim(model: Model, text: str, tokens: int) -> str:
    low, high = 0, len(text)
    while low < high:  # longest prefix (at a word boundary) within the budget
        mid = (low + high + 1) // 2
        if model.count_tokens(text[:mid]) <= tokens:
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    space = cut.rfind(" ")
    return (cut[:space] if space > len(cut) // 2 else cut) + " …"
