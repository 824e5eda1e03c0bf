"""Sentences out of (streamed) model text: where one ends, what is scaffolding, what is degenerate.

A boundary is decided only from text already seen (it waits for the next visible character), so a
stream split anywhere yields exactly the sentences of the whole text: what is shown while streaming
is what the final answer says.
"""

from __future__ import annotations

import re

from lamina.rag.citations import MARKER, MARKER_PATTERN

TERMINATORS = ".!?"
CLOSERS = "\"')”’"
_MARKER_RUN = re.compile(rf"[ \t]*{MARKER_PATTERN}")  # one marker of a run after a sentence
_LINE_ENDS = tuple(TERMINATORS + CLOSERS + ":;]")
_PARTIAL_MARKER = re.compile(r"[ \t]*(?:\[(?:\d+(?:\s*,\s*\d*)*)?)?")  # could still become a marker
_ABBREVIATIONS = frozenset({"e.g", "i.e", "al", "vs", "fig", "figs", "approx", "cf", "ca", "dr", "mr", "ms"})

# Scaffolding a base model copies from the prompt's shape rather than from the sources.
_LEADING_SCAFFOLD = re.compile(
    rf"^(?:{MARKER_PATTERN}"  # "[1] ..." at a line start numbers a list like the context did
    r"|\(?(?:\d{1,3}[.)]|[A-Za-z]\))(?=\s|$)"  # "1." "2)" "a)" list numbers (not "E. coli")
    r"|[-*•>#]+(?=\s)"  # bullets, quote and heading marks
    r"|(?:answer|a)\s*:)"  # an "Answer:" label before the answer itself
    r"\s*",
    re.IGNORECASE,
)
_QUOTES = '"“”'
_NOT_AN_ANSWER = re.compile(r"^(?:question|q|context|sources?|instructions?)\s*:", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")

MIN_WORDS = 2
LOOP_MIN_TOKENS = 8
LOOP_UNIQUE_SHARE = 0.5


def sentence_end(text: str, start: int = 0, *, final: bool = False) -> int | None:
    """Index just past the sentence that begins at ``start`` (its trailing ``[n]`` markers included).

    ``None``: the text seen so far cannot tell yet. A sentence ends at ``.!?`` (and closing quotes)
    followed by whitespace and a character that is not lowercase, unless the word before is an
    initial or a common abbreviation ("H. pylori", "et al. showed"). It ends at a line break too,
    unless the line is wrapped mid-sentence (no closing punctuation, the next line starts lowercase,
    as models copy the hard wraps of their sources). With ``final`` the end of ``text`` is an end.
    """
    n = len(text)
    i = start
    while i < n:
        if text[i] == "\n":
            if text[start:i].rstrip().endswith(_LINE_ENDS):
                return i
            k = i + 1
            while k < n and text[k] in " \t":
                k += 1
            if k == n:
                return i if final else None
            if not text[k].islower():
                return i
            i = k
            continue
        if text[i] not in TERMINATORS:
            i += 1
            continue
        j = i + 1
        while j < n and text[j] in TERMINATORS + CLOSERS:
            j += 1
        while (marker := _MARKER_RUN.match(text, j)) is not None:
            j = marker.end()
        if _PARTIAL_MARKER.fullmatch(text, j):  # only spaces, or a marker cut off, up to the end
            return j if final else None
        k = j
        while text[k] in " \t":
            k += 1
        if text[k] == "\n":
            return j
        if k == j or text[k].islower() or _abbreviation(text, start, i):
            i = k
            continue
        return j
    return n if final and n > start else None


def _abbreviation(text: str, start: int, dot: int) -> bool:
    words = text[start:dot].split()
    if not words or text[dot] != ".":
        return False
    word = words[-1].lstrip("([\"'").lower()
    return (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Every sentence of a finished text, stripped (for sources, which are not streamed)."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        end = sentence_end(text, pos, final=True)
        if end is None:
            break
        if sentence := text[pos:end].strip():
            out.append(sentence)
        pos = end
    return out


def strip_scaffolding(sentence: str) -> str:
    """Drop list numbers, bullets, leading ``[n]`` enumeration, "Answer:" labels and unbalanced quotes;
    join lines wrapped mid-sentence."""
    text = re.sub(r"[ \t]*\n\s*", " ", sentence.strip())
    while True:
        if (match := _LEADING_SCAFFOLD.match(text)) is not None:
            text = text[match.end() :]
        elif sum(text.count(q) for q in _QUOTES) % 2 and text[:1] in _QUOTES:
            text = text[1:].lstrip()
        elif sum(text.count(q) for q in _QUOTES) % 2 and text[-1:] in _QUOTES:
            text = text[:-1].rstrip()
        else:
            return text


def key(text: str) -> str:
    """What two sentences share when one repeats the other: their words, markers and case ignored."""
    return " ".join(re.sub(r"\W+", " ", MARKER.sub("", text)).split()).lower()


def word_count(text: str) -> int:
    """Real words: runs of two or more letters (numbers, markers and initials do not count)."""
    return len(_WORD.findall(text))


def degenerate(sentence: str, question: str = "") -> bool:
    """Text a reader gains nothing from; these were all seen from gemma-3-270m at temperature 0.

    - fewer than two real words (two or more letters): "[1]", "2.", "177.", "Yes."
    - scaffolding, not an answer: "Question: ...", "Context: ..."
    - a lead-in whose content never came: "[1] Keratin-dependent regulation ... keratinocytes:"
    - a question (ends in "?"), or the question itself said back word for word
    - a loop inside one sentence: 8 or more tokens, fewer than half of them distinct
    """
    text = MARKER.sub("", sentence).strip()
    if word_count(text) < MIN_WORDS or _NOT_AN_ANSWER.match(text):
        return True
    if text.endswith((":", "?")) or (question and key(text) == key(question)):
        return True
    tokens = text.lower().split()
    return len(tokens) >= LOOP_MIN_TOKENS and len(set(tokens)) < LOOP_UNIQUE_SHARE * len(tokens)


def fragment(sentence: str) -> bool:
    """The tail of a sentence cut at a chunk boundary: starts lowercase, or closes a bracket never opened."""
    text = sentence.lstrip()
    if not text or text[0].islower() or text[0] in ",;:)]":
        return True
    return any(text.count(close) > text.count(open_) for open_, close in ("()", "[]"))


def terminated(sentence: str) -> bool:
    """Ends like a finished sentence (punctuation or a marker), not cut off by the token limit."""
    text = sentence.rstrip()
    return text.endswith(tuple(TERMINATORS + CLOSERS + "]"))
