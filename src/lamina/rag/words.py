"""The words a question and a passage share, for choosing answers and checking citations."""

from __future__ import annotations

import re

_STOPWORDS = """a an and are as at be been by can could did do does for from had has have how i if in into is
    it its me my of on or our should so than that the their them then there these they this to was
    we were what when where which who whom whose why will with would you your about after before
    any all also get got just more most much many very"""
STOPWORDS = frozenset(_STOPWORDS.split())
_POSSESSIVE = re.compile(r"['’]s\b")
_TOKEN = re.compile(r"[^\W_]+(?:[.\-'][^\W_]+)*")


def stem(word: str) -> str:
    """A crude English stem: enough for "rates" to meet "rate" and "founded" to meet "founder"."""
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in ("ment", "ion", "ing", "ers", "ors", "ies", "ed", "er", "or", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "aeiou":  # "embedd" -> "embed"
        word = word[:-1]
    return word


def terms(text: str) -> set[str]:
    words = (m.lower() for m in _TOKEN.findall(_POSSESSIVE.sub("", text)))
    return {stem(t) for t in words if t not in STOPWORDS}


_NUMERAL = re.compile(r"\d+(?:[.,]\d+)*")


def numbers(text: str) -> set[str]:
    """The numbers of a text, written one way: "1,000.00" and "1000" are both "1000"."""
    out = set()
    for match in _NUMERAL.findall(text):
        value = match.replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        out.add(value)
    return out
