"""Is a claim in the passage it cites? Its numbers must all be there, and most of its words.

The check behind every ``[n]`` an answer ships: a sentence whose marker points at a passage that
does not say it is re-attributed to the passage that does, or loses the marker. Lexical on
purpose: a paraphrase keeps most content words, while a wrong number or a name from another
document does not survive it ("$1.50 per hour" is not in a row that says 150).
"""

from __future__ import annotations

from collections.abc import Sequence

from lamina.rag.citations import MARKER
from lamina.rag.context import Source
from lamina.rag.words import numbers, terms

SUPPORT_SHARE = 0.5  # of the claim's content words found in the passage


def supports(passage: str, claim: str) -> bool:
    text = MARKER.sub(" ", claim)
    if numbers(text) - numbers(passage):
        return False
    words = terms(text)
    if not words:
        return True  # nothing to check ("Yes.")
    return len(words & terms(passage)) >= SUPPORT_SHARE * len(words)


def supporting(sources: Sequence[Source], claim: str) -> list[int]:
    """The numbers of the sources that support ``claim``, in retrieval order."""
    return [s.n for s in sources if supports(s.text, claim)]
