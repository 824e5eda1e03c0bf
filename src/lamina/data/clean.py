"""Text normalization applied to every extracted document before chunking.

Markdown structure (headings, lists, tables) is kept; link targets and image URLs are dropped
because they cost tokens and carry no meaning for retrieval.
"""

from __future__ import annotations

import re
import unicodedata

_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_EMPTY_LINK = re.compile(r"\[\s*\]\([^)]*\)")
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\x00]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = _INVISIBLE.sub("", text)
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _EMPTY_LINK.sub("", text)
    text = _LINK.sub(lambda m: m.group(1), text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", text).strip()
