"""Is a claim in the passage it cites? Its numbers must all be there, and most of its words.

The check behind every ``[n]`` an answer ships: a sentence whose marker points at a passage that
does not say it is re-attributed to the passage that does, or loses the marker. Lexical on
purpose: a paraphrase keeps most content words, while a wrong number or a name from another
document does not survive it ("$1.50 per hour" is not in a row that says 150).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lamina.rag.citations import MARKER
from lamina.rag.context import Source
from lamina.rag.words import numbers, terms

SUPPORT_SHARE = 0.5  # of the claim's content words found in the passage


def supports(passage: str, claim: str) -> bool:
    text = MARKER.sub(" ", claim)
    passage_numbers, passage_words = _said(passage)
    if numbers(text) - passage_numbers:
        return False
    words = terms(text)
    if not words:
        return True  # nothing to check ("Yes.")
    return len(words & passage_words) >= SUPPORT_SHARE * len(words)


@lru_cache(maxsize=256)
def _said(passage: str) -> tuple[set[str], set[str]]:
    """A passage's numbers and words, once: every sentence of an answer is checked against each."""
    return numbers(passage), terms(passage)


def supporting(sources: Sequence[Source], claim: str) -> list[int]:
    """The numbers of the sources that support ``claim``, in retrieval order."""
    return [s.n for s in sources if supports(s.text, claim)]
